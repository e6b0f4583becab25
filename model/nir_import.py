"""Import a NIR graph into the integer contract (see :mod:`snnfpga.model.nir_format`).

:func:`read_chain` walks a NIR graph from ``Input`` to ``Output`` and returns its layers,
each an ``Affine`` (or ``Linear``) followed by a neuron node (``LIF``, ``IF``, ``LI``,
``I``; the last may go straight into the ``Output``: its current summed over the steps);
a node type, a recurrent or branching edge or a shape the contract cannot hold is
refused with one line naming the node.

:func:`import_nir` turns a graph that snnfpga exported (its metadata holds the model's
manifest) back into the identical artifact: the integers come from the NIR parameters
(checked to be integers and consistent with the manifest's leak and reset), the widths,
encoder and T from the manifest. Networks trained elsewhere (snnTorch, Norse, Sinabs), whose
parameters need a framework's discretisation, are imported by :func:`import_foreign`: each
neuron node is discretised with the framework's time step and conventions
(:data:`CONVENTIONS`; ``dt``, ``reset`` and ``fire`` can be overridden), its leak rounded to
the nearest ``v - (v >> k)`` or ``v - (v >> k) - (v >> k2)`` (the error reported when
``beta`` is not exactly ``1 - 2^-k`` or ``1 - 2^-k - 2^-k2``), and its weights,
bias and threshold quantized per output neuron (a hidden layer: spikes do not change under a
per-neuron scale) or per layer (the output: its scores, or a spiking output's membranes, are
compared across classes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snnfpga.errors import ArtifactError, ConfigError
from snnfpga.model import nir_format as F
from snnfpga.model.artifact import Artifact, artifact_from_manifest
from snnfpga.model.kinds.lif import DEFAULT_FIRE

SYNAPSE_TYPES = ("Affine", "Linear")
BETA_TOLERANCE = 1e-6  # a beta this close to a contract leak (1 - 2^-k [- 2^-k2]) is it (float32 parameters)
NEURON_TYPES = ("LIF", "IF", "LI", "I", "CubaLIF")
FRAMEWORKS = ("snntorch", "norse", "sinabs", "generic")
# How each framework discretises NIR's LIF (issue 14): the time step its exporter and
# importer assume, its fire comparison and its reset (applied in the firing step, or, for
# snnTorch, subtracted in the next step after the leak). ``generic``: no time step (give
# --dt), ``>=``, reset to zero.
CONVENTIONS = {
    "snntorch": {"dt": 1e-4, "fire": ">", "reset": "subtract_next"},
    "norse": {"dt": 1e-3, "fire": ">", "reset": "zero"},
    "sinabs": {"dt": 1.0, "fire": ">=", "reset": "subtract"},
    "generic": {"dt": None, "fire": ">=", "reset": "zero"},
}


@dataclass(frozen=True)
class NirLayer:
    """One dense layer of a NIR chain: the synapse node and the neuron node after it (the
    last synapse may go straight into the ``Output``: ``neuron`` is then its own name and
    ``node`` None)."""

    synapse: str
    neuron: str
    weight: np.ndarray  # float [n_out, n_in]
    bias: np.ndarray  # float [n_out] (zeros for a Linear)
    node: object | None  # the neuron's NIR node


def _kind(node) -> str:
    return type(node).__name__


def read_chain(graph, where: str) -> list[NirLayer]:
    """The layers of ``graph`` from its ``Input`` to its ``Output`` (see the module doc)."""
    nodes = graph.nodes
    succ: dict[str, list[str]] = {}
    for src, dst in graph.edges:
        for name in (src, dst):
            if name not in nodes:
                raise ArtifactError(f"{where}: edge {src} -> {dst} names no node {name!r}")
        succ.setdefault(src, []).append(dst)
    inputs = [n for n, node in nodes.items() if _kind(node) == "Input"]
    if len(inputs) != 1:
        raise ArtifactError(f"{where}: a chain needs one Input node, found {len(inputs)}")
    order, seen, at = [], set(), inputs[0]
    while _kind(nodes[at]) != "Output":
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
    body = order[:-1]
    layers = []
    for k in range(0, len(body), 2):
        syn = body[k]
        if _kind(nodes[syn]) not in SYNAPSE_TYPES:
            raise ArtifactError(f"{where}: node {syn}: a {_kind(nodes[syn])} where the contract needs an Affine or "
                                f"Linear (supported here: {', '.join(SYNAPSE_TYPES + NEURON_TYPES)})")
        readout = k + 1 == len(body)  # the last synapse straight into the Output: its current, summed
        if not readout and _kind(nodes[body[k + 1]]) not in NEURON_TYPES:
            raise ArtifactError(f"{where}: node {body[k + 1]}: a synapse must be followed by a neuron node "
                                f"({', '.join(NEURON_TYPES)})")
        node = nodes[syn]
        weight = np.asarray(node.weight, dtype=np.float64)
        bias = np.asarray(getattr(node, "bias", np.zeros(weight.shape[0])), dtype=np.float64)
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise ArtifactError(f"{where}: node {syn}: weight {list(weight.shape)} and bias {list(bias.shape)} "
                                "are not a dense layer's [out, in] and [out]")
        neuron = syn if readout else body[k + 1]
        layers.append(NirLayer(syn, neuron, weight, bias, None if readout else nodes[neuron]))
    for a, b in zip(layers, layers[1:]):
        if b.weight.shape[1] != a.weight.shape[0]:
            raise ArtifactError(f"{where}: node {b.synapse}: takes {b.weight.shape[1]} inputs, {a.neuron} gives "
                                f"{a.weight.shape[0]}")
    if not layers:
        raise ArtifactError(f"{where}: no layers between Input and Output")
    return layers


def _integers(values, what: str, where: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    rounded = np.round(values)
    if not np.array_equal(values, rounded):
        worst = float(np.abs(values - rounded).max())
        raise ArtifactError(f"{where}: {what} is not on the integer grid (off by up to {worst:g})")
    return rounded.astype(np.int64)


def _metadata_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def exported_artifact(graph, where: str) -> Artifact:
    """The artifact of a NIR graph that snnfpga exported (its metadata holds the manifest)."""
    from snnfpga.model.graph import dense_name

    manifest = json.loads(_metadata_text(graph.metadata[F.MANIFEST_KEY]))
    if "layers" in manifest:  # version 1: arrays L<i>.weight, L<i>.bias, L<i>.threshold
        entries = manifest["layers"]
        keys = [(f"L{i}.weight", f"L{i}.bias", f"L{i}.threshold") for i in range(len(entries))]
    elif "nodes" in manifest and [e.get("kind") for e in manifest["nodes"][::2]] == ["dense"] * (len(manifest["nodes"]) // 2):
        entries = manifest["nodes"][1::2]  # version 2, a chain ending in lif_output: <node>.<array>
        keys = [(f"{dense_name(e['name'])}.weight", f"{dense_name(e['name'])}.bias", f"{e['name']}.threshold")
                for e in entries]
    else:
        raise ArtifactError(f"{where}: its snnfpga manifest is not a chain")
    layers = read_chain(graph, where)
    if [layer.neuron for layer in layers] != [e["name"] for e in entries]:
        raise ArtifactError(f"{where}: its layers {[layer.neuron for layer in layers]} are not the manifest's "
                            f"{[e['name'] for e in entries]}")
    arrays = {}
    for layer, entry, (weight_key, bias_key, threshold_key) in zip(layers, entries, keys):
        arrays[weight_key] = _integers(layer.weight, f"node {layer.synapse}: weight", where)
        arrays[bias_key] = _integers(layer.bias, f"node {layer.synapse}: bias", where)
        node, kind = layer.node, _kind(layer.node)
        if entry["kind"] in ("lif", "lif_output"):
            shift = entry["leak_shift"]
            want = "IF" if shift is None else "LIF"
            if kind != want:
                raise ArtifactError(f"{where}: node {layer.neuron}: a {kind}, the manifest's leak needs a {want}")
            tau = None if shift is None else F.leak_tau(shift, entry.get("leak_shift2"))
            if tau is not None and not np.allclose(np.asarray(node.tau, dtype=np.float64), tau, rtol=1e-6, atol=0):
                raise ArtifactError(f"{where}: node {layer.neuron}: tau is not the manifest's leak "
                                    f"({tau:g})")
            for key, default in (("reset", entry["reset"]), ("fire", entry.get("fire", DEFAULT_FIRE))):
                value = _metadata_text(node.metadata.get(key, default))
                if value != default:
                    raise ArtifactError(f"{where}: node {layer.neuron}: {key} {value!r}, the manifest says {default!r}")
            arrays[threshold_key] = _integers(node.v_threshold, f"node {layer.neuron}: v_threshold", where)
        elif kind != "I":
            raise ArtifactError(f"{where}: node {layer.neuron}: a {kind}, the output layer is an I (integrator)")
    try:
        return artifact_from_manifest(manifest, arrays, where)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ArtifactError(f"{where}: malformed snnfpga manifest ({type(exc).__name__}: {exc})") from None


def read_graph(path: str | Path):
    """``nir.read(path)`` with one-line errors for a missing or unreadable file."""
    nir = F.require_nir()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such NIR file")
    try:
        return nir.read(path)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{path}: not a readable NIR file ({type(exc).__name__}: {exc})") from None


def import_nir(path: str | Path, framework: str = "generic", **foreign) -> Artifact:
    """The artifact of the NIR file ``path``: an snnfpga export back as it was, or (no
    snnfpga metadata) :func:`import_foreign` with ``foreign``'s options."""
    if framework not in FRAMEWORKS:
        raise ConfigError(f"unknown framework {framework!r}; choose one of {', '.join(FRAMEWORKS)}")
    graph = read_graph(path)
    where = str(path)
    if F.MANIFEST_KEY in graph.metadata:
        return exported_artifact(graph, where)
    return import_foreign(graph, where, framework, **foreign).artifact


