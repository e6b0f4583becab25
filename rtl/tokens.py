"""Shared stream payloads and small helpers of the accelerator's datapath.

A *spike token* carries one spike address between stages; an *end-of-step* token
(``eos = 1``) closes a time step. Every stage sees exactly ``T`` end-of-step tokens per
image, so image boundaries need no separate marker.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from snnfpga.rtl.plan import bits_for


def token_layout(addr_bits: int) -> data.StructLayout:
    """Spike token: ``addr`` (neuron or pixel index) and ``eos`` (end of time step)."""
    return data.StructLayout({"addr": addr_bits, "eos": 1})


def weight_load_layout(addr_bits: int, data_bits: int, layer_bits: int = 0) -> data.StructLayout:
    """One weight-memory write: ``addr``, ``data`` (and ``layer`` at the top level)."""
    fields = {"addr": addr_bits, "data": data_bits}
    if layer_bits:
        fields["layer"] = layer_bits
    return data.StructLayout(fields)


def weight_load_signature(depth: int, width: int) -> stream.Signature:
    """An engine's run-time weight port: one ``{addr, data}`` write per cycle, always ready."""
    return stream.Signature(weight_load_layout(bits_for(depth), width), always_ready=True)


def weight_port_signature(plan) -> stream.Signature:
    """The accelerator's ``weights`` port (weight storage ``ram``): ``{addr, data, layer}``,
    ``layer`` the memory's index in ``plan.weight_contents()`` order."""
    return stream.Signature(weight_load_layout(plan.weight_addr_bits, plan.weight_data_bits,
                                               bits_for(plan.weight_memory_count)))


def route_weight_load(m: Module, weights, index: int, load) -> None:
    """Connect the accelerator's ``weights`` port to the ``load`` port of memory ``index``
    (always ready: a write takes one cycle)."""
    m.d.comb += [
        weights.ready.eq(1),
        load.valid.eq(weights.valid & (weights.payload.layer == index)),
        load.payload.addr.eq(weights.payload.addr),
        load.payload.data.eq(weights.payload.data),
    ]


def runtime_weight_memory(m: Module, depth: int, width: int, load, read_addr: Value, name: str = "weights") -> Value:
    """A weight memory written at run time through ``load`` (:func:`weight_load_signature`)
    and read at ``read_addr``; returns the read data (one cycle after the address). One
    address for both ports and reads disabled while writing: a single port with "no
    change" on write, which Yosys maps to an iCE40 SPRAM (the bitstream cannot initialise
    one, so the contents are undefined until loaded). Loads happen only while no image is in
    flight (the register block refuses them while busy)."""
    m.submodules[name] = wmem = Memory(shape=width, depth=depth, init=[])
    w_rd, w_wr = wmem.read_port(), wmem.write_port()
    writing = load.valid
    shared_addr = Signal.like(w_rd.addr)  # one signal for both ports: Yosys sees a single port
    m.d.comb += [
        shared_addr.eq(Mux(writing, load.payload.addr, read_addr)),
        w_wr.en.eq(writing), w_wr.data.eq(load.payload.data), w_rd.en.eq(~writing),
        w_wr.addr.eq(shared_addr), w_rd.addr.eq(shared_addr),
    ]
    return w_rd.data


def scores_layout(score_bits: int, n_classes: int) -> data.StructLayout:
    """Scores as named fields ``class0 .. class{n-1}`` (signed). A struct rather than an array
    layout: Amaranth names array elements ``x[0]``, and such names collide with the per-bit names
    that Yosys' ABC flows create (the "count_id(wire->name) == 0" assertion)."""
    return data.StructLayout({f"class{j}": signed(score_bits) for j in range(n_classes)})


def counters_layout(n_fields: int, bits: int, prefix: str) -> data.StructLayout:
    """``n_fields`` unsigned counters named ``{prefix}0 ..`` (a struct, see :func:`scores_layout`)."""
    return data.StructLayout({f"{prefix}{k}": bits for k in range(n_fields)})


