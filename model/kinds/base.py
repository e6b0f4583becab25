"""What every node kind of the integer contract (version 2) is made of.

A network is a directed acyclic graph of named nodes. Each node reads the tensors of its
``inputs`` (the graph's source ``input`` or earlier nodes) and produces one tensor per time
step. A tensor has a :class:`TensorType`: a shape, ``(C, H, W)`` for maps or ``(n,)`` for
flat vectors, and a signal:

* ``spikes``: 0/1 events (the encoder, ``lif``, ``glif``);
* ``counts``: non-negative event multiplicities (``pool``), at most ``max_count``;
* ``current``: signed integers in a named integer ``unit`` (synapses, ``add``, ``concat``).
  Currents are only summed within one unit (see :meth:`Node.require_one_unit`).

A kind is one class (a frozen dataclass) registered with :func:`register` under its
manifest name ``KIND``. It owns, in one place:

* its parameters and arrays (dataclass fields; ``np.ndarray`` fields are stored in
  ``arrays.npz`` as ``<node>.<field>``, ``*_bits`` fields are declared widths);
* :meth:`Node.infer`: input checks and the output's :class:`TensorType`;
* :meth:`Node.prove`: the width proof, interval bounds of its registers and output;
* :meth:`Node.widths` / :meth:`Node.check_widths`: widths chosen from, and checked
  against, the proof;
* :meth:`Node.forward`: the numpy reference (the executable contract), vectorized over a
  batch and all ``T`` steps (no node reads another node's previous step, so a node can
  run all steps once its inputs have);
* :meth:`Node.synaptic_ops` and :meth:`Node.memory_bits`: its cost.

The contract text of each kind is its section of ``docs/integer-contract.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import ClassVar

import numpy as np

from snnfpga.model.widths import signed_bits, signed_range

SIGNALS = ("spikes", "counts", "current")
EVENT_SIGNALS = ("spikes", "counts")
# Largest register width the contract allows. It also makes the float32 products of the
# numpy reference exact (every partial sum is an integer below 2**24 in magnitude).
MAX_REGISTER_BITS = 24
WEIGHT_BITS_RANGE = (2, 8)


class NodeError(ValueError):
    """A node breaks the contract; the message names the problem (the graph adds the node)."""


@dataclass(frozen=True)
class Window:
    """A TTFS window: ``index`` (0 for the encoder's) and its length ``steps`` (``S``).

    Window ``n`` is the global steps ``n * S .. n * S + S - 1``; a spike at step ``k`` of the
    window (global step ``n * S + k``) stands for the activation ``S - k``."""

    index: int
    steps: int

    @property
    def start(self) -> int:
        return self.index * self.steps

    def next(self) -> "Window":
        return Window(self.index + 1, self.steps)


@dataclass(frozen=True)
class TensorType:
    """Shape, signal and, for currents, the integer unit of one node's output tensor."""

    shape: tuple[int, ...]
    signal: str
    unit: str | None = None
    max_count: int = 1  # largest value of an event (1 for spikes)
    # Time-to-first-spike tensors: the window of ``window_steps`` steps in which their events
    # occur, at most one per element per image (``index`` counts windows from 0); None for
    # rate-coded tensors.
    window: "Window | None" = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def is_map(self) -> bool:
        return len(self.shape) == 3

    def describe(self) -> str:
        dims = "x".join(map(str, self.shape))
        if self.window is not None:
            return f"ttfs spikes[{dims}] (window {self.window.index})"
        if self.signal == "current":
            return f"current[{dims}] ({self.unit})"
        if self.signal == "counts":
            return f"counts[{dims}] (<= {self.max_count})"
        return f"spikes[{dims}]"


@dataclass(frozen=True)
class Bound:
    """Proven per-element range ``lo <= value <= hi`` of a tensor, at every step.

    ``lo`` and ``hi`` are ``int64`` arrays broadcastable to the tensor's shape (per channel
    ``(C, 1, 1)``, per position, or full)."""

    lo: np.ndarray
    hi: np.ndarray

    @staticmethod
    def of(lo, hi) -> "Bound":
        return Bound(np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64))

    def full(self, shape) -> "Bound":
        return Bound(np.broadcast_to(self.lo, shape).copy(), np.broadcast_to(self.hi, shape).copy())

    def span(self) -> tuple[int, int]:
        return int(self.lo.min()), int(self.hi.max())

    def __add__(self, other: "Bound") -> "Bound":
        return Bound(self.lo + other.lo, self.hi + other.hi)


