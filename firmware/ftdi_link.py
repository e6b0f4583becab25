"""Host links: the host driver's bus as SPI transactions or UART frames, on an FTDI chip or the simulated board.

:class:`BurstBus` is a :class:`~snnfpga.firmware.host.Bus` that buffers writes, as
:class:`~snnfpga.firmware.host.SimBus` does, and sends consecutive ones as one burst: a
stepping write while each word's address follows the previous one (the pixel buffer), a
fixed-address write while it repeats (``WEIGHT_DATA[0]`` when a weight word is one chunk).
The accelerator sees the same writes in the same order; the buffer is sent before every
read, :meth:`~BurstBus.sync`, ``irq``/``cycles`` and :meth:`~BurstBus.close`. Its links:

* :class:`SpiBus`: transactions of the SPI bridge (:mod:`snnfpga.rtl.spi_bridge`) on a
  *port* with pyftdi's ``SpiPort.exchange(out, readlen=0, duplex=False) -> bytes``. Every
  transaction is one full-duplex exchange (one ``CS_N``-low period), so the bytes out and
  back are exactly the wire's. A read is ``READ`` of one word (8 bytes:
  ``03 ADDR ADDR DUMMY D D D D``), a burst ``WRITE`` or ``WRITE_FIXED``. Outside the data
  words of a read the bridge keeps MISO low: anything else on MISO is a
  :class:`~snnfpga.firmware.host.BusError` (no bitstream, another device answering, a bad wire).
* :class:`UartBus`: frames of the UART bridge (:mod:`snnfpga.rtl.uart_bridge`) on a
  pyserial-like port (``write(bytes)``, ``read(n) -> bytes``, fewer on a timeout). A read is
  one ``READ`` frame of one word (``03 ADDR ADDR 00``, four data bytes back), a burst one
  ``WRITE``/``WRITE_FIXED`` frame of up to 256 words. A write frame does not wait for its
  acknowledge (``0x5A``): every read, sync and close first takes the pending ones, and
  anything else, or a reply that does not come, is a one-line BusError.

Ports:

* :meth:`FtdiSpiBus.open`: an FTDI MPSSE chip through pyftdi (``SpiController``), with the
  board's chip select, SPI clock and prelude (:mod:`snnfpga.rtl.boards`);
* :meth:`FtdiUartBus.open`: an FTDI UART (the ULX3S's FT231X) through pyftdi's serial port;
* :class:`SimSpiPort` / :class:`SimUartPort`: the board shell Verilated behind
  ``firmware/sim/board_main.cpp`` (:func:`snnfpga.firmware.fil.build` with ``shell="spi"`` or
  ``"uart"``), which moves every byte through the shell's pins, so the bus over it carries
  the byte stream a board would see.
"""

from __future__ import annotations

import importlib
import math
import os
import time

from snnfpga.errors import ConfigError
from snnfpga.firmware import regmap as R
from snnfpga.firmware.host import Bus, BusError, SimBus, _check_offset
from snnfpga.rtl.spi_bridge import CMD_READ, CMD_WRITE, CMD_WRITE_FIXED, decode_read, encode_read, encode_write
from snnfpga.rtl.uart_bridge import ACK, MAX_WORDS, TIMEOUT_BITS, encode_frame

MAX_BURST_WORDS = 1024  # words per SPI write transaction (4 KiB; pyftdi takes up to 0xFF00 bytes)
READ_HEADER = 4  # CMD, ADDR (2), DUMMY: bytes of a read before its data words
# MPSSE clocks of FTDI's high-speed chips (FT232H, FT2232H, FT4232H): 30 MHz / (d + 1), or
# with the divide-by-5 prescaler 6 MHz / (d + 1), d = 0..65535; full-speed chips only the latter.
MPSSE_BASE_HZ = 30_000_000
MPSSE_SLOW_BASE_HZ = 6_000_000
MPSSE_MAX_DIVISOR = 0xFFFF
UART_TIMEOUT_S = 1.0  # how long FtdiUartBus waits for a reply


