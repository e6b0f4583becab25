"""The event-scatter address generator (rtl/scatter.py) against the numpy reference.

For one input event the reference's currents say which weights land where: with weights
that encode their own row index (``weight = 1 + row``), a one-hot event produces, at every
target word it reaches, ``1 + row``. The generator's ``(row, line)`` operations must be
exactly those, for every event position, on random shapes, kernels, strides and paddings.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnfpga.errors import MappingError
from snnfpga.model.kinds import TensorType
from snnfpga.model.kinds.axial import Axial
from snnfpga.model.kinds.conv import Conv, output_size
from snnfpga.model.kinds.dense import Dense
from snnfpga.model.kinds.lif import Lif
from snnfpga.model.kinds.pointwise import Pointwise
from snnfpga.rtl.scatter import ScatterGenerator, scatter_spec


def spikes(shape):
    return TensorType(tuple(shape), "spikes")


def conv_node(c_in, kernel, stride, padding):
    """A conv with one output channel whose weight ``[0, c, ky, kx]`` is ``1 + row``."""
    rows = np.arange(c_in * kernel * kernel, dtype=np.int64).reshape(1, c_in, kernel, kernel)
    return Conv(name="conv", inputs=("x",), weight=rows + 1, bias=np.zeros(1, np.int64), stride=stride,
                padding=padding, unit="u", weight_bits=8, bias_bits=2)


def axial_node(length, axis):
    """``W[p', p] = 1 + p``: every output of the line gets ``1 + row`` (row = input position)."""
    weight = np.tile(np.arange(length, dtype=np.int64) + 1, (length, 1))
    return Axial(name="axial", inputs=("x",), weight=weight, bias=np.zeros(length, np.int64), axis=axis,
                 unit="u", weight_bits=8, bias_bits=2)


def pointwise_node(c_ins, c_out):
    weight = np.tile(np.arange(sum(c_ins), dtype=np.int64) + 1, (c_out, 1))
    return Pointwise(name="pw", inputs=tuple(f"x{k}" for k in range(len(c_ins))), weight=weight,
                     bias=np.zeros(c_out, np.int64), unit="u", weight_bits=8, bias_bits=2)


def reference_rows(node, ins, port, c, y, x, line_of):
    """``(row, line)`` pairs of one event, read off the reference's currents."""
    xs = [np.zeros((1, *t.shape), np.float32) for t in ins]
    xs[port][(0, c, y, x) if len(ins[port].shape) == 3 else (0, c)] = 1
    out = np.rint(node.currents(xs, ins)[0]).astype(np.int64)
    found = set()
    for index in zip(*np.nonzero(out)):
        found.add((int(out[index]) - 1, line_of(index)))
    return found


def assert_spec_matches_reference(node, ins, line_of):
    spec = scatter_spec(node, ins)
    for port, t in enumerate(ins):
        c_n, h, w = t.shape if len(t.shape) == 3 else (t.shape[0], 1, 1)
        for c in range(c_n):
            for y in range(h):
                for x in range(w):
                    rows = spec.event_rows(c, y, x, port)
                    assert len(rows) == len(set(rows)), (c, y, x, rows)
                    expected = reference_rows(node, ins, port, c, y, x, line_of)
                    assert set(rows) == expected, f"event (port {port}, c {c}, y {y}, x {x})"
    return spec


@settings(max_examples=60, deadline=None)
@given(c_in=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), kernel=st.integers(1, 5),
       stride=st.integers(1, 4), data=st.data())
def test_conv_rows_are_the_reference_taps(c_in, h, w, kernel, stride, data):
    padding = data.draw(st.integers(0, kernel - 1))
    h_out, w_out = output_size(h, kernel, stride, padding), output_size(w, kernel, stride, padding)
    if h_out < 1 or w_out < 1:
        return
    node = conv_node(c_in, kernel, stride, padding)
    spec = assert_spec_matches_reference(node, [spikes((c_in, h, w))], lambda i: i[1] * w_out + i[2])
    assert spec.lines == h_out * w_out and spec.rows == c_in * kernel * kernel and spec.line_length == 1


