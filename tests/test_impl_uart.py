# amaranth: UnusedElaboratable=no
"""The UART board shell (the ULX3S's host link) in Amaranth's simulator: a host drives the
accelerator over 8N1 frames, and the results equal the reference."""

import pytest

from snnfpga.errors import ConfigError
from snnfpga.firmware import regmap as R
from snnfpga.model.synthetic import random_artifact, random_images
from snnfpga.rtl.board import UartAccelerator
from snnfpga.rtl.engine import weight_words
from snnfpga.rtl.plan import make_plan
from snnfpga.rtl.spi_bridge import CMD_WRITE
from snnfpga.rtl.uart_bridge import TIMEOUT_BITS, divisor_for, encode_frame
from snnfpga.sim import reference
from snnfpga.sim.uart_sim import UartHost, UartRegisters
from tests.test_impl_spi import infer, simulate_shell

REG = {r.name: r for r in R.REGISTERS}
DONE = REG["STATUS"].field("DONE")


def run_shell(plan, bench, divisor):
    """Run ``bench(ctx, regs, host, dut, out)`` on the UART shell of ``plan``, its tx pin
    decoded beside it; return ``out``."""
    dut = UartAccelerator(plan, divisor)
    host = UartHost(None, dut.uart_rx, dut.uart_tx, divisor)
    out = {}

    async def body(ctx):
        host.ctx = ctx
        await bench(ctx, UartRegisters(host), host, dut, out)

    simulate_shell(dut, body, background=(host.listen,))
    assert out.get("done"), "the testbench did not finish"
    assert host.framing_errors == 0
    return out


@pytest.mark.parametrize("storage, divisor", [("rom", 8), ("ram", 5)])
def test_inference_over_uart_is_bit_exact(storage, divisor):
    art = random_artifact(62, input_shape=(3, 5), hidden=(7,), n_classes=4, threshold_scale=0.2)
    plan = make_plan(art, lanes=4, pixels_per_beat=1, weight_storage=storage)
    images = random_images(art, 2, seed=4)

    async def bench(ctx, regs, host, dut, out):
        consts = R.build_constants(plan)
        names = ("ID", "VERSION", "MODEL_HASH", "SHAPE", "GEOMETRY", "WIDTHS")
        assert await regs.read_words(0, len(names)) == [consts[n] for n in names]  # a burst
        assert await regs.read_words(REG["SHAPE"].offset, 3, fixed=True) == [consts["SHAPE"]] * 3
        if storage == "ram":
            for lp in plan.layers:  # WEIGHT_DATA[0] streamed with the fixed-address write
                await regs.write(REG["WEIGHT_ADDR"].offset, lp.index << 24)
                await regs.write_words(REG["WEIGHT_DATA"].offset, weight_words(lp), fixed=True)
        out["results"] = [await infer(regs, plan, image, ctx, dut) for image in images]
        # A byte that is no command is ignored; the next frame works.
        await host.send(bytes([0x42]))
        assert await regs.read(REG["ID"].offset) == R.ID_VALUE
        # A frame the host abandons is dropped after the timeout; nothing was written.
        await host.send(encode_frame(CMD_WRITE, REG["CTRL"].offset >> 2, 1)[:4] + bytes([0, 0]))
        await ctx.tick().repeat((TIMEOUT_BITS + 8) * divisor)
        status = await regs.read(REG["STATUS"].offset)
        assert status & DONE.mask and not status & 1 and not host.received
        out["done"] = True

    results = run_shell(plan, bench, divisor)["results"]
    ref = reference.run(art, images)
    for n, (cls, scores, spikes) in enumerate(results):
        assert scores == ref.scores[n].tolist(), f"image {n}"
        assert cls == ref.classes[n]
        assert spikes == [int(c[n]) for c in ref.spike_counts()]


def test_baud_divisors():
    assert divisor_for(100e6, 2_000_000) == 50 and divisor_for(36e6, 2_000_000) == 18
    assert divisor_for(100e6, 3_000_000) == 33  # 3.03 Mbaud: 1 % off, tolerated
    with pytest.raises(ConfigError, match=r"off by 3.1 % \(16 cycles per bit\)"):
        divisor_for(31e6, 2_000_000)
    with pytest.raises(ConfigError, match="at least 8 MHz"):
        divisor_for(5e6, 2_000_000)
