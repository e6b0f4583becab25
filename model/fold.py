"""Fold BatchNorm and weight scales into integers, fine-tune the integer model, export it.

Folding (section 6 of ``docs/integer-contract.md``): for hidden neuron ``j`` with Brevitas
integer weights ``W_int[j]`` and scale ``s_j``, linear bias ``b_j`` (0 if none) and
BatchNorm ``a_j = gamma_j / sqrt(var_j + eps)``, ``c_j = a_j s_j`` and, in integer units
``u = v / |c_j|`` of the membrane,

    W[j] = sign(c_j) W_int[j]
    B[j] = (a_j (b_j - mu_j) + beta_j) / |c_j|
    theta[j] = 1 / |c_j|

The output layer has one scale ``s`` per tensor: ``W = W_int``, ``B = b / s`` (the scores
are the float scores divided by ``s > 0``: same argmax).

:class:`FoldedNet` holds these as float parameters in integer units. In ``integer`` mode its
forward *is* the contract: weights rounded and clamped to the narrow signed range,
biases rounded (``|B| <= MAX_BIAS``), thresholds rounded into ``1..MAX_THRESHOLD``, the floor-shift leak ``v - (v >> k)``,
``v >= theta``, the same reset and output scoring. Every value is then an integer below
``2**24`` held exactly in float32, so its scores equal the integer reference's bit for bit.
Rounding uses straight-through estimators, so :func:`finetune` trains exactly what
:func:`export` writes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from snnfpga.model import widths as W
from snnfpga.model.artifact import Artifact, Encoder, build_artifact, build_graph_artifact
from snnfpga.model.config import TrainConfig
from snnfpga.model.network import SpikingMLP, spike


class _RoundSTE(torch.autograd.Function):
    """``round`` (half to even) forward, identity backward; the forward value is exact."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class _FloorSTE(torch.autograd.Function):
    """``floor`` forward, identity backward."""

    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


# Integer-unit caps (inclusive) on thresholds and |biases|, applied in integer mode, so that
# every register stays within the contract's 24 bits for any sensible T.
MAX_THRESHOLD = 2 ** 16
MAX_BIAS = 2 ** 18


def qmax(bits: int) -> int:
    """Largest magnitude of a narrow-range signed ``bits``-bit weight (``2**(bits-1) - 1``)."""
    return (1 << (bits - 1)) - 1


