"""The register map of the accelerator system: the one source of truth.

The CSR block (:mod:`snnfpga.rtl.csr`), the generated C header, the Markdown register table,
the C driver and the Python host driver all derive from :data:`REGISTERS` and
:func:`build_constants`. Offsets are byte offsets on a 32-bit Wishbone B4 bus (the bus
address is the word address, ``offset >> 2``); only whole 32-bit accesses are supported.

Flow of one inference: write the image into ``PIXELS`` (4 pixels per word, pixel ``4k`` in
bits 7..0 of word ``k``), write ``CTRL.START``, poll ``STATUS.DONE`` (or wait for the
interrupt), read ``RESULT``, ``SCORE[j]`` and the counters. With weight storage ``ram`` the
weights are written once after reset through ``WEIGHT_ADDR``/``WEIGHT_DATA``.
"""

from __future__ import annotations

from dataclasses import dataclass

from snnfpga import __version__
from snnfpga.model.artifact import arrays_sha256

REGMAP_VERSION = 1
ID_VALUE = 0x534E4E31  # "SNN1"
BUS_DATA_BITS = 32

MAX_LAYERS = 16
MAX_STAGES = 16
MAX_CLASSES = 64
MAX_WEIGHT_CHUNKS = 8  # weight words up to 256 bits
MAX_WEIGHT_MEMORIES = 64  # run-time loaded weight memories (a layer graph's synapse nodes)
PIXEL_WINDOW = 0x1000  # byte offset of the pixel buffer
PIXEL_WINDOW_WORDS = 0x1000  # up to 16,384 pixels


@dataclass(frozen=True)
class Field:
    """A bit field: ``name``, least significant bit, width, meaning."""

    name: str
    lsb: int
    width: int
    doc: str

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    """One register, or an array of ``count`` registers ``stride`` bytes apart.

    ``access``: ``ro`` (read-only), ``wo`` (write-only; reads return 0), ``rw``,
    ``const`` (read-only build constant, see :func:`build_constants`).
    """

    name: str
    offset: int
    access: str
    doc: str
    fields: tuple[Field, ...] = ()
    count: int = 1
    stride: int = 4

    def address(self, index: int = 0) -> int:
        if not 0 <= index < self.count:
            raise IndexError(f"{self.name}[{index}] is out of range 0..{self.count - 1}")
        return self.offset + index * self.stride

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name}")


# Error codes reported in STATUS.ERROR_CODE (sticky until CTRL.CLEAR).
ERROR_NONE = 0
ERROR_START_WHILE_BUSY = 1
ERROR_PIXELS_WHILE_LOADING = 2
ERROR_WEIGHTS_WHILE_BUSY = 3
ERROR_CODES = {
    ERROR_NONE: "no error",
    ERROR_START_WHILE_BUSY: "START written while an image was in flight (ignored)",
    ERROR_PIXELS_WHILE_LOADING: "pixel buffer written while it was being streamed (ignored)",
    ERROR_WEIGHTS_WHILE_BUSY: "weight word written while an image was in flight (ignored)",
}

