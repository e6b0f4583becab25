"""Generation plan: every hardware parameter derived from the artifact and the lane count.

One source of truth: widths come from the artifact (:mod:`snnfpga.model.artifact`), the
lane count ``P`` and the pixel beat width from the user; everything else is computed here
and nowhere else (the RTL components, the Verilog JSON description and the cycle model all
read a :class:`Plan`).

Layout conventions
------------------
* Layer ``l`` has ``P_l = min(P, n_out)`` lanes and ``G_l = ceil(n_out / P_l)`` groups;
  neuron ``j = g * P_l + p`` lives in lane ``p`` of group ``g`` (group bases are kept as
  running sums in hardware, never multiplied).
* The weight memory of layer ``l`` is addressed ``{i, g}`` (input index in the high bits,
  group in the low ``gbits = ceil(log2 G_l)`` bits): no multiplier forms the address. Its
  word holds the ``P_l`` weights of group ``g`` for input ``i``, lane ``p`` at bits
  ``[p*b, (p+1)*b)``. Depth ``n_in * 2**gbits`` (rows beyond ``G_l`` are zero).
* Weight storage: ``rom`` (contents in the bitstream, the default) or ``ram`` (no initial
  contents; written at run time through the accelerator's ``weights`` port, one word per
  cycle, while no image is in flight). ``ram`` lets Yosys map the big weight memories to
  the iCE40 UP5K's SPRAM, which cannot be initialised by the bitstream.
* Weight banks (``rom`` only, optional): with ``rom_bank_depth`` (a power of two, from the
  target: the depth at which one block RAM column needs no output multiplexer, e.g. 2048
  for the ECP5's DP16KD in 2K x 9), a deeper weight memory is split by address into banks
  of that depth (``weight_bank_depth``; 0 = one memory). Each bank's output is registered
  before the bank is chosen (see rtl/engine.py): the multiplexer Yosys would put behind
  depth-cascaded block RAMs is otherwise the longest path of the design.
* The pixel memory holds ``B`` pixels per word (``B`` = pixels per input beat, a power of
  two), pixel ``k`` at word ``k // B``, byte ``k % B``.
"""

from __future__ import annotations

from dataclasses import dataclass

from snnfpga.errors import MappingError
from snnfpga.model.artifact import Artifact, Layer

MAX_LANES = 512
PIXELS_PER_BEAT = (1, 2, 4, 8)
WEIGHT_STORAGE = ("rom", "ram")


def bits_for(n: int) -> int:
    """Unsigned bits to hold values ``0 .. n - 1`` (at least 1)."""
    return max(1, (n - 1).bit_length())


def ceil_log2(n: int) -> int:
    """``ceil(log2(n))`` for ``n >= 1`` (0 for 1)."""
    return (n - 1).bit_length()


