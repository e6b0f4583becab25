"""Folding: BatchNorm and weight scales into integers, and the folded model vs the contract."""

import numpy as np
import pytest
import torch

from snnfpga.model.config import preset
from snnfpga.model.fold import MAX_THRESHOLD, FoldedNet, export, fold, qmax
from snnfpga.model.integer_torch import IntegerSNN
from snnfpga.model.network import SpikingMLP
from snnfpga.sim import reference

SHAPE = (6, 6)


def _images(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, *SHAPE)).astype(np.uint8)
    x[rng.random(x.shape) < 0.4] = 0
    return x


def _model(**changes) -> SpikingMLP:
    """A random model with realistic BatchNorm statistics, some negative gains, one dead neuron."""
    torch.manual_seed(changes.pop("torch_seed", 0))
    cfg = preset("default").replace(hidden=(16, 12), **changes)
    model = SpikingMLP(cfg, n_inputs=SHAPE[0] * SHAPE[1], n_classes=10)
    for norm in model.norms:
        norm.momentum = None  # cumulative statistics
    model.train()
    with torch.no_grad():
        model(model.encode(torch.from_numpy(_images(256, seed=1))))
        g = torch.Generator().manual_seed(3)
        for linear, norm in zip(model.hidden, model.norms):
            n = norm.num_features
            sign = torch.where(torch.rand(n, generator=g) < 0.25, -1.0, 1.0)
            norm.weight.copy_(sign * (0.5 + torch.rand(n, generator=g)))
            norm.bias.copy_(torch.rand(n, generator=g) - 0.3)
            norm.weight[0] = 1e-9  # a neuron that can never fire: its threshold is capped on export
            if linear.bias is not None:
                linear.bias.copy_(torch.randn(n, generator=g) * 0.1)
        model.output.bias.copy_(torch.randn(10, generator=g) * 0.05)
    return model.eval()


CONFIGS = [
    {},
    {"leak_shift": None, "reset": "subtract"},
    {"leak_shift": 3, "weight_bits": 2, "weight_scale": "tensor", "hidden_bias": True},
    {"weight_bits": 8, "encoder": "threshold", "encoder_param": 100, "timesteps": 6},
]


@pytest.mark.parametrize("changes", CONFIGS)
def test_float_fold_equals_qat_model(changes):
    """Unrounded fold with the float leak: same spikes and (rescaled) scores as the QAT model."""
    model = _model(**changes)
    net = fold(model, SHAPE)
    spikes = model.encode(torch.from_numpy(_images()))
    with torch.no_grad():
        scores, hidden = model(spikes, record=True)
        f_scores, f_hidden = net(spikes, integer=False, record=True)
    total = agree = 0
    same = torch.ones(len(spikes), dtype=torch.bool)
    for a, b in zip(hidden, f_hidden):
        assert a.shape == b.shape
        total += a.numel()
        agree += int((a == b).sum())
        same &= (a == b).flatten(1).all(dim=1)
    assert agree / total > 0.999  # only float rounding at the threshold may differ
    assert int(same.sum()) > 0.9 * len(spikes)
    torch.testing.assert_close(scores[same], f_scores[same] * net.out_scale, rtol=1e-4, atol=1e-4)


def test_negative_gain_negates_the_row():
    model = _model()
    net = fold(model, SHAPE)
    qw = model.hidden[0].quant_weight().int().double()
    gamma = model.norms[0].weight.detach()
    for j in range(1, len(gamma)):  # neuron 0 is the nearly constant one
        want = -qw[j] if gamma[j] < 0 else qw[j]
        assert torch.equal(net.weights[0][j].double(), want.to(net.weights[0].dtype).double())
    assert (net.thresholds[0] > 0).all()


@pytest.mark.parametrize("changes", CONFIGS)
def test_integer_mode_is_the_contract(changes):
    """The folded model's integer mode gives the reference's scores and spikes exactly,
    also after its parameters drift off the integer grid (as in fine-tuning)."""
    model = _model(**changes)
    net = fold(model, SHAPE)
    images = _images()
    for drift in (0.0, 0.7):
        with torch.no_grad():
            g = torch.Generator().manual_seed(5)
            for p in net.parameters():
                p.add_(drift * torch.randn(p.shape, generator=g))
        art = export(net)
        trace = reference.run(art, images, record=True)
        spikes = torch.from_numpy(reference.encode(art.encoder, reference.flatten_images(art, images),
                                                   art.timesteps)).float()
        with torch.no_grad():
            scores, hidden = net(spikes, integer=True, record=True)
        assert np.array_equal(scores.numpy().astype(np.int64), trace.scores)
        assert np.array_equal(scores.numpy(), np.round(scores.numpy()))
        for a, b in zip(hidden, trace.spikes[1:]):
            assert np.array_equal(a.numpy().astype(bool), b)
        assert np.array_equal(IntegerSNN(art).run(images).scores.numpy(), trace.scores)


def test_export_respects_the_contract_ranges():
    model = _model(weight_bits=3)
    net = fold(model, SHAPE)
    with torch.no_grad():
        net.weights[0].mul_(10)  # far outside the 3-bit range: export must clamp
        net.thresholds[0].fill_(-5)  # below 1: export must clamp
    art = export(net)
    assert np.abs(art.layers[0].weights).max() == qmax(3)
    assert art.layers[0].threshold.min() >= 1
    assert art.layers[1].weights.min() >= -qmax(3)


def test_dead_neuron_threshold_is_capped_by_proof():
    net = fold(_model(), SHAPE)
    assert float(net.thresholds[0][0].detach()) == MAX_THRESHOLD
    art = export(net)
    assert art.layers[0].threshold[0] < MAX_THRESHOLD
    assert art.layers[0].membrane_bits <= 24


def test_folded_net_type():
    assert isinstance(fold(_model(), SHAPE), FoldedNet)