@dataclass(frozen=True)
class Proof:
    """A node's width proof: the bound of its output and the ranges of its registers.

    ``registers`` maps a register name (``current``, ``membrane``, ``score``, ...) to its
    ``(lo, hi)`` over all elements and steps; the manifest records it as ``proven_bounds``.
    """

    out: Bound
    registers: dict


def event_bound(t: TensorType) -> Bound:
    """The range of an event tensor: ``0 .. max_count``."""
    return Bound.of(0, t.max_count)


KINDS: dict[str, type["Node"]] = {}


def register(cls):
    """Class decorator: make ``cls`` the node kind named ``cls.KIND``."""
    if cls.KIND in KINDS:
        raise RuntimeError(f"node kind {cls.KIND!r} registered twice")
    KINDS[cls.KIND] = cls
    return cls


def _array_dtype(bits: int):
    return np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32


@dataclass(frozen=True, eq=False, kw_only=True)
class Node:
    """Base of all node kinds (see the module docstring)."""

    KIND: ClassVar[str] = ""
    # Array field -> the width field that declares its value range.
    ARRAYS: ClassVar[dict] = {}
    # Of those width fields, the ones chosen from the values (the others are given, e.g.
    # ``weight_bits``, the quantizer's width).
    FIT_WIDTHS: ClassVar[tuple[str, ...]] = ()
    # Register width fields -> the proof register that bounds them (chosen and checked by proof).
    REGISTERS: ClassVar[dict] = {}
    SPIKING: ClassVar[bool] = False  # emits spikes from a population of neurons
    READS_WINDOWS: ClassVar[bool] = False  # reads time-to-first-spike tensors (and only those)
    MIN_INPUTS: ClassVar[int] = 1
    MAX_INPUTS: ClassVar[int | None] = 1
    # Parameters with a default that the manifest names only when they differ from it.
    OPTIONAL: ClassVar[dict] = {}

    name: str
    inputs: tuple[str, ...]

    # -- structure -----------------------------------------------------------------------

    def infer(self, ins: list[TensorType]) -> TensorType:
        """Check the inputs and this node's parameters; return the output type."""
        raise NotImplementedError

    def check_inputs(self, ins: list[TensorType], signals: tuple[str, ...], maps: bool | None = None) -> None:
        """Arity, signal and (``maps``) rank checks shared by the kinds."""
        n = len(ins)
        if n < self.MIN_INPUTS or (self.MAX_INPUTS is not None and n > self.MAX_INPUTS):
            want = str(self.MIN_INPUTS) if self.MAX_INPUTS == self.MIN_INPUTS else \
                f"{self.MIN_INPUTS} or more" if self.MAX_INPUTS is None else f"{self.MIN_INPUTS}..{self.MAX_INPUTS}"
            raise NodeError(f"takes {want} input(s), got {n}")
        for name, t in zip(self.inputs, ins):
            if (t.window is not None) != self.READS_WINDOWS:
                what = "a time-to-first-spike tensor; only ttfs and ttfs_output nodes read those" \
                    if t.window is not None else "rate-coded; a ttfs node reads the spikes of the ttfs encoder or of a ttfs node"
                raise NodeError(f"input {name!r} is {what}")
            if t.signal not in signals:
                raise NodeError(f"input {name!r} is {t.describe()}, but a {self.KIND} reads {' or '.join(signals)}")
            if maps is True and not t.is_map:
                raise NodeError(f"input {name!r} is {t.describe()}, but a {self.KIND} reads (C, H, W) maps")
            if maps is False and len(t.shape) != 1:
                raise NodeError(f"input {name!r} is {t.describe()}, but a {self.KIND} reads flat (n,) tensors")

    def require_one_unit(self, ins: list[TensorType]) -> str:
        """Currents summed or joined must share one integer unit (the same scale)."""
        units = [t.unit for t in ins]
        if len(set(units)) > 1:
            listed = ", ".join(f"{n!r} ({u})" for n, u in zip(self.inputs, units))
            raise NodeError(f"mixed scales: currents in different units are summed here: {listed}")
        return units[0]

    def require_same_shape(self, ins: list[TensorType]) -> tuple[int, ...]:
        shapes = {t.shape for t in ins}
        if len(shapes) > 1:
            listed = ", ".join(f"{n!r} {list(t.shape)}" for n, t in zip(self.inputs, ins))
            raise NodeError(f"inputs of different shapes cannot be summed: {listed}")
        return ins[0].shape

    # -- proof and widths ----------------------------------------------------------------

    def prove(self, ins: list[TensorType], bounds: list[Bound], timesteps: int) -> Proof:
        """Interval bounds of every register and of the output, over all inputs and steps."""
        raise NotImplementedError

    def widths(self, proof: Proof, membrane_bits: int | None = None) -> dict:
        """The narrowest declared widths the proof allows (``*_bits`` field -> bits)."""
        out = {field: self.fit_bits(getattr(self, array)) for array, field in self.ARRAYS.items()
               if field in self.FIT_WIDTHS}
        for field, register in self.REGISTERS.items():
            out[field] = signed_bits(*proof.registers[register])
        return out

    def check_widths(self, proof: Proof) -> None:
        """Declared widths: values fit, registers hold their proven ranges, at most 24 bits."""
        for array, field in self.ARRAYS.items():
            check_fits(field.removesuffix("_bits"), getattr(self, array), getattr(self, field))
        for field, register in self.REGISTERS.items():
            check_register(register, getattr(self, field), proof.registers[register])

    @staticmethod
    def fit_bits(arr: np.ndarray) -> int:
        return signed_bits(int(arr.min()), int(arr.max())) if arr.size else 2

    def saturates(self, proof: Proof) -> bool:
        """True when a declared state width is narrower than its proven range (saturation live)."""
        return False

    # -- semantics and cost --------------------------------------------------------------

    def forward(self, xs: list[np.ndarray], ins: list[TensorType], proof: Proof | None = None) -> np.ndarray:
        """The reference: inputs ``[N, T, *in_shape]`` -> output ``[N, T, *shape]``.

        ``proof`` (this node's, optional) lets a kind skip work the proof shows to be a
        no-op (a saturation that cannot act); the result is the same with or without it.

        Spikes are ``bool``, counts ``int32``, currents ``int16`` or ``int32`` (the
        narrower that holds the proven bound; every register of the contract fits in 24
        bits), scores ``int64``. Only values are the contract, not the dtypes."""
        raise NotImplementedError

    def synaptic_ops(self, xs: list[np.ndarray], ins: list[TensorType]) -> np.ndarray:
        """Accumulate operations per image (``int64 [N]``): weights added for its input events."""
        return np.zeros(len(xs[0]) if xs else 0, dtype=np.int64)

    def weight_count(self) -> int:
        return 0

    def memory_bits(self, out: TensorType) -> dict:
        """Bits of storage: ``weights`` (weights and biases), ``params`` (thresholds),
        ``state`` (registers that live across steps or are buffered within one)."""
        return {"weights": 0, "params": 0, "state": 0}

    # -- manifest --------------------------------------------------------------------------

    @classmethod
    def array_fields(cls) -> tuple[str, ...]:
        return tuple(cls.ARRAYS)

    @classmethod
    def param_fields(cls) -> tuple[str, ...]:
        """Manifest keys of the kind: its parameters, then its ``*_bits`` widths."""
        skip = {"name", "inputs"} | set(cls.ARRAYS)
        names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
        return tuple([n for n in names if not n.endswith("_bits")] + [n for n in names if n.endswith("_bits")])

    def manifest_entry(self, out: TensorType, proof: Proof) -> dict:
        """The node's manifest object (fixed key order; an :attr:`OPTIONAL` parameter only
        when it is not its default, so that manifests written before it existed stay the same)."""
        entry = {"name": self.name, "kind": self.KIND, "inputs": list(self.inputs), "shape": list(out.shape)}
        for key in self.param_fields():
            if key in self.OPTIONAL and getattr(self, key) == self.OPTIONAL[key]:
                continue
            entry[key] = getattr(self, key)
        entry.update(self.manifest_extras(proof))
        entry["proven_bounds"] = {k: [int(v[0]), int(v[1])] for k, v in proof.registers.items()}
        return entry

    def manifest_extras(self, proof: Proof) -> dict:
        """Derived manifest keys a reader may check (e.g. ``saturation``)."""
        return {}

    def array_entries(self):
        """``(key, int array, dtype)`` for ``arrays.npz``, in field order."""
        for array, field in self.ARRAYS.items():
            yield array, getattr(self, array), _array_dtype(getattr(self, field))

    @classmethod
    def from_manifest(cls, entry: dict, arrays: dict) -> "Node":
        values = {"name": str(entry["name"]), "inputs": tuple(str(x) for x in entry["inputs"])}
        for key in cls.param_fields():
            values[key] = entry.get(key, cls.OPTIONAL[key]) if key in cls.OPTIONAL else entry[key]
        for key in cls.ARRAYS:
            values[key] = arrays[key]
        return cls(**values)


