"""The whole layer-graph accelerator in Amaranth's simulator against the reference.

Every spike of every spiking node at every step, every score and every class, on random
graphs (every node kind: conv with random geometry, axial or group-LIF token mixing, a
three-input fuse, add and concat of currents, concat of spikes, a strided conv, pool,
flatten or direct dense heads; random widths, leaks, resets, encoders and T) under random
input gaps and result back-pressure, and on the shipped mixers (slow marker).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnfpga.errors import MappingError
from snnfpga.model.artifact import load_artifact
from snnfpga.model.data import load_dataset
from snnfpga.model.synthetic import random_graph, random_images
from snnfpga.rtl import graph_cycles
from snnfpga.rtl.graph_top import make_graph_top_plan
from snnfpga.sim import reference
from snnfpga.sim.graph_sim import simulate_graph
from snnfpga.sim.scoreboard import compare_graph


def assert_graph_bit_exact(art, images, **kwargs):
    run = simulate_graph(art, images, **kwargs)
    assert run.images == len(images)
    mismatches = compare_graph(reference.run(art, images), run.spikes, run.scores, run.classes)
    assert not mismatches, "\n".join(map(str, mismatches[:10]))
    return run


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), token=st.sampled_from(["axial", "glif"]),
       head=st.sampled_from(["pool", "flatten", "dense"]), beat=st.sampled_from([1, 2, 4, 8]),
       wide=st.booleans(), stalls=st.booleans(), narrow=st.booleans())
def test_random_graphs_are_bit_exact(seed, token, head, beat, wide, stalls, narrow):
    art = random_graph(seed, token=token, head=head, membrane_bits=5 if narrow else None)
    c = art.graph.types["stem"].shape[0]
    lanes = c if wide else 1  # concatenated currents must start on a lane group
    assert_graph_bit_exact(art, random_images(art, 2, seed=seed), lanes=lanes, pixels_per_beat=beat,
                           input_gaps=0.3 if stalls else 0.0, output_stall=0.5 if stalls else 0.0, seed=seed)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), token=st.sampled_from(["axial", "glif"]),
       head=st.sampled_from(["pool", "flatten", "dense"]), beat=st.sampled_from([1, 2, 4, 8]),
       wide=st.booleans(), stalls=st.booleans(), extreme=st.booleans())
def test_random_graphs_are_bit_exact_long(seed, token, head, beat, wide, stalls, extreme):
    art = random_graph(seed, token=token, head=head, extreme=extreme)
    c = art.graph.types["stem"].shape[0]
    assert_graph_bit_exact(art, random_images(art, 3, seed=seed), lanes=c if wide else 1, pixels_per_beat=beat,
                           input_gaps=0.3 if stalls else 0.0, output_stall=0.5 if stalls else 0.0, seed=seed)


def test_lanes_follow_concatenated_currents():
    """A LIF summing a concatenation reads its buffers word by word: it and its buffers get
    the largest lane count that divides every concatenation offset (3 channels at 2 lanes:
    1); engines elsewhere keep the lanes asked for."""
    art = random_graph(2, channels=3)  # skipcat.lif sums [stem (3 channels), skip (3 channels)]
    plan = make_graph_top_plan(art, lanes=2)
    assert plan.node_lanes["skipcat.lif"] == plan.node_lanes["stem"] == plan.node_lanes["fuse"] == 1
    assert plan.node_lanes["mlp1"] == 2 and plan.node_lanes["head"] == 2
    assert make_graph_top_plan(art, lanes=3).node_lanes["skipcat.lif"] == 3
    with pytest.raises(MappingError, match="lanes must be an integer"):
        make_graph_top_plan(art, lanes=0)


def test_a_graph_the_generator_cannot_map_is_refused_naming_the_node():
    """A LIF summing an axial current (lanes along H) and a conv current (lanes along the
    channels): one neuron tensor cannot have both layouts."""
    from snnfpga.model import kinds as K
    from snnfpga.model.artifact import Encoder, build_graph_artifact

    rng = np.random.default_rng(0)
    nodes = [K.Conv(name="stem", inputs=("input",), weight=rng.integers(-3, 4, (2, 1, 3, 3)), bias=np.zeros(2, int),
                    weight_bits=3, unit="u", stride=1, padding=1),
             K.Lif(name="stem.lif", inputs=("stem",), threshold=np.full((2, 1, 1), 3), leak_shift=1, reset="zero"),
             K.Axial(name="ax", inputs=("stem.lif",), axis="h", weight=rng.integers(-3, 4, (5, 5)),
                     bias=np.zeros(5, int), weight_bits=3, unit="u"),
             K.Lif(name="mixed", inputs=("stem", "ax"), threshold=np.full((2, 1, 1), 3), leak_shift=1, reset="zero"),
             K.Pool(name="pool", inputs=("mixed",)),
             K.Dense(name="head", inputs=("pool",), weight=rng.integers(-3, 4, (2, 2)), bias=np.zeros(2, int),
                     weight_bits=3, unit="head"),
             K.Output(name="out", inputs=("head",))]
    art = build_graph_artifact("mixed-layouts", (5, 5), Encoder("rate", phase=0), 2, nodes)
    with pytest.raises(MappingError, match=r"^node mixed: sums currents laid out differently \(stem: lanes along c, "
                                           r"ax: along y\)$"):
        make_graph_top_plan(art, lanes=2)


def test_a_wrong_reference_is_caught_with_node_and_coordinates():
    """The checks can fail: a different encoder phase changes the stem's spikes first."""
    import dataclasses

    from snnfpga.model.artifact import Encoder

    art = random_graph(1, channels=2, token="axial", head="pool")
    art = dataclasses.replace(art, encoder=Encoder("rate", phase=0))
    other = dataclasses.replace(art, encoder=Encoder("rate", phase=200))
    images = random_images(art, 1, seed=1)
    run = simulate_graph(art, images, lanes=2)
    found = compare_graph(reference.run(other, images), run.spikes, run.scores, run.classes)
    assert found and str(found[0]).startswith("mismatch: image 0, step ")
    assert found[0].node in art.graph.types and len(found[0].neuron) == 3


