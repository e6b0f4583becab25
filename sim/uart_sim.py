"""UART host (8N1) for Amaranth async testbenches, and a register-level driver over it.

:class:`UartHost` drives a design's ``rx`` pin at ``divisor`` clock cycles per bit
(:meth:`send`) and, in a background testbench of its own (:meth:`listen`, added with
``Simulator.add_testbench(host.listen, background=True)``), decodes every frame on the design's ``tx`` pin into
:attr:`received`, sampling each bit in its middle as a UART receiver does.
:class:`UartRegisters` offers ``read``/``write`` (and bursts) of 32-bit registers by byte
offset with the frames of :mod:`snnfpga.rtl.uart_bridge`, the same interface as
:class:`~snnfpga.sim.spi_sim.SpiRegisters`.
"""

from __future__ import annotations

from snnfpga.rtl.spi_bridge import CMD_READ, CMD_READ_FIXED, CMD_WRITE, CMD_WRITE_FIXED
from snnfpga.rtl.uart_bridge import ACK, encode_frame


class UartHost:
    """Drive ``rx`` and decode ``tx`` (signals of the design), ``divisor`` cycles per bit."""

    def __init__(self, ctx, rx, tx, divisor: int):
        self.ctx, self.rx, self.tx, self.divisor = ctx, rx, tx, divisor
        self.received = bytearray()
        self.framing_errors = 0

    async def send(self, data: bytes) -> None:
        ctx = self.ctx
        for byte in data:
            for level in [0, *((byte >> k) & 1 for k in range(8)), 1]:  # start, LSB first, stop
                ctx.set(self.rx, level)
                await ctx.tick().repeat(self.divisor)

    async def listen(self, ctx) -> None:
        """Decode ``tx`` forever (a background testbench)."""
        d = self.divisor
        while True:
            await ctx.tick()
            if ctx.get(self.tx):
                continue
            await ctx.tick().repeat(d // 2)  # the middle of the start bit
            if ctx.get(self.tx):
                continue  # a glitch
            value = 0
            for k in range(8):
                await ctx.tick().repeat(d)
                value |= ctx.get(self.tx) << k
            await ctx.tick().repeat(d)
            if ctx.get(self.tx):
                self.received.append(value)
            else:
                self.framing_errors += 1

    async def receive(self, n: int, limit_bits: int = 4000) -> bytes:
        """The next ``n`` bytes the design sent; TimeoutError after ``limit_bits`` bit times."""
        for _ in range(limit_bits):
            if len(self.received) >= n:
                break
            await self.ctx.tick().repeat(self.divisor)
        else:
            raise TimeoutError(f"the design sent {len(self.received)} of {n} bytes")
        out = bytes(self.received[:n])
        del self.received[:n]
        return out


class UartRegisters:
    """32-bit register access by byte offset through the UART bridge."""

    def __init__(self, host: UartHost):
        self.host = host

    async def read(self, offset: int) -> int:
        return (await self.read_words(offset, 1))[0]

    async def read_words(self, offset: int, n: int, fixed: bool = False) -> list[int]:
        await self.host.send(encode_frame(CMD_READ_FIXED if fixed else CMD_READ, offset >> 2, n))
        data = await self.host.receive(4 * n)
        return [int.from_bytes(data[4 * k:4 * k + 4], "big") for k in range(n)]

    async def write(self, offset: int, value: int) -> None:
        await self.write_words(offset, [value])

    async def write_words(self, offset: int, words: list[int], fixed: bool = False) -> None:
        await self.host.send(encode_frame(CMD_WRITE_FIXED if fixed else CMD_WRITE, offset >> 2, len(words), words))
        ack = await self.host.receive(1)
        if ack != bytes([ACK]):
            raise AssertionError(f"expected the write ACK 0x{ACK:02X}, got {ack.hex()}")