REGISTERS: tuple[Register, ...] = (
    Register("ID", 0x000, "const", "identifies the accelerator: 0x534E4E31 (\"SNN1\")"),
    Register("VERSION", 0x004, "const", "register map and generator versions", (
        Field("REGMAP", 16, 16, "register map version"),
        Field("GENERATOR", 0, 16, "snnfpga version, major << 8 | minor"))),
    Register("MODEL_HASH", 0x008, "const",
             "first 4 bytes (big-endian) of the SHA-256 of the model's arrays.npz: identifies the weights"),
    Register("SHAPE", 0x00C, "const", "network shape", (
        Field("N_INPUTS", 0, 16, "inputs (pixels) per image"),
        Field("N_CLASSES", 16, 8, "classes"),
        Field("TIMESTEPS", 24, 8, "time steps T"))),
    Register("GEOMETRY", 0x010, "const", "hardware parameters", (
        Field("N_LAYERS", 0, 8, "layers (hidden and output)"),
        Field("PIXELS_PER_BEAT", 8, 8, "pixels per accelerator input beat"),
        Field("LANES", 16, 12, "parallel lanes P"),
        Field("WEIGHT_RAM", 28, 1, "1: weights are loaded at run time through WEIGHT_ADDR/WEIGHT_DATA"),
        Field("GRAPH", 29, 1, "1: a layer graph (LAYER_SIZE and SPIKES follow its spiking nodes in topological "
                              "order), 0: a chain of dense layers"))),
    Register("WIDTHS", 0x014, "const", "result widths", (
        Field("SCORE_BITS", 0, 8, "bits of a score (signed)"),
        Field("WEIGHT_CHUNKS", 8, 8, "32-bit chunks per weight word (WEIGHT_DATA registers used)"),
        Field("WEIGHT_MEMORIES", 16, 8, "weight memories a run-time load fills (WEIGHT_ADDR.LAYER 0 .. n-1: a "
                                        "chain's layers, a layer graph's synapse nodes in topological order); "
                                        "0 when the weights are in ROM"))),
    Register("CTRL", 0x018, "wo", "control (write 1 to act)", (
        Field("START", 0, 1, "stream the pixel buffer into the accelerator and start an inference"),
        Field("SOFT_RESET", 1, 1, "reset the accelerator and this block (the pixel buffer and weights keep their contents)"),
        Field("CLEAR", 2, 1, "clear STATUS.DONE and STATUS.ERROR"),
        Field("IRQ_ENABLE", 3, 1, "write the interrupt enable (irq = DONE & IRQ_ENABLE)"))),
    Register("STATUS", 0x01C, "ro", "status", (
        Field("BUSY", 0, 1, "an image is in flight"),
        Field("DONE", 1, 1, "a result is available (cleared by START or CLEAR)"),
        Field("ERROR", 2, 1, "an error occurred (sticky until CLEAR)"),
        Field("LOADING", 3, 1, "the pixel buffer is being streamed: do not write PIXELS"),
        Field("IRQ_ENABLE", 4, 1, "interrupt enable"),
        Field("ERROR_CODE", 8, 4, "first error since CLEAR, see ERROR_CODES"))),
    Register("RESULT", 0x020, "ro", "class of the last image (valid while STATUS.DONE)"),
    Register("CYCLES", 0x024, "ro", "clock cycles of the last image: first beat accepted to result valid"),
    Register("IMAGES", 0x028, "ro", "results delivered since reset"),
    Register("WEIGHT_ADDR", 0x02C, "rw", "next weight word to write (auto-increments on WEIGHT_DATA[0])", (
        Field("ADDR", 0, 24, "word address inside the layer's weight memory"),
        Field("LAYER", 24, 8, "weight memory index (see WIDTHS.WEIGHT_MEMORIES)"))),
    Register("LAYER_SIZE", 0x040, "const", "neurons of layer l (a layer graph: of its spiking node l, the last "
             "entry the classes)", count=MAX_LAYERS),
    Register("SPIKES", 0x080, "ro", "spikes of stage s in the last image (0 = encoder, s = hidden layer s; a "
             "layer graph: spiking node s)",
             count=MAX_STAGES),
    Register("WEIGHT_DATA", 0x0C0, "wo",
             "weight word, 32 bits per chunk; writing chunk 0 writes the word (chunks > 0 first) and "
             "increments WEIGHT_ADDR.ADDR", count=MAX_WEIGHT_CHUNKS),
    Register("SCORE", 0x100, "ro", "score of class j (sign-extended), valid while STATUS.DONE", count=MAX_CLASSES),
    Register("PIXELS", PIXEL_WINDOW, "wo", "pixel buffer: word k holds pixels 4k..4k+3, pixel 4k in bits 7..0",
             count=PIXEL_WINDOW_WORDS),
)

BY_NAME = {r.name: r for r in REGISTERS}
ADDRESS_BYTES = PIXEL_WINDOW + 4 * PIXEL_WINDOW_WORDS
ADDRESS_BITS = (ADDRESS_BYTES - 1).bit_length() - 2  # word address bits on the bus


def register(name: str) -> Register:
    return BY_NAME[name]


def generator_version() -> int:
    major, minor = (int(x) for x in __version__.split(".")[:2])
    return (major << 8) | minor


def model_hash(artifact) -> int:
    """First 4 bytes of the SHA-256 of the artifact's arrays (as written to arrays.npz), big-endian."""
    return int(arrays_sha256(artifact)[:8], 16)


def pack_fields(register_name: str, **values: int) -> int:
    """A register value from named field values (each checked against its width)."""
    reg = BY_NAME[register_name]
    word = 0
    for name, value in values.items():
        f = reg.field(name)
        if not 0 <= value < (1 << f.width):
            raise ValueError(f"{register_name}.{name} = {value} does not fit {f.width} bits")
        word |= value << f.lsb
    return word


def weight_chunks(plan) -> int:
    return -(-plan.weight_data_bits // BUS_DATA_BITS)


def build_constants(plan) -> dict[str, int | list[int]]:
    """Values of the ``const`` registers for a generation plan (what the bitstream reports)."""
    art = plan.artifact
    return {
        "ID": ID_VALUE,
        "VERSION": pack_fields("VERSION", REGMAP=REGMAP_VERSION, GENERATOR=generator_version()),
        "MODEL_HASH": model_hash(art),
        "SHAPE": pack_fields("SHAPE", N_INPUTS=art.n_inputs, N_CLASSES=art.n_classes, TIMESTEPS=art.timesteps),
        "GEOMETRY": pack_fields("GEOMETRY", N_LAYERS=len(plan.layer_sizes), PIXELS_PER_BEAT=plan.pixels_per_beat,
                                LANES=plan.lanes, WEIGHT_RAM=int(plan.weight_storage == "ram"),
                                GRAPH=int(plan.is_graph)),
        "WIDTHS": pack_fields("WIDTHS", SCORE_BITS=plan.score_bits, WEIGHT_CHUNKS=weight_chunks(plan),
                              WEIGHT_MEMORIES=plan.weight_memory_count),
        "LAYER_SIZE": list(plan.layer_sizes),
    }