class FoldedNet(nn.Module):
    """The folded model in integer units (see the module docstring).

    Parameters per layer ``l``: ``weight_l`` ``[n_out, n_in]``, ``bias_l`` ``[n_out]`` and, for
    hidden layers, ``threshold_l`` ``[n_out]``. ``out_scale`` (a float, the output layer's
    Brevitas scale) maps integer scores back to the float model's logits for the loss.
    """

    def __init__(self, config: TrainConfig, input_shape: tuple[int, int], weights, biases, thresholds,
                 out_scale: float):
        super().__init__()
        self.config = config
        self.input_shape = tuple(input_shape)
        self.weights = nn.ParameterList(nn.Parameter(torch.as_tensor(w, dtype=torch.float32)) for w in weights)
        self.biases = nn.ParameterList(nn.Parameter(torch.as_tensor(b, dtype=torch.float32)) for b in biases)
        self.thresholds = nn.ParameterList(nn.Parameter(torch.as_tensor(t, dtype=torch.float32)) for t in thresholds)
        self.out_scale = float(out_scale)

    def integers(self, index: int) -> dict:
        """The exported integers of layer ``index`` (``int64`` numpy arrays)."""
        with torch.no_grad():
            w, b, th = self._layer(index, integer=True)
        out = {"weights": w.numpy().astype(np.int64), "bias": b.numpy().astype(np.int64)}
        if th is not None:
            out["threshold"] = th.numpy().astype(np.int64)
        return out

    def _layer(self, index: int, integer: bool):
        w, b = self.weights[index], self.biases[index]
        th = self.thresholds[index] if index < len(self.thresholds) else None
        if not integer:
            return w, b, th
        m = qmax(self.config.weight_bits)
        w = _RoundSTE.apply(torch.clamp(w, -m, m))
        b = _RoundSTE.apply(torch.clamp(b, -MAX_BIAS, MAX_BIAS))
        if th is not None:
            th = _RoundSTE.apply(torch.clamp(th, 1.0, MAX_THRESHOLD))
        return w, b, th

    def forward(self, spikes: torch.Tensor, integer: bool = True, record: bool = False):
        """Integer-unit scores ``[N, n_classes]`` from input spikes ``[N, T, n]``.

        ``integer=True``: the contract exactly (see the module docstring). ``integer=False``:
        the unrounded fold with the float leak ``v * (1 - 2**-k)``, equal (up to float
        rounding) to the float QAT model in eval mode.
        """
        c = self.config
        n, steps = spikes.shape[:2]
        x = spikes
        recorded = []
        n_layers = len(self.weights)
        for index in range(n_layers):
            w, b, th = self._layer(index, integer)
            current = (x.reshape(n * steps, -1) @ w.t()).reshape(n, steps, -1)
            if index == n_layers - 1:
                scores = (current + b).sum(dim=1)
                break
            v = torch.zeros_like(current[:, 0])
            out = []
            for t in range(steps):
                v = self._leak(v, integer) + b + current[:, t]
                s = spike((v - th) / th, c.surrogate_alpha)
                r = s.detach() if c.detach_reset else s
                v = v * (1.0 - r) if c.reset == "zero" else v - r * th
                out.append(s)
            x = torch.stack(out, dim=1)
            recorded.append(x)
        return (scores, recorded) if record else scores

    def _leak(self, v, integer: bool):
        k = self.config.leak_shift
        if k is None:
            return v
        if integer:
            return v - _FloorSTE.apply(v * 2.0 ** -k)
        return v * (1.0 - 2.0 ** -k)


def fold(model, input_shape: tuple[int, int]):
    """Fold a trained :class:`SpikingMLP` (its BatchNorm running statistics) into a :class:`FoldedNet`,
    or a mixer graph into a :class:`~snnfpga.model.trainable.FoldedGraph`."""
    from snnfpga.model import trainable, ttfs_net

    if isinstance(model, trainable.QatGraph):
        return trainable.fold(model)
    if isinstance(model, ttfs_net.TtfsQnn):
        return ttfs_net.fold(model, input_shape)
    weights, biases, thresholds = [], [], []
    with torch.no_grad():
        for linear, norm in zip(model.hidden, model.norms):
            qw = linear.quant_weight()
            w_int = qw.int().to(torch.float64)
            scale = qw.scale.detach().to(torch.float64).reshape(-1).expand(w_int.shape[0])
            a = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
            b_lin = linear.bias.double() if linear.bias is not None else torch.zeros_like(a)
            shift = a * (b_lin - norm.running_mean.double()) + norm.bias.double()
            c = a * scale
            sign = torch.where(c < 0, -1.0, 1.0).to(torch.float64)
            # |c| below 1 / MAX_THRESHOLD (a nearly constant neuron) is raised to it; its
            # weights shrink by the same factor and round away: v / |c| would be unbounded.
            mag = torch.clamp(c.abs(), min=1.0 / MAX_THRESHOLD)
            weights.append(sign[:, None] * w_int * (c.abs() / mag)[:, None])
            biases.append(shift / mag)
            thresholds.append(1.0 / mag)
        qw = model.output.quant_weight()
        out_scale = float(qw.scale.detach().reshape(-1)[0])
        weights.append(qw.int().to(torch.float64))
        biases.append(model.output.bias.detach().double() / out_scale)
    return FoldedNet(model.config, input_shape, weights, biases, thresholds, out_scale)


