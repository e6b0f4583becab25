"""Time-to-first-spike coding: the encoder, the ``ttfs`` and ``ttfs_output`` kinds against
the scalar oracle and the torch integer mode, the exact map onto the integer ReLU network
(every hidden neuron's spike time is ``S`` minus its activation, on every validation image
of the trained models), bad artifacts and configs, a short training, and the command line."""

from pathlib import Path

import numpy as np
import pytest

from snnfpga.errors import ArtifactError, ConfigError
from snnfpga.model.artifact import Encoder, build_graph_artifact, load_artifact
from snnfpga.model.config import TrainConfig, preset
from snnfpga.model.data import load_dataset
from snnfpga.model.integer_torch import IntegerSNN
from snnfpga.model.kinds import Lif, Dense, Ttfs, TtfsOutput
from snnfpga.model.kinds.ttfs import activations, relu_forward
from snnfpga.model.synthetic import random_images, random_ttfs
from snnfpga.sim import reference
from tests.cli_common import cli, last_json
from tests.test_graph import assert_matches_oracle

MODELS = Path(__file__).resolve().parents[1] / "model"
TRAINED = {"ttfs": (98.0, 0.3), "ttfs-tiny": (97.0, 0.3)}  # integer accuracy >=, spikes per neuron <=


def test_encoder_fires_once_at_s_minus_x_and_never_for_zero():
    art = random_ttfs(0, bits=3)
    pixels = np.array([[0, 31, 32, 100, 255, 224, 7, 64] * 3 + [128]], dtype=np.uint8).reshape(1, 5, 5)
    spikes = reference.encode(art.encoder, pixels.reshape(1, -1).astype(np.int64), art.timesteps)
    x = pixels.reshape(-1).astype(np.int64) >> 5
    for i, xi in enumerate(x):
        steps = np.flatnonzero(spikes[0, :, i])
        assert steps.tolist() == ([] if xi == 0 else [7 - xi]), (i, xi, steps)
    torch_spikes = IntegerSNN(art).encode(pixels)
    assert np.array_equal(torch_spikes.numpy(), spikes)


@pytest.mark.parametrize("seed", range(6))
def test_random_ttfs_networks_equal_the_scalar_oracle_and_the_torch_integer_mode(seed):
    art = random_ttfs(seed)
    images = random_images(art, 4, seed=seed)
    trace = assert_matches_oracle(art, images)  # every node, every step, every neuron
    torch_trace = IntegerSNN(art).run(images, record="all")
    for name, out in trace.outputs.items():
        assert np.array_equal(out, torch_trace.outputs[name].numpy()), name


@pytest.mark.parametrize("seed", range(6))
def test_every_neuron_fires_at_most_once_inside_its_window_at_s_minus_its_relu_activation(seed):
    art = random_ttfs(seed, input_shape=(8, 8), hidden=(40, 30))
    images = random_images(art, 50, seed=seed)
    trace = reference.run(art, images, record="all")
    s = art.encoder.window_steps
    x = images.reshape(len(images), -1).astype(np.int64) >> (8 - art.encoder.bits)
    hidden, scores = relu_forward(art.nodes, s, x)
    fired_any = 0
    for node, act in zip(art.nodes, hidden):
        spikes = trace.outputs[node.name]
        window = art.graph.types[node.name].window
        assert spikes.sum(axis=1).max() <= 1  # at most one spike per neuron per image
        outside = np.ones(art.timesteps, dtype=bool)
        outside[window.start:window.start + s] = False
        assert not spikes[:, outside].any()
        assert np.array_equal(activations(spikes, window), act)
        fired_any += int(act.astype(bool).sum())
        assert 0 < act.astype(bool).mean() < 1 and (act == s).any()  # silent, early and saturated neurons occur
    assert fired_any > 0
    assert np.array_equal(trace.scores, scores)


def test_widths_are_proven_and_hold_the_incremental_registers():
    art = random_ttfs(3, input_shape=(6, 6), hidden=(20,), bits=4, weight_bits=5)
    node = art.nodes[0]
    lo, hi = art.graph.proofs[node.name].registers["membrane"]
    images = random_images(art, 30, seed=1)
    m = IntegerSNN(art)
    spikes = m.encode(images).reshape(len(images), art.timesteps, 1, 6, 6)
    from snnfpga.model.integer_torch import _ttfs_integrate
    v, _ = _ttfs_integrate(m, node, [spikes])
    top = v[:, -1] + (art.encoder.window_steps - 1) * m.buf(node, "ramp")
    assert lo <= int(v.min()) and int(top.max()) <= hi
    assert node.membrane_bits >= 2 and node.slope_bits >= 2


def _node(**changes):
    w = np.ones((3, 25), dtype=np.int64)
    base = dict(name="h1", inputs=("input",), weight=w, threshold=np.full(3, 10), ramp=np.ones(3, np.int64),
                weight_bits=3)
    base.update(changes)
    return Ttfs(**base)


def _out(inputs=("h1",), n_in=3):
    return TtfsOutput(name="out", inputs=inputs, weight=np.ones((2, n_in), np.int64), bias=np.zeros(2, np.int64),
                      weight_bits=3)


