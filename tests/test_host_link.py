"""The host links (firmware/ftdi_link.py), SPI and UART: the bytes SpiBus and UartBus send, the
UART's write acknowledges, the FTDI opening, and the host driver over the simulated board
shells (every byte through the Verilated SPI or UART pins) checked against the integer
reference with firmware in the loop's checks; ``snnfpga infer`` on both kinds of board.

The board-shell harnesses are cached on disk (snnfpga.firmware.fil); cold, their builds take
about a minute on two cores.
"""

from __future__ import annotations

import functools
import json

import pytest

from snnfpga import cli
from snnfpga.commands.infer import board_clock_mhz
from snnfpga.commands.synth import target_plan
from snnfpga.errors import ConfigError
from snnfpga.firmware import fil, ftdi_link, host
from snnfpga.firmware import regmap as R
from snnfpga.firmware.ftdi_link import FtdiSpiBus, FtdiUartBus, SimSpiPort, SimUartPort, SpiBus, UartBus
from snnfpga.model.artifact import load_artifact
from snnfpga.model.synthetic import random_artifact, random_images
from snnfpga.rtl.boards import get_board
from snnfpga.rtl.plan import make_plan
from snnfpga.rtl.targets import get_target
from snnfpga.rtl.uart_bridge import ACK, TIMEOUT_BITS, divisor_for, encode_frame
from tests.firmware_common import require_verilator, validation_images

REG = R.BY_NAME
ID_BYTES = R.ID_VALUE.to_bytes(4, "big")  # what MISO carries for ID: MSB first


class RecordingPort:
    """A port that records every transaction and answers from ``replies`` (word address ->
    value; MISO low elsewhere), as a bridge on a plain register file would."""

    def __init__(self, replies=None):
        self.replies = replies or {}
        self.sent: list[bytes] = []

    def exchange(self, out=b"", readlen=0, duplex=False):
        assert duplex and readlen == 0
        out = bytes(out)
        self.sent.append(out)
        if out[0] in (0x03, 0x0B):
            addr = int.from_bytes(out[1:3], "big")
            words = (len(out) - 4) // 4
            data = b"".join(self.replies.get(addr if out[0] == 0x0B else addr + k, 0).to_bytes(4, "big")
                            for k in range(words))
            return bytes(4) + data
        return bytes(len(out))


# ---- the byte stream -------------------------------------------------------------------------


def test_read_and_write_are_the_protocol_bytes():
    port = RecordingPort({0x07: 0x12345678})  # STATUS, word address 0x1C >> 2
    bus = SpiBus(port, prelude=(b"\xb9",))
    assert port.sent == [b"\xb9"]
    assert bus.read(REG["STATUS"].offset) == 0x12345678
    bus.write(REG["CTRL"].offset, 0xA1B2C3D4)
    assert len(port.sent) == 2  # the write waits in the buffer
    bus.sync()
    assert port.sent[1:] == [bytes.fromhex("03 0007 00 00000000"), bytes.fromhex("02 0006 A1B2C3D4")]
    assert bus.bytes == 1 + 8 + 7 and bus.transactions == 3


def test_consecutive_writes_become_bursts_in_the_drivers_order():
    port = RecordingPort()
    bus = SpiBus(port, max_burst_words=3)
    for k in range(4):  # the pixel buffer: incrementing addresses, split after 3 words
        bus.write(REG["PIXELS"].address(k), k + 1)
    bus.write(REG["CTRL"].offset, 1)
    for value in (7, 8):  # WEIGHT_DATA[0] again and again: the fixed-address write
        bus.write(REG["WEIGHT_DATA"].address(0), value)
    bus.write(REG["WEIGHT_DATA"].address(1), 9)  # two chunks, highest first: no burst downwards
    bus.write(REG["WEIGHT_DATA"].address(0), 10)
    bus.read(REG["ID"].offset)
    assert port.sent == [bytes.fromhex("02 0400 00000001 00000002 00000003"), bytes.fromhex("02 0403 00000004"),
                         bytes.fromhex("02 0006 00000001"), bytes.fromhex("0A 0030 00000007 00000008"),
                         bytes.fromhex("02 0031 00000009"), bytes.fromhex("02 0030 0000000A"),
                         bytes.fromhex("03 0000 00 00000000")]


def test_bad_offsets_and_a_noisy_miso_are_bus_errors():
    class Noisy(RecordingPort):
        def exchange(self, out=b"", readlen=0, duplex=False):
            return b"\x01" + super().exchange(out, readlen, duplex)[1:]

    bus = SpiBus(RecordingPort())
    with pytest.raises(host.BusError, match="bad register offset"):
        bus.read(2)
    with pytest.raises(host.BusError, match="bad register offset"):
        bus.write(R.ADDRESS_BYTES, 0)
    noisy = SpiBus(Noisy())
    with pytest.raises(host.BusError, match="MISO not low during the read command"):
        noisy.read(0)
    noisy.write(REG["CTRL"].offset, 1)
    with pytest.raises(host.BusError, match="MISO not low during the write .*bitstream loaded"):
        noisy.sync()
    bus.close()
    with pytest.raises(host.BusError, match="closed"):
        bus.read(0)