def check_fits(what: str, arr: np.ndarray, bits: int) -> None:
    if not 2 <= bits <= MAX_REGISTER_BITS:
        raise NodeError(f"{what} width must be in 2..{MAX_REGISTER_BITS} bits, got {bits}")
    lo, hi = signed_range(bits)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = int(arr.min()) if arr.min() < lo else int(arr.max())
        raise NodeError(f"{what} value {bad} is beyond the {bits}-bit range {lo}..{hi}")


def check_register(what: str, bits: int, bound: tuple[int, int]) -> None:
    need = signed_bits(*bound)
    if need > MAX_REGISTER_BITS:
        raise NodeError(f"{what} range {bound[0]}..{bound[1]} needs {need} bits, more than the "
                        f"{MAX_REGISTER_BITS} the contract allows")
    if bits < need:
        raise NodeError(f"{what}_bits is {bits} but the proven range {bound[0]}..{bound[1]} needs {need}")
    if bits > MAX_REGISTER_BITS:
        raise NodeError(f"{what}_bits {bits} is above the {MAX_REGISTER_BITS} the contract allows")


def check_int_param(what: str, value, lo: int, hi: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not lo <= value <= hi:
        extra = "null or " if allow_none else ""
        raise NodeError(f"{what} must be {extra}an integer in {lo}..{hi}, got {value!r}")


def check_choice(what: str, value, choices) -> None:
    if value not in choices:
        raise NodeError(f"{what} must be one of {', '.join(map(str, choices))}, got {value!r}")


def check_array(what: str, arr, shape: tuple[int, ...]) -> None:
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.integer):
        raise NodeError(f"{what} must be an integer array")
    if tuple(arr.shape) != tuple(shape):
        raise NodeError(f"{what} must have shape {list(shape)}, got {list(arr.shape)}")


