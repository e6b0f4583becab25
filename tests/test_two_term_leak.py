"""A leak of two shift terms, ``v - (v >> k) - (v >> k2)`` (``leak_shift2``): its proof (the
leak is not monotone), the reference against the scalar oracle and the torch integer mode,
the chain accelerator bit-exact, the artifact on disk, and what is refused."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest

from snnfpga.errors import ArtifactError
from snnfpga.model import widths as W
from snnfpga.model.artifact import MANIFEST, load_artifact, save_artifact, validate
from snnfpga.model.integer_torch import IntegerSNN
from snnfpga.model.synthetic import random_artifact, random_images
from snnfpga.rtl.plan import make_plan
from snnfpga.sim import amaranth_sim, reference
from snnfpga.sim.scoreboard import compare
from tests.contract_oracle import run_graph_one

PAIRS = [(k, k2) for k in range(1, 5) for k2 in range(k + 1, 7)]


def test_the_leak_is_not_monotone_and_its_range_holds_every_value_within_one():
    assert (W.leak(np.int64(3), 1, 2), W.leak(np.int64(4), 1, 2)) == (2, 1)
    for k, k2 in PAIRS:
        values = np.arange(-300, 301, dtype=np.int64)
        leaked = W.leak(values, k, k2)
        for lo, hi in [(-300, 300), (-7, -1), (-1, 1), (3, 4), (0, 0), (17, 150), (-150, -17)]:
            inside = leaked[(values >= lo) & (values <= hi)]
            got_lo, got_hi = W.leak_range(np.int64(lo), np.int64(hi), k, k2)
            assert got_lo <= inside.min() and inside.max() <= got_hi, (k, k2, lo, hi)
            assert inside.min() - got_lo <= 1 and got_hi - inside.max() <= 1, (k, k2, lo, hi)  # within one


def two_term_artifact(seed, reset, fire, **kwargs):
    options = dict(input_shape=(4, 4), hidden=(7, 6), n_classes=4, threshold_scale=0.2, timesteps=5,
                   leak_shift=1, leak_shift2=2)
    options.update(kwargs)
    return random_artifact(seed, reset=reset, fire=fire, **options)


@pytest.mark.parametrize("reset, fire", list(itertools.product(["zero", "subtract", "subtract_next"], [">=", ">"])))
@pytest.mark.parametrize("shifts", [(1, 2), (2, 5)])
def test_reference_equals_the_oracle_and_torch_and_the_membranes_stay_in_their_proof(reset, fire, shifts):
    art = two_term_artifact(sum(shifts), reset, fire, leak_shift=shifts[0], leak_shift2=shifts[1],
                            spiking_output=reset == "subtract")
    assert all(layer.leak_shift2 == shifts[1] for layer in art.layers if layer.spiking)
    images = random_images(art, 6, seed=1)
    ref = reference.run(art, images, record="all")
    ours = IntegerSNN(art).run(images, record="all")
    for name, value in ref.outputs.items():
        assert np.array_equal(value, ours.outputs[name].numpy()), name
    for k, image in enumerate(images):
        observed = {}
        _, scores, best = run_graph_one(art, image, observed=observed)
        assert list(ref.scores[k]) == scores and ref.classes[k] == best
        for name, (lo, hi) in observed.items():
            p_lo, p_hi = art.graph.proofs[name].registers["membrane"]
            assert p_lo <= lo and hi <= p_hi, (name, (lo, hi), (p_lo, p_hi))
    single = two_term_artifact(sum(shifts), reset, fire, leak_shift=shifts[0], leak_shift2=None,
                               spiking_output=reset == "subtract")
    assert any((a != b).any() for a, b in zip(reference.run(single, images).spikes, ref.spikes))  # it matters


@pytest.mark.parametrize("reset", ["zero", "subtract", "subtract_next"])
def test_the_chain_accelerator_is_bit_exact(reset):
    """Saturating membranes, the spiking output's membrane too."""
    art = two_term_artifact(31, reset, ">=", membrane_bits=6, extreme=True, spiking_output=True)
    assert any(art.saturates(i) for i in range(len(art.layers)))
    images = random_images(art, 4, seed=31)
    run = amaranth_sim.simulate(make_plan(art, lanes=3), images, input_gaps=0.2, output_stall=0.3, seed=2)
    mismatches = compare(reference.run(art, images), run.trace)
    assert not mismatches, "\n".join(map(str, mismatches[:10]))


def test_the_manifest_names_the_second_term_only_when_there_is_one(tmp_path):
    art = two_term_artifact(3, "zero", ">=")
    save_artifact(art, tmp_path / "two")
    layers = json.loads((tmp_path / "two" / MANIFEST).read_text())["layers"]
    assert [entry.get("leak_shift2") for entry in layers] == [2, 2, None]
    back = load_artifact(tmp_path / "two")
    assert [layer.leak_shift2 for layer in back.layers[:-1]] == [2, 2]
    save_artifact(random_artifact(3), tmp_path / "one")
    assert "leak_shift2" not in (tmp_path / "one" / MANIFEST).read_text()


@pytest.mark.parametrize("shift, shift2, message", [
    (None, 3, "leak_shift2 needs a leak_shift"),
    (2, 2, r"leak_shift2 must be an integer in 3\.\.16, got 2"),
    (2, 17, r"leak_shift2 must be an integer in 3\.\.16, got 17"),
])
def test_a_second_term_the_contract_cannot_hold_is_refused_naming_the_node(shift, shift2, message):
    art = two_term_artifact(4, "zero", ">=")
    nodes = tuple(replace(n, leak_shift=shift, leak_shift2=shift2) if n.name == "fc1" else n for n in art.nodes)
    with pytest.raises(ArtifactError, match=rf"node 'fc1' \(lif\): {message}"):
        validate(replace(art, nodes=nodes))
