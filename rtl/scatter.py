"""Event scatter: the address generator that turns one input event into row operations.

Every synaptic node kind is the same datapath in hardware: read one *row* of weights, ``P``
at a time, and add it into a run of consecutive words (a *line*) of the target, a current
buffer or membranes. What differs between kinds is only which rows one input event
touches and which lines they land on. This module owns that, once per kind, as tables
(docs/hardware.md, "Layer graphs"):

=========  =====================================  ============================  ============
kind       event ``(c, y, x)`` of input ``k``      rows ``(weight row, line)``   line length
=========  =====================================  ============================  ============
dense      flat index ``c``                        ``(c, 0)``                    ``n_out``
pointwise  channel ``c`` of input ``k``            ``(c + off[k], y*W + x)``     ``C_out``
axial h    ``(c, y, x)``                           ``(y, c*W + x)``              ``H``
axial w    ``(c, y, x)``                           ``(x, c*H + y)``              ``W``
conv       ``(c, y, x)``, every valid tap          ``((c*K + ky)*K + kx,``       ``C_out``
           ``(ky, kx)`` (``y + p - ky = s*oy``)    `` oy*W_out + ox)``
=========  =====================================  ============================  ============

All kinds share one form, so one generator serves them all::

    row  = off[k] + row_c[c] + row_y[y][t] + row_x[x][u]
    line =          line_c[c] + line_y[y][t] + line_x[x][u]     t < taps_y[y], u < taps_x[x]

A :class:`ScatterSpec` holds the constant tables (every constant product ``c*K*K``,
``oy*W_out``, ``c*W`` and every division by the stride is a table entry computed here, so
the hardware has no multiplier and no divider). :meth:`ScatterSpec.rows` is the bit-exact
model of :class:`ScatterGenerator`; the tests check both against the numpy reference of the
kind (tests/test_rtl_scatter.py).

Throughput of the generator: one row per cycle; a new event is taken in the cycle its
predecessor's last row leaves, so there are no bubbles between events. An event with no
valid tap (a conv input position no output window covers) is consumed in one cycle and
produces nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from snnfpga.errors import MappingError
from snnfpga.rtl.plan import bits_for, ceil_log2

Taps = tuple[tuple[tuple[int, int], ...], ...]  # per coordinate: the (row part, line part) of each tap


@dataclass(frozen=True)
class ScatterSpec:
    """The constant tables of one synapse node (see the module doc).

    ``in_shape``: ``(C, H, W)`` of the input (a flat input of ``n`` is ``(n, 1, 1)``);
    ``port_offsets``: the row offset of each input (channel concatenation, pointwise);
    ``rows``: weight rows; ``lines``: target lines; ``line_length``: weights per row (the
    words of one line). ``channel[c] = (row_c, line_c)``; ``taps_y[y]`` / ``taps_x[x]``: the
    ``(row part, line part)`` of each valid tap along that axis; ``out_shape``: the node's
    output.
    """

    kind: str
    in_shape: tuple[int, int, int]
    port_offsets: tuple[int, ...]
    rows: int
    lines: int
    line_length: int
    channel: tuple[tuple[int, int], ...]
    taps_y: Taps
    taps_x: Taps
    out_shape: tuple[int, ...]
    axis: str | None = None  # axial only

    @property
    def max_taps(self) -> tuple[int, int]:
        return max(len(t) for t in self.taps_y), max(len(t) for t in self.taps_x)

    def event_rows(self, c: int, y: int, x: int, port: int = 0) -> list[tuple[int, int]]:
        """The ``(weight row, line)`` operations of one event, in the generator's order
        (taps along y outer, along x inner)."""
        row_c, line_c = self.channel[c]
        base_row = self.port_offsets[port] + row_c
        return [(base_row + ry + rx, line_c + ly + lx) for ry, ly in self.taps_y[y] for rx, lx in self.taps_x[x]]

    def scaled(self, row_factor: int, line_factor: int) -> "ScatterSpec":
        """The same spec with every row multiplied by ``row_factor`` and every line by
        ``line_factor`` (table entries only: an engine with ``G`` groups per line addresses
        word ``row*G + g`` of its weights and ``line*G + g`` of its state by one addition)."""
        def scale(taps):
            return tuple(tuple((r * row_factor, ln * line_factor) for r, ln in entry) for entry in taps)
        return ScatterSpec(self.kind, self.in_shape, tuple(o * row_factor for o in self.port_offsets),
                           self.rows * row_factor, self.lines * line_factor, self.line_length,
                           tuple((r * row_factor, ln * line_factor) for r, ln in self.channel),
                           scale(self.taps_y), scale(self.taps_x), self.out_shape, self.axis)

    def line_map(self) -> "np.ndarray":
        """``int [lines, line_length]``: the flat index (in the output tensor) of each word of
        each line (the layout a target of this kind has in memory)."""
        L = self.line_length
        if self.kind in ("dense", "output"):
            return np.arange(L)[None, :]
        c_out, h_out, w_out = self.out_shape
        if self.kind == "axial":
            lines = np.arange(self.lines)[:, None]
            lane = np.arange(L)[None, :]
            if self.axis == "h":  # line c*W + x, lane h'
                return (lines // w_out) * h_out * w_out + lane * w_out + lines % w_out
            return (lines // h_out) * h_out * w_out + (lines % h_out) * w_out + lane  # line c*H + y, lane w'
        pos = np.arange(self.lines)[:, None]
        return np.arange(L)[None, :] * (h_out * w_out) + pos  # line = position, lane = channel

    def rows_per_position(self) -> list[list[int]]:
        """``[y][x]``: rows one event at that position produces (any channel, any port)."""
        return [[len(ty) * len(tx) for tx in self.taps_x] for ty in self.taps_y]


def _axis_taps(n: int, kernel: int, stride: int, padding: int, n_out: int, row_step: int, line_step: int):
    """Valid taps along one axis of a K x K window: for input coordinate ``i`` every ``k``
    with ``d = i + p - k >= 0``, ``d % s == 0`` and ``d // s < n_out``, as
    ``(k * row_step, (d // s) * line_step)``."""
    taps = []
    for i in range(n):
        taps.append(tuple((k * row_step, ((i + padding - k) // stride) * line_step) for k in range(kernel)
                          if i + padding - k >= 0 and (i + padding - k) % stride == 0
                          and (i + padding - k) // stride < n_out))
    return tuple(taps)


def _spec_dense(node, ins):
    n, n_out = ins[0].size, int(node.weight.shape[0])
    return ScatterSpec("dense", (n, 1, 1), (0,), n, 1, n_out,
                       tuple((c, 0) for c in range(n)), (((0, 0),),), (((0, 0),),), (n_out,))


def _spec_pointwise(node, ins):
    c_in = [t.shape[0] for t in ins]
    _, h, w = ins[0].shape
    offsets = tuple(sum(c_in[:k]) for k in range(len(c_in)))
    c_out = int(node.weight.shape[0])
    return ScatterSpec("pointwise", (max(c_in), h, w), offsets, sum(c_in), h * w, c_out,
                       tuple((c, 0) for c in range(max(c_in))),
                       tuple(((0, y * w),) for y in range(h)), tuple(((0, x),) for x in range(w)), (c_out, h, w))


def _spec_axial(node, ins):
    c, h, w = ins[0].shape
    if node.axis == "h":
        return ScatterSpec("axial", (c, h, w), (0,), h, c * w, h, tuple((0, k * w) for k in range(c)),
                           tuple(((y, 0),) for y in range(h)), tuple(((0, x),) for x in range(w)), (c, h, w), "h")
    return ScatterSpec("axial", (c, h, w), (0,), w, c * h, w, tuple((0, k * h) for k in range(c)),
                       tuple(((0, y),) for y in range(h)), tuple(((x, 0),) for x in range(w)), (c, h, w), "w")


def _spec_conv(node, ins):
    from snnfpga.model.kinds.conv import output_size

    c, h, w = ins[0].shape
    k, s, p = node.kernel, node.stride, node.padding
    h_out, w_out = output_size(h, k, s, p), output_size(w, k, s, p)
    c_out = int(node.weight.shape[0])
    return ScatterSpec("conv", (c, h, w), (0,), c * k * k, h_out * w_out, c_out,
                       tuple((ch * k * k, 0) for ch in range(c)),
                       _axis_taps(h, k, s, p, h_out, k, w_out), _axis_taps(w, k, s, p, w_out, 1, 1),
                       (c_out, h_out, w_out))


SPEC_BUILDERS = {"dense": _spec_dense, "output": _spec_dense, "pointwise": _spec_pointwise,
                 "axial": _spec_axial, "conv": _spec_conv, "ttfs": _spec_dense, "ttfs_output": _spec_dense}
# Time-to-first-spike kinds: their synapse half is a dense scatter whose buffer holds one
# step's current ``I = W s`` and no bias (the engine's ramp integrates it; a ttfs_output's
# bias is added once, to its scores).
RAMPED = ("ttfs", "ttfs_output")


def weight_rows(node) -> np.ndarray:
    """``int [rows, line_length]``: the weights each row operation adds along its line, in
    the row numbering of the node's :class:`ScatterSpec` (conv: ``W[:, c, ky, kx]``;
    pointwise and dense: column ``j`` of ``W``; axial: column ``p`` of ``W``, ``W[p', p]``
    landing on position ``p'`` of the line)."""
    w = np.asarray(node.weight, dtype=np.int64)
    return w.reshape(len(w), -1).T.copy()


def line_bias(node) -> np.ndarray:
    """``int [line_length]``: the bias of each word of a line. Every kind's bias varies along
    the line only (per output channel, or per position along the axial axis), so a line's
    initial value is the same for every line. A TTFS kind's buffer has none (``RAMPED``)."""
    if node.KIND in RAMPED:
        return np.zeros(len(node.weight), dtype=np.int64)
    return np.asarray(node.bias, dtype=np.int64)


def scatter_spec(node, ins) -> ScatterSpec:
    """The tables of a synapse node (``dense``, ``output``, ``pointwise``, ``axial``,
    ``conv``) given its input types; :class:`MappingError` for any other kind."""
    try:
        build = SPEC_BUILDERS[node.KIND]
    except KeyError:
        raise MappingError(f"node {node.name}: kind {node.KIND!r} has no event scatter "
                           f"(scatter kinds: {', '.join(SPEC_BUILDERS)})") from None
    return build(node, ins)


def event_layout(spec: ScatterSpec) -> data.StructLayout:
    """One input event: channel ``c``, position ``y``, ``x`` and the input ``port``."""
    c, h, w = spec.in_shape
    return data.StructLayout({"c": bits_for(c), "y": bits_for(h), "x": bits_for(w),
                              "port": bits_for(len(spec.port_offsets))})


def row_layout(spec: ScatterSpec) -> data.StructLayout:
    """One row operation: weight ``row``, target ``line``, ``last`` row of its event."""
    return data.StructLayout({"row": bits_for(spec.rows), "line": bits_for(spec.lines), "last": 1})


def lookup(values, index, bits: int):
    """``values[index]`` in hardware: a constant for an all-zero table, the index itself or
    the index shifted (free wiring) for ``values[i] = i * 2**k``, else a small constant ROM
    (LUTs)."""
    values = [int(v) for v in values]
    if not any(values):
        return Const(0, bits)
    for shift in range(bits):
        if all(v == i << shift for i, v in enumerate(values)):
            return index << shift if shift else index
    return Array(Const(v, bits) for v in values)[index]


class ScatterGenerator(wiring.Component):
    """Event in, row operations out (see the module doc for the tables and the throughput).

    Members
    -------
    events : ``In(stream.Signature(event_layout(spec)))``
    rows : ``Out(stream.Signature(row_layout(spec)))``
        ``row`` and ``line`` of each operation, ``last`` on the last row of an event.

    Only additions and table lookups (small constant ROMs, indexed by concatenated bit
    fields, never by a product).
    """

    def __init__(self, spec: ScatterSpec):
        self._spec = spec
        super().__init__({"events": In(stream.Signature(event_layout(spec))),
                          "rows": Out(stream.Signature(row_layout(spec)))})

    def elaborate(self, platform):
        spec = self._spec
        m = Module()
        row_bits, line_bits = bits_for(spec.rows), bits_for(spec.lines)
        ty_max, tx_max = spec.max_taps
        tyb, txb = ceil_log2(max(ty_max, 1)), ceil_log2(max(tx_max, 1))

        def padded(taps, width, part):
            """A flat table addressed ``{coordinate, tap}`` (``tap`` in the low ``width`` bits)."""
            return [(entry[t][part] if t < len(entry) else 0) for entry in taps for t in range(1 << width)]

        ev = self.events.payload
        have = Signal()  # an event is loaded and has rows left
        c, y, x, port = (Signal.like(ev[f], name=f"ev_{f}") for f in ("c", "y", "x", "port"))
        t = Signal(max(tyb, 1))
        u = Signal(max(txb, 1))
        n_t = Signal(bits_for(ty_max + 1))
        n_u = Signal(bits_for(tx_max + 1))
        last_t = Signal()
        last_u = Signal()
        m.d.comb += [last_t.eq(t == n_t - 1), last_u.eq(u == n_u - 1)]
        last = last_t & last_u

        y_index = Cat(t[:tyb], y) if tyb else y
        x_index = Cat(u[:txb], x) if txb else x
        row = Signal(row_bits)
        line = Signal(line_bits)
        row_y, line_y = (lookup(padded(spec.taps_y, tyb, k), y_index, b) for k, b in ((0, row_bits), (1, line_bits)))
        row_x, line_x = (lookup(padded(spec.taps_x, txb, k), x_index, b) for k, b in ((0, row_bits), (1, line_bits)))
        m.d.comb += [
            row.eq(lookup(spec.port_offsets, port, row_bits) + lookup([r for r, _ in spec.channel], c, row_bits)
                   + row_y + row_x),
            line.eq(lookup([ln for _, ln in spec.channel], c, line_bits) + line_y + line_x),
            self.rows.valid.eq(have),
            self.rows.payload.row.eq(row),
            self.rows.payload.line.eq(line),
            self.rows.payload.last.eq(last),
        ]
        sent = self.rows.valid & self.rows.ready
        m.d.comb += self.events.ready.eq(~have | (sent & last))
        with m.If(sent):
            with m.If(last_u):
                m.d.sync += [u.eq(0), t.eq(t + 1)]
            with m.Else():
                m.d.sync += u.eq(u + 1)
            with m.If(last):
                m.d.sync += have.eq(0)
        with m.If(self.events.valid & self.events.ready):
            ny = lookup([len(t) for t in spec.taps_y], ev.y, bits_for(ty_max + 1))
            nx = lookup([len(t) for t in spec.taps_x], ev.x, bits_for(tx_max + 1))
            m.d.sync += [c.eq(ev.c), y.eq(ev.y), x.eq(ev.x), port.eq(ev.port), t.eq(0), u.eq(0),
                         n_t.eq(ny), n_u.eq(nx), have.eq((ny != 0) & (nx != 0))]
        return m