def check_broadcast(what: str, arr, shape: tuple[int, ...]) -> None:
    """``arr`` has the tensor's rank and each dimension is 1 or the tensor's (per channel,
    per position, or per neuron)."""
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.integer):
        raise NodeError(f"{what} must be an integer array")
    if arr.ndim != len(shape) or any(a not in (1, s) for a, s in zip(arr.shape, shape)):
        raise NodeError(f"{what} has shape {list(arr.shape)}; it must broadcast to the tensor {list(shape)} "
                        f"(each dimension 1 or equal)")


def check_weight_bits(bits) -> None:
    lo, hi = WEIGHT_BITS_RANGE
    check_int_param("weight_bits", bits, lo, hi)


FLOAT_EXACT = 1 << 24  # float32 holds every integer of magnitude up to 2**24 exactly


def int_dtype(lo: int, hi: int):
    """The narrower of ``int16`` and ``int32`` that holds ``lo .. hi``."""
    return np.int16 if -(1 << 15) <= lo and hi < (1 << 15) else np.int32


def full_size(arr: np.ndarray, shape: tuple[int, ...], dtype) -> np.ndarray:
    """``arr`` broadcast to a contiguous ``shape`` (per-channel parameters at full size, so
    that element-wise operations run over whole contiguous rows, not per channel)."""
    out = np.empty(shape, dtype=dtype)
    out[...] = arr
    return out