class BurstBus(Bus):
    """32-bit registers by byte offset on ``port``, writes buffered into bursts of at most
    ``max_burst_words``. A link supplies :meth:`_send_burst` and :meth:`_read_word` (and
    :meth:`_settle`, waiting for what it has sent). ``bytes`` and ``transactions`` count
    what went over the link."""

    link = "host"  # the link's name in messages

    def __init__(self, port, max_burst_words: int):
        if max_burst_words < 1:
            raise ValueError("max_burst_words must be >= 1")
        self.port, self.max_burst_words = port, max_burst_words
        self.bytes = self.transactions = 0
        self._base: int | None = None  # word address of the buffered burst
        self._words: list[int] = []
        self._fixed = False

    def _send_burst(self, base: int, words: list[int], fixed: bool) -> None:
        """Write ``words`` from word address ``base`` (stepping, or all to ``base`` if ``fixed``)."""
        raise NotImplementedError

    def _read_word(self, word: int) -> int:
        """The register at word address ``word`` (every buffered write has been sent)."""
        raise NotImplementedError

    def _settle(self) -> None:
        """Wait until the writes sent are done (a link that acknowledges them)."""

    def _open_port(self):
        if self.port is None:
            raise BusError(f"the {self.link} bus is closed")
        return self.port

    def read(self, offset: int) -> int:
        _check_offset(offset, R.ADDRESS_BYTES)
        self.flush()
        return self._read_word(offset >> 2)

    def write(self, offset: int, value: int) -> None:
        _check_offset(offset, R.ADDRESS_BYTES)
        word = offset >> 2
        if self._base is not None:
            n = len(self._words)
            last = self._base if self._fixed else self._base + n - 1  # word address of the last write
            if n >= self.max_burst_words:
                self.flush()
            elif n == 1 and word in (last, last + 1):  # the second word sets the burst's kind
                self._fixed = word == last
            elif word != (last if self._fixed else last + 1):
                self.flush()
        if self._base is None:
            self._base, self._fixed = word, False
        self._words.append(value & 0xFFFFFFFF)

    def _take(self) -> tuple[int, list[int], bool] | None:
        """The buffered burst (base, words, fixed), now out of the buffer; None when empty."""
        if self._base is None:
            return None
        burst = self._base, self._words, self._fixed
        self._base, self._words, self._fixed = None, [], False
        return burst

    def flush(self) -> None:
        """Send the buffered writes (one burst)."""
        burst = self._take()
        if burst is not None:
            self._send_burst(*burst)

    def sync(self) -> None:
        """Send every buffered write and wait until the link has done them."""
        self.flush()
        self._settle()

    def _pin(self, name: str):
        port = self._open_port()
        if not hasattr(port, name):
            return None
        self.sync()
        return getattr(port, name)()

    def irq(self) -> bool | None:
        """The ``irq`` pin where the port can see it (the simulated board), else None."""
        value = self._pin("irq")
        return None if value is None else bool(value)

    def cycles(self) -> int | None:
        """Clock cycles since the simulated board started, else None."""
        value = self._pin("cycles")
        return None if value is None else int(value)

    def close(self) -> None:
        if self.port is None:
            return
        try:
            self.sync()
        finally:
            port, self.port = self.port, None
            if hasattr(port, "close"):
                port.close()