# ---- FTDI: opening the link (pyftdi replaced by a recorder) -----------------------------------


def test_mpsse_clock_is_the_fastest_at_or_below():
    assert ftdi_link.mpsse_clock(6e6) == 6e6
    assert ftdi_link.mpsse_clock(9e6) == 7.5e6  # 30 MHz / 4; pyftdi's nearest would be 10 MHz
    assert ftdi_link.mpsse_clock(9e6, high_speed=False) == 6e6
    assert ftdi_link.mpsse_clock(1e3) == 6e6 / 6000
    with pytest.raises(ConfigError, match="below the slowest"):
        ftdi_link.mpsse_clock(10)


def test_ftdi_open_configures_the_boards_link(monkeypatch):
    import pyftdi.spi

    calls = []

    class FakeController:
        def __init__(self, cs_count=1):
            calls.append(("controller", cs_count))
            self.ftdi = type("F", (), {"is_H_series": True})()

        def configure(self, url, **kwargs):
            calls.append(("configure", url, kwargs))

        def get_port(self, cs, freq=None, mode=0):
            calls.append(("port", cs, freq, mode))
            return self.port

        def close(self):
            calls.append(("close",))

    class FailingPort(RecordingPort):
        def exchange(self, out=b"", readlen=0, duplex=False):
            if len(self.sent) == 2:
                raise pyftdi.spi.SpiIOError("USB transfer failed")
            return super().exchange(out, readlen, duplex)

    port = FailingPort({0: R.ID_VALUE})
    FakeController.port = port
    monkeypatch.setattr(pyftdi.spi, "SpiController", FakeController)
    board = get_board("icebreaker")
    bus = FtdiSpiBus.open(board, frequency=8_000_000)
    assert calls == [("controller", 2), ("configure", board.ftdi_url, {"frequency": 7.5e6}), ("port", 1, 7.5e6, 0)]
    assert port.sent == [b"\xb9"] and bus.frequency == 7.5e6
    assert bus.read(0) == R.ID_VALUE
    with pytest.raises(host.BusError, match=r"cannot use the FTDI link ftdi://ftdi:2232h/1: USB transfer failed; check"):
        bus.read(0)
    bus.close()
    assert calls[-1] == ("close",)
    with pytest.raises(ConfigError, match="above 9000000 Hz, the SPI bridge's limit on icebreaker"):
        FtdiSpiBus.open(board, frequency=10_000_000)


def test_ftdi_open_without_a_device_is_one_line():
    url = "ftdi://ftdi:2232h:NOSUCHSERIAL/1"
    with pytest.raises(host.BusError) as info:
        FtdiSpiBus.open(get_board("icebreaker"), url=url)
    assert url in str(info.value) and "\n" not in str(info.value)


# ---- UART: the frames and their acknowledges -------------------------------------------------


class UartDevice:
    """A pyserial-like port answering as the UART bridge on a register file (word address ->
    value) would: each write frame stores its words and queues ``ack``, a read frame queues its
    words (``ack`` None: no acknowledge). Records every ``write`` and every ``read``'s size; ``read`` hands out at most
    ``chunk`` bytes (pyftdi returns what has come) and nothing once the queue is empty (a
    timeout)."""

    def __init__(self, registers=None, ack=ACK, chunk=None):
        self.registers, self.ack, self.chunk = dict(registers or {}), ack, chunk
        self.sent: list[bytes] = []
        self.reads: list[int] = []
        self.queue = bytearray()
        self.closed = False

    def write(self, data):
        data = bytes(data)
        self.sent.append(data)
        cmd, addr, count = data[0], int.from_bytes(data[1:3], "big"), data[3] + 1
        at = [addr if cmd & 0x08 else addr + k for k in range(count)]
        if cmd & 1:
            assert len(data) == 4
            self.queue += b"".join(self.registers.get(a, 0).to_bytes(4, "big") for a in at)
        else:
            assert len(data) == 4 + 4 * count
            for k, a in enumerate(at):
                self.registers[a] = int.from_bytes(data[4 + 4 * k:8 + 4 * k], "big")
            if self.ack is not None:
                self.queue.append(self.ack)
        return len(data)

    def read(self, n=1):
        self.reads.append(n)
        out = bytes(self.queue[:min(n, self.chunk or n)])
        del self.queue[:len(out)]
        return out

    def reset_input_buffer(self):
        self.queue.clear()

    def close(self):
        self.closed = True


