"""The neuron engine of one ``lif`` node of a layer graph: currents in, spike events out.

State: one membrane word per ``(line, g)`` (``P`` lanes of ``membrane_bits``), laid out like
the current buffers it reads (:class:`Layout`). Once per step, on ``start`` (every input
buffer holds this step's currents), the **neuron pass** visits every word in address order,
one per cycle:

    I = sum of the sources' words (each source covers a range of groups: a concatenation of
        currents by channel);  v' = sat(v - (v >> k) [- (v >> k2)] + I);  spike = v' >= theta (> with fire ">");
    v = 0 | v' - theta after a spike, else v';  v = 0 after the last step (next image)
    (reset subtract_next, snnTorch's: v = v' and the spike is kept as one more bit per lane of
    the state word; the next step starts from leak(v) - theta where it is set)

exactly the contract's ``lif`` (docs/integer-contract.md). Each word's spike mask enters a
small FIFO; a serializer turns masks into events ``(c, y, x)``, one per cycle, and closes the
step with an end-of-step token. Coordinates come from counters of the scan (line axes) and
the lane (``g*P + p``, a running base): no multiplier, no divider.

Pipeline: the word's memories are read (issue), then the sources are summed and the
membrane leaked (stage 1, registered), then the two added (stage 2, registered), then
saturation, compare and reset are written back (stage 3) and the registered mask pushed
(stage 4). Throughput:
one word per cycle while the FIFO has room (it fills only when a step has more spikes than
the output takes); ``done`` strobes when the last word is written (the sources may be
cleared from the next cycle). Latency of a pass: ``lines x G + 4`` cycles plus the spikes
of its last words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from snnfpga.model.widths import signed_range
from snnfpga.rtl.plan import bits_for
from snnfpga.rtl.tokens import lane, leak, lowest_set_bit, pack, saturate, step_counter_next


@dataclass(frozen=True)
class Layout:
    """How a map ``(C, H, W)`` lies in memory: the lanes run along ``lane_axis``, a line is
    one value of the ``outer`` and ``inner`` axes (``line = outer * n_inner + inner``).
    ``("c", "y", "x")``: position-major, channels in the lanes (conv, pointwise, flat);
    ``("y", "c", "x")``: axial along H; ``("x", "c", "y")``: axial along W."""

    lane_axis: str
    outer: str
    inner: str
    shape: tuple[int, int, int]

    @property
    def sizes(self) -> dict[str, int]:
        return dict(zip("cyx", self.shape))

    @property
    def lines(self) -> int:
        return self.sizes[self.outer] * self.sizes[self.inner]

    @property
    def line_length(self) -> int:
        return self.sizes[self.lane_axis]

    def line_map(self) -> np.ndarray:
        """``int [lines, line_length]``: flat index (C, H, W order) of each word's lanes."""
        c, h, w = self.shape
        grid = np.arange(c * h * w).reshape(c, h, w)
        order = ["cyx".index(a) for a in (self.outer, self.inner, self.lane_axis)]
        return grid.transpose(order).reshape(self.lines, self.line_length)

    @staticmethod
    def of_spec(spec) -> "Layout":
        """The layout of a scatter spec's target (see rtl/scatter.py)."""
        shape = spec.out_shape if len(spec.out_shape) == 3 else (spec.out_shape[0], 1, 1)
        if spec.kind == "axial":
            return Layout("y", "c", "x", shape) if spec.axis == "h" else Layout("x", "c", "y", shape)
        return Layout("c", "y", "x", shape)


@dataclass(frozen=True)
class Source:
    """One current buffer a neuron pass reads: groups ``first_group .. first_group + groups - 1``
    of every line come from it (word ``line * groups + g - first_group``), ``bits`` per lane."""

    groups: int
    bits: int
    first_group: int = 0


def event_layout_of_shape(shape: tuple[int, int, int]) -> data.StructLayout:
    """A spike event of a map ``(C, H, W)``: ``c``, ``y``, ``x``, or the end of a step (``eos``)."""
    c, h, w = shape
    return data.StructLayout({"c": bits_for(c), "y": bits_for(h), "x": bits_for(w), "eos": 1})


