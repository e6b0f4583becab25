"""Wishbone B4 classic initiator for Amaranth async testbenches (32-bit, byte offsets)."""

from __future__ import annotations


class WishboneInitiator:
    """``await read(offset)`` / ``await write(offset, value)`` on ``bus`` (an initiator-side
    view of a ``wishbone_signature`` port), one access at a time, with a cycle limit."""

    def __init__(self, ctx, bus, timeout_cycles: int = 1000):
        self.ctx, self.bus, self.timeout = ctx, bus, timeout_cycles

    async def _cycle(self, offset: int, we: bool, value: int = 0) -> int:
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.adr, offset >> 2)
        ctx.set(bus.we, int(we))
        ctx.set(bus.dat_w, value & 0xFFFFFFFF)
        ctx.set(bus.sel, 0xF)
        ctx.set(bus.cyc, 1)
        ctx.set(bus.stb, 1)
        for _ in range(self.timeout):
            _, _, ack, data = await ctx.tick().sample(bus.ack, bus.dat_r)
            if ack:
                ctx.set(bus.cyc, 0)
                ctx.set(bus.stb, 0)
                return data
        raise TimeoutError(f"no Wishbone ack for offset {offset:#x} after {self.timeout} cycles")

    async def read(self, offset: int) -> int:
        return await self._cycle(offset, False)

    async def write(self, offset: int, value: int) -> None:
        await self._cycle(offset, True, value)
