"""NIR export and import: the graph ``nir.read`` accepts, golden traces, the identical artifact
back, and one-line refusals naming the node."""

from __future__ import annotations

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from snnfpga.errors import ArtifactError, ConfigError  # noqa: E402
from snnfpga.model import nir_format as F  # noqa: E402
from snnfpga.model.artifact import load_artifact, save_artifact  # noqa: E402
from snnfpga.model.artifact import shipped_model_dir  # noqa: E402
from snnfpga.model.nir_export import export_nir, to_nir  # noqa: E402
from snnfpga.model.nir_foreign import read_steps  # noqa: E402
from snnfpga.model.nir_import import import_nir, read_chain  # noqa: E402
from snnfpga.model.synthetic import random_artifact, random_images  # noqa: E402
from snnfpga.sim import reference  # noqa: E402
from tests.cli_common import cli, last_json  # noqa: E402


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_an_exported_chain_imports_back_to_the_identical_artifact(seed, tmp_path):
    """Random chains (leaks or none, zero or subtract reset, fire >= or >, one or two hidden
    layers): the same manifest and arrays bytes after export and import."""
    art = random_artifact(seed, hidden=(12,) if seed % 2 else (9, 7), reset=("zero", "subtract")[seed % 2],
                          leak_shift=None if seed == 2 else "random", fire=">" if seed == 3 else ">=")
    path = tmp_path / "net.nir"
    export_nir(art, path, random_images(art, 2, seed=seed))
    back = save_artifact(import_nir(path), tmp_path / "back")
    orig = save_artifact(art, tmp_path / "orig")
    for name in ("manifest.json", "arrays.npz"):
        assert (back / name).read_bytes() == (orig / name).read_bytes()


def test_the_nir_graph_holds_the_integers_in_nir_terms_and_the_golden_traces_are_the_references(tmp_path):
    art = load_artifact("tiny")
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    path = tmp_path / "tiny.nir"
    result = export_nir(art, path, images)
    graph = nir.read(path)
    assert set(graph.nodes) == {"input", "fc1.affine", "fc1", "fc2.affine", "fc2", "output"}
    fc1, hidden = graph.nodes["fc1"], art.layers[0]
    assert type(fc1).__name__ == "LIF" and np.all(fc1.tau == 2.0 ** hidden.leak_shift)
    assert np.array_equal(fc1.v_threshold, hidden.threshold) and np.array_equal(fc1.r, fc1.tau)
    assert np.array_equal(graph.nodes["fc1.affine"].weight, hidden.weights)
    assert type(graph.nodes["fc2"]).__name__ == "I" and float(graph.metadata["dt"]) == F.DT
    data = nir.read_data(result["golden"])
    trace = reference.run(art, images)
    got = data.nodes["fc1"].observables["spikes"].data
    assert got.shape == (3, art.timesteps, 128) and np.array_equal(got, trace.spikes[1])
    assert np.array_equal(data.nodes["input"].observables["spikes"].data, trace.spikes[0].reshape(3, art.timesteps, -1))
    assert np.array_equal(data.nodes["fc2"].observables["scores"].data[:, 0], trace.scores)
    again = tmp_path / "again.nir"
    export_nir(art, again, images)
    assert again.read_bytes() == path.read_bytes()  # deterministic
    assert (tmp_path / "again.golden.nir").read_bytes() == (tmp_path / "tiny.golden.nir").read_bytes()


def _graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _dense(n_out, n_in):
    return nir.Affine(weight=np.ones((n_out, n_in)), bias=np.zeros(n_out))


def test_what_the_contract_cannot_hold_is_refused_naming_the_node():
    lif = nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))
    inp, out = nir.Input(input_type={"input": np.array([4])}), nir.Output(output_type={"output": np.array([3])})
    recurrent = _graph({"input": inp, "fc": _dense(3, 4), "lif": lif, "output": out},
                       [("input", "fc"), ("fc", "lif"), ("lif", "fc"), ("lif", "output")])
    with pytest.raises(ArtifactError, match="node lif: 2 outgoing edges"):
        read_chain(recurrent, "x.nir")
    loop = _graph({"input": inp, "fc": _dense(3, 4), "lif": lif, "output": out},
                  [("input", "fc"), ("fc", "lif"), ("lif", "fc")])
    with pytest.raises(ArtifactError, match="node fc: a recurrent edge"):
        read_chain(loop, "x.nir")
    delay = _graph({"input": inp, "d": nir.Delay(delay=np.ones(4)), "lif": lif, "output": out},
                   [("input", "d"), ("d", "lif"), ("lif", "output")])
    with pytest.raises(ArtifactError, match="node d: a Delay where a chain needs an Affine"):
        read_chain(delay, "x.nir")
    with pytest.raises(ArtifactError, match="node d: a Delay where the contract needs a synapse .*Conv2d, Flatten"):
        read_steps(delay, "x.nir")
    shapes = _graph({"input": inp, "fc": _dense(3, 4), "lif": lif, "fc2": _dense(2, 5), "li": lif, "output": out},
                    [("input", "fc"), ("fc", "lif"), ("lif", "fc2"), ("fc2", "li"), ("li", "output")])
    with pytest.raises(ArtifactError, match="node fc2: takes 5 inputs, lif gives 3"):
        read_chain(shapes, "x.nir")
    with pytest.raises(ArtifactError, match="node fc2: takes 5 inputs, lif gives 3"):
        read_steps(shapes, "x.nir")


