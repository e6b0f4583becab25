"""Control/status register block: the accelerator on a Wishbone B4 classic bus.

Implements :data:`snnfpga.firmware.regmap.REGISTERS` (the single source of truth for offsets,
fields and build constants). Holds a pixel buffer (``ceil(n_inputs / 4)`` words of 32 bits):
``CTRL.START`` streams it into the accelerator, ``B`` pixels per beat, one beat per cycle;
the result stays in the accelerator's result registers (``STATUS.DONE``) until the next
``START`` or ``CTRL.CLEAR``; the counters are the accelerator's own. With weight storage
``ram`` the weight words are written through ``WEIGHT_ADDR``/``WEIGHT_DATA``.

Bus timing: every access is acknowledged one cycle after ``cyc & stb`` (see
:mod:`snnfpga.rtl.wishbone`). One image at a time: the block runs the next image only after
``START``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from snnfpga.errors import MappingError
from snnfpga.firmware import regmap as R
from snnfpga.rtl.decision import result_layout
from snnfpga.rtl.plan import Plan, bits_for
from snnfpga.rtl.tokens import weight_load_layout
from snnfpga.rtl.top import counters_signature
from snnfpga.rtl.wishbone import wishbone_signature


def check_mappable(plan: Plan) -> None:
    """Raise :class:`MappingError` if the plan does not fit the register map."""
    art = plan.artifact
    limits = [
        (plan.pixels_per_beat in (1, 2, 4), f"the register block streams 1, 2 or 4 pixels per beat, not {plan.pixels_per_beat}"),
        (art.n_inputs <= 4 * R.PIXEL_WINDOW_WORDS, f"{art.n_inputs} inputs exceed the pixel window ({4 * R.PIXEL_WINDOW_WORDS})"),
        (art.n_classes <= R.MAX_CLASSES, f"{art.n_classes} classes exceed the {R.MAX_CLASSES} SCORE registers"),
        (len(art.layers) <= R.MAX_LAYERS, f"{len(art.layers)} layers exceed the {R.MAX_LAYERS} LAYER_SIZE registers"),
        (plan.score_bits <= 32, f"{plan.score_bits}-bit scores do not fit a 32-bit register"),
        (R.weight_chunks(plan) <= R.MAX_WEIGHT_CHUNKS, f"{plan.weight_data_bits}-bit weight words exceed {R.MAX_WEIGHT_CHUNKS} chunks"),
    ]
    for ok, message in limits:
        if not ok:
            raise MappingError(f"cannot map onto the register block: {message}")


class RegisterBlock(wiring.Component):
    """Members
    -------
    bus : ``In(wishbone_signature(regmap.ADDRESS_BITS))``
    irq : ``Out(1)``
        ``STATUS.DONE & IRQ_ENABLE``.
    pixels : ``Out(stream.Signature(8 * B))``, to the accelerator.
    result : ``In(stream.Signature(result_layout))``, from the accelerator.
    counters : ``In(counters_signature)``, from the accelerator.
    soft_reset : ``Out(1)``, to the accelerator (one cycle on ``CTRL.SOFT_RESET``).
    weights : ``Out(stream.Signature(weight_load_layout))`` (weight storage ``ram``).
    """

    def __init__(self, plan: Plan):
        check_mappable(plan)
        self._plan = plan
        members = {
            "bus": In(wishbone_signature(R.ADDRESS_BITS)),
            "irq": Out(1),
            "pixels": Out(stream.Signature(8 * plan.pixels_per_beat)),
            "result": In(stream.Signature(result_layout(plan))),
            "counters": In(counters_signature(plan)),
            "soft_reset": Out(1),
        }
        if plan.weight_storage == "ram":
            members["weights"] = Out(stream.Signature(weight_load_layout(
                plan.weight_addr_bits, plan.weight_data_bits, bits_for(len(plan.layers)))))
        super().__init__(members)

    def elaborate(self, platform):
        plan = self._plan
        art = plan.artifact
        consts = R.build_constants(plan)
        n_words = -(-art.n_inputs // 4)
        m = Module()

        # ---- state ----------------------------------------------------------------------
        busy = Signal()
        error_code = Signal(4)
        irq_enable = Signal()
        loading = Signal()
        drop_result = Signal()  # one-cycle ready pulse that discards the held result
        reset_pending = Signal()
        start = Signal()
        done = self.result.valid
        m.d.comb += [self.irq.eq(done & irq_enable), self.result.ready.eq(drop_result),
                     self.soft_reset.eq(reset_pending)]
        with m.If(done):
            m.d.sync += busy.eq(0)

        def set_error(code):
            with m.If(error_code == R.ERROR_NONE):
                m.d.sync += error_code.eq(code)

        # ---- pixel buffer and streamer -------------------------------------------------
        m.submodules.pixbuf = pixbuf = Memory(shape=32, depth=max(2, n_words), init=[])
        buf_w, buf_r = pixbuf.write_port(), pixbuf.read_port()
        self._streamer(m, buf_r, n_words, start, loading)

        # ---- bus ------------------------------------------------------------------------
        bus = self.bus
        ack = Signal()
        access = bus.cyc & bus.stb & ~ack
        m.d.sync += ack.eq(access)
        m.d.comb += bus.ack.eq(ack)
        word = bus.adr  # word address
        status = R.BY_NAME["STATUS"]

        read_value = Signal(32)
        if plan.weight_storage == "ram":
            weight_addr = self._weight_loader(m, access & bus.we, word, set_error, busy)
        with m.Switch(word):
            for name in ("ID", "VERSION", "MODEL_HASH", "SHAPE", "GEOMETRY", "WIDTHS"):
                with m.Case(R.BY_NAME[name].offset >> 2):
                    m.d.comb += read_value.eq(consts[name])
            for layer, size in enumerate(consts["LAYER_SIZE"]):
                with m.Case(R.BY_NAME["LAYER_SIZE"].address(layer) >> 2):
                    m.d.comb += read_value.eq(size)
            with m.Case(status.offset >> 2):
                m.d.comb += read_value.eq(Cat(
                    busy & ~done, done, error_code != R.ERROR_NONE, loading, irq_enable,
                    Const(0, status.field("ERROR_CODE").lsb - 5), error_code))
            with m.Case(R.BY_NAME["RESULT"].offset >> 2):
                m.d.comb += read_value.eq(self.result.payload.cls)
            with m.Case(R.BY_NAME["CYCLES"].offset >> 2):
                m.d.comb += read_value.eq(self.counters.cycles)
            with m.Case(R.BY_NAME["IMAGES"].offset >> 2):
                m.d.comb += read_value.eq(self.counters.images)
            for stage in range(len(art.layers)):
                with m.Case(R.BY_NAME["SPIKES"].address(stage) >> 2):
                    m.d.comb += read_value.eq(self.counters.spikes[f"stage{stage}"])
            for j in range(art.n_classes):
                with m.Case(R.BY_NAME["SCORE"].address(j) >> 2):
                    m.d.comb += read_value.eq(self.result.payload.scores[f"class{j}"].as_signed())
            if plan.weight_storage == "ram":
                with m.Case(R.BY_NAME["WEIGHT_ADDR"].offset >> 2):
                    m.d.comb += read_value.eq(weight_addr)
        with m.If(access & ~bus.we):
            m.d.sync += bus.dat_r.eq(read_value)

        ctrl = R.BY_NAME["CTRL"]
        with m.If(access & bus.we):
            with m.If(word == ctrl.offset >> 2):
                data = bus.dat_w
                with m.If(data[ctrl.field("START").lsb]):
                    with m.If(busy & ~done):
                        set_error(R.ERROR_START_WHILE_BUSY)
                    with m.Else():
                        m.d.comb += [start.eq(1), drop_result.eq(done)]
                        m.d.sync += busy.eq(1)
                with m.If(data[ctrl.field("CLEAR").lsb]):
                    m.d.comb += drop_result.eq(1)
                    m.d.sync += error_code.eq(R.ERROR_NONE)
                with m.If(data[ctrl.field("IRQ_ENABLE").lsb]):
                    m.d.sync += irq_enable.eq(1)
                with m.Else():
                    m.d.sync += irq_enable.eq(0)
                with m.If(data[ctrl.field("SOFT_RESET").lsb]):
                    m.d.sync += reset_pending.eq(1)
            pixel_base = R.PIXEL_WINDOW >> 2
            with m.If((word >= pixel_base) & (word < pixel_base + n_words)):
                with m.If(loading):
                    set_error(R.ERROR_PIXELS_WHILE_LOADING)
                with m.Else():
                    m.d.comb += [buf_w.en.eq(1), buf_w.addr.eq(word - pixel_base), buf_w.data.eq(bus.dat_w)]

        # Soft reset: one cycle to the accelerator, and every register of this block (including
        # reset_pending itself) back to its initial value; the pixel buffer keeps its contents.
        return ResetInserter(reset_pending)(m)

    def _streamer(self, m, buf_r, n_words, start, loading):
        """On ``start``: read the buffer word by word and emit exactly ``beats_per_image`` beats
        of ``B`` pixels (the padding pixels of the last word are not sent when ``B < 4``)."""
        plan = self._plan
        B = plan.pixels_per_beat
        slices = 4 // B
        beats = plan.beats_per_image
        issue = Signal(range(n_words + 1))
        have = Signal()  # the read port holds the current word
        remaining = Signal(range(beats + 1))
        piece = Signal(range(max(2, slices)))
        last_piece = (piece == slices - 1) if slices > 1 else Const(1)
        accepted = Signal()
        advance = Signal()
        m.d.comb += [
            self.pixels.valid.eq(have & (remaining != 0)),
            accepted.eq(self.pixels.valid & self.pixels.ready),
            advance.eq(~have | (accepted & last_piece)),
            buf_r.addr.eq(issue), buf_r.en.eq(advance),
            self.pixels.payload.eq(buf_r.data.word_select(piece, 8 * B) if slices > 1 else buf_r.data),
        ]
        with m.If(accepted):
            m.d.sync += [remaining.eq(remaining - 1), piece.eq(0 if slices == 1 else Mux(last_piece, 0, piece + 1))]
            with m.If(remaining == 1):
                m.d.sync += loading.eq(0)
        with m.If(advance):
            with m.If(loading & (issue != n_words)):
                m.d.sync += [have.eq(1), issue.eq(issue + 1)]
            with m.Else():
                m.d.sync += have.eq(0)
        with m.If(start):
            m.d.sync += [loading.eq(1), issue.eq(0), have.eq(0), piece.eq(0), remaining.eq(beats)]

    def _weight_loader(self, m, write, word, set_error, busy):
        """``WEIGHT_ADDR`` register and ``WEIGHT_DATA`` chunks; chunk 0 commits the word."""
        plan = self._plan
        chunks = R.weight_chunks(plan)
        addr_reg = R.BY_NAME["WEIGHT_ADDR"]
        layer = Signal(8)
        addr = Signal(24)
        staged = [Signal(32, name=f"weight_chunk{k}") for k in range(1, chunks)]
        data_base = R.BY_NAME["WEIGHT_DATA"].offset >> 2
        with m.If(write & (word == addr_reg.offset >> 2)):
            m.d.sync += [addr.eq(self.bus.dat_w[:24]), layer.eq(self.bus.dat_w[24:32])]
        for k, reg in enumerate(staged, start=1):
            with m.If(write & (word == data_base + k)):
                m.d.sync += reg.eq(self.bus.dat_w)
        commit = write & (word == data_base)
        with m.If(commit):
            with m.If(busy):
                set_error(R.ERROR_WEIGHTS_WHILE_BUSY)
            with m.Else():
                m.d.comb += [self.weights.valid.eq(1), self.weights.payload.layer.eq(layer),
                             self.weights.payload.addr.eq(addr),
                             self.weights.payload.data.eq(Cat(self.bus.dat_w, *staged))]
                m.d.sync += addr.eq(addr + 1)
        return Cat(addr, layer)
