"""The hardware plan of layer graphs (rtl/graph_plan.py): roles, memories, refusals, cycles."""

from __future__ import annotations

import numpy as np
import pytest

from snnfpga.errors import MappingError
from snnfpga.model.artifact import load_artifact
from snnfpga.model.data import load_dataset
from snnfpga.rtl import graph_plan
from snnfpga.rtl.graph_plan import MemoryPlan, blocks, make_graph_plan
from snnfpga.rtl.targets import get_target
from snnfpga.sim import reference


@pytest.fixture(scope="module")
def mixer():
    return load_artifact("mixer")


def test_roles_follow_the_readers_of_each_current(mixer):
    plan = make_graph_plan(mixer, 16)
    role = {n: p.role for n, p in plan.nodes.items()}
    # The stem current is read by its LIF and by the token and channel LIFs of the block (a
    # skip connection): buffered. An axial branch feeds its LIF alone: scattered into it.
    assert role["stem"] == "buffer" and role["s0.b0.fuse"] == "buffer"
    assert role["s0.b0.ax_h"] == "scatter" and plan.nodes["s0.b0.ax_h"].target == "s0.b0.ax_h.lif"
    assert role["s0.b0.mlp2"] == "scatter" and plan.nodes["s0.b0.mlp2"].target == "s0.b0.ch"
    assert role["s1.spe.x"] == "wiring" and role["s1.spe.node2"] == "wiring" and role["pool"] == "wiring"
    assert role["s0.b0.tok"] == "neuron" and role["out"] == "neuron"
    # Axial h: one line per (channel, column), the H positions of the line in the lanes.
    ax = plan.nodes["s0.b0.ax_h.lif"]
    assert (ax.lines, ax.lanes, ax.groups) == (24 * 14, 14, 1)
    ch = plan.nodes["s1.b0.mlp1.lif"]
    assert (ch.lines, ch.lanes, ch.groups) == (49, 16, 216 // 16 + 1)


def test_memories_hold_every_weight_and_neuron(mixer):
    graph = mixer.graph
    plan = make_graph_plan(mixer, 8)
    for name, node in plan.nodes.items():
        n = graph.node(name)
        for mem in node.memories:
            if mem.purpose == "weights":
                assert mem.words * (mem.width // n.weight_bits) >= n.weight.size, name
            if mem.purpose == "state":
                assert mem.words * node.lanes >= graph.types[name].size, name


def test_block_counts_use_the_best_primitive_shape():
    assert blocks(MemoryPlan("x", 512, 36), "dp16kd") == 1
    assert blocks(MemoryPlan("x", 513, 36), "dp16kd") == 2
    assert blocks(MemoryPlan("x", 2048, 9), "dp16kd") == 1
    assert blocks(MemoryPlan("x", 100, 72), "dp16kd") == 2
    assert blocks(MemoryPlan("x", 16384, 17), "spram") == 2
    assert blocks(MemoryPlan("x", 300, 16), "ebr") == 2


def test_a_graph_too_big_for_the_target_is_refused_naming_the_largest_user(mixer):
    ecp5, up5k = get_target("ecp5-85k"), get_target("ice40-up5k")
    assert graph_plan.check_fits(make_graph_plan(mixer, 8), ecp5)["dp16kd"] <= 208
    with pytest.raises(MappingError, match=r"graph mixer at 64 lanes needs \d+ DP16KD blocks, the ecp5-85k has 208 "
                                           r"\(largest: node \S+, \d+ blocks\)"):
        make_graph_plan(mixer, 64, target=ecp5)
    with pytest.raises(MappingError, match=r"needs \d+ SPRAM blocks, the ice40-up5k has 4 \(largest: \(state\)"):
        make_graph_plan(mixer, 8, target=up5k)


def test_bad_lanes_are_refused(mixer):
    with pytest.raises(MappingError, match="lanes must be an integer in 1..256, got 0"):
        make_graph_plan(mixer, 0)
    with pytest.raises(MappingError, match="lanes must be an integer in 1..256, got 512"):
        make_graph_plan(mixer, 512)  # the chain engine's 512 is not verified for graph engines


def test_cycle_estimate_counts_rows_of_every_event(mixer):
    """Integrate cycles equal the synaptic operations divided by the lanes when every line
    is a whole number of groups (P = 1: one weight per cycle)."""
    images = load_dataset("default").split("val").images[:3]
    trace = reference.run(mixer, images, record="all")
    est = graph_plan.estimate(make_graph_plan(mixer, 1), trace.outputs, trace.spikes[0])
    assert np.array_equal(est["integrate"], reference.synaptic_ops(mixer, trace))
    wide = graph_plan.estimate(make_graph_plan(mixer, 8), trace.outputs, trace.spikes[0])
    assert (wide["integrate"] < est["integrate"]).all() and (wide["integrate"] * 8 >= est["integrate"]).all()
    assert (wide["pipelined"] < wide["shared"]).all()
    assert set(wide["bottleneck"]) <= {p.name for p in make_graph_plan(mixer, 8).engines}
