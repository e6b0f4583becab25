# amaranth: UnusedElaboratable=no
"""The SPI board shell in Amaranth's simulator: a host drives the accelerator over SPI."""

import pytest
from amaranth.sim import Simulator

from snnfpga.firmware import regmap as R
from snnfpga.model.synthetic import random_artifact, random_images
from snnfpga.rtl import spi_bridge
from snnfpga.rtl.board import SpiAccelerator
from snnfpga.rtl.engine import weight_words
from snnfpga.rtl.plan import make_plan
from snnfpga.rtl.spi_bridge import SpiWishboneBridge
from snnfpga.sim import reference
from snnfpga.sim.spi_sim import SpiHost, SpiRegisters

REG = {r.name: r for r in R.REGISTERS}
DONE = REG["STATUS"].field("DONE")


PERIOD = 1e-8  # s: the shell's clk in these benches


def simulate_shell(dut, body, background=()):
    """Drive ``dut.clk`` and run the testbench ``body(ctx)`` once the reset synchronizer has
    released the logic; ``background``: testbenches that run beside it (a UART listener)."""

    async def clock(ctx):
        while True:
            await ctx.delay(PERIOD / 2)
            ctx.set(dut.clk, 1)
            await ctx.delay(PERIOD / 2)
            ctx.set(dut.clk, 0)

    async def testbench(ctx):
        await ctx.delay(4 * PERIOD)  # the reset synchronizer releases the logic after two cycles
        await body(ctx)

    sim = Simulator(dut)
    sim.add_process(clock)
    for process in background:
        sim.add_testbench(process, background=True)
    sim.add_testbench(testbench)
    sim.run()


def run_shell(plan, bench, half=2):
    """Run ``bench(ctx, regs, host, dut, out)`` on the SPI shell of ``plan``; return ``out``."""
    dut = SpiAccelerator(plan)
    out = {}

    async def body(ctx):
        host = SpiHost(ctx, dut.spi_sck, dut.spi_cs_n, dut.spi_mosi, dut.spi_miso, half=half)
        await bench(ctx, SpiRegisters(host), host, dut, out)

    simulate_shell(dut, body)
    return out


def pixel_words(image):
    flat = [int(x) for x in image.reshape(-1)] + [0] * (-image.size % 4)
    return [flat[k] | flat[k + 1] << 8 | flat[k + 2] << 16 | flat[k + 3] << 24 for k in range(0, len(flat), 4)]


async def infer(regs, plan, image, ctx=None, dut=None):
    art = plan.artifact
    await regs.write_words(REG["PIXELS"].offset, pixel_words(image))  # one burst
    await regs.write(REG["CTRL"].offset, 1 | 8)  # START, interrupt enabled
    for _ in range(5000):
        if (await regs.read(REG["STATUS"].offset)) & DONE.mask:
            break
    else:
        raise TimeoutError("STATUS.DONE never set")
    if dut is not None:
        assert ctx.get(dut.irq)
    cls = await regs.read(REG["RESULT"].offset)
    raw = await regs.read_words(REG["SCORE"].offset, art.n_classes)  # one burst
    scores = [r - (1 << 32) if r & (1 << 31) else r for r in raw]
    spikes = await regs.read_words(REG["SPIKES"].offset, len(art.layers))
    return cls, scores, spikes


@pytest.mark.parametrize("storage, half", [("rom", 2), ("ram", 3)])
def test_inference_over_spi_is_bit_exact(storage, half):
    art = random_artifact(60, input_shape=(3, 5), hidden=(7,), n_classes=4, threshold_scale=0.2)
    plan = make_plan(art, lanes=4, pixels_per_beat=1, weight_storage=storage)
    images = random_images(art, 2, seed=3)

    async def bench(ctx, regs, host, dut, out):
        consts = R.build_constants(plan)
        assert await regs.read(REG["ID"].offset) == R.ID_VALUE
        # A burst over the constant registers, and the same word read repeatedly (fixed address).
        names = ("ID", "VERSION", "MODEL_HASH", "SHAPE", "GEOMETRY", "WIDTHS")
        assert await regs.read_words(0, len(names)) == [consts[n] for n in names]
        assert await regs.read_words(REG["SHAPE"].offset, 3, fixed=True) == [consts["SHAPE"]] * 3
        if storage == "ram":
            for lp in plan.layers:  # WEIGHT_DATA[0] streamed with the fixed-address write
                await regs.write(REG["WEIGHT_ADDR"].offset, lp.index << 24)
                await regs.write_words(REG["WEIGHT_DATA"].offset, weight_words(lp), fixed=True)
        out["results"] = [await infer(regs, plan, image, ctx, dut) for image in images]
        # An unknown command is ignored: nothing written, MISO stays low.
        assert await host.transfer(bytes([0x42, 0, REG["CTRL"].offset >> 2, 0, 0, 0, 1])) == bytes(7)
        status = await regs.read(REG["STATUS"].offset)
        assert status & DONE.mask and not status & 1  # still done, not busy

    results = run_shell(plan, bench, half)["results"]
    ref = reference.run(art, images)
    for n, (cls, scores, spikes) in enumerate(results):
        assert scores == ref.scores[n].tolist(), f"image {n}"
        assert cls == ref.classes[n]
        assert spikes == [int(c[n]) for c in ref.spike_counts()]


