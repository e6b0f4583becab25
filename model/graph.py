"""The network as a directed acyclic graph of node kinds, and chains as a special case.

:func:`analyse` puts the nodes in topological order and, node by node, checks each one's
inputs and parameters (:meth:`Node.infer`) and proves the ranges of its registers
(:meth:`Node.prove`). Every failure is one :class:`~snnfpga.errors.ArtifactError` naming the
node and the problem. Whole-graph code iterates :attr:`Graph.nodes` in that order and
dispatches to the kinds; nothing here knows what a kind computes.

The graph's source is the encoder's spike map ``input`` of shape ``(1, H, W)``. Exactly
one node is an ``output`` node; it comes last, and every node leads to it.

A *chain* (version 1 of the contract) is ``[dense, lif] * L + [dense, output]``, each node
reading the one before (or, written as version 2, ending in ``lif_output``), the dense nodes named ``<layer>.dense`` with unit ``<layer>`` and
the populations named ``<layer>``: :func:`chain_nodes` builds it from layer specs and
:func:`chain_layers` recovers the :class:`Layer` view that the hardware stages read.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from snnfpga.errors import ArtifactError
from snnfpga.model.kinds import KINDS, Bound, Dense, Lif, LifOutput, Node, NodeError, Output, Proof, TensorType, Window
from snnfpga.model.kinds.lif import DEFAULT_FIRE

SOURCE = "input"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True, eq=False)
class Graph:
    """Nodes in topological order with their output types and width proofs."""

    nodes: tuple[Node, ...]
    types: dict[str, TensorType]
    proofs: dict[str, Proof]
    source: TensorType = field(default_factory=lambda: TensorType((1, 1, 1), "spikes"))

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def output(self) -> Node:
        return self.nodes[-1]

    def input_types(self, node: Node) -> list[TensorType]:
        return [self.source if n == SOURCE else self.types[n] for n in node.inputs]

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]


def order(nodes: list[Node]) -> list[Node]:
    """Topological order (Kahn; ties keep the given order). Raises on a duplicate name, a
    missing input, a cycle, no or several output nodes, or a node that leads nowhere."""
    names = [n.name for n in nodes]
    for node in nodes:
        if not isinstance(node.name, str) or not NAME_PATTERN.match(node.name) or node.name == SOURCE:
            raise ArtifactError(f"node name {node.name!r} is not allowed (letters, digits, _ . -; not {SOURCE!r})")
    seen = set()
    for name in names:
        if name in seen:
            raise ArtifactError(f"node {name!r} is defined twice")
        seen.add(name)
    for node in nodes:
        for src in node.inputs:
            if src != SOURCE and src not in seen:
                raise ArtifactError(f"node {node.name!r} ({node.KIND}): input {src!r} does not exist")
    by_name = {n.name: n for n in nodes}
    pending = {n.name: sum(1 for s in n.inputs if s != SOURCE) for n in nodes}
    consumers: dict[str, list[str]] = {n: [] for n in names}
    for node in nodes:
        for src in node.inputs:
            if src != SOURCE:
                consumers[src].append(node.name)
    rank = {name: i for i, name in enumerate(names)}
    ready = deque(n for n in names if pending[n] == 0)
    out: list[Node] = []
    while ready:
        name = min(ready, key=rank.__getitem__)
        ready.remove(name)
        out.append(by_name[name])
        for c in consumers[name]:
            pending[c] -= 1
            if pending[c] == 0:
                ready.append(c)
    if len(out) < len(nodes):
        raise ArtifactError(f"the graph has a cycle: {_cycle(by_name, {n for n in names if pending[n] > 0})}")
    outputs = [n.name for n in out if isinstance(n, Output)]
    if len(outputs) != 1:
        raise ArtifactError(f"the graph needs exactly one output node, found {len(outputs)}"
                            + (f" ({', '.join(outputs)})" if outputs else ""))
    if out[-1].name != outputs[0]:  # something runs after the output: it cannot reach it
        out = [n for n in out if n.name != outputs[0]] + [by_name[outputs[0]]]
    reaches = {outputs[0]}
    for node in reversed(out):
        if node.name in reaches:
            reaches.update(node.inputs)
    for node in out:
        if node.name not in reaches:
            raise ArtifactError(f"node {node.name!r} ({node.KIND}) does not lead to the output {outputs[0]!r}")
    if SOURCE not in reaches:
        raise ArtifactError(f"the output {outputs[0]!r} does not depend on the input")
    return out


def _cycle(by_name: dict, stuck: set) -> str:
    """One cycle among the nodes Kahn's algorithm could not order, as ``'a' -> 'b' -> 'a'``."""
    walk = [min(stuck)]
    while True:
        node = by_name[walk[-1]]
        nxt = next(s for s in node.inputs if s in stuck)  # a stuck node has a stuck input
        if nxt in walk:
            loop = walk[walk.index(nxt):] + [nxt]
            return " -> ".join(repr(n) for n in reversed(loop))
        walk.append(nxt)