def test_an_exported_file_whose_integers_were_edited_off_the_grid_is_refused(tmp_path):
    art = random_artifact(5)
    graph = to_nir(art)
    layer = art.layers[0]
    graph.nodes[layer.name + F.AFFINE_SUFFIX].weight[0, 0] += 0.25
    nir.write(tmp_path / "edited.nir", graph)
    with pytest.raises(ArtifactError, match=f"node {layer.name}.affine: weight is not on the integer grid"):
        import_nir(tmp_path / "edited.nir")


def test_cli_export_then_import_then_sim(tmp_path):
    """The command line round trip, and the imported model is bit-exact in the Verilog."""
    from tests.test_sim_cocotb import require

    r = cli("export", "tiny", "--format", "nir", "--out", tmp_path / "t.nir", "--images", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = last_json(r.stdout)
    assert out["nodes"] == 6 and out["images"] == 2 and (tmp_path / "t.golden.nir").exists()
    r = cli("import", tmp_path / "t.nir", "--out", tmp_path / "m", "--json")
    assert r.returncode == 0, r.stderr
    from snnfpga.model.artifact import arrays_sha256

    assert last_json(r.stdout)["arrays_sha256"] == arrays_sha256(load_artifact("tiny"))
    assert (tmp_path / "m" / "arrays.npz").read_bytes() == (shipped_model_dir("tiny") / "arrays.npz").read_bytes()
    for args, message in ((("export", "mixer", "--format", "nir", "--out", tmp_path / "m.nir"), "layer graph"),
                          (("import", tmp_path / "missing.nir", "--out", tmp_path / "x"), "no such NIR file")):
        r = cli(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    require("verilator")
    sample = tmp_path / "sample.npz"
    rng = np.random.default_rng(1)
    np.savez(sample, images=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), labels=np.zeros(3, np.uint8))
    r = cli("sim", tmp_path / "m", "--data", sample, "--json")
    assert r.returncode == 0, r.stderr
    assert last_json(r.stdout)["mismatches"] == 0


def _snntorch_style(art, dt=1e-4, scale=0.01, beta=None):
    """The chain ``art`` written as snnTorch's exporter writes a Leaky network: LIF with
    ``tau = dt / (1 - beta)``, ``r = tau / dt``, ``v_leak = v_reset = 0``; the readout an
    integrator. Float parameters: the integers times ``scale``."""
    nodes = {"input": nir.Input(input_type={"input": np.array([art.n_inputs])})}
    edges, prev = [], "input"
    for layer in art.layers:
        n = layer.n_out
        nodes[layer.name + ".fc"] = nir.Affine(weight=layer.weights * scale, bias=layer.bias * scale)
        if layer.kind == "lif":
            b = beta if beta is not None else 1.0 - 2.0 ** -(layer.leak_shift or 1)
            tau = np.full(n, dt / (1.0 - b))
            nodes[layer.name] = nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(n), v_threshold=layer.threshold * scale,
                                        v_reset=np.zeros(n))
        else:
            nodes[layer.name] = nir.I(r=np.full(n, 1.0 / dt))
        edges += [(prev, layer.name + ".fc"), (layer.name + ".fc", layer.name)]
        prev = layer.name
    nodes["output"] = nir.Output(output_type={"output": np.array([art.n_classes])})
    return nir.NIRGraph(nodes=nodes, edges=edges + [(prev, "output")])


def test_a_network_in_snntorchs_convention_is_discretised_and_quantized_within_a_point():
    """snnTorch's dt, ``>`` and next-step subtract reset; 8-bit weights per neuron; the
    discretised float network and the integer reference agree on the validation images."""
    from snnfpga.model.artifact import Encoder
    from snnfpga.model.data import load_dataset
    from snnfpga.model.nir_foreign import float_forward, import_foreign

    fi = import_foreign(_snntorch_style(load_artifact("tiny")), "net.nir", "snntorch",
                        encoder=Encoder("threshold", level=128), timesteps=8)
    hidden = fi.artifact.hidden_layers[0]
    assert (hidden.fire, hidden.reset, hidden.leak_shift) == (">", "subtract_next", 1) and not fi.notes
    assert hidden.weight_bits == 8 and np.abs(hidden.weights).max() == 127
    val = load_dataset("default").split("val")
    trace = reference.run(fi.artifact, val.images)
    floats = float_forward(fi, trace.spikes[0].reshape(len(val.images), 8, -1)).argmax(axis=1)
    labels = np.asarray(val.labels)
    assert abs((floats == labels).mean() - (trace.classes == labels).mean()) <= 0.01
    assert (floats == trace.classes).mean() >= 0.97


