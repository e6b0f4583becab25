"""Training modules of layer graphs: the float QAT graph, its fold, the folded integer graph.

Three forms of one network, node for node the same graph as the artifact:

1. :class:`QatGraph` (float QAT): per synapse a Brevitas ``QuantConv2d``/``QuantLinear`` with
   narrow-range ``weight_bits`` weights and a per-output-channel float scale, followed by a
   BatchNorm over its output channels (axial: over its output positions); LIFs with
   threshold 1 (:func:`snnfpga.model.neurons.lif_float`); currents summed as floats.
2. :func:`fold` turns the trained graph into integer units. Every synapse ``i`` has the
   per-output gain ``g_i = a_i * s_i * e_i`` (BatchNorm gain, weight scale, the float value
   of one input event) and shift ``b_i`` (BatchNorm shift). Currents are summed only within
   one *unit* (``TrainNode.unit``); a unit ``u`` gets one scale ``S_u = max_i |g_i|`` per
   output element (at least ``1 / MAX_THRESHOLD``) over its synapses, so that every current
   of the unit is counted in the same integer step. Synapse ``i`` then has the integer-unit
   weights ``W_int_i * g_i / S_u`` (its Brevitas integers, exactly, when it sets ``S_u``;
   rescaled otherwise, rounded in step 3) and bias ``b_i / S_u``; a neuron reading unit
   ``u`` has threshold ``1 / S_u``. A negative gain flips the sign of the weights.
3. :class:`FoldedGraph` holds those values as float parameters. In ``integer`` mode its
   forward *is* the contract (weights rounded and clamped to the narrow signed range,
   biases and thresholds rounded, floor-shift leak, the same spikes and scores as the
   integer reference); straight-through rounding lets :func:`snnfpga.model.fold.finetune`
   train exactly what :meth:`FoldedGraph.export` writes.

Tensors are time-major, ``[T * N, ...]`` (row ``t * N + n``): a synapse has no state and
sees all steps as one batch; only neurons loop over ``T``. Maps are channels-last,
``[T * N, H, W, C]``, contiguous: the CPU's fast layout for the 1 x 1 channel mixing (a
matrix product on the last dimension), the per-channel BatchNorm (on the ``[B*H*W, C]``
view) and the axial matrices (on ``[B, H, W*C]`` or ``[B*H, W, C]`` views); convolutions
run on the NCHW view of the same memory. Only :meth:`FoldedGraph.to_chw` (and the
artifact) use the contract's ``(C, H, W)`` order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from brevitas.nn import QuantConv2d, QuantLinear
from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat
from torch import nn

from snnfpga.model import kinds as K
from snnfpga.model import widths as W
from snnfpga.model.neurons import glif_scan, lif_float, lif_integer

# Integer-unit caps (inclusive) on thresholds and |biases|, as for chains (fold.py).
MAX_THRESHOLD = 2 ** 16
MAX_BIAS = 2 ** 18


def qmax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def round_ste(x):
    return _RoundSTE.apply(x)


def time_major(x: torch.Tensor, steps: int) -> torch.Tensor:
    """``[T*N, ...]`` as ``[T, N, ...]`` (a view)."""
    return x.reshape(steps, -1, *x.shape[1:])


def channel_norm(norm: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """A per-channel BatchNorm of ``[..., C]`` on its ``[-1, C]`` view."""
    return norm(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def conv_nhwc(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """``F.conv2d`` of a ``[B, H, W, C]`` map (through its NCHW view), back to ``[B, H', W', C']``."""
    y = F.conv2d(x.permute(0, 3, 1, 2), weight, stride=stride, padding=padding).permute(0, 2, 3, 1)
    return y if y.is_contiguous() else y.contiguous()


def axial_lines(x: torch.Tensor, axis: str) -> torch.Tensor:
    """A ``[B, H, W, C]`` map as lines along ``axis``, positions in dimension 1 (the layout a
    BatchNorm1d over positions wants): H: ``[B, H, W*C]``; W: ``[B*H, W, C]`` (views)."""
    b, h, w, c = x.shape
    return x.reshape(b, h, w * c) if axis == "h" else x.reshape(b * h, w, c)


def axial_dim(axis: str) -> int:
    """The dimension of ``axis`` in a ``[B, H, W, C]`` map."""
    return 1 if axis == "h" else 2


def chw_to_hwc(arr: torch.Tensor) -> torch.Tensor:
    """A ``(C, H, W)``-broadcast parameter as ``(H, W, C)``; flat ones unchanged."""
    return arr.permute(1, 2, 0) if arr.dim() == 3 else arr


def flatten_chw(x: torch.Tensor) -> torch.Tensor:
    """A batch of maps ``[B, H, W, C]`` flattened in the contract's ``(c, y, x)`` order; flat as is."""
    return x.permute(0, 3, 1, 2).reshape(len(x), -1) if x.dim() == 4 else x.reshape(len(x), -1)


# --------------------------------------------------------------------------------------
# 1. The float QAT graph


class TrainNode(nn.Module):
    """A node of the QAT graph; ``kind`` is the artifact kind it becomes."""

    kind = ""

    def __init__(self, name: str, inputs: tuple[str, ...]):
        super().__init__()
        self.node_name = name
        self.inputs = tuple(inputs)

    def forward(self, xs: list[torch.Tensor], steps: int) -> torch.Tensor:
        raise NotImplementedError

    def event_value(self) -> float:
        """The float value one event of this node's output stands for (1 for spikes)."""
        return 1.0


class TrainSynapse(TrainNode):
    """Brevitas weights + optional BatchNorm; ``unit`` names the current's integer unit."""

    def __init__(self, name, inputs, unit: str, weight_bits: int, norm: bool, per_channel: bool = True,
                 unit_offset: int = 0):
        super().__init__(name, inputs)
        self.unit = unit
        self.unit_offset = unit_offset  # first channel of this current within its unit's channels
        self.weight_bits = weight_bits
        self.per_channel = per_channel
        self.use_norm = norm

    def quant_kwargs(self):
        quant = Int8WeightPerChannelFloat if self.per_channel else Int8WeightPerTensorFloat
        return {"weight_quant": quant, "weight_bit_width": self.weight_bits}

    def normalise(self, y: torch.Tensor) -> torch.Tensor:
        return self.norm(y) if self.use_norm else y

    def gain_shape(self, out_shape) -> tuple[int, ...]:
        """Broadcast shape of the per-output gain over the output tensor ``(C, H, W)`` or ``(n,)``."""
        return (out_shape[0], 1, 1) if len(out_shape) == 3 else (out_shape[0],)

    def folded(self, input_values: list[float], out_shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(W_int [artifact layout], gain, shift)`` in float64; gain and shift broadcast to
        the output (:meth:`gain_shape`)."""
        q = self.layer.quant_weight()
        w_int = q.int().to(torch.float64)
        scale = q.scale.detach().to(torch.float64).reshape(-1)
        scale = scale.expand(w_int.shape[0]) if scale.numel() == 1 else scale
        bias = self.layer.bias.detach().double() if self.layer.bias is not None else torch.zeros_like(scale)
        if self.use_norm:
            bn = self.norm
            a = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
            shift = a * (bias - bn.running_mean.double()) + bn.bias.detach().double()
        else:
            a, shift = torch.ones_like(scale), bias
        gain = a * scale * self.input_value(input_values)
        shape = self.gain_shape(out_shape)
        return self.artifact_weight(w_int).numpy(), gain.numpy().reshape(shape), shift.numpy().reshape(shape)

    def input_value(self, input_values: list[float]) -> float:
        values = set(input_values)
        if len(values) > 1:
            raise ValueError(f"{self.node_name}: inputs with different event values {sorted(values)}")
        return input_values[0]

    def artifact_weight(self, w_int: torch.Tensor) -> torch.Tensor:
        return w_int


class TrainConv(TrainSynapse):
    kind = "conv"

    def __init__(self, name, inputs, unit, c_in, c_out, kernel, stride, padding, weight_bits, unit_offset=0):
        super().__init__(name, inputs, unit, weight_bits, norm=True, unit_offset=unit_offset)
        self.layer = QuantConv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False, **self.quant_kwargs())
        self.norm = nn.BatchNorm1d(c_out)
        self.stride, self.padding = stride, padding

    def forward(self, xs, steps):
        w = self.layer.quant_weight().value
        return channel_norm(self.norm, conv_nhwc(xs[0], w, self.stride, self.padding))


class TrainPointwise(TrainSynapse):
    kind = "pointwise"

    def __init__(self, name, inputs, unit, c_in, c_out, weight_bits, unit_offset=0):
        super().__init__(name, inputs, unit, weight_bits, norm=True, unit_offset=unit_offset)
        self.layer = QuantLinear(c_in, c_out, bias=False, **self.quant_kwargs())
        self.norm = nn.BatchNorm1d(c_out)

    def forward(self, xs, steps):
        x = xs[0] if len(xs) == 1 else torch.cat(xs, dim=-1)
        return channel_norm(self.norm, F.linear(x, self.layer.quant_weight().value))


class TrainAxial(TrainSynapse):
    """One ``L x L`` matrix along H (``axis="h"``) or W, BatchNorm over the output positions."""

    kind = "axial"

    def __init__(self, name, inputs, unit, axis, length, weight_bits):
        super().__init__(name, inputs, unit, weight_bits, norm=True)
        self.axis = axis
        self.layer = QuantLinear(length, length, bias=False, **self.quant_kwargs())
        self.norm = nn.BatchNorm1d(length)

    def forward(self, xs, steps):
        y = torch.matmul(self.layer.quant_weight().value, axial_lines(xs[0], self.axis))
        return self.norm(y).reshape(xs[0].shape)

    def gain_shape(self, out_shape):
        _, h, w = out_shape
        return (1, h, 1) if self.axis == "h" else (1, 1, w)


class TrainDense(TrainSynapse):
    kind = "dense"

    def __init__(self, name, inputs, unit, n_in, n_out, weight_bits, norm: bool, per_channel: bool, bias: bool):
        super().__init__(name, inputs, unit, weight_bits, norm=norm, per_channel=per_channel)
        self.layer = QuantLinear(n_in, n_out, bias=bias, **self.quant_kwargs())
        if norm:
            self.norm = nn.BatchNorm1d(n_out)

    def forward(self, xs, steps):
        return self.normalise(self.layer(flatten_chw(xs[0])))


class TrainLif(TrainNode):
    kind = "lif"

    def __init__(self, name, inputs, leak_shift, reset, alpha):
        super().__init__(name, inputs)
        self.leak_shift, self.reset, self.alpha = leak_shift, reset, alpha

    def forward(self, xs, steps):
        current = xs[0] if len(xs) == 1 else torch.stack(xs).sum(dim=0)
        spikes = lif_float(time_major(current, steps), self.leak_shift, self.reset, self.alpha)
        return spikes.reshape(current.shape)


class TrainGlif(TrainNode):
    kind = "glif"

    def __init__(self, name, inputs, axis, group, leak_shift, alpha):
        super().__init__(name, inputs)
        self.axis, self.group, self.leak_shift, self.alpha = axis, group, leak_shift, alpha

    def forward(self, xs, steps):
        one = torch.ones((1, 1, 1, 1), dtype=xs[0].dtype)
        return glif_scan(xs[0], axial_dim(self.axis), self.group, self.leak_shift, one, self.alpha, integer=False)


class TrainAdd(TrainNode):
    kind = "add"

    def forward(self, xs, steps):
        return torch.stack(xs).sum(dim=0)


class TrainConcat(TrainNode):
    kind = "concat"

    def forward(self, xs, steps):
        return torch.cat(xs, dim=-1)


class TrainPool(TrainNode):
    """Global spike-count pooling; in float the count is divided by ``divide`` (that factor
    folds into the next synapse's gain: :meth:`event_value`)."""

    kind = "pool"

    def __init__(self, name, inputs, divide: float = 1.0):
        super().__init__(name, inputs)
        self.divide = float(divide)

    def forward(self, xs, steps):
        return xs[0].sum(dim=(1, 2)) / self.divide

    def event_value(self):
        return 1.0 / self.divide


class TrainFlatten(TrainNode):
    kind = "flatten"

    def forward(self, xs, steps):
        return flatten_chw(xs[0])


class TrainOutput(TrainNode):
    """Scores: the sum over ``T`` of the summed input currents, ``[N, n]``."""

    kind = "output"

    def forward(self, xs, steps):
        current = xs[0] if len(xs) == 1 else torch.stack(xs).sum(dim=0)
        return time_major(current, steps).sum(dim=0)


class QatGraph(nn.Module):
    """The float QAT graph (see the module docstring): nodes in topological order."""

    def __init__(self, config, nodes: list[TrainNode], input_shape: tuple[int, int], n_classes: int):
        super().__init__()
        self.config = config
        self.input_shape = tuple(input_shape)
        self.n_inputs = input_shape[0] * input_shape[1]
        self.n_classes = n_classes
        self.nodes = nn.ModuleList(nodes)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``float [N, T, H*W]`` input spikes from ``uint8 [N, H, W]`` pixels."""
        from snnfpga.model.network import encode_spikes

        c = self.config
        return encode_spikes(images.reshape(len(images), -1), c.encoder, c.encoder_param, c.timesteps).float()

    def forward(self, spikes: torch.Tensor, record: bool = False):
        """Scores ``[N, n_classes]`` from input spikes ``[N, T, H*W]``; with ``record`` also
        ``{name: output [T*N, ...]}`` of every node."""
        n, steps = spikes.shape[:2]
        h, w = self.input_shape
        values = {"input": spikes.transpose(0, 1).reshape(steps * n, h, w, 1)}
        for node in self.nodes:
            values[node.node_name] = node([values[s] for s in node.inputs], steps)
        scores = values[self.nodes[-1].node_name]
        return (scores, values) if record else scores

    def classify(self, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
        """Predicted classes ``int64 [N]`` of ``uint8`` images (eval mode, no gradients)."""
        was_training = self.training
        self.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(images), batch):
                out.append(self(self.encode(images[start:start + batch])).argmax(dim=1))
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


# --------------------------------------------------------------------------------------
# 3. The folded integer-unit graph


class FoldedNode(nn.Module):
    """A node of the folded graph: float parameters in integer units (see the module doc)."""

    kind = ""

    def __init__(self, name: str, inputs: tuple[str, ...]):
        super().__init__()
        self.node_name = name
        self.inputs = tuple(inputs)

    def forward(self, xs, steps, integer: bool):
        raise NotImplementedError

    def to_node(self) -> K.Node:
        """The artifact node of the rounded integers (widths unset: proven on export)."""
        raise NotImplementedError


class FoldedSynapse(FoldedNode):
    def __init__(self, name, inputs, unit, weight, bias, weight_bits, **params):
        super().__init__(name, inputs)
        self.unit, self.weight_bits, self.params = unit, weight_bits, params
        self.weight = nn.Parameter(torch.as_tensor(weight, dtype=torch.float32))
        self.bias = nn.Parameter(torch.as_tensor(bias, dtype=torch.float32))

    def integers(self, integer: bool):
        if not integer:
            return self.weight, self.bias
        m = qmax(self.weight_bits)
        return round_ste(torch.clamp(self.weight, -m, m)), round_ste(torch.clamp(self.bias, -MAX_BIAS, MAX_BIAS))

    def forward(self, xs, steps, integer):
        w, b = self.integers(integer)
        return self.apply_weights(xs, w) + b.reshape(self.bias_shape())

    def bias_shape(self):
        return (-1,)  # per output channel: the last dimension

    def to_node(self):
        with torch.no_grad():
            w, b = self.integers(True)
        cls = K.KINDS[self.kind]
        return cls(name=self.node_name, inputs=self.inputs, unit=self.unit, weight_bits=self.weight_bits,
                   weight=w.numpy().astype(np.int64), bias=b.numpy().astype(np.int64), **self.params)


class FoldedConv(FoldedSynapse):
    kind = "conv"

    def apply_weights(self, xs, w):
        return conv_nhwc(xs[0], w, self.params["stride"], self.params["padding"])


class FoldedPointwise(FoldedSynapse):
    kind = "pointwise"

    def apply_weights(self, xs, w):
        return F.linear(xs[0] if len(xs) == 1 else torch.cat(xs, dim=-1), w)


class FoldedAxial(FoldedSynapse):
    kind = "axial"

    def apply_weights(self, xs, w):
        return torch.matmul(w, axial_lines(xs[0], self.params["axis"])).reshape(xs[0].shape)

    def bias_shape(self):
        return (1, -1, 1, 1) if self.params["axis"] == "h" else (1, 1, -1, 1)  # per position, [B, H, W, C]


class FoldedDense(FoldedSynapse):
    kind = "dense"

    def apply_weights(self, xs, w):
        return flatten_chw(xs[0]) @ w.t()


class FoldedThreshold(FoldedNode):
    """A population with a learned threshold (integer units, broadcast over its tensor)."""

    minimum = 1.0

    def __init__(self, name, inputs, threshold, alpha, **params):
        super().__init__(name, inputs)
        self.threshold = nn.Parameter(torch.as_tensor(threshold, dtype=torch.float32))
        self.alpha, self.params = alpha, params

    def theta(self, integer: bool):
        th = torch.clamp(self.threshold, self.minimum, MAX_THRESHOLD)
        return round_ste(th) if integer else th

    def to_node(self):
        with torch.no_grad():
            th = self.theta(True)
        return K.KINDS[self.kind](name=self.node_name, inputs=self.inputs, threshold=th.numpy().astype(np.int64),
                                  **self.params)


class FoldedLif(FoldedThreshold):
    kind = "lif"

    def forward(self, xs, steps, integer):
        current = xs[0] if len(xs) == 1 else torch.stack(xs).sum(dim=0)
        th = chw_to_hwc(self.theta(integer))
        th = th.reshape(1, *th.shape)  # broadcast over the batch of one step
        spikes = lif_integer(time_major(current, steps), th, self.params["leak_shift"], self.params["reset"],
                             self.alpha, integer=integer)
        return spikes.reshape(current.shape)


class FoldedGlif(FoldedThreshold):
    kind = "glif"
    minimum = 0.0

    def forward(self, xs, steps, integer):
        th = chw_to_hwc(self.theta(integer))
        return glif_scan(xs[0], axial_dim(self.params["axis"]), self.params["group"], self.params["leak_shift"],
                         th.reshape(1, *th.shape), self.alpha, integer=integer)


FOLDED_PLAIN = ("add", "concat", "pool", "flatten", "output")


class FoldedPlain(FoldedNode):
    """The kinds without parameters (:data:`FOLDED_PLAIN`)."""

    def __init__(self, kind, name, inputs):
        super().__init__(name, inputs)
        if kind not in FOLDED_PLAIN:
            raise ValueError(f"{name}: {kind!r} is not a parameter-free kind")
        self.kind = kind

    def forward(self, xs, steps, integer):
        if self.kind == "add":
            return torch.stack(xs).sum(dim=0)
        if self.kind == "concat":
            return torch.cat(xs, dim=-1)
        if self.kind == "pool":
            return xs[0].sum(dim=(1, 2))
        if self.kind == "flatten":
            return flatten_chw(xs[0])
        current = xs[0] if len(xs) == 1 else torch.stack(xs).sum(dim=0)
        return time_major(current, steps).sum(dim=0)  # output: scores after T steps

    def to_node(self):
        return K.KINDS[self.kind](name=self.node_name, inputs=self.inputs)


FOLDED_SYNAPSES = {"conv": FoldedConv, "pointwise": FoldedPointwise, "axial": FoldedAxial, "dense": FoldedDense}


class FoldedGraph(nn.Module):
    """The folded graph (see the module docstring). ``out_scale`` maps integer scores to the
    QAT model's logits (the output unit's scale) for the fine-tune loss."""

    def __init__(self, config, input_shape, nodes: list[FoldedNode], out_scale: float):
        super().__init__()
        self.config = config
        self.input_shape = tuple(input_shape)
        self.nodes = nn.ModuleList(nodes)
        self.out_scale = float(out_scale)

    def forward(self, spikes: torch.Tensor, integer: bool = True, record: bool = False):
        """Integer-unit scores ``[N, n_classes]`` from input spikes ``[N, T, H*W]``; with
        ``record`` also every node's output ``{name: [T*N, ...]}``."""
        n, steps = spikes.shape[:2]
        h, w = self.input_shape
        values = {"input": spikes.transpose(0, 1).reshape(steps * n, h, w, 1)}
        for node in self.nodes:
            values[node.node_name] = node([values[s] for s in node.inputs], steps, integer)
        scores = values[self.nodes[-1].node_name]
        return (scores, values) if record else scores

    def artifact_nodes(self) -> list[K.Node]:
        return [node.to_node() for node in self.nodes]

    @staticmethod
    def to_chw(value: torch.Tensor, steps: int) -> torch.Tensor:
        """A recorded ``[T*N, ...]`` output as the reference's ``[N, T, ...]`` in ``(C, H, W)`` order."""
        x = value.permute(0, 3, 1, 2) if value.dim() == 4 else value
        return x.reshape(steps, -1, *x.shape[1:]).transpose(0, 1)


# --------------------------------------------------------------------------------------
# 2. The fold


@dataclass
class _SynapseFold:
    node: TrainSynapse
    w_int: np.ndarray
    gain: np.ndarray
    shift: np.ndarray


def shapes_of(graph: QatGraph) -> dict:
    """Output shape of every node in the contract's ``(C, H, W)`` or ``(n,)``, from one traced forward."""
    was = graph.training
    graph.eval()
    with torch.no_grad():
        _, values = graph(torch.zeros(1, graph.config.timesteps, graph.n_inputs), record=True)
    graph.train(was)
    return {k: (v.shape[3], v.shape[1], v.shape[2]) if v.dim() == 4 else tuple(v.shape[1:]) for k, v in values.items()}


def fold(graph: QatGraph) -> FoldedGraph:
    """Fold a trained :class:`QatGraph` (BatchNorm running statistics) into a :class:`FoldedGraph`."""
    shapes = shapes_of(graph)
    value = {"input": 1.0}
    for n in graph.nodes:
        value[n.node_name] = n.event_value()
    folds: dict[str, _SynapseFold] = {}
    with torch.no_grad():
        for node in graph.nodes:
            if isinstance(node, TrainSynapse):
                w_int, gain, shift = node.folded([value[s] for s in node.inputs], shapes[node.node_name])
                folds[node.node_name] = _SynapseFold(node, w_int, gain, shift)
    unit_of, ties = _units_of_currents(graph, shapes)
    units = _tie(_unit_scales(folds.values()), ties)
    out = []
    for node in graph.nodes:
        name = node.node_name
        if isinstance(node, TrainSynapse):
            f = folds[name]
            scale = _unit_slice(units[node.unit], node.unit_offset, f.gain.shape)
            ratio = f.gain / scale  # per output element, |ratio| <= 1
            w = f.w_int * _weight_broadcast(node.kind, ratio)
            params = {"stride": node.stride, "padding": node.padding} if node.kind == "conv" else \
                {"axis": node.axis} if node.kind == "axial" else {}
            out.append(FOLDED_SYNAPSES[node.kind](name, node.inputs, node.unit, w, (f.shift / scale).reshape(-1),
                                                  node.weight_bits, **params))
        elif node.kind in ("lif", "glif"):
            unit, offset = unit_of[node.inputs[0]]
            threshold = 1.0 / _unit_slice(units[unit], offset, shapes[name])
            params = {"leak_shift": node.leak_shift, "reset": node.reset} if node.kind == "lif" else \
                {"axis": node.axis, "group": node.group, "leak_shift": node.leak_shift}
            cls = FoldedLif if node.kind == "lif" else FoldedGlif
            out.append(cls(name, node.inputs, threshold, node.alpha, **params))
        else:
            out.append(FoldedPlain(node.kind, name, node.inputs))
    head_scale = units[unit_of[graph.nodes[-1].node_name][0]]
    if np.ptp(head_scale) != 0:
        raise ValueError("the output node's unit must have one scale (a per-tensor weight scale)")
    return FoldedGraph(graph.config, graph.input_shape, out, float(head_scale.reshape(-1)[0]))


def _units_of_currents(graph: QatGraph, shapes: dict) -> tuple[dict, list]:
    """``(unit, first channel)`` of every current-valued node, and the channel ranges of one
    unit that a sum adds together (``(unit, a, b, channels)``: their scales must be tied)."""
    unit_of, ties = {}, []
    for node in graph.nodes:
        name = node.node_name
        if isinstance(node, TrainSynapse):
            unit_of[name] = (node.unit, node.unit_offset)
            continue
        ins = [unit_of[s] for s in node.inputs if s in unit_of]
        if not ins:
            continue
        if len({u for u, _ in ins}) > 1:
            raise ValueError(f"{name}: sums currents of different units {sorted({u for u, _ in ins})}")
        unit, first = ins[0]
        if node.kind == "concat":
            offset = first
            for src in node.inputs:
                if unit_of[src][1] != offset:
                    raise ValueError(f"{name}: joins currents that are not consecutive channels of unit {unit!r}")
                offset += shapes[src][0]
        else:
            ties += [(unit, first, off, shapes[name][0]) for _, off in ins[1:] if off != first]
        if node.kind in ("add", "concat", "output"):  # current-valued
            unit_of[name] = (unit, first)
    return unit_of, ties


def _tie(units: dict, ties: list) -> dict:
    """Give tied channel ranges of a unit one scale (the larger), until nothing changes."""
    changed = True
    while changed:
        changed = False
        for unit, a, b, n in ties:
            s = units[unit]
            both = np.maximum(s[a:a + n], s[b:b + n])
            if not (np.array_equal(both, s[a:a + n]) and np.array_equal(both, s[b:b + n])):
                s[a:a + n] = both
                s[b:b + n] = both
                changed = True
    return units


def _unit_scales(folds) -> dict[str, np.ndarray]:
    """Per unit, ``S_u = max |gain|`` over its synapses, element by element (channels placed at
    each synapse's ``unit_offset``), at least ``1 / MAX_THRESHOLD``."""
    units: dict[str, np.ndarray] = {}
    for f in folds:
        node, mag = f.node, np.abs(f.gain)
        per_channel = mag.ndim == 3 and mag.shape[1:] == (1, 1)
        if per_channel:
            need = node.unit_offset + mag.shape[0]
            current = units.get(node.unit, np.zeros((0, 1, 1)))
            if current.shape[0] < need:
                current = np.concatenate([current, np.zeros((need - current.shape[0], 1, 1))])
            current[node.unit_offset:need] = np.maximum(current[node.unit_offset:need], mag)
            units[node.unit] = current
        else:
            if node.unit_offset:
                raise ValueError(f"{node.node_name}: only per-channel gains can sit at a channel offset")
            if node.unit in units and units[node.unit].shape != mag.shape:
                raise ValueError(f"unit {node.unit!r}: gains of shapes {units[node.unit].shape} and {mag.shape} "
                                 "cannot share one scale")
            units[node.unit] = np.maximum(units.get(node.unit, mag), mag)
    return {u: np.maximum(s, 1.0 / MAX_THRESHOLD) for u, s in units.items()}


def _unit_slice(scale: np.ndarray, offset: int, shape: tuple) -> np.ndarray:
    if scale.ndim == 3 and scale.shape[1:] == (1, 1):
        return scale[offset:offset + shape[0]]
    return scale


def _weight_broadcast(kind: str, ratio: np.ndarray) -> np.ndarray:
    """The per-output ratio shaped to scale the rows of the artifact weight layout."""
    flat = ratio.reshape(-1)
    if kind == "conv":
        return flat[:, None, None, None]
    return flat[:, None]  # dense, pointwise: rows are outputs; axial: rows are output positions


def lower_unreachable_thresholds(nodes: list[K.Node], input_shape, timesteps: int) -> list[K.Node]:
    """A LIF threshold above every membrane value its neurons can reach (proven) is lowered to
    that value plus one: the neurons still never fire, and no register is wider than it needs."""
    from dataclasses import replace

    from snnfpga.model.graph import analyse

    graph = analyse(nodes, input_shape, timesteps)
    out = []
    for node in graph.nodes:
        if isinstance(node, K.Lif):
            i = graph.proofs[node.inputs[0]].out
            for src in node.inputs[1:]:
                i = i + graph.proofs[src].out
            shape = graph.types[node.name].shape
            _, hi = W.membrane_bounds(i.lo, i.hi, node.threshold, timesteps, node.leak_shift, node.reset, node.fire,
                                      node.leak_shift2)
            hi = np.broadcast_to(hi, shape)
            axes = tuple(d for d, size in enumerate(node.threshold.shape) if size == 1 and shape[d] > 1)
            reach = hi.max(axis=axes, keepdims=True) if axes else hi
            node = replace(node, threshold=np.minimum(node.threshold, np.maximum(reach + 1, 1)).astype(np.int64))
        out.append(node)
    return out
