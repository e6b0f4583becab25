"""The layer-graph accelerator: encoder, one engine per node, a static schedule, the decision.

First version of the graph hardware (docs/hardware.md, "Layer graphs"): correct by
construction rather than fast. Every synapse node is a
:class:`~snnfpga.rtl.accumulate.SynapseAccumulator` with its own current buffer, every
``lif`` a :class:`~snnfpga.rtl.neuron.LifEngine`, every ``glif`` a
:class:`~snnfpga.rtl.neuron.GlifEngine`, every ``ttfs`` a dense accumulator (one step's
current) and a :class:`~snnfpga.rtl.ttfs_engine.TtfsEngine`, a ``ttfs_output`` a dense
accumulator whose scores ramp (``J += I; score += J``, from its bias); ``add``, ``concat``,
``pool`` and ``flatten`` are wiring. A controller runs, for every time step, a schedule fixed at generation:

1. the encoder's spikes of the step, broadcast to the synapses that read the input;
2. every neuron engine in topological order: its neuron pass (which reads the buffers it
   sums) and its spikes, broadcast as events to every synapse that reads them (a concat of
   spikes adds its channel offset, a pool drops the position, a flatten keeps it); the next
   engine starts when every consumer has absorbed the events;
3. the output node adds the head's buffer into its scores (a ``lif_output``: one LIF per
   class in registers, fed by the head's buffer one group per cycle, counting its spikes;
   its score is ``{count, ~v[M-1], v[M-2:0]}``);
4. every buffer is cleared to its bias for the next step.

After ``T`` steps the argmax decision (:class:`~snnfpga.rtl.decision.ArgmaxDecision`)
presents the class and the scores on ``result``; the scores are cleared when it is taken.
Only one engine emits events at any time, so each synapse's event input and each buffer's
read port is a multiplexer over its producers or readers, chosen by the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from snnfpga.errors import MappingError
from snnfpga.model.artifact import Artifact
from snnfpga.model.kinds import Synapse
from snnfpga.model.widths import signed_bits
from snnfpga.rtl.accumulate import SynapseAccumulator, accumulator_memories, accumulator_weight_words
from snnfpga.rtl.decision import ArgmaxDecision, result_layout
from snnfpga.rtl.encoder import InputEncoder
from snnfpga.rtl.graph_plan import MAX_LANES, current_parts, current_sources
from snnfpga.rtl.neuron import GlifEngine, Layout, LifEngine, Source
from snnfpga.rtl.plan import PIXELS_PER_BEAT, WEIGHT_STORAGE, StreamInterface, bits_for
from snnfpga.rtl.scatter import RAMPED, ScatterSpec, line_bias, scatter_spec, weight_rows
from snnfpga.rtl.tokens import (count_score, lane, leak, monitor_signature, route_weight_load, saturate,
                                weight_port_signature)
from snnfpga.rtl.ttfs_engine import TtfsEngine, ttfs_memories
from snnfpga.rtl.top import count_images, counters_signature


DEFAULT_LANES = 8  # lanes of the graph accelerator unless the user says otherwise


@dataclass(frozen=True)
class LifHw:
    """A ``lif`` node's engine parameters: its layout and the buffers it sums."""

    layout: Layout
    sources: tuple[tuple[str, int, int], ...]  # (synapse, first group, groups)


