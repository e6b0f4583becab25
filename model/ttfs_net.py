"""Time-to-first-spike networks: a Brevitas quantised ReLU MLP whose integer forward is the
TTFS network of ``docs/integer-contract.md`` (kinds ``ttfs`` and ``ttfs_output``).

With ``b`` activation bits (the ttfs encoder's ``bits``, one ``S = 2**b - 1`` for the whole
network):

* :class:`TtfsQnn` -- the float QAT model: input ``x = pixel >> (8 - b)`` scaled by ``1/S``,
  ``[QuantLinear -> QuantReLU(b bits)] * len(hidden) -> QuantLinear``; weights per output
  channel (hidden) or per tensor (output), Brevitas' round-to-nearest activations. An L1
  term on the hidden activations (``activation_l1``) keeps neurons silent: a TTFS neuron
  fires at most once, and only when its activation is at least 1.
* :func:`fold` -- the integer ReLU network :class:`TtfsIntegerNet`: per hidden neuron
  ``x = clamp(floor((W x + D) / R), 0, S)`` with the integer weights ``W``, ramp
  ``R = round(s_act / (s_w s_in))`` and ``D = bias / (s_w s_in) + R / 2`` (the ``+ R / 2``
  turns round-to-nearest into the contract's floor); output ``W x + D``.
* :func:`finetune` trains that integer network itself (straight-through estimators for the
  rounding of ``W`` and ``D`` and for the floor), so the exported artifact is what was
  trained: ``theta = S R - D``, the spike time of every hidden neuron is ``S - x``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from brevitas.nn import QuantReLU
from torch import nn

from snnfpga.model.artifact import Artifact, Encoder, build_graph_artifact
from snnfpga.model.config import TrainConfig
from snnfpga.model.fold import _RoundSTE
from snnfpga.model.integer_torch import _argmax_lowest
from snnfpga.model.kinds import Ttfs, TtfsOutput
from snnfpga.model.network import quant_linear

# Initial clip of the QuantReLU, in units of the layer's input scale (learned from there).
ACT_MAX_INIT = 4.0


def window_steps(config: TrainConfig) -> int:
    return (1 << config.encoder_param) - 1


def encode(images: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """The encoder's activations ``x = pixel >> (8 - b)`` (``float [N, n]``, integers 0..S)."""
    return (images.reshape(len(images), -1).to(torch.int64) >> (8 - config.encoder_param)).float()