def test_uart_read_and_write_are_the_frame_bytes():
    port = UartDevice({0x07: 0x12345678})  # STATUS, word address 0x1C >> 2
    bus = UartBus(port)
    assert bus.read(REG["STATUS"].offset) == 0x12345678
    assert port.sent == [bytes.fromhex("03 0007 00")] and port.reads == [4]
    bus.write(REG["CTRL"].offset, 0xA1B2C3D4)
    assert len(port.sent) == 1  # the write waits in the buffer
    bus.sync()
    assert port.sent[1:] == [bytes.fromhex("02 0006 00 A1B2C3D4")] and port.reads[1:] == [1]  # its acknowledge
    assert port.registers[0x06] == 0xA1B2C3D4
    assert bus.bytes == 4 + 4 + 8 + 1 and bus.transactions == 2


def test_uart_bursts_and_lazy_acknowledges():
    port = UartDevice({0x00: R.ID_VALUE})
    bus = UartBus(port, max_burst_words=3)
    for k in range(4):  # the pixel buffer: a WRITE frame of 3 words, then one of 1
        bus.write(REG["PIXELS"].address(k), k + 1)
    bus.write(REG["CTRL"].offset, 1)
    for value in (7, 8):  # WEIGHT_DATA[0] again and again: WRITE_FIXED
        bus.write(REG["WEIGHT_DATA"].address(0), value)
    bus.write(REG["WEIGHT_DATA"].address(1), 9)
    bus.write(REG["WEIGHT_DATA"].address(0), 10)
    assert port.reads == []  # no frame waits for its acknowledge
    assert bus.read(REG["ID"].offset) == R.ID_VALUE
    assert port.sent == [bytes.fromhex("02 0400 02 00000001 00000002 00000003"), bytes.fromhex("02 0403 00 00000004"),
                         bytes.fromhex("02 0006 00 00000001"), bytes.fromhex("0A 0030 01 00000007 00000008"),
                         bytes.fromhex("02 0031 00 00000009"), bytes.fromhex("02 0030 00 0000000A"),
                         bytes.fromhex("03 0000 00")]
    assert port.reads == [6 + 4]  # the six acknowledges first, then the word
    assert port.registers[0x30] == 10 and port.registers[0x403] == 4


def test_uart_frames_carry_at_most_256_words_and_partial_reads_are_collected():
    port = UartDevice(chunk=1)  # one byte per read call
    bus = UartBus(port)
    for k in range(300):
        bus.write(REG["PIXELS"].address(k), k)
    assert bus.read(REG["PIXELS"].address(299)) == 299
    assert [(t[:4].hex(), len(t)) for t in port.sent] == [("020400ff", 4 + 4 * 256), ("0205002b", 4 + 4 * 44),
                                                          ("03052b00", 4)]
    assert port.reads == [6, 5, 4, 3, 2, 1]
    with pytest.raises(ValueError, match="at most 256 words"):
        UartBus(port, max_burst_words=257)


def test_a_bad_acknowledge_is_one_line_and_the_bus_then_refuses():
    port = UartDevice(ack=0x00)
    bus = UartBus(port)
    bus.write(REG["CTRL"].offset, 1)
    with pytest.raises(host.BusError) as info:
        bus.read(REG["ID"].offset)
    assert str(info.value) == ("the UART link: expected 1 write acknowledge(s) 0x5A before the read of word 0x0, "
                               "got 00: is the accelerator's bitstream loaded and the baud rate its own?")
    with pytest.raises(host.BusError, match=r"the UART link is out of step after an earlier error \(a bad write "
                                            r"acknowledge\); open it again"):
        bus.read(REG["ID"].offset)
    bus.write(REG["CTRL"].offset, 0)
    bus.close()  # sends nothing more
    assert port.closed and len(port.sent) == 2


def test_a_silent_port_times_out_in_one_line():
    class Silent(UartDevice):
        def read(self, n=1):
            self.reads.append(n)
            return b""

    bus = UartBus(Silent(), where="ftdi://ftdi:231x/1 at 2,000,000 baud")
    with pytest.raises(host.BusError) as info:
        bus.read(REG["STATUS"].offset)
    assert str(info.value) == (
        "ftdi://ftdi:231x/1 at 2,000,000 baud: no reply to the read of word 0x7: 0 of 4 bytes (0 write "
        "acknowledge(s), 4 data) came before the timeout; is the accelerator's bitstream loaded, the baud rate "
        "its own and the port the board's?")
    short = UartBus(UartDevice(ack=None))  # takes the write, never acknowledges it
    short.write(REG["CTRL"].offset, 1)
    with pytest.raises(host.BusError, match=r"no reply to the writes: 0 of 1 bytes \(1 write acknowledge\(s\), 0 data\)"):
        short.sync()
    short.close()


