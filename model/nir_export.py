"""Export an artifact to NIR (see :mod:`snnfpga.model.nir_format` for the conventions).

:func:`export_nir` writes the graph (``nir.write``) and, beside it, golden traces of a few
images (``nir.write_data``): per image, the encoder's spikes (node ``input``), every hidden
layer's spikes and the output's scores after the last step (for a spiking output, the
integer key of its spike count and membrane, see the ``lif_output`` kind), each a ``TimeGriddedData`` of
shape ``[images, steps, neurons]`` (the scores: one step), ``dt = 1``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from snnfpga.errors import ConfigError
from snnfpga.model import nir_format as F
from snnfpga.model.artifact import Artifact, arrays_sha256, manifest_dict


EXPORTABLE = ("dense", "conv", "lif", "lif_output", "output", "flatten", "pool")
POOL_FLATTEN_SUFFIX = ".flatten"  # the NIR Flatten after a pool's SumPool2d (NIR keeps [C, 1, 1])


def to_nir(art: Artifact):
    """The ``nir.NIRGraph`` of an artifact: a chain (``<layer>.affine`` and ``<layer>``
    nodes), or a layer graph that is one path of :data:`EXPORTABLE` kinds (every node under
    its own name); anything else is a :class:`ConfigError` naming the node."""
    nir = F.require_nir()
    if not art.is_chain:
        return _graph_to_nir(nir, art)
    nodes = {"input": nir.Input(input_type={"input": np.array([art.n_inputs])})}
    edges, previous = [], "input"
    for layer in art.layers:
        affine = layer.name + F.AFFINE_SUFFIX
        nodes[affine] = nir.Affine(weight=layer.weights.astype(np.float64), bias=layer.bias.astype(np.float64))
        neuron = _neuron(nir, layer, (layer.n_out,), layer.is_output) if layer.spiking else \
            _integrator(nir, (layer.n_out,))
        nodes[layer.name] = neuron
        edges += [(previous, affine), (affine, layer.name)]
        previous = layer.name
    nodes["output"] = nir.Output(output_type={"output": np.array([art.n_classes])})
    edges.append((previous, "output"))
    return _graph(nir, art, nodes, edges)


def _graph(nir, art: Artifact, nodes: dict, edges: list, type_check: bool = True):
    manifest = manifest_dict(art, arrays_sha256(art))
    metadata = {F.MANIFEST_KEY: json.dumps(manifest), F.CONVENTION_KEY: F.CONVENTION,
                "dt": F.DT, "timesteps": art.timesteps}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=type_check)


def _integrator(nir, shape: tuple):
    """The ``output`` node as NIR's ``I``: its scores integrate the current."""
    return nir.I(r=np.ones(shape), metadata={"readout": "scores after the last step; class = argmax, "
                                                        "lowest index on ties"})


def _neuron(nir, node, shape: tuple, last: bool):
    """A ``lif`` or ``lif_output`` (node, or a chain's :class:`~snnfpga.model.graph.Layer`) as
    NIR's ``LIF`` (a leak) or ``IF``, its parameters over the tensor's neurons; what NIR cannot
    say in metadata (see :mod:`snnfpga.model.nir_format`), with ``threshold_shape`` when the
    thresholds broadcast (per channel)."""
    theta = np.broadcast_to(node.threshold.astype(np.float64), shape).copy()
    meta = {"reset": node.reset, "fire": node.fire, "leak_shift": -1 if node.leak_shift is None else node.leak_shift}
    if node.threshold.shape != shape:
        meta["threshold_shape"] = list(node.threshold.shape)
    if node.leak_shift2 is not None:
        meta["leak_shift2"] = node.leak_shift2
    if last:
        meta["readout"] = F.COUNT_READOUT
    if node.leak_shift is None:
        return nir.IF(r=np.ones(shape), v_threshold=theta, v_reset=np.zeros(shape), metadata=meta)
    tau = np.full(shape, F.leak_tau(node.leak_shift, node.leak_shift2))
    return nir.LIF(tau=tau, r=tau.copy(), v_leak=np.zeros(shape), v_threshold=theta, v_reset=np.zeros(shape),
                   metadata=meta)