class TtfsQnn(nn.Module):
    """The float QAT model (see the module docstring)."""

    def __init__(self, config: TrainConfig, n_inputs: int = 784, n_classes: int = 10):
        super().__init__()
        self.config = config
        self.n_inputs, self.n_classes = n_inputs, n_classes
        sizes = [n_inputs, *config.hidden]
        self.hidden = nn.ModuleList(quant_linear(a, b, config.weight_bits, True, True)
                                    for a, b in zip(sizes[:-1], sizes[1:]))
        self.acts = nn.ModuleList(QuantReLU(bit_width=config.encoder_param, max_val=ACT_MAX_INIT,
                                            return_quant_tensor=True) for _ in config.hidden)
        self.output = quant_linear(sizes[-1], n_classes, config.weight_bits, False, True)
        self.activity = torch.zeros(())

    # The training loop's hooks (snnfpga.model.train): inputs, loss scale, extra loss term.
    loss_scale = 1.0

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return encode(images, self.config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, n_classes]`` from encoder activations ``[N, n]``."""
        h = x / window_steps(self.config)
        activity = []
        for linear, act in zip(self.hidden, self.acts):
            q = act(linear(h))
            activity.append((q.value / q.scale).mean() / window_steps(self.config))
            h = q.value
        self.activity = torch.stack(activity).mean()
        return self.output(h)

    def regularizer(self) -> torch.Tensor:
        return self.config.activation_l1 * self.activity

    def classify(self, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        was = self.training
        self.eval()
        with torch.no_grad():
            out = [self(self.encode(images[i:i + batch])).argmax(dim=1) for i in range(0, len(images), batch)]
        self.train(was)
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


class TtfsIntegerNet(nn.Module):
    """The integer ReLU network (see the module docstring), trainable in integer units.

    ``weights[l]`` and ``offsets[l]`` (``D``) are float parameters rounded on use; ``ramps[l]``
    are fixed integers ``>= 1``. ``out_scale`` converts output integers to the float model's
    logits (for the loss)."""

    def __init__(self, config, input_shape, weights, offsets, ramps, out_scale: float):
        super().__init__()
        self.config = config
        self.input_shape = tuple(input_shape)
        self.weights = nn.ParameterList(nn.Parameter(w.float()) for w in weights)
        self.offsets = nn.ParameterList(nn.Parameter(d.float()) for d in offsets)
        for i, r in enumerate(ramps):
            self.register_buffer(f"ramp{i}", r.to(torch.int64))
        self.out_scale = out_scale
        self.activity = torch.zeros(())

    @property
    def ramps(self) -> list[torch.Tensor]:
        return [getattr(self, f"ramp{i}") for i in range(len(self.weights) - 1)]

    def int_weight(self, i: int) -> torch.Tensor:
        q = (1 << (self.config.weight_bits - 1)) - 1
        return _RoundSTE.apply(self.weights[i].clamp(-q, q))

    def int_offset(self, i: int) -> torch.Tensor:
        return _RoundSTE.apply(self.offsets[i])

    def forward(self, x: torch.Tensor, record: bool = False):
        """Output integers ``[N, n_classes]`` from encoder activations; exact integers in the
        forward pass (float64), straight-through gradients backward. With ``record`` also the
        hidden activations."""
        s = window_steps(self.config)
        h = x.double()
        hidden, activity = [], []
        for i, ramp in enumerate(self.ramps):
            z = h @ self.int_weight(i).double().T + self.int_offset(i).double()
            exact = torch.div(z.detach().round().to(torch.int64), ramp, rounding_mode="floor").double()
            q = z / ramp
            a = (q + (exact - q).detach()).clamp(0, s)  # floor, straight through
            hidden.append(a)
            activity.append(a.mean() / s)
            h = a
        self.activity = torch.stack(activity).mean()
        out = h @ self.int_weight(len(self.ramps)).double().T + self.int_offset(len(self.ramps)).double()
        return (out, hidden) if record else out


def fold(model: TtfsQnn, input_shape) -> TtfsIntegerNet:
    """The integer network of a trained :class:`TtfsQnn` (see the module docstring)."""
    c = model.config
    weights, offsets, ramps = [], [], []
    s_in = 1.0 / window_steps(c)
    with torch.no_grad():
        for linear, act in zip(model.hidden, model.acts):
            qw = linear.quant_weight()
            s_w = qw.scale.detach().double().reshape(-1)
            probe = act(torch.zeros(1, linear.out_features))
            s_act = float(probe.scale)
            unit = s_w * s_in
            ramp = torch.clamp(torch.round(s_act / unit), min=1)
            weights.append(qw.int().double())
            offsets.append(linear.bias.double() / unit + torch.floor(ramp / 2))
            ramps.append(ramp)
            s_in = s_act
        qw = model.output.quant_weight()
        unit = float(qw.scale.detach().reshape(-1)[0]) * s_in
        weights.append(qw.int().double())
        offsets.append(model.output.bias.double() / unit)
    return TtfsIntegerNet(c, input_shape, weights, offsets, ramps, out_scale=unit)


def finetune(net: TtfsIntegerNet, images, labels, generator, val=None, progress=None) -> list[dict]:
    """Train the integer network ``config.finetune_epochs`` epochs (Adam, ``finetune_lr`` in
    integer units, cosine decay), the same loss (cross-entropy on ``out * out_scale`` plus the
    activity term) and augmentation as the QAT run."""
    from snnfpga.model.augment import augment, batches

    c = net.config
    history = []
    if c.finetune_epochs == 0:
        return history
    per_epoch = (len(images) + c.batch_size - 1) // c.batch_size
    optimizer = torch.optim.Adam(net.parameters(), lr=c.finetune_lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=c.finetune_epochs * per_epoch)
    for epoch in range(c.finetune_epochs):
        net.train()
        total, correct = 0.0, 0
        for index in batches(len(images), c.batch_size, generator):
            out = net(encode(augment(images[index], c, generator), c))
            loss = F.cross_entropy(out * net.out_scale, labels[index], label_smoothing=c.label_smoothing) \
                + c.activation_l1 * net.activity
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(index)
            correct += int((out.argmax(dim=1) == labels[index]).sum())
            if progress is not None:
                progress()
        entry = {"epoch": epoch + 1, "loss": round(total / len(images), 6),
                 "train_accuracy": round(100.0 * correct / len(images), 4)}
        if val is not None:
            entry["val_accuracy_int"] = round(100.0 * float((integer_classes(net, val[0]) == val[1]).float().mean()), 4)
        history.append(entry)
    return history


def integer_classes(net: TtfsIntegerNet, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """Classes of the integer network (lowest index wins ties, as the contract's argmax)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            scores = net(encode(images[i:i + batch], net.config)).round().to(torch.int64)
            out.append(_argmax_lowest(scores))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def export(net: TtfsIntegerNet, provenance: dict | None = None) -> Artifact:
    """The artifact: ``ttfs`` nodes ``h1 .. hL`` (``theta = S R - D``) and ``ttfs_output`` ``out``."""
    c = net.config
    s = window_steps(c)
    nodes, prev = [], "input"
    with torch.no_grad():
        for i, ramp in enumerate(net.ramps):
            name = f"h{i + 1}"
            r = ramp.numpy().astype(np.int64)
            d = net.int_offset(i).numpy().astype(np.int64)
            nodes.append(Ttfs(name=name, inputs=(prev,), weight=net.int_weight(i).numpy().astype(np.int64),
                              threshold=s * r - d, ramp=r, weight_bits=c.weight_bits))
            prev = name
        last = len(net.ramps)
        nodes.append(TtfsOutput(name="out", inputs=(prev,), weight=net.int_weight(last).numpy().astype(np.int64),
                                bias=net.int_offset(last).numpy().astype(np.int64), weight_bits=c.weight_bits))
    return build_graph_artifact(c.name, net.input_shape, Encoder("ttfs", bits=c.encoder_param), c.timesteps, nodes,
                                provenance=provenance)