def test_close_collects_the_acknowledges():
    port = UartDevice()
    with UartBus(port) as bus:
        bus.write(REG["CTRL"].offset, 1)
        bus.write(REG["CTRL"].offset, 2)  # the same register again: one fixed frame
    assert port.sent == [bytes.fromhex("0A 0006 01 00000001 00000002")] and port.reads == [1] and port.closed
    with pytest.raises(host.BusError, match="the UART bus is closed"):
        bus.read(0)


def test_ftdi_uart_open_configures_the_boards_link(monkeypatch):
    import pyftdi.serialext
    import serial

    opened = []

    class Failing(UartDevice):
        def write(self, data):
            if len(self.sent) == 1:
                raise serial.SerialException("USB write failed")
            return super().write(data)

    def serial_for_url(url, **kwargs):
        opened.append((url, kwargs))
        port = Failing({0: R.ID_VALUE})
        port.queue += b"\\x00\\x11"  # stale bytes from an earlier session: dropped
        return port

    monkeypatch.setattr(pyftdi.serialext, "serial_for_url", serial_for_url)
    bus = FtdiUartBus.open(get_board("ulx3s"))
    assert opened == [("ftdi://ftdi:231x/1", {"baudrate": 2_000_000, "timeout": 1.0})]
    assert bus.baud == 2_000_000 and bus.url == "ftdi://ftdi:231x/1" and bus.max_burst_words == 256
    assert bus.read(0) == R.ID_VALUE
    with pytest.raises(host.BusError, match=r"^cannot use the FTDI link ftdi://ftdi:231x/1: USB write failed; check"):
        bus.read(0)
    bus.close()
    assert bus.port is None
    FtdiUartBus.open(get_board("ulx3s"), url="ftdi://ftdi:231x:FT1/1", baud=1_000_000).close()
    assert opened[-1] == ("ftdi://ftdi:231x:FT1/1", {"baudrate": 1_000_000, "timeout": 1.0})


def test_ftdi_uart_open_without_a_device_is_one_line():
    url = "ftdi://ftdi:231x:NOSUCHSERIAL/1"
    with pytest.raises(host.BusError) as info:
        FtdiUartBus.open(get_board("ulx3s"), url=url)
    assert url in str(info.value) and "\\n" not in str(info.value)


# ---- the simulated board ---------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def board_plan(model: str, board: str):
    """The plan ``snnfpga bitstream MODEL --board BOARD`` builds."""
    return target_plan(load_artifact(model), get_target(get_board(board).target))


def board_divisor(board: str) -> int:
    """clk cycles per UART bit in ``board``'s bitstream (its PLL clock over its baud rate)."""
    b = get_board(board)
    return divisor_for(board_clock_mhz(b, get_target(b.target), None) * 1e6, b.baud)


_harnesses: dict = {}


def board_harness(model: str, board: str):
    """The simulated board shell of ``board``'s link (SPI or UART) for ``model``."""
    require_verilator()
    if (model, board) not in _harnesses:
        link = {"shell": "uart", "divisor": board_divisor(board)} if get_board(board).link == "uart" else {"shell": "spi"}
        _harnesses[model, board] = fil.build(board_plan(model, board), **link)
    return _harnesses[model, board]


def board_bus(model: str, board: str, sck_half=2, wrap=lambda port: port):
    """The bus of ``board``'s link over its simulated board (``wrap``: around its port)."""
    binary = board_harness(model, board).binary
    if get_board(board).link == "uart":
        return UartBus(wrap(SimUartPort(binary, board_divisor(board))))
    return SpiBus(wrap(SimSpiPort(binary, sck_half)), get_board(board).prelude)


def check_run(bus, plan, images):
    """Every image on ``bus`` as firmware in the loop checks it (the irq pin included)."""
    outcome = fil.run_host(host.Accelerator(bus, plan), images)
    comparison = fil.compare(plan.artifact, images, outcome)
    assert not comparison.mismatches, str(comparison.mismatches[0])
    assert len(outcome.images) == len(images) and all(r["irq"] == 1 for r in outcome.images)
    return outcome


def check_images(model, board, n, sck_half=2, wrap=lambda port: port):
    """The host driver over ``board``'s simulated link: the first ``n`` validation images."""
    plan = board_plan(model, board)
    with board_bus(model, board, sck_half, wrap) as bus:
        return bus, plan, check_run(bus, plan, validation_images(n))