def test_integers_that_fit_are_kept_and_reproduce_the_float_network_spike_for_spike():
    """IF neurons (no leak) on the integer grid: the float recurrence and the integer
    reference give the same scores on every image."""
    from snnfpga.model.nir_foreign import float_forward, import_foreign

    art = random_artifact(7, hidden=(10,), leak_shift=None, weight_bits=6)
    graph = _snntorch_style(art, dt=1.0, scale=1.0)
    for layer in art.hidden_layers:
        n = layer.n_out
        graph.nodes[layer.name] = nir.IF(r=np.ones(n), v_threshold=layer.threshold.astype(float), v_reset=np.zeros(n))
    graph.nodes[art.layers[-1].name] = nir.I(r=np.ones(art.n_classes))
    for reset in ("zero", "subtract", "subtract_next"):
        fi = import_foreign(graph, "if.nir", "generic", dt=1.0, reset=reset, encoder=art.encoder,
                            timesteps=art.timesteps, weight_bits=8)
        assert np.array_equal(fi.artifact.layers[0].weights, art.layers[0].weights)
        images = random_images(art, 16, seed=7)
        trace = reference.run(fi.artifact, images)
        floats = float_forward(fi, trace.spikes[0].reshape(16, art.timesteps, -1))
        assert np.array_equal(floats, trace.scores), reset


@pytest.mark.parametrize("beta, shifts, note", [
    (0.6, (2, 3), "node fc1: beta 0.6 approximated by 1 - 2^-2 - 2^-3 = 0.625 (error +0.025)"),
    (0.625, (2, 3), None),  # two shift terms, exact
    (0.875, (3, None), None),
    (0.3, (1, 2), "node fc1: beta 0.3 approximated by 1 - 2^-1 - 2^-2 = 0.25 (error -0.05)"),
])
def test_a_leak_is_the_nearest_of_one_or_two_shift_terms_with_a_note_when_not_exact(beta, shifts, note):
    from snnfpga.model.artifact import Encoder
    from snnfpga.model.nir_foreign import import_foreign

    fi = import_foreign(_snntorch_style(load_artifact("tiny"), beta=beta), "b.nir", "snntorch",
                        encoder=Encoder("rate", phase=128), timesteps=4)
    layer = fi.artifact.hidden_layers[0]
    assert (layer.leak_shift, layer.leak_shift2) == shifts
    assert fi.notes == (() if note is None else (note,))


def test_a_foreign_import_needs_the_encoder_the_steps_and_a_time_step():
    from snnfpga.model.artifact import Encoder
    from snnfpga.model.nir_foreign import import_foreign

    with pytest.raises(ConfigError, match="needs --encoder and --timesteps"):
        import_foreign(_snntorch_style(load_artifact("tiny")), "b.nir", "snntorch")
    with pytest.raises(ConfigError, match="give --dt"):
        import_foreign(_snntorch_style(load_artifact("tiny")), "b.nir", "generic",
                       encoder=Encoder("rate"), timesteps=4)


def test_cli_imports_a_foreign_network_and_prints_both_accuracies(tmp_path):
    nir.write(tmp_path / "snn.nir", _snntorch_style(load_artifact("tiny")))
    r = cli("import", tmp_path / "snn.nir", "--out", tmp_path / "m", "--framework", "snntorch", "--encoder",
            "threshold", "--timesteps", "8", "--data", "default", "--json")
    assert r.returncode == 0, r.stderr
    out = last_json(r.stdout)
    assert out["reset"] == "subtract_next" and out["fire"] == ">" and out["n"] == 1000
    assert abs(out["accuracy_int"] - out["accuracy_float"]) <= 1.0 and out["accuracy_int"] > 90
    assert "accuracy on 1000 validation images: float" in r.stderr
    assert load_artifact(tmp_path / "m").hidden_layers[0].reset == "subtract_next"
    r = cli("import", tmp_path / "snn.nir", "--out", tmp_path / "x", "--framework", "snntorch")
    assert r.returncode == 2 and "needs --encoder and --timesteps" in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("readout", ["sum", "count"])
