# amaranth: UnusedElaboratable=no
"""The accelerator behind its Wishbone register block, driven as firmware would drive it."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from snnfpga.errors import MappingError
from snnfpga.firmware import regmap as R
from snnfpga.model.synthetic import random_artifact, random_graph, random_images
from snnfpga.rtl.engine import weight_words
from snnfpga.rtl.graph_top import make_graph_top_plan
from snnfpga.rtl.plan import make_plan
from snnfpga.rtl.system import AcceleratorSystem
from snnfpga.sim import reference
from snnfpga.sim.wishbone_sim import WishboneInitiator

REG = {r.name: r for r in R.REGISTERS}
STATUS = REG["STATUS"]


def field(value, reg, name):
    f = reg.field(name)
    return (value >> f.lsb) & ((1 << f.width) - 1)


def pixel_words(image):
    flat = [int(x) for x in image.reshape(-1)]
    flat += [0] * (-len(flat) % 4)
    return [flat[k] | flat[k + 1] << 8 | flat[k + 2] << 16 | flat[k + 3] << 24 for k in range(0, len(flat), 4)]


async def load_weights(wb, plan):
    for lp in plan.layers:
        await wb.write(REG["WEIGHT_ADDR"].offset, lp.index << 24)
        for word in weight_words(lp):
            for k in reversed(range(R.weight_chunks(plan))):
                await wb.write(REG["WEIGHT_DATA"].address(k), (word >> (32 * k)) & 0xFFFFFFFF)


async def wait_status(wb, name, limit=50000):
    for _ in range(limit):
        status = await wb.read(STATUS.offset)
        if field(status, STATUS, name):
            return status
    raise TimeoutError(f"STATUS.{name} never set")


async def infer(wb, plan, image):
    for k, word in enumerate(pixel_words(image)):
        await wb.write(REG["PIXELS"].address(k), word)
    await wb.write(REG["CTRL"].offset, 1)  # START
    await wait_status(wb, "DONE")
    art = plan.artifact
    cls = await wb.read(REG["RESULT"].offset)
    scores = []
    for j in range(art.n_classes):
        raw = await wb.read(REG["SCORE"].address(j))
        scores.append(raw - (1 << 32) if raw & (1 << 31) else raw)
    spikes = [await wb.read(REG["SPIKES"].address(s)) for s in range(plan.n_stages)]
    return cls, scores, spikes, await wb.read(REG["CYCLES"].offset)


def simulate(plan, bench):
    dut = AcceleratorSystem(plan)
    out = {}

    async def testbench(ctx):
        await bench(ctx, WishboneInitiator(ctx, dut.bus), dut, out)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out


def check_results(art, images, results):
    ref = reference.run(art, images)
    for n, (cls, scores, spikes, cycles) in enumerate(results):
        assert scores == ref.scores[n].tolist(), f"image {n}"
        assert cls == ref.classes[n]
        assert spikes == [int(c[n]) for c in ref.spike_counts()]
        assert cycles > 0


@pytest.mark.parametrize("beat, storage, shape", [(1, "rom", (3, 5)), (2, "ram", (3, 5)), (4, "rom", (3, 5)),
                                                  (4, "ram", (3, 5)), (8, "rom", (5, 5)), (8, "ram", (3, 5))])
def test_inference_through_registers_is_bit_exact(beat, storage, shape):
    # 8 pixels per beat: buffer rows of two bus words; 5 x 5 pixels leave the last row half written.
    art = random_artifact(40 + beat, input_shape=shape, hidden=(7,), n_classes=4, threshold_scale=0.2)
    plan = make_plan(art, lanes=3, pixels_per_beat=beat, weight_storage=storage)
    images = random_images(art, 3, seed=beat)

    async def bench(ctx, wb, dut, out):
        consts = R.build_constants(plan)
        for name in ("ID", "VERSION", "MODEL_HASH", "SHAPE", "GEOMETRY", "WIDTHS"):
            assert await wb.read(REG[name].offset) == consts[name], name
        for layer, size in enumerate(consts["LAYER_SIZE"]):
            assert await wb.read(REG["LAYER_SIZE"].address(layer)) == size
        if storage == "ram":
            await load_weights(wb, plan)
        out["results"] = [await infer(wb, plan, image) for image in images]

    check_results(art, images, simulate(plan, bench)["results"])


@pytest.mark.parametrize("seed, token", [(3, "axial"), (4, "glif")])
def test_a_layer_graph_behind_the_same_registers_is_bit_exact(seed, token):
    """The graph accelerator sits behind the same register block: its build constants say
    it is a graph (GEOMETRY.GRAPH, LAYER_SIZE per spiking node), results, scores and the
    spike counter of every spiking node match the reference, a soft reset abandons an
    image in flight."""
    art = random_graph(seed, token=token, head="pool")
    plan = make_graph_top_plan(art, lanes=art.graph.types["stem"].shape[0], pixels_per_beat=4)
    images = random_images(art, 3, seed=seed)
    consts = R.build_constants(plan)
    assert field(consts["GEOMETRY"], REG["GEOMETRY"], "GRAPH") == 1
    assert consts["LAYER_SIZE"] == [int(np.prod(art.graph.types[n.name].shape)) for n in art.spiking_nodes] + [
        art.n_classes]

    async def bench(ctx, wb, dut, out):
        for name in ("ID", "MODEL_HASH", "SHAPE", "GEOMETRY", "WIDTHS"):
            assert await wb.read(REG[name].offset) == consts[name], name
        for layer, size in enumerate(consts["LAYER_SIZE"]):
            assert await wb.read(REG["LAYER_SIZE"].address(layer)) == size
        out["results"] = [await infer(wb, plan, image) for image in images[:2]]
        for k, word in enumerate(pixel_words(images[0])):
            await wb.write(REG["PIXELS"].address(k), word)
        await wb.write(REG["CTRL"].offset, 1)  # START, then abandon the image
        for _ in range(200):
            await ctx.tick()
        await wb.write(REG["CTRL"].offset, 2)  # SOFT_RESET
        out["results"].append(await infer(wb, plan, images[2]))

    check_results(art, images, simulate(plan, bench)["results"])


def test_errors_clear_irq_and_soft_reset():
    art = random_artifact(50, input_shape=(4, 4), hidden=(6,), n_classes=3, threshold_scale=0.2)
    plan = make_plan(art, lanes=2, pixels_per_beat=1)
    images = random_images(art, 2, seed=9)

    async def bench(ctx, wb, dut, out):
        ctrl = REG["CTRL"].offset
        for k, word in enumerate(pixel_words(images[0])):
            await wb.write(REG["PIXELS"].address(k), word)
        await wb.write(ctrl, 1 | 8)  # START with the interrupt enabled
        await wb.write(REG["PIXELS"].address(0), 0)  # while the buffer streams: rejected
        await wb.write(ctrl, 1 | 8)  # START while busy: rejected
        status = await wb.read(STATUS.offset)
        assert field(status, STATUS, "BUSY") and field(status, STATUS, "ERROR")
        assert field(status, STATUS, "ERROR_CODE") == R.ERROR_PIXELS_WHILE_LOADING  # the first error
        assert not ctx.get(dut.irq)
        status = await wait_status(wb, "DONE")
        assert ctx.get(dut.irq) and field(status, STATUS, "IRQ_ENABLE")
        first = await wb.read(REG["RESULT"].offset)
        await wb.write(ctrl, 4)  # CLEAR: error and result gone, irq low (enable written 0)
        status = await wb.read(STATUS.offset)
        assert not field(status, STATUS, "DONE") and not field(status, STATUS, "ERROR") and not ctx.get(dut.irq)
        # Abandon an image with a soft reset, then the next image is exact.
        await wb.write(ctrl, 1)
        await wb.write(ctrl, 2)  # SOFT_RESET
        status = await wb.read(STATUS.offset)
        assert status & 0xF == 0
        out["first"] = first
        out["results"] = [await infer(wb, plan, images[1])]

    out = simulate(plan, bench)
    assert out["first"] == reference.run(art, images[:1]).classes[0]
    check_results(art, images[1:], out["results"])


def test_plans_beyond_the_register_map_are_rejected():
    with pytest.raises(MappingError, match="classes exceed the 64 SCORE registers"):
        AcceleratorSystem(make_plan(random_artifact(1, n_classes=65)))


def test_wide_weight_words_need_the_weight_data_window_only_for_run_time_weights():
    # 8-bit weights x 40 lanes = 320-bit words: more than the WEIGHT_DATA chunks.
    art = random_artifact(2, hidden=(40,), weight_bits=8)
    wide = dict(lanes=40, pixels_per_beat=4)
    assert R.weight_chunks(make_plan(art, **wide)) > R.MAX_WEIGHT_CHUNKS
    with pytest.raises(MappingError, match=f"exceed the {R.MAX_WEIGHT_CHUNKS} WEIGHT_DATA chunks"):
        AcceleratorSystem(make_plan(art, weight_storage="ram", **wide))
    AcceleratorSystem(make_plan(art, weight_storage="rom", **wide))  # ROM weights are never written