@pytest.mark.parametrize("axis", ["h", "w"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 5), (3, 7, 7), (1, 6, 2)])
def test_axial_rows_are_columns_of_the_matrix_into_lines(axis, shape):
    c, h, w = shape
    length = h if axis == "h" else w
    # Line numbering: axis h, line (c, x) = c*W + x, the words along h'; axis w, (c, y) = c*H + y.
    line_of = (lambda i: i[0] * w + i[2]) if axis == "h" else (lambda i: i[0] * h + i[1])
    spec = assert_spec_matches_reference(axial_node(length, axis), [spikes(shape)], line_of)
    assert spec.line_length == length and spec.lines == c * (w if axis == "h" else h)


@pytest.mark.parametrize("c_ins", [(3,), (2, 4, 1)])
def test_pointwise_rows_offset_by_input_into_positions(c_ins):
    h, w = 3, 4
    ins = [spikes((c, h, w)) for c in c_ins]
    spec = assert_spec_matches_reference(pointwise_node(c_ins, 5), ins, lambda i: i[1] * w + i[2])
    assert spec.port_offsets == tuple(int(v) for v in np.cumsum((0,) + c_ins[:-1]))


def test_dense_rows_are_input_indices():
    node = Dense(name="fc", inputs=("x",), weight=np.tile(np.arange(6, dtype=np.int64) + 1, (4, 1)),
                 bias=np.zeros(4, np.int64), unit="u", weight_bits=8, bias_bits=2)
    assert_spec_matches_reference(node, [spikes((6,))], lambda i: 0)


def test_a_kind_without_scatter_is_refused_with_its_name():
    lif = Lif(name="tok", inputs=("a",), threshold=np.ones(1, np.int64), leak_shift=1, reset="zero",
              threshold_bits=2, membrane_bits=4)
    with pytest.raises(MappingError, match="node tok: kind 'lif' has no event scatter"):
        scatter_spec(lif, [TensorType((1,), "current", unit="u")])


async def send_events(ctx, events_port, events, rng, gaps):
    """Push events ``(c, y, x, port)`` into a stream, a random idle gap (probability
    ``gaps`` per extra cycle) before each."""
    for c, y, x, port in events:
        while rng.random() < gaps:
            ctx.set(events_port.valid, 0)
            await ctx.tick()
        ctx.set(events_port.payload, {"c": c, "y": y, "x": x, "port": port})
        ctx.set(events_port.valid, 1)
        await ctx.tick().until(events_port.ready)
    ctx.set(events_port.valid, 0)


def simulate_generator(spec, events, seed, gaps=0.3, stall=0.3):
    """Push ``events`` ``(c, y, x, port)`` through the generator under random input gaps
    and output back-pressure; return every row operation ``(row, line, last)`` in order."""
    dut = ScatterGenerator(spec)
    rng = random.Random(seed)
    got = []
    expected_rows = sum(len(spec.event_rows(*e[:3], e[3])) for e in events)

    async def driver(ctx):
        await send_events(ctx, dut.events, events, rng, gaps)

    async def consumer(ctx):
        cycles = 0
        while len(got) < expected_rows and cycles < 50 * (expected_rows + len(events)) + 100:
            ready = rng.random() >= stall
            ctx.set(dut.rows.ready, ready)
            await ctx.delay(1e-9)
            if ready and ctx.get(dut.rows.valid):
                p = ctx.get(dut.rows.payload)
                got.append((p.row, p.line, p.last))
            await ctx.tick()
            cycles += 1
        ctx.set(dut.rows.ready, 0)
        for _ in range(20):  # nothing more may come
            await ctx.tick()
            assert not ctx.get(dut.rows.valid), "the generator produced more rows than the events have"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(consumer)
    sim.run()
    return got


def expected_stream(spec, events):
    out = []
    for c, y, x, port in events:
        rows = spec.event_rows(c, y, x, port)
        out += [(r, ln, int(k == len(rows) - 1)) for k, (r, ln) in enumerate(rows)]
    return out


def random_events(spec, n, rng):
    c_n, h, w = spec.in_shape
    ports = len(spec.port_offsets)
    return [(rng.randrange(c_n), rng.randrange(h), rng.randrange(w), rng.randrange(ports)) for _ in range(n)]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), c_in=st.integers(1, 3), h=st.integers(1, 8), w=st.integers(1, 8),
       kernel=st.integers(1, 4), stride=st.integers(1, 3), data=st.data())