def analyse(nodes: list[Node], input_shape: tuple[int, int], timesteps: int,
            window_steps: int | None = None) -> Graph:
    """Order, type-check and prove a graph (see the module docstring).

    ``window_steps`` ``S``: the source is time-to-first-spike coded, in window 0 of ``S``
    steps (the ``ttfs`` encoder); None for rate-coded input."""
    ordered = order(list(nodes))
    window = None if window_steps is None else Window(0, int(window_steps))
    source = TensorType((1, int(input_shape[0]), int(input_shape[1])), "spikes", window=window)
    types: dict[str, TensorType] = {}
    proofs: dict[str, Proof] = {}
    bounds: dict[str, Bound] = {SOURCE: Bound.of(0, 1)}
    for node in ordered:
        ins = [source if s == SOURCE else types[s] for s in node.inputs]
        try:
            t = node.infer(ins)
            proof = node.prove(ins, [bounds[s] for s in node.inputs], timesteps)
        except NodeError as exc:
            raise ArtifactError(f"node {node.name!r} ({node.KIND}): {exc}") from None
        types[node.name] = t
        proofs[node.name] = proof
        bounds[node.name] = proof.out
    return Graph(nodes=tuple(ordered), types=types, proofs=proofs, source=source)


def with_widths(graph: Graph, membrane_bits: int | None = None) -> list[Node]:
    """The nodes with every declared width set to the narrowest that its proof allows.

    ``membrane_bits`` caps LIF membranes (saturation then becomes live, and is declared)."""
    from dataclasses import replace

    return [replace(n, **n.widths(graph.proofs[n.name], membrane_bits=membrane_bits)) for n in graph.nodes]


def check_widths(graph: Graph) -> None:
    for node in graph.nodes:
        try:
            node.check_widths(graph.proofs[node.name])
        except NodeError as exc:
            raise ArtifactError(f"node {node.name!r} ({node.KIND}): {exc}") from None


# --------------------------------------------------------------------------------------
# Chains: version 1 of the contract


@dataclass(frozen=True, eq=False)
class Layer:
    """One fully connected layer of a chain: a ``dense`` node and its population.

    ``kind`` is ``lif`` (hidden, spiking), ``output`` (last layer: no spikes, accumulated
    scores) or ``lif_output`` (last layer: LIF neurons, scored by spike count, then
    membrane). Widths are two's-complement bit counts; ``threshold``, ``membrane_bits`` and
    ``leak_shift``/``reset``/``fire`` exist for the LIF kinds only (:attr:`spiking`),
    ``score_bits`` for the last layer only.
    """

    name: str
    kind: str
    weights: np.ndarray  # int [n_out, n_in]
    bias: np.ndarray  # int [n_out]
    threshold: np.ndarray | None  # int [n_out], >= 1; None for the output layer
    weight_bits: int
    leak_shift: int | None = None
    reset: str | None = None
    fire: str = DEFAULT_FIRE  # ">=" or ">" (LIF layers)
    leak_shift2: int | None = None  # the leak's second term (LIF layers)
    bias_bits: int = 0
    threshold_bits: int = 0
    current_bits: int = 0
    membrane_bits: int = 0
    score_bits: int = 0

    @property
    def n_in(self) -> int:
        return int(self.weights.shape[1])

    @property
    def spiking(self) -> bool:
        """LIF dynamics (``lif`` and ``lif_output``)."""
        return self.kind != "output"

    @property
    def is_output(self) -> bool:
        return self.kind != "lif"

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[0])