class Tap:
    """Wraps a port; keeps every transaction's bytes out."""

    def __init__(self, port):
        self.port, self.sent = port, []

    def exchange(self, out=b"", readlen=0, duplex=False):
        self.sent.append(bytes(out))
        return self.port.exchange(out, readlen, duplex)

    def __getattr__(self, name):
        return getattr(self.port, name)


def test_raw_transactions_on_the_simulated_board():
    port = SimSpiPort(board_harness("tiny", "icebreaker").binary)
    try:
        assert port.exchange(b"\xb9", duplex=True) == b"\x00"  # the flash's power-down: ignored
        assert port.exchange(bytes.fromhex("03 0000 00 00000000"), duplex=True) == bytes(4) + ID_BYTES
        assert port.exchange(bytes.fromhex("03 0000 00"), readlen=4) == ID_BYTES  # half duplex, as pyftdi's
        before = port.cycles()
        port.exchange(bytes(2), duplex=True)
        assert port.cycles() - before == 2 + 16 * 4 + 2 + 4  # CS set-up, 16 bits at clk / 4, hold, gap
        with pytest.raises(host.BusError, match="bad transaction bytes"):
            port._serve._ask("x 0")
        with pytest.raises(host.BusError, match="at least 2 clk cycles"):
            port._serve._ask("k 1 4")
        port.tick(10)
        assert port.cycles() - before == 72 + 10
    finally:
        port.close()
    slow = SimSpiPort(board_harness("tiny", "icebreaker").binary, sck_half=3, cs_gap=5)  # SCK = clk / 6
    try:
        before = slow.cycles()
        assert slow.exchange(bytes.fromhex("03 0000 00 00000000"), duplex=True) == bytes(4) + ID_BYTES
        assert slow.cycles() - before == 3 + 64 * 6 + 3 + 5
    finally:
        slow.close()


def test_tiny_on_icebreaker_loads_weights_over_spi_and_matches():
    taps = []
    n = 64
    bus, plan, outcome = check_images("tiny", "icebreaker", n, wrap=lambda port: taps.append(Tap(port)) or taps[0])
    sent = taps[0].sent
    assert plan.weight_storage == "ram" and sent[0] == b"\xb9"  # the prelude first
    words = sum(len(w) for w in fil.codegen.weight_image(plan).memories)
    weight_data = bytes.fromhex("0A") + (REG["WEIGHT_DATA"].offset >> 2).to_bytes(2, "big")
    streamed = [t for t in sent if t.startswith(weight_data)]  # WEIGHT_DATA[0], fixed address
    assert sum(len(t) - 3 for t in streamed) == 4 * words and max(len(t) for t in streamed) == 3 + 4 * 1024
    pixels = bytes.fromhex("02") + (REG["PIXELS"].offset >> 2).to_bytes(2, "big")
    assert [len(t) for t in sent if t.startswith(pixels)] == [3 + 784] * n  # one burst per image
    assert {t[0] for t in sent[1:]} == {0x02, 0x03, 0x0A}
    assert bus.bytes == sum(len(t) for t in sent) and bus.transactions == len(sent)


def test_a_second_session_on_the_same_board_needs_no_reset():
    """What a second ``snnfpga infer`` on a running board does: init's soft reset restarts the
    IMAGES counter, the weights are loaded again, and every image matches."""
    plan = board_plan("tiny", "icebreaker")
    images = validation_images(3)
    with SpiBus(SimSpiPort(board_harness("tiny", "icebreaker").binary)) as bus:
        for _ in range(2):
            outcome = fil.run_host(host.Accelerator(bus, plan), images)
            assert not fil.compare(plan.artifact, images, outcome).mismatches


@pytest.mark.slow
@pytest.mark.parametrize("model, board", [("tiny", "icebreaker"), ("default", "ulx3s")])
def test_full_validation_split(model, board):
    """The whole validation split over each board's link (SPI; UART: some 15 minutes)."""
    check_images(model, board, 1000)


# ---- the simulated UART board ----------------------------------------------------------------


class UartTap:
    """Wraps a UART port; keeps every ``write``'s bytes and what each ``read`` returned."""

    def __init__(self, port):
        self.port, self.sent, self.got = port, [], []

    def write(self, data):
        self.sent.append(bytes(data))
        return self.port.write(data)

    def read(self, n=1):
        self.got.append(self.port.read(n))
        return self.got[-1]

    def __getattr__(self, name):
        return getattr(self.port, name)


def test_ulx3s_bitstream_runs_the_uart_at_50_cycles_per_bit():
    assert board_divisor("ulx3s") == 50  # 100 MHz / 2 Mbaud