def test_generator_streams_the_rows_of_random_convs(seed, c_in, h, w, kernel, stride, data):
    padding = data.draw(st.integers(0, kernel - 1))
    if output_size(h, kernel, stride, padding) < 1 or output_size(w, kernel, stride, padding) < 1:
        return
    spec = scatter_spec(conv_node(c_in, kernel, stride, padding), [spikes((c_in, h, w))])
    events = random_events(spec, 12, random.Random(seed))
    assert simulate_generator(spec, events, seed) == expected_stream(spec, events)


@pytest.mark.parametrize("case", ["axial-h", "axial-w", "pointwise", "dense", "conv-s2"])
def test_generator_streams_the_rows_of_every_kind(case):
    if case.startswith("axial"):
        node, ins = axial_node(5, case[-1]), [spikes((3, 5, 5))]
    elif case == "pointwise":
        node, ins = pointwise_node((2, 3), 4), [spikes((2, 3, 4)), spikes((3, 3, 4))]
    elif case == "dense":
        node = Dense(name="fc", inputs=("x",), weight=np.ones((3, 9), np.int64), bias=np.zeros(3, np.int64),
                     unit="u", weight_bits=2, bias_bits=2)
        ins = [spikes((9,))]
    else:  # the seed's spiking patch encoding conv: 3x3, stride 2, padding 1
        node, ins = conv_node(2, 3, 2, 1), [spikes((2, 14, 14))]
    spec = scatter_spec(node, ins)
    events = random_events(spec, 40, random.Random(7))
    # Back to back (no gaps, no stall) and under random gaps and back-pressure.
    assert simulate_generator(spec, events, 1, gaps=0.0, stall=0.0) == expected_stream(spec, events)
    assert simulate_generator(spec, events, 2) == expected_stream(spec, events)


def test_generator_takes_a_new_event_as_the_last_row_leaves():
    """Throughput: with no gaps and no back-pressure, N rows take N cycles (+ one to load)."""
    spec = scatter_spec(conv_node(1, 3, 1, 1), [spikes((1, 5, 5))])
    events = [(0, 2, 2, 0)] * 4  # 9 rows each
    dut = ScatterGenerator(spec)
    valid_cycles = []

    async def bench(ctx):
        ctx.set(dut.rows.ready, 1)
        for k, e in enumerate(events):
            ctx.set(dut.events.payload, {"c": e[0], "y": e[1], "x": e[2], "port": e[3]})
            ctx.set(dut.events.valid, 1)
            await ctx.tick().until(dut.events.ready)
        ctx.set(dut.events.valid, 0)

    async def watch(ctx):
        for cycle in range(60):
            await ctx.delay(1e-9)
            if ctx.get(dut.rows.valid):
                valid_cycles.append(cycle)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(watch)
    sim.run()
    assert len(valid_cycles) == 36
    assert valid_cycles == list(range(valid_cycles[0], valid_cycles[0] + 36)), "bubbles between events"


# ---- the accumulate engine: events into a current buffer ---------------------------------