def test_a_network_trained_in_snntorch_and_exported_by_it_imports_within_a_point(readout, tmp_path):
    """snnTorch itself: a 784-64-10 Leaky network (beta 0.5, threshold 1, its subtract
    reset, binary input, T = 8; the logits summed over the steps, or a spiking output layer
    decided by spike count, ties by membrane) trained for a few seconds, exported with
    snnTorch's own exporter, imported at 8-bit weights; the integer reference against
    snnTorch's own forward pass and decision on the same images. The spiking one is then
    bit-exact in the Verilog (``snnfpga sim``)."""
    pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    from snnfpga.model.artifact import Encoder
    from snnfpga.model.data import load_dataset
    from snnfpga.model.nir_foreign import import_foreign
    from snnfpga.model.snntorch_net import train_leaky_mlp

    data = load_dataset("default")
    train, val = data.split("train").limit(2000), data.split("val")
    model = train_leaky_mlp(train.images, np.asarray(train.labels), hidden=64, steps=8,
                            spiking_output=readout == "count", epochs=3)
    snntorch_classes = model.classes(val.images)
    model.export_nir(tmp_path / "snntorch.nir")
    fi = import_foreign(nir.read(tmp_path / "snntorch.nir"), "snntorch.nir", "snntorch",
                        encoder=Encoder("threshold", level=128), timesteps=8)
    assert not fi.notes  # beta 0.5 is 1 - 2^-1, up to the exporter's float32
    layers = fi.artifact.layers
    assert [(x.fire, x.reset, x.leak_shift) for x in layers[:-1 if readout == "sum" else None]] == \
        [(">", "subtract_next", 1)] * (1 if readout == "sum" else 2)
    assert layers[-1].kind == ("output" if readout == "sum" else "lif_output")
    trace = reference.run(fi.artifact, val.images)
    truth = np.asarray(val.labels)
    float_acc, int_acc = (snntorch_classes == truth).mean(), (trace.classes == truth).mean()
    assert float_acc > 0.85, float_acc  # it learned
    assert abs(float_acc - int_acc) <= 0.01, (float_acc, int_acc)
    if readout == "count":
        from snnfpga.model.artifact import save_artifact
        from tests.test_sim_cocotb import require

        require("verilator")
        save_artifact(fi.artifact, tmp_path / "imported")
        r = cli("sim", tmp_path / "imported", "--data", "default", "--split", "val", "--limit", "8", "--json")
        assert r.returncode == 0, r.stderr
        assert last_json(r.stdout)["mismatches"] == 0 and last_json(r.stdout)["n"] == 8


@pytest.mark.parametrize("reset, fire, spiking", [("zero", ">=", False), ("subtract", ">", True),
                                                  ("subtract_next", ">", True), ("subtract_next", ">=", False)])
def test_the_fine_tune_model_computes_the_contract_before_any_training(reset, fire, spiking):
    """:class:`TrainableChain` in torch on random chains (saturating membranes, a two-term
    leak): the scores, or a spiking output's spike counts, of the integer reference."""
    import torch

    from snnfpga.model.import_finetune import TrainableChain

    art = random_artifact(40, input_shape=(4, 4), hidden=(9, 7), n_classes=5, reset=reset, fire=fire,
                          spiking_output=spiking, threshold_scale=0.2, timesteps=5, membrane_bits=7, leak_shift=2,
                          leak_shift2=3 if spiking else None)
    images = random_images(art, 30, seed=1)
    spikes = torch.from_numpy(reference.encode(art.encoder, reference.flatten_images(art, images), art.timesteps))
    with torch.no_grad():
        ours = TrainableChain(art)(spikes).numpy().astype(np.int64)
    scores = reference.run(art, images).scores
    assert np.array_equal(ours, scores >> art.layers[-1].membrane_bits if spiking else scores)
    assert arrays_equal(TrainableChain(art).export(art.name, art.provenance), art)


def arrays_equal(a, b):
    from snnfpga.model.artifact import arrays_sha256

    return arrays_sha256(a) == arrays_sha256(b)


def test_calibration_and_the_integer_fine_tune_recover_a_coarse_quantization():
    """``tiny`` as snnTorch writes it, imported at 3-bit weights: the calibrated clip agrees
    with the float network at least as often as max-abs scaling, and one epoch of integer
    fine-tune on 2,000 training images (batches of 25) raises the validation accuracy."""
    from snnfpga.model.artifact import Encoder
    from snnfpga.model.data import load_dataset
    from snnfpga.model.import_finetune import finetune
    from snnfpga.model.nir_foreign import import_foreign

    data = load_dataset("default")
    train, val = data.split("train").limit(2000), data.split("val")
    options = dict(encoder=Encoder("threshold", level=128), timesteps=8, weight_bits=3)
    plain = import_foreign(_snntorch_style(load_artifact("tiny")), "t.nir", "snntorch", **options)
    calibrated = import_foreign(_snntorch_style(load_artifact("tiny")), "t.nir", "snntorch",
                                calibration=train.images[:500], **options)
    note = calibrated.notes[-1]
    assert note.startswith("calibration on 500 images: weight clip per layer [")
    before, after = (float(x) for x in note.split("network ")[1].rstrip("%)").split("% -> "))
    assert after >= before
    labels = np.asarray(val.labels)

    def accuracy(art):
        return float((reference.run(art, val.images, record=False).classes == labels).mean())

    tuned = finetune(plain.artifact, train.images, np.asarray(train.labels), 1, batch=25)
    assert tuned.provenance["finetune"]["epochs"] == 1
    assert accuracy(tuned) > accuracy(plain.artifact) + 0.005, (accuracy(plain.artifact), accuracy(tuned))
    eight = dict(options, weight_bits=8)  # max-abs scaling is already exact at 8 bits: calibration keeps it
    exact = import_foreign(_snntorch_style(load_artifact("tiny")), "t.nir", "snntorch", calibration=train.images[:200],
                           **eight)
    assert "weight clip per layer [1.0, 1.0]" in exact.notes[-1]
    assert arrays_equal(exact.artifact, import_foreign(_snntorch_style(load_artifact("tiny")), "t.nir", "snntorch",
                                                       **eight).artifact)