def event_layout_of(layout: Layout) -> data.StructLayout:
    return event_layout_of_shape(layout.shape)


def threshold_words(threshold: np.ndarray, layout: Layout, lanes: int, bits: int) -> tuple[list[int], bool]:
    """Threshold words and whether they differ between lines (then one per ``(line, g)``,
    else one per ``g``). Padding lanes get the largest threshold (they never fire: their
    current is 0 and their membrane stays 0)."""
    th = np.asarray(threshold, np.int64)
    th = th.reshape(th.shape + (1,) * (3 - th.ndim))  # a flat tensor's (n,) lies as (n, 1, 1)
    full = np.broadcast_to(th, layout.shape).reshape(-1)[layout.line_map()]
    groups = -(-layout.line_length // lanes)
    padded = np.full((layout.lines, groups * lanes), (1 << (bits - 1)) - 1, np.int64)
    padded[:, :layout.line_length] = full
    per_line = bool((padded != padded[:1]).any())
    rows = padded if per_line else padded[:1]
    return [pack(r[g * lanes:(g + 1) * lanes], bits) for r in rows for g in range(groups)], per_line


def lif_memories(node, layout: Layout, lanes: int) -> dict:
    """``{purpose: (depth, width)}`` of the memories of a :class:`LifEngine`."""
    p = min(lanes, layout.line_length)
    groups = -(-layout.line_length // p)
    th_words, _ = threshold_words(node.threshold, layout, p, node.threshold_bits)
    spike_bit = int(node.reset == "subtract_next")  # the last step's spike, subtracted after the leak
    return {"state": (max(2, layout.lines * groups), p * (node.membrane_bits + spike_bit)),
            "thresholds": (max(2, len(th_words)), p * node.threshold_bits)}


def glif_memories(node, shape: tuple[int, int, int], lanes: int) -> dict:
    """``{purpose: (depth, width)}`` of the memories of a :class:`GlifEngine`."""
    p = min(lanes, shape[0])
    th_words, _ = threshold_words(node.threshold, Layout("c", "y", "x", shape), p, node.threshold_bits)
    return {"thresholds": (max(2, len(th_words)), p * node.threshold_bits)}


def zero_words(m: Module, strobe, write_port, depth: int) -> Signal:
    """Zeroing after a reset (``strobe`` while no pass runs): every word of a state memory
    to 0 through ``write_port``, one per cycle (``depth`` cycles). Returns the busy flag."""
    zeroing = Signal()
    addr = Signal(range(max(2, depth)), name="zero_addr")
    with m.If(strobe):
        m.d.sync += [zeroing.eq(1), addr.eq(0)]
    with m.If(zeroing):
        m.d.comb += [write_port.en.eq(1), write_port.addr.eq(addr), write_port.data.eq(0)]
        m.d.sync += addr.eq(addr + 1)
        with m.If(addr == depth - 1):
            m.d.sync += zeroing.eq(0)
    return zeroing


class SpikeSerializer(wiring.Component):
    """Spike masks in, events out: a FIFO of ``DEPTH`` masks, then one event per cycle in
    lane order and an end-of-step token after an entry marked ``eos``.

    ``axes = (lane axis, a, b)``: an entry's mask holds lanes ``base .. base + P - 1`` of the
    lane axis at coordinates ``a``, ``b`` of the other two. Push only while ``level`` (the
    entries held) leaves room; ``busy`` while any entry is held.
    """

    DEPTH = 4

    def __init__(self, shape: tuple[int, int, int], lanes: int, axes: tuple[str, str, str], depth: int = DEPTH):
        self.DEPTH = depth  # entries (the default, or one per extra pipeline stage of the pass)
        sizes = dict(zip("cyx", shape))
        self._lanes, self._axes = lanes, axes
        self.entry = data.StructLayout({"mask": lanes, "base": bits_for(sizes[axes[0]] + lanes),
                                        "a": bits_for(sizes[axes[1]]), "b": bits_for(sizes[axes[2]]), "eos": 1})
        super().__init__({"push": In(1), "push_data": In(self.entry), "level": Out(range(self.DEPTH + 1)),
                          "busy": Out(1), "events": Out(stream.Signature(event_layout_of_shape(shape)))})

    def elaborate(self, platform):
        m = Module()
        P = self._lanes
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self.entry.size, depth=self.DEPTH)
        # busy from the write-side level: a pushed entry reaches the read side a cycle later.
        m.d.comb += [fifo.w_en.eq(self.push), fifo.w_data.eq(self.push_data), self.level.eq(fifo.w_level),
                     self.busy.eq((fifo.w_level != 0) | fifo.r_rdy)]
        head = data.View(self.entry, fifo.r_data)
        consumed = Signal(P)
        remaining = Signal(P)
        m.d.comb += remaining.eq(head.mask & ~consumed)
        low = lowest_set_bit(m, remaining, "low")
        ev = self.events.payload
        lane_axis, a, b = self._axes
        coords = {lane_axis: head.base + low, a: head.a, b: head.b}
        m.d.comb += [ev.c.eq(coords["c"]), ev.y.eq(coords["y"]), ev.x.eq(coords["x"])]
        with m.If(fifo.r_rdy):
            with m.If(remaining != 0):
                m.d.comb += self.events.valid.eq(1)
                with m.If(self.events.ready):
                    rest = remaining & (remaining - 1)
                    m.d.sync += consumed.eq(consumed | (remaining ^ rest))
                    with m.If((rest == 0) & ~head.eos):
                        m.d.comb += fifo.r_en.eq(1)
                        m.d.sync += consumed.eq(0)
            with m.Elif(head.eos):
                m.d.comb += [self.events.valid.eq(1), ev.eos.eq(1)]
                with m.If(self.events.ready):
                    m.d.comb += fifo.r_en.eq(1)
                    m.d.sync += consumed.eq(0)
            with m.Else():
                m.d.comb += fifo.r_en.eq(1)  # never pushed: masks are pushed non-empty or with eos
                m.d.sync += consumed.eq(0)
        return m


class LifEngine(wiring.Component):
    """One ``lif`` node (see the module doc).

    Members
    -------
    start : ``In(1)``
        Strobe: run this step's neuron pass (only while ``busy`` is low).
    zero : ``In(1)``
        Strobe, only while ``busy`` is low: set every membrane to 0 (``lines x G`` cycles;
        after a reset, which may have abandoned an image mid-way).
    busy : ``Out(1)``
        A pass, its spikes or a zeroing is still running.
    done : ``Out(1)``
        Strobes when the pass has read every source word.
    src<k>_addr : ``Out(range)``, src<k>_en : ``Out(1)``, src<k>_data : ``In(P * bits)``
        Source ``k``'s read port (data one cycle after the address); ``en`` says the word
        being issued lies in its groups (two sources in one buffer share its read port).
    events : ``Out(stream.Signature(event_layout_of(layout)))``
        Spikes ``(c, y, x)`` of the step in scan order, then ``eos``.
    """

    def __init__(self, node, layout: Layout, lanes: int, sources: list[Source], timesteps: int):
        self._node = node
        self.layout = layout
        self.lanes = min(lanes, layout.line_length)
        self.groups = -(-layout.line_length // self.lanes)
        self._sources = sources
        self._T = timesteps
        P, mb = self.lanes, node.membrane_bits
        members = {"start": In(1), "zero": In(1), "busy": Out(1), "done": Out(1),
                   "events": Out(stream.Signature(event_layout_of(layout)))}
        for k, s in enumerate(sources):
            members[f"src{k}_addr"] = Out(range(max(2, layout.lines * s.groups)))
            members[f"src{k}_en"] = Out(1)  # the word being issued lies in this source's groups
            members[f"src{k}_data"] = In(P * s.bits)
        self._mb = mb
        super().__init__(members)

    @property
    def memories(self) -> dict[str, tuple[int, int]]:
        """``{purpose: (depth, width)}`` of the memories :meth:`elaborate` builds."""
        return lif_memories(self._node, self.layout, self.lanes)

    def elaborate(self, platform):
        node, lay, P, G, T = self._node, self.layout, self.lanes, self.groups, self._T
        mb, tb = self._mb, node.threshold_bits
        lo, hi = signed_range(mb)
        m = Module()
        depth = lay.lines * G
        memories = self.memories
        m.submodules.state = vmem = Memory(shape=memories["state"][1], depth=memories["state"][0], init=[])
        v_wr = vmem.write_port()
        v_rd = vmem.read_port(transparent_for=(v_wr,))
        th_words, per_line = threshold_words(node.threshold, lay, P, tb)
        th_depth, th_width = memories["thresholds"]
        m.submodules.thresholds = tmem = Memory(shape=th_width, depth=th_depth,
                                                init=th_words + [0] * (th_depth - len(th_words)))
        t_rd = tmem.read_port()

        # ---- issue: address, group, line counters --------------------------------------
        running = Signal()
        addr = Signal(range(max(2, depth)))
        g = Signal(range(max(2, G)))
        base = Signal(range(G * P + 1))  # g * P
        sizes = lay.sizes
        outer = Signal(range(max(2, sizes[lay.outer])))
        inner = Signal(range(max(2, sizes[lay.inner])))
        step = Signal(range(max(2, T)))
        last_word = addr == depth - 1
        src_bases = [Signal(range(max(2, lay.lines * s.groups + 1)), name=f"src{k}_base")
                     for k, s in enumerate(self._sources)]

        # Three more FIFO entries than the scan engines: the pass has four stages in flight.
        m.submodules.out = out = SpikeSerializer(lay.shape, P, (lay.lane_axis, lay.outer, lay.inner),
                                                 depth=SpikeSerializer.DEPTH + 3)
        wiring.connect(m, out.events, wiring.flipped(self.events))
        s1_valid = Signal()
        s2_valid = Signal()
        s3_valid = Signal()
        s4_valid = Signal()
        room = (out.level + s1_valid + s2_valid + s3_valid + s4_valid) < out.DEPTH
        issue = running & room
        m.d.comb += [v_rd.addr.eq(addr), t_rd.addr.eq(addr if per_line else g)]
        for k, s in enumerate(self._sources):
            m.d.comb += [getattr(self, f"src{k}_addr").eq(src_bases[k] + (g - s.first_group)),
                         getattr(self, f"src{k}_en").eq((g >= s.first_group) & (g < s.first_group + s.groups))]

        with m.If(self.start & ~running):
            m.d.sync += [running.eq(1), addr.eq(0), g.eq(0), base.eq(0), outer.eq(0), inner.eq(0)]
            m.d.sync += [b.eq(0) for b in src_bases]
        with m.If(issue):
            m.d.sync += addr.eq(addr + 1)
            with m.If(g == G - 1):
                m.d.sync += [g.eq(0), base.eq(0)]
                for k, s in enumerate(self._sources):
                    m.d.sync += src_bases[k].eq(src_bases[k] + s.groups)
                with m.If(inner == sizes[lay.inner] - 1):
                    m.d.sync += [inner.eq(0), outer.eq(outer + 1)]
                with m.Else():
                    m.d.sync += inner.eq(inner + 1)
            with m.Else():
                m.d.sync += [g.eq(g + 1), base.eq(base + P)]
            with m.If(last_word):
                m.d.sync += running.eq(0)

        # ---- stage 1: the update, written back; the mask into the FIFO -------------------
        s1_addr = Signal.like(addr)
        s1_g = Signal.like(g)
        s1_base, s1_outer, s1_inner = Signal.like(base), Signal.like(outer), Signal.like(inner)
        s1_last = Signal()
        s1_in_src = [Signal(name=f"s1_in_src{k}") for k in range(len(self._sources))]
        m.d.sync += [s1_valid.eq(issue), s1_addr.eq(addr), s1_g.eq(g), s1_base.eq(base), s1_outer.eq(outer),
                     s1_inner.eq(inner), s1_last.eq(issue & last_word)]
        for k, s in enumerate(self._sources):
            m.d.sync += s1_in_src[k].eq((g >= s.first_group) & (g < s.first_group + s.groups))
        # Stage 1 adds the sources' currents and leaks the membrane (registered into stage 2);
        # stage 2 adds the two (registered into stage 3); stage 3 saturates, compares, resets
        # and writes back; stage 4 pushes the registered mask. Four stages keep the update off
        # one long path (the buffers' read ports to the FIFO). A pass reads every word once,
        # so no word is read while an update of it is in flight.
        k_leak = node.leak_shift
        u_shape = signed(max(mb + 1, max(s.bits for s in self._sources) + bits_for(len(self._sources))) + 2)
        s2_last = Signal()
        s2_addr, s2_g = Signal.like(s1_addr), Signal.like(s1_g)
        s2_base, s2_outer, s2_inner = Signal.like(s1_base), Signal.like(s1_outer), Signal.like(s1_inner)
        s2_theta = Signal.like(t_rd.data)
        m.d.sync += [s2_valid.eq(s1_valid), s2_last.eq(s1_last), s2_addr.eq(s1_addr), s2_g.eq(s1_g),
                     s2_base.eq(s1_base), s2_outer.eq(s1_outer), s2_inner.eq(s1_inner), s2_theta.eq(t_rd.data)]
        s3_last = Signal()
        s3_addr, s3_g = Signal.like(s2_addr), Signal.like(s2_g)
        s3_base, s3_outer, s3_inner = Signal.like(s2_base), Signal.like(s2_outer), Signal.like(s2_inner)
        s3_theta = Signal.like(s2_theta)
        m.d.sync += [s3_valid.eq(s2_valid), s3_last.eq(s2_last), s3_addr.eq(s2_addr), s3_g.eq(s2_g),
                     s3_base.eq(s2_base), s3_outer.eq(s2_outer), s3_inner.eq(s2_inner), s3_theta.eq(s2_theta)]
        last_step = step == T - 1
        new_words, spikes = [], []
        subtract_next = node.reset == "subtract_next"  # snnTorch's: theta subtracted in the next step
        for p in range(P):
            v = lane(v_rd.data, p, mb)
            current = Signal(u_shape, name=f"current{p}")
            # leak(v) fits mb + 1 bits; leak(v) - theta (subtract_next) one more
            leaked = Signal(signed(mb + 1 + subtract_next), name=f"leaked{p}")
            start = leak(v, k_leak, node.leak_shift2)
            if subtract_next:  # the spike bit of the last step sits above the P membranes
                start = start - Mux(v_rd.data[P * mb + p], lane(t_rd.data, p, tb), 0)
            m.d.sync += [current.eq(sum((Mux(s1_in_src[k], lane(getattr(self, f"src{k}_data"), p, s.bits), 0)
                                         for k, s in enumerate(self._sources)), Const(0, signed(2)))),
                         leaked.eq(start)]
            u = Signal(u_shape, name=f"u{p}")
            vs = Signal(signed(mb), name=f"v_sat{p}")
            theta = lane(s3_theta, p, tb)
            fired = Signal(name=f"fired{p}")
            m.d.sync += u.eq(leaked + current)
            m.d.comb += [vs.eq(saturate(u, mb)), fired.eq(vs > theta if node.fire == ">" else vs >= theta)]
            after = vs if subtract_next else Mux(fired, 0 if node.reset == "zero" else vs - theta, vs)
            new = Signal(signed(mb), name=f"v_new{p}")
            m.d.comb += new.eq(Mux(last_step, 0, after))
            new_words.append(new)
            spikes.append(fired)
        tail = lay.line_length - (G - 1) * P  # lanes of the last group that hold neurons
        mask = Signal(P)
        m.d.comb += mask.eq(Cat(*spikes) & Mux(s3_g == G - 1, (1 << tail) - 1, (1 << P) - 1))
        stored = new_words + ([Mux(last_step, 0, f) for f in spikes] if subtract_next else [])
        m.d.comb += [v_wr.en.eq(s3_valid), v_wr.addr.eq(s3_addr), v_wr.data.eq(Cat(*stored))]
        s4_mask, s4_last = Signal.like(mask), Signal()
        s4_base, s4_outer, s4_inner = Signal.like(s3_base), Signal.like(s3_outer), Signal.like(s3_inner)
        m.d.sync += [s4_valid.eq(s3_valid), s4_mask.eq(mask), s4_last.eq(s3_last), s4_base.eq(s3_base),
                     s4_outer.eq(s3_outer), s4_inner.eq(s3_inner)]
        zeroing = zero_words(m, self.zero & ~running, v_wr, depth)
        w = out.push_data
        m.d.comb += [w.mask.eq(s4_mask), w.base.eq(s4_base), w.a.eq(s4_outer), w.b.eq(s4_inner), w.eos.eq(s4_last),
                     out.push.eq(s4_valid & ((s4_mask != 0) | s4_last)), self.done.eq(s3_last)]
        with m.If(s3_last):
            m.d.sync += step.eq(step_counter_next(step, T))

        m.d.comb += self.busy.eq(running | s1_valid | s2_valid | s3_valid | s4_valid | out.busy | zeroing)
        return m


class GlifEngine(wiring.Component):
    """One ``glif`` node (SNN-MLP's group LIF, binary): a scan, no weights, no state across steps.

    The input current buffer is position-major (lanes along channels, ``G`` groups per
    position). On ``start`` the pass reads it along the node's axis: for ``axis = "w"`` rows
    ``y`` outer, positions ``x`` inner; for ``"h"`` columns outer, ``y`` inner; groups
    innermost. Word address ``y*W*G + x*G + g`` is a sum of two running bases and ``g``.
    Per lane and position, with one carry register per ``(g, lane)``::

        c = 0 at a group start, else carry;  u = (c >> k) + I;  spike = u > theta;
        carry = 0 after a spike, else u

    (``u`` in ``state_bits``, which the proof says never overflows). Spikes leave through a
    :class:`SpikeSerializer`; ``done`` strobes when the last word has been read. One word
    per cycle: a pass takes ``H x W x G + 2`` cycles plus the spikes of its last words.
    """

    def __init__(self, node, shape: tuple[int, int, int], lanes: int, source_bits: int):
        self._node = node
        self.shape = shape
        self.lanes = min(lanes, shape[0])
        self.groups = -(-shape[0] // self.lanes)
        self._bits = source_bits
        depth = shape[1] * shape[2] * self.groups
        super().__init__({"start": In(1), "busy": Out(1), "done": Out(1),
                          "src0_addr": Out(range(max(2, depth))), "src0_data": In(self.lanes * source_bits),
                          "events": Out(stream.Signature(event_layout_of_shape(shape)))})

    @property
    def memories(self) -> dict[str, tuple[int, int]]:
        """``{purpose: (depth, width)}`` of the memories :meth:`elaborate` builds."""
        return glif_memories(self._node, self.shape, self.lanes)

    def elaborate(self, platform):
        from snnfpga.model.kinds.glif import group_starts
        from snnfpga.rtl.scatter import lookup

        node, P, G = self._node, self.lanes, self.groups
        c_n, h, w = self.shape
        sb, tb, k = node.state_bits, node.threshold_bits, node.leak_shift
        m = Module()
        layout = Layout("c", "y", "x", self.shape)
        th_words, per_line = threshold_words(node.threshold, layout, P, tb)
        th_depth, th_width = self.memories["thresholds"]
        m.submodules.thresholds = tmem = Memory(shape=th_width, depth=th_depth,
                                                init=th_words + [0] * (th_depth - len(th_words)))
        t_rd = tmem.read_port()
        m.submodules.out = out = SpikeSerializer(self.shape, P, ("c", "y", "x"))
        wiring.connect(m, out.events, wiring.flipped(self.events))

        along_h = node.axis == "h"
        n_outer, n_inner = (w, h) if along_h else (h, w)
        running = Signal()
        outer = Signal(range(max(2, n_outer)))
        inner = Signal(range(max(2, n_inner)))
        g = Signal(range(max(2, G)))
        base = Signal(range(G * P + 1))
        row_base = Signal(range(h * w * G + 1))  # y * W * G
        col_base = Signal(range(w * G + 1))  # x * G
        inner_step, outer_step = (w * G, G) if along_h else (G, w * G)
        inner_base, outer_base = (row_base, col_base) if along_h else (col_base, row_base)
        addr = Signal.like(self.src0_addr)
        m.d.comb += [addr.eq(row_base + col_base + g), self.src0_addr.eq(addr),
                     t_rd.addr.eq(addr if per_line else g)]
        last_word = (outer == n_outer - 1) & (inner == n_inner - 1) & (g == G - 1)
        s1_valid = Signal()
        issue = running & ((out.level + s1_valid) < out.DEPTH)
        with m.If(self.start & ~running):
            m.d.sync += [running.eq(1), outer.eq(0), inner.eq(0), g.eq(0), base.eq(0), row_base.eq(0),
                         col_base.eq(0)]
        with m.If(issue):
            with m.If(g == G - 1):
                m.d.sync += [g.eq(0), base.eq(0)]
                with m.If(inner == n_inner - 1):
                    m.d.sync += [inner.eq(0), inner_base.eq(0), outer.eq(outer + 1),
                                 outer_base.eq(outer_base + outer_step)]
                with m.Else():
                    m.d.sync += [inner.eq(inner + 1), inner_base.eq(inner_base + inner_step)]
            with m.Else():
                m.d.sync += [g.eq(g + 1), base.eq(base + P)]
            with m.If(last_word):
                m.d.sync += running.eq(0)

        s1_g, s1_base = Signal.like(g), Signal.like(base)
        s1_outer, s1_inner = Signal.like(outer), Signal.like(inner)
        s1_start = Signal()
        s1_last = Signal()
        starts = [int(v) for v in group_starts(n_inner, node.group)]
        m.d.sync += [s1_valid.eq(issue), s1_g.eq(g), s1_base.eq(base), s1_outer.eq(outer), s1_inner.eq(inner),
                     s1_start.eq(lookup(starts, inner, 1)), s1_last.eq(issue & last_word)]
        carries = [Array(Signal(signed(sb), name=f"carry_g{q}_p{p}") for q in range(G)) for p in range(P)]
        spikes = []
        for p in range(P):
            current = lane(self.src0_data, p, self._bits)
            carry = Mux(s1_start, 0, carries[p][s1_g])
            u = Signal(signed(sb), name=f"u{p}")
            fired = Signal(name=f"fired{p}")
            m.d.comb += [u.eq((carry >> k) + current), fired.eq(u > lane(t_rd.data, p, tb))]
            with m.If(s1_valid):
                m.d.sync += carries[p][s1_g].eq(Mux(fired, 0, u))
            spikes.append(fired)
        tail = c_n - (G - 1) * P
        mask = Signal(P)
        m.d.comb += mask.eq(Cat(*spikes) & Mux(s1_g == G - 1, (1 << tail) - 1, (1 << P) - 1))
        y, x = (s1_inner, s1_outer) if along_h else (s1_outer, s1_inner)
        d = out.push_data
        m.d.comb += [d.mask.eq(mask), d.base.eq(s1_base), d.a.eq(y), d.b.eq(x), d.eos.eq(s1_last),
                     out.push.eq(s1_valid & ((mask != 0) | s1_last)), self.done.eq(s1_last),
                     self.busy.eq(running | s1_valid | out.busy)]
        return m
