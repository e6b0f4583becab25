"""Host-side Python driver of the accelerator: the C driver's API over a bus abstraction.

Backends (each a :class:`Bus`: 32-bit ``read(offset)`` / ``write(offset, value)`` at byte
offsets of the register block):

* :class:`MmioBus`: memory-mapped I/O on a board, ``mmap`` of ``/dev/mem`` at the block's
  physical base address, or of a UIO device (``/dev/uioN``, base 0);
* :class:`SimBus`: the firmware-in-the-loop harness (:mod:`snnfpga.firmware.fil`) in its
  ``serve`` mode: every access is a Wishbone cycle on the Verilated RTL.

:class:`Accelerator` mirrors ``snn_driver.h``: :meth:`~Accelerator.init` (identity checks
against the plan's build constants), :meth:`~Accelerator.infer`,
:meth:`~Accelerator.read_counters`, :meth:`~Accelerator.load_weights`. Failures raise
:class:`FirmwareError` subclasses (all :class:`~snnfpga.errors.SnnfpgaError`).
"""

from __future__ import annotations

import mmap
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snnfpga.errors import SnnfpgaError, ToolError
from snnfpga.firmware import codegen
from snnfpga.firmware import regmap as R

DEFAULT_TIMEOUT_POLLS = 1_000_000
IDENTITY = ("ID", "VERSION", "MODEL_HASH", "SHAPE", "GEOMETRY", "WIDTHS")


class FirmwareError(SnnfpgaError):
    """The accelerator did not behave as the driver expects."""


class IdentityMismatch(FirmwareError):
    """A build constant differs: another bitstream, model or plan than expected."""

    def __init__(self, register: str, expected: int, got: int):
        super().__init__(f"{register} is 0x{got:08X}, expected 0x{expected:08X}")
        self.register, self.expected, self.got = register, expected, got


class DeviceTimeout(FirmwareError):
    """A busy-wait ran out of polls."""


class DeviceBusy(FirmwareError):
    """An image is in flight or the pixel buffer is streaming."""


class DeviceError(FirmwareError):
    """``STATUS.ERROR`` is set; ``code`` is ``STATUS.ERROR_CODE``."""

    def __init__(self, code: int):
        super().__init__(f"accelerator error {code}: {R.ERROR_CODES.get(code, 'unknown error code')}")
        self.code = code


class WeightsError(FirmwareError):
    """Weights in ROM, a malformed weight image, or one for another model or plan."""


class BusError(ToolError):
    """A bus backend failed (no acknowledge, the simulator ended, a bad address)."""


# ---- buses ---------------------------------------------------------------------------------


class Bus:
    """32-bit register access at byte offsets of the register block."""

    def read(self, offset: int) -> int:
        raise NotImplementedError

    def write(self, offset: int, value: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_offset(offset: int, size: int) -> None:
    if offset % 4 or not 0 <= offset < size:
        raise BusError(f"bad register offset {offset:#x} (aligned, below {size:#x})")


class MmioBus(Bus):
    """Memory-mapped registers: ``mmap`` of ``path`` (``/dev/mem``, ``/dev/uioN`` or, for a
    test, an ordinary file) at byte offset ``base`` (a multiple of the page size).

    Accesses are single aligned 32-bit loads and stores through a ``memoryview`` in the
    host's byte order (the register block is a little-endian 32-bit device)."""

    def __init__(self, path: str | os.PathLike = "/dev/mem", base: int = 0, size: int = R.ADDRESS_BYTES):
        if base % mmap.ALLOCATIONGRANULARITY:
            raise BusError(f"base {base:#x} is not a multiple of the page size ({mmap.ALLOCATIONGRANULARITY:#x})")
        self._map = None
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_SYNC", 0))
        except OSError as exc:
            raise BusError(f"cannot open {path}: {exc.strerror}") from None
        try:
            self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=base)
        except (OSError, ValueError) as exc:
            raise BusError(f"cannot map {size:#x} bytes of {path} at {base:#x}: {exc}") from None
        finally:
            os.close(fd)
        self._words = memoryview(self._map).cast("I")
        self.size = size

    def read(self, offset: int) -> int:
        _check_offset(offset, self.size)
        return int(self._words[offset >> 2])

    def write(self, offset: int, value: int) -> None:
        _check_offset(offset, self.size)
        self._words[offset >> 2] = value & 0xFFFFFFFF

    def close(self) -> None:
        if self._map is not None:
            self._words.release()
            self._map.close()
            self._map = None


