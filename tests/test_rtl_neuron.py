"""The LIF neuron engine (rtl/neuron.py) against the reference, node by node.

Each LIF of a graph runs in Amaranth's simulator over all ``T`` steps of an image: its
current buffers hold, at each step, the reference's currents of the synapse nodes it sums
(through ``add`` and channel ``concat``); every spike it emits, with its coordinates and
step, must be the reference's, and nothing else.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from snnfpga.model.artifact import load_artifact
from snnfpga.model.data import load_dataset
from snnfpga.model.kinds import TensorType
from snnfpga.model.kinds.lif import Lif
from snnfpga.model.widths import signed_bits
from snnfpga.rtl.accumulate import buffer_words
from snnfpga.rtl.graph_plan import current_sources
from snnfpga.rtl.neuron import Layout, LifEngine, Source
from snnfpga.rtl.scatter import scatter_spec
from snnfpga.sim import reference


async def write_words(ctx, port, words):
    """Write ``words`` to a memory write port, one per cycle from address 0."""
    for addr, word in enumerate(words):
        ctx.set(port.en, 1)
        ctx.set(port.addr, addr)
        ctx.set(port.data, word)
        await ctx.tick()
    ctx.set(port.en, 0)


async def run_pass(ctx, engine, got_step, rng, stall, words=None):
    """Start one pass of ``engine``; count its events into ``got_step[c, y, x]`` under random
    back-pressure until its end-of-step token, then wait until it is idle. ``words``: the
    pass's words, for a deadlock bound of 50 cycles per word or spike."""
    ctx.set(engine.start, 1)
    await ctx.tick()
    ctx.set(engine.start, 0)
    cycles = 0
    while True:
        ready = rng.random() >= stall
        ctx.set(engine.events.ready, ready)
        await ctx.delay(1e-9)
        if ready and ctx.get(engine.events.valid):
            ev = ctx.get(engine.events.payload)
            if ev.eos:
                await ctx.tick()
                break
            got_step[ev.c, ev.y, ev.x] += 1
        await ctx.tick()
        cycles += 1
        assert words is None or cycles < 50 * (words + got_step.sum() + 10), "no end of step"
    ctx.set(engine.events.ready, 0)
    await ctx.tick().until(~engine.busy)


def run_lif(node, layout, lanes, sources, currents, timesteps, stall=0.0, seed=0):
    """``currents``: per source ``int [T, lines, length_k]``; returns the spikes the engine
    emitted as ``int [T, C, H, W]`` counts."""
    engine = LifEngine(node, layout, lanes, sources, timesteps)
    P = engine.lanes
    top = Module()
    top.submodules.engine = engine
    ports = []
    for k, s in enumerate(sources):
        mem = Memory(shape=P * s.bits, depth=max(2, layout.lines * s.groups), init=[])
        top.submodules[f"src{k}"] = mem
        rd, wr = mem.read_port(), mem.write_port()
        top.d.comb += [rd.addr.eq(getattr(engine, f"src{k}_addr")), getattr(engine, f"src{k}_data").eq(rd.data)]
        ports.append(wr)
    got = np.zeros((timesteps, *layout.shape), np.int64)
    rng = random.Random(seed)

    async def bench(ctx):
        for t in range(timesteps):
            for k, (s, wr) in enumerate(zip(sources, ports)):
                await write_words(ctx, wr, buffer_words(currents[k][t], P, s.bits))
            await run_pass(ctx, engine, got[t], rng, stall, words=layout.lines * engine.groups)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


def layout_values(values: np.ndarray, layout: Layout) -> np.ndarray:
    """A tensor ``[C, H, W]`` as ``[lines, line_length]`` in ``layout``."""
    return values.reshape(-1)[layout.line_map()]


@pytest.fixture(scope="module")
def mixer_run():
    art = load_artifact("mixer")
    images = load_dataset("default").split("val").images[:1]
    return art, reference.run(art, images, record="all")