class SpiBus(BurstBus):
    """Registers as SPI bridge transactions on ``port`` (see the module doc).

    ``prelude``: transactions sent once, before the first register access (the iCEBreaker's
    flash power-down). ``bytes`` counts the bytes out (each has one back), ``transactions``
    the ``CS_N``-low periods."""

    link = "SPI"

    def __init__(self, port, prelude=(), max_burst_words: int = MAX_BURST_WORDS):
        super().__init__(port, max_burst_words)
        for data in prelude:
            self._transfer(bytes(data))

    def _exchange(self, data: bytes) -> bytes:
        """One transaction on the port (a subclass turns its port's errors into BusError)."""
        return self.port.exchange(data, duplex=True)

    def _transfer(self, data: bytes) -> bytes:
        self._open_port()
        reply = bytes(self._exchange(data))
        if len(reply) != len(data):
            raise BusError(f"SPI port returned {len(reply)} bytes for a {len(data)}-byte transaction")
        self.bytes += len(data)
        self.transactions += 1
        return reply

    def _check_quiet(self, what: str, sent: bytes, got: bytes) -> None:
        if any(got):
            raise BusError(f"MISO not low during the {what} (sent {sent[:8].hex()}, got {got[:8].hex()}): "
                           f"is the accelerator's bitstream loaded and nothing else driving MISO?")

    def _read_word(self, word: int) -> int:
        out = encode_read(word, 1)
        reply = self._transfer(out)
        self._check_quiet("read command", out, reply[:READ_HEADER])
        return decode_read(reply, 1)[0]

    def _send_burst(self, base: int, words: list[int], fixed: bool) -> None:
        out = encode_write(base, words, fixed)
        self._check_quiet("write", out, self._transfer(out))


class UartBus(BurstBus):
    """Registers as UART bridge frames on a pyserial-like ``port`` (see the module doc).

    ``where``: the link in messages. ``bytes`` counts the bytes both ways, ``transactions``
    the frames sent. After a reply that did not come or was wrong the bus refuses further
    access (the stream is out of step): close it and open the link again."""

    link = "UART"

    def __init__(self, port, max_burst_words: int = MAX_WORDS, where: str = "the UART link"):
        if max_burst_words > MAX_WORDS:
            raise ValueError(f"a UART frame carries at most {MAX_WORDS} words")
        super().__init__(port, max_burst_words)
        self.where = where
        self._acks = 0  # write frames sent whose acknowledge has not been read
        self._lost: str | None = None  # why the stream is out of step

    def _write_port(self, data: bytes) -> None:
        """Write to the port (a subclass turns its port's errors into BusError)."""
        self.port.write(data)

    def _read_port(self, n: int) -> bytes:
        return bytes(self.port.read(n))

    def _send(self, frame: bytes) -> None:
        self._open_port()
        if self._lost is not None:
            raise BusError(f"{self.where} is out of step after an earlier error ({self._lost}); open it again")
        self._write_port(frame)
        self.bytes += len(frame)
        self.transactions += 1

    def _receive(self, data_bytes: int, what: str) -> bytes:
        """The pending acknowledges (checked) and then ``data_bytes`` bytes of reply to ``what``."""
        acks, self._acks = self._acks, 0
        n = acks + data_bytes
        got = b""
        while len(got) < n:
            chunk = self._read_port(n - len(got))
            if not chunk:
                break
            got += chunk
        self.bytes += len(got)
        bad = next((k for k, b in enumerate(got[:acks]) if b != ACK), None)
        if bad is not None:
            self._lost = "a bad write acknowledge"
            came = got[:acks].hex(" ")
            raise BusError(f"{self.where}: expected {acks} write acknowledge(s) 0x{ACK:02X} before {what}, got "
                           f"{came if len(came) <= 48 else came[:45] + '...'}: is the accelerator's bitstream "
                           f"loaded and the baud rate its own?")
        if len(got) < n:
            self._lost = "a reply that did not come"
            raise BusError(f"{self.where}: no reply to {what}: {len(got)} of {n} bytes ({acks} write "
                           f"acknowledge(s), {data_bytes} data) came before the timeout; is the accelerator's "
                           f"bitstream loaded, the baud rate its own and the port the board's?")
        return got[acks:]

    def _read_word(self, word: int) -> int:
        self._send(encode_frame(CMD_READ, word, 1))
        return int.from_bytes(self._receive(4, f"the read of word {word:#x}"), "big")

    def _send_burst(self, base: int, words: list[int], fixed: bool) -> None:
        self._send(encode_frame(CMD_WRITE_FIXED if fixed else CMD_WRITE, base, len(words), words))
        self._acks += 1

    def _settle(self) -> None:
        if self._acks:
            self._receive(0, "the writes")

    def close(self) -> None:
        if self._lost is not None:
            self._take()  # nothing more goes out
        super().close()


# ---- FTDI ------------------------------------------------------------------------------------