def test_raw_frames_on_the_simulated_uart_board():
    plan = board_plan("default", "ulx3s")
    port = SimUartPort(board_harness("default", "ulx3s").binary, 50)
    try:
        before = port.cycles()
        assert port.write(b"\x42") == 1  # not a command: ignored
        assert port.cycles() - before == 10 * 50  # start, 8 data bits, stop
        before = port.cycles()
        assert port.read(1) == b""  # nothing comes: the timeout, in bit times
        assert port.cycles() - before == 50 * (10 + TIMEOUT_BITS)
        port.write(encode_frame(0x03, REG["ID"].offset >> 2, 1))
        assert port.read(4) == ID_BYTES
        consts = R.build_constants(plan)
        names = ("ID", "VERSION", "MODEL_HASH", "SHAPE", "GEOMETRY", "WIDTHS")
        port.write(encode_frame(0x03, 0, len(names)))  # a read burst
        assert port.read(4 * len(names)) == b"".join(consts[n].to_bytes(4, "big") for n in names)
        port.write(encode_frame(0x02, REG["CTRL"].offset >> 2, 1, [0]))
        assert port.read(2) == bytes([ACK])  # one acknowledge; then the timeout
        assert port.framing_errors() == 0
        for command, message in (("w 0", "bad bytes to send"), ("r 4", r"bad read \(r N LIMIT\)"),
                                 ("k 3", "at least 4 clk cycles"), ("x 00", "bad command")):
            with pytest.raises(host.BusError, match=message):
                port._serve._ask(command)
    finally:
        port.close()


@pytest.mark.parametrize("divisor, answers", [(45, False), (48, True), (52, True), (55, False)])
def test_the_uart_baud_rate_must_be_the_bitstreams(divisor, answers):
    """The host at another rate than the shell's 50 cycles per bit: 4 % off still works (the
    receivers sample mid-bit), 10 % off is a timeout in one line."""
    with UartBus(SimUartPort(board_harness("default", "ulx3s").binary, divisor)) as bus:
        if answers:
            assert bus.read(REG["ID"].offset) == R.ID_VALUE
        else:
            with pytest.raises(host.BusError, match=r"^the UART link: no reply to the read of word 0x0: 0 of 4 bytes"):
                bus.read(REG["ID"].offset)


def test_default_on_ulx3s_over_uart_matches():
    n = 4
    plan = board_plan("default", "ulx3s")
    with board_bus("default", "ulx3s", wrap=UartTap) as bus:
        outcome = check_run(bus, plan, validation_images(n))
        tap = bus.port
        assert tap.port.framing_errors() == 0
    assert plan.weight_storage == "rom" and "weights" not in outcome.events
    pixels = encode_frame(0x02, REG["PIXELS"].offset >> 2, 196)  # 784 pixels, 4 per word
    assert [len(t) for t in tap.sent if t.startswith(pixels)] == [4 + 784] * n  # one frame per image
    assert {t[0] for t in tap.sent} == {0x02, 0x03} and all(len(t) == 4 for t in tap.sent if t[0] == 0x03)
    assert bus.bytes == sum(map(len, tap.sent)) + sum(map(len, tap.got)) and bus.transactions == len(tap.sent)


def test_weights_load_over_uart_in_frames_of_256_words():
    """A random model whose plan keeps its weights in RAM, on the UART shell at the ULX3S's
    rate: WEIGHT_DATA[0] streamed in WRITE_FIXED frames of at most 256 words."""
    require_verilator()
    art = random_artifact(7, input_shape=(8, 8), hidden=(24,), n_classes=4, threshold_scale=0.2)
    plan = make_plan(art, lanes=4, pixels_per_beat=1, weight_storage="ram")
    words = [len(m) for m in fil.codegen.weight_image(plan).memories]
    assert words == [512, 24] and fil.codegen.weight_image(plan).chunks == 1
    tap = UartTap(SimUartPort.for_plan(plan, board_divisor("ulx3s")))
    with UartBus(tap) as bus:
        outcome = check_run(bus, plan, random_images(art, 3, seed=2))
    weight_data = bytes([0x0A]) + (REG["WEIGHT_DATA"].offset >> 2).to_bytes(2, "big")
    assert [t[3] + 1 for t in tap.sent if t.startswith(weight_data)] == [256, 256, 24]
    assert outcome.events["weights"]["bytes"] > 4 * sum(words)


# ---- corrupted MISO: caught, never silent ----------------------------------------------------


class FlipPort:
    """Wraps a port; flips bit 0 of the last MISO byte of every read of word address ``addr``."""

    def __init__(self, port, addr):
        self.port, self.addr, self.flips = port, addr, 0

    def exchange(self, out=b"", readlen=0, duplex=False):
        reply = bytearray(self.port.exchange(out, readlen, duplex))
        if out[0] == 0x03 and int.from_bytes(out[1:3], "big") == self.addr:
            reply[-1] ^= 1
            self.flips += 1
        return bytes(reply)

    def __getattr__(self, name):
        return getattr(self.port, name)


