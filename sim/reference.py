"""The integer reference: the executable specification of ``docs/integer-contract.md``.

Integer-only numpy, vectorized over a batch of images. Every other implementation (the
PyTorch integer mode, the Amaranth design, the generated Verilog) must reproduce
:func:`run` exactly: the same spikes at every step, node and neuron, the same scores, the
same class.

The graph runs node by node in topological order, each node over all ``T`` steps at
once (:meth:`snnfpga.model.kinds.base.Node.forward`). That equals the contract's
step-by-step order because no node reads another node's output of an earlier step: state
(membranes, scores) lives inside a node. Synapse products use float32 BLAS for speed; they
are exact because every operand is a small integer and every partial sum is an integer
below ``2**24`` in magnitude (the artifact validator caps register widths at 24 bits).
Where a node's proven bounds leave room, one product serves several images and steps at
once (:class:`snnfpga.model.kinds.base.Packing`), and currents and membranes are ``int16``
where their proven ranges fit: both are exact by the same bounds, and only the dtypes of
``Trace.outputs`` differ from a plain ``int32`` run, never a value.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from snnfpga.model.artifact import Artifact, Encoder
from snnfpga.model.graph import SOURCE

# Images per internal batch are chosen so that one batch's tensors stay near this size.
BATCH_BYTES = 256 << 20


@dataclass
class Trace:
    """What one run of the reference produced for a batch of ``N`` images.

    ``spikes[0]`` is the encoder output, flat in row-major pixel order (``bool [N, T, H*W]``);
    ``spikes[k]`` (k >= 1) the output of the ``k``-th spiking node (``lif``, ``glif``) in
    topological order, ``bool [N, T, *shape]`` (for a chain: hidden layer ``k``). ``names``
    names them (``"input"`` first). ``scores`` is ``int64 [N, n_classes]`` (the output
    node's scores after ``T`` steps), ``classes`` the decision (``int64 [N]``, lowest index
    wins ties). ``ops`` maps each synapse node to its accumulate operations per image
    (``int64 [N]``). With ``record="all"``, ``outputs`` holds every node's output
    ``[N, T, *shape]`` (spikes ``bool``, counts ``int32``, currents ``int16`` or ``int32``,
    scores ``int64`` after each step).
    """

    spikes: list[np.ndarray]
    scores: np.ndarray
    classes: np.ndarray
    names: list[str] = field(default_factory=list)
    ops: dict = field(default_factory=dict)
    outputs: dict | None = None

    def spike_counts(self) -> list[np.ndarray]:
        """Spikes per image for each recorded tensor (``int64 [N]`` each)."""
        return [s.reshape(len(s), -1).sum(axis=1, dtype=np.int64) for s in self.spikes]

    def node_spikes(self, name: str) -> np.ndarray:
        return self.spikes[self.names.index(name)]


def flatten_images(art: Artifact, images: np.ndarray) -> np.ndarray:
    """``uint8 [N, H, W]`` (or ``[N, H*W]``) to ``int64 [N, H*W]`` in row-major order."""
    images = np.asarray(images)
    if images.ndim == 2 and images.shape[1] == art.n_inputs:
        flat = images
    elif images.ndim == 3 and tuple(images.shape[1:]) == art.input_shape:
        flat = images.reshape(len(images), -1)
    else:
        raise ValueError(f"images must be [N, {art.input_shape[0]}, {art.input_shape[1]}], got {list(images.shape)}")
    if flat.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {flat.dtype}")
    return flat.astype(np.int64)


def encode(encoder: Encoder, pixels: np.ndarray, timesteps: int) -> np.ndarray:
    """Input spikes ``bool [N, T, n]`` from pixels ``int [N, n]`` (0..255).

    ``ttfs``: ``x = pixel >> (8 - bits)``, a spike at step ``S - x`` (none for ``x = 0``).
    ``rate``: the incremental rule (``acc += x``; spike and ``acc -= 256`` when
    ``acc >= 256``; ``acc`` starts at ``phase``) fires at step ``t`` exactly when
    ``(phase + (t+1)*x) // 256 > (phase + t*x) // 256``, the closed form used here.
    """
    if encoder.kind == "threshold":
        return np.repeat((pixels >= encoder.level)[:, None, :], timesteps, axis=1)
    if encoder.kind == "ttfs":  # one spike at step S - x of window 0, none for x = 0
        s = encoder.window_steps
        x = pixels >> (8 - encoder.bits)
        out = np.zeros((len(pixels), timesteps, pixels.shape[1]), dtype=bool)
        images, inputs = np.nonzero(x > 0)
        out[images, s - x[images, inputs], inputs] = True
        return out
    # phase + t*x <= 255 + T * 255: int16 holds it for every T up to 127 (the contract allows 64)
    dtype = np.int16 if encoder.phase + timesteps * 255 < 1 << 15 else np.int64
    t = np.arange(timesteps + 1, dtype=dtype)[None, :, None]
    cumulative = (dtype(encoder.phase) + t * pixels[:, None, :].astype(dtype)) >> 8
    return cumulative[:, 1:] > cumulative[:, :-1]


def batch_size(art: Artifact) -> int:
    """Images per internal batch (see :data:`BATCH_BYTES`)."""
    graph = art.graph
    per_image = art.timesteps * 8 * (art.n_inputs + sum(math.prod(t.shape) for t in graph.types.values()))
    return max(1, BATCH_BYTES // per_image)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MMAP_THRESHOLD_MAX = 32 << 20  # the most glibc accepts on 64-bit machines


@functools.lru_cache(maxsize=None)
def keep_freed_memory() -> bool:
    """Let glibc keep the heap memory a batch frees for the next batch (once per process).

    A graph's batch allocates and frees tens of MB of temporaries per node; by default glibc
    hands blocks over 32 MB (and a freed heap top over 128 kB) back to the kernel, so every
    batch page-faults them in again: a third of the reference's CPU time on ``mixer``
    (``benchmarks/reference_throughput.py``). This raises the trim threshold, pads the heap
    and fixes the mmap threshold at its maximum. Speed only: no value changes. Returns
    whether it applied (False off glibc)."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20)))