@dataclass(frozen=True)
class GraphTopPlan(StreamInterface):
    """The parameters of a graph accelerator (what the encoder and the decision read), and
    per node what it becomes: ``specs`` (synapses), ``lifs``, ``glifs`` (node -> its buffer),
    ``ttfs`` (node -> its input's window; the node's synapse half is in ``specs`` too)."""

    artifact: Artifact
    lanes: int
    pixels_per_beat: int
    specs: dict
    lifs: dict
    glifs: dict
    node_lanes: dict  # lanes of every synapse, lif, glif and ttfs engine
    ttfs: dict = field(default_factory=dict)
    weight_storage: str = "rom"  # rom: in the bitstream; ram: every synapse's weights loaded at run time

    @property
    def weight_nodes(self) -> tuple[str, ...]:
        """The synapses (each one weight memory), in node order: ``WEIGHT_ADDR.LAYER`` indexes them."""
        return tuple(self.specs)

    @property
    def weight_memory_count(self) -> int:
        """Weight memories a run-time load fills (0 with ROM weights)."""
        return len(self.specs) if self.weight_storage == "ram" else 0

    def weight_shape(self, name: str) -> tuple[int, int]:
        """``(depth, width)`` of synapse ``name``'s weight memory."""
        node = self.artifact.graph.node(name)
        return accumulator_memories(self.specs[name], self.node_lanes[name], node.weight_bits, 1)["weights"]

    def weight_contents(self) -> list[list[int]]:
        """The words of every synapse's weight memory, in :attr:`weight_nodes` order."""
        graph = self.artifact.graph
        return [accumulator_weight_words(weight_rows(graph.node(name)), self.specs[name], self.node_lanes[name],
                                         graph.node(name).weight_bits) for name in self.weight_nodes]

    @property
    def weight_addr_bits(self) -> int:
        """Address width of the ``weights`` load port (the deepest weight memory)."""
        return max(bits_for(self.weight_shape(name)[0]) for name in self.weight_nodes)

    @property
    def weight_data_bits(self) -> int:
        """Data width of the ``weights`` load port (the widest weight word); 0 with ROM
        weights (no load port)."""
        if self.weight_storage != "ram":
            return 0
        return max(self.weight_shape(name)[1] for name in self.weight_nodes)

    @property
    def score_bits(self) -> int:
        return self.artifact.graph.output.score_bits

    @property
    def head(self) -> str:
        """The buffer the scores add: the output's dense current, or a ``ttfs_output``'s own."""
        out = self.artifact.graph.output
        return out.name if out.name in self.specs else out.inputs[0]

    @property
    def stage_names(self) -> tuple[str, ...]:
        """``encoder``, then the spiking nodes in topological order (``mon0``, ``mon1``, ...)."""
        return ("encoder", *(n.name for n in self.artifact.spiking_nodes))

    @property
    def stage_sizes(self) -> tuple[int, ...]:
        types = self.artifact.graph.types
        return (self.artifact.n_inputs, *(int(np.prod(types[n.name].shape)) for n in self.artifact.spiking_nodes))

    def parameters(self) -> dict:
        return {"lanes": self.lanes, "pixels_per_beat": self.pixels_per_beat, "weight_storage": self.weight_storage,
                "timesteps": self.artifact.timesteps, "node_lanes": dict(self.node_lanes)}

    def accelerator(self):
        return GraphAccelerator(self)

    @property
    def cycle_model(self):
        from snnfpga.rtl import graph_cycles

        return graph_cycles

    @property
    def edges(self) -> dict[str, list[tuple[str, int, int]]]:
        """Producer (``input`` or a spiking node) -> the synapses its events reach, as
        ``(synapse, port, channel offset)`` in node order."""
        graph, out = self.artifact.graph, {}
        for node in graph.nodes:
            if node.name in self.specs:
                for port, src in enumerate(node.inputs):
                    for producer, offset in _producers(graph, src):
                        out.setdefault(producer, []).append((node.name, port, offset))
        return out

    def memories(self) -> list[tuple[str, str, int, int]]:
        """Every memory the accelerator builds, ``(owner, purpose, depth, width)``: the
        encoder's pixel coordinates, then per node its weights and buffer (a synapse), its
        state and thresholds (a ``lif``) or thresholds (a ``glif``); the engines build theirs
        from the same functions (what block RAM the design needs: rtl/graph_fold.py)."""
        from snnfpga.rtl.neuron import glif_memories, lif_memories

        graph = self.artifact.graph
        h, w = graph.source.shape[1:]
        out = [("encoder", "pixel_coords", h * w, bits_for(h) + bits_for(w))]
        for node in graph.nodes:
            name, lanes = node.name, self.node_lanes.get(node.name)
            if name in self.specs:
                mems = accumulator_memories(self.specs[name], lanes, node.weight_bits, self.current_bits(name))
                if name in self.ttfs:
                    mems = {**mems, **ttfs_memories(node, lanes)}
            elif name in self.lifs:
                mems = lif_memories(node, self.lifs[name].layout, lanes)
            elif name in self.glifs:
                mems = glif_memories(node, graph.types[name].shape, lanes)
            else:
                continue
            out += [(name, purpose, depth, width) for purpose, (depth, width) in mems.items()]
        return out

    def current_bits(self, name: str) -> int:
        """Width of a synapse's current buffer: its proven output range (sums never wrap); a
        TTFS kind's buffer holds one step's current, inside its proven slope range."""
        registers = self.artifact.graph.proofs[name].registers
        return signed_bits(*registers["slope" if self.artifact.graph.node(name).KIND in RAMPED else "output"])

    def groups(self, name: str) -> int:
        """Words per line of a synapse's buffer or a neuron engine's state (``ceil(L / P_n)``)."""
        if name in self.specs:
            length = self.specs[name].line_length
        elif name in self.lifs:
            length = self.lifs[name].layout.line_length
        else:
            length = self.artifact.graph.types[name].shape[0]
        return -(-length // self.node_lanes[name])


def make_graph_top_plan(art: Artifact, lanes: int = DEFAULT_LANES, pixels_per_beat: int = 4,
                        weight_storage: str = "rom", lane_caps: dict | None = None) -> GraphTopPlan:
    """Check that the graph maps onto the generator and derive every engine's parameters;
    :class:`MappingError` naming the node and the limit otherwise (before any elaboration).
    ``weight_storage``: ``rom`` (weights in the bitstream) or ``ram`` (every synapse's weight
    memory written at run time through the ``weights`` port: iCE40 SPRAM). ``lanes``: the most
    lanes of any engine; ``lane_caps``: ``{engine: lanes}`` that replaces it for the engines
    named (the fold of :func:`snnfpga.rtl.graph_fold.fold_lanes`; engines that must share a
    lane count take the largest cap named among them)."""
    if weight_storage not in WEIGHT_STORAGE:
        raise MappingError(f"weight storage must be one of {', '.join(WEIGHT_STORAGE)}, got {weight_storage!r}")
    if not isinstance(lanes, int) or not 1 <= lanes <= MAX_LANES:
        raise MappingError(f"lanes must be an integer in 1..{MAX_LANES}, got {lanes!r}")
    caps = dict(lane_caps or {})
    for name, cap in caps.items():
        if not isinstance(cap, int) or not 1 <= cap <= MAX_LANES:
            raise MappingError(f"lanes of {name} must be an integer in 1..{MAX_LANES}, got {cap!r}")
    if pixels_per_beat not in PIXELS_PER_BEAT:
        raise MappingError(f"pixels per beat must be one of {PIXELS_PER_BEAT}, got {pixels_per_beat!r}")
    graph = art.graph
    specs = {n.name: synapse_spec(graph, n) for n in graph.nodes if isinstance(n, Synapse) or n.KIND in RAMPED}
    node_lanes = _lanes_per_node(graph, specs, lanes, caps)
    unknown = sorted(set(caps) - set(node_lanes))
    if unknown:
        raise MappingError(f"lanes given for {unknown[0]}, which is not an engine of {art.name} "
                           f"(engines: synapse, lif, glif and ttfs nodes)")
    lifs, glifs, ttfs = {}, {}, {}
    for node in graph.nodes:
        if node.KIND == "lif":
            p = node_lanes[node.name]
            first = current_parts(graph, node)[0][0]
            kind = Layout.of_spec(specs[first])
            layout = Layout(kind.lane_axis, kind.outer, kind.inner, event_shape(graph, node.name))
            groups = -(-layout.line_length // min(p, layout.line_length))
            sources = tuple(current_sources(graph, node, p, groups))
            for src, _, _ in sources:
                if Layout.of_spec(specs[src]).lane_axis != layout.lane_axis:
                    raise MappingError(f"node {node.name}: sums currents laid out differently ({first}: lanes along "
                                       f"{layout.lane_axis}, {src}: along {Layout.of_spec(specs[src]).lane_axis})")
            lifs[node.name] = LifHw(layout, sources)
        elif node.KIND == "glif":
            (src,) = node.inputs
            if src not in specs or Layout.of_spec(specs[src]).lane_axis != "c":
                raise MappingError(f"node {node.name}: a glif must read a pointwise or conv current directly")
            glifs[node.name] = src
        elif node.KIND in ("output", "lif_output"):
            if len(node.inputs) != 1 or node.inputs[0] not in specs:
                raise MappingError(f"node {node.name}: the output must read one dense current")
        elif node.KIND == "ttfs":
            ttfs[node.name] = graph.input_types(node)[0].window
        elif node.KIND not in ("add", "concat", "pool", "flatten", "lif", "ttfs_output") \
                and not isinstance(node, Synapse):
            raise MappingError(f"node {node.name}: kind {node.KIND!r} has no hardware mapping")
    return GraphTopPlan(art, lanes, pixels_per_beat, specs, lifs, glifs, node_lanes, ttfs, weight_storage)


def _lanes_per_node(graph, specs: dict, lanes: int, caps: dict) -> dict:
    """Lanes of each engine. A neuron pass reads its current buffers word by word, so a LIF
    and every buffer it sums (and every other LIF reading those buffers) share one lane
    count: the largest ``p <= cap`` and ``<=`` each member's line length that divides every
    channel at which a concatenated current starts, where ``cap`` is the largest of
    ``caps`` naming a member, else ``lanes``. Others: ``min(cap, line length)``."""
    find = lane_group_of(graph)
    starts: dict[str, set] = {}
    lengths: dict[str, int] = {name: spec.line_length for name, spec in specs.items()}
    for node in graph.nodes:
        if node.KIND == "lif":
            parts = current_parts(graph, node)
            first = parts[0][0]
            kind = Layout.of_spec(specs[first])
            lengths[node.name] = Layout(kind.lane_axis, kind.outer, kind.inner,
                                        event_shape(graph, node.name)).line_length
            for src, offset, _ in parts:
                starts.setdefault(node.name, set()).add(offset)
        elif node.KIND == "glif":
            lengths[node.name] = graph.types[node.name].shape[0]
    members: dict[str, list[str]] = {}
    for name in lengths:
        members.setdefault(find(name), []).append(name)
    out = {}
    for group in members.values():
        offsets = set().union(*(starts.get(n, set()) for n in group))
        cap = max((caps[n] for n in group if n in caps), default=lanes)
        p = min(cap, *(lengths[n] for n in group))
        while any(o % p for o in offsets):
            p -= 1
        out.update({n: p for n in group})
    return out


def lane_group_of(graph):
    """``find(engine)``: the name of the lane group an engine belongs to, the engines that
    read one another word by word and so share one lane count: a LIF, every buffer it sums
    and every other LIF reading those; a GLIF and its buffer."""
    parent: dict[str, str] = {}

    def find(a):
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    for node in graph.nodes:
        if node.KIND == "lif":
            for src, _, _ in current_parts(graph, node):
                parent[find(src)] = find(node.name)
        elif node.KIND == "glif":
            parent[find(node.inputs[0])] = find(node.name)
    return find


def event_shape(graph, name: str) -> tuple[int, int, int]:
    """The map whose events reach a node reading ``name`` (through pool, flatten, concat)."""
    if name == "input":
        return graph.source.shape
    node = graph.node(name)
    if node.KIND in ("pool", "flatten"):
        return event_shape(graph, node.inputs[0])
    shape = graph.types[name].shape
    return shape if len(shape) == 3 else (shape[0], 1, 1)


def _dense_on_map(node, shape) -> ScatterSpec:
    """A dense node whose events come from a map: ``row = c*H*W + y*W + x`` (flatten)."""
    c, h, w = shape
    n_out = int(node.weight.shape[0])
    return ScatterSpec("dense", shape, (0,), c * h * w, 1, n_out, tuple((k * h * w, 0) for k in range(c)),
                       tuple(((y * w, 0),) for y in range(h)), tuple(((x, 0),) for x in range(w)), (n_out,))


def _dense_on_pool(node, shape) -> ScatterSpec:
    """A dense node reading a pool: every event of channel ``c`` adds row ``c``."""
    c, h, w = shape
    n_out = int(node.weight.shape[0])
    return ScatterSpec("dense", shape, (0,), c, 1, n_out, tuple((k, 0) for k in range(c)),
                       tuple(((0, 0),) for _ in range(h)), tuple(((0, 0),) for _ in range(w)), (n_out,))


def synapse_spec(graph, node) -> ScatterSpec:
    """The scatter spec of a synapse node as its events arrive (maps for a dense head)."""
    if node.KIND in ("dense", *RAMPED):
        src = node.inputs[0]
        kind = "input" if src == "input" else graph.node(src).KIND
        shape = event_shape(graph, src)
        if kind == "pool":
            return _dense_on_pool(node, shape)
        if shape[1:] != (1, 1):
            return _dense_on_map(node, shape)
    return scatter_spec(node, graph.input_types(node))


def _producers(graph, name: str, offset: int = 0) -> list[tuple[str, int]]:
    """The spiking nodes (or ``input``) whose events make up tensor ``name``, with the
    channel offset each one's events carry there (spike concat)."""
    if name == "input":
        return [("input", offset)]
    node = graph.node(name)
    if node.KIND == "concat":
        out = []
        for src in node.inputs:
            out += _producers(graph, src, offset)
            offset += graph.types[src].shape[0]
        return out
    if node.KIND in ("pool", "flatten"):
        return _producers(graph, node.inputs[0], offset)
    return [(name, offset)]


def graph_monitor_signature(shape: tuple[int, int, int], step_bits: int) -> wiring.Signature:
    """Debug view of one spiking node's events: ``valid`` strobes once per spike with its
    ``c``, ``y``, ``x`` and the ``step``; ``eos`` once per end of step."""
    c, h, w = shape
    return wiring.Signature({"valid": Out(1), "eos": Out(1), "c": Out(bits_for(c)), "y": Out(bits_for(h)),
                             "x": Out(bits_for(w)), "step": Out(step_bits)})


class GraphAccelerator(wiring.Component):
    """Members
    -------
    pixels : ``In(stream.Signature(8 * B))``
        Pixel beats, ``B`` pixels per beat (as the chain accelerator).
    result : ``Out(stream.Signature(result_layout))``
        Class and scores of each image, held until taken.
    soft_reset : ``In(1)``
        Synchronous reset of all state (abandons an image in flight).
    counters : ``Out(counters_signature)``
        Cycles and spikes per stage of the last image, images since reset (as the chain's).
    mon0 : ``Out(monitor_signature)``
        The encoder's spikes (pixel index) and ends of step.
    weights : ``In(weight_port_signature)`` (weight storage ``ram``)
        ``{layer, addr, data}`` writes into the synapses' weight memories, ``layer`` indexing
        ``plan.weight_nodes``; always ready (one write per cycle); only while no image is in
        flight. Words as :meth:`GraphTopPlan.weight_contents`.
    mon<k> : ``Out(graph_monitor_signature)``
        The events of the ``k``-th spiking node in topological order (``monitor_names``).

    ``engines``, ``accumulators``: the node components by name, for benches that watch
    every node's events (``engines[name].events``) and buffers.
    """

    def __init__(self, plan: GraphTopPlan):
        self.plan = plan
        art = plan.artifact
        self.graph = graph = art.graph
        self.accumulators: dict[str, SynapseAccumulator] = {}
        self.engines: dict[str, wiring.Component] = {}
        self.edges = plan.edges  # producer -> (synapse, port, channel offset)
        self._readers: dict[str, list[tuple[str, int]]] = {}  # synapse -> (engine, source index)
        self.output = graph.output
        for node in graph.nodes:
            if node.name in plan.specs:
                self.accumulators[node.name] = SynapseAccumulator(plan.specs[node.name], weight_rows(node),
                                                                  line_bias(node), plan.node_lanes[node.name],
                                                                  node.weight_bits, plan.current_bits(node.name),
                                                                  plan.weight_storage)
            elif node.name in plan.lifs:
                hw = plan.lifs[node.name]
                sources = []
                for k, (src, g0, n_groups) in enumerate(hw.sources):
                    sources.append(Source(groups=n_groups, bits=self.accumulators[src].current_bits, first_group=g0))
                    self._readers.setdefault(src, []).append((node.name, k))
                self.engines[node.name] = LifEngine(node, hw.layout, plan.node_lanes[node.name], sources,
                                                    art.timesteps)
            elif node.name in plan.glifs:
                src = plan.glifs[node.name]
                self.engines[node.name] = GlifEngine(node, graph.types[node.name].shape, plan.node_lanes[node.name],
                                                     self.accumulators[src].current_bits)
                self._readers.setdefault(src, []).append((node.name, 0))
            if node.name in plan.ttfs:  # the neuron half of a node whose accumulator is above
                self.engines[node.name] = TtfsEngine(node, plan.node_lanes[node.name],
                                                     self.accumulators[node.name].current_bits,
                                                     plan.ttfs[node.name], art.timesteps)
                self._readers.setdefault(node.name, []).append((node.name, 0))
        step_bits = bits_for(art.timesteps)
        members = {
            "pixels": In(stream.Signature(8 * plan.pixels_per_beat)),
            "result": Out(stream.Signature(result_layout(plan))),
            "soft_reset": In(1),
            "counters": Out(counters_signature(plan)),
            "mon0": Out(monitor_signature(bits_for(art.n_inputs), step_bits)),
        }
        if plan.weight_storage == "ram":
            members["weights"] = In(weight_port_signature(plan))
        for k, name in enumerate(self.engines, start=1):
            members[f"mon{k}"] = Out(graph_monitor_signature(event_shape(graph, name), step_bits))
        super().__init__(members)

    def elaborate(self, platform):
        plan, graph = self.plan, self.graph
        art, T = plan.artifact, plan.artifact.timesteps
        m = Module()
        m.submodules.encoder = enc = InputEncoder(plan)
        wiring.connect(m, wiring.flipped(self.pixels), enc.pixels)
        wiring.connect(m, enc.monitor, wiring.flipped(self.mon0))
        for index, (name, acc) in enumerate(self.accumulators.items()):
            m.submodules[f"acc_{name}"] = acc
            if plan.weight_storage == "ram":
                route_weight_load(m, self.weights, index, acc.load)
        for name, eng in self.engines.items():
            m.submodules[f"eng_{name}"] = eng

        # Pixel index -> (y, x): a ROM, one cycle, a one-entry output register.
        h, w = graph.source.shape[1:]
        coords = [y | (x << bits_for(h)) for y in range(h) for x in range(w)]
        m.submodules.pixel_coords = rom = Memory(shape=bits_for(h) + bits_for(w), depth=len(coords), init=coords)
        rom_rd = rom.read_port()
        px_valid, px_eos = Signal(), Signal()
        px_ready = Signal()
        enc_take = enc.spikes.valid & (~px_valid | px_ready)
        m.d.comb += [enc.spikes.ready.eq(~px_valid | px_ready), rom_rd.addr.eq(enc.spikes.payload.addr),
                     rom_rd.en.eq(enc_take)]
        with m.If(px_ready):
            m.d.sync += px_valid.eq(0)
        with m.If(enc_take):
            m.d.sync += [px_valid.eq(1), px_eos.eq(enc.spikes.payload.eos)]
        px_y, px_x = rom_rd.data[:bits_for(h)], rom_rd.data[bits_for(h):]

        # Event sources: the encoder and every neuron engine; "active" picks the one the
        # schedule runs.
        emitters = ["input"] + [n for n in self.engines]
        active = Signal(range(len(emitters) + 1))  # len(emitters): none
        src_valid = {"input": px_valid & ~px_eos}
        src_eos = {"input": px_valid & px_eos}
        src_c = {"input": 0}
        src_y = {"input": px_y}
        src_x = {"input": px_x}
        for name, eng in self.engines.items():
            ev = eng.events
            src_valid[name] = ev.valid & ~ev.payload.eos
            src_eos[name] = ev.valid & ev.payload.eos
            src_c[name], src_y[name], src_x[name] = ev.payload.c, ev.payload.y, ev.payload.x

        # Broadcast: each synapse input is a mux over its producers; the active producer's
        # event transfers when every consumer takes it in the same cycle.
        consumers = {p: [(s, port, off) for s, port, off in self.edges.get(p, [])] for p in emitters}
        all_ready = {}
        for p in emitters:
            readies = [self.accumulators[s].events.ready for s, _, _ in consumers[p]]
            ok = Signal(name=f"all_ready_{p.replace('.', '_')}")
            m.d.comb += ok.eq(Cat(*readies).all() if readies else 1)
            all_ready[p] = ok
        for s, acc in self.accumulators.items():
            ev = acc.events
            for k, p in enumerate(emitters):
                for s2, port, off in consumers[p]:
                    if s2 != s:
                        continue
                    others = [self.accumulators[o].events.ready for o, _, _ in consumers[p] if o != s]
                    with m.If(active == k):
                        m.d.comb += [ev.valid.eq(src_valid[p] & (Cat(*others).all() if others else 1)),
                                     ev.payload.c.eq(src_c[p] + off), ev.payload.y.eq(src_y[p]),
                                     ev.payload.x.eq(src_x[p]), ev.payload.port.eq(port)]
        for k, p in enumerate(emitters):
            take = (active == k) & (all_ready[p] | src_eos[p])
            if p == "input":
                m.d.comb += px_ready.eq(take)
            else:
                m.d.comb += self.engines[p].events.ready.eq(take)

        # Buffer read ports: a mux over the readers, chosen by the active engine.
        for s, acc in self.accumulators.items():
            for e, k in self._readers.get(s, []):
                eng = self.engines[e]
                with m.If((active == emitters.index(e)) & getattr(eng, f"src{k}_en", 1)):
                    m.d.comb += acc.read_addr.eq(getattr(eng, f"src{k}_addr"))
                m.d.comb += getattr(eng, f"src{k}_data").eq(acc.read_data)

        # Scores of the output node: ``score += I`` per step (its buffer holds the step's
        # current and bias); a ``ttfs_output`` ramps it: ``J += I; score += J``, from
        # ``score = D`` (its bias, added once).
        out = self.output
        head = self.accumulators[plan.head]
        n, sb = art.n_classes, out.score_bits
        ramped = out.KIND in RAMPED
        start = [int(b) for b in out.bias] if ramped else [0] * n
        spiking = out.KIND == "lif_output"
        if spiking:  # LIF neurons per class; the score is {count, ~v[M-1], v[M-2:0]}
            counts, membranes, fired_last = _spiking_output_state(out, n, T)
            scores = [Signal(signed(sb), name=f"score{j}") for j in range(n)]
            for j in range(n):
                m.d.comb += scores[j].eq(count_score(counts[j], membranes[j]))
        else:
            scores = [Signal(signed(sb), name=f"score{j}", init=start[j]) for j in range(n)]
        slopes = [Signal(signed(out.slope_bits), name=f"slope{j}") for j in range(n)] if ramped else []
        m.submodules.decision = decision = ArgmaxDecision(plan)
        wiring.connect(m, decision.result, wiring.flipped(self.result))
        for j in range(n):
            m.d.comb += decision.scores.payload[f"class{j}"].eq(scores[j])

        idle_all = Cat(*[a.idle for a in self.accumulators.values()]).all()
        eos_seen = Signal()
        step = Signal(range(max(2, T)))
        head_g = Signal(range(max(2, head.groups + 1)))
        head_rd_valid = Signal()
        head_rd_g = Signal.like(head_g)
        m.d.sync += head_rd_valid.eq(0)
        with m.If(head_rd_valid):
            for g in range(head.groups):
                with m.If(head_rd_g == g):
                    for p in range(head.lanes):
                        j = g * head.lanes + p
                        if j < n and spiking:
                            _spiking_output_step(m, out, j, lane(head.read_data, p, head.current_bits),
                                                 counts, membranes, fired_last)
                        elif j < n and ramped:
                            slope = slopes[j] + lane(head.read_data, p, head.current_bits)
                            m.d.sync += [slopes[j].eq(slope), scores[j].eq(scores[j] + slope)]
                        elif j < n:
                            m.d.sync += scores[j].eq(scores[j] + lane(head.read_data, p, head.current_bits))

        with m.FSM(name="schedule"):
            # After a reset (power-up or soft reset, which may abandon an image mid-way) the
            # memories hold whatever they held: every buffer back to its bias, every
            # membrane to 0, before the first image.
            with m.State("INIT"):
                m.d.comb += active.eq(len(emitters))
                for acc in self.accumulators.values():
                    m.d.comb += acc.clear.eq(1)
                for eng in self.engines.values():
                    if hasattr(eng, "zero"):
                        m.d.comb += eng.zero.eq(1)
                m.next = "INIT_WAIT"
            with m.State("INIT_WAIT"):
                m.d.comb += active.eq(len(emitters))
                with m.If(idle_all & ~Cat(*[e.busy for e in self.engines.values()]).any()):
                    m.next = "ENCODE"
            with m.State("ENCODE"):
                m.d.comb += active.eq(0)
                with m.If(px_valid & px_eos & px_ready):
                    m.next = "ENCODE_DRAIN"
            with m.State("ENCODE_DRAIN"):
                m.d.comb += active.eq(len(emitters))
                with m.If(idle_all):
                    m.next = f"START_{emitters[1]}" if len(emitters) > 1 else "SCORE"
            for k, e in enumerate(emitters[1:], start=1):
                eng = self.engines[e]
                following = f"START_{emitters[k + 1]}" if k + 1 < len(emitters) else "SCORE"
                with m.State(f"START_{e}"):
                    m.d.comb += [active.eq(k), eng.start.eq(1)]
                    m.d.sync += eos_seen.eq(0)
                    m.next = f"RUN_{e}"
                with m.State(f"RUN_{e}"):
                    # Done once its end-of-step token has left and every consumer is idle.
                    m.d.comb += active.eq(k)
                    with m.If(eng.events.valid & eng.events.ready & eng.events.payload.eos):
                        m.d.sync += eos_seen.eq(1)
                    with m.If(eos_seen & ~eng.busy & idle_all):
                        m.next = following
            with m.State("SCORE"):
                m.d.comb += [active.eq(len(emitters)), head.read_addr.eq(head_g)]
                m.d.sync += [head_rd_valid.eq(head_g < head.groups), head_rd_g.eq(head_g)]
                with m.If(head_g < head.groups):
                    m.d.sync += head_g.eq(head_g + 1)
                with m.Elif(~head_rd_valid):
                    m.d.sync += head_g.eq(0)
                    m.next = "CLEAR"
            with m.State("CLEAR"):
                m.d.comb += active.eq(len(emitters))
                for acc in self.accumulators.values():
                    m.d.comb += acc.clear.eq(1)
                m.next = "CLEAR_WAIT"
            with m.State("CLEAR_WAIT"):
                m.d.comb += active.eq(len(emitters))
                with m.If(idle_all):
                    with m.If(step == T - 1):
                        m.d.sync += step.eq(0)
                        m.next = "DECIDE"
                    with m.Else():
                        m.d.sync += step.eq(step + 1)
                        m.next = "ENCODE"
            with m.State("DECIDE"):
                # The decision holds the scores until its result is taken (scores.ready).
                m.d.comb += [active.eq(len(emitters)), decision.scores.valid.eq(1)]
                with m.If(decision.scores.ready):
                    if spiking:  # the next image starts from v = 0, no spikes
                        m.d.sync += [x.eq(0) for x in counts + membranes + fired_last]
                    else:
                        m.d.sync += [s.eq(s.init) for s in scores] + [j.eq(0) for j in slopes]
                    m.next = "ENCODE"
        for k, eng in enumerate(self.engines.values(), start=1):
            mon, ev = getattr(self, f"mon{k}"), eng.events
            transfer = ev.valid & ev.ready
            m.d.comb += [mon.valid.eq(transfer & ~ev.payload.eos), mon.eos.eq(transfer & ev.payload.eos),
                         mon.c.eq(ev.payload.c), mon.y.eq(ev.payload.y), mon.x.eq(ev.payload.x), mon.step.eq(step)]
        monitors = [getattr(self, f"mon{k}") for k in range(len(self.engines) + 1)]
        count_images(m, self.counters, enc, decision, monitors, T)
        return ResetInserter(self.soft_reset)(m)

    @property
    def monitor_names(self) -> list[str]:
        """What ``mon0``, ``mon1``, ... watch: ``input``, then the spiking nodes in order."""
        return ["input", *self.plan.stage_names[1:]]


def _spiking_output_state(out, n: int, T: int):
    """Registers of a ``lif_output`` head: per class a spike count (``0 .. T``), a membrane
    (``membrane_bits``) and, with reset ``subtract_next``, the last step's spike."""
    counts = [Signal(range(T + 1), name=f"count{j}") for j in range(n)]
    membranes = [Signal(signed(out.membrane_bits), name=f"v_out{j}") for j in range(n)]
    fired_last = [Signal(name=f"fired_out{j}") for j in range(n)] if out.reset == "subtract_next" else []
    return counts, membranes, fired_last


def _spiking_output_step(m, out, j: int, current, counts, membranes, fired_last) -> None:
    """Class ``j``'s step of a ``lif_output`` (the contract's lif): ``v' = sat(leak(v) + I
    [- theta s[t-1]])``, fire, reset; the count adds the spike."""
    mb = out.membrane_bits
    theta = int(np.broadcast_to(out.threshold, (len(counts),))[j])
    v = membranes[j]
    u = Signal(signed(max(mb, len(current)) + 3), name=f"u_out{j}")
    total = leak(v, out.leak_shift, out.leak_shift2) + current
    if fired_last:
        total = total - Mux(fired_last[j], theta, 0)
    m.d.comb += u.eq(total)
    held = Signal(signed(mb), name=f"v_sat_out{j}")
    fired = Signal(name=f"fire_out{j}")
    m.d.comb += [held.eq(saturate(u, mb)), fired.eq(held > theta if out.fire == ">" else held >= theta)]
    after = held if out.reset == "subtract_next" else Mux(fired, 0 if out.reset == "zero" else held - theta, held)
    m.d.sync += [v.eq(after), counts[j].eq(counts[j] + fired)]
    if fired_last:
        m.d.sync += fired_last[j].eq(fired)
