"""Firmware in the loop: the real C driver, compiled as C11, linked into a Verilator harness
(``firmware/sim/fil_main.cpp``) around the generated :class:`~snnfpga.rtl.system.AcceleratorSystem`
Verilog (interface ``wishbone``). The driver's bus hooks perform Wishbone cycles on the model.

:func:`build` builds the harness for a plan, or reuses a cached build: one directory per
configuration under :func:`snnfpga.sim.runner.cache_root`, named by a hash of every source
(Verilog, generated header, driver, harness), the tool versions and the flags; never inside
the repository. :func:`run_images` infers images through the driver; :func:`compare` checks
classes, scores and counters against the integer reference.

Two more variants Verilate a board shell ``snn_board`` behind ``firmware/sim/board_main.cpp``,
the host at its pins: ``build(plan, shell="spi")`` the SPI shell
(:func:`snnfpga.rtl.board.write_shell`'s Verilog) with an SPI master that serves one
transaction per command, ``build(plan, shell="uart", divisor=D)`` the UART shell
(:class:`snnfpga.rtl.board.UartAccelerator`, ``D`` clock cycles per bit) with a UART at the
other end of its two wires (the harness's link is a compile-time choice, ``SNN_LINK_UART``):
the simulated board at the byte level, for host transports
(:mod:`snnfpga.firmware.ftdi_link`). :func:`run_host` runs images through the Python host
driver on any bus and yields the same records, so :func:`compare` checks a host link exactly
as it checks the C driver.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snnfpga.errors import ToolError
from snnfpga.firmware import codegen
from snnfpga.firmware import regmap as R
from snnfpga.firmware.host import FirmwareError
from snnfpga.rtl.generate import make_top, to_verilog
from snnfpga.sim import reference, runner

FIRMWARE_DIR = Path(__file__).resolve().parent
DRIVER_SOURCES = ("snn_driver.c", "snn_driver.h")
HARNESS_SOURCE = "sim/fil_main.cpp"
TOP = "snn_top"  # the generated system
SHELL = "fil_top"  # the harness's top: the system with Verilator-friendly port names
BINARY = "fil"
BOARD_HARNESS_SOURCE = "sim/board_main.cpp"
BOARD_TOP = "snn_board"  # the board shells (rtl/board.py), the spi and uart variants' top
C_FLAGS = ("-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2")
MAKE_FLAGS = ("CFG_CXXFLAGS_PCH_I=-include",)  # see snnfpga.sim.runner._Verilator
BUILD_FORMAT = "fil-1"


class FirmwareRunError(ToolError):
    """The harness could not run, or the driver failed before the first image."""


@dataclass(frozen=True)
class Harness:
    """A built harness: its executable, the plan it was built for, how long the build took,
    its ``shell`` (``"wishbone"``: the C driver on fil_top; ``"spi"``, ``"uart"``: a board
    shell) and for ``"uart"`` the ``divisor`` (clock cycles per bit)."""

    plan: object
    binary: Path
    directory: Path
    build_s: float
    cached: bool
    shell: str = "wishbone"
    divisor: int | None = None


@dataclass(frozen=True)
class _Variant:
    top: str  # Verilator's top module
    binary: str
    prefix: str  # of the cache directory
    driver: bool  # the C driver is compiled and linked in
    make: tuple[str, ...] = ()  # make flags besides MAKE_FLAGS


# The UART shell at 2 Mbaud needs some 470,000 clock cycles per image of the default model (the
# SPI one at 10 MHz 80,000): its harness's model is compiled at -O2, 1.6 times as fast as
# verilated.mk's -Os.
FAST_MAKE_FLAGS = ("OPT_FAST=-O2", "OPT_GLOBAL=-O2")
VARIANTS = {"wishbone": _Variant(SHELL, BINARY, "fil", True), "spi": _Variant(BOARD_TOP, "fil-spi", "fil-spi", False),
            "uart": _Variant(BOARD_TOP, "fil-uart", "fil-uart", False, FAST_MAKE_FLAGS)}


def _variant(shell: str) -> _Variant:
    if shell not in VARIANTS:
        raise ValueError(f"unknown harness shell {shell!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[shell]


def c_compiler() -> str:
    return os.environ.get("CC", "cc" if shutil.which("cc") else "gcc")


SHELL_VERILOG = f"""// The accelerator system with single-underscore port names (Verilator mangles "__").
module {SHELL} (
    input clk, input rst, input wb_cyc, input wb_stb, input wb_we, input [3:0] wb_sel,
    input [ADDR_BITS-1:0] wb_adr, input [31:0] wb_dat_w, output [31:0] wb_dat_r, output wb_ack, output irq
);
    {TOP} system (
        .clk(clk), .rst(rst), .bus__cyc(wb_cyc), .bus__stb(wb_stb), .bus__we(wb_we), .bus__sel(wb_sel),
        .bus__adr(wb_adr), .bus__dat_w(wb_dat_w), .bus__dat_r(wb_dat_r), .bus__ack(wb_ack), .irq(irq)
    );
