"""Import a NIR graph into the integer contract (see :mod:`snnfpga.model.nir_format`).

:func:`read_chain` walks a NIR graph from ``Input`` to ``Output`` and returns its layers,
each an ``Affine`` (or ``Linear``) followed by a neuron node (``LIF``, ``IF``, ``LI``,
``I``); a node type, a recurrent or branching edge or a shape the contract cannot hold is
refused with one line naming the node.

:func:`import_nir` turns a graph that snnfpga exported (its metadata holds the model's
manifest) back into the identical artifact: the integers come from the NIR parameters
(checked to be integers and consistent with the manifest's leak and reset), the widths,
encoder and T from the manifest. Networks trained elsewhere (snnTorch, Norse, Sinabs), whose
parameters need a framework's discretisation and quantization, are not imported yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snnfpga.errors import ArtifactError, ConfigError
from snnfpga.model import nir_format as F
from snnfpga.model.artifact import Artifact, artifact_from_manifest

SYNAPSE_TYPES = ("Affine", "Linear")
NEURON_TYPES = ("LIF", "IF", "LI", "I", "CubaLIF")
FRAMEWORKS = ("snntorch", "norse", "sinabs", "generic")


@dataclass(frozen=True)
class NirLayer:
    """One dense layer of a NIR chain: the synapse node and the neuron node after it."""

    synapse: str
    neuron: str
    weight: np.ndarray  # float [n_out, n_in]
    bias: np.ndarray  # float [n_out] (zeros for a Linear)
    node: object  # the neuron's NIR node


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
        if k + 1 >= len(body) or _kind(nodes[body[k + 1]]) not in NEURON_TYPES:
            bad = body[k + 1] if k + 1 < len(body) else syn
            raise ArtifactError(f"{where}: node {bad}: a synapse must be followed by a neuron node "
                                f"({', '.join(NEURON_TYPES)})")
        node = nodes[syn]
        weight = np.asarray(node.weight, dtype=np.float64)
        bias = np.asarray(getattr(node, "bias", np.zeros(weight.shape[0])), dtype=np.float64)
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise ArtifactError(f"{where}: node {syn}: weight {list(weight.shape)} and bias {list(bias.shape)} "
                                "are not a dense layer's [out, in] and [out]")
        layers.append(NirLayer(syn, body[k + 1], weight, bias, nodes[body[k + 1]]))
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


def _exported_artifact(graph, where: str) -> Artifact:
    manifest = json.loads(_metadata_text(graph.metadata[F.MANIFEST_KEY]))
    if "layers" not in manifest:
        raise ArtifactError(f"{where}: its snnfpga manifest is not a chain")
    layers = read_chain(graph, where)
    entries = manifest["layers"]
    if [layer.neuron for layer in layers] != [e["name"] for e in entries]:
        raise ArtifactError(f"{where}: its layers {[layer.neuron for layer in layers]} are not the manifest's "
                            f"{[e['name'] for e in entries]}")
    arrays = {}
    for i, (layer, entry) in enumerate(zip(layers, entries)):
        arrays[f"L{i}.weight"] = _integers(layer.weight, f"node {layer.synapse}: weight", where)
        arrays[f"L{i}.bias"] = _integers(layer.bias, f"node {layer.synapse}: bias", where)
        node, kind = layer.node, _kind(layer.node)
        if entry["kind"] == "lif":
            shift = entry["leak_shift"]
            want = "IF" if shift is None else "LIF"
            if kind != want:
                raise ArtifactError(f"{where}: node {layer.neuron}: a {kind}, the manifest's leak needs a {want}")
            if shift is not None and not np.all(np.asarray(node.tau) == 2.0 ** shift):
                raise ArtifactError(f"{where}: node {layer.neuron}: tau is not 2^{shift} (the manifest's leak_shift)")
            for key, default in (("reset", entry["reset"]), ("fire", entry.get("fire", ">="))):
                value = _metadata_text(node.metadata.get(key, default))
                if value != default:
                    raise ArtifactError(f"{where}: node {layer.neuron}: {key} {value!r}, the manifest says {default!r}")
            arrays[f"L{i}.threshold"] = _integers(node.v_threshold, f"node {layer.neuron}: v_threshold", where)
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


def import_nir(path: str | Path, framework: str = "generic") -> Artifact:
    """The artifact of the NIR file ``path`` (see the module doc)."""
    if framework not in FRAMEWORKS:
        raise ConfigError(f"unknown framework {framework!r}; choose one of {', '.join(FRAMEWORKS)}")
    graph = read_graph(path)
    where = str(path)
    if F.MANIFEST_KEY in graph.metadata:
        return _exported_artifact(graph, where)
    read_chain(graph, where)  # structural refusals first, naming the node
    raise ConfigError(f"{where}: was not exported by snnfpga (no {F.MANIFEST_KEY} metadata); importing a network "
                      f"trained in {framework} (its discretisation and quantization) is not implemented yet")