def spi_limit_hz(clock_mhz: float) -> float:
    """The fastest SCK the bridge takes at accelerator clock ``clock_mhz`` (MHz): clk / 4, in Hz."""
    return clock_mhz * 1e6 / 4


def check_spi_hz(board, hz: float, clock_mhz: float | None = None) -> None:
    """:class:`ConfigError` when SCK ``hz`` is above the bridge's limit on ``board`` at
    accelerator clock ``clock_mhz`` (MHz; default ``board.clock_mhz``)."""
    clock_mhz = clock_mhz or board.clock_mhz
    limit = spi_limit_hz(clock_mhz)
    if hz > limit:
        raise ConfigError(f"SPI clock {hz:.0f} Hz is above {limit:.0f} Hz, the SPI bridge's limit on "
                          f"{board.name} (accelerator clock {clock_mhz:g} MHz / 4)")


def mpsse_clock(hz: float, high_speed: bool = True) -> float:
    """The fastest SCK (Hz) an FTDI MPSSE engine makes at or below ``hz``: asked for exactly,
    pyftdi sets it exactly (it would otherwise round to the nearest, possibly above)."""
    bases = (MPSSE_BASE_HZ, MPSSE_SLOW_BASE_HZ) if high_speed else (MPSSE_SLOW_BASE_HZ,)
    best = 0.0
    for base in bases:
        divisor = min(max(math.ceil(base / hz) - 1, 0), MPSSE_MAX_DIVISOR)
        if base / (divisor + 1) <= hz:
            best = max(best, base / (divisor + 1))
    if best == 0.0:
        raise ConfigError(f"{hz:.0f} Hz is below the slowest MPSSE SPI clock "
                          f"({MPSSE_SLOW_BASE_HZ / (MPSSE_MAX_DIVISOR + 1):.0f} Hz)")
    return best


def _link_failure(url: str, exc: BaseException) -> str:
    """One line: what failed opening or using the FTDI link at ``url`` and what to check."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ValueError) and "backend" in text.lower():
        return (f"cannot open {url}: pyftdi found no USB backend ({text}); install libusb-1.0 "
                f"(Debian/Ubuntu: apt-get install libusb-1.0-0)")
    return (f"cannot use the FTDI link {url}: {text}; check that the board is connected and powered, the URL "
            f"(python -m pyftdi.ftdi_urls lists the devices) and the USB permissions (udev rules)")


def _link_errors() -> tuple[type[BaseException], ...]:
    # FtdiError, SpiIOError, USBError and pyserial's SerialException are OSErrors
    errors: list[type[BaseException]] = [OSError, ValueError]
    try:
        from pyftdi.usbtools import UsbToolsError

        errors.append(UsbToolsError)
    except ImportError:
        pass
    return tuple(errors)


def _pyftdi(module: str, name: str):
    """``name`` from pyftdi's ``module``; BusError when pyftdi is not installed."""
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        raise BusError("the FTDI link needs pyftdi (pip install pyftdi)") from None


def _ftdi_call(url: str, errors, call, *args):
    """``call(*args)``, its USB and device failures one BusError line naming ``url``."""
    try:
        return call(*args)
    except errors as exc:
        raise BusError(_link_failure(url, exc)) from None


def _set_up(url: str, errors, device, setup):
    """``setup()`` on a just-opened ``device``, which is closed if that fails."""
    try:
        return _ftdi_call(url, errors, setup)
    except BaseException:
        _close_quietly(device, errors)
        raise


def _close_quietly(device, errors) -> None:
    try:
        device.close()
    except errors:
        pass


class _FtdiLink:
    """What the FTDI buses share: ``url``, and port calls whose failures are one line."""

    def _init_link(self, url: str) -> None:
        self.url, self._errors = url, _link_errors()

    def _call(self, call, *args):
        return _ftdi_call(self.url, self._errors, call, *args)