@pytest.mark.parametrize("seed, token, head", [(21, "axial", "dense"), (4, "glif", "pool"), (9, "axial", "flatten")])
def test_lif_nodes_that_fire_above_their_threshold_are_bit_exact(seed, token, head):
    """``fire = ">"`` (snnTorch's comparison) in every lif node of a random graph, the
    membranes re-proven (they hold theta + 1); then snnTorch's reset too (``subtract_next``:
    one more state bit per lane)."""
    import dataclasses

    from snnfpga.model.artifact import build_graph_artifact
    from snnfpga.model.kinds import Lif

    base = random_graph(seed, token=token, head=head)
    nodes = [dataclasses.replace(n, fire=">", membrane_bits=0) if isinstance(n, Lif) else n for n in base.nodes]
    art = build_graph_artifact(base.name, base.input_shape, base.encoder, base.timesteps, nodes)
    assert all(n.fire == ">" for n in art.nodes if isinstance(n, Lif))
    images = random_images(art, 2, seed=seed)
    assert_graph_bit_exact(art, images, lanes=art.graph.types["stem"].shape[0])
    ge = reference.run(base, images)
    gt = reference.run(art, images)
    assert any((a != b).any() for a, b in zip(ge.spikes, gt.spikes))  # the comparison matters here
    nodes = [dataclasses.replace(n, reset="subtract_next", membrane_bits=0) if isinstance(n, Lif) else n
             for n in art.nodes]  # snnTorch's semantics: fire ">", the spike subtracted in the next step
    snntorch = build_graph_artifact(base.name, base.input_shape, base.encoder, base.timesteps, nodes)
    assert all(n.reset == "subtract_next" for n in snntorch.nodes if isinstance(n, Lif))
    assert_graph_bit_exact(snntorch, images, lanes=art.graph.types["stem"].shape[0])
    st = reference.run(snntorch, images)
    assert any((a != b).any() for a, b in zip(gt.spikes, st.spikes))  # the reset matters here


@pytest.mark.parametrize("seed, token, head", [(21, "axial", "dense"), (4, "glif", "pool")])
def test_lif_nodes_with_a_two_term_leak_are_bit_exact(seed, token, head):
    """``v - (v >> k) - (v >> k2)`` in every lif node of a random graph (membranes re-proven)."""
    import dataclasses

    from snnfpga.model.artifact import build_graph_artifact
    from snnfpga.model.kinds import Lif

    base = random_graph(seed, token=token, head=head)
    nodes = [dataclasses.replace(n, leak_shift=n.leak_shift or 1, leak_shift2=(n.leak_shift or 1) + 2, membrane_bits=0)
             if isinstance(n, Lif) else n for n in base.nodes]
    art = build_graph_artifact(base.name, base.input_shape, base.encoder, base.timesteps, nodes)
    assert all(n.leak_shift2 == n.leak_shift + 2 for n in art.nodes if isinstance(n, Lif))
    images = random_images(art, 2, seed=seed)
    assert_graph_bit_exact(art, images, lanes=art.graph.types["stem"].shape[0])
    single = [dataclasses.replace(n, leak_shift2=None) if isinstance(n, Lif) else n for n in art.nodes]
    single = build_graph_artifact(base.name, base.input_shape, base.encoder, base.timesteps, single)
    assert any((a != b).any() for a, b in zip(reference.run(single, images).spikes, reference.run(art, images).spikes))


