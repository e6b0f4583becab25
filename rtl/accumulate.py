"""The accumulate engine of one synapse node: events in, a current buffer out.

Every synapse kind (``dense``, ``pointwise``, ``axial``, ``conv``) is this one datapath; the
kind only decides the :class:`~snnfpga.rtl.scatter.ScatterSpec` in front of it and the
contents of its weight memory (:func:`~snnfpga.rtl.scatter.weight_rows`).

Memories (``P`` lanes, ``G = ceil(L / P)`` groups per line of ``L`` words):

* weights: word ``row*G + g`` holds the weights of lanes ``g*P .. g*P + P - 1`` of row
  ``row`` (``P x weight_bits``; lanes beyond ``L`` are zero): a ROM in the bitstream, or
  (weight storage ``ram``) a single-port RAM written at run time through ``load`` before
  the first image (:func:`~snnfpga.rtl.tokens.runtime_weight_memory`; iCE40 SPRAM);
* buffer: word ``line*G + g`` holds ``P`` currents of ``current_bits`` (the node's proven
  width, so sums never wrap); after ``clear`` every line holds the node's bias.

Pipeline: the scatter generator's tables are scaled by ``G`` (:meth:`ScatterSpec.scaled`),
so a row operation's word addresses are ``row + g`` and ``line + g``: one adder each, no
multiplier. Cycle ``c`` presents both addresses to the memories; cycle ``c+1`` adds the
``P`` weights to the ``P`` currents and writes them back. The buffer's read port is
transparent to its write port, so an operation on the word being written in the same cycle
reads the new value: back-to-back updates of one word are exact without forwarding.

Throughput: one group per cycle (``G`` cycles per row operation, rows of one event back to
back); ``clear``: ``lines x G`` cycles. Latency: two cycles from an operation's issue to its
write. ``idle`` is high when no event, row or write is in flight.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from snnfpga.rtl.scatter import ScatterGenerator, ScatterSpec, event_layout
from snnfpga.rtl.tokens import lane, pack, runtime_weight_memory, weight_load_signature


def buffer_words(values: np.ndarray, lanes: int, bits: int) -> list[int]:
    """``int [lines, L]`` to buffer words (``G`` per line, lane ``p`` at bits ``[p*b, (p+1)*b)``)."""
    lines, length = values.shape
    groups = -(-length // lanes)
    padded = np.zeros((lines, groups * lanes), dtype=np.int64)
    padded[:, :length] = values
    return [pack(padded[ln, g * lanes:(g + 1) * lanes], bits) for ln in range(lines) for g in range(groups)]


def accumulator_weight_words(rows: np.ndarray, spec: ScatterSpec, lanes: int, weight_bits: int) -> list[int]:
    """The weight memory's words (what a ROM holds or a run-time load writes), padded to its depth."""
    depth = accumulator_memories(spec, lanes, weight_bits, 1)["weights"][0]
    words = buffer_words(np.asarray(rows, dtype=np.int64), min(lanes, spec.line_length), weight_bits)
    return words + [0] * (depth - len(words))