def test_a_flipped_miso_bit_in_the_identity_is_reported():
    plan = board_plan("tiny", "icebreaker")
    with SpiBus(FlipPort(SimSpiPort(board_harness("tiny", "icebreaker").binary), REG["ID"].offset >> 2)) as bus:
        with pytest.raises(host.IdentityMismatch, match=f"ID is 0x{R.ID_VALUE ^ 1:08X}, expected 0x{R.ID_VALUE:08X}"):
            host.Accelerator(bus, plan).init()


def test_a_flipped_miso_bit_in_a_score_is_a_mismatch(tmp_path, capsys, monkeypatch):
    board_harness("tiny", "icebreaker")
    real = SimSpiPort.exchange
    score0 = REG["SCORE"].offset >> 2

    def flipping(self, out=b"", readlen=0, duplex=False):
        reply = bytearray(real(self, out, readlen, duplex))
        if out[0] == 0x03 and int.from_bytes(out[1:3], "big") == score0:
            reply[-1] ^= 1
        return bytes(reply)

    monkeypatch.setattr(SimSpiPort, "exchange", flipping)
    assert cli.main(["infer", "tiny", "--board", "icebreaker", "--link", "sim", "--images", "2"]) == 1
    out = capsys.readouterr().out
    assert "2 image(s) differ from the reference" in out
    assert "first mismatch: image 0, scores: expected [" in out


# ---- snnfpga infer ---------------------------------------------------------------------------