def run(art: Artifact, images: np.ndarray, record: bool | str = True) -> Trace:
    """Run the contract on a batch of images; see :class:`Trace` for what comes back.

    ``record``: ``True`` keeps every spiking node's spikes, ``False`` only the encoder's
    and the scores (fastest), ``"all"`` also every node's output in ``Trace.outputs``."""
    keep_freed_memory()
    pixels = flatten_images(art, images)
    step = batch_size(art)
    if len(pixels) <= step:
        return _run(art, pixels, record)
    parts = [_run(art, pixels[i:i + step], record) for i in range(0, len(pixels), step)]
    return Trace(spikes=[np.concatenate(xs) for xs in zip(*(p.spikes for p in parts))],
                 scores=np.concatenate([p.scores for p in parts]),
                 classes=np.concatenate([p.classes for p in parts]), names=parts[0].names,
                 ops={k: np.concatenate([p.ops[k] for p in parts]) for k in parts[0].ops},
                 outputs=None if parts[0].outputs is None else
                 {k: np.concatenate([p.outputs[k] for p in parts]) for k in parts[0].outputs})


def _run(art: Artifact, pixels: np.ndarray, record) -> Trace:
    graph = art.graph
    n, steps = len(pixels), art.timesteps
    spikes_in = encode(art.encoder, pixels, steps)
    values = {SOURCE: spikes_in.reshape(n, steps, *graph.source.shape)}
    last_use = {}
    for index, node in enumerate(graph.nodes):
        for src in node.inputs:
            last_use[src] = index
    spikes, names, ops, outputs = [spikes_in], [SOURCE], {}, ({} if record == "all" else None)
    for index, node in enumerate(graph.nodes):
        ins = graph.input_types(node)
        xs = [values[s] for s in node.inputs]
        out = node.forward(xs, ins, graph.proofs[node.name])
        if record and node.weight_count():
            ops[node.name] = node.synaptic_ops(xs, ins)
        values[node.name] = out
        if record and node.SPIKING:
            spikes.append(out)
            names.append(node.name)
        if outputs is not None:
            outputs[node.name] = out
        for src in node.inputs:  # drop what nobody reads any more
            if last_use[src] == index and src != SOURCE:
                values.pop(src, None)
    scores = values[graph.output.name][:, -1]
    return Trace(spikes=spikes, scores=scores, classes=np.argmax(scores, axis=1), names=names, ops=ops,
                 outputs=outputs)


