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


def to_nir(art: Artifact):
    """The ``nir.NIRGraph`` of a chain artifact (a layer graph: :class:`ConfigError`)."""
    nir = F.require_nir()
    if not art.is_chain:
        raise ConfigError(f"{art.name} is a layer graph: NIR export covers chains of dense layers so far")
    nodes = {"input": nir.Input(input_type={"input": np.array([art.n_inputs])})}
    edges, previous = [], "input"
    for layer in art.layers:
        affine = layer.name + F.AFFINE_SUFFIX
        nodes[affine] = nir.Affine(weight=layer.weights.astype(np.float64), bias=layer.bias.astype(np.float64))
        n = layer.n_out
        if layer.spiking:
            theta = layer.threshold.astype(np.float64)
            meta = {"reset": layer.reset, "fire": layer.fire, "leak_shift": -1 if layer.leak_shift is None else layer.leak_shift}
            if layer.leak_shift2 is not None:
                meta["leak_shift2"] = layer.leak_shift2
            if layer.is_output:
                meta["readout"] = F.COUNT_READOUT
            if layer.leak_shift is None:
                neuron = nir.IF(r=np.ones(n), v_threshold=theta, v_reset=np.zeros(n), metadata=meta)
            else:
                tau = np.full(n, F.leak_tau(layer.leak_shift, layer.leak_shift2))
                neuron = nir.LIF(tau=tau, r=tau.copy(), v_leak=np.zeros(n), v_threshold=theta, v_reset=np.zeros(n),
                                 metadata=meta)
        else:
            neuron = nir.I(r=np.ones(n), metadata={"readout": "scores after the last step; class = argmax, "
                                                              "lowest index on ties"})
        nodes[layer.name] = neuron
        edges += [(previous, affine), (affine, layer.name)]
        previous = layer.name
    nodes["output"] = nir.Output(output_type={"output": np.array([art.n_classes])})
    edges.append((previous, "output"))
    manifest = manifest_dict(art, arrays_sha256(art))
    metadata = {F.MANIFEST_KEY: json.dumps(manifest), F.CONVENTION_KEY: F.CONVENTION,
                "dt": F.DT, "timesteps": art.timesteps}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


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
    observed[art.layers[-1].name] = nir.NIRNodeData({"scores": nir.TimeGriddedData(scores, F.DT)})
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
