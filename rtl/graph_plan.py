"""Hardware plan of a layer graph: engines, memories, refusal checks and a cycle estimate.

This is the plan the graph generator builds on (docs/hardware.md, "Layer graphs"); the
chain generator keeps :mod:`snnfpga.rtl.plan`. Each node becomes one of:

* a **neuron engine** (``lif``, ``output``): a state memory of ``lines x groups`` words of
  ``P`` lanes; the synapse nodes that feed it alone scatter straight into its state
  (integrate passes), and once per step a neuron pass reads every word, adds the current
  buffers it sums, updates and emits its spikes as events (``(c, y, x)`` from counters);
* a **buffer engine**: a synapse whose current several nodes read (a stage current of a
  skip connection, a patch-encoding node current, an ``add``) or that feeds a ``glif``
  accumulates into a current buffer; its readers add it during their neuron pass, the last
  one clears it;
* a **scan engine** (``glif``): no weights, no state across steps; it reads its input
  buffer in group order, one add, shift and compare per lane and position;
* **wiring** (``add``, ``concat``, ``pool``, ``flatten``): no cycles and no memory; an
  ``add`` is summed by its readers, a spike ``concat`` is a channel offset of the scatter
  (rtl/scatter.py), ``pool`` lets every spike of its map scatter its channel's row into
  the head.

Every synapse is the same accumulate datapath behind a :class:`~snnfpga.rtl.scatter.ScatterSpec`.
Lanes: ``P_n = min(P, line length)``; ``G_n = ceil(line length / P_n)`` groups per line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snnfpga.errors import MappingError
from snnfpga.model.artifact import Artifact
from snnfpga.model.graph import SOURCE
from snnfpga.model.kinds import Synapse
from snnfpga.model.widths import signed_bits
from snnfpga.rtl.plan import ceil_log2
from snnfpga.rtl.scatter import ScatterSpec, scatter_spec
from snnfpga.rtl.targets import Target

WIRING = ("add", "concat", "pool", "flatten")
# Lanes per graph engine: the chain engine goes to 512 (rtl/plan.py MAX_LANES); the graph
# engines, their folding (rtl/graph_fold.py) and benches are verified up to 256.
MAX_LANES = 256
NEURONS = ("lif", "output")
PIPELINE_OVERHEAD = 3  # cycles to fill and drain one pass (as the chain's engines)
# Block RAM shapes (depth, width) of each memory primitive: the generator picks the one that
# needs the fewest blocks for a memory (vendor data sheets: ECP5 sysMEM DP16KD, iCE40 EBR
# SB_RAM40_4K, iCE40 UP SPRAM SB_SPRAM256KA).
PRIMITIVE_SHAPES = {
    "dp16kd": ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),
    "ebr": ((2048, 2), (1024, 4), (512, 8), (256, 16)),
    "spram": ((16384, 16),),
}


@dataclass(frozen=True)
class MemoryPlan:
    """One memory: ``words`` x ``width`` bits; ``purpose`` is weights, state, buffer or params."""

    purpose: str
    words: int
    width: int

    @property
    def bits(self) -> int:
        return self.words * self.width


@dataclass(frozen=True)
class NodePlan:
    """What one node becomes (see the module doc)."""

    name: str
    kind: str
    role: str  # neuron, buffer, scan, scatter (into ``target``), wiring
    lanes: int = 0
    groups: int = 0
    lines: int = 0
    target: str | None = None  # scatter: the engine it adds into
    spec: ScatterSpec | None = None
    memories: tuple[MemoryPlan, ...] = ()


@dataclass(frozen=True)
class GraphPlan:
    artifact: Artifact
    lanes: int
    nodes: dict[str, NodePlan] = field(default_factory=dict)

    @property
    def engines(self) -> list[NodePlan]:
        return [n for n in self.nodes.values() if n.role in ("neuron", "buffer", "scan")]

    def memory_bits(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in self.nodes.values():
            for mem in n.memories:
                out[mem.purpose] = out.get(mem.purpose, 0) + mem.bits
        return out


def _groups(length: int, lanes: int) -> tuple[int, int]:
    p = min(lanes, length)
    return p, -(-length // p)


def require_rate_coded(art: Artifact) -> None:
    """:class:`MappingError` for a time-to-first-spike model: this planned-design estimate
    covers rate-coded graphs (the TTFS accelerator and its cycle model: rtl/graph_top.py,
    rtl/graph_cycles.py)."""
    if art.is_ttfs:
        raise MappingError(f"model {art.name!r} is time-to-first-spike coded (ttfs nodes): the planned-design "
                           f"estimate covers rate-coded graphs; its accelerator's cycle model is rtl/graph_cycles.py")


def make_graph_plan(art: Artifact, lanes: int = 64, target: Target | None = None) -> GraphPlan:
    """Engines and memories of every node; :class:`MappingError` (naming the node and the
    limit) for a graph the generator cannot map, or one that does not fit ``target``."""
    if not isinstance(lanes, int) or not 1 <= lanes <= MAX_LANES:
        raise MappingError(f"lanes must be an integer in 1..{MAX_LANES}, got {lanes!r}")
    require_rate_coded(art)
    graph = art.graph
    readers = {n.name: graph.consumers(n.name) for n in graph.nodes}
    plans: dict[str, NodePlan] = {}
    layout: dict[str, tuple[int, int]] = {}  # neuron/buffer engine -> (lines, line length)

    def scatter_target(node) -> str | None:
        """The neuron engine a synapse adds into directly, or None (it needs a buffer)."""
        rs = readers[node.name]
        if len(rs) == 1 and rs[0].KIND in NEURONS:
            return rs[0].name
        return None

    for node in graph.nodes:
        ins = graph.input_types(node)
        t = graph.types[node.name]
        if isinstance(node, Synapse):
            spec = scatter_spec(node, ins)
            p, g = _groups(spec.line_length, lanes)
            weights = MemoryPlan("weights", spec.rows << ceil_log2(g), p * node.weight_bits)
            into = scatter_target(node)
            if into is None:
                layout[node.name] = (spec.lines, spec.line_length)
                # Every partial sum bias + some weights lies inside the proven output range.
                bits = signed_bits(*graph.proofs[node.name].registers["output"])
                buffer = MemoryPlan("buffer", spec.lines * g, p * bits)
                plans[node.name] = NodePlan(node.name, node.KIND, "buffer", p, g, spec.lines, None, spec,
                                            (weights, buffer))
            else:
                lines = (spec.lines, spec.line_length)
                if layout.setdefault(into, lines) != lines:
                    raise MappingError(f"node {into}: sums currents laid out as {layout[into][0]} lines of "
                                       f"{layout[into][1]} and as {lines[0]} lines of {lines[1]} (node "
                                       f"{node.name}); the generator maps one layout per neuron tensor")
                plans[node.name] = NodePlan(node.name, node.KIND, "scatter", p, g, spec.lines, into, spec,
                                            (weights,))
        elif node.KIND in WIRING:
            plans[node.name] = NodePlan(node.name, node.KIND, "wiring")
        elif node.KIND in NEURONS or node.KIND == "glif":
            shape = t.shape
            default = (shape[1] * shape[2], shape[0]) if len(shape) == 3 else (1, shape[0])
            lines, length = layout.setdefault(node.name, default)
            p, g = _groups(length, lanes)
            if node.KIND == "glif":
                params = MemoryPlan("params", int(node.threshold.size), node.threshold_bits)
                plans[node.name] = NodePlan(node.name, node.KIND, "scan", p, g, lines, memories=(params,))
                continue
            if node.KIND == "output":
                state = MemoryPlan("state", g * lines, p * node.score_bits)
                plans[node.name] = NodePlan(node.name, node.KIND, "neuron", p, g, lines, memories=(state,))
                continue
            proof = graph.proofs[node.name]
            state_bits = max(node.membrane_bits, signed_bits(*proof.registers["input"])) + 2
            memories = (MemoryPlan("state", g * lines, p * state_bits),
                        MemoryPlan("params", int(node.threshold.size), node.threshold_bits))
            plans[node.name] = NodePlan(node.name, node.KIND, "neuron", p, g, lines, memories=memories)
        else:
            raise MappingError(f"node {node.name}: kind {node.KIND!r} has no hardware mapping")
    plan = GraphPlan(artifact=art, lanes=lanes, nodes=plans)
    if target is not None:
        check_fits(plan, target)
    return plan


def blocks(mem: MemoryPlan, primitive: str) -> int:
    """Blocks of ``primitive`` one memory takes in its best shape (no sharing between memories)."""
    return min(-(-mem.words // d) * -(-mem.width // w) for d, w in PRIMITIVE_SHAPES[primitive])


def memory_map(plan: GraphPlan, target: Target) -> dict[str, dict]:
    """Blocks per memory primitive, by owner.

    ECP5 (one engine per neuron, buffer and scan node): every memory of 256 bits or more in
    its own DP16KD blocks, by node. iCE40 UP5K (one shared engine, see :func:`schedule`): the
    memories pooled by purpose, each pool one address space at its widest word: ``weights``
    in SPRAM, ``state`` and ``buffer`` in SPRAM when they are larger than the EBR, else EBR;
    ``params`` in EBR."""
    if target.family == "ecp5":
        out = {}
        for name, node in plan.nodes.items():
            used = sum(blocks(m, "dp16kd") for m in node.memories if m.bits >= 256)
            if used:
                out[name] = {"dp16kd": used}
        return out
    pools: dict[str, list[MemoryPlan]] = {}
    for node in plan.nodes.values():
        for mem in node.memories:
            pools.setdefault("state" if mem.purpose == "buffer" else mem.purpose, []).append(mem)
    out = {}
    ebr_bits = target.capacity["ebr"] * target.memory_primitives["ebr"]
    for purpose, mems in pools.items():
        width = max(m.width for m in mems)
        pooled = MemoryPlan(purpose, sum(m.words for m in mems), width)
        prim = "spram" if purpose == "weights" or (purpose == "state" and pooled.bits > ebr_bits) else "ebr"
        out[f"({purpose})"] = {prim: blocks(pooled, prim)}
    return out


def schedule(target: Target | None) -> str:
    """``pipelined`` (one engine per node: ECP5, and no target) or ``shared`` (one engine
    for the whole graph, memories pooled: iCE40 UP5K, whose four SPRAMs cannot give every
    node a memory of its own)."""
    return "shared" if target is not None and target.family == "ice40" else "pipelined"


def check_fits(plan: GraphPlan, target: Target) -> dict[str, int]:
    """Blocks used per primitive (:func:`memory_map`); :class:`MappingError` naming the
    largest user when a primitive is over the target's capacity."""
    per_owner = memory_map(plan, target)
    totals: dict[str, int] = {}
    for used in per_owner.values():
        for prim, count in used.items():
            totals[prim] = totals.get(prim, 0) + count
    for prim, count in totals.items():
        cap = target.capacity.get(prim, 0)
        if count > cap:
            largest = max(per_owner, key=lambda n: per_owner[n].get(prim, 0))
            owner = largest if largest.startswith("(") else f"node {largest}"
            raise MappingError(f"graph {plan.artifact.name} at {plan.lanes} lanes needs {count} {prim.upper()} blocks, "
                               f"the {target.name} has {cap} (largest: {owner}, {per_owner[largest][prim]} blocks)")
    return totals