def test_cli_fine_tune_needs_data_and_a_foreign_network(tmp_path):
    nir.write(tmp_path / "snn.nir", _snntorch_style(load_artifact("tiny")))
    r = cli("import", tmp_path / "snn.nir", "--out", tmp_path / "m", "--framework", "snntorch", "--encoder",
            "threshold", "--timesteps", "8", "--finetune-epochs", "1")
    assert r.returncode == 2 and "--finetune-epochs needs --data" in r.stderr and len(r.stderr.splitlines()) == 1
    export_nir(load_artifact("tiny"), tmp_path / "t.nir", random_images(load_artifact("tiny"), 1))
    r = cli("import", tmp_path / "t.nir", "--out", tmp_path / "x", "--data", "default", "--finetune-epochs", "1")
    assert r.returncode == 2 and "is an snnfpga export" in r.stderr and len(r.stderr.splitlines()) == 1
    r = cli("import", tmp_path / "snn.nir", "--out", tmp_path / "m", "--framework", "snntorch", "--encoder",
            "threshold", "--timesteps", "8", "--weight-bits", "3", "--data", "default", "--finetune-epochs", "1",
            "--json")
    assert r.returncode == 0, r.stderr
    out = last_json(r.stdout)
    assert out["finetune_epochs"] == 1 and out["accuracy_int_finetuned"] > out["accuracy_int"]
    assert "calibration on 1000 images" in out["notes"][-1] and "after the fine-tune: integer" in r.stderr
    assert load_artifact(tmp_path / "m").provenance["finetune"]["epochs"] == 1
    np.savez(tmp_path / "small.npz", images=np.zeros((40, 8, 8), np.uint8), labels=np.zeros(40, np.uint8))
    r = cli("import", tmp_path / "snn.nir", "--out", tmp_path / "y", "--framework", "snntorch", "--encoder",
            "threshold", "--timesteps", "8", "--data", tmp_path / "small.npz")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert "the calibration images are 8x8 but the model expects 28x28" in r.stderr


def _conv_net(head: str, rng, spiking_output: bool = False, beta: float | None = None):
    """A NIR convolutional network on 8x8 images: Conv2d 3x3 (stride 2, padding 1) -> IF (or
    LIF with ``beta``) on 4x4x4, then Flatten -> Affine (``head`` flatten) or a global
    SumPool2d -> Affine (``head`` pool), then an I (or an IF: a spiking output). Integer
    weights on the grid, thresholds per channel."""
    conv_w = rng.integers(-3, 4, size=(4, 1, 3, 3)).astype(np.float64)
    theta = np.broadcast_to(np.array([2.0, 3.0, 2.0, 4.0])[:, None, None], (4, 4, 4)).copy()
    if beta is None:
        hidden = nir.IF(r=np.ones((4, 4, 4)), v_threshold=theta, v_reset=np.zeros((4, 4, 4)))
    else:
        tau = np.full((4, 4, 4), 1.0 / (1.0 - beta))
        hidden = nir.LIF(tau=tau, r=tau.copy(), v_leak=np.zeros((4, 4, 4)), v_threshold=theta,
                         v_reset=np.zeros((4, 4, 4)))
    n_in = 64 if head == "flatten" else 4
    out = nir.IF(r=np.ones(3), v_threshold=np.full(3, 3.0), v_reset=np.zeros(3)) if spiking_output else \
        nir.I(r=np.ones(3))
    nodes = {"input": nir.Input(input_type={"input": np.array([1, 8, 8])}),
             "conv": nir.Conv2d(input_shape=(8, 8), weight=conv_w, stride=2, padding=1, dilation=1, groups=1,
                                bias=np.zeros(4)),
             "lif": hidden,
             "head": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0) if head == "flatten" else
             nir.SumPool2d(kernel_size=np.array([4, 4]), stride=np.array([4, 4]), padding=np.array([0, 0])),
             "fc": nir.Affine(weight=rng.integers(-2, 3, size=(3, n_in)).astype(np.float64), bias=np.zeros(3)),
             "out": out, "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "conv"), ("conv", "lif"), ("lif", "head"), ("head", "fc"), ("fc", "out"), ("out", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.mark.parametrize("head, spiking", [("flatten", False), ("pool", False), ("flatten", True)])