def sum_currents(xs: list[np.ndarray], bound: tuple[int, int]) -> np.ndarray:
    """The element-wise sum of currents whose sum is proven to lie in ``bound``.

    The sum is formed in the dtype that holds ``bound``. Integer casts and ``+`` on numpy
    arrays wrap modulo ``2**bits``, so an input or a partial sum may wrap but the complete
    sum is exact."""
    if len(xs) == 1:
        return xs[0]
    out = np.add(xs[0], xs[1], dtype=int_dtype(*bound), casting="unsafe")
    for x in xs[2:]:
        np.add(out, x, out=out, casting="unsafe")
    return out


@dataclass(frozen=True)
class Packing:
    """How :meth:`Synapse.forward` packs ``m`` items of a batch into one float32 product.

    A synapse is linear and acts on each item (image and step) of the batch on its own, so
    the product of the packed events ``x_0 + 2**c x_1 + ... + 2**(c(m-1)) x_{m-1}`` is
    ``I_0 + 2**c I_1 + ... + 2**(c(m-1)) I_{m-1}``: ``m`` items' currents for the work of one.
    Adding the offset ``(B - lo) * (1 + 2**c + ...)`` makes every field ``U_j = I_j + B - lo``,
    which lies in ``0 .. 2**c - 1`` because ``lo .. lo + 2**c - 1`` holds the proven output
    bound of every element; then ``V = sum_j 2**(cj) U_j < 2**(cm)`` and ``U_j`` is the
    ``j``-th ``c``-bit field of ``V``.

    Exact in float32 (every value an integer of magnitude at most ``2**24``) when
    ``c m <= 24`` and every partial sum of the product is within ``2**24``. A partial sum is
    ``sum_j 2**(cj) P_j``, each ``P_j`` a partial sum of one item's products, which lies in
    the proven current bound ``[i_lo, i_hi]`` (the sums of a row's negative and of its
    positive weights, times the most an event counts), so its magnitude is at most
    ``max(-i_lo, i_hi) * (1 + 2**c + ...)``: :meth:`choose` takes the largest ``m`` with both.
    ``m = 1`` is the plain product ``I + B``."""

    m: int  # items per product
    c: int  # bits per field
    lo: int  # the least proven output value (the fields' offset)

    @staticmethod
    @lru_cache(maxsize=None)
    def choose(current: tuple[int, int], output: tuple[int, int]) -> "Packing":
        c = max(1, int(output[1] - output[0]).bit_length())  # 2**c > hi - lo
        peak = max(-int(current[0]), int(current[1]), 1)
        m = 1
        while c * (m + 1) <= 24 and peak * sum(1 << (c * j) for j in range(m + 1)) <= FLOAT_EXACT:
            m += 1
        return Packing(m, c, int(output[0]))

    def pack(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Events ``[B, ...]`` (0/1 spikes or counts) to float32 ``[ceil(B/m), ...]``: item
        ``i`` of the result is ``sum_j 2**(cj) x[j * b + i]`` (``b = ceil(B/m)``; missing
        items of the last fields count as no events), by Horner's rule from the top field."""
        b = -(-len(x) // self.m)
        if out is None:
            out = np.empty((b, *x.shape[1:]), dtype=np.float32)
        fields = [x[j * b:(j + 1) * b] for j in range(self.m)]
        top = fields[-1]
        np.copyto(out[:len(top)], top, casting="unsafe")
        out[len(top):] = 0
        for field in reversed(fields[:-1]):  # out = out * 2**c + x_j, exact integers below 2**24
            np.multiply(out, np.float32(1 << self.c), out=out)
            np.add(out[:len(field)], field, out=out[:len(field)], casting="unsafe")
        return out

    def unpack(self, v: np.ndarray, bias: np.ndarray, items: int, dtype) -> np.ndarray:
        """The currents ``I + B`` (``dtype [items, ...]``) from the packed products ``v``
        (float32 ``[ceil(items/m), ...]``, the sums ``sum_j 2**(cj) I_j``; overwritten) and
        the bias (broadcastable to one item)."""
        out = np.empty((items, *v.shape[1:]), dtype=dtype)
        weight = 1 if self.m == 1 else sum(1 << (self.c * j) for j in range(self.m))
        offset = bias if self.m == 1 else (bias - self.lo) * weight
        offset = full_size(offset, v.shape[1:], np.float32)
        if self.m == 1:  # I + B
            np.add(v, offset, out=out, casting="unsafe")
            return out
        vi = v.view(np.int32)  # V = sum_j 2**(cj) U_j, exact, converted in place
        np.add(v, offset, out=vi, casting="unsafe")
        b, mask = len(v), (1 << self.c) - 1
        for j in range(self.m):
            rows = out[j * b:(j + 1) * b]
            k = len(rows)
            if j:
                np.right_shift(vi, self.c, out=vi)
            np.copyto(rows, vi[:k], casting="unsafe")  # the low bits (dtype holds 2**c - 1)
            if j < self.m - 1:
                np.bitwise_and(rows, mask, out=rows)  # U_j
            np.add(rows, np.asarray(self.lo, dtype=dtype), out=rows)  # I_j + B
        return out


@dataclass(frozen=True, eq=False, kw_only=True)
class Synapse(Node):
    """A weighted connection from event tensors to a current (``dense``, ``conv``, ``axial``,
    ``pointwise``).

    Per step it forms ``I = sum of the weights of its input events`` (an event of count
    ``m`` adds its weights ``m`` times) and emits the current ``I + B``. ``current_bits``
    is proven to hold ``I``; the bias is added where the current is consumed, at the
    consumer's width. ``unit`` names the integer unit of the current (its scale).

    A kind supplies :meth:`row_bounds` (per output element: the sum of its negative and of
    its positive weights, the most one event of each input can add), :meth:`output_shape`
    (after its own checks), :meth:`currents` (the exact product) and :meth:`ops_map` (how
    many weights one event at each input position adds).
    """

    ARRAYS: ClassVar[dict] = {"weight": "weight_bits", "bias": "bias_bits"}
    FIT_WIDTHS: ClassVar[tuple[str, ...]] = ("bias_bits",)
    REGISTERS: ClassVar[dict] = {"current_bits": "current"}

    weight: np.ndarray
    bias: np.ndarray
    unit: str
    weight_bits: int
    bias_bits: int = 0
    current_bits: int = 0

    def infer(self, ins: list[TensorType]) -> TensorType:
        self.check_inputs(ins, EVENT_SIGNALS, maps=self.READS_MAPS)
        check_weight_bits(self.weight_bits)
        if not isinstance(self.unit, str) or not self.unit:
            raise NodeError("unit must be a non-empty string (the integer unit of the current)")
        shape = self.output_shape(ins)
        check_fits("weight", self.weight, self.weight_bits)
        return TensorType(shape, "current", unit=self.unit)

    READS_MAPS: ClassVar[bool | None] = True

    def output_shape(self, ins: list[TensorType]) -> tuple[int, ...]:
        raise NotImplementedError

    def row_bounds(self, ins: list[TensorType]) -> tuple[np.ndarray, np.ndarray]:
        """Per output element ``(lo, hi)`` of ``I`` (broadcastable to the output): the sums
        of its negative and of its positive weights, each times its input's ``max_count``."""
        raise NotImplementedError

    def prove(self, ins, bounds, timesteps) -> Proof:
        i_bound = Bound.of(*self.row_bounds(ins))
        bias = self.bias_shape_for_output()
        out = Bound(i_bound.lo + bias, i_bound.hi + bias)
        return Proof(out=out, registers={"current": i_bound.span(), "output": out.span()})

    def bias_shape_for_output(self) -> np.ndarray:
        """The bias, shaped to broadcast against the output tensor."""
        raise NotImplementedError

    def packing(self, ins: list[TensorType], proof: Proof | None = None) -> Packing:
        """How many items one float32 product forms at once (see :class:`Packing`), from
        the proven current and output bounds (this node's proof, or proven here)."""
        proof = proof or Synapse.prove(self, ins, [], 0)
        return Packing.choose(proof.registers["current"], proof.registers["output"])

    def forward(self, xs, ins, proof=None):
        n, steps = xs[0].shape[:2]
        proof = proof or Synapse.prove(self, ins, [], 0)
        packing = self.packing(ins, proof)
        v = self.packed_currents([x.reshape(n * steps, *x.shape[2:]) for x in xs], ins, packing)
        out = packing.unpack(v, self.bias_shape_for_output(), n * steps, int_dtype(*proof.registers["output"]))
        return out.reshape(n, steps, *out.shape[1:])

    def packed_currents(self, xs: list[np.ndarray], ins: list[TensorType], packing: Packing) -> np.ndarray:
        """:meth:`currents` of the packed events (:meth:`Packing.pack`) of ``B`` items
        ``[B, *in_shape]``: float32 ``[ceil(B/m), *shape]``. A kind may override it to
        pack straight into the layout its product reads."""
        return self.currents([packing.pack(x) for x in xs], ins)

    def currents(self, xs: list[np.ndarray], ins: list[TensorType]) -> np.ndarray:
        """``I`` as float32 ``[B, *shape]`` (exact integers) from float32 events ``[B, *in_shape]``."""
        raise NotImplementedError

    def ops_map(self, t: TensorType, index: int) -> np.ndarray:
        """Weights one event of input ``index`` adds, per input position (broadcastable)."""
        raise NotImplementedError

    def synaptic_ops(self, xs, ins):
        total = np.zeros(len(xs[0]), dtype=np.int64)
        for index, (x, t) in enumerate(zip(xs, ins)):
            per = np.broadcast_to(self.ops_map(t, index), t.shape).astype(np.int64)
            events = x.reshape(len(x), x.shape[1], -1).sum(axis=1, dtype=np.int64)  # [N, size]
            total += events @ per.reshape(-1)
        return total

    @cached_property
    def weight_float(self) -> np.ndarray:
        """The weights as float32 (exact: at most 8 bits), converted once."""
        return self.weight.astype(np.float32)

    def weight_count(self) -> int:
        return int(self.weight.size)

    def memory_bits(self, out):
        return {"weights": self.weight.size * self.weight_bits + self.bias.size * self.bias_bits,
                "params": 0, "state": 0}