def export(net: FoldedNet, provenance: dict | None = None) -> Artifact:
    """The artifact of a :class:`FoldedNet`'s integers (widths chosen by proof in ``build_artifact``).

    A threshold above the largest membrane value its neuron can ever reach (proven by
    interval arithmetic) is lowered to that value plus one: the neuron still never fires,
    and no register is wider than it needs to be.
    """
    c = net.config
    from snnfpga.model import trainable, ttfs_net

    if isinstance(net, ttfs_net.TtfsIntegerNet):
        return ttfs_net.export(net, provenance)
    encoder = Encoder("rate", phase=c.encoder_param) if c.encoder == "rate" else \
        Encoder("threshold", level=c.encoder_param)

    if isinstance(net, trainable.FoldedGraph):
        nodes = trainable.lower_unreachable_thresholds(net.artifact_nodes(), net.input_shape, c.timesteps)
        return build_graph_artifact(c.name, net.input_shape, encoder, c.timesteps, nodes, provenance=provenance)
    layers = []
    n_layers = len(net.weights)
    for index in range(n_layers):
        spec = net.integers(index)
        spec.update(name=f"fc{index + 1}", weight_bits=c.weight_bits)
        if index < n_layers - 1:
            i_lo, i_hi = W.current_bounds(spec["weights"])
            _, hi = W.membrane_bounds(i_lo + spec["bias"], i_hi + spec["bias"], spec["threshold"], c.timesteps,
                                      c.leak_shift, c.reset)
            spec["threshold"] = np.minimum(spec["threshold"], np.maximum(hi + 1, 1))
            spec.update(leak_shift=c.leak_shift, reset=c.reset)
        layers.append(spec)
    return build_artifact(c.name, net.input_shape, encoder, c.timesteps, layers, provenance=provenance)


def finetune(net: FoldedNet, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
             val: tuple[torch.Tensor, torch.Tensor] | None = None, progress=None) -> list[dict]:
    """Fine-tune ``net`` in integer mode for ``config.finetune_epochs`` epochs; return the history.

    Adam on the integer-unit weights, biases and thresholds (``finetune_lr``, cosine decay to
    zero), cross-entropy on ``scores * out_scale / T`` (the float model's logit scale), the
    same augmentation as the QAT run. ``images`` ``uint8 [N, H, W]``, ``labels`` ``int64 [N]``;
    ``val`` is only measured, never used to select. ``progress`` is a callback per batch.
    """
    from snnfpga.model import ttfs_net
    from snnfpga.model.augment import augment, batches

    if isinstance(net, ttfs_net.TtfsIntegerNet):
        return ttfs_net.finetune(net, images, labels, generator, val=val, progress=progress)
    c = net.config
    if c.finetune_epochs == 0:
        return []
    per_epoch = (len(images) + c.batch_size - 1) // c.batch_size
    optimizer = torch.optim.Adam(net.parameters(), lr=c.finetune_lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=c.finetune_epochs * per_epoch)
    history = []
    for epoch in range(c.finetune_epochs):
        net.train()
        total_loss, correct = 0.0, 0
        for index in batches(len(images), c.batch_size, generator):
            x = augment(images[index], c, generator)
            spikes = encode_images(x, c)
            scores = net(spikes, integer=True)
            loss = torch.nn.functional.cross_entropy(scores * (net.out_scale / c.timesteps), labels[index],
                                                     label_smoothing=c.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += float(loss.detach()) * len(index)
            correct += int((scores.argmax(dim=1) == labels[index]).sum())
            if progress is not None:
                progress()
        entry = {"epoch": epoch + 1, "loss": round(total_loss / len(images), 6),
                 "train_accuracy": round(100.0 * correct / len(images), 4)}
        if val is not None:
            entry["val_accuracy_int"] = round(100.0 * float((integer_classes(net, val[0]) == val[1]).float().mean()), 4)
        history.append(entry)
    return history


def encode_images(images: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """``float [N, T, H*W]`` input spikes of ``uint8`` images under ``config``'s encoder."""
    from snnfpga.model.network import encode_spikes

    return encode_spikes(images.reshape(len(images), -1), config.encoder, config.encoder_param,
                         config.timesteps).float()


def integer_classes(net: FoldedNet, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """Classes ``int64 [N]`` of ``net`` in integer mode (lowest index wins ties)."""
    from snnfpga.model import ttfs_net

    if isinstance(net, ttfs_net.TtfsIntegerNet):
        return ttfs_net.integer_classes(net, images, batch)
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            out.append(net(encode_images(images[start:start + batch], net.config), integer=True).argmax(dim=1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)