@dataclass(frozen=True)
class Discrete:
    """One layer in discrete time: per step ``v = beta v + gain (W s + b)`` (a spiking layer:
    then the fire and reset of the convention; an integrating output: its scores add it)."""

    weight: np.ndarray  # float [n_out, n_in], the gain folded in
    bias: np.ndarray  # float [n_out], the gain and v_leak folded in
    beta: np.ndarray | None  # float [n_out]; None: the output's integrator
    threshold: np.ndarray | None


@dataclass(frozen=True)
class ForeignImport:
    """:func:`import_foreign`'s result: the artifact, the float network it quantizes, and
    what was approximated (one line each)."""

    artifact: Artifact
    layers: tuple[Discrete, ...]
    fire: str
    reset: str
    notes: tuple[str, ...]


def _discretise(layer: NirLayer, dt: float, last: bool, where: str) -> Discrete:
    """The layer's discrete-time form (see :class:`Discrete`); the last layer's neuron is an
    ``I`` (the scores integrate) or a ``LIF``/``IF`` (a spiking output, ``lif_output``)."""
    node, kind, n = layer.node, _kind(layer.node), layer.weight.shape[0]
    full = lambda v: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()  # noqa: E731
    if last and node is None:  # an Affine into the Output: its current of every step, summed
        return Discrete(layer.weight, layer.bias, None, None)
    if node is None:
        raise ArtifactError(f"{where}: node {layer.synapse}: a synapse must be followed by a neuron node")
    if last and kind == "I":
        gain = full(node.r) * dt
        return Discrete(layer.weight * gain[:, None], layer.bias * gain, None, None)
    if kind == "LIF":
        tau, r, v_leak = full(node.tau), full(node.r), full(node.v_leak)
        beta, gain, extra = 1.0 - dt / tau, dt * r / tau, dt * v_leak / tau
    elif kind == "IF":
        beta, gain, extra = np.ones(n), dt * full(node.r), np.zeros(n)
    else:
        where_in = "as the output (an I integrates, a LIF or IF spikes)" if last else "in a hidden layer"
        raise ArtifactError(f"{where}: node {layer.neuron}: a {kind} {where_in}; the contract's spiking neurons "
                            "are LIF or IF")
    if node.v_reset is not None and np.any(np.asarray(node.v_reset) != 0):
        raise ArtifactError(f"{where}: node {layer.neuron}: v_reset is not 0 (the contract resets to 0 or by "
                            "subtraction)")
    if np.any(beta <= 0) or np.any(beta > 1):
        raise ArtifactError(f"{where}: node {layer.neuron}: beta = 1 - dt/tau outside (0, 1] at dt = {dt:g} "
                            "(give the framework's --dt)")
    return Discrete(layer.weight * gain[:, None], layer.bias * gain + extra, beta, full(node.v_threshold))