def test_cli_infer_over_the_simulated_board(capsys):
    board_harness("tiny", "icebreaker")
    assert cli.main(["infer", "tiny", "--board", "icebreaker", "--link", "sim", "--images", "5", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert {k: summary[k] for k in ("model", "board", "target", "link", "url", "n", "matches", "mismatches",
                                    "weight_storage", "spi_hz", "interrupt_checked", "first_mismatch")} == {
        "model": "tiny", "board": "icebreaker", "target": "ice40-up5k", "link": "sim", "url": None, "n": 5,
        "matches": 5, "mismatches": 0, "weight_storage": "ram", "spi_hz": 6_000_000, "interrupt_checked": True,
        "first_mismatch": None}
    assert summary["accuracy_board"] == summary["accuracy_ref"]
    assert summary["images_per_s"] > 0 and summary["bytes_per_image"] > 784
    assert summary["weight_load_bytes"] > 4 * 12_000 and summary["transactions"] > 5
    assert summary["bytes"] > summary["weight_load_bytes"] + 5 * 784
    assert summary["link_cycles_per_image"] > 0 and summary["board_images_per_s"] > 0
    assert "tiny on icebreaker over sim" in lines[0] and "all match the reference" in lines[0]


def test_cli_infer_over_ftdi_with_the_simulated_board_behind_pyftdi(capsys, monkeypatch):
    """The ``--link ftdi`` path end to end: pyftdi's SpiController replaced by one whose port
    is the simulated board (exchange only, as pyftdi's: no irq pin, no cycle counter)."""
    import pyftdi.spi

    binary = board_harness("tiny", "icebreaker").binary
    seen = {}

    class Controller:
        def __init__(self, cs_count=1):
            self.ftdi = type("F", (), {"is_H_series": True})()

        def configure(self, url, **kwargs):
            seen["url"] = url

        def get_port(self, cs, freq=None, mode=0):
            self.sim = SimSpiPort(binary)
            seen["cs"], seen["freq"] = cs, freq
            return type("Port", (), {"exchange": lambda _, out, readlen=0, duplex=False:
                                     self.sim.exchange(out, readlen, duplex)})()

        def close(self):
            self.sim.close()

    monkeypatch.setattr(pyftdi.spi, "SpiController", Controller)
    assert cli.main(["infer", "tiny", "--board", "icebreaker", "--images", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert seen == {"url": "ftdi://ftdi:2232h/1", "cs": 1, "freq": 6e6}
    assert summary["link"] == "ftdi" and summary["url"] == "ftdi://ftdi:2232h/1" and summary["spi_hz"] == 6_000_000
    assert summary["matches"] == 3 and summary["mismatches"] == 0
    assert summary["interrupt_checked"] is False  # the pin is an LED on the board
    assert summary["simulated_cycles"] is None and summary["board_images_per_s"] is None


@pytest.mark.parametrize("model, board, url", [("tiny", "icebreaker", "ftdi://ftdi:2232h:NOSUCHSERIAL/1"),
                                               ("default", "ulx3s", "ftdi://ftdi:231x:NOSUCHSERIAL/1")])
def test_cli_infer_without_a_device_is_one_line(model, board, url, capsys):
    """SPI (icebreaker) and UART (ulx3s) alike."""
    assert cli.main(["infer", model, "--board", board, "--link", "ftdi", "--url", url, "--images", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: cannot ") and url in err[-1]
    assert not any("Traceback" in line for line in err)


@pytest.mark.parametrize("args, message", [
    (["--board", "nosuch"], "unknown board 'nosuch'; choose one of icebreaker, ulx3s"),
    (["--board", "icebreaker", "--data", "/nonexistent.npz"], "data file not found: /nonexistent.npz"),
    (["--board", "icebreaker", "--spi-hz", "12000000"], "above 9000000 Hz, the SPI bridge's limit on icebreaker"),
])
def test_cli_infer_bad_inputs(args, message, capsys):
    assert cli.main(["infer", "tiny", *args, "--link", "ftdi"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]


# ---- snnfpga infer on a UART board -----------------------------------------------------------

SUMMARY_KEYS = {"model", "board", "target", "link", "url", "spi_hz", "clock_mhz", "plan", "lanes", "weight_storage",
                "n", "matches", "mismatches", "accuracy_unit", "accuracy_board", "accuracy_ref", "interrupt_checked",
                "run_s", "images_per_s", "bytes", "bytes_per_image", "transactions", "weight_load_bytes",
                "weight_load_s", "simulated_cycles", "link_cycles_per_image", "board_images_per_s",
                "harness_build_s", "harness_cached", "first_mismatch"}  # docs/host-link.md


def test_cli_infer_over_the_simulated_uart_board(capsys):
    board_harness("default", "ulx3s")
    assert cli.main(["infer", "default", "--board", "ulx3s", "--link", "sim", "--images", "3", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert set(summary) == SUMMARY_KEYS
    assert {k: summary[k] for k in ("model", "board", "target", "link", "url", "n", "matches", "mismatches",
                                    "weight_storage", "spi_hz", "interrupt_checked", "weight_load_bytes",
                                    "first_mismatch", "clock_mhz")} == {
        "model": "default", "board": "ulx3s", "target": "ecp5-85k", "link": "sim", "url": None, "n": 3,
        "matches": 3, "mismatches": 0, "weight_storage": "rom", "spi_hz": None, "interrupt_checked": True,
        "weight_load_bytes": None, "first_mismatch": None, "clock_mhz": 100.0}
    assert summary["accuracy_board"] == summary["accuracy_ref"]
    assert summary["bytes_per_image"] > 4 + 784 and summary["transactions"] > 3 * 10
    assert summary["link_cycles_per_image"] > 50 * 10 * 788 and summary["board_images_per_s"] > 0
    assert lines[0] == "default on ulx3s over sim (the simulated board, UART 2 Mbaud), 3 images: all match the reference"
    assert any(line.startswith("  link ") and " frames (" in line for line in lines)


def test_cli_infer_over_ftdi_uart_with_the_simulated_board_behind_pyftdi(capsys, monkeypatch):
    """``--link ftdi`` on the ULX3S end to end: pyftdi's serial_for_url replaced by a port onto
    the simulated board (write, read, reset_input_buffer, close, as pyftdi's: no irq pin, no
    cycle counter)."""
    import pyftdi.serialext

    binary = board_harness("default", "ulx3s").binary
    seen = {}

    class Serial:
        def __init__(self):
            self.sim = SimUartPort(binary, 50)

        def write(self, data):
            return self.sim.write(data)

        def read(self, n=1):
            return self.sim.read(n)

        def reset_input_buffer(self):
            seen["reset"] = self.sim.read(1) == b""  # nothing stale on a fresh board

        def close(self):
            self.sim.close()

    def serial_for_url(url, **kwargs):
        seen.update(url=url, **kwargs)
        return Serial()

    monkeypatch.setattr(pyftdi.serialext, "serial_for_url", serial_for_url)
    assert cli.main(["infer", "default", "--board", "ulx3s", "--images", "2", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert seen == {"url": "ftdi://ftdi:231x/1", "baudrate": 2_000_000, "timeout": 1.0, "reset": True}
    assert summary["link"] == "ftdi" and summary["url"] == "ftdi://ftdi:231x/1" and summary["spi_hz"] is None
    assert summary["matches"] == 2 and summary["mismatches"] == 0
    assert summary["interrupt_checked"] is False and summary["simulated_cycles"] is None
    assert "(ftdi://ftdi:231x/1, UART 2 Mbaud)" in out[0]


def test_cli_infer_refuses_the_spi_clock_on_a_uart_board(capsys):
    assert cli.main(["infer", "tiny", "--board", "ulx3s", "--spi-hz", "1000000", "--link", "sim"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --spi-hz is for SPI boards; the host link of ulx3s is a UART at 2,000,000 baud "
                   "(the bitstream's rate)"]