def dense_name(layer: str) -> str:
    return f"{layer}.dense"


def chain_nodes(layers: list[dict]) -> list[Node]:
    """Graph nodes of a chain from version-1 layer specs (``weights``, ``bias``,
    ``weight_bits``, optional ``name``; all but the last: ``threshold``, ``leak_shift``,
    ``reset``, optional ``fire`` and ``leak_shift2``; optional declared widths). The last layer is the output layer:
    ``output``, or ``lif_output`` when its spec has a ``threshold`` (and the LIF keys)."""
    nodes: list[Node] = []
    prev = SOURCE
    for i, spec in enumerate(layers):
        name = spec.get("name", f"fc{i + 1}")
        is_output = i == len(layers) - 1
        nodes.append(Dense(name=dense_name(name), inputs=(prev,), unit=name,
                           weight=np.asarray(spec["weights"]).astype(np.int64),
                           bias=np.asarray(spec["bias"]).astype(np.int64),
                           weight_bits=int(spec["weight_bits"]), bias_bits=int(spec.get("bias_bits", 0)),
                           current_bits=int(spec.get("current_bits", 0))))
        threshold = spec.get("threshold")
        if is_output and threshold is None:
            nodes.append(Output(name=name, inputs=(dense_name(name),), score_bits=int(spec.get("score_bits", 0))))
        else:
            kind = dict(score_bits=int(spec.get("score_bits", 0))) if is_output else {}
            nodes.append((LifOutput if is_output else Lif)(
                name=name, inputs=(dense_name(name),),
                threshold=None if threshold is None else np.asarray(threshold).astype(np.int64),
                leak_shift=spec.get("leak_shift"), reset=spec.get("reset", "zero"),
                fire=spec.get("fire", DEFAULT_FIRE), leak_shift2=spec.get("leak_shift2"),
                threshold_bits=int(spec.get("threshold_bits", 0)), membrane_bits=int(spec.get("membrane_bits", 0)),
                **kind))
        prev = name
    return nodes


def chain_layers(nodes: tuple[Node, ...]) -> tuple[Layer, ...] | None:
    """The :class:`Layer` view of a chain (see the module docstring), or None if not a chain."""
    if len(nodes) < 2 or len(nodes) % 2:
        return None
    layers = []
    prev = SOURCE
    for i in range(0, len(nodes), 2):
        syn, pop = nodes[i], nodes[i + 1]
        last = i + 2 == len(nodes)
        if type(syn) is not Dense or type(pop) not in ((Output, LifOutput) if last else (Lif,)):
            return None
        if syn.inputs != (prev,) or pop.inputs != (syn.name,) or syn.name != dense_name(pop.name) \
                or syn.unit != pop.name or (isinstance(pop, Lif) and pop.threshold.shape != (syn.weight.shape[0],)):
            return None
        common = dict(name=pop.name, weights=syn.weight, bias=syn.bias, weight_bits=syn.weight_bits,
                      bias_bits=syn.bias_bits, current_bits=syn.current_bits)
        if type(pop) is Output:
            layers.append(Layer(kind="output", threshold=None, score_bits=pop.score_bits, **common))
        else:
            layers.append(Layer(kind=pop.KIND, threshold=pop.threshold, leak_shift=pop.leak_shift, reset=pop.reset,
                                fire=pop.fire, leak_shift2=pop.leak_shift2, threshold_bits=pop.threshold_bits,
                                membrane_bits=pop.membrane_bits,
                                score_bits=getattr(pop, "score_bits", 0), **common))
        prev = pop.name
    return tuple(layers)


def kind_of(name: str) -> type[Node]:
    try:
        return KINDS[name]
    except KeyError:
        raise ArtifactError(f"unknown node kind {name!r}; the contract has {', '.join(sorted(KINDS))}") from None