def synaptic_ops(art: Artifact, trace: Trace) -> np.ndarray:
    """Accumulate operations per image (``int64 [N]``), summed over the synapse nodes."""
    if not trace.ops:
        raise ValueError("the trace has no operation counts (run the reference with record=True)")
    return sum(trace.ops.values())


def spikes_per_neuron(art: Artifact, trace: Trace) -> np.ndarray:
    """Mean spikes per neuron of the spiking nodes (``lif``, ``glif``) per image (``float [N]``), all ``T`` steps."""
    counts = trace.spike_counts()[1:]
    n_neurons = sum(int(np.prod(s.shape[2:])) for s in trace.spikes[1:])
    if not counts or n_neurons == 0:
        return np.zeros(len(trace.scores))
    return sum(counts) / n_neurons


def silent_fraction(art: Artifact, trace: Trace) -> np.ndarray:
    """Fraction of the spiking nodes' neurons that never fire in an image (``float [N]``)."""
    hidden = trace.spikes[1:]
    n_neurons = sum(int(np.prod(s.shape[2:])) for s in hidden)
    if n_neurons == 0:
        return np.zeros(len(trace.scores))
    fired = sum(s.reshape(len(s), s.shape[1], -1).any(axis=1).sum(axis=1) for s in hidden)
    return 1.0 - fired / n_neurons


def node_totals(art: Artifact, trace: Trace) -> list[dict]:
    """Per node, in topological order, totals over the trace's images: ``spikes`` (spiking
    nodes, with their ``neurons``) and ``synaptic_ops`` (synapse nodes)."""
    graph = art.graph
    rows = []
    for node in graph.nodes:
        t = graph.types[node.name]
        row = {"name": node.name, "kind": node.KIND, "shape": list(t.shape)}
        if node.SPIKING and node.name in trace.names:
            row["neurons"] = t.size
            row["spikes"] = int(trace.node_spikes(node.name).sum(dtype=np.int64))
        if node.name in trace.ops:
            row["synaptic_ops"] = int(trace.ops[node.name].sum())
        rows.append(row)
    return rows


def node_means(rows: list[dict], n: int) -> list[dict]:
    """:func:`node_totals` (summed over batches of ``n`` images in all) as means per image:
    ``spikes``, ``spikes_per_neuron``, ``synaptic_ops``."""
    out = []
    for row in rows:
        mean = {k: v for k, v in row.items() if k not in ("spikes", "synaptic_ops")}
        if "spikes" in row:
            mean["spikes"] = round(row["spikes"] / max(n, 1), 2)
            mean["spikes_per_neuron"] = round(row["spikes"] / max(n, 1) / row["neurons"], 4)
        if "synaptic_ops" in row:
            mean["synaptic_ops"] = round(row["synaptic_ops"] / max(n, 1), 2)
        out.append(mean)
    return out


def node_activity(art: Artifact, trace: Trace) -> list[dict]:
    """Per node means per image of one trace (see :func:`node_means`)."""
    return node_means(node_totals(art, trace), len(trace.scores))