endmodule
"""


def _check_divisor(shell: str, divisor: int | None) -> None:
    if shell == "uart" and divisor is None:
        raise ValueError("the uart shell needs divisor= (clock cycles per bit)")
    if shell != "uart" and divisor is not None:
        raise ValueError(f"divisor= is for the uart shell, not {shell}")


def defines(shell: str, divisor: int | None = None) -> tuple[str, ...]:
    """The C preprocessor definitions the harness of ``shell`` is compiled with."""
    _check_divisor(shell, divisor)
    return ("-DSNN_LINK_UART", f"-DSNN_UART_DIVISOR={divisor}") if shell == "uart" else ()


def sources(plan, shell: str = "wishbone", divisor: int | None = None) -> dict[str, str]:
    """Every file the harness is built from, by name (the generated ones included)."""
    variant = _variant(shell)
    _check_divisor(shell, divisor)
    if variant.top == BOARD_TOP:
        from snnfpga.rtl.board import SpiAccelerator, UartAccelerator

        dut = UartAccelerator(plan, divisor) if shell == "uart" else SpiAccelerator(plan)
        return {f"{BOARD_TOP}.v": to_verilog(dut, BOARD_TOP),
                Path(BOARD_HARNESS_SOURCE).name: (FIRMWARE_DIR / BOARD_HARNESS_SOURCE).read_text()}
    shell = SHELL_VERILOG.replace("ADDR_BITS", str(R.ADDRESS_BITS))
    files = {f"{TOP}.v": to_verilog(make_top(plan, "wishbone"), TOP), f"{SHELL}.v": shell,
             codegen.HEADER_NAME: codegen.c_header(plan)}
    for name in (*DRIVER_SOURCES, HARNESS_SOURCE):
        files[Path(name).name] = (FIRMWARE_DIR / name).read_text()
    return files


@functools.lru_cache(maxsize=None)
def _tool_versions() -> tuple[str, ...]:
    out = [runner.simulator_version("verilator")]
    for tool in (c_compiler(), os.environ.get("CXX", "c++")):
        done = subprocess.run([tool, "--version"], capture_output=True, text=True)
        out.append((done.stdout.splitlines() or ["?"])[0])
    return tuple(out)


def build_key(files: dict[str, str], extra: tuple[str, ...] = ()) -> str:
    """The hash that names a build: sources, tools, flags; ``extra``: a variant's own flags
    (none for the wishbone and spi variants: their keys are computed as before)."""
    h = hashlib.sha256()
    for part in (BUILD_FORMAT, *_tool_versions(), *C_FLAGS, *runner.VERILATOR_ARGS, *MAKE_FLAGS,
                 os.environ.get("CFLAGS", ""), os.environ.get("CXXFLAGS", "")):
        h.update(part.encode() + b"\0")
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    for part in extra:
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def _check_tools() -> None:
    runner.configure("verilator")  # raises SimulatorMissing (a ToolError) with the reason
    if shutil.which(c_compiler()) is None:
        raise runner.SimulatorMissing(f"firmware in the loop needs a C compiler ({c_compiler()} not on PATH)")


def _command(args: list[str], cwd: Path, log: Path, what: str) -> None:
    with open(log, "a") as out:
        out.write("$ " + " ".join(args) + "\n")
        out.flush()
        done = subprocess.run(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        lines = log.read_text(errors="replace").splitlines()
        errors = (ln.strip() for ln in lines if not ln.startswith("$ ") and ("error:" in ln.lower() or "%Error" in ln))
        why = next(errors, f"exit status {done.returncode}")
        raise runner.BuildError(f"{what} failed: {why} (log: {log})")


def build(plan, *, cache: Path | None = None, jobs: int | None = None, shell: str = "wishbone",
          divisor: int | None = None) -> Harness:
    """Build the harness for ``plan`` (or reuse the cached build of the same sources).
    ``shell``: ``"wishbone"`` (the C driver on the system), ``"spi"`` or ``"uart"`` (a board
    shell; ``divisor``: the UART's clock cycles per bit, for ``"uart"`` only)."""
    variant = _variant(shell)
    cpp_defines = defines(shell, divisor)
    _check_tools()
    files = sources(plan, shell, divisor)
    key = build_key(files, cpp_defines + variant.make)
    directory = (cache or runner.cache_root()) / f"{variant.prefix}-{key[:16]}"
    binary = directory / variant.binary
    with runner._locked(directory):
        stamp = directory / runner.BUILD_STAMP
        if stamp.exists() and stamp.read_text() == key and binary.exists():
            stamp.touch()
            return Harness(plan, binary, directory, 0.0, True, shell, divisor)
        start = time.time()
        for sub in ("src", "obj", "model"):
            shutil.rmtree(directory / sub, ignore_errors=True)
        src, obj, model = directory / "src", directory / "obj", directory / "model"
        src.mkdir(parents=True)
        obj.mkdir()
        for name, text in files.items():
            (src / name).write_text(text)
        log = directory / "build.log"
        log.write_text("")
        link = []
        if variant.driver:
            # The driver as firmware builds it: C11, strict warnings as errors.
            _command([c_compiler(), *C_FLAGS, "-I", str(src), "-c", str(src / "snn_driver.c"), "-o",
                      str(obj / "snn_driver.o")], directory, log, "compiling the C driver")
            link = ["-LDFLAGS", str(obj / "snn_driver.o")]
        verilog = [str(src / name) for name in files if name.endswith(".v")]
        harness_cpp = [str(src / name) for name in files if name.endswith(".cpp")]
        _command(["verilator", "--cc", "--exe", *runner.VERILATOR_ARGS, "--top-module", variant.top, "--Mdir",
                  str(model), "-o", variant.binary, "-CFLAGS", " ".join((f"-I{src}", *cpp_defines)), *link,
                  *verilog, *harness_cpp],
                 directory, log, "verilator")
        runtime = _runtime_dir(directory.parent, variant.make)
        _restore_runtime(runtime, model)
        _command(["make", "-C", str(model), "-f", f"V{variant.top}.mk", f"-j{jobs or os.cpu_count() or 1}",
                  *MAKE_FLAGS, *variant.make], directory, log, "building the Verilated harness")
        _save_runtime(model, runtime)
        shutil.move(str(model / variant.binary), binary)
        shutil.rmtree(model, ignore_errors=True)  # some 100 MB of C++ and objects
        shutil.rmtree(obj, ignore_errors=True)
        stamp.write_text(key)
    runner._prune(directory.parent)
    return Harness(plan, binary, directory, time.time() - start, False, shell, divisor)


# Verilator's run-time library does not depend on the design: compiled once, then copied into
# each new build before make (newer than its sources, so make keeps it).
RUNTIME_OBJECTS = ("verilated", "verilated_threads")


def _runtime_dir(root: Path, make: tuple[str, ...] = ()) -> Path:
    """Where the run-time objects built with the make flags ``make`` (besides MAKE_FLAGS) are kept."""
    h = hashlib.sha256("\0".join([BUILD_FORMAT, *_tool_versions(), os.environ.get("CXXFLAGS", ""), *make]).encode())
    return root / f"fil-runtime-{h.hexdigest()[:16]}"


def _restore_runtime(runtime: Path, model: Path) -> None:
    if all((runtime / f"{name}.o").exists() for name in RUNTIME_OBJECTS):
        for path in runtime.iterdir():
            shutil.copyfile(path, model / path.name)


def _save_runtime(model: Path, runtime: Path) -> None:
    if runtime.exists() or not all((model / f"{name}.o").exists() for name in RUNTIME_OBJECTS):
        return
    staging = runtime.with_name(f"{runtime.name}.tmp{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            if (model / f"{name}{ext}").exists():
                shutil.copyfile(model / f"{name}{ext}", staging / f"{name}{ext}")
    try:
        staging.rename(runtime)
    except OSError:  # another process saved them first
        shutil.rmtree(staging, ignore_errors=True)


# ---- running --------------------------------------------------------------------------------


@dataclass
class FilRun:
    """What the driver reported: ``init`` (and ``weights``) events, one record per image;
    ``total_cycles``: simulated clock cycles (None on hardware); ``wall_s``: seconds."""

    events: dict[str, dict]
    images: list[dict]
    total_cycles: int | None
    wall_s: float


def images_file(art, images: np.ndarray) -> bytes:
    """The harness's image file: ``"SNNI"``, count, n_inputs (little-endian u32), pixels."""
    flat = reference.flatten_images(art, images).astype(np.uint8)
    head = np.array([len(flat), art.n_inputs], dtype="<u4").tobytes()
    return b"SNNI" + head + flat.tobytes()


def run_images(harness: Harness, images: np.ndarray, *, weights_blob: bytes | None = None,
               timeout_polls: int | None = None, progress: Callable[[int], None] | None = None) -> FilRun:
    """Infer ``images`` through the C driver on the Verilated system. With weight storage
    ``ram`` the plan's weight blob is loaded first (``weights_blob`` overrides it)."""
    plan = harness.plan
    if weights_blob is None and plan.weight_storage == "ram":
        weights_blob = codegen.weights_blob(plan)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="snnfpga-fil-") as tmp:
        args = [str(harness.binary), "run", str(Path(tmp) / "images.bin")]
        (Path(tmp) / "images.bin").write_bytes(images_file(plan.artifact, images))
        if weights_blob is not None:
            (Path(tmp) / "weights.bin").write_bytes(weights_blob)
            args.append(str(Path(tmp) / "weights.bin"))
        if timeout_polls is not None:
            args += ["--timeout-polls", str(timeout_polls)]
        events, records, total = {}, [], 0
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            for line in proc.stdout:
                record = json.loads(line)
                if record["event"] == "image":
                    records.append(record)
                    if progress:
                        progress(len(records))
                elif record["event"] == "done":
                    total = record["cycles"]
                else:
                    events[record["event"]] = record
            stderr = proc.stderr.read()
            rc = proc.wait()
    if rc != 0:
        failed = next((e for e in events.values() if e["status"] != 0), None)
        if failed is not None:
            why = f"{failed['event']}: {failed['error']} (status {failed['status']}"
            why += f", hardware error {failed['hw_error']}" if failed["hw_error"] else ""
            why += f", {failed['bus_error']}" if failed["bus_error"] else ""
            raise FirmwareRunError(f"firmware in the loop failed at {why})")
        raise FirmwareRunError(f"firmware-in-the-loop harness exited with status {rc}: {stderr.strip()[-300:]}")
    return FilRun(events, records, total, time.time() - start)


def run_host(accel, images: np.ndarray, *, weights=None,
             progress: Callable[[int], None] | None = None) -> FilRun:
    """Infer ``images`` through the Python host driver (:class:`snnfpga.firmware.host.Accelerator`)
    on its bus, in the C harness's order and with its records: ``init`` (identity checks, soft
    reset), ``weights`` (``weights``: a blob or plan; by default the accelerator's plan when its
    weight storage is ``ram``), the interrupt enabled, then per image ``infer`` and the
    counters. A driver error of one image is recorded (``error``) and the run goes on, as the
    C harness does; bus errors end it. ``irq`` / ``cycles`` / ``bytes`` come from the bus's
    ``irq()``, ``cycles()`` (simulated clock cycles) and ``bytes`` where it has them, else None."""
    bus = accel.bus
    cycles = getattr(bus, "cycles", None)
    irq = getattr(bus, "irq", None)
    plan = accel.plan
    if weights is None and plan is not None and plan.weight_storage == "ram":
        weights = plan
    start = time.time()
    events: dict[str, dict] = {}

    def event(name: str) -> None:
        events[name] = {"event": name, "status": 0, "error": "ok", "cycles": cycles() if cycles else None,
                        "bytes": getattr(bus, "bytes", None), "wall_s": time.time() - start}

    accel.init()
    event("init")
    if weights is not None:
        accel.load_weights(weights)
        event("weights")
    accel.set_irq(True)
    records = []
    for n, image in enumerate(images):
        before = cycles() if cycles else None
        try:
            result, error = accel.infer(image), "ok"
        except FirmwareError as exc:
            result, error = None, str(exc)
        latency = None if before is None else cycles() - before
        line = irq() if irq else None
        counters = accel.read_counters()
        records.append({"event": "image", "index": n, "error": error,
                        "class": None if result is None else result.cls,
                        "scores": None if result is None else result.scores, "spikes": counters.spikes,
                        "cycles": counters.cycles, "images": counters.images,
                        "irq": None if line is None else int(line), "bus_cycles": latency})
        if progress:
            progress(len(records))
    return FilRun(events, records, cycles() if cycles else None, time.time() - start)


@dataclass(frozen=True)
class Mismatch:
    """One disagreement between the driver's view of the hardware and the reference."""

    image: int
    what: str
    expected: object
    got: object

    def __str__(self) -> str:
        return f"mismatch: image {self.image}, {self.what}: expected {self.expected}, got {self.got}"


@dataclass
class Comparison:
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def images(self) -> list[int]:
        return sorted({m.image for m in self.mismatches})


def compare(art, images: np.ndarray, run: FilRun) -> Comparison:
    """Check every image's status, class, scores, spike counters, cycles (> 0), image counter
    (images since the driver's reset) and interrupt line (unless the record's ``irq`` is None:
    a link that cannot see the pin) against the reference."""
    ref = reference.run(art, images)
    spikes = ref.spike_counts()
    out = Comparison()
    for n in range(len(images)):
        if n >= len(run.images):
            out.mismatches.append(Mismatch(n, "result", "a result", "none (the run ended)"))
            continue
        got = run.images[n]
        checks = [("status", "ok", got["error"]),
                  ("class", int(ref.classes[n]), got["class"]),
                  ("scores", [int(s) for s in ref.scores[n]], got["scores"]),
                  ("spikes per stage", [int(c[n]) for c in spikes], got["spikes"]),
                  ("IMAGES counter", n + 1, got["images"])]
        if got["irq"] is not None:
            checks.append(("interrupt line", 1, got["irq"]))
        for what, expected, value in checks:
            if expected != value:
                out.mismatches.append(Mismatch(n, what, expected, value))
        if got["cycles"] <= 0:
            out.mismatches.append(Mismatch(n, "CYCLES counter", "> 0", got["cycles"]))
    return out