def random_node(kind, rng):
    """A random synapse node of ``kind`` with random small weights and its input types."""
    wb = int(rng.integers(2, 9))
    wmax = (1 << (wb - 1)) - 1

    def weights(shape):
        return rng.integers(-wmax - 1, wmax + 1, size=shape)

    if kind == "conv":
        while True:
            c, h, w, k, s = (int(rng.integers(1, 4)), int(rng.integers(1, 9)), int(rng.integers(1, 9)),
                             int(rng.integers(1, 5)), int(rng.integers(1, 4)))
            p = int(rng.integers(0, k))
            if output_size(h, k, s, p) >= 1 and output_size(w, k, s, p) >= 1:
                break
        c_out = int(rng.integers(1, 12))
        node = Conv(name="n", inputs=("x",), weight=weights((c_out, c, k, k)), bias=weights(c_out), stride=s,
                    padding=p, unit="u", weight_bits=wb, bias_bits=wb)
        return node, [spikes((c, h, w))]
    if kind in ("axial-h", "axial-w"):
        c, h, w = (int(rng.integers(1, 4)), int(rng.integers(1, 9)), int(rng.integers(1, 9)))
        length = h if kind == "axial-h" else w
        node = Axial(name="n", inputs=("x",), weight=weights((length, length)), bias=weights(length),
                     axis=kind[-1], unit="u", weight_bits=wb, bias_bits=wb)
        return node, [spikes((c, h, w))]
    if kind == "pointwise":
        h, w = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        c_ins = [int(rng.integers(1, 5)) for _ in range(int(rng.integers(1, 4)))]
        c_out = int(rng.integers(1, 12))
        node = Pointwise(name="n", inputs=tuple(f"x{k}" for k in range(len(c_ins))),
                         weight=weights((c_out, sum(c_ins))), bias=weights(c_out), unit="u", weight_bits=wb,
                         bias_bits=wb)
        return node, [spikes((c, h, w)) for c in c_ins]
    n_in, n_out = int(rng.integers(1, 30)), int(rng.integers(1, 12))
    node = Dense(name="n", inputs=("x",), weight=weights((n_out, n_in)), bias=weights(n_out), unit="u",
                 weight_bits=wb, bias_bits=wb)
    return node, [spikes((n_in,))]


KINDS = ["conv", "axial-h", "axial-w", "pointwise", "dense"]


def random_step(ins, rng, density):
    """One step's events of every input, ``bool [1, 1, *shape]`` each, and as (c, y, x, port)."""
    xs, events = [], []
    for port, t in enumerate(ins):
        x = rng.random(t.shape) < density
        xs.append(x[None, None])
        for index in zip(*np.nonzero(x)):
            c, y, xx = (int(index[0]), 0, 0) if len(index) == 1 else map(int, index)
            events.append((c, y, xx, port))
    order = rng.permutation(len(events))
    return xs, [events[k] for k in order]


def reference_output(node, ins, xs):
    """``int [*out_shape]``: the node's current plus bias for one step (the numpy reference)."""
    return node.forward(xs, ins)[0, 0]


@pytest.mark.parametrize("kind", KINDS)
def test_scatter_model_accumulates_the_reference_currents(kind):
    """Python model of the engine: every row operation adds its weight row to its line."""
    from snnfpga.rtl.scatter import line_bias, weight_rows

    rng = np.random.default_rng(KINDS.index(kind))
    for _ in range(30):
        node, ins = random_node(kind, rng)
        spec = scatter_spec(node, ins)
        rows = weight_rows(node)
        xs, events = random_step(ins, rng, float(rng.random()))
        buffer = np.tile(line_bias(node), (spec.lines, 1))
        for c, y, x, port in events:
            for row, line in spec.event_rows(c, y, x, port):
                buffer[line] += rows[row]
        out = np.zeros(int(np.prod(spec.out_shape)), np.int64)
        out[spec.line_map().reshape(-1)] = buffer.reshape(-1)
        assert np.array_equal(out.reshape(spec.out_shape), reference_output(node, ins, xs))


def simulate_accumulator(node, ins, steps, lanes, seed, bits=None):
    """Run ``steps`` (lists of events) through a SynapseAccumulator, clearing between steps;
    return the buffer contents after each step as output tensors. ``bits``: the buffer's
    lane width (default: enough for every row once, plus the bias)."""
    from snnfpga.model.widths import signed_bits
    from snnfpga.rtl.accumulate import SynapseAccumulator
    from snnfpga.rtl.scatter import line_bias, weight_rows
    spec = scatter_spec(node, ins)
    rows = weight_rows(node)
    hi = np.maximum(rows, 0).sum(axis=0) + np.maximum(line_bias(node), 0)
    lo = np.minimum(rows, 0).sum(axis=0) + np.minimum(line_bias(node), 0)
    bits = bits or signed_bits(int(lo.min()), int(hi.max()))
    dut = SynapseAccumulator(spec, rows, line_bias(node), lanes, node.weight_bits, bits)
    rng = random.Random(seed)
    results = []

    async def bench(ctx):
        for k, events in enumerate(steps):
            if k:
                ctx.set(dut.clear, 1)
                await ctx.tick()
                ctx.set(dut.clear, 0)
                await ctx.tick()
            await send_events(ctx, dut.events, events, rng, 0.3)
            await ctx.tick().until(dut.idle)
            words = []
            for addr in range(dut.depth):
                ctx.set(dut.read_addr, addr)
                await ctx.tick()
                words.append(ctx.get(dut.read_data))
            values = np.array([[lane_value(w, p, bits) for p in range(dut.lanes)] for w in words])
            buffer = values.reshape(spec.lines, -1)[:, :spec.line_length]
            out = np.zeros(int(np.prod(spec.out_shape)), np.int64)
            out[spec.line_map().reshape(-1)] = buffer.reshape(-1)
            results.append(out.reshape(spec.out_shape))

    def lane_value(word, p, b):
        v = (word >> (p * b)) & ((1 << b) - 1)
        return v - (1 << b) if v >> (b - 1) else v

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