def test_a_convolutional_network_imports_as_a_layer_graph_exactly(head, spiking):
    """Conv2d, Flatten and a global SumPool2d become conv, flatten and pool nodes; integers on
    the grid are kept, so the integer reference reproduces the float recurrence score for
    score (``generic``, dt = 1, reset to zero), and the graph accelerator is bit-exact."""
    from snnfpga.model.artifact import Encoder
    from snnfpga.model.nir_foreign import float_forward, import_foreign
    from tests.test_rtl_graph_top import assert_graph_bit_exact

    rng = np.random.default_rng(3)
    fi = import_foreign(_conv_net(head, rng, spiking), "conv.nir", "generic", dt=1.0,
                        encoder=Encoder("rate", phase=128), timesteps=4)
    art = fi.artifact
    assert not art.is_chain and [n.KIND for n in art.nodes] == \
        ["conv", "lif", head, "dense", "lif_output" if spiking else "output"]
    conv = art.nodes[0]
    assert (conv.stride, conv.padding, conv.weight.shape) == (2, 1, (4, 1, 3, 3))
    assert art.nodes[1].threshold.shape == (4, 1, 1)  # one per channel
    images = np.random.default_rng(4).integers(0, 256, size=(12, 8, 8), dtype=np.uint8)
    trace = reference.run(art, images)
    floats = float_forward(fi, trace.spikes[0].reshape(12, 4, -1))
    if spiking:
        assert np.array_equal(floats.argmax(1), trace.classes)
    else:
        assert np.array_equal(floats, trace.scores)
    assert_graph_bit_exact(art, images[:3], lanes=4)  # conv, lif, flatten/pool, dense, output or lif_output


def test_a_conv_network_the_contract_cannot_hold_is_refused_naming_the_node():
    from snnfpga.model.artifact import Encoder
    from snnfpga.model.nir_foreign import import_foreign

    options = dict(encoder=Encoder("rate"), timesteps=4, dt=1.0)
    windowed = _conv_net("pool", np.random.default_rng(0))
    windowed.nodes["head"] = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                          padding=np.array([0, 0]))
    with pytest.raises(ArtifactError, match="node head: a SumPool2d with a 2x2 window on 4x4x4; the contract pools "
                                            "globally"):
        import_foreign(windowed, "w.nir", "generic", **options)
    dilated = _conv_net("flatten", np.random.default_rng(0))
    dilated.nodes["conv"].dilation = 2
    with pytest.raises(ArtifactError, match="node conv: dilation and groups must be 1"):
        import_foreign(dilated, "d.nir", "generic", **options)
    uneven = _conv_net("flatten", np.random.default_rng(0))
    uneven.nodes["conv"].stride = (1, 2)
    with pytest.raises(ArtifactError, match=r"node conv: stride \[1, 2\]"):
        import_foreign(uneven, "s.nir", "generic", **options)
    varying = _conv_net("flatten", np.random.default_rng(0))
    varying.nodes["lif"].r = np.arange(64, dtype=np.float64).reshape(4, 4, 4) + 1
    with pytest.raises(ArtifactError, match="node lif: its input gain differs between positions of a channel"):
        import_foreign(varying, "v.nir", "generic", **options)