def test_reset_pin_resets_everything_and_inference_resumes():
    """A pulse on the asynchronous rst pin (through the synchronizer) clears the result, the
    counters and the interrupt enable; the next inference is bit-exact again."""
    art = random_artifact(61, input_shape=(3, 5), hidden=(6,), n_classes=3, threshold_scale=0.2)
    plan = make_plan(art, lanes=4, pixels_per_beat=1)
    images = random_images(art, 2, seed=5)

    async def bench(ctx, regs, host, dut, out):
        out["first"] = await infer(regs, plan, images[0], ctx, dut)
        assert await regs.read(REG["IMAGES"].offset) == 1
        ctx.set(dut.rst, 1)
        await ctx.delay(3e-8)
        ctx.set(dut.rst, 0)
        await ctx.delay(5e-8)  # released two cycles after rst falls
        assert await regs.read(REG["IMAGES"].offset) == 0
        status = await regs.read(REG["STATUS"].offset)
        assert not status & DONE.mask and not ctx.get(dut.irq)
        out["second"] = await infer(regs, plan, images[1], ctx, dut)

    out = run_shell(plan, bench)
    ref = reference.run(art, images)
    for n, key in enumerate(("first", "second")):
        cls, scores, _ = out[key]
        assert scores == ref.scores[n].tolist() and cls == ref.classes[n]


def test_bridge_protocol_on_a_plain_register_file():
    """Writes, reads, bursts and an aborted word against a 16-word Wishbone memory."""
    from amaranth.hdl import Module

    bridge = SpiWishboneBridge(4)
    m = Module()
    m.submodules.bridge = bridge
    memory = [0] * 16

    async def slave(ctx):
        bus = bridge.bus
        acked = False
        async for _, _, cyc, stb, we, adr, dat_w in ctx.tick().sample(bus.cyc, bus.stb, bus.we, bus.adr, bus.dat_w):
            if cyc and stb and not acked:
                if we:
                    memory[adr] = dat_w
                ctx.set(bus.dat_r, memory[adr])
                ctx.set(bus.ack, 1)
                acked = True
            else:
                ctx.set(bus.ack, 0)
                acked = False

    async def host_bench(ctx):
        host = SpiHost(ctx, bridge.spi.sck, bridge.spi.cs_n, bridge.spi.mosi, bridge.spi.miso)
        regs = SpiRegisters(host)
        await regs.write_words(4 * 3, [0xDEADBEEF, 0x01234567, 0x80000001])
        assert memory[3:6] == [0xDEADBEEF, 0x01234567, 0x80000001]
        await regs.write_words(4 * 8, [1, 2, 3], fixed=True)
        assert memory[8] == 3 and memory[9] == 0
        assert await regs.read_words(4 * 3, 3) == [0xDEADBEEF, 0x01234567, 0x80000001]
        assert await regs.read_words(4 * 15, 2) == [memory[15], memory[0]]  # the address wraps
        # A word cut short by CS_N is dropped.
        await host.transfer(spi_bridge.encode_write(10, [0xFFFFFFFF])[:-1])
        assert memory[10] == 0
        assert await regs.read(4 * 5) == 0x80000001

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_process(slave)
    sim.add_testbench(host_bench)
    sim.run()


def test_bridge_rejects_a_bad_address_width():
    with pytest.raises(ValueError, match="addr_bits"):
        SpiWishboneBridge(17)
