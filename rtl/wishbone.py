"""Wishbone B4 classic, as used by the accelerator's register block.

Why Wishbone B4 classic rather than AXI4-Lite: one request/acknowledge handshake instead of
five channels, so the slave costs a few LUTs (it matters on an iCE40 UP5K), and it is the
native bus of the open soft cores and SoC builders (VexRiscv, PicoRV32 wrappers, LiteX,
Amaranth SoC); AXI4-Lite masters reach it through a standard bridge.

32-bit data, word addresses (``adr`` = byte offset >> 2), only whole-word accesses
(``sel`` is accepted and ignored). The slave acknowledges a write exactly one cycle after it
sees ``cyc & stb`` (one wait state) and a read two cycles after (two wait states: the address
decode is registered so that the read path does not limit the clock); it never stalls
longer and never answers with an error.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

DATA_BITS = 32


def wishbone_signature(addr_bits: int, data_bits: int = DATA_BITS) -> wiring.Signature:
    """Initiator-side signature: ``cyc stb we adr sel dat_w`` out, ``dat_r ack`` in."""
    return wiring.Signature({
        "cyc": Out(1), "stb": Out(1), "we": Out(1), "adr": Out(addr_bits), "sel": Out(data_bits // 8),
        "dat_w": Out(data_bits), "dat_r": In(data_bits), "ack": In(1),
    })