def leak_choices(max_shift: int = 16) -> list[tuple[float, int, int | None]]:
    """Every leak of the contract as ``(beta, k, k2)``: ``1 - 2^-k`` and ``1 - 2^-k - 2^-k2``
    (``k < k2``), one shift first (the cheaper one wins a tie)."""
    single = [(1.0 - 2.0 ** -k, k, None) for k in range(1, max_shift + 1)]
    double = [(1.0 - 2.0 ** -k - 2.0 ** -k2, k, k2) for k in range(1, max_shift + 1)
              for k2 in range(k + 1, max_shift + 1)]
    return single + double


def _leak_shift(beta: np.ndarray, name: str) -> tuple[int | None, int | None, str | None]:
    """The contract's leak ``v - (v >> k) [- (v >> k2)]`` nearest to the layer's ``beta`` (one
    per layer): ``(k, k2, note)``, the note naming the error when it is not exact."""
    if np.all(beta == 1.0):
        return None, None, None
    if np.ptp(beta) > 0:
        raise ArtifactError(f"node {name}: beta differs between neurons ({beta.min():g} .. {beta.max():g}); the "
                            "contract has one leak per layer")
    b = float(beta[0])
    exact, k, k2 = min(leak_choices(), key=lambda c: abs(c[0] - b))
    form = f"1 - 2^-{k}" + ("" if k2 is None else f" - 2^-{k2}")
    # Exact up to float32 rounding (exporters store tau in float32: 0.5 comes back 0.49999998).
    note = None if abs(exact - b) <= BETA_TOLERANCE else \
        f"node {name}: beta {b:g} approximated by {form} = {exact:g} (error {exact - b:+.3g})"
    return k, k2, note


