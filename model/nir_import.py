"""Read a NIR graph back into the integer contract (see :mod:`snnfpga.model.nir_format`).

:func:`import_nir` reads a NIR file: a graph that snnfpga exported (its metadata holds the
model's manifest) comes back as the identical artifact (:func:`exported_artifact`: the
integers from the NIR parameters, checked to be integers and consistent with the manifest's
leak and reset; the widths, encoder and T from the manifest); any other graph is a network
trained elsewhere, imported by :func:`snnfpga.model.nir_foreign.import_foreign` with its
framework's discretisation. :func:`read_chain` reads a chain of dense layers (each an
``Affine`` or ``Linear`` and a neuron node, the last one may go straight into the
``Output``), refusing what a chain cannot hold in one line naming the node.
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
from snnfpga.model.nir_foreign import FRAMEWORKS, NEURON_TYPES, import_foreign, kind_of, nir_path, synapse_at

CHAIN_SYNAPSES = ("Affine", "Linear")


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


def read_chain(graph, where: str) -> list[NirLayer]:
    """The dense layers of ``graph`` from its ``Input`` to its ``Output`` (see the module doc)."""
    nodes = graph.nodes
    order = nir_path(graph, where)
    body = order[:-1]
    layers = []
    for k in range(0, len(body), 2):
        syn = body[k]
        if kind_of(nodes[syn]) not in CHAIN_SYNAPSES:
            raise ArtifactError(f"{where}: node {syn}: a {kind_of(nodes[syn])} where a chain needs an Affine or "
                                f"Linear (supported here: {', '.join(CHAIN_SYNAPSES + NEURON_TYPES)})")
        readout, weight, bias = synapse_at(nodes, body, k, where)
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
    entries = manifest.get("nodes") or []
    if "nodes" in manifest and entries and all(e.get("name") in graph.nodes for e in entries):
        return _from_manifest(manifest, _graph_arrays(graph, entries, where), where)  # a path, node for node
    if "layers" in manifest:  # version 1: arrays L<i>.weight, L<i>.bias, L<i>.threshold
        entries = manifest["layers"]
        keys = [(f"L{i}.weight", f"L{i}.bias", f"L{i}.threshold") for i in range(len(entries))]
    elif entries and [e.get("kind") for e in entries[::2]] == ["dense"] * (len(entries) // 2):
        entries = entries[1::2]  # version 2, a chain ending in lif_output: <node>.<array>
        keys = [(f"{dense_name(e['name'])}.weight", f"{dense_name(e['name'])}.bias", f"{e['name']}.threshold")
                for e in entries]
    else:
        raise ArtifactError(f"{where}: its snnfpga manifest is not a chain and its nodes are not the graph's")
    layers = read_chain(graph, where)
    if [layer.neuron for layer in layers] != [e["name"] for e in entries]:
        raise ArtifactError(f"{where}: its layers {[layer.neuron for layer in layers]} are not the manifest's "
                            f"{[e['name'] for e in entries]}")
    arrays = {}
    for layer, entry, (weight_key, bias_key, threshold_key) in zip(layers, entries, keys):
        arrays[weight_key] = _integers(layer.weight, f"node {layer.synapse}: weight", where)
        arrays[bias_key] = _integers(layer.bias, f"node {layer.synapse}: bias", where)
        if entry["kind"] in ("lif", "lif_output"):
            arrays[threshold_key] = _neuron_threshold(layer.node, layer.neuron, entry, where)
        elif kind_of(layer.node) != "I":
            raise ArtifactError(f"{where}: node {layer.neuron}: a {kind_of(layer.node)}, the output layer is an I "
                                "(integrator)")
    return _from_manifest(manifest, arrays, where)


def _from_manifest(manifest, arrays, where) -> Artifact:
    try:
        return artifact_from_manifest(manifest, arrays, where)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ArtifactError(f"{where}: malformed snnfpga manifest ({type(exc).__name__}: {exc})") from None


def _neuron_threshold(node, name: str, entry: dict, where: str) -> np.ndarray:
    """A ``lif``/``lif_output``'s integer thresholds from its NIR neuron, after checking that
    the neuron's leak, reset and fire comparison are the manifest's."""
    kind, shift = kind_of(node), entry["leak_shift"]
    want = "IF" if shift is None else "LIF"
    if kind != want:
        raise ArtifactError(f"{where}: node {name}: a {kind}, the manifest's leak needs a {want}")
    tau = None if shift is None else F.leak_tau(shift, entry.get("leak_shift2"))
    if tau is not None and not np.all(np.asarray(node.tau, dtype=np.float64) == tau):  # written as float64: exact
        raise ArtifactError(f"{where}: node {name}: tau is not the manifest's leak ({tau:g})")
    for key, default in (("reset", entry["reset"]), ("fire", entry.get("fire", DEFAULT_FIRE))):
        value = _metadata_text(node.metadata.get(key, default))
        if value != default:
            raise ArtifactError(f"{where}: node {name}: {key} {value!r}, the manifest says {default!r}")
    theta = _integers(node.v_threshold, f"node {name}: v_threshold", where)
    shape = node.metadata.get("threshold_shape")
    if shape is not None:  # exported over every neuron: back to the artifact's broadcast shape
        shape = tuple(int(x) for x in np.asarray(shape).reshape(-1))
        small = theta[tuple(slice(0, n) for n in shape)]
        if small.ndim != theta.ndim or not np.array_equal(np.broadcast_to(small, theta.shape), theta):
            raise ArtifactError(f"{where}: node {name}: v_threshold does not broadcast from {list(shape)}")
        theta = small
    return theta


def _graph_arrays(graph, entries: list, where: str) -> dict:
    """The arrays of a layer graph exported node for node (``snnfpga.model.nir_export``)."""
    want = {"dense": "Affine", "conv": "Conv2d", "lif": ("LIF", "IF"), "lif_output": ("LIF", "IF"),
            "output": "I", "flatten": "Flatten", "pool": "SumPool2d"}
    arrays = {}
    for entry in entries:
        name, kind = entry["name"], entry.get("kind")
        node = graph.nodes[name]
        if kind not in want or kind_of(node) not in np.atleast_1d(want[kind]):
            raise ArtifactError(f"{where}: node {name}: a {kind_of(node)}, the manifest's {kind} node needs "
                                f"{' or '.join(np.atleast_1d(want.get(kind, 'no NIR node')))}")
        if kind in ("dense", "conv"):
            arrays[f"{name}.weight"] = _integers(node.weight, f"node {name}: weight", where)
            arrays[f"{name}.bias"] = _integers(node.bias, f"node {name}: bias", where)
        if kind == "conv":
            for key in ("stride", "padding"):
                if set(np.asarray(getattr(node, key)).reshape(-1).tolist()) != {entry[key]}:
                    raise ArtifactError(f"{where}: node {name}: {key} {getattr(node, key)}, the manifest says "
                                        f"{entry[key]}")
        if kind in ("lif", "lif_output"):
            arrays[f"{name}.threshold"] = _neuron_threshold(node, name, entry, where)
    return arrays


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
