"""The float spiking MLP trained with Brevitas QAT, and the contract's input encoder in torch.

Topology: ``encoder -> [QuantLinear -> BatchNorm1d -> LIF] * len(hidden) -> QuantLinear``.
All ``T`` steps of a layer are computed as one batch of ``N*T`` rows (a linear layer has no
state); only the LIF membranes loop over time.

* Weights: Brevitas ``QuantLinear`` with narrow-range symmetric signed integers of
  ``weight_bits`` bits (``-(2**(b-1)-1) .. 2**(b-1)-1``) and a float scale per output
  channel (hidden layers, ``weight_scale="channel"``) or per tensor; the output layer is
  always per tensor (a per-class scale would change the argmax after folding).
* LIF (float form of the contract): ``v = v - v * 2**-k + I`` (no leak if ``k`` is None),
  spike when ``v >= 1``, then ``v = 0`` (``reset="zero"``) or ``v = v - 1`` (``"subtract"``).
  The spike's gradient is the sigmoid surrogate ``alpha * sig(alpha x) * (1 - sig(alpha x))``
  with ``x = v - 1``.
* Output: no spikes; the score is the sum over ``T`` of the output currents.
"""

from __future__ import annotations

import torch
from brevitas.nn import QuantLinear
from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat
from torch import nn

from snnfpga.model.config import TrainConfig


# --------------------------------------------------------------------------------------
# Input encoder (section 1 of the contract)


def encode_spikes(pixels: torch.Tensor, kind: str, param: int, timesteps: int) -> torch.Tensor:
    """Input spikes ``bool [N, T, n]`` from pixels ``[N, n]`` (integers 0..255).

    Exactly ``snnfpga.sim.reference.encode``: ``rate`` with ``phase = param`` fires at step
    ``t`` when ``(phase + (t+1) x) >> 8 > (phase + t x) >> 8`` (the closed form of the
    incremental ``acc += x; if acc >= 256: spike, acc -= 256``); ``threshold`` with
    ``level = param`` fires at every step when ``x >= level``; ``ttfs`` with ``bits = param``
    fires once, at step ``S - (x >> (8 - bits))`` (``S = 2**bits - 1``), never for a zero.
    """
    x = pixels.to(torch.int64)
    if kind == "ttfs":
        steps = torch.arange(timesteps)[None, :, None]
        level = (x >> (8 - param))[:, None, :]
        return (steps == (1 << param) - 1 - level) & (level > 0)
    if kind == "threshold":
        return (x >= param)[:, None, :].expand(-1, timesteps, -1).contiguous()
    if kind != "rate":
        raise ValueError(f"unknown encoder kind {kind!r}")
    t = torch.arange(timesteps + 1, dtype=torch.int64)[None, :, None]
    cumulative = (param + t * x[:, None, :]) >> 8
    return cumulative[:, 1:] > cumulative[:, :-1]


# --------------------------------------------------------------------------------------
# Spiking neuron


class SpikeFn(torch.autograd.Function):
    """Heaviside ``x >= 0`` forward; sigmoid-surrogate gradient with slope ``alpha`` backward."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        sig = torch.sigmoid(ctx.alpha * x)
        return grad * ctx.alpha * sig * (1 - sig), None


def spike(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return SpikeFn.apply(x, alpha)


def lif_float(currents: torch.Tensor, leak_shift: int | None, reset: str, alpha: float,
              detach_reset: bool = True) -> torch.Tensor:
    """Float LIF with threshold 1 over currents ``[N, T, n]``; returns spikes ``[N, T, n]`` (0./1.)."""
    decay = 1.0 if leak_shift is None else 1.0 - 2.0 ** -leak_shift
    v = torch.zeros_like(currents[:, 0])
    out = []
    for t in range(currents.shape[1]):
        v = v * decay + currents[:, t]
        s = spike(v - 1.0, alpha)
        r = s.detach() if detach_reset else s
        v = v * (1.0 - r) if reset == "zero" else v - r
        out.append(s)
    return torch.stack(out, dim=1)


# --------------------------------------------------------------------------------------
# The network


def quant_linear(n_in: int, n_out: int, bits: int, per_channel: bool, bias: bool) -> QuantLinear:
    """A Brevitas ``QuantLinear`` with narrow-range symmetric ``bits``-bit weights (max-abs scale)."""
    quant = Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat
    return QuantLinear(n_in, n_out, bias=bias, weight_quant=quant, weight_bit_width=bits)


class SpikingMLP(nn.Module):
    """The float QAT model (see the module docstring). Sizes: ``n_inputs -> *hidden -> n_classes``."""

    def __init__(self, config: TrainConfig, n_inputs: int = 784, n_classes: int = 10):
        super().__init__()
        self.config = config
        self.n_inputs = n_inputs
        self.n_classes = n_classes
        sizes = [n_inputs, *config.hidden]
        per_channel = config.weight_scale == "channel"
        self.hidden = nn.ModuleList(
            quant_linear(a, b, config.weight_bits, per_channel, config.hidden_bias)
            for a, b in zip(sizes[:-1], sizes[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(n) for n in config.hidden)
        self.output = quant_linear(sizes[-1], n_classes, config.weight_bits, False, True)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``float [N, T, n_inputs]`` input spikes from ``uint8 [N, H, W]`` (or ``[N, n]``) pixels."""
        c = self.config
        return encode_spikes(images.reshape(len(images), -1), c.encoder, c.encoder_param, c.timesteps).float()

    def forward(self, spikes: torch.Tensor, record: bool = False):
        """Scores ``[N, n_classes]`` (sum over T of output currents) from input spikes ``[N, T, n]``.

        With ``record`` also returns the hidden spike trains (list of ``[N, T, n_l]``).
        """
        c = self.config
        n, steps = spikes.shape[:2]
        x = spikes
        recorded = []
        for linear, norm in zip(self.hidden, self.norms):
            current = norm(linear(x.reshape(n * steps, -1))).reshape(n, steps, -1)
            x = lif_float(current, c.leak_shift, c.reset, c.surrogate_alpha, c.detach_reset)
            recorded.append(x)
            x = self.dropout(x)
        scores = self.output(x.reshape(n * steps, -1)).reshape(n, steps, -1).sum(dim=1)
        return (scores, recorded) if record else scores

    def classify(self, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """Predicted classes ``int64 [N]`` of ``uint8`` images (eval mode, no gradients)."""
        was_training = self.training
        self.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(images), batch):
                out.append(self(self.encode(images[start:start + batch])).argmax(dim=1))
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def build_model(config: TrainConfig, input_shape: tuple[int, int] = (28, 28), n_classes: int = 10) -> nn.Module:
    """The float QAT model of ``config.topology``: :class:`SpikingMLP` (``mlp``) or the
    mixer graph (:func:`snnfpga.model.mixer.build_mixer`)."""
    if config.topology == "ttfs":
        from snnfpga.model.ttfs_net import TtfsQnn

        return TtfsQnn(config, input_shape[0] * input_shape[1], n_classes)
    if config.topology == "mixer":
        from snnfpga.model.mixer import build_mixer

        return build_mixer(config, input_shape, n_classes)
    return SpikingMLP(config, n_inputs=input_shape[0] * input_shape[1], n_classes=n_classes)