def float_forward(fi: ForeignImport, spikes: np.ndarray) -> np.ndarray:
    """The discretised float network on input spikes ``bool [N, T, n_in]``: scores
    ``[N, classes]`` whose argmax (lowest index on ties) is its class: an integrating
    output's summed current; a spiking output's spike count, ties broken by the membrane
    after the last step (``count * (2 max|v| + 1) + v``, the same order)."""
    x = spikes.astype(np.float64)
    for layer in fi.layers:
        if layer.beta is None:
            return (x @ layer.weight.T).sum(axis=1) + x.shape[1] * layer.bias
        x, v = _float_lif(fi, layer, x)
    span = 2.0 * np.abs(v).max() + 1.0
    return x.sum(axis=1) * span + v


def _float_lif(fi: ForeignImport, layer: Discrete, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One spiking layer in float: its spikes ``float [N, T, n]`` and its last membrane."""
    n, steps = x.shape[:2]
    v = np.zeros((n, layer.weight.shape[0]))
    fired = np.zeros_like(v, dtype=bool)
    out = np.zeros((n, steps, layer.weight.shape[0]))
    for t in range(steps):
        v = layer.beta * v + x[:, t] @ layer.weight.T + layer.bias
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
    from snnfpga.model.artifact import build_artifact
    from snnfpga.model.kinds.base import WEIGHT_BITS_RANGE

    conv = dict(CONVENTIONS[framework])
    dt = conv["dt"] if dt is None else dt
    if dt is None or dt <= 0:
        raise ConfigError(f"framework {framework} has no time step of its own: give --dt S")
    reset = reset or conv["reset"]  # checked by the lif kind when the artifact is built
    if encoder is None or timesteps is None:
        raise ConfigError("a network trained elsewhere needs --encoder and --timesteps (NIR stores neither)")
    if not WEIGHT_BITS_RANGE[0] <= weight_bits <= WEIGHT_BITS_RANGE[1]:
        raise ConfigError(f"weight bits must be in {WEIGHT_BITS_RANGE[0]}..{WEIGHT_BITS_RANGE[1]}, got {weight_bits}")
    chain = read_chain(graph, where)
    n_in = chain[0].weight.shape[1]
    side = int(round(np.sqrt(n_in)))
    if side * side != n_in:
        raise ArtifactError(f"{where}: node {chain[0].synapse}: {n_in} inputs are not a square image")
    layers = tuple(_discretise(layer, dt, i == len(chain) - 1, where) for i, layer in enumerate(chain))
    notes, leaks = [], []
    for layer, nir_layer in zip(layers, chain):
        k, k2, note = (None, None, None) if layer.beta is None else _leak_shift(layer.beta, nir_layer.neuron)
        notes += [note] if note else []
        leaks.append((k, k2))
    provenance = {"imported_from": "nir", "framework": framework, "dt": dt, "reset": reset, "fire": conv["fire"],
                  "weight_bits": weight_bits}

    def quantize(clips):
        specs = [_quantized_spec(layer, nir_layer.neuron, weight_bits, clip, last=index == len(layers) - 1)
                 for index, (layer, nir_layer, clip) in enumerate(zip(layers, chain, clips))]
        for spec, (k, k2) in zip(specs, leaks):
            if "threshold" in spec:
                spec.update(leak_shift=k, leak_shift2=k2, reset=reset, fire=conv["fire"])
        return build_artifact(name, (side, side), encoder, timesteps, specs, provenance=provenance)

    clips = [1.0] * len(layers)
    art = quantize(clips)
    fi = ForeignImport(art, layers, conv["fire"], reset, tuple(notes))
    if calibration is not None and len(calibration):
        clips, before, after = _calibrate(fi, quantize, calibration)
        if clips != [1.0] * len(layers):
            provenance["weight_clip"] = clips
            art = quantize(clips)
        notes.append(f"calibration on {len(calibration)} images: weight clip per layer {clips} (agreement with the "
                     f"float network {before:.1f}% -> {after:.1f}%)")
    return ForeignImport(art, layers, conv["fire"], reset, tuple(notes))


CLIP_CANDIDATES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)


def _quantized_spec(layer: Discrete, name: str, weight_bits: int, clip: float, last: bool) -> dict:
    """One layer's integers at ``weight_bits``: per neuron (hidden) or per layer (the output)
    scale ``qmax / (clip * max|W|)``, weights rounded and clipped to ``+-qmax``; parameters that
    are already integers that fit are kept (``clip`` 1)."""
    qmax = (1 << (weight_bits - 1)) - 1
    params = [layer.weight, layer.bias] + ([] if layer.threshold is None else [layer.threshold])
    if clip == 1.0 and all(np.array_equal(a, np.round(a)) for a in params) and np.abs(layer.weight).max() <= qmax:
        scale = np.ones(layer.weight.shape[0])  # already integers that fit: kept as they are
    elif last:  # the output: one scale for every class (scores, or membranes, are compared)
        scale = np.full(layer.weight.shape[0], qmax / max(clip * np.abs(layer.weight).max(), 1e-12))
    else:  # a hidden layer: per neuron (its spikes do not change under a positive scale)
        scale = qmax / np.maximum(clip * np.abs(layer.weight).max(axis=1), 1e-12)
    spec = {"name": name, "weights": np.clip(np.round(layer.weight * scale[:, None]), -qmax, qmax).astype(np.int64),
            "bias": np.round(layer.bias * scale).astype(np.int64), "weight_bits": weight_bits}
    if layer.threshold is not None:
        spec["threshold"] = np.maximum(1, np.round(layer.threshold * scale)).astype(np.int64)
    return spec


def _calibrate(fi: ForeignImport, quantize, images: np.ndarray) -> tuple[list[float], float, float]:
    """Per layer, greedily from the first, the weight clip of :data:`CLIP_CANDIDATES` whose
    integer network agrees most often with the float network's class on ``images`` (ties
    keep the larger clip). Returns the clips and the agreement (%) before and after."""
    from snnfpga.sim import reference

    art = fi.artifact
    spikes = reference.encode(art.encoder, reference.flatten_images(art, images), art.timesteps)
    want = float_forward(fi, spikes).argmax(axis=1)

    def agreement(clips):
        return 100.0 * float((reference.run(quantize(clips), images, record=False).classes == want).mean())

    clips = [1.0] * len(fi.layers)
    best = before = agreement(clips)
    for index in range(len(clips)):
        for clip in CLIP_CANDIDATES[1:]:
            trial = clips[:index] + [clip] + clips[index + 1:]
            score = agreement(trial)
            if score > best:
                best, clips = score, trial
    return clips, before, best
