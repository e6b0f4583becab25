"""Mixer graphs in training: the fold into shared integer units, the folded integer mode as
the contract, and a short end-to-end training run."""

import numpy as np
import pytest
import torch

from snnfpga.model import trainable as TR
from snnfpga.model.config import TrainConfig
from snnfpga.model.fold import export, fold
from snnfpga.model.mixer import build_mixer
from snnfpga.sim import reference

SHAPE = (12, 12)


def _images(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, *SHAPE)).astype(np.uint8)
    x[rng.random(x.shape) < 0.5] = 0
    return x


def _config(token="axial", **changes):
    base = dict(name="m", topology="mixer", stem=(3, 2, 1), channels=(4, 6), blocks=(1, 1), mlp_ratio=2,
                token_mixer=token, glif_group=(4, 3), timesteps=3)
    base.update(changes)
    return TrainConfig(**base)


def _model(token="axial", **changes):
    """A random mixer with realistic BatchNorm statistics and some negative gains."""
    torch.manual_seed(0)
    model = build_mixer(_config(token, **changes), SHAPE, 10)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for norm in norms:
        norm.momentum = None
    model.train()
    with torch.no_grad():
        model(model.encode(torch.from_numpy(_images(128, seed=1))))
        g = torch.Generator().manual_seed(3)
        for norm in norms:
            n = norm.num_features
            sign = torch.where(torch.rand(n, generator=g) < 0.25, -1.0, 1.0)
            norm.weight.copy_(sign * (0.5 + torch.rand(n, generator=g)))
            norm.bias.copy_(torch.rand(n, generator=g) - 0.2)
    return model.eval()


@pytest.mark.parametrize("token", ["axial", "glif"])
def test_float_fold_equals_qat_model(token):
    """The unrounded fold with the float leak: the QAT model's spikes and (rescaled) scores."""
    model = _model(token)
    net = fold(model, SHAPE)
    spikes = model.encode(torch.from_numpy(_images()))
    with torch.no_grad():
        scores, values = model(spikes, record=True)
        f_scores, f_values = net(spikes, integer=False, record=True)
    total = agree = 0
    steps = model.config.timesteps
    same = torch.ones(len(spikes), dtype=torch.bool)
    for node in model.nodes:
        if node.kind in ("lif", "glif"):
            a = TR.FoldedGraph.to_chw(values[node.node_name], steps)
            b = TR.FoldedGraph.to_chw(f_values[node.node_name], steps)
            total += a.numel()
            agree += int((a == b).sum())
            same &= (a == b).flatten(1).all(dim=1)
    assert agree / total > 0.999  # only float rounding at a threshold may differ
    assert int(same.sum()) > 0.8 * len(spikes)
    torch.testing.assert_close(scores[same], f_scores[same] * net.out_scale, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("token", ["axial", "glif"])
def test_integer_mode_is_the_contract(token):
    """Every node's output at every step of the folded integer mode equals the reference,
    also after the parameters drift off the integer grid (as in fine-tuning)."""
    model = _model(token)
    net = fold(model, SHAPE)
    images = _images()
    steps = model.config.timesteps
    for drift in (0.0, 0.6):
        with torch.no_grad():
            g = torch.Generator().manual_seed(5)
            for p in net.parameters():
                p.add_(drift * torch.randn(p.shape, generator=g))
        art = export(net)
        trace = reference.run(art, images, record="all")
        with torch.no_grad():
            scores, values = net(model.encode(torch.from_numpy(images)), integer=True, record=True)
        for node in art.nodes:
            ours = TR.FoldedGraph.to_chw(values[node.name], steps) if node.KIND != "output" else None
            if ours is not None:
                assert np.array_equal(ours.numpy().astype(np.int64), trace.outputs[node.name].astype(np.int64)), \
                    f"drift {drift}: node {node.name}"
        assert np.array_equal(scores.numpy().astype(np.int64), trace.scores)


def test_a_stage_shares_one_unit_and_the_identity_edge_ties_its_channels():
    """All currents summed into a stage's neurons count in one integer unit: the neurons that
    read it get the same thresholds per channel, and node 1 of the patch encoding, which
    enters node 3 as a current, ties the scales of node 1's and node 3's channels."""
    net = fold(_model(), SHAPE)
    th = {n.node_name: n.threshold.detach() for n in net.nodes if isinstance(n, TR.FoldedLif)}
    assert torch.equal(th["stem.lif"], th["s0.b0.tok"]) and torch.equal(th["stem.lif"], th["s0.b0.ch"])
    spe = torch.cat([th["s1.spe.n1"], th["s1.spe.n2"], th["s1.spe.n3"]])
    assert torch.equal(spe, th["s1.b0.tok"])
    assert torch.equal(th["s1.spe.n1"], th["s1.spe.n3"])
    art = export(net)
    units = {n.name: n.unit for n in art.nodes if hasattr(n, "unit")}
    assert {units[k] for k in ("stem", "s0.b0.fuse", "s0.b0.mlp2")} == {"s0"}
    assert {units[k] for k in ("s1.spe.c1", "s1.spe.c12", "s1.spe.c23", "s1.b0.fuse")} == {"s1"}


def test_the_largest_gain_keeps_its_integers_and_negative_gains_flip_signs():
    """Within a unit, each channel's largest |gain| synapse keeps its Brevitas integers
    exactly (sign included); a single-synapse unit (an axial branch) keeps all of them."""
    model = _model()
    net = fold(model, SHAPE)
    by_name = {n.node_name: n for n in model.nodes}
    folded = {n.node_name: n for n in net.nodes}
    axial = by_name["s0.b0.ax_h"]
    w_int, gain, _ = axial.folded([1.0], TR.shapes_of(model)["s0.b0.ax_h"])
    want = w_int * np.sign(gain.reshape(-1))[:, None]
    assert np.array_equal(folded["s0.b0.ax_h"].weight.detach().double().numpy(), want)
    assert (np.sign(gain) < 0).any(), "the random model should have a negative gain here"


def test_training_a_small_mixer_end_to_end(tmp_path):
    """A few seconds of training: a valid graph artifact, equal to the folded model, that
    every model-side command reads."""
    from snnfpga.model.artifact import load_artifact
    from snnfpga.model.checkpoint import load_checkpoint
    from snnfpga.model.data import Dataset, load_dataset
    from snnfpga.model.evaluate import evaluate
    from snnfpga.model.train import train

    ds = load_dataset("default")
    small = Dataset(np.concatenate([ds.images[:280], ds.images[-40:]]),
                    np.concatenate([ds.labels[:280], ds.labels[-40:]]), "small")
    config = _config(channels=(3, 6), epochs=1, finetune_epochs=1, batch_size=64, timesteps=2)
    summary = train(config, small, tmp_path / "m", progress=False)
    assert summary["integer_model_matches_reference"]
    art = load_artifact(tmp_path / "m")
    assert not art.is_chain and art.nodes[-1].KIND == "output"
    model, shape = load_checkpoint(tmp_path / "m" / "checkpoint.pt")
    assert shape == (28, 28) and isinstance(model, TR.QatGraph)
    result = evaluate(str(tmp_path / "m"), small.split("val"))
    assert result["accuracy_int"] == summary["val_accuracy_int"]
    assert result["accuracy_float"] == summary["val_accuracy_float"]
    assert {r["name"] for r in result["nodes"] if "synaptic_ops" in r} >= {"stem", "s1.spe.c1", "head"}
