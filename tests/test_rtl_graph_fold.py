"""Lanes per engine of the layer-graph accelerator (rtl/graph_fold.py): the memories the
plan predicts are the ones the engines build, a design with a different lane count in
every engine group is bit-exact and its cycle model holds, and the fold of the shipped
mixer fits the ECP5's block RAM in fewer modelled cycles, the same every time."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnfpga.errors import ConfigError, MappingError
from snnfpga.model.artifact import load_artifact
from snnfpga.model.data import load_dataset
from snnfpga.model.synthetic import random_graph, random_images
from snnfpga.rtl import graph_cycles
from snnfpga.rtl.graph_fold import FOLD_IMAGES, block_ram, fold_for, fold_lanes, lane_groups
from snnfpga.rtl.graph_top import GraphAccelerator, make_graph_top_plan
from snnfpga.rtl.targets import get_target
from snnfpga.sim import reference
from snnfpga.sim.graph_sim import simulate_graph
from snnfpga.sim.scoreboard import compare_graph


def random_caps(plan, rng) -> dict:
    """A random lane cap for every engine group (1 up to twice its widest line)."""
    widest = max(plan.node_lanes.values())
    return {group[0]: int(rng.integers(1, 2 * widest + 1)) for group in lane_groups(plan)}


def test_the_plan_predicts_every_memory_the_engines_build():
    art = random_graph(11, token="glif", head="pool")
    plan = make_graph_top_plan(art, 8, lane_caps=random_caps(make_graph_top_plan(art, 8), np.random.default_rng(1)))
    acc = GraphAccelerator(plan)
    Fragment.get(acc, None)  # the engines build their memories from ``memories``
    built = [("encoder", "pixel_coords")]
    for name, eng in (*acc.accumulators.items(), *acc.engines.items()):
        built += [(name, purpose, *shape) for purpose, shape in eng.memories.items()]
    predicted = plan.memories()
    assert predicted[0][:2] == built[0]
    assert sorted(predicted[1:]) == sorted(built[1:])
    assert {name for name, *_ in predicted[1:]} == set(plan.node_lanes)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), token=st.sampled_from(["axial", "glif"]),
       head=st.sampled_from(["pool", "flatten", "dense"]))
def test_different_lanes_per_engine_group_are_bit_exact_and_modelled(seed, token, head):
    art = random_graph(seed, token=token, head=head)
    caps = random_caps(make_graph_top_plan(art, 1), np.random.default_rng(seed))
    plan = make_graph_top_plan(art, 1, lane_caps=caps)
    for group in lane_groups(plan):  # a LIF and the buffers it sums read word by word: one count
        assert len({plan.node_lanes[n] for n in group}) == 1
    images = random_images(art, 2, seed=seed)
    run = simulate_graph(art, images, lanes=1, lane_caps=caps, seed=seed)
    mismatches = compare_graph(reference.run(art, images), run.spikes, run.scores, run.classes)
    assert not mismatches, "\n".join(map(str, mismatches[:10]))
    model = graph_cycles.estimate(plan, reference.run(art, images), streamed=True)["cycles"]
    assert (np.abs(model - run.cycles) / run.cycles).max() <= 0.02, (model.tolist(), run.cycles.tolist())


def test_lane_caps_naming_no_engine_or_out_of_range_are_refused():
    art = random_graph(3, token="axial", head="pool")
    with pytest.raises(MappingError, match="not an engine"):
        make_graph_top_plan(art, 4, lane_caps={"nonesuch": 4})
    with pytest.raises(MappingError, match="lanes of stem"):
        make_graph_top_plan(art, 4, lane_caps={"stem": 0})


def test_the_fold_of_the_mixer_fits_the_ecp5_in_fewer_cycles_every_time():
    art = load_artifact("mixer")
    target = get_target("ecp5-85k")
    images = load_dataset("default").split("val").limit(FOLD_IMAGES).images
    caps = fold_lanes(art, images, target)
    assert fold_for(art, target) == caps  # the bundled images: the same fold every time
    base, folded = make_graph_top_plan(art), make_graph_top_plan(art, lane_caps=caps)
    assert sum(block_ram(folded, target).values()) <= target.capacity["dp16kd"]
    assert max(folded.node_lanes.values()) > base.lanes
    trace = reference.run(art, images, record="all")
    before = graph_cycles.estimate(base, trace)["cycles"].mean()
    after = graph_cycles.estimate(folded, trace)["cycles"].mean()
    assert after < 0.6 * before, (before, after)


def test_no_fold_when_the_base_design_is_over_the_block_ram():
    art = load_artifact("mixer-tiny")
    target = get_target("ice40-up5k")
    images = load_dataset("default").split("val").limit(4).images
    with pytest.raises(MappingError, match=r"EBR blocks at 8 lanes, the ice40-up5k has 30 \(29 after the 3% reserve\)"):
        fold_lanes(art, images, target)
    assert fold_for(art, target) == {}


def test_a_fold_needs_images_of_the_models_input_shape():
    art = random_graph(3, token="axial", head="pool")
    if tuple(art.input_shape) == (28, 28):
        pytest.skip("the random graph takes MNIST-sized images")
    with pytest.raises(ConfigError, match="--lanes auto folds on the bundled 28x28 images"):
        fold_for(art, get_target("ecp5-85k"))