@pytest.mark.parametrize("kind", KINDS)
def test_accumulate_engine_is_bit_exact_for_every_kind(kind):
    """The one accumulate datapath behind each kind's scatter: the buffer after a step equals
    the reference's current plus bias, word for word; a clear starts the next step."""
    rng = np.random.default_rng(100 + KINDS.index(kind))
    for trial in range(3):
        node, ins = random_node(kind, rng)
        steps_x, steps_ev = zip(*[random_step(ins, rng, float(rng.random())) for _ in range(2)])
        lanes = int(rng.integers(1, 9))
        got = simulate_accumulator(node, ins, steps_ev, lanes, seed=trial)
        for k, xs in enumerate(steps_x):
            expected = reference_output(node, ins, xs)
            assert np.array_equal(got[k], expected), (
                f"{kind} trial {trial} step {k} lanes {lanes}: first difference at "
                f"{np.argwhere(got[k] != expected)[0].tolist()}")


def mixer_synapse_case(name):
    """A synapse of the shipped mixer, its input types, and image 0's input events and
    reference outputs per step."""
    from snnfpga.model.artifact import load_artifact
    from snnfpga.model.data import load_dataset
    from snnfpga.sim import reference

    art = load_artifact("mixer")
    trace = reference.run(art, load_dataset("default").split("val").images[:1], record="all")
    graph = art.graph
    node = graph.node(name)
    ins = graph.input_types(node)
    values = {"input": trace.spikes[0].reshape(1, art.timesteps, *graph.source.shape), **trace.outputs}
    if node.inputs == ("pool",):  # the head: every spike of the pooled map adds its channel's row
        values = {"pool": trace.outputs[graph.node("pool").inputs[0]]}
    steps = []
    for t in range(art.timesteps):
        events = []
        for port, src in enumerate(node.inputs):
            x = values[src][0, t]
            for index in zip(*np.nonzero(x)):
                c, y, xx = map(int, index) if len(ins[port].shape) == 3 else (int(index[0]), 0, 0)
                events += [(c, y, xx, port)] * int(x[index])
        steps.append(events)
    from snnfpga.model.widths import signed_bits

    bits = signed_bits(*graph.proofs[name].registers["output"])  # what the graph plan gives a buffer
    return node, ins, steps, trace.outputs[name][0], bits


@pytest.mark.parametrize("name", ["stem", "s0.b0.ax_w", "s1.spe.c1", "s1.b0.fuse", "head"] + [
    pytest.param(name, marks=pytest.mark.slow)
    for name in ("s0.b0.ax_h", "s0.b0.fuse", "s0.b0.mlp2", "s1.spe.c12", "s1.b0.mlp1")])
def test_every_synapse_kind_of_the_mixer_is_bit_exact(name):
    """The real nodes: the stem on encoded pixels, axial H and W, the three-input fuse (one a
    concatenation of spikes), stride-2 and stride-1 convs, 72 -> 216 channels, the head on
    pooled spikes; two steps of image 0 each (the buffer is cleared between them)."""
    node, ins, steps, expected, bits = mixer_synapse_case(name)
    got = simulate_accumulator(node, ins, steps[:2], 8, seed=5, bits=bits)
    for t in range(2):
        diff = np.argwhere(got[t] != expected[t])
        assert not len(diff), f"{name} step {t}: first difference at {diff[0].tolist()}"