@pytest.mark.parametrize("token, head", [("axial", "dense"), ("glif", "pool")])
def test_weights_loaded_at_run_time_are_bit_exact_and_a_wrong_load_is_caught(token, head, monkeypatch):
    """Weight storage ``ram``: every synapse's weight memory starts empty and is written
    through the ``weights`` port (one word per cycle, ``WEIGHT_ADDR.LAYER`` = the synapse's
    index) before the first image; the result is the ROM design's, and a load that leaves
    the memories empty (every current its bias alone) is caught, naming a node."""
    from snnfpga.rtl.graph_top import GraphTopPlan

    art = random_graph(21, token=token, head=head)
    images = random_images(art, 2, seed=21)
    lanes = art.graph.types["stem"].shape[0]
    plan = make_graph_top_plan(art, lanes, weight_storage="ram")
    assert plan.weight_memory_count == len(plan.specs) and plan.weight_nodes[0] == "stem"
    rom = assert_graph_bit_exact(art, images, lanes=lanes)
    ram = assert_graph_bit_exact(art, images, lanes=lanes, weight_storage="ram")
    # Image 0 of the ROM design starts right after reset; with RAM weights the load comes first.
    assert (ram.classes == rom.classes).all() and (ram.cycles[1:] == rom.cycles[1:]).all()

    original = GraphTopPlan.weight_contents

    def left_empty(self):
        return [[0] * len(words) for words in original(self)]

    monkeypatch.setattr(GraphTopPlan, "weight_contents", left_empty)
    run = simulate_graph(art, images, lanes=lanes, weight_storage="ram")
    found = compare_graph(reference.run(art, images), run.spikes, run.scores, run.classes)
    assert found and found[0].node in art.graph.types, found[:1]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mixer", "mixer-glif", "mixer-tiny"])
def test_shipped_mixers_are_bit_exact(name):
    art = load_artifact(name)
    images = load_dataset("default").split("val").images[:2]
    run = assert_graph_bit_exact(art, images, lanes=8, input_gaps=0.1, output_stall=0.2)
    assert (run.cycles > 0).all()
    assert np.array_equal(run.classes, reference.run(art, images).classes)


@pytest.mark.parametrize("seed, token, head, beat, wide", [
    (1690497763, "axial", "pool", 2, False), (1576784849, "glif", "pool", 8, False),
    (577090037, "axial", "flatten", 1, True), (1689017785, "glif", "flatten", 4, True),
    (95872739, "axial", "dense", 4, False)])
def test_the_cycle_model_is_within_two_percent_of_the_rtl_per_image(seed, token, head, beat, wide):
    """rtl/graph_cycles.py against the accelerator, images back to back (as the benches and
    the register block send them), every image: within 2% (the shipped mixers: 0.2%)."""
    art = random_graph(seed, token=token, head=head)
    lanes = art.graph.types["stem"].shape[0] if wide else 1
    images = random_images(art, 3, seed=seed)
    run = assert_graph_bit_exact(art, images, lanes=lanes, pixels_per_beat=beat, seed=seed)
    plan = make_graph_top_plan(art, lanes, beat)
    model = graph_cycles.estimate(plan, reference.run(art, images), streamed=True)
    error = np.abs(model["cycles"] - run.cycles) / run.cycles
    assert error.max() <= 0.02, f"RTL {run.cycles.tolist()}, model {model['cycles'].tolist()}"
    parts = model["encode"] + model["neuron"] + model["integrate"] + model["fixed"]
    assert (parts == model["cycles"]).all() and (model["integrate"] >= 0).all()
    alone = graph_cycles.estimate(plan, reference.run(art, images))["cycles"]
    assert alone[0] <= model["cycles"][0] and (alone[1:] < model["cycles"][1:]).all()  # streamed images wait