def _graph_to_nir(nir, art: Artifact):
    graph = art.graph
    nodes = {"input": nir.Input(input_type={"input": np.array(graph.source.shape)})}
    edges, previous, source = [], "input", "input"  # the last NIR node, the last contract node
    for node in graph.nodes:
        if node.KIND not in EXPORTABLE or node.inputs != (source,):
            why = "has no NIR node here" if node.KIND not in EXPORTABLE else "branches (NIR export takes one path)"
            raise ConfigError(f"{art.name} is a layer graph: node {node.name} ({node.KIND}) {why}; NIR export covers "
                              f"chains and paths of {', '.join(EXPORTABLE)} nodes")
        shape = tuple(graph.types[node.name].shape)
        in_shape = tuple(graph.input_types(node)[0].shape)
        if node.KIND == "dense":
            out = nir.Affine(weight=node.weight.astype(np.float64), bias=node.bias.astype(np.float64))
        elif node.KIND == "conv":
            out = nir.Conv2d(input_shape=in_shape[1:], weight=node.weight.astype(np.float64), stride=node.stride,
                             padding=node.padding, dilation=1, groups=1, bias=node.bias.astype(np.float64))
        elif node.KIND in ("lif", "lif_output"):
            out = _neuron(nir, node, shape, node.KIND == "lif_output")
        elif node.KIND == "output":
            out = _integrator(nir, shape)
        elif node.KIND == "flatten":
            out = nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0)  # NIR types have no batch
        else:  # pool: global spike-count pooling, [C, 1, 1] in NIR, then flat as the contract's counts
            out = nir.SumPool2d(kernel_size=np.array(in_shape[1:]), stride=np.array(in_shape[1:]),
                                padding=np.array([0, 0]))
        nodes[node.name] = out
        edges.append((previous, node.name))
        previous = source = node.name
        if node.KIND == "pool":
            flat = f"{node.name}{POOL_FLATTEN_SUFFIX}"
            nodes[flat] = nir.Flatten(input_type={"input": np.array([shape[0], 1, 1])}, start_dim=0)
            edges.append((previous, flat))
            previous = flat
    nodes["output"] = nir.Output(output_type={"output": np.array([art.n_classes])})
    edges.append((previous, "output"))
    # nir's type inference trips over integer conv paddings: the shapes are the contract's, checked on import
    return _graph(nir, art, nodes, edges, type_check=False)


def golden_data(art: Artifact, images: np.ndarray):
    """The ``nir.NIRGraphData`` of the reference's spikes and scores on ``images``."""
    from snnfpga.sim import reference

    nir = F.require_nir()
    trace = reference.run(art, images)
    n = len(images)
    observed = {}
    for name, spikes in zip(trace.names, trace.spikes):
        data = np.asarray(spikes, dtype=bool).reshape(n, art.timesteps, -1)
        observed[name] = nir.NIRNodeData({"spikes": nir.TimeGriddedData(data, F.DT)})
    scores = trace.scores.astype(np.float64).reshape(n, 1, -1)
    observed[art.nodes[-1].name] = nir.NIRNodeData({"scores": nir.TimeGriddedData(scores, F.DT)})
    return nir.NIRGraphData(observed)


def export_nir(art: Artifact, out: str | Path, images: np.ndarray) -> dict:
    """Write ``out`` (the graph) and its golden traces on ``images`` (uint8 ``[N, H, W]``);
    returns ``{"nir": path, "golden": path, "nodes": count, "images": N}``."""
    nir = F.require_nir()
    graph = to_nir(art)
    out = Path(out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True)
    nir.write(out, graph)
    golden = F.golden_path(out)
    nir.write_data(golden, golden_data(art, images))
    return {"nir": str(out), "golden": golden, "nodes": len(graph.nodes), "images": int(len(images))}
