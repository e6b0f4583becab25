"""Import a network trained elsewhere (snnTorch, Norse, Sinabs, ...) from NIR.

:func:`nir_path` walks a NIR graph from ``Input`` to ``Output`` (one edge out of every node,
no recurrence). :func:`read_steps` reads that path as the contract can hold it: synapses
(``Affine``, ``Linear``, ``Conv2d``) each followed by a neuron node (``LIF``, ``IF``; the
last one an ``I``, a ``LIF``/``IF`` (a spiking output) or nothing: the last synapse straight
into the ``Output``), and between them ``Flatten`` and a global ``SumPool2d`` (the
contract's ``pool``); anything else, or a parameter or shape the contract cannot hold, is
refused in one line naming the node.

:func:`import_foreign` discretises each neuron with the framework's time step and
conventions (:data:`CONVENTIONS`; ``dt``, ``reset`` can be overridden), rounds its leak to
the nearest ``v - (v >> k)`` or ``v - (v >> k) - (v >> k2)`` (a note when ``beta`` is not
exactly one), and quantizes weights, biases and thresholds per output neuron or channel
(a hidden layer: its spikes do not change under a positive scale) or per layer (the output:
its scores, or a spiking output's membranes, are compared across classes). With
calibration images it chooses each layer's weight clip on them (:func:`_calibrate`).
A chain of dense layers becomes a chain artifact; anything with a ``Conv2d``, ``Flatten``
or ``SumPool2d`` a layer graph (version 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnfpga.errors import ArtifactError, ConfigError, DataError
from snnfpga.model.artifact import Artifact

SYNAPSE_TYPES = ("Affine", "Linear", "Conv2d")
NEURON_TYPES = ("LIF", "IF", "LI", "I", "CubaLIF")
STRUCTURE_TYPES = ("Flatten", "SumPool2d")
FRAMEWORKS = ("snntorch", "norse", "sinabs", "generic")
# How each framework discretises NIR's LIF (issue 14): the time step ``dt`` with which
# ``beta = 1 - dt / tau`` and the input gain ``dt r / tau`` reproduce its own forward pass
# from what its exporter writes, its fire comparison and its reset (applied in the firing
# step, or, for snnTorch, subtracted in the next step after the leak). ``generic``: no time
# step (give --dt), ``>=``, reset to zero. Norse 1.1.0's exporter writes ``tau = dt /
# tau_mem_inv`` (not ``1 / tau_mem_inv``) for its ``LIFBoxCell``, so its network comes back
# with the square of its step: 1e-6 for its default dt = 1e-3 (tested against Norse).
# ``decay``: ``euler`` (``beta = 1 - dt / tau``, input gain ``dt r / tau``) or, Sinabs 3.1.3's
# ``LIF``, ``exp`` (``beta = exp(-dt / tau)`` and, its default ``norm_input``, the input gain
# ``1 - beta``; its exporter writes ``r = 1`` either way).
CONVENTIONS = {
    "snntorch": {"dt": 1e-4, "fire": ">", "reset": "subtract_next", "decay": "euler"},
    "norse": {"dt": 1e-6, "fire": ">", "reset": "zero", "decay": "euler"},
    "sinabs": {"dt": 1.0, "fire": ">=", "reset": "subtract", "decay": "exp"},
    "generic": {"dt": None, "fire": ">=", "reset": "zero", "decay": "euler"},
}
BETA_TOLERANCE = 1e-6  # a beta this close to a contract leak (1 - 2^-k [- 2^-k2]) is it (float32 parameters)
CLIP_CANDIDATES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)


def kind_of(node) -> str:
    return type(node).__name__


def nir_path(graph, where: str) -> list[str]:
    """The node names from the ``Input`` (excluded) to the ``Output`` (included)."""
    nodes = graph.nodes
    succ: dict[str, list[str]] = {}
    for src, dst in graph.edges:
        for name in (src, dst):
            if name not in nodes:
                raise ArtifactError(f"{where}: edge {src} -> {dst} names no node {name!r}")
        succ.setdefault(src, []).append(dst)
    inputs = [n for n, node in nodes.items() if kind_of(node) == "Input"]
    if len(inputs) != 1:
        raise ArtifactError(f"{where}: a chain needs one Input node, found {len(inputs)}")
    order, seen, at = [], set(), inputs[0]
    while kind_of(nodes[at]) != "Output":
        seen.add(at)
        nxt = succ.get(at, [])
        if len(nxt) != 1:
            raise ArtifactError(f"{where}: node {at}: {len(nxt)} outgoing edges (the contract holds a chain here: "
                                "one edge from each node)")
        at = nxt[0]
        if at in seen:
            raise ArtifactError(f"{where}: node {at}: a recurrent edge (the contract has no recurrence)")
        order.append(at)
    unreached = sorted(set(nodes) - seen - {at})
    if unreached:
        raise ArtifactError(f"{where}: node {unreached[0]}: not on the path from input to output")
    return order


@dataclass(frozen=True)
class Step:
    """One step of an imported network: a synapse and the neuron after it (``kind`` ``dense``
    or ``conv``; ``node`` the neuron's NIR node, None for the last synapse straight into the
    ``Output``, ``name`` then its own), or a ``flatten`` or ``pool`` (``name`` the node's).
    Shapes are the contract's: ``(C, H, W)`` maps or ``(n,)``."""

    kind: str
    name: str
    in_shape: tuple
    out_shape: tuple
    synapse: str | None = None
    weight: np.ndarray | None = None  # float [n_out, n_in] or [C_out, C_in, K, K]
    bias: np.ndarray | None = None  # float [n_out] or [C_out]
    node: object | None = None
    stride: int = 1
    padding: int = 0

    @property
    def is_synapse(self) -> bool:
        return self.kind in ("dense", "conv")


def _input_shape(graph, where: str, first) -> tuple[int, int, int]:
    """The input as the contract's ``(1, H, W)``. Leading dimensions that the first synapse
    does not take are dropped (Sinabs writes its time dimension: ``[T, 784]``)."""
    node = next(n for n in graph.nodes.values() if kind_of(n) == "Input")
    shape = [int(x) for x in np.asarray(next(iter(node.input_type.values()))).reshape(-1)]
    takes = None
    if kind_of(first) in ("Affine", "Linear"):
        takes = int(np.asarray(first.weight).shape[1])
    elif kind_of(first) == "Conv2d":
        takes = int(np.asarray(first.weight).shape[1])  # its channels: [.., C, H, W]
    while len(shape) > 1 and takes is not None and int(np.prod(shape)) != takes and \
            (kind_of(first) != "Conv2d" or len(shape) > 3):
        shape = shape[1:]
    if len(shape) == 1:  # flat: a square image
        side = int(round(np.sqrt(shape[0])))
        if side * side != shape[0]:
            raise ArtifactError(f"{where}: the Input's {shape[0]} values are not a square image")
        return 1, side, side
    if len(shape) == 2:
        shape = [1, *shape]
    if len(shape) != 3 or shape[0] != 1:
        raise ArtifactError(f"{where}: the Input's shape {shape} is not an image: the contract's input is one "
                            "channel of H x W pixels")
    return tuple(shape)


def _pair(value, what: str, name: str, where: str) -> int:
    """An int, or a pair of equal ints (NIR's stride, padding, ...), as one int."""
    arr = np.asarray(value).reshape(-1)
    if arr.dtype.kind not in "iu" or len(set(arr.tolist())) != 1:
        raise ArtifactError(f"{where}: node {name}: {what} {arr.tolist()} (the contract's conv has one square "
                            f"{what} for both axes)")
    return int(arr[0])


def _check_flatten(node, name: str, shape: tuple, where: str) -> None:
    """A ``Flatten`` must flatten the whole tensor: ``start_dim`` 0 of an unbatched type, or 1
    of one with a batch dimension in front (``end_dim`` -1 or the last)."""
    declared = [int(x) for x in np.asarray(next(iter(node.input_type.values()), shape)).reshape(-1)] \
        if getattr(node, "input_type", None) else list(shape)
    batch = len(declared) == len(shape) + 1
    start, end = int(node.start_dim), int(node.end_dim)
    if start != int(batch) or end not in (-1, len(declared) - 1):
        raise ArtifactError(f"{where}: node {name}: a Flatten of dims {start}..{end} of {declared}; the contract "
                            "flattens a whole map")


def synapse_at(nodes: dict, body: list[str], k: int, where: str) -> tuple[bool, np.ndarray, np.ndarray]:
    """The synapse ``body[k]``: whether it is the readout (the last node, straight into the
    ``Output``; otherwise a neuron node must follow), its weight and its bias (zeros for a
    ``Linear``), as float arrays."""
    readout = k + 1 == len(body)  # the last synapse straight into the Output: its current, summed
    if not readout and kind_of(nodes[body[k + 1]]) not in NEURON_TYPES:
        raise ArtifactError(f"{where}: node {body[k + 1]}: a synapse must be followed by a neuron node "
                            f"({', '.join(NEURON_TYPES)})")
    node = nodes[body[k]]
    weight = np.asarray(node.weight, dtype=np.float64)
    bias = np.asarray(getattr(node, "bias", np.zeros(weight.shape[0])), dtype=np.float64).reshape(-1)
    return readout, weight, bias


def read_steps(graph, where: str) -> list[Step]:
    """The path of ``graph`` as :class:`Step` s (see the module doc)."""
    from snnfpga.model.kinds.conv import output_size

    nodes = graph.nodes
    body = nir_path(graph, where)[:-1]
    first = next((nodes[n] for n in body if kind_of(nodes[n]) in SYNAPSE_TYPES), None)
    shape = _input_shape(graph, where, first)
    steps, k = [], 0
    while k < len(body):
        name, node = body[k], nodes[body[k]]
        kind = kind_of(node)
        if kind == "Flatten":
            _check_flatten(node, name, shape, where)
            steps.append(Step("flatten", name, shape, (int(np.prod(shape)),)))
            shape = steps[-1].out_shape
            k += 1
            continue
        if kind == "SumPool2d":
            size = np.asarray(node.kernel_size).reshape(-1).tolist()
            if len(shape) != 3 or size not in ([shape[1], shape[2]], [shape[1]] * (shape[1] == shape[2])) \
                    or np.any(np.asarray(node.padding) != 0):
                raise ArtifactError(f"{where}: node {name}: a SumPool2d with a {'x'.join(map(str, size))} window on "
                                    f"{'x'.join(map(str, shape))}; the contract pools globally (the window the whole "
                                    "map, no padding) only")
            steps.append(Step("pool", name, shape, (shape[0],)))
            shape = steps[-1].out_shape
            k += 1
            continue
        if kind not in SYNAPSE_TYPES:
            raise ArtifactError(f"{where}: node {name}: a {kind} where the contract needs a synapse "
                                f"(supported here: {', '.join(SYNAPSE_TYPES + STRUCTURE_TYPES + NEURON_TYPES)})")
        readout, weight, bias = synapse_at(nodes, body, k, where)
        neuron = name if readout else body[k + 1]
        neuron_node = None if readout else nodes[neuron]
        if kind == "Conv2d":
            if weight.ndim != 4 or weight.shape[2] != weight.shape[3] or bias.shape != (weight.shape[0],):
                raise ArtifactError(f"{where}: node {name}: weight {list(weight.shape)} and bias {list(bias.shape)} "
                                    "are not a square convolution's [C_out, C_in, K, K] and [C_out]")
            if len(shape) != 3 or weight.shape[1] != shape[0]:
                raise ArtifactError(f"{where}: node {name}: takes {weight.shape[1]} channels, its input is "
                                    f"{'x'.join(map(str, shape))}")
            if _pair(getattr(node, "dilation", 1), "dilation", name, where) != 1 or int(getattr(node, "groups", 1)) != 1:
                raise ArtifactError(f"{where}: node {name}: dilation and groups must be 1 in the contract's conv")
            padding = getattr(node, "padding", 0)
            if isinstance(padding, str):
                raise ArtifactError(f"{where}: node {name}: padding {padding!r}; give the padding in pixels")
            stride, padding = _pair(node.stride, "stride", name, where), _pair(padding, "padding", name, where)
            size = weight.shape[2]
            out = (weight.shape[0], output_size(shape[1], size, stride, padding), output_size(shape[2], size, stride, padding))
            steps.append(Step("conv", neuron, shape, out, name, weight, bias, neuron_node, stride, padding))
        else:
            if weight.ndim != 2 or bias.shape != (weight.shape[0],):
                raise ArtifactError(f"{where}: node {name}: weight {list(weight.shape)} and bias {list(bias.shape)} "
                                    "are not a dense layer's [out, in] and [out]")
            if weight.shape[1] != int(np.prod(shape)):
                previous = steps[-1].name if steps else "the input"
                raise ArtifactError(f"{where}: node {name}: takes {weight.shape[1]} inputs, {previous} gives "
                                    f"{int(np.prod(shape))}")
            steps.append(Step("dense", neuron, shape, (weight.shape[0],), name, weight, bias, neuron_node))
        shape = steps[-1].out_shape
        k += 1 if readout else 2
    if not any(s.is_synapse for s in steps):
        raise ArtifactError(f"{where}: no layers between Input and Output")
    return steps


@dataclass(frozen=True)
class Discrete:
    """One synapse layer in discrete time: per step ``v = beta v + (W s + b)`` (gain folded
    in; a spiking layer then fires and resets by the convention; an integrating output's
    scores add it), or a structural step (``step.kind`` ``flatten``/``pool``: no parameters).
    ``beta`` and ``threshold`` have the layer's output shape; ``beta`` None: the integrator."""

    step: Step
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    beta: np.ndarray | None = None
    threshold: np.ndarray | None = None

    @property
    def spiking(self) -> bool:
        return self.beta is not None


@dataclass(frozen=True)
class ForeignImport:
    """:func:`import_foreign`'s result: the artifact, the float network it quantizes, and
    what was approximated (one line each)."""

    artifact: Artifact
    layers: tuple[Discrete, ...]
    fire: str
    reset: str
    notes: tuple[str, ...]


def _per_channel(values: np.ndarray, step: Step, what: str, where: str) -> np.ndarray:
    """A conv layer's per-output-element ``values`` as one per channel (they must agree over
    positions: the weights are shared)."""
    full = np.broadcast_to(values, step.out_shape).reshape(step.out_shape[0], -1)
    if np.ptp(full, axis=1).max() > 1e-9 * max(1.0, np.abs(full).max()):
        raise ArtifactError(f"{where}: node {step.name}: its {what} differs between positions of a channel; a conv's "
                            "weights are shared, so the contract needs it per channel")
    return full[:, 0]


def _discretise(step: Step, dt: float, last: bool, where: str, decay: str = "euler") -> Discrete:
    """The layer's discrete-time form (see :class:`Discrete`; ``decay`` as in :data:`CONVENTIONS`)."""
    if not step.is_synapse:
        return Discrete(step)
    node, kind, shape = step.node, kind_of(step.node), step.out_shape

    def full(v):
        """A NIR parameter over the layer's neurons (scalar, per channel ``[C]`` or per neuron)."""
        a = np.asarray(v, dtype=np.float64)
        if len(shape) == 3 and a.ndim == 1 and a.size == shape[0]:
            a = a.reshape(-1, 1, 1)
        return np.broadcast_to(a, shape).copy()

    def folded(gain, extra):
        if step.kind == "conv":
            g, e = _per_channel(gain, step, "input gain", where), _per_channel(extra, step, "v_leak", where)
            return step.weight * g[:, None, None, None], step.bias * g + e
        return step.weight * gain[:, None], step.bias * gain + extra

    if last and node is None:  # an Affine into the Output: its current of every step, summed
        return Discrete(step, step.weight, step.bias)
    if node is None:
        raise ArtifactError(f"{where}: node {step.synapse}: a synapse must be followed by a neuron node")
    try:
        if last and kind == "I":
            w, b = folded(full(node.r) * dt, np.zeros(shape))
            return Discrete(step, w, b)
        if kind == "LIF":
            tau, r, v_leak = (full(x) for x in (node.tau, node.r, node.v_leak))
            if decay == "exp":
                beta = np.exp(-dt / tau)
                gain, extra = 1.0 - beta, (1.0 - beta) * v_leak
            else:
                beta, gain, extra = 1.0 - dt / tau, dt * r / tau, dt * v_leak / tau
        elif kind == "IF":
            beta, gain, extra = np.ones(shape), dt * full(node.r), np.zeros(shape)
        else:
            where_in = "as the output (an I integrates, a LIF or IF spikes)" if last else "in a hidden layer"
            raise ArtifactError(f"{where}: node {step.name}: a {kind} {where_in}; the contract's spiking neurons "
                                "are LIF or IF")
        threshold = full(node.v_threshold)
    except ValueError:
        raise ArtifactError(f"{where}: node {step.name}: its parameters do not fit its "
                            f"{'x'.join(map(str, shape))} neurons") from None
    if node.v_reset is not None and np.any(np.asarray(node.v_reset) != 0):
        raise ArtifactError(f"{where}: node {step.name}: v_reset is not 0 (the contract resets to 0 or by "
                            "subtraction)")
    if np.any(beta <= 0) or np.any(beta > 1):
        raise ArtifactError(f"{where}: node {step.name}: beta = 1 - dt/tau outside (0, 1] at dt = {dt:g} "
                            "(give the framework's --dt)")
    w, b = folded(gain, extra)
    return Discrete(step, w, b, beta, threshold)


def leak_choices(max_shift: int = 16) -> list[tuple[float, int, int | None]]:
    """Every leak of the contract as ``(beta, k, k2)``: ``1 - 2^-k`` and ``1 - 2^-k - 2^-k2``
    (``k < k2``), one shift first (the cheaper one wins a tie)."""
    single = [(1.0 - 2.0 ** -k, k, None) for k in range(1, max_shift + 1)]
    double = [(1.0 - 2.0 ** -k - 2.0 ** -k2, k, k2) for k in range(1, max_shift + 1)
              for k2 in range(k + 1, max_shift + 1)]
    return single + double


def leak_for(beta: np.ndarray, name: str) -> tuple[int | None, int | None, str | None]:
    """The contract's leak ``v - (v >> k) [- (v >> k2)]`` nearest to the layer's ``beta`` (one
    per layer): ``(k, k2, note)``, the note naming the error when it is not exact."""
    if np.all(beta == 1.0):
        return None, None, None
    if np.ptp(beta) > 0:
        raise ArtifactError(f"node {name}: beta differs between neurons ({beta.min():g} .. {beta.max():g}); the "
                            "contract has one leak per layer")
    b = float(beta.reshape(-1)[0])
    exact, k, k2 = min(leak_choices(), key=lambda c: abs(c[0] - b))
    form = f"1 - 2^-{k}" + ("" if k2 is None else f" - 2^-{k2}")
    # Exact up to float32 rounding (exporters store tau in float32: 0.5 comes back 0.49999998).
    note = None if abs(exact - b) <= BETA_TOLERANCE else \
        f"node {name}: beta {b:g} approximated by {form} = {exact:g} (error {exact - b:+.3g})"
    return k, k2, note


def float_forward(fi: ForeignImport, spikes: np.ndarray) -> np.ndarray:
    """The discretised float network on input spikes ``bool [N, T, H*W]``: scores
    ``[N, classes]`` whose argmax (lowest index on ties) is its class: an integrating
    output's summed current; a spiking output's spike count, ties broken by the membrane
    after the last step (``count * (2 max|v| + 1) + v``, the same order)."""
    n, steps = spikes.shape[:2]
    x = spikes.astype(np.float64).reshape(n, steps, *fi.layers[0].step.in_shape)
    for layer in fi.layers:
        step = layer.step
        if step.kind == "flatten":
            x = x.reshape(n, steps, -1)
            continue
        if step.kind == "pool":
            x = x.sum(axis=(-2, -1))
            continue
        current = _float_current(layer, x)
        if not layer.spiking:
            return current.sum(axis=1)
        x, v = _float_lif(fi, layer, current)
    v = v.reshape(n, -1)
    return x.reshape(n, steps, -1).sum(axis=1) * (2.0 * np.abs(v).max() + 1.0) + v


def _float_current(layer: Discrete, x: np.ndarray) -> np.ndarray:
    n, steps = x.shape[:2]
    if layer.step.kind == "dense":
        return x.reshape(n, steps, -1) @ layer.weight.T + layer.bias
    import torch
    import torch.nn.functional as F

    y = F.conv2d(torch.from_numpy(x.reshape(n * steps, *x.shape[2:])), torch.from_numpy(layer.weight),
                 torch.from_numpy(layer.bias), stride=layer.step.stride, padding=layer.step.padding)
    return y.numpy().reshape(n, steps, *y.shape[1:])


def _float_lif(fi: ForeignImport, layer: Discrete, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One spiking layer in float: its spikes ``float [N, T, ...]`` and its last membrane."""
    steps = current.shape[1]
    v = np.zeros_like(current[:, 0])
    fired = np.zeros_like(v, dtype=bool)
    out = np.zeros_like(current)
    for t in range(steps):
        v = layer.beta * v + current[:, t]
        if fi.reset == "subtract_next":
            v = v - layer.threshold * fired
        fired = v > layer.threshold if fi.fire == ">" else v >= layer.threshold
        if fi.reset == "zero":
            v = np.where(fired, 0.0, v)
        elif fi.reset == "subtract":
            v = v - layer.threshold * fired
        out[:, t] = fired
    return out, v


def import_foreign(graph, where: str, framework: str, *, dt: float | None = None, reset: str | None = None,
                   encoder=None, timesteps: int | None = None, weight_bits: int = 8,
                   name: str = "imported", calibration: np.ndarray | None = None) -> ForeignImport:
    """A network trained in ``framework`` (see the module doc) as an artifact, with the
    ``encoder`` (:class:`~snnfpga.model.artifact.Encoder`) and ``timesteps`` the NIR file
    cannot give. ``calibration`` (``uint8 [N, H, W]`` images): choose each layer's weight
    clip on them (:func:`_calibrate`; a note reports it)."""
    from snnfpga.model.kinds.base import WEIGHT_BITS_RANGE

    if framework not in FRAMEWORKS:
        raise ConfigError(f"unknown framework {framework!r}; choose one of {', '.join(FRAMEWORKS)}")
    conv = dict(CONVENTIONS[framework])
    dt = conv["dt"] if dt is None else dt
    if dt is None or dt <= 0:
        raise ConfigError(f"framework {framework} has no time step of its own: give --dt S")
    reset = reset or conv["reset"]  # checked by the lif kind when the artifact is built
    if encoder is None or timesteps is None:
        raise ConfigError("a network trained elsewhere needs --encoder and --timesteps (NIR stores neither)")
    if not WEIGHT_BITS_RANGE[0] <= weight_bits <= WEIGHT_BITS_RANGE[1]:
        raise ConfigError(f"weight bits must be in {WEIGHT_BITS_RANGE[0]}..{WEIGHT_BITS_RANGE[1]}, got {weight_bits}")
    steps = read_steps(graph, where)
    last = max(i for i, s in enumerate(steps) if s.is_synapse)
    if last != len(steps) - 1:
        raise ArtifactError(f"{where}: node {steps[-1].name}: a {steps[-1].kind} after the last synapse; the "
                            "output reads a synapse's current or a spiking output")
    layers = tuple(_discretise(step, dt, i == last, where, conv["decay"]) for i, step in enumerate(steps))
    notes, leaks = [], []
    for layer in layers:
        k, k2, note = leak_for(layer.beta, layer.step.name) if layer.spiking else (None, None, None)
        notes += [note] if note else []
        leaks.append((k, k2))
    provenance = {"imported_from": "nir", "framework": framework, "dt": dt, "reset": reset, "fire": conv["fire"],
                  "weight_bits": weight_bits}
    neuron = dict(reset=reset, fire=conv["fire"])

    def quantize(clips):
        return _artifact(name, steps[0].in_shape, encoder, timesteps, layers, leaks, neuron, weight_bits, clips,
                         dict(provenance))

    clips = [1.0] * len(layers)
    fi = ForeignImport(quantize(clips), layers, conv["fire"], reset, tuple(notes))
    if calibration is not None:
        got, want = tuple(np.shape(calibration)[1:]), fi.artifact.input_shape
        if got != want:
            raise DataError(f"{where}: the calibration images are {'x'.join(map(str, got))} but the model expects "
                            f"{want[0]}x{want[1]}")
    if calibration is not None and len(calibration):
        clips, before, after = _calibrate(fi, quantize, calibration)
        if clips != [1.0] * len(layers):
            provenance["weight_clip"] = [c for c, layer in zip(clips, layers) if layer.step.is_synapse]
        shown = [c for c, layer in zip(clips, layers) if layer.step.is_synapse]
        notes.append(f"calibration on {len(calibration)} images: weight clip per layer {shown} (agreement with the "
                     f"float network {before:.1f}% -> {after:.1f}%)")
        fi = ForeignImport(quantize(clips), layers, conv["fire"], reset, tuple(notes))
    return fi


def _artifact(name, in_shape, encoder, timesteps, layers, leaks, neuron, weight_bits, clips, provenance) -> Artifact:
    """The artifact of the quantized layers: a chain of dense layers as a chain, else a graph."""
    from snnfpga.model import kinds as K
    from snnfpga.model.artifact import build_graph_artifact
    from snnfpga.model.graph import SOURCE, dense_name

    nodes, prev = [], SOURCE
    last = len(layers) - 1
    for index, (layer, (k, k2), clip) in enumerate(zip(layers, leaks, clips)):
        step = layer.step
        if step.kind == "flatten":
            nodes.append(K.Flatten(name=step.name, inputs=(prev,)))
        elif step.kind == "pool":
            nodes.append(K.Pool(name=step.name, inputs=(prev,)))
        else:
            w, b, th = _quantized(layer, weight_bits, clip, index == last)
            if step.kind == "conv":
                syn = K.Conv(name=f"{step.name}.conv", inputs=(prev,), unit=step.name, weight=w, bias=b,
                             weight_bits=weight_bits, stride=step.stride, padding=step.padding)
            else:
                syn = K.Dense(name=dense_name(step.name), inputs=(prev,), unit=step.name, weight=w, bias=b,
                              weight_bits=weight_bits)
            nodes.append(syn)
            if th is None:
                nodes.append(K.Output(name=step.name, inputs=(syn.name,)))
            else:
                cls = K.LifOutput if index == last else K.Lif
                if th.ndim == 3 and (th == th[:, :1, :1]).all():
                    th = th[:, :1, :1]  # one threshold per channel: one word per lane group in hardware
                nodes.append(cls(name=step.name, inputs=(syn.name,), threshold=th, leak_shift=k, leak_shift2=k2,
                                 **neuron))
        prev = nodes[-1].name
    return build_graph_artifact(name, in_shape[1:], encoder, timesteps, nodes, provenance=provenance)


def _quantized(layer: Discrete, weight_bits: int, clip: float, last: bool):
    """Integer weights, bias and threshold (None for an integrator) at ``weight_bits``: per
    neuron or channel (hidden) or per layer (the output) scale ``qmax / (clip * max|W|)``,
    weights rounded and clipped to ``+-qmax``; parameters that are already integers that fit
    are kept (``clip`` 1)."""
    qmax = (1 << (weight_bits - 1)) - 1
    w = layer.weight
    params = [w, layer.bias] + ([] if layer.threshold is None else [layer.threshold])
    rows = np.abs(w).reshape(len(w), -1).max(axis=1)
    if clip == 1.0 and all(np.array_equal(a, np.round(a)) for a in params) and rows.max() <= qmax:
        scale = np.ones(len(w))  # already integers that fit: kept as they are
    elif last:  # the output: one scale for every class (scores, or membranes, are compared)
        scale = np.full(len(w), qmax / max(clip * rows.max(), 1e-12))
    else:  # a hidden layer: per neuron or channel (its spikes do not change under a positive scale)
        scale = qmax / np.maximum(clip * rows, 1e-12)
    by_row = scale.reshape(-1, *([1] * (w.ndim - 1)))
    weights = np.clip(np.round(w * by_row), -qmax, qmax).astype(np.int64)
    bias = np.round(layer.bias * scale).astype(np.int64)
    threshold = None
    if layer.threshold is not None:
        per_output = scale.reshape(-1, *([1] * (layer.threshold.ndim - 1)))
        threshold = np.maximum(1, np.round(layer.threshold * per_output)).astype(np.int64)
    return weights, bias, threshold


def _calibrate(fi: ForeignImport, quantize, images: np.ndarray) -> tuple[list[float], float, float]:
    """Per synapse layer, greedily from the first, the weight clip of :data:`CLIP_CANDIDATES`
    whose integer network agrees most often with the float network's class on ``images``
    (ties keep the larger clip). Returns the clips and the agreement (%) before and after."""
    from snnfpga.sim import reference

    art = fi.artifact
    spikes = reference.encode(art.encoder, reference.flatten_images(art, images), art.timesteps)
    want = float_forward(fi, spikes).argmax(axis=1)

    def agreement(clips):
        return 100.0 * float((reference.run(quantize(clips), images, record=False).classes == want).mean())

    clips = [1.0] * len(fi.layers)
    best = before = agreement(clips)
    for index, layer in enumerate(fi.layers):
        if not layer.step.is_synapse:
            continue
        for clip in CLIP_CANDIDATES[1:]:
            trial = clips[:index] + [clip] + clips[index + 1:]
            score = agreement(trial)
            if score > best:
                best, clips = score, trial
    return clips, before, best
