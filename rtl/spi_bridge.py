"""SPI slave to Wishbone master bridge: how a host microcontroller drives the accelerator.

Protocol (SPI mode 0: SCK idles low, both sides sample on the rising edge; MSB first)
-------------------------------------------------------------------------------------
One transaction per ``CS_N`` low period::

    write:  CMD(8) ADDR(16) DATA0(32) DATA1(32) ...       host -> device on MOSI
    read:   CMD(8) ADDR(16) DUMMY(8)  DATA0(32) DATA1(32)  device -> host on MISO
                                                          during the DATA words

``ADDR`` is a 32-bit *word* address on the Wishbone bus (register byte offset >> 2). The
command byte:

=========  =========================================================================
``0x02``   WRITE: each DATA word is written at ADDR, ADDR + 1, ...
``0x03``   READ: each DATA word is read from ADDR, ADDR + 1, ...
``0x0A``   WRITE_FIXED: every DATA word is written at ADDR (streams into WEIGHT_DATA[0])
``0x0B``   READ_FIXED: every DATA word is read from ADDR (polling STATUS)
=========  =========================================================================

Any other command byte makes the bridge ignore the rest of the transaction (MISO stays 0).
A word whose 32 bits are not all clocked in before ``CS_N`` rises is dropped. Address bits
above the bus width are ignored (the address wraps).

Timing
------
``SCK``, ``CS_N`` and ``MOSI`` are synchronised to ``clk`` by two flip-flops each; ``SCK``
must be at most ``clk / 4`` (high and low phases of at least two ``clk`` cycles). The bridge
drives the next ``MISO`` bit at most three ``clk`` cycles after each rising ``SCK`` edge
(which mode 0 allows: the host samples at the following rising edge), so reads need no
slower clock. ``CS_N`` must stay high for at least three ``clk`` cycles between
transactions.

A read is issued on the bus right after the last address bit, during the dummy byte; the
next word of a read burst is fetched while the current one is shifted out (prefetch: the
register map has no read side effects, so reading one word beyond the burst is harmless).
A write is issued after the word's last bit. Every bus access must be acknowledged within
eight ``SCK`` periods (the accelerator's register block answers in one or two ``clk``
cycles). Bus requests are registered before they start, and the end of each field is
decoded a cycle ahead, so the bridge adds no long path to the clock.

Cost: about 120 flip-flops and 150 LUTs.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from snnfpga.rtl.wishbone import DATA_BITS, wishbone_signature

CMD_WRITE = 0x02
CMD_READ = 0x03
CMD_WRITE_FIXED = 0x0A
CMD_READ_FIXED = 0x0B
CMD_BITS = 8
ADDR_BITS = 16
DUMMY_BITS = 8
COMMANDS = {CMD_WRITE: "write", CMD_READ: "read", CMD_WRITE_FIXED: "write, fixed address",
            CMD_READ_FIXED: "read, fixed address"}
# Bit 0 of a valid command: read; bit 3: fixed address. Valid commands: (cmd & ~0x09) == 0x02.
CMD_READ_BIT = 0
CMD_FIXED_BIT = 3

_CMD, _ADDR, _DUMMY, _DATA, _IGNORE = range(5)


def spi_signature() -> wiring.Signature:
    """Device-side SPI pins: ``sck``, ``cs_n``, ``mosi`` in, ``miso`` out."""
    return wiring.Signature({"sck": In(1), "cs_n": In(1, init=1), "mosi": In(1), "miso": Out(1)})


class SpiWishboneBridge(wiring.Component):
    """SPI slave (mode 0) to Wishbone B4 classic master (see the module docstring).

    Members
    -------
    spi : ``In(spi_signature())``
        Asynchronous pins; synchronised inside.
    bus : ``Out(wishbone_signature(addr_bits))``
        32-bit Wishbone master, word addresses; one access at a time, held until ``ack``.
    """

    def __init__(self, addr_bits: int):
        if not 1 <= addr_bits <= ADDR_BITS:
            raise ValueError(f"addr_bits must be in 1..{ADDR_BITS}, got {addr_bits}")
        self.addr_bits = addr_bits
        super().__init__({"spi": In(spi_signature()), "bus": Out(wishbone_signature(addr_bits))})

    def elaborate(self, platform):
        m = Module()
        sck, cs_n, mosi = Signal(), Signal(init=1), Signal()
        m.submodules.sync_sck = FFSynchronizer(self.spi.sck, sck)
        m.submodules.sync_cs = FFSynchronizer(self.spi.cs_n, cs_n, init=1)
        m.submodules.sync_mosi = FFSynchronizer(self.spi.mosi, mosi)
        sck_prev = Signal()
        m.d.sync += sck_prev.eq(sck)
        rise = Signal()
        m.d.comb += rise.eq(sck & ~sck_prev & ~cs_n)

        phase = Signal(range(5), init=_CMD)
        count = Signal(5)  # bits of the current field received so far
        # ``count`` is at the field's last bit. Registered: rising edges are at least four
        # cycles apart (SCK <= clk / 4), so it is up to date at every edge.
        last = Signal()
        lengths = {_CMD: CMD_BITS, _ADDR: ADDR_BITS, _DUMMY: DUMMY_BITS}
        with m.Switch(phase):
            for ph, bits in lengths.items():
                with m.Case(ph):
                    m.d.sync += last.eq(count == bits - 1)
            with m.Default():
                m.d.sync += last.eq(count == DATA_BITS - 1)
        shift_in = Signal(DATA_BITS)
        shift_out = Signal(DATA_BITS)
        word = Signal(DATA_BITS)  # the field including the bit of this edge
        m.d.comb += [word.eq(Cat(mosi, shift_in[:-1])), self.spi.miso.eq(shift_out[-1])]
        is_read = Signal()
        fixed = Signal()
        addr = Signal(self.addr_bits)
        next_addr = Mux(fixed, addr, addr + 1)

        # Bus requests are registered, then started: one access at a time, held until ack.
        bus = self.bus
        rdata = Signal(DATA_BITS)
        req = Signal()
        req_we = Signal()
        req_addr = Signal(self.addr_bits)
        req_data = Signal(DATA_BITS)
        m.d.comb += bus.sel.eq(Const((1 << (DATA_BITS // 8)) - 1))
        m.d.sync += req.eq(0)
        with m.If(bus.cyc & bus.ack):
            m.d.sync += [bus.cyc.eq(0), bus.stb.eq(0)]
            with m.If(~bus.we):
                m.d.sync += rdata.eq(bus.dat_r)
        with m.If(req):
            m.d.sync += [bus.cyc.eq(1), bus.stb.eq(1), bus.we.eq(req_we), bus.adr.eq(req_addr),
                         bus.dat_w.eq(req_data)]

        def request(we, address):
            m.d.sync += [req.eq(1), req_we.eq(we), req_addr.eq(address)]

        with m.If(cs_n):
            m.d.sync += [phase.eq(_CMD), count.eq(0), shift_out.eq(0)]
        with m.Elif(rise):
            m.d.sync += [shift_in.eq(word), count.eq(Mux(last, 0, count + 1))]
            with m.If(is_read & (phase == _DATA) & ~last):
                m.d.sync += shift_out.eq(shift_out << 1)
            loading = Signal()  # a read word enters the output shifter on this edge
            with m.If(last):
                with m.Switch(phase):
                    with m.Case(_CMD):
                        cmd = word[:CMD_BITS]
                        valid = (cmd & ~((1 << CMD_READ_BIT) | (1 << CMD_FIXED_BIT)) & 0xFF) == CMD_WRITE
                        m.d.sync += [is_read.eq(cmd[CMD_READ_BIT]), fixed.eq(cmd[CMD_FIXED_BIT]),
                                     phase.eq(Mux(valid, _ADDR, _IGNORE))]
                    with m.Case(_ADDR):
                        m.d.sync += [addr.eq(word[:self.addr_bits]), phase.eq(Mux(is_read, _DUMMY, _DATA))]
                        with m.If(is_read):
                            request(0, word[:self.addr_bits])
                    with m.Case(_DUMMY):
                        m.d.sync += phase.eq(_DATA)
                        m.d.comb += loading.eq(1)
                    with m.Case(_DATA):
                        with m.If(is_read):
                            m.d.comb += loading.eq(1)
                        with m.Else():
                            request(1, addr)
                            m.d.sync += [req_data.eq(word), addr.eq(next_addr)]
            with m.If(loading):
                # Shift out the fetched word; fetch the next one of the burst meanwhile.
                m.d.sync += [shift_out.eq(rdata), addr.eq(next_addr)]
                request(0, next_addr)
        return m


def encode_write(addr: int, words: list[int], fixed: bool = False) -> bytes:
    """The bytes a host sends for a write transaction (MSB first)."""
    cmd = CMD_WRITE_FIXED if fixed else CMD_WRITE
    out = bytes([cmd]) + (addr & 0xFFFF).to_bytes(2, "big")
    return out + b"".join((w & 0xFFFFFFFF).to_bytes(4, "big") for w in words)


def encode_read(addr: int, n_words: int, fixed: bool = False) -> bytes:
    """The bytes a host sends for a read of ``n_words`` words (the data bytes are zeros)."""
    cmd = CMD_READ_FIXED if fixed else CMD_READ
    return bytes([cmd]) + (addr & 0xFFFF).to_bytes(2, "big") + bytes(1 + 4 * n_words)


def decode_read(reply: bytes, n_words: int) -> list[int]:
    """The words of a read from the bytes received on MISO during :func:`encode_read`."""
    data = reply[4:4 + 4 * n_words]
    return [int.from_bytes(data[4 * k:4 * k + 4], "big") for k in range(n_words)]
