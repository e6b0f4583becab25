"""Control/status register block: the accelerator on a Wishbone B4 classic bus.

Implements :data:`snnfpga.firmware.regmap.REGISTERS` (the single source of truth for offsets,
fields and build constants). Holds a pixel buffer (``ceil(n_inputs / 4)`` bus words of 32 bits,
in rows of ``max(4, B)`` pixels: with ``B = 8`` each row holds two bus words, written one
32-bit half at a time): ``CTRL.START`` streams it into the accelerator, ``B`` pixels per beat,
one beat per cycle;
the result stays in the accelerator's result registers (``STATUS.DONE``) until the next
``START`` or ``CTRL.CLEAR``; the counters are the accelerator's own. With weight storage
``ram`` the weight words are written through ``WEIGHT_ADDR``/``WEIGHT_DATA``.

Bus timing: a write is acknowledged one cycle after ``cyc & stb``, a read two cycles after
(registered address decode; see :mod:`snnfpga.rtl.wishbone`). One image at a time: the
block runs the next image only after ``START``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from snnfpga.errors import MappingError
from snnfpga.firmware import regmap as R
from snnfpga.rtl.decision import result_layout
from snnfpga.rtl.tokens import or_tree, weight_port_signature
from snnfpga.rtl.top import counters_signature
from snnfpga.rtl.wishbone import wishbone_signature


def check_mappable(plan) -> None:
    """Raise :class:`MappingError` if the plan does not fit the register map."""
    art = plan.artifact
    limits = [
        (plan.pixels_per_beat in (1, 2, 4, 8),
         f"the register block streams 1, 2, 4 or 8 pixels per beat, not {plan.pixels_per_beat}"),
        (art.n_inputs <= 4 * R.PIXEL_WINDOW_WORDS, f"{art.n_inputs} inputs exceed the pixel window ({4 * R.PIXEL_WINDOW_WORDS})"),
        (art.n_classes <= R.MAX_CLASSES, f"{art.n_classes} classes exceed the {R.MAX_CLASSES} SCORE registers"),
        (len(plan.layer_sizes) <= R.MAX_LAYERS,
         f"{len(plan.layer_sizes)} layers exceed the {R.MAX_LAYERS} LAYER_SIZE registers"),
        (plan.n_stages <= R.MAX_STAGES, f"{plan.n_stages} spiking stages exceed the {R.MAX_STAGES} SPIKES registers"),
        (plan.score_bits <= 32, f"{plan.score_bits}-bit scores do not fit a 32-bit register"),
        (plan.weight_storage != "ram" or R.weight_chunks(plan) <= R.MAX_WEIGHT_CHUNKS,
         f"{plan.weight_data_bits}-bit weight words exceed the {R.MAX_WEIGHT_CHUNKS} WEIGHT_DATA chunks "
         f"(weights ram: use fewer lanes or weights rom)"),
        (plan.weight_storage != "ram" or plan.weight_memory_count <= R.MAX_WEIGHT_MEMORIES,
         f"{plan.weight_memory_count} weight memories exceed the {R.MAX_WEIGHT_MEMORIES} that WEIGHT_ADDR.LAYER "
         f"indexes (weights ram: use weights rom)"),
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
    weights : ``Out(weight_port_signature)`` (weight storage ``ram``).
    """

    def __init__(self, plan):
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
            members["weights"] = Out(weight_port_signature(plan))
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
        drop_result = Signal()  # one-cycle ready pulse that discards the held result (registered)
        reset_pending = Signal()
        start = Signal()  # one cycle after the START write (registered: keeps the bus decode short)
        done = self.result.valid
        m.d.comb += [self.irq.eq(done & irq_enable), self.result.ready.eq(drop_result),
                     self.soft_reset.eq(reset_pending)]
        with m.If(done):
            m.d.sync += busy.eq(0)

        def set_error(code):
            with m.If(error_code == R.ERROR_NONE):
                m.d.sync += error_code.eq(code)

        # ---- pixel buffer and streamer -------------------------------------------------
        halves = max(1, plan.pixels_per_beat // 4)  # bus words per buffer row
        n_rows = -(-n_words // halves)
        m.submodules.pixbuf = pixbuf = Memory(shape=32 * halves, depth=max(2, n_rows), init=[])
        buf_w, buf_r = pixbuf.write_port(granularity=32), pixbuf.read_port()
        self._streamer(m, buf_r, n_rows, start, loading)

        # ---- bus ------------------------------------------------------------------------
        # Writes are acknowledged one cycle after ``cyc & stb``; reads two cycles after: the
        # address decode is registered one-hot (``hits``), then the selected value goes to
        # ``dat_r`` (an AND-OR of few levels: the read path does not limit the clock).
        bus = self.bus
        ack = Signal()
        reading = Signal()
        access = bus.cyc & bus.stb & ~ack & ~reading
        m.d.sync += [ack.eq((access & bus.we) | reading), reading.eq(access & ~bus.we)]
        m.d.comb += bus.ack.eq(ack)
        word = bus.adr  # word address
        status = R.BY_NAME["STATUS"]

        # Writes act one cycle after the access, from registered copies of the request: the
        # address decode (``hit``) is registered, so no bus path reaches the enables directly.
        # The acknowledge still comes one cycle after ``cyc & stb``; the write has taken effect
        # before the master's next access.
        wr = Signal()
        wr_data = Signal(32)
        m.d.sync += [wr.eq(access & bus.we), wr_data.eq(bus.dat_w)]

        def hit(offset: int) -> Signal:
            flag = Signal(name=f"wr_hit_{offset:03x}")
            m.d.sync += flag.eq(word == offset >> 2)
            return flag

        if plan.weight_storage == "ram":
            weight_addr = self._weight_loader(m, wr, hit, wr_data, set_error, busy)
        sources = []  # (byte offset, value)
        for name in ("ID", "VERSION", "MODEL_HASH", "SHAPE", "GEOMETRY", "WIDTHS"):
            sources.append((R.BY_NAME[name].offset, Const(consts[name], 32)))
        for layer, size in enumerate(consts["LAYER_SIZE"]):
            sources.append((R.BY_NAME["LAYER_SIZE"].address(layer), Const(size, 32)))
        sources.append((status.offset, Cat(busy & ~done, done, error_code != R.ERROR_NONE, loading, irq_enable,
                                           Const(0, status.field("ERROR_CODE").lsb - 5), error_code)))
        sources.append((R.BY_NAME["RESULT"].offset, self.result.payload.cls))
        sources.append((R.BY_NAME["CYCLES"].offset, self.counters.cycles))
        sources.append((R.BY_NAME["IMAGES"].offset, self.counters.images))
        for stage in range(plan.n_stages):
            sources.append((R.BY_NAME["SPIKES"].address(stage), self.counters.spikes[f"stage{stage}"]))
        for j in range(art.n_classes):
            sources.append((R.BY_NAME["SCORE"].address(j), self.result.payload.scores[f"class{j}"].as_signed()))
        if plan.weight_storage == "ram":
            sources.append((R.BY_NAME["WEIGHT_ADDR"].offset, weight_addr))
        hits = Signal(len(sources))
        with m.If(access & ~bus.we):
            m.d.sync += hits.eq(Cat(word == offset >> 2 for offset, _ in sources))
        words = []
        for k, (_, value) in enumerate(sources):
            word32 = Signal(32, name=f"read_source{k}")
            m.d.comb += word32.eq(value)  # sign-extends the signed scores
            words.append(Mux(hits[k], word32, 0))
        read_value = Signal(32)
        m.d.comb += read_value.eq(or_tree(words))
        with m.If(reading):
            m.d.sync += bus.dat_r.eq(read_value)

        ctrl = R.BY_NAME["CTRL"]
        m.d.sync += [start.eq(0), drop_result.eq(0)]
        pixel_base = R.PIXEL_WINDOW >> 2
        in_window = Signal()
        pixel_word = Signal(range(max(2, n_words)))
        m.d.sync += [in_window.eq((word >= pixel_base) & (word < pixel_base + n_words)),
                     pixel_word.eq(word - pixel_base)]
        ctrl_hit = hit(ctrl.offset)
        with m.If(wr):
            with m.If(ctrl_hit):
                data = wr_data
                with m.If(data[ctrl.field("START").lsb]):
                    with m.If(busy & ~done):
                        set_error(R.ERROR_START_WHILE_BUSY)
                    with m.Else():
                        m.d.sync += [start.eq(1), drop_result.eq(done)]
                        m.d.sync += busy.eq(1)
                with m.If(data[ctrl.field("CLEAR").lsb]):
                    m.d.sync += drop_result.eq(1)
                    m.d.sync += error_code.eq(R.ERROR_NONE)
                with m.If(data[ctrl.field("IRQ_ENABLE").lsb]):
                    m.d.sync += irq_enable.eq(1)
                with m.Else():
                    m.d.sync += irq_enable.eq(0)
                with m.If(data[ctrl.field("SOFT_RESET").lsb]):
                    m.d.sync += reset_pending.eq(1)
            with m.If(in_window):
                with m.If(loading):
                    set_error(R.ERROR_PIXELS_WHILE_LOADING)
                with m.Else():
                    if halves == 1:
                        m.d.comb += [buf_w.en.eq(1), buf_w.addr.eq(pixel_word), buf_w.data.eq(wr_data)]
                    else:  # one 32-bit half of a row: bit 0 of the bus word picks which
                        m.d.comb += [buf_w.en.eq(1 << pixel_word[0]), buf_w.addr.eq(pixel_word >> 1),
                                     buf_w.data.eq(Cat(wr_data, wr_data))]

        # Soft reset: one cycle to the accelerator, and every register of this block (including
        # reset_pending itself) back to its initial value; the pixel buffer keeps its contents.
        return ResetInserter(reset_pending)(m)

    def _streamer(self, m, buf_r, n_words, start, loading):
        """On ``start``: read the buffer row by row (``n_words`` rows of ``max(4, B)`` pixels)
        and emit exactly ``beats_per_image`` beats of ``B`` pixels (the padding pixels of the
        last row are not sent when ``B < 4``)."""
        plan = self._plan
        B = plan.pixels_per_beat
        slices = max(1, 4 // B)
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

    def _weight_loader(self, m, write, hit, data, set_error, busy):
        """``WEIGHT_ADDR`` register and ``WEIGHT_DATA`` chunks; chunk 0 commits the word."""
        plan = self._plan
        chunks = R.weight_chunks(plan)
        addr_reg = R.BY_NAME["WEIGHT_ADDR"]
        layer = Signal(8)
        addr = Signal(24)
        staged = [Signal(32, name=f"weight_chunk{k}") for k in range(1, chunks)]
        data_base = R.BY_NAME["WEIGHT_DATA"].offset >> 2
        with m.If(write & hit(addr_reg.offset)):
            m.d.sync += [addr.eq(data[:24]), layer.eq(data[24:32])]
        for k, reg in enumerate(staged, start=1):
            with m.If(write & hit(4 * (data_base + k))):
                m.d.sync += reg.eq(data)
        commit = write & hit(4 * data_base)
        m.d.sync += self.weights.valid.eq(0)
        with m.If(commit):
            with m.If(busy):
                set_error(R.ERROR_WEIGHTS_WHILE_BUSY)
            with m.Else():
                # Registered: the weight memories see the write one cycle later (a short path
                # from the bus decode to the SPRAM address).
                m.d.sync += [self.weights.valid.eq(1), self.weights.payload.layer.eq(layer),
                             self.weights.payload.addr.eq(addr),
                             self.weights.payload.data.eq(Cat(data, *staged))]
                m.d.sync += addr.eq(addr + 1)
        return Cat(addr, layer)
