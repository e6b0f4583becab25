"""The spiking output layer (``lif_output``): LIF output neurons decided by spike count, ties
broken by membrane. The reference against the scalar oracle and the torch integer mode, the
score's meaning, the artifact on disk, the chain hardware bit-exact, the graph accelerator's
refusal."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from snnfpga.errors import ArtifactError, MappingError
from snnfpga.model.artifact import build_graph_artifact, load_artifact, manifest_dict, arrays_sha256, save_artifact
from snnfpga.model.graph import SOURCE
from snnfpga.model.integer_torch import IntegerSNN
from snnfpga.model.kinds import Dense, Lif, LifOutput, Output
from snnfpga.model.synthetic import random_artifact, random_images
from snnfpga.rtl.plan import make_plan
from snnfpga.sim import amaranth_sim, reference
from snnfpga.sim.scoreboard import compare
from tests.contract_oracle import run_graph_one

VARIANTS = list(itertools.product(["zero", "subtract", "subtract_next"], [">=", ">"]))


def spiking_output_artifact(seed, reset, fire, **kwargs):
    options = dict(input_shape=(4, 4), hidden=(7,), n_classes=5, threshold_scale=0.2, timesteps=4)
    options.update(kwargs)
    return random_artifact(seed, reset=reset, fire=fire, spiking_output=True, **options)


@pytest.mark.parametrize("reset, fire", VARIANTS)
@pytest.mark.parametrize("narrow", [False, True])
def test_reference_equals_the_scalar_oracle_and_the_torch_integer_mode(reset, fire, narrow):
    art = spiking_output_artifact(3, reset, fire, membrane_bits=5 if narrow else None, extreme=narrow)
    assert art.layers[-1].kind == "lif_output" and art.nodes[-1].KIND == "lif_output"
    images = random_images(art, 5, seed=3)
    ref = reference.run(art, images, record="all")
    torch_run = IntegerSNN(art).run(images, record="all")
    assert np.array_equal(ref.outputs[art.nodes[-1].name], torch_run.outputs[art.nodes[-1].name].numpy())
    for k, image in enumerate(images):
        history, scores, best = run_graph_one(art, image)
        assert np.array_equal(np.array(history[art.nodes[-1].name]), ref.outputs[art.nodes[-1].name][k])
        assert list(ref.scores[k]) == scores and ref.classes[k] == best


def test_the_score_is_the_spike_count_above_the_membrane():
    """Decoded scores give the spike counts that an ``output`` integrating the same LIF
    population's spikes (identity weights) accumulates, and a membrane inside its register;
    the class is the most spikes, the higher membrane winning a tie, the lowest index then."""
    art = spiking_output_artifact(5, "subtract", ">=", n_classes=6, timesteps=6)
    last, m = art.nodes[-1], art.nodes[-1].membrane_bits
    counting = [n for n in art.nodes[:-1]] + [
        Lif(name="spikes", inputs=last.inputs, threshold=last.threshold, leak_shift=last.leak_shift,
            reset=last.reset, fire=last.fire),
        Dense(name="count.dense", inputs=("spikes",), unit="count", weight=np.eye(6, dtype=np.int64),
              bias=np.zeros(6, np.int64), weight_bits=2),
        Output(name="count", inputs=("count.dense",))]
    counter = build_graph_artifact("counting", art.input_shape, art.encoder, art.timesteps,
                                   counting, membrane_bits=None)
    assert counter.nodes[-3].membrane_bits == m or not art.nodes[-1].saturates(art.graph.proofs[last.name])
    images = random_images(art, 40, seed=5)
    scores = reference.run(art, images).scores
    counts, membrane = scores >> m, (scores & ((1 << m) - 1)) - (1 << (m - 1))
    assert np.array_equal(counts, reference.run(counter, images).scores)
    assert membrane.min() >= -(1 << (m - 1)) and membrane.max() < (1 << (m - 1))
    assert counts.max() > 0 and len(set(map(tuple, counts))) > 1  # the test sees spikes and ties
    for k in range(len(images)):
        best = max(range(6), key=lambda j: (counts[k, j], membrane[k, j], -j))
        assert reference.run(art, images[k:k + 1]).classes[0] == best


def test_the_artifact_is_written_as_version_2_and_reads_back_identical(tmp_path):
    art = spiking_output_artifact(7, "subtract_next", ">")
    assert art.is_chain and art.format_version == 2
    manifest = manifest_dict(art, arrays_sha256(art))
    entry = manifest["nodes"][-1]
    assert entry["kind"] == "lif_output" and entry["fire"] == ">" and entry["reset"] == "subtract_next"
    assert entry["score_bits"] == LifOutput.score_bits_for(art.timesteps, entry["membrane_bits"])
    assert entry["proven_bounds"]["count"] == [0, art.timesteps]
    save_artifact(art, tmp_path / "a")
    back = load_artifact(tmp_path / "a")
    assert back.layers[-1].kind == "lif_output" and arrays_sha256(back) == arrays_sha256(art)
    save_artifact(back, tmp_path / "b")
    for name in ("manifest.json", "arrays.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_score_width_that_does_not_follow_the_membrane_is_refused():
    from snnfpga.model.artifact import validate

    art = spiking_output_artifact(8, "zero", ">=")
    wrong = (*art.nodes[:-1], replace(art.nodes[-1], score_bits=art.nodes[-1].score_bits + 1))
    with pytest.raises(ArtifactError, match=r"node 'fc2' \(lif_output\): score_bits must be"):
        validate(replace(art, nodes=wrong))
    flat_only = [*art.nodes[:-1], replace(art.nodes[-1], threshold=np.zeros(5, np.int64))]
    with pytest.raises(ArtifactError, match="thresholds must be >= 1"):
        build_graph_artifact("w", art.input_shape, art.encoder, art.timesteps, flat_only)


@pytest.mark.parametrize("reset, fire", VARIANTS)
def test_the_chain_accelerator_is_bit_exact(reset, fire):
    """Every reset and fire variant, saturating membranes, lanes that do not divide the
    classes, random gaps and back-pressure."""
    art = spiking_output_artifact(11, reset, fire, membrane_bits=6, n_classes=5)
    images = random_images(art, 4, seed=11)
    plan = make_plan(art, lanes=3)
    run = amaranth_sim.simulate(plan, images, input_gaps=0.2, output_stall=0.4, seed=11)
    mismatches = compare(reference.run(art, images), run.trace)
    assert not mismatches, "\n".join(map(str, mismatches[:10]))


def test_one_step_images_back_to_back_keep_their_scores():
    """T = 1, whole images back to back under back-pressure on the results (the engine
    alone, fed tokens back to back, is in tests/test_sim_cocotb.py)."""
    art = spiking_output_artifact(12, "zero", ">=", timesteps=1, hidden=(3,), n_classes=2)
    images = random_images(art, 6, seed=12)
    run = amaranth_sim.simulate(make_plan(art, lanes=2, pixels_per_beat=8), images, output_stall=0.6, seed=3)
    assert not compare(reference.run(art, images), run.trace)


@pytest.mark.parametrize("reset, fire", VARIANTS)
def test_the_graph_accelerator_is_bit_exact_on_a_spiking_output(reset, fire):
    """The graph accelerator's head as LIF neurons per class (every reset and fire variant,
    saturating membranes); an output that sums a second current is refused naming it."""
    from snnfpga.rtl.graph_top import make_graph_top_plan
    from tests.test_rtl_graph_top import assert_graph_bit_exact

    art = spiking_output_artifact(13, reset, fire, membrane_bits=6)
    images = random_images(art, 4, seed=13)
    assert reference.run(art, images).scores.max() >> art.nodes[-1].membrane_bits > 0  # the classes spike
    assert_graph_bit_exact(art, images, lanes=3)
    nodes = list(art.nodes)
    skip = Dense(name="skip.dense", inputs=(SOURCE,), unit="fc2", weight=np.ones((5, 16), np.int64),
                 bias=np.zeros(5, np.int64), weight_bits=2)
    graph_art = build_graph_artifact("g", art.input_shape, art.encoder, art.timesteps,
                                     nodes[:-1] + [skip, replace(nodes[-1], inputs=(*nodes[-1].inputs, "skip.dense"))])
    assert not graph_art.is_chain
    with pytest.raises(MappingError, match="node fc2: the output must read one dense current"):
        make_graph_top_plan(graph_art)
