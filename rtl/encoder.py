"""Input encoder: pixel beats in, spike tokens out (contract section 1).

Loads one image (``B`` pixels per beat, row-major, pixel ``k`` in byte ``k % B`` of beat
``k // B``), then for each of the ``T`` steps scans the image one memory word (``B``
pixels) per cycle, updates the rate-coding accumulators (``acc += x``; spike and
``acc -= 256`` on ``acc >= 256``, i.e. bit 8 of the 9-bit sum), compares with the
threshold level, or (``ttfs``, ``b`` bits) compares ``x >> (8 - b)`` with a down-counter
``S - step`` (a spike in window 0 only; the later steps are not scanned: an end-of-step
token at once), and emits the addresses of the spiking pixels, one per cycle, followed
by an end-of-step token. Pipeline per word: A issue the reads, B memory data, R the data
registered (block RAM outputs drive no logic: they are slow), C emit its spikes.

Latency/throughput: ``ceil(n/B)`` cycles to load an image; per step about
``ceil(n/B) + (spikes - words with a spike) + 4`` cycles when the output is never
stalled. The next image is accepted once the last step has been scanned.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from snnfpga.rtl.plan import Plan, bits_for
from snnfpga.rtl.tokens import lowest_set_bit, monitor_signature, step_counter_next, token_layout


def pixel_beats(pixels, per_beat: int, rng: np.random.Generator | None = None) -> list[int]:
    """One flattened image (``int [n]``, 0..255) as input stream words: pixel ``k`` of a beat
    in bits ``[8k, 8k+8)``. The bytes of the last beat beyond pixel ``n - 1`` are don't-care
    for the encoder: zero, or random bytes from ``rng`` (benches use that to prove they are
    ignored)."""
    flat = np.asarray(pixels, dtype=np.uint64)
    n_words = -(-len(flat) // per_beat)
    if rng is None:
        padded = np.zeros(n_words * per_beat, dtype=np.uint64)
    else:
        padded = rng.integers(0, 256, size=n_words * per_beat).astype(np.uint64)
    padded[:len(flat)] = flat
    shifts = np.arange(per_beat, dtype=np.uint64) * np.uint64(8)
    return [int(w) for w in (padded.reshape(-1, per_beat) << shifts).sum(axis=1, dtype=np.uint64)]


class InputEncoder(wiring.Component):
    """Multiplication-free input encoder.

    Members
    -------
    pixels : ``In(stream.Signature(8 * B))``
        Pixel beats of one image after another.
    spikes : ``Out(stream.Signature(token))``
        Spike tokens (pixel index) and one end-of-step token per step.
    image_start : ``Out(1)``
        Strobes in the cycle the first beat of an image is accepted.
    hold : ``In(1)``
        While high, no new image is accepted (used when the cycle counter cannot take one).
    monitor : ``Out(monitor_signature)``
        Every emitted spike with its step.
    """

    def __init__(self, plan: Plan):
        self._plan = plan
        art = plan.artifact
        self._addr_bits = bits_for(art.n_inputs)
        super().__init__({
            "pixels": In(stream.Signature(8 * plan.pixels_per_beat)),
            "spikes": Out(stream.Signature(token_layout(self._addr_bits))),
            "image_start": Out(1),
            "hold": In(1),
            "monitor": Out(monitor_signature(self._addr_bits, bits_for(art.timesteps))),
        })

    def elaborate(self, platform):
        plan, art = self._plan, self._plan.artifact
        enc, T = art.encoder, art.timesteps
        B = plan.pixels_per_beat
        n_words = plan.beats_per_image
        m = Module()

        m.submodules.pix = pix = Memory(shape=8 * B, depth=n_words, init=[])
        pix_w, pix_r = pix.write_port(), pix.read_port()
        rate = enc.kind == "rate"
        ttfs = enc.kind == "ttfs"
        if ttfs:
            window = enc.window_steps
            level = Signal(range(window + 1), init=window)  # S - step in window 0, then 0
        if rate:
            m.submodules.acc = acc = Memory(shape=8 * B, depth=n_words, init=[])
            acc_w, acc_r = acc.write_port(), acc.read_port()

        # Pixels past n_inputs in the last word are stored as 0 and never spike.
        tail = art.n_inputs - (n_words - 1) * B
        last_word_mask = Const((1 << (8 * tail)) - 1, 8 * B)

        w_load = Signal(range(n_words))
        step = Signal(range(T))
        w_issue = Signal(range(n_words + 1))  # next word to read
        b_valid = Signal()  # read data of word b_word is on the memory outputs
        b_word = Signal(range(n_words))
        r_valid = Signal()  # ... and registered (r_pix, r_acc) as word r_word
        r_word = Signal(range(n_words))
        r_pix = Signal(8 * B)
        r_acc = Signal(8 * B)
        c_mask = Signal(B)  # spikes of word c_word not yet emitted
        c_word = Signal(range(n_words))

        # Stage R: spikes of the registered word.
        spikes_r = Signal(B)
        new_acc = Signal(8 * B)
        for b in range(B):
            x = r_pix[8 * b:8 * b + 8]
            if rate:
                total = Signal(9, name=f"total{b}")
                m.d.comb += [total.eq(r_acc[8 * b:8 * b + 8] + x),
                             spikes_r[b].eq(total[8]),
                             new_acc[8 * b:8 * b + 8].eq(total[:8])]
            elif ttfs:
                m.d.comb += spikes_r[b].eq((x[8 - enc.bits:] == level) & (level != 0))
            else:
                m.d.comb += spikes_r[b].eq(x >= enc.level)

        # Stage C: emit the lowest pending spike of c_mask each cycle.
        low = lowest_set_bit(m, c_mask, "low")
        rest = Signal(B)
        m.d.comb += rest.eq(c_mask & (c_mask - 1))
        has_spike = c_mask != 0
        emit = Signal()
        c_ready = Signal()
        r_fire = Signal()
        r_ready = Signal()
        b_fire = Signal()
        b_ready = Signal()
        m.d.comb += [
            emit.eq(has_spike & self.spikes.ready),
            c_ready.eq(~has_spike | (emit & (rest == 0))),
            r_fire.eq(r_valid & c_ready),
            r_ready.eq(~r_valid | r_fire),
            b_fire.eq(b_valid & r_ready),
            b_ready.eq(~b_valid | b_fire),
        ]
        addr = c_word if B == 1 else Cat(low[:(B - 1).bit_length()], c_word)

        m.d.comb += [
            self.monitor.valid.eq(emit),
            self.monitor.eos.eq(self.spikes.valid & self.spikes.ready & self.spikes.payload.eos),
            self.monitor.addr.eq(addr),
            self.monitor.step.eq(step),
        ]

        with m.FSM(name="encoder"):
            with m.State("LOAD"):
                m.d.comb += self.pixels.ready.eq(~self.hold)
                with m.If(self.pixels.valid & ~self.hold):
                    data = self.pixels.payload
                    if tail != B:
                        data = data & (last_word_mask | (w_load != n_words - 1).replicate(8 * B))
                    m.d.comb += [pix_w.en.eq(1), pix_w.addr.eq(w_load), pix_w.data.eq(data),
                                 self.image_start.eq(w_load == 0)]
                    if rate:
                        m.d.comb += [acc_w.en.eq(1), acc_w.addr.eq(w_load),
                                     acc_w.data.eq(Const(enc.phase, 8).replicate(B))]
                    with m.If(w_load == n_words - 1):
                        m.d.sync += [w_load.eq(0), step.eq(0), w_issue.eq(0), b_valid.eq(0), r_valid.eq(0),
                                     c_mask.eq(0)]
                        if ttfs:
                            m.d.sync += level.eq(window)
                        m.next = "SCAN"
                    with m.Else():
                        m.d.sync += w_load.eq(w_load + 1)
            with m.State("SCAN"):
                # Stage A: issue reads; read ports hold their data while stage B is stalled.
                issue = (w_issue != n_words) & b_ready
                m.d.comb += [pix_r.addr.eq(w_issue), pix_r.en.eq(b_ready)]
                if rate:
                    m.d.comb += [acc_r.addr.eq(w_issue), acc_r.en.eq(b_ready)]
                with m.If(b_ready):
                    m.d.sync += [b_valid.eq(w_issue != n_words), b_word.eq(w_issue)]
                with m.If(issue):
                    m.d.sync += w_issue.eq(w_issue + 1)
                # Stage C output.
                with m.If(has_spike):
                    m.d.comb += [self.spikes.valid.eq(1), self.spikes.payload.addr.eq(addr)]
                with m.If(emit):
                    m.d.sync += c_mask.eq(rest)
                # Stage B -> R.
                with m.If(r_ready):
                    m.d.sync += r_valid.eq(b_valid)
                with m.If(b_fire):
                    m.d.sync += [r_word.eq(b_word), r_pix.eq(pix_r.data)]
                    if rate:
                        m.d.sync += r_acc.eq(acc_r.data)
                # Stage R -> C.
                with m.If(r_fire):
                    m.d.sync += [c_mask.eq(spikes_r), c_word.eq(r_word)]
                    if rate:
                        m.d.comb += [acc_w.en.eq(1), acc_w.addr.eq(r_word), acc_w.data.eq(new_acc)]
                # End of step: every word read, decided and emitted.
                with m.If((w_issue == n_words) & ~b_valid & ~r_valid & ~has_spike):
                    m.d.comb += [self.spikes.valid.eq(1), self.spikes.payload.eos.eq(1)]
                    with m.If(self.spikes.ready):
                        m.d.sync += [step.eq(step_counter_next(step, T)), w_issue.eq(0)]
                        if ttfs:  # after window 0 no pixel fires: no scan
                            with m.If(level != 0):
                                m.d.sync += level.eq(level - 1)
                            with m.If(level <= 1):
                                m.d.sync += w_issue.eq(n_words)
                        with m.If(step == T - 1):
                            m.next = "LOAD"
        return m
