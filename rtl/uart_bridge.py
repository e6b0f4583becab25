"""UART to Wishbone master bridge: the host link of boards whose USB chip is a plain UART
(the ULX3S's FT231X has no MPSSE engine for SPI).

Line: 8 data bits, LSB first, no parity, one stop bit (8N1), ``divisor`` clock cycles per
bit (a constant: the accelerator clock over the baud rate, rounded; the rounding error must
stay below 2 %, which :func:`divisor_for` checks). Frames, big-endian fields, the same
command bytes as the SPI bridge (:mod:`snnfpga.rtl.spi_bridge`)::

    host -> device:  CMD(8) ADDR(16) COUNT(8) [DATA0(32) ... DATA<COUNT>(32) for a write]
    device -> host:  DATA0(32) ... DATA<COUNT>(32) for a read; ACK (0x5A) after a write

``COUNT`` is the number of words minus one (1..256 words per frame), ``ADDR`` a word address
(register byte offset >> 2); ``0x02``/``0x03`` step the address, ``0x0A``/``0x0B`` keep it
(streaming into one register, polling one). The ACK is sent when the frame's last write has
been acknowledged on the bus, so a host that has read it knows every write is done. A byte
that is not a command is ignored; a frame whose next byte does not come within
:data:`TIMEOUT_BITS` bit times is dropped (the host resynchronises by waiting that long), as
is a byte with a bad stop bit.

Timing: one bus access per received word or sent word, each at least 40 bit times apart,
so the register block's one-or-two-cycle ack is never the bottleneck; the line is. At
3 Mbaud one 32-bit write costs 80 bits (27 us) of frame, a burst of ``n`` words
``40 + 40 n`` bits. ``rx`` is synchronised by two flip-flops; ``tx`` is a register.

Cost: about 150 flip-flops and 200 LUTs.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from snnfpga.errors import ConfigError
from snnfpga.rtl.spi_bridge import CMD_FIXED_BIT, CMD_READ_BIT, CMD_WRITE
from snnfpga.rtl.wishbone import DATA_BITS, wishbone_signature

ACK = 0x5A
TIMEOUT_BITS = 1024  # a frame stalled this many bit times is dropped
MIN_DIVISOR = 4
MAX_WORDS = 256


def divisor_for(clock_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clock_hz``; :class:`ConfigError` when the rate
    is off by 2 % or more (UART receivers tolerate about half a bit over a frame of ten)."""
    divisor = round(clock_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ConfigError(f"{baud:,} baud needs a clock of at least {MIN_DIVISOR * baud / 1e6:g} MHz "
                          f"(got {clock_hz / 1e6:g} MHz)")
    error = abs(clock_hz / divisor - baud) / baud
    if error >= 0.02:
        raise ConfigError(f"{baud:,} baud at {clock_hz / 1e6:g} MHz is off by {100 * error:.1f} % "
                          f"({divisor} cycles per bit); choose a clock that is a multiple of the baud rate")
    return divisor


def uart_signature() -> wiring.Signature:
    """Device-side UART pins: ``rx`` in (idles high), ``tx`` out."""
    return wiring.Signature({"rx": In(1, init=1), "tx": Out(1, init=1)})


class UartWishboneBridge(wiring.Component):
    """UART (8N1, ``divisor`` cycles per bit) to Wishbone B4 classic master (see module doc).

    Members
    -------
    uart : ``In(uart_signature())``
    bus : ``Out(wishbone_signature(addr_bits))``
        32-bit Wishbone master, word addresses; one access at a time, held until ``ack``.
    """

    def __init__(self, addr_bits: int, divisor: int):
        if not 1 <= addr_bits <= 16:
            raise ValueError(f"addr_bits must be in 1..16, got {addr_bits}")
        if divisor < MIN_DIVISOR:
            raise ValueError(f"divisor must be at least {MIN_DIVISOR}, got {divisor}")
        self.addr_bits, self.divisor = addr_bits, divisor
        super().__init__({"uart": In(uart_signature()), "bus": Out(wishbone_signature(addr_bits))})

    def _receiver(self, m):
        """``(valid, byte)``: ``valid`` pulses for one cycle with each byte whose stop bit is high."""
        d = self.divisor
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.uart.rx, rx, init=1)
        timer = Signal(range(d))
        bit = Signal(range(8))
        shift = Signal(8)
        valid = Signal()
        m.d.sync += valid.eq(0)
        with m.FSM(name="rx"):
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(d // 2 - 1)  # to the middle of the start bit
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), bit.eq(0)]
                    m.next = "DATA"
                    with m.If(rx):  # a glitch, not a start bit
                        m.next = "IDLE"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), timer.eq(d - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += valid.eq(rx)  # a low stop bit: a framing error, the byte is dropped
                    m.next = "IDLE"
        return valid, shift

    def _transmitter(self, m):
        """``(start, byte, busy)``: ``start`` (with ``byte``) sends one frame while ``busy`` is low."""
        d = self.divisor
        start, byte, busy = Signal(), Signal(8), Signal()
        timer = Signal(range(d))
        left = Signal(range(11))
        frame = Signal(10, init=0x3FF)
        m.d.comb += [busy.eq(left != 0), self.uart.tx.eq(frame[0])]
        with m.If(busy):
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [frame.eq(Cat(frame[1:], Const(1, 1))), timer.eq(d - 1), left.eq(left - 1)]
        with m.Elif(start):
            m.d.sync += [frame.eq(Cat(Const(0, 1), byte, Const(1, 1))), timer.eq(d - 1), left.eq(10)]
        return start, byte, busy

    def elaborate(self, platform):
        m = Module()
        rx_valid, rx_byte = self._receiver(m)
        tx_start, tx_byte, tx_busy = self._transmitter(m)

        bus = self.bus
        m.d.comb += bus.sel.eq(Const((1 << (DATA_BITS // 8)) - 1))
        rdata = Signal(DATA_BITS)
        with m.If(bus.cyc & bus.ack):
            m.d.sync += [bus.cyc.eq(0), bus.stb.eq(0)]
            with m.If(~bus.we):
                m.d.sync += rdata.eq(bus.dat_r)

        def access(we, data=None):
            m.d.sync += [bus.cyc.eq(1), bus.stb.eq(1), bus.we.eq(we), bus.adr.eq(addr)]
            if data is not None:
                m.d.sync += bus.dat_w.eq(data)

        is_read, fixed = Signal(), Signal()
        addr = Signal(16)
        words = Signal(range(MAX_WORDS + 1))  # words left in the frame
        word = Signal(DATA_BITS)
        index = Signal(2)  # byte of the current word
        quiet = Signal(range(TIMEOUT_BITS * self.divisor + 1))  # cycles since the last byte
        next_addr = Mux(fixed, addr, addr + 1)
        byte_in_word = Cat(rx_byte, word[:DATA_BITS - 8])
        idle_bus = ~bus.cyc

        timed_out = Signal()  # the host stopped inside a frame
        with m.FSM(name="frame") as fsm:
            with m.State("CMD"):
                with m.If(rx_valid):
                    cmd = rx_byte
                    valid = (cmd & ~((1 << CMD_READ_BIT) | (1 << CMD_FIXED_BIT)) & 0xFF) == CMD_WRITE
                    m.d.sync += [is_read.eq(cmd[CMD_READ_BIT]), fixed.eq(cmd[CMD_FIXED_BIT])]
                    with m.If(valid):
                        m.next = "ADDR_HI"
            for state, field, then in (("ADDR_HI", addr[8:], "ADDR_LO"), ("ADDR_LO", addr[:8], "COUNT")):
                with m.State(state):
                    with m.If(timed_out):
                        m.next = "CMD"
                    with m.Elif(rx_valid):
                        m.d.sync += field.eq(rx_byte)
                        m.next = then
            with m.State("COUNT"):
                with m.If(timed_out):
                    m.next = "CMD"
                with m.Elif(rx_valid):
                    m.d.sync += [words.eq(rx_byte + 1), index.eq(0)]
                    m.next = "DATA"
                    with m.If(is_read):
                        m.next = "FETCH"
            # Write: four bytes make a word, written at once; ACK after the last is acknowledged.
            with m.State("DATA"):
                with m.If(timed_out):
                    m.next = "CMD"
                with m.Elif(rx_valid):
                    m.d.sync += [word.eq(byte_in_word), index.eq(index + 1)]
                    with m.If(index == 3):
                        access(1, byte_in_word)
                        m.d.sync += [addr.eq(next_addr), words.eq(words - 1)]
                        with m.If(words == 1):
                            m.next = "ACK"
            with m.State("ACK"):
                with m.If(idle_bus & ~tx_busy):
                    m.d.comb += [tx_start.eq(1), tx_byte.eq(ACK)]
                    m.next = "CMD"
            # Read: fetch a word, send its four bytes MSB first, next address.
            with m.State("FETCH"):
                with m.If(idle_bus):
                    access(0)
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(idle_bus):
                    m.d.sync += [word.eq(rdata), index.eq(0)]
                    m.next = "SEND"
            with m.State("SEND"):
                with m.If(~tx_busy):
                    m.d.comb += [tx_start.eq(1), tx_byte.eq(word[DATA_BITS - 8:])]
                    m.d.sync += [word.eq(word << 8), index.eq(index + 1)]
                    with m.If(index == 3):
                        m.d.sync += [addr.eq(next_addr), words.eq(words - 1)]
                        m.next = "NEXT"
            with m.State("NEXT"):
                with m.If(~tx_busy):
                    m.next = "FETCH"
                    with m.If(words == 0):
                        m.next = "CMD"
        host_phase = fsm.ongoing("ADDR_HI") | fsm.ongoing("ADDR_LO") | fsm.ongoing("COUNT") | fsm.ongoing("DATA")
        with m.If(rx_valid | ~host_phase):
            m.d.sync += quiet.eq(0)
        with m.Else():
            m.d.sync += quiet.eq(quiet + 1)
        m.d.comb += timed_out.eq(host_phase & (quiet == TIMEOUT_BITS * self.divisor))
        return m


def encode_frame(cmd: int, addr: int, n_words: int, words: list[int] | None = None) -> bytes:
    """The bytes a host sends for one frame (``words`` for a write)."""
    if not 1 <= n_words <= MAX_WORDS:
        raise ValueError(f"a frame carries 1..{MAX_WORDS} words, got {n_words}")
    head = bytes([cmd]) + (addr & 0xFFFF).to_bytes(2, "big") + bytes([n_words - 1])
    return head + b"".join((w & 0xFFFFFFFF).to_bytes(4, "big") for w in (words or []))