@pytest.mark.parametrize("nodes, timesteps, encoder, message", [
    ([_node(), _out()], 14, Encoder("ttfs", bits=3), None),
    ([_node(weight=np.full((3, 25), 9)), _out()], 14, Encoder("ttfs", bits=3), "beyond the 3-bit range"),
    ([_node(ramp=np.zeros(3, np.int64)), _out()], 14, Encoder("ttfs", bits=3), "ramps must be >= 1"),
    ([_node(), _out()], 21, Encoder("ttfs", bits=3), "not 21"),
    ([_node(), _out()], 14, Encoder("ttfs", bits=9), "bits must be in 2..8"),
    ([_node(), _out()], 15, Encoder("ttfs", bits=3), "whole number of ttfs windows"),
    ([_node(), _out()], 4, Encoder("rate"), "rate-coded"),
    ([Dense(name="d", inputs=("input",), weight=np.ones((3, 25), np.int64), bias=np.zeros(3, np.int64), unit="u",
            weight_bits=3),
      Lif(name="h1", inputs=("d",), threshold=np.ones(3, np.int64), leak_shift=1, reset="zero"), _out()],
     14, Encoder("ttfs", bits=3), "time-to-first-spike tensor"),
])
def test_bad_ttfs_artifacts_are_refused_with_the_reason(nodes, timesteps, encoder, message):
    if message is None:
        art = build_graph_artifact("t", (5, 5), encoder, timesteps, nodes)
        assert art.is_ttfs and [n.KIND for n in art.nodes] == ["ttfs", "ttfs_output"]
        return
    with pytest.raises(ArtifactError, match=message):
        build_graph_artifact("t", (5, 5), encoder, timesteps, nodes)


def test_ttfs_configs_check_the_encoder_and_the_windows():
    assert preset("ttfs").timesteps == 2 * 15 and preset("ttfs-tiny").hidden == (128,)
    with pytest.raises(ConfigError, match="= 45 for ttfs"):
        preset("ttfs").replace(hidden=(100, 100))
    with pytest.raises(ConfigError, match="go together"):
        TrainConfig(topology="ttfs", encoder="rate")
    with pytest.raises(ConfigError, match="activation bits"):
        TrainConfig(topology="ttfs", encoder="ttfs", encoder_param=9, timesteps=2 * 511)


def test_a_short_training_exports_exactly_the_trained_integer_network(tmp_path):
    from snnfpga.model import ttfs_net
    from snnfpga.model.train import train

    d = load_dataset("default")
    small = d.subset(np.r_[0:700, len(d) - 100:len(d)])  # its split: 700 training, the last 100 validation images
    c = TrainConfig(name="t", topology="ttfs", hidden=(24,), encoder="ttfs", encoder_param=3, timesteps=14,
                    epochs=8, batch_size=32, lr=5e-3, activation_l1=0.5, finetune_epochs=1, augment_shift=0)
    summary = train(c, small, tmp_path / "m", progress=False)
    assert summary["integer_model_matches_reference"] and summary["val_accuracy_int"] > 50.0
    art = load_artifact(tmp_path / "m")
    assert art.is_ttfs and [n.KIND for n in art.nodes] == ["ttfs", "ttfs_output"]
    # the integer ReLU network and the TTFS reference give the same scores on every image
    val = small.split("val")
    x = val.images.reshape(len(val), -1).astype(np.int64) >> (8 - 3)
    _, relu_scores = relu_forward(art.nodes, 7, x)
    assert np.array_equal(reference.run(art, val.images).scores, relu_scores)
    assert ttfs_net.window_steps(c) == 7


@pytest.mark.parametrize("name", sorted(TRAINED))
def test_trained_model_spike_times_are_s_minus_the_activation_on_every_validation_image(name):
    art = load_artifact(MODELS / name)
    val = load_dataset("default").split("val")
    trace = reference.run(art, val.images, record=True)
    s = art.encoder.window_steps
    hidden, scores = relu_forward(art.nodes, s, val.images.reshape(len(val), -1).astype(np.int64) >> (8 - art.encoder.bits))
    for node, act in zip(art.nodes, hidden):
        spikes = trace.node_spikes(node.name)
        window = art.graph.types[node.name].window
        fired = spikes.any(axis=1)
        k = spikes[:, window.start:window.start + s].argmax(axis=1)
        assert np.array_equal(fired, act > 0)  # no spike iff the activation is 0
        assert np.array_equal(np.where(fired, s - k, 0), act)  # spike time = S - activation, every neuron
        assert spikes.sum(axis=1).max() == 1
    assert np.array_equal(trace.scores, scores)  # identical output scores, so identical predictions
    accuracy = 100.0 * float((trace.classes == val.labels).mean())
    spn = float(reference.spikes_per_neuron(art, trace).mean())
    low_acc, high_spikes = TRAINED[name]
    assert accuracy >= low_acc and spn <= high_spikes, (accuracy, spn)


def test_eval_json_reports_spikes_per_neuron_and_silent_fraction_and_the_verilog_is_bit_exact(tmp_path):
    r = cli("eval", MODELS / "ttfs-tiny", "--data", "default", "--split", "val", "--limit", "200", "--json")
    assert r.returncode == 0, r.stderr
    d = last_json(r.stdout)
    assert 0 < d["spikes_per_neuron"] <= 1 and 0 < d["silent_fraction"] < 1
    assert abs(d["spikes_per_neuron"] + d["silent_fraction"] - 1.0) < 1e-3  # one spike or none per neuron
    r = cli("verilog", "ttfs-tiny", "--out", tmp_path / "v", "--json")
    assert r.returncode == 0, r.stderr
    assert last_json(r.stdout)["engines"] == 2
    r = cli("sim", "ttfs-tiny", "--data", "default", "--split", "val", "--limit", "4", "--json")
    assert r.returncode == 0, r.stderr
    d = last_json(r.stdout)
    assert d["n"] == 4 and d["mismatches"] == 0 and d["accuracy_rtl"] == d["accuracy_ref"]
