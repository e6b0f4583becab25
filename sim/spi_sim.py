"""SPI host (mode 0) for Amaranth async testbenches, and a register-level driver over it.

:class:`SpiHost` bit-bangs the four SPI pins of a design, ``half`` clock cycles per SCK
phase (``half >= 2``: SCK at most clk / 4, what :mod:`snnfpga.rtl.spi_bridge` requires),
and samples MISO just before each rising edge, as a mode-0 master does.
:class:`SpiRegisters` offers ``read``/``write`` of 32-bit registers by byte offset, with the
same interface as :class:`~snnfpga.sim.wishbone_sim.WishboneInitiator`.
"""

from __future__ import annotations

from snnfpga.rtl.spi_bridge import decode_read, encode_read, encode_write


class SpiHost:
    """Drive ``sck``, ``cs_n``, ``mosi`` and sample ``miso`` (signals of the design)."""

    def __init__(self, ctx, sck, cs_n, mosi, miso, half: int = 2):
        if half < 2:
            raise ValueError("SCK phases must last at least 2 clock cycles (SCK <= clk / 4)")
        self.ctx, self.sck, self.cs_n, self.mosi, self.miso, self.half = ctx, sck, cs_n, mosi, miso, half

    async def _wait(self, cycles: int):
        await self.ctx.tick().repeat(cycles)

    async def transfer(self, data: bytes) -> bytes:
        """One transaction (CS_N low around it); returns the bytes seen on MISO."""
        ctx = self.ctx
        ctx.set(self.sck, 0)
        ctx.set(self.cs_n, 0)
        await self._wait(self.half)
        received = bytearray()
        for byte in data:
            value = 0
            for bit in range(7, -1, -1):
                ctx.set(self.mosi, (byte >> bit) & 1)
                await self._wait(self.half)
                value = (value << 1) | ctx.get(self.miso)  # sampled at the rising edge
                ctx.set(self.sck, 1)
                await self._wait(self.half)
                ctx.set(self.sck, 0)
            received.append(value)
        await self._wait(self.half)
        ctx.set(self.cs_n, 1)
        await self._wait(4)  # CS_N high for at least three clk cycles
        return bytes(received)


class SpiRegisters:
    """32-bit register access by byte offset through the SPI bridge."""

    def __init__(self, host: SpiHost):
        self.host = host

    async def read(self, offset: int) -> int:
        return (await self.read_words(offset, 1))[0]

    async def read_words(self, offset: int, n: int, fixed: bool = False) -> list[int]:
        reply = await self.host.transfer(encode_read(offset >> 2, n, fixed))
        return decode_read(reply, n)

    async def write(self, offset: int, value: int) -> None:
        await self.write_words(offset, [value])

    async def write_words(self, offset: int, words: list[int], fixed: bool = False) -> None:
        await self.host.transfer(encode_write(offset >> 2, words, fixed))