def lif_case(art, trace, name, lanes):
    """Engine arguments for LIF ``name`` of ``art`` and its sources' currents of image 0."""
    graph = art.graph
    node = graph.node(name)
    first = graph.node(next(iter(current_sources(graph, node, lanes, 1)))[0])
    kind = Layout.of_spec(scatter_spec(first, graph.input_types(first)))  # the sources' layout
    layout = Layout(kind.lane_axis, kind.outer, kind.inner, graph.types[name].shape)
    groups = -(-layout.line_length // min(lanes, layout.line_length))
    sources, currents = [], []
    for src, g0, n_groups in current_sources(graph, node, lanes, groups):
        values = trace.outputs[src][0]  # [T, C_k, H, W]
        proof = graph.proofs[src].registers["output"]
        part = Layout(layout.lane_axis, layout.outer, layout.inner, values.shape[1:])
        sources.append(Source(groups=n_groups, bits=signed_bits(*proof), first_group=g0))
        currents.append(np.stack([layout_values(v, part) for v in values]))
    return node, layout, sources, currents


# In the default run: the stem, an axial branch, a patch-encoding node summing an add of
# three currents, a token LIF summing a concatenation and the fuse; the rest with -m slow.
MIXER_LIFS = ["stem.lif", "s0.b0.ax_h.lif", "s1.spe.n3", "s1.b0.tok"] + [
    pytest.param(name, marks=pytest.mark.slow)
    for name in ("s0.b0.ax_w.lif", "s0.b0.tok", "s0.b0.mlp1.lif", "s0.b0.ch", "s1.spe.n1", "s1.spe.n2",
                 "s1.b0.ax_h.lif", "s1.b0.ch")]


@pytest.mark.parametrize("name", MIXER_LIFS)
def test_every_lif_of_the_mixer_is_bit_exact(mixer_run, name):
    """Position-major and axial layouts, sums through add and concat, 24/72/216 channels."""
    art, trace = mixer_run
    lanes = 8
    node, layout, sources, currents = lif_case(art, trace, name, lanes)
    got = run_lif(node, layout, lanes, sources, currents, art.timesteps, stall=0.3, seed=len(name))
    expected = trace.outputs[name][0].astype(np.int64)
    diff = np.argwhere(got != expected)
    assert not len(diff), (f"{name}: step {diff[0][0]}, neuron (c, y, x) {tuple(diff[0][1:])}: "
                           f"expected {expected[tuple(diff[0])]}, got {got[tuple(diff[0])]}")


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("leak_shift", [None, 1, 3])
def test_lif_corners_saturation_resets_and_leaks(reset, leak_shift):
    """Narrow membranes that saturate both ways, both resets, no leak and slow leaks, a line
    length that leaves a partial last group, per-neuron thresholds."""
    rng = np.random.default_rng(7 + (leak_shift or 0))
    shape, T, mb = (5, 3, 4), 6, 5
    threshold = rng.integers(1, 12, size=shape)
    node = Lif(name="n", inputs=("a", "b"), threshold=threshold, leak_shift=leak_shift, reset=reset,
               threshold_bits=5, membrane_bits=mb)
    layout = Layout("c", "y", "x", shape)
    lanes = 2  # 5 channels: groups of 2, 2 and 1
    bits = 6
    currents = [rng.integers(-32, 32, size=(T, *shape)) for _ in range(2)]
    types = [TensorType(shape, "current", unit="u")] * 2
    expected = node.forward([c[None] for c in currents], types)[0].astype(np.int64)
    assert (expected.sum() > 0) and (expected.sum() < expected.size)
    groups = 3
    got = run_lif(node, layout, lanes, [Source(groups, bits), Source(groups, bits)],
                  [np.stack([layout_values(c[t], layout) for t in range(T)]) for c in currents], T)
    assert np.array_equal(got, expected)


def run_glif(node, shape, lanes, bits, currents, stall=0.0, seed=0):
    """``currents``: ``int [T, C, H, W]``; returns the emitted spikes ``int [T, C, H, W]``."""
    from snnfpga.rtl.neuron import GlifEngine

    engine = GlifEngine(node, shape, lanes, bits)
    layout = Layout("c", "y", "x", shape)
    top = Module()
    top.submodules.engine = engine
    top.submodules.src = mem = Memory(shape=engine.lanes * bits, depth=max(2, layout.lines * engine.groups), init=[])
    rd, wr = mem.read_port(), mem.write_port()
    top.d.comb += [rd.addr.eq(engine.src0_addr), engine.src0_data.eq(rd.data)]
    got = np.zeros((len(currents), *shape), np.int64)
    rng = random.Random(seed)

    async def bench(ctx):
        for t, values in enumerate(currents):
            await write_words(ctx, wr, buffer_words(layout_values(values, layout), engine.lanes, bits))
            await run_pass(ctx, engine, got[t], rng, stall)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("name", ["s0.b0.glif_h", "s0.b0.glif_w", "s1.b0.glif_h", "s1.b0.glif_w"])
def test_every_glif_of_mixer_glif_is_bit_exact(name):
    art = load_artifact("mixer-glif")
    trace = reference.run(art, load_dataset("default").split("val").images[:1], record="all")
    graph = art.graph
    node = graph.node(name)
    (src,) = node.inputs
    bits = signed_bits(*graph.proofs[src].registers["output"])
    got = run_glif(node, graph.types[name].shape, 8, bits, trace.outputs[src][0], stall=0.3, seed=3)
    expected = trace.outputs[name][0].astype(np.int64)
    diff = np.argwhere(got != expected)
    assert not len(diff), f"{name}: step, (c, y, x) {tuple(diff[0])}: expected {expected[tuple(diff[0])]}"


@pytest.mark.parametrize("axis", ["h", "w"])
@pytest.mark.parametrize("group", [1, 3, 5])
def test_glif_group_boundaries_and_remainders(axis, group):
    """Axis lengths that leave trailing groups of one, per-neuron thresholds, ties (u == theta
    does not fire), a partial last lane group."""
    from snnfpga.model.kinds.glif import Glif

    rng = np.random.default_rng(group)
    shape = (3, 7, 8)
    threshold = rng.integers(0, 6, size=shape)
    node = Glif(name="g", inputs=("a",), threshold=threshold, axis=axis, group=group, leak_shift=1,
                threshold_bits=4, state_bits=9)
    currents = rng.integers(-8, 9, size=(3, *shape))
    types = [TensorType(shape, "current", unit="u")]
    expected = node.forward([currents[None]], types)[0].astype(np.int64)
    assert 0 < expected.sum() < expected.size
    assert np.array_equal(run_glif(node, shape, 2, 6, currents), expected)