class FtdiSpiBus(_FtdiLink, SpiBus):
    """:class:`SpiBus` on a pyftdi ``SpiPort``; ``frequency``: the SCK in Hz; ``url``."""

    def __init__(self, controller, port, url: str, frequency: float, prelude=()):
        self._controller, self.frequency = controller, frequency
        self._init_link(url)
        super().__init__(port, prelude)

    @classmethod
    def open(cls, board, url: str | None = None, frequency: float | None = None,
             clock_mhz: float | None = None) -> "FtdiSpiBus":
        """Open ``board``'s host link (:class:`snnfpga.rtl.boards.Board`): ``url`` (default
        ``board.ftdi_url``), chip select ``board.ftdi_cs``, SPI mode 0 at ``frequency`` Hz
        (default ``board.spi_hz``; the fastest MPSSE clock at or below it), then the prelude.
        A frequency above the bridge's limit at ``clock_mhz`` (default ``board.clock_mhz``,
        the accelerator clock of the board's bitstream) is refused (:class:`ConfigError`);
        every USB or device failure is one :class:`BusError` line naming the URL."""
        url = url or board.ftdi_url
        requested = float(frequency or board.spi_hz)
        check_spi_hz(board, requested, clock_mhz)
        controller = _pyftdi("pyftdi.spi", "SpiController")(cs_count=board.ftdi_cs + 1)

        def setup():
            controller.configure(url, frequency=mpsse_clock(requested))
            hz = mpsse_clock(requested, controller.ftdi.is_H_series)
            port = controller.get_port(cs=board.ftdi_cs, freq=hz, mode=0)
            return cls(controller, port, url, hz, board.prelude)

        return _set_up(url, _link_errors(), controller, setup)

    def _exchange(self, data: bytes) -> bytes:
        return self._call(lambda: self.port.exchange(data, duplex=True))

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._controller is not None:
                controller, self._controller = self._controller, None
                _close_quietly(controller, self._errors)


class FtdiUartBus(_FtdiLink, UartBus):
    """:class:`UartBus` on pyftdi's serial port (``pyftdi.serialext``); ``url``, ``baud``."""

    def __init__(self, port, url: str, baud: int):
        self.baud = baud
        self._init_link(url)
        super().__init__(port, where=f"{url} at {baud:,} baud")

    @classmethod
    def open(cls, board, url: str | None = None, baud: int | None = None,
             timeout: float = UART_TIMEOUT_S) -> "FtdiUartBus":
        """Open ``board``'s UART host link: ``url`` (default ``board.ftdi_url``), 8N1 at ``baud``
        (default ``board.baud``), replies awaited ``timeout`` seconds. The bridge is brought in
        step first (a frame an earlier session left unfinished times out; stale bytes are
        dropped). Every USB or device failure is one :class:`BusError` line naming the URL."""
        url = url or board.ftdi_url
        baud = int(baud or board.baud)
        serial_for_url = _pyftdi("pyftdi.serialext", "serial_for_url")
        errors = _link_errors()
        port = _ftdi_call(url, errors, lambda: serial_for_url(url, baudrate=baud, timeout=timeout))

        def setup():
            time.sleep(2 * TIMEOUT_BITS / baud)
            port.reset_input_buffer()
            return cls(port, url, baud)

        return _set_up(url, errors, port, setup)

    def _write_port(self, data: bytes) -> None:
        self._call(self.port.write, data)

    def _read_port(self, n: int) -> bytes:
        return bytes(self._call(self.port.read, n))


# ---- the simulated board ---------------------------------------------------------------------


class _SimBoardPort:
    """A port onto a Verilated board shell: the ``fil-spi``/``fil-uart`` harness's ``serve``
    mode, spoken through :class:`~snnfpga.firmware.host.SimBus`'s pipe; ``setup``: the
    command that sets the link's timing."""

    def __init__(self, binary: str | os.PathLike, setup: str):
        self._serve = SimBus(binary)  # the same line protocol: "i", "c", "t", "p", "s", "q" shared
        try:
            self._serve._ask(setup)
        except BaseException:
            self._serve.close()
            raise

    def irq(self) -> bool:
        """The ``irq`` pin."""
        return self._serve.irq()

    def cycles(self) -> int:
        """clk cycles since the harness started."""
        return self._serve.cycles()

    def tick(self, cycles: int) -> None:
        """Let ``cycles`` clock cycles pass with the host's pins idle."""
        self._serve._ask(f"t {cycles:x}\ns")

    def reset(self) -> None:
        """Pulse the board's ``rst`` pin (the reset synchronizer releases it after two cycles)."""
        self._serve._ask("p")

    def close(self) -> None:
        self._serve.close()