class SimBus(Bus):
    """The Verilated system behind the harness's ``serve`` mode (see ``fil_main.cpp``).
    Writes are sent without waiting; a read (or :meth:`sync`) collects any write failure."""

    def __init__(self, binary: str | os.PathLike, ack_limit: int | None = None):
        args = [str(binary), "serve"] + (["--ack-limit", str(ack_limit)] if ack_limit else [])
        try:
            self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1 << 16)
        except OSError as exc:
            raise BusError(f"cannot start the simulation harness {binary}: {exc.strerror}") from None

    @classmethod
    def for_plan(cls, plan, **kwargs) -> "SimBus":
        """Build (or reuse) the harness of ``plan`` and start it."""
        from snnfpga.firmware import fil

        return cls(fil.build(plan, **kwargs).binary)

    def _ask(self, command: str) -> str:
        if self._proc is None:
            raise BusError("the simulation bus is closed")
        try:
            self._proc.stdin.write(command + "\n")
            self._proc.stdin.flush()
            answer = self._proc.stdout.readline()
        except BrokenPipeError:
            answer = ""
        if not answer:
            raise BusError(f"the simulation harness ended (exit status {self._proc.poll()})")
        if answer.startswith("e "):
            raise BusError(f"simulation bus: {answer[2:].strip()}")
        return answer.strip()

    def read(self, offset: int) -> int:
        _check_offset(offset, R.ADDRESS_BYTES)
        return int(self._ask(f"r {offset:x}")[2:], 16)

    def write(self, offset: int, value: int) -> None:
        _check_offset(offset, R.ADDRESS_BYTES)
        if self._proc is None:
            raise BusError("the simulation bus is closed")
        try:
            self._proc.stdin.write(f"w {offset:x} {value & 0xFFFFFFFF:x}\n")
        except BrokenPipeError:
            raise BusError(f"the simulation harness ended (exit status {self._proc.poll()})") from None

    def sync(self) -> None:
        """Wait until every write was performed; raise on a failed one."""
        self._ask("s")

    def irq(self) -> bool:
        return self._ask("i") == "v 1"

    def cycles(self) -> int:
        return int(self._ask("c")[2:], 16)

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._proc.stdin.write("q\n")
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
            self._proc.wait(timeout=10)
            self._proc.stdout.close()
            self._proc = None


# ---- the driver ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    cls: int
    scores: list[int]


@dataclass(frozen=True)
class Counters:
    cycles: int  # clock cycles of the last image
    images: int  # results delivered since reset
    spikes: list[int]  # per stage: 0 = encoder, s = hidden layer s


def _field(value: int, register: str, name: str) -> int:
    f = R.BY_NAME[register].field(name)
    return (value >> f.lsb) & ((1 << f.width) - 1)


def _signed32(value: int) -> int:
    return value - (1 << 32) if value & (1 << 31) else value