def monitor_signature(addr_bits: int, step_bits: int) -> wiring.Signature:
    """Debug view of the tokens one stage emits: ``valid`` strobes once per spike with the
    neuron ``addr`` and the time ``step``; ``eos`` strobes once per end-of-step token (so a
    step without spikes is still seen). No back-pressure: a strobe marks a transfer."""
    return wiring.Signature({"valid": Out(1), "eos": Out(1), "addr": Out(addr_bits),
                             "step": Out(step_bits)})


def pack(values, bits: int) -> int:
    """Pack signed integers into one word, element ``k`` at bits ``[k*bits, (k+1)*bits)``."""
    word = 0
    mask = (1 << bits) - 1
    for k, v in enumerate(values):
        word |= (int(v) & mask) << (k * bits)
    return word


def lane(word: Value, index: int, bits: int) -> Value:
    """Signed field ``index`` of ``bits`` bits of a packed word."""
    return word[index * bits:(index + 1) * bits].as_signed()


def lowest_set_bit(m: Module, mask: Value, name: str) -> Signal:
    """Index of the lowest set bit of ``mask`` (0 when ``mask`` is 0), as a combinational signal.

    A balanced tree of ``ceil(log2(n))`` two-way choices (the lower half wins when it has a
    set bit), not a chain of ``n`` priority muxes: the depth grows with ``log n``."""
    index = Signal(range(max(2, len(mask))), name=name)
    m.d.comb += index.eq(_lowest_set_bit_tree([mask[b] for b in range(len(mask))])[1])
    return index


def _lowest_set_bit_tree(bits: list[Value]) -> tuple[Value, Value]:
    """``(any bit set, index of the lowest set bit)`` of ``bits``; the index is
    ``ceil(log2(len(bits)))`` bits wide and 0 when no bit is set."""
    if len(bits) == 1:
        return bits[0], Const(0, 0)
    width = (len(bits) - 1).bit_length()
    half = 1 << (width - 1)
    any_lo, index_lo = _lowest_set_bit_tree(bits[:half])
    any_hi, index_hi = _lowest_set_bit_tree(bits[half:])
    pad = width - 1
    index = Mux(any_lo | ~any_hi, Cat(index_lo, Const(0, pad - len(index_lo) + 1)),
                Cat(index_hi, Const(0, pad - len(index_hi)), Const(1, 1)))
    return any_lo | any_hi, index


def or_tree(values: list[Value]) -> Value:
    """The OR of ``values`` as a balanced tree (depth ``ceil(log2 n)``): a left-leaning chain
    of hundreds of operands overflows the recursion of Amaranth's and Yosys' expression walks."""
    if not values:
        raise ValueError("or_tree needs at least one value")
    while len(values) > 1:
        values = [values[k] | values[k + 1] if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]


def saturate(value: Value, bits: int) -> Value:
    """Clamp a signed value to the range of a ``bits``-bit two's-complement register."""
    hi = Const((1 << (bits - 1)) - 1, signed(bits))
    lo = Const(-(1 << (bits - 1)), signed(bits))
    return Mux(value > hi, hi, Mux(value < lo, lo, value))


def leak(value, shift: int | None, shift2: int | None = None):
    """The contract's leak ``v - (v >> k) [- (v >> k2)]`` (arithmetic shifts: wires, one or two
    subtractors), of an Amaranth value or a Python integer; ``value`` itself when ``k`` is None."""
    if shift is None:
        return value
    out = value - (value >> shift)
    return out if shift2 is None else out - (value >> shift2)


def count_score(count, membrane) -> Value:
    """A ``lif_output`` class's score ``count * 2^M + membrane + 2^(M-1)`` for an ``M``-bit
    signed membrane: the concatenation ``{count, ~v[M-1], v[M-2:0]}`` (no adder)."""
    return Cat(membrane[:-1], ~membrane[-1], count)


def step_counter_next(step: Signal, timesteps: int) -> Value:
    """``step + 1`` wrapping to 0 after ``timesteps - 1`` (compare and add, no modulo)."""
    return Mux(step == timesteps - 1, 0, step + 1)