class SimSpiPort(_SimBoardPort):
    """A pyftdi-``SpiPort``-like port onto the Verilated SPI board shell (``fil-spi``).
    ``sck_half``: clk cycles per SCK phase (>= 2: SCK = clk / 4); ``cs_gap``: clk cycles of
    CS_N high after each transaction (>= 3)."""

    def __init__(self, binary: str | os.PathLike, sck_half: int = 2, cs_gap: int = 4):
        if sck_half < 2 or cs_gap < 3:
            raise ConfigError(f"the SPI bridge needs sck_half >= 2 and cs_gap >= 3, got {sck_half} and {cs_gap}")
        self.sck_half, self.cs_gap = sck_half, cs_gap
        super().__init__(binary, f"k {sck_half:x} {cs_gap:x}")

    @classmethod
    def for_plan(cls, plan, sck_half: int = 2, cs_gap: int = 4, **build) -> "SimSpiPort":
        """Build (or reuse) the SPI board-shell harness of ``plan`` and start it."""
        from snnfpga.firmware import fil

        return cls(fil.build(plan, shell="spi", **build).binary, sck_half, cs_gap)

    def exchange(self, out=b"", readlen: int = 0, duplex: bool = False) -> bytes:
        """One transaction, as pyftdi's: full duplex, the bytes seen while ``out`` (padded with
        zeros to ``readlen``) is sent, ``readlen`` of them (all when 0); half duplex, ``out``
        then ``readlen`` bytes clocked in after it."""
        out = bytes(out)
        if duplex:
            data = out + bytes(max(readlen - len(out), 0))
            return self._transfer(data)[:readlen or len(data)]
        return self._transfer(out + bytes(readlen))[len(out):]

    def _transfer(self, data: bytes) -> bytes:
        if not data:
            return b""
        return bytes.fromhex(self._serve._ask("x " + data.hex())[2:])


class SimUartPort(_SimBoardPort):
    """A pyserial-like port onto the Verilated UART board shell (``fil-uart``): ``write``
    shifts bytes onto ``uart_rx`` at ``divisor`` clk cycles per bit (default: the shell's),
    ``read(n)`` returns the next ``n`` bytes decoded from ``uart_tx``, fewer when they have
    not all come ``timeout_bits`` bit times after their own length (a serial port's timeout)."""

    def __init__(self, binary: str | os.PathLike, divisor: int, timeout_bits: int = TIMEOUT_BITS):
        if divisor < 4:
            raise ConfigError(f"the UART bridge needs at least 4 clk cycles per bit, got {divisor}")
        self.divisor, self.timeout_bits = divisor, timeout_bits
        super().__init__(binary, f"k {divisor:x}")

    @classmethod
    def for_plan(cls, plan, divisor: int, timeout_bits: int = TIMEOUT_BITS, **build) -> "SimUartPort":
        """Build (or reuse) the UART board-shell harness of ``plan`` (``divisor`` clk cycles
        per bit) and start it."""
        from snnfpga.firmware import fil

        return cls(fil.build(plan, shell="uart", divisor=divisor, **build).binary, divisor, timeout_bits)

    def write(self, data) -> int:
        data = bytes(data)
        if data:
            self._serve._ask("w " + data.hex())
        return len(data)

    def read(self, n: int = 1) -> bytes:
        if n <= 0:
            return b""
        limit = self.divisor * (10 * n + self.timeout_bits)
        return bytes.fromhex(self._serve._ask(f"r {n:x} {limit:x}")[2:])

    def framing_errors(self) -> int:
        """Frames on ``uart_tx`` whose stop bit was low (dropped), since the harness started."""
        return int(self._serve._ask("f")[2:], 16)