@pytest.mark.parametrize("head, spiking", [("flatten", False), ("pool", False), ("flatten", True)])
def test_an_exported_conv_graph_imports_back_identical_and_reads_as_a_foreign_network(head, spiking, tmp_path):
    """A path of conv, lif, flatten or pool, dense and output (or lif_output) nodes is
    exported node for node (a pool as NIR's SumPool2d and a Flatten, which ``nir.read``
    type-checks); the snnfpga export comes back byte-identical, and the same file without
    snnfpga's metadata imports as a foreign network with the same integers."""
    from snnfpga.model.artifact import Encoder
    from snnfpga.model.nir_foreign import import_foreign

    art = import_foreign(_conv_net(head, np.random.default_rng(3), spiking), "c.nir", "generic", dt=1.0,
                         encoder=Encoder("rate", phase=128), timesteps=4).artifact
    export_nir(art, tmp_path / "g.nir", random_images(art, 2))
    save_artifact(art, tmp_path / "a")
    save_artifact(import_nir(tmp_path / "g.nir"), tmp_path / "b")
    for name in ("manifest.json", "arrays.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    graph = nir.read(tmp_path / "g.nir")
    assert type(graph.nodes[art.nodes[0].name]).__name__ == "Conv2d"
    graph.metadata.pop(F.MANIFEST_KEY)
    foreign = import_foreign(graph, "g.nir", "generic", dt=1.0, encoder=art.encoder, timesteps=4).artifact
    extra = ["flatten"] if head == "pool" else []  # NIR's SumPool2d keeps [C, 1, 1]: a Flatten follows
    assert [n.KIND for n in foreign.nodes] == [n.KIND for n in art.nodes[:3]] + extra + \
        [n.KIND for n in art.nodes[3:]]
    images = random_images(art, 8, seed=2)
    assert np.array_equal(reference.run(foreign, images).scores, reference.run(art, images).scores)
    assert foreign.nodes[0].weight.tolist() == art.nodes[0].weight.tolist()


def test_graphs_nir_cannot_hold_are_refused_naming_the_node(tmp_path):
    with pytest.raises(ConfigError, match=r"mixer-tiny is a layer graph: node s1.spe.c2 \(conv\) branches"):
        to_nir(load_artifact("mixer-tiny"))
    with pytest.raises(ConfigError, match=r"ttfs-tiny is a layer graph: node h1 \(ttfs\) has no NIR node here; NIR "
                                          "export covers chains and paths"):
        to_nir(load_artifact("ttfs-tiny"))
    r = cli("export", "ttfs-tiny", "--format", "nir", "--out", tmp_path / "t.nir")
    assert r.returncode == 2 and "node h1 (ttfs) has no NIR node" in r.stderr and len(r.stderr.splitlines()) == 1


def test_a_network_trained_in_norse_and_exported_by_it_imports_within_a_point():
    """Norse itself (``make setup`` installs it): a 784-64-10 network (``Linear``,
    ``LIFBoxCell`` with Norse's defaults: tau_mem_inv 100, dt 1e-3, so beta 0.9; ``Linear``,
    the logits summed over T = 8 steps; binary input) trained for a few seconds, exported by
    ``norse.torch.to_nir`` (its graph as the exporter returns it: ``nir.write`` refuses its
    scalar parameters), imported with ``--framework norse`` at 8-bit weights: the integer
    reference within a point of Norse's own forward pass. With Norse's nominal dt = 1e-3 the
    import is refused in one line: its exporter writes tau = dt / tau_mem_inv."""
    torch = pytest.importorskip("torch")
    nt = pytest.importorskip("norse.torch")
    from snnfpga.model.artifact import Encoder
    from snnfpga.model.data import load_dataset
    from snnfpga.model.nir_foreign import import_foreign

    torch.manual_seed(0)
    net = nt.SequentialState(torch.nn.Linear(784, 64), nt.LIFBoxCell(), torch.nn.Linear(64, 10))
    data = load_dataset("default")
    train, val = data.split("train").limit(2000), data.split("val")

    def logits(images):
        x = torch.as_tensor(images.reshape(len(images), -1) >= 128, dtype=torch.float32)
        state, total = None, 0
        for _ in range(8):
            y, state = net(x, state)
            total = total + y
        return total

    _train_on_summed_logits(net, logits, train)
    with torch.no_grad():
        norse_classes = logits(val.images).argmax(dim=1).numpy()
        graph = nt.to_nir(net, torch.zeros(784))
    options = dict(encoder=Encoder("threshold", level=128), timesteps=8)
    fi = import_foreign(graph, "norse.nir", "norse", **options)
    hidden = fi.artifact.hidden_layers[0]
    assert (hidden.fire, hidden.reset, hidden.leak_shift, hidden.leak_shift2) == (">", "zero", 4, 5)  # 0.906
    assert fi.notes == ("node 1: beta 0.9 approximated by 1 - 2^-4 - 2^-5 = 0.90625 (error +0.00625)",)
    truth = np.asarray(val.labels)
    norse_acc = (norse_classes == truth).mean()
    int_acc = (reference.run(fi.artifact, val.images).classes == truth).mean()
    assert norse_acc > 0.8, norse_acc  # it learned
    assert abs(norse_acc - int_acc) <= 0.01, (norse_acc, int_acc)
    with pytest.raises(ArtifactError, match=r"node 1: beta = 1 - dt/tau outside \(0, 1\] at dt = 0.001"):
        import_foreign(graph, "norse.nir", "norse", dt=1e-3, **options)


def test_a_network_trained_in_sinabs_and_exported_by_it_imports_within_a_point():
    """Sinabs itself (``make setup`` installs it): a 784-64-10 network (``Linear``, ``LIF``
    with a trained ``tau_mem`` from 4 and binary spikes (``SingleSpike``; Sinabs's default
    ``MultiSpike`` emits counts the contract's LIF does not), its subtract reset, ``Linear``,
    the logits summed over T = 8; binary input) trained for a few seconds, exported by
    ``sinabs.to_nir``, imported with ``--framework sinabs`` (its exponential decay and
    normalised input) at 8-bit weights: within a point of Sinabs's own forward pass."""
    torch = pytest.importorskip("torch")
    sinabs = pytest.importorskip("sinabs")
    import sinabs.layers as sl
    from sinabs.activation import SingleSpike

    from snnfpga.model.artifact import Encoder
    from snnfpga.model.data import load_dataset
    from snnfpga.model.nir_foreign import import_foreign

    torch.manual_seed(0)
    steps = 8
    net = torch.nn.Sequential(torch.nn.Linear(784, 64), sl.LIF(tau_mem=torch.tensor(4.0), spike_fn=SingleSpike),
                              torch.nn.Linear(64, 10))
    data = load_dataset("default")
    train, val = data.split("train").limit(2000), data.split("val")

    def logits(images):
        x = torch.as_tensor(images.reshape(len(images), 1, -1) >= 128, dtype=torch.float32).repeat(1, steps, 1)
        net[1].reset_states()
        return net(x).sum(dim=1)

    _train_on_summed_logits(net, logits, train)
    with torch.no_grad():
        sinabs_classes = logits(val.images).argmax(dim=1).numpy()
        net[1].reset_states()
        graph = sinabs.to_nir(net, torch.zeros(1, steps, 784))
    fi = import_foreign(graph, "sinabs.nir", "sinabs", encoder=Encoder("threshold", level=128), timesteps=steps)
    hidden = fi.artifact.hidden_layers[0]
    assert fi.artifact.sizes == [784, 64, 10]  # its Input [T, 784] holds the time steps: dropped
    assert (hidden.fire, hidden.reset) == (">=", "subtract") and hidden.leak_shift is not None
    truth = np.asarray(val.labels)
    sinabs_acc = (sinabs_classes == truth).mean()
    int_acc = (reference.run(fi.artifact, val.images).classes == truth).mean()
    assert sinabs_acc > 0.8, sinabs_acc  # it learned
    assert abs(sinabs_acc - int_acc) <= 0.01, (sinabs_acc, int_acc)


def _train_on_summed_logits(net, logits, train, epochs: int = 5, lr: float = 5e-3) -> None:
    """Adam on cross-entropy of ``logits(images)`` (the framework's forward pass, summed
    over the steps), batches of 100: what the framework tests train."""
    import torch

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    labels = torch.as_tensor(np.asarray(train.labels), dtype=torch.long)
    for _ in range(epochs):
        for i in range(0, len(labels), 100):
            loss = torch.nn.functional.cross_entropy(logits(train.images[i:i + 100]), labels[i:i + 100])
            opt.zero_grad()
            loss.backward()
            opt.step()


def test_a_conv_network_in_snntorchs_convention_runs_on_the_graph_accelerator():
    """snnTorch's semantics (fire ``>``, the next-step subtract reset) on a conv map, quantized
    at 8 bits, bit-exact in the graph accelerator (the spike kept as one more state bit)."""
    from snnfpga.model.artifact import Encoder
    from snnfpga.model.kinds import Lif
    from snnfpga.model.nir_foreign import import_foreign
    from tests.test_rtl_graph_top import assert_graph_bit_exact

    art = import_foreign(_conv_net("pool", np.random.default_rng(5), beta=0.5), "c.nir", "snntorch", dt=1.0,
                         encoder=Encoder("threshold", level=100), timesteps=4).artifact
    lif = next(n for n in art.nodes if isinstance(n, Lif))
    assert (lif.reset, lif.fire, lif.leak_shift) == ("subtract_next", ">", 1)
    images = np.random.default_rng(6).integers(0, 256, size=(3, 8, 8), dtype=np.uint8)
    assert reference.run(art, images).spikes[1].any()
    assert_graph_bit_exact(art, images, lanes=4)


def test_an_exported_leak_whose_tau_was_edited_is_refused(tmp_path):
    """``tau`` is written as float64 and compared exactly: ``1 / (2^-2 + 2^-3)`` back as it
    was, the slightest edit refused naming the node."""
    art = random_artifact(7, input_shape=(4, 4), hidden=(7,), n_classes=3, leak_shift=2, leak_shift2=3,
                          threshold_scale=0.2, timesteps=4)
    graph = to_nir(art)
    nir.write(tmp_path / "ok.nir", graph)
    assert import_nir(tmp_path / "ok.nir").layers[0].leak_shift2 == 3
    graph.nodes["fc1"].tau = graph.nodes["fc1"].tau * (1 + 1e-12)
    nir.write(tmp_path / "edited.nir", graph)
    with pytest.raises(ArtifactError, match=r"node fc1: tau is not the manifest's leak \(2.66667\)"):
        import_nir(tmp_path / "edited.nir")