class Accelerator:
    """The accelerator behind ``bus``. ``plan``: the generation plan the bitstream should
    have been built from (its build constants are checked by :meth:`init`); None accepts
    whatever the device reports."""

    def __init__(self, bus: Bus, plan=None, timeout_polls: int = DEFAULT_TIMEOUT_POLLS):
        self.bus, self.plan, self.timeout_polls = bus, plan, timeout_polls
        self.expected = R.build_constants(plan) if plan is not None else None
        self.constants: dict | None = None
        self._ctrl = 0

    # identity and control

    def init(self) -> dict:
        """Check the build constants, soft-reset the accelerator; return the constants read."""
        read = self.bus.read
        got = {name: read(R.BY_NAME[name].offset) for name in IDENTITY}
        if got["ID"] != R.ID_VALUE:
            raise IdentityMismatch("ID", R.ID_VALUE, got["ID"])
        n_layers = _field(got["GEOMETRY"], "GEOMETRY", "N_LAYERS")
        if not 1 <= n_layers <= R.MAX_LAYERS:
            raise FirmwareError(f"GEOMETRY reports {n_layers} layers")
        got["LAYER_SIZE"] = [read(R.BY_NAME["LAYER_SIZE"].address(k)) for k in range(n_layers)]
        if self.expected is not None:
            for name in (*IDENTITY, "LAYER_SIZE"):
                if got[name] != self.expected[name]:
                    if name == "LAYER_SIZE":
                        raise FirmwareError(f"LAYER_SIZE is {got[name]}, expected {self.expected[name]}")
                    raise IdentityMismatch(name, self.expected[name], got[name])
        self.constants = got
        self.soft_reset()
        return got

    def _require_init(self) -> dict:
        if self.constants is None:
            raise FirmwareError("call init() first")
        return self.constants

    @property
    def n_inputs(self) -> int:
        return _field(self._require_init()["SHAPE"], "SHAPE", "N_INPUTS")

    @property
    def n_classes(self) -> int:
        return _field(self._require_init()["SHAPE"], "SHAPE", "N_CLASSES")

    @property
    def n_layers(self) -> int:
        return _field(self._require_init()["GEOMETRY"], "GEOMETRY", "N_LAYERS")

    def _ctrl_write(self, **bits: int) -> None:
        self.bus.write(R.BY_NAME["CTRL"].offset, self._ctrl | R.pack_fields("CTRL", **bits))

    def soft_reset(self) -> None:
        self._ctrl = 0
        self._ctrl_write(SOFT_RESET=1)
        self._poll(lambda s: not (_field(s, "STATUS", "BUSY") or _field(s, "STATUS", "LOADING")
                                  or _field(s, "STATUS", "ERROR")), "the soft reset")

    def clear(self) -> None:
        self._ctrl_write(CLEAR=1)

    def set_irq(self, enable: bool) -> None:
        self._ctrl = R.pack_fields("CTRL", IRQ_ENABLE=int(enable))
        self._ctrl_write()

    def status(self) -> int:
        return self.bus.read(R.BY_NAME["STATUS"].offset)

    def _poll(self, ready, what: str) -> int:
        for _ in range(self.timeout_polls):
            status = self.status()
            if ready(status):
                return status
        raise DeviceTimeout(f"timed out after {self.timeout_polls} status reads waiting for {what}")

    def _require_idle(self) -> None:
        status = self.status()
        if _field(status, "STATUS", "ERROR"):
            raise DeviceError(_field(status, "STATUS", "ERROR_CODE"))
        if _field(status, "STATUS", "BUSY") or _field(status, "STATUS", "LOADING"):
            raise DeviceBusy("an image is in flight or the pixel buffer is streaming")

    # inference

    def start(self, image) -> None:
        pixels = np.asarray(image, dtype=np.uint8).reshape(-1)
        if pixels.size != self.n_inputs:
            raise FirmwareError(f"image has {pixels.size} pixels, the accelerator takes {self.n_inputs}")
        self._require_idle()
        padded = np.zeros(-(-pixels.size // 4) * 4, dtype=np.uint8)
        padded[:pixels.size] = pixels
        pixel_reg = R.BY_NAME["PIXELS"]
        for k, word in enumerate(padded.view("<u4").tolist()):
            self.bus.write(pixel_reg.address(k), word)
        self._ctrl_write(START=1)

    def wait_done(self) -> None:
        def done(status):
            if _field(status, "STATUS", "ERROR"):
                raise DeviceError(_field(status, "STATUS", "ERROR_CODE"))
            return _field(status, "STATUS", "DONE")

        self._poll(done, "STATUS.DONE")

    def read_result(self) -> Result:
        read = self.bus.read
        cls = read(R.BY_NAME["RESULT"].offset)
        return Result(cls, [_signed32(read(R.BY_NAME["SCORE"].address(j))) for j in range(self.n_classes)])

    def infer(self, image) -> Result:
        """One image (``uint8``, ``n_inputs`` pixels in row-major order): class and scores."""
        self.start(image)
        self.wait_done()
        return self.read_result()

    def read_counters(self) -> Counters:
        read = self.bus.read
        return Counters(read(R.BY_NAME["CYCLES"].offset), read(R.BY_NAME["IMAGES"].offset),
                        [read(R.BY_NAME["SPIKES"].address(s)) for s in range(self.n_layers)])

    # weights

    def load_weights(self, weights) -> None:
        """Write every weight word (weight storage ram). ``weights``: a weight blob
        (``bytes``, :func:`snnfpga.firmware.codegen.weights_blob`) or a plan."""
        consts = self._require_init()
        if not _field(consts["GEOMETRY"], "GEOMETRY", "WEIGHT_RAM"):
            raise WeightsError("weights are in ROM: nothing to load")
        if isinstance(weights, (bytes, bytearray, memoryview)):
            try:
                image = codegen.parse_weights_blob(bytes(weights))
            except ValueError as exc:
                raise WeightsError(str(exc)) from None
        else:
            image = codegen.weight_image(weights)
        chunks = _field(consts["WIDTHS"], "WIDTHS", "WEIGHT_CHUNKS")
        for name, mine, theirs in (("MODEL_HASH", image.model_hash, consts["MODEL_HASH"]),
                                   ("GEOMETRY", image.geometry, consts["GEOMETRY"]),
                                   ("WEIGHT_CHUNKS", image.chunks, chunks),
                                   ("WEIGHT_MEMORIES", len(image.memories),
                                    _field(consts["WIDTHS"], "WIDTHS", "WEIGHT_MEMORIES"))):
            if mine != theirs:
                raise WeightsError(f"weight image is for another model or plan: {name} {mine:#x}, device {theirs:#x}")
        self._require_idle()
        addr_reg, data_reg = R.BY_NAME["WEIGHT_ADDR"], R.BY_NAME["WEIGHT_DATA"]
        for layer, words in enumerate(image.memories):
            base = R.pack_fields("WEIGHT_ADDR", LAYER=layer)
            self.bus.write(addr_reg.offset, base)
            for at in range(0, len(words), chunks):
                for k in reversed(range(chunks)):  # chunk 0 last: it commits the word
                    self.bus.write(data_reg.address(k), words[at + k])
            expected = base | ((len(words) // chunks) & addr_reg.field("ADDR").mask)
            got = self.bus.read(addr_reg.offset)
            if got != expected:
                raise WeightsError(f"weight memory {layer}: WEIGHT_ADDR is 0x{got:08X} after loading, expected 0x{expected:08X}")
        self._require_idle()


def open_board(path: str | Path = "/dev/mem", base: int = 0, plan=None) -> Accelerator:
    """An initialised :class:`Accelerator` on memory-mapped hardware."""
    bus = MmioBus(path, base)
    accel = Accelerator(bus, plan)
    try:
        accel.init()
    except BaseException:
        bus.close()
        raise
    return accel