@dataclass(frozen=True)
class LayerPlan:
    """Hardware parameters of one layer engine."""

    index: int
    layer: Layer
    lanes: int  # P_l
    groups: int  # G_l
    group_bits: int  # address bits of the group field of the weight memory
    in_bits: int  # bits of an input spike address (0 .. n_in - 1)
    out_bits: int  # bits of an output neuron index (0 .. n_out - 1)
    state_bits: int  # width of the per-neuron state register u (see engine.py)
    weight_bank_depth: int = 0  # weight memory split into banks of this depth (0: one memory)

    @property
    def is_output(self) -> bool:
        return self.layer.is_output

    @property
    def weight_depth(self) -> int:
        return self.layer.n_in << self.group_bits

    @property
    def weight_word_bits(self) -> int:
        return self.lanes * self.layer.weight_bits

    @property
    def weight_banks(self) -> int:
        """Number of weight memory banks (1: one memory)."""
        return -(-self.weight_depth // self.weight_bank_depth) if self.weight_bank_depth else 1


class StreamInterface:
    """What every accelerator plan (the chain's :class:`Plan`, the graph's
    :class:`~snnfpga.rtl.graph_top.GraphTopPlan`) tells the parts around the accelerator:
    the pixel and result streams (from ``artifact`` and ``pixels_per_beat``), and for the
    register block, the firmware and the board shell its spiking stages and weight storage.

    A plan provides ``artifact``, ``lanes``, ``pixels_per_beat``, ``weight_storage``, the
    weight memories a run-time load fills (``weight_memory_count``, ``weight_contents()``,
    ``weight_addr_bits``, ``weight_data_bits``), ``score_bits``, ``stage_names`` (the spike counters: ``encoder``
    first, then each spiking layer or node) and ``parameters()`` (the generation parameters
    for descriptions); :meth:`accelerator` builds its streaming accelerator component and
    ``cycle_model`` is the module of its cycle model (``describe(plan)``,
    ``cycles_per_image(plan, trace)``).
    """

    def weight_loads(self):
        """``(memory, addr, word)`` for every word a run-time weight load writes, memory by
        memory (``weight_contents()``), addresses ascending."""
        for index, words in enumerate(self.weight_contents()):
            for addr, word in enumerate(words):
                yield index, addr, word

    @property
    def beats_per_image(self) -> int:
        return -(-self.artifact.n_inputs // self.pixels_per_beat)

    @property
    def class_bits(self) -> int:
        return bits_for(self.artifact.n_classes)

    @property
    def is_graph(self) -> bool:
        return not self.artifact.is_chain

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Neurons per spiking stage after the encoder, then the classes (``LAYER_SIZE``)."""
        return (*self.stage_sizes[1:], self.artifact.n_classes)

    @property
    def n_stages(self) -> int:
        """Spike counters: the encoder and every spiking stage (``== len(layer_sizes)``)."""
        return len(self.stage_names)

    @property
    def lanes_label(self) -> str:
        """``"64 lanes"``; a graph whose engines have different lane counts (folded, or
        bounded by their line lengths below ``lanes``): ``"7-72 lanes per engine"``."""
        per_engine = set(getattr(self, "node_lanes", {}).values())
        if len(per_engine) > 1 and max(per_engine) > self.lanes:
            return f"{min(per_engine)}-{max(per_engine)} lanes per engine"
        return f"{self.lanes} lanes"

    def summary(self) -> str:
        """One line naming the model and the hardware parameters."""
        art = self.artifact
        shape = "-".join(map(str, art.sizes)) if art.is_chain else f"a layer graph of {len(art.graph.nodes)} nodes"
        return (f"model {art.name} ({shape}, T={art.timesteps}), {self.lanes_label}, "
                f"{self.pixels_per_beat} pixels per beat, weight storage {self.weight_storage}")


@dataclass(frozen=True)
class Plan(StreamInterface):
    """The whole accelerator: encoder, layer engines, result."""

    artifact: Artifact
    lanes: int
    pixels_per_beat: int
    fifo_depth: int
    layers: tuple[LayerPlan, ...]
    weight_storage: str = "rom"

    @property
    def score_bits(self) -> int:
        return self.artifact.layers[-1].score_bits

    @property
    def stage_names(self) -> tuple[str, ...]:
        return ("encoder", *(layer.name for layer in self.artifact.layers[:-1]))

    @property
    def stage_sizes(self) -> tuple[int, ...]:
        """Neurons (or inputs) per spiking stage, the encoder first."""
        return tuple(self.artifact.sizes[:-1])

    def parameters(self) -> dict:
        return {"lanes": self.lanes, "pixels_per_beat": self.pixels_per_beat, "weight_storage": self.weight_storage,
                "fifo_depth": self.fifo_depth, "timesteps": self.artifact.timesteps,
                "groups": [lp.groups for lp in self.layers]}

    def accelerator(self):
        from snnfpga.rtl.top import Accelerator

        return Accelerator(self)

    @property
    def cycle_model(self):
        from snnfpga.rtl import cycle_model

        return cycle_model

    @property
    def weight_memory_count(self) -> int:
        """Weight memories a run-time load fills (one per layer; ``WEIGHT_ADDR.LAYER``); 0 with
        ROM weights."""
        return len(self.layers) if self.weight_storage == "ram" else 0

    def weight_contents(self) -> list[list[int]]:
        """The words of every layer's weight memory, in ``WEIGHT_ADDR.LAYER`` order."""
        from snnfpga.rtl.engine import weight_words

        return [weight_words(lp) for lp in self.layers]

    @property
    def weight_addr_bits(self) -> int:
        """Address width of the ``weights`` load port (the deepest weight memory)."""
        return max(bits_for(lp.weight_depth) for lp in self.layers)

    @property
    def weight_data_bits(self) -> int:
        """Data width of the ``weights`` load port (the widest weight word)."""
        return max(lp.weight_word_bits for lp in self.layers)


def make_plan(art: Artifact, lanes: int = 8, pixels_per_beat: int = 4, fifo_depth: int = 16,
              weight_storage: str = "rom", rom_bank_depth: int | None = None) -> Plan:
    """Check that the artifact maps onto the generator and derive all parameters.

    ``rom_bank_depth``: the target's weight ROM bank depth (see the module doc), or None."""
    if weight_storage not in WEIGHT_STORAGE:
        raise MappingError(f"weight storage must be one of {', '.join(WEIGHT_STORAGE)}, got {weight_storage!r}")
    if not isinstance(lanes, int) or not 1 <= lanes <= MAX_LANES:
        raise MappingError(f"lanes must be an integer in 1..{MAX_LANES}, got {lanes!r}")
    if pixels_per_beat not in PIXELS_PER_BEAT:
        raise MappingError(f"pixels per beat must be one of {PIXELS_PER_BEAT}, got {pixels_per_beat!r}")
    if rom_bank_depth is not None and (rom_bank_depth < 2 or rom_bank_depth & (rom_bank_depth - 1)):
        raise MappingError(f"ROM bank depth must be a power of two >= 2, got {rom_bank_depth}")
    if fifo_depth < 2:
        raise MappingError(f"FIFO depth must be at least 2, got {fifo_depth}")
    if not art.is_chain:
        raise MappingError(art.not_a_chain("the hardware generator"))
    plans = []
    for index, layer in enumerate(art.layers):
        if layer.kind not in ("lif", "output", "lif_output"):
            raise MappingError(f"layer {index} ({layer.name}): kind {layer.kind!r} has no hardware mapping")
        p = min(lanes, layer.n_out)
        g = -(-layer.n_out // p)
        if layer.spiking:
            # u = leak(v) + B + partial current: each term fits its own width, the sum fits +2 bits
            # (reset subtract_next: leak(v) - theta, one bit more).
            extra = int(layer.reset == "subtract_next")
            state = max(layer.membrane_bits + extra, layer.bias_bits, layer.current_bits) + 2
        else:
            # Every prefix of the score (bias of the step pre-added) lies inside the proven score
            # range, see engine.py, so the score width suffices.
            state = layer.score_bits
        group_bits = ceil_log2(g)
        depth = layer.n_in << group_bits
        banked = weight_storage == "rom" and rom_bank_depth is not None and depth > rom_bank_depth
        plans.append(LayerPlan(index=index, layer=layer, lanes=p, groups=g, group_bits=group_bits,
                               in_bits=bits_for(layer.n_in), out_bits=bits_for(layer.n_out),
                               state_bits=state, weight_bank_depth=rom_bank_depth if banked else 0))
    return Plan(artifact=art, lanes=lanes, pixels_per_beat=pixels_per_beat, fifo_depth=fifo_depth,
                layers=tuple(plans), weight_storage=weight_storage)