def estimate(plan: GraphPlan, trace_outputs: dict, input_spikes: np.ndarray, pixels_per_beat: int = 4) -> dict:
    """Planned cycles per image (``int [N]`` arrays) from a reference run with
    ``record="all"`` (``trace_outputs``) and its encoder spikes.

    Integrate cycles of a synapse at step ``t``: the sum over its input events of
    ``rows(event) x G`` (rows from its scatter spec); a neuron or scan pass:
    ``lines x G + 3``; the encoder ``ceil(n/B) + 4`` per step plus the image load.

    * ``shared``: one engine does everything in order: ``integrate + neuron + overhead``;
    * ``pipelined``: one engine per neuron, buffer and scan node, streams between them (as
      the chain's layers): the busiest engine of each step, plus the last step's drain.
      ``bottleneck`` names the busiest engine per image; ``bottleneck_integrate`` and
      ``bottleneck_neuron`` are its own cycles, the rest of ``pipelined`` it waits.
    """
    art = plan.artifact
    graph = art.graph
    n, T = input_spikes.shape[:2]
    values = dict(trace_outputs)
    values[SOURCE] = input_spikes.reshape(n, T, *graph.source.shape)
    engines = [e.name for e in plan.engines]
    integ = {e: np.zeros((n, T), np.int64) for e in engines}
    neuron = {e: np.zeros((n, T), np.int64) for e in engines}
    for name, node in plan.nodes.items():
        if node.spec is not None:
            rows = np.asarray(node.spec.rows_per_position(), np.int64)  # [H, W]
            total = np.zeros((n, T), np.int64)
            for src in graph.node(name).inputs:
                ev = values[src].astype(np.int64)
                if node.spec.kind in ("dense", "output"):
                    total += ev.reshape(n, T, -1).sum(axis=2) * int(rows.sum())
                else:
                    total += (ev.sum(axis=2) * rows).sum(axis=(2, 3))
            integ[node.target or name] += total * node.groups
        if node.role in ("neuron", "scan"):
            neuron[name] += node.lines * node.groups + PIPELINE_OVERHEAD
    beats = -(-art.n_inputs // pixels_per_beat)
    encoder = T * (beats + 4) + beats
    busy = np.stack([integ[e] + neuron[e] for e in engines], axis=2)  # [N, T, engines]
    drain = sum(plan.nodes[e].lines * plan.nodes[e].groups + PIPELINE_OVERHEAD for e in engines)
    integrate_all = sum(integ[e].sum(axis=1) for e in engines)
    neuron_all = sum(neuron[e].sum(axis=1) for e in engines)
    worst = busy.sum(axis=1).argmax(axis=1)  # [N]
    pick = lambda d: np.stack([d[e].sum(axis=1) for e in engines], axis=1)[np.arange(n), worst]  # noqa: E731
    return {
        "integrate": integrate_all, "neuron": neuron_all, "overhead": np.full(n, encoder, np.int64),
        "shared": integrate_all + neuron_all + encoder,
        "pipelined": busy.max(axis=2).sum(axis=1) + drain + beats,
        "bottleneck": np.asarray(engines)[worst],
        "bottleneck_integrate": pick(integ), "bottleneck_neuron": pick(neuron),
    }


def current_parts(graph, node) -> list[tuple[str, int, int]]:
    """The synapse currents a neuron tensor sums, through ``add`` and channel ``concat``:
    ``(synapse name, first channel, channels)`` each."""
    c_total = graph.types[node.name].shape[0]
    out: list[tuple[str, int, int]] = []

    def walk(name: str, first_channel: int, channels: int):
        n = graph.node(name)
        if n.KIND == "add":
            for src in n.inputs:
                walk(src, first_channel, channels)
        elif n.KIND == "concat":
            offset = first_channel
            for src in n.inputs:
                width = graph.types[src].shape[0]
                walk(src, offset, width)
                offset += width
        elif isinstance(n, Synapse):
            out.append((name, first_channel, channels))
        else:
            raise MappingError(f"node {node.name}: reads {name} ({n.KIND}), which is not a current the "
                               f"generator can buffer")

    for src in node.inputs:
        walk(src, 0, c_total)
    return out


def current_sources(graph, node, lanes: int, groups: int) -> list[tuple[str, int, int]]:
    """The synapse buffers a neuron pass of ``node`` (``groups`` per line) sums:
    ``(synapse name, first group, groups)`` each (see :func:`current_parts`; the lanes run
    along the channels where a concatenation splits them). A concatenated part must start
    on a group boundary (its first channel a multiple of the lanes), else
    :class:`MappingError`."""
    c_total = graph.types[node.name].shape[0]
    p = min(lanes, c_total)
    out = []
    for name, first_channel, channels in current_parts(graph, node):
        if first_channel % p:
            raise MappingError(f"node {node.name}: the current of {name} starts at channel {first_channel}, "
                               f"not a multiple of the {p} lanes (a concatenation must align with the groups)")
        out.append((name, first_channel // p, groups if channels == c_total else -(-channels // p)))
    return out