def accumulator_memories(spec: ScatterSpec, lanes: int, weight_bits: int, current_bits: int) -> dict:
    """``{purpose: (depth, width)}`` of the memories of a :class:`SynapseAccumulator`."""
    p = min(lanes, spec.line_length)
    groups = -(-spec.line_length // p)
    return {"weights": (max(2, spec.rows * groups), p * weight_bits),
            "buffer": (max(2, spec.lines * groups), p * current_bits)}


class SynapseAccumulator(wiring.Component):
    """One synapse node's accumulate engine (see the module doc).

    Parameters: ``spec`` (unscaled), ``rows`` (``int [spec.rows, L]``, the weights of each
    row), ``bias`` (``int [L]``), ``lanes``, ``weight_bits``, ``current_bits``,
    ``weight_storage`` (``rom`` or ``ram``).

    Members
    -------
    events : ``In(stream.Signature(event_layout(spec)))``
    clear : ``In(1)``
        Strobe, only while ``idle``: set every buffer word to the bias (``lines x G``
        cycles, from the next cycle on; events wait meanwhile). The buffer starts cleared.
    idle : ``Out(1)``
        Nothing in flight (no event taken but not finished, no clear running).
    read_addr : ``In(range(lines * G))``, ``read_data`` : ``Out(P * current_bits)``
        The buffer's read port for its readers (data one cycle after the address), valid
        while no row is on offer: the readers (neuron passes, the scores) and the events
        never overlap in the schedule (a reader runs after its buffer's producers), so the
        updates and the readers share one port and a buffer is one true-dual-port memory
        (one write, one read), not two copies.
    load : ``In(weight_load_signature(depth, P x weight_bits))`` (weight storage ``ram``)
        One weight word per cycle, only while no image is in flight.
    """

    def __init__(self, spec: ScatterSpec, rows: np.ndarray, bias: np.ndarray, lanes: int,
                 weight_bits: int, current_bits: int, weight_storage: str = "rom"):
        length = spec.line_length
        self.lanes = min(lanes, length)
        self.groups = -(-length // self.lanes)
        self.spec = spec
        self._rows = np.asarray(rows, dtype=np.int64)
        self._bias = np.asarray(bias, dtype=np.int64)
        self.weight_bits, self.current_bits = weight_bits, current_bits
        self.depth = spec.lines * self.groups
        self.runtime_weights = weight_storage == "ram"
        members = {
            "events": In(stream.Signature(event_layout(spec))),
            "clear": In(1),
            "idle": Out(1),
            "read_addr": In(range(max(2, self.depth))),
            "read_data": Out(self.lanes * current_bits),
        }
        if self.runtime_weights:
            members["load"] = In(weight_load_signature(*self.memories["weights"]))
        super().__init__(members)

    @property
    def memories(self) -> dict[str, tuple[int, int]]:
        """``{purpose: (depth, width)}`` of the memories :meth:`elaborate` builds."""
        return accumulator_memories(self.spec, self.lanes, self.weight_bits, self.current_bits)

    def elaborate(self, platform):
        spec, P, G = self.spec, self.lanes, self.groups
        m = Module()
        m.submodules.scatter = scatter = ScatterGenerator(spec.scaled(G, G))
        wiring.connect(m, wiring.flipped(self.events), scatter.events)

        (w_depth, w_width), (b_depth, b_width) = self.memories["weights"], self.memories["buffer"]
        if self.runtime_weights:
            weight_addr = Signal(range(w_depth), name="weight_addr")
            weight_data = runtime_weight_memory(m, w_depth, w_width, self.load, weight_addr)
        else:
            m.submodules.weights = wmem = Memory(shape=w_width, depth=w_depth,
                                                 init=accumulator_weight_words(self._rows, spec, P, self.weight_bits))
            w_rd = wmem.read_port()
            weight_addr, weight_data = w_rd.addr, w_rd.data
        bias_words = buffer_words(self._bias[None, :], P, self.current_bits)  # one line: G words
        init = bias_words * spec.lines
        m.submodules.buffer = bmem = Memory(shape=b_width, depth=b_depth, init=init + [0] * (b_depth - len(init)))
        b_wr = bmem.write_port()
        b_rd = bmem.read_port(transparent_for=(b_wr,))  # one read port: the updates' and the readers'
        m.d.comb += self.read_data.eq(b_rd.data)

        # Issue (cycle c): one group of the current row operation, or one word of a clear.
        g = Signal(range(max(2, G)))
        g_last = Signal(init=int(G == 1))  # g == G - 1, registered: off the events' ready path
        issue = Signal()
        s1_valid = Signal()
        s1_addr = Signal.like(b_rd.addr)
        clearing = Signal()
        clear_addr = Signal(range(max(2, self.depth)))
        clear_group = Signal(range(max(2, G)))
        row = scatter.rows.payload
        m.d.comb += [
            weight_addr.eq(row.row + g),
            # A row on offer owns the read port; otherwise the readers' address goes through.
            b_rd.addr.eq(Mux(scatter.rows.valid, row.line + g, self.read_addr)),
            issue.eq(scatter.rows.valid & ~clearing),
            scatter.rows.ready.eq(issue & g_last),
        ]
        with m.If(issue):
            m.d.sync += [g.eq(g + 1), g_last.eq(g == max(G - 2, 0))]
            with m.If(g_last):
                m.d.sync += [g.eq(0), g_last.eq(G == 1)]
        m.d.sync += [s1_valid.eq(issue), s1_addr.eq(b_rd.addr)]

        # Write (cycle c+1): u + w per lane, or the bias of the word being cleared.
        total = Cat(*[(lane(b_rd.data, p, self.current_bits) + lane(weight_data, p, self.weight_bits))[:self.current_bits] for p in range(P)])
        bias_of_group = [Signal(P * self.current_bits, name=f"bias_group{k}") for k in range(G)]
        for k, word in enumerate(bias_words):
            m.d.comb += bias_of_group[k].eq(word)
        with m.If(clearing):
            m.d.comb += [b_wr.en.eq(1), b_wr.addr.eq(clear_addr)]
            with m.Switch(clear_group):
                for k in range(G):
                    with m.Case(k):
                        m.d.comb += b_wr.data.eq(bias_of_group[k])
            m.d.sync += [clear_addr.eq(clear_addr + 1), clear_group.eq(clear_group + 1)]
            with m.If(clear_group == G - 1):
                m.d.sync += clear_group.eq(0)
            with m.If(clear_addr == self.depth - 1):
                m.d.sync += [clearing.eq(0), clear_addr.eq(0), clear_group.eq(0)]
        with m.Elif(s1_valid):
            m.d.comb += [b_wr.en.eq(1), b_wr.addr.eq(s1_addr), b_wr.data.eq(total)]
        with m.If(self.clear):
            m.d.sync += clearing.eq(1)
        m.d.comb += self.idle.eq(~clearing & ~s1_valid & ~scatter.rows.valid & ~self.events.valid)
        return m
