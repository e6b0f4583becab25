"""Event-driven layer engine: the time-multiplexed, accumulate-only LIF array of one layer.

State
-----
One word per neuron group in the state memory ``u`` (``P`` lanes of ``state_bits``):

* LIF layer: ``u = leak(v) + B + (current accumulated so far in this step)``. At image
  start ``u = B``. ``state_bits = max(membrane, bias, current) + 2`` so the sum never wraps.
* Output layer: ``u = (score so far) + B`` (the bias of the running step is pre-added). At
  image start ``u = B``. Every value ``u`` takes is a prefix ``t*B + I_0 + ... + partial I_t``
  with ``1 <= t+1 <= T``, which lies in the proven score range, so ``score_bits`` suffices.

Passes
------
* **Integrate** (per input spike ``i``): for each group ``g``: ``u[g] += W[{i, g}]``, one
  group per cycle, pipelined (read in cycle ``c``, write in ``c+1``; the state memory's
  read port is transparent to its write port, so back-to-back updates of one group are
  exact). ``G`` cycles per input spike.
* **End of step** (on the end-of-step token), one group per cycle:
  LIF: ``v' = sat(u)``, ``s = v' >= theta``, ``v = s ? (0 | v' - theta) : v'``,
  ``u = leak(v) + B`` (``u = B`` after the last step, ready for the next image); the spike
  mask of each group goes to a mask FIFO, and a serializer turns masks into spike tokens.
  Output: ``u += B``; after the last step the scores ``u`` are latched and ``u = B``.
  ``G`` cycles, plus waiting for the mask FIFO to be empty (LIF) or the previous scores to
  be taken (output, last step only).
* **Clear** after reset: ``u = B`` for every group (``G`` cycles).

The only arithmetic is add, subtract, compare and constant shifts.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from snnfpga.rtl.plan import LayerPlan, bits_for
from snnfpga.rtl.tokens import (lane, lowest_set_bit, monitor_signature, pack, saturate, scores_layout,
                                step_counter_next, token_layout, weight_load_layout)


def weight_words(lp: LayerPlan) -> list[int]:
    """Weight memory contents, address ``{i, g}`` (see :mod:`snnfpga.rtl.plan`)."""
    layer, P = lp.layer, lp.lanes
    words = [0] * lp.weight_depth
    for i in range(layer.n_in):
        column = layer.weights[:, i]
        for g in range(lp.groups):
            words[(i << lp.group_bits) | g] = pack(column[g * P:(g + 1) * P], layer.weight_bits)
    return words


def _group_words(values, lp: LayerPlan, bits: int, pad: int = 0) -> list[int]:
    """One word per group (``P`` lanes of ``bits``), padded to at least two words: Yosys turns a
    one-word memory into registers with bracketed names that its ABC flows trip over."""
    P = lp.lanes
    padded = list(values) + [pad] * (lp.groups * P - len(values))
    words = [pack(padded[g * P:(g + 1) * P], bits) for g in range(lp.groups)]
    return words + [0] * (2 - len(words))


class LayerEngine(wiring.Component):
    """One layer of the accelerator (see the module docstring).

    Members
    -------
    inp : ``In(stream.Signature(token(in_bits)))``
        Input spike tokens and end-of-step tokens.
    out : ``Out(stream.Signature(token(out_bits)))`` (LIF layers)
        Output spike tokens (ascending neuron index within a step), then end of step.
    monitor : ``Out(monitor_signature)`` (LIF layers)
        Every emitted spike with its step.
    load : ``In(stream.Signature(weight_load_layout, always_ready=True))`` (weight storage ``ram``)
        Writes one weight word per cycle; only while no image is in flight.
    scores : ``Out(stream.Signature(scores_layout(score_bits, n_out)))`` (output layer)
        The scores after the last step, held until taken.
    """

    def __init__(self, lp: LayerPlan, timesteps: int, weight_storage: str = "rom"):
        self._lp = lp
        self._T = timesteps
        self._ram = weight_storage == "ram"
        members = {"inp": In(stream.Signature(token_layout(lp.in_bits)))}
        if self._ram:
            members["load"] = In(stream.Signature(weight_load_layout(bits_for(lp.weight_depth),
                                                                     lp.weight_word_bits), always_ready=True))
        if lp.is_output:
            members["scores"] = Out(stream.Signature(scores_layout(lp.layer.score_bits, lp.layer.n_out)))
        else:
            members["out"] = Out(stream.Signature(token_layout(lp.out_bits)))
            members["monitor"] = Out(monitor_signature(lp.out_bits, bits_for(timesteps)))
        super().__init__(members)

    def elaborate(self, platform):
        lp, T = self._lp, self._T
        layer, P, G, U = lp.layer, lp.lanes, lp.groups, lp.state_bits
        lif = not lp.is_output
        wb, bb = layer.weight_bits, layer.bias_bits
        tb = layer.threshold_bits if lif else 0
        m = Module()

        # Memories: weights (ROM), state u (1R1W, read transparent to write), bias/threshold (ROM).
        # ROM: contents in the bitstream. RAM: one shared address for reads and run-time writes,
        # reads disabled while writing (single-port, "no change" on write: maps to iCE40 SPRAM).
        m.submodules.weights = wmem = Memory(shape=P * wb, depth=lp.weight_depth,
                                             init=[] if self._ram else weight_words(lp))
        bias_words = _group_words(layer.bias, lp, bb)
        state_init = _group_words(layer.bias, lp, U)
        m.submodules.state = umem = Memory(shape=P * U, depth=len(state_init), init=state_init)
        param_words = bias_words
        if lif:
            th_words = _group_words(layer.threshold, lp, tb, pad=1)
            param_words = [b | (t << (P * bb)) for b, t in zip(bias_words, th_words)]
        m.submodules.params = pmem = Memory(shape=P * (bb + tb), depth=len(param_words), init=param_words)
        w_rd = wmem.read_port()
        u_wr = umem.write_port()
        u_rd = umem.read_port(transparent_for=(u_wr,))
        p_rd = pmem.read_port()

        # ---- stage 1: issue (combinational), registered into stage 2 --------------------
        INTEG, FIRE, CLEAR = 1, 2, 3
        op = Signal(2)
        g = Signal(range(G))
        cur_i = Signal(lp.in_bits)
        active = Signal()
        step = Signal(range(T))
        base = Signal(range(G * P + 1))  # g * P, kept as a running sum
        started = Signal()  # an end-of-step pass is under way
        last_group = g == G - 1

        s2_op = Signal(2)
        s2_g = Signal(range(G))
        s2_base = Signal(range(G * P + 1))
        s2_last_group = Signal()
        s2_last_step = Signal()

        engine_addr = Cat(g, cur_i) if lp.group_bits else cur_i
        if self._ram:
            w_wr = wmem.write_port()
            writing = self.load.valid
            shared_addr = Signal.like(w_rd.addr)  # one signal for both ports: Yosys sees a single port
            m.d.comb += [
                shared_addr.eq(Mux(writing, self.load.payload.addr, engine_addr)),
                w_wr.en.eq(writing), w_wr.data.eq(self.load.payload.data), w_rd.en.eq(~writing),
                w_wr.addr.eq(shared_addr), w_rd.addr.eq(shared_addr),
            ]
        else:
            m.d.comb += w_rd.addr.eq(engine_addr)
        m.d.comb += [
            u_rd.addr.eq(g),
            p_rd.addr.eq(g),
        ]
        m.d.sync += [s2_op.eq(op), s2_g.eq(g), s2_base.eq(base), s2_last_group.eq(last_group),
                     s2_last_step.eq(step == T - 1)]

        if lif:
            mask_layout = data.StructLayout({"base": len(base), "mask": P, "eos": 1})
            m.submodules.masks = masks = SyncFIFOBuffered(width=mask_layout.size, depth=G + 1)
            can_fire = masks.w_level == 0
        else:
            scores_pending = Signal()
            can_fire = (step != T - 1) | ~scores_pending

        def next_group():
            m.d.sync += [g.eq(g + 1), base.eq(base + P)]

        def restart_groups():
            m.d.sync += [g.eq(0), base.eq(0)]

        def take_token():
            """Accept the next input token (if any); a spike restarts the group loop."""
            m.d.comb += self.inp.ready.eq(1)
            with m.If(self.inp.valid):
                with m.If(self.inp.payload.eos):
                    m.d.sync += active.eq(0)
                    m.next = "STEP"
                with m.Else():
                    m.d.sync += [active.eq(1), cur_i.eq(self.inp.payload.addr)]
            with m.Else():
                m.d.sync += active.eq(0)
            restart_groups()

        with m.FSM(name="engine", init="CLEAR"):
            with m.State("CLEAR"):
                m.d.comb += op.eq(CLEAR)
                with m.If(last_group):
                    restart_groups()
                    m.next = "RUN"
                with m.Else():
                    next_group()
            with m.State("RUN"):
                with m.If(active):
                    m.d.comb += op.eq(INTEG)
                    with m.If(last_group):
                        take_token()
                    with m.Else():
                        next_group()
                with m.Else():
                    take_token()
            with m.State("STEP"):
                with m.If(started | can_fire):
                    m.d.comb += op.eq(FIRE)
                    m.d.sync += started.eq(1)
                    with m.If(last_group):
                        m.d.sync += [started.eq(0), step.eq(step_counter_next(step, T))]
                        restart_groups()
                        m.next = "RUN"
                    with m.Else():
                        next_group()

        # ---- stage 2: read data on the ports; compute and write back ---------------------
        new_words = []
        spike_bits = []
        for p in range(P):
            u = lane(u_rd.data, p, U)
            w = lane(w_rd.data, p, wb)
            bias = lane(p_rd.data, p, bb)
            new = Signal(signed(U), name=f"u_new{p}")
            if lif:
                theta = p_rd.data[P * bb + p * tb:P * bb + (p + 1) * tb].as_signed()
                vsat = Signal(signed(layer.membrane_bits), name=f"v_sat{p}")
                fired = Signal(name=f"fired{p}")
                v_after = Signal(signed(layer.membrane_bits), name=f"v_after{p}")
                leaked = Signal(signed(layer.membrane_bits), name=f"v_leak{p}")
                m.d.comb += [vsat.eq(saturate(u, layer.membrane_bits)), fired.eq(vsat >= theta)]
                reset_value = 0 if layer.reset == "zero" else vsat - theta
                m.d.comb += v_after.eq(Mux(fired, reset_value, vsat))
                if layer.leak_shift is None:
                    m.d.comb += leaked.eq(v_after)
                else:
                    m.d.comb += leaked.eq(v_after - (v_after >> layer.leak_shift))
                end_value = Mux(s2_last_step, bias, leaked + bias)
                spike_bits.append(fired)
            else:
                end_value = Mux(s2_last_step, bias, u + bias)
            with m.Switch(s2_op):
                with m.Case(INTEG):
                    m.d.comb += new.eq(u + w)
                with m.Case(FIRE):
                    m.d.comb += new.eq(end_value)
                with m.Case(CLEAR):
                    m.d.comb += new.eq(bias)
            new_words.append(new)
        m.d.comb += [u_wr.en.eq(s2_op != 0), u_wr.addr.eq(s2_g), u_wr.data.eq(Cat(*new_words))]

        if lif:
            self._serializer(m, masks, mask_layout, spike_bits, s2_op == FIRE, s2_base,
                             s2_last_group)
        else:
            self._latch_scores(m, u_rd, s2_op == FIRE, s2_g, s2_last_step, s2_last_group,
                               scores_pending)
        return m

    def _serializer(self, m, masks, mask_layout, spike_bits, firing, s2_base, s2_last_group):
        """Push each group's spike mask (non-empty, or the last with eos) and serialize them."""
        lp, T = self._lp, self._T
        P, G, n = lp.lanes, lp.groups, lp.layer.n_out
        valid_in_last = (1 << (n - (G - 1) * P)) - 1
        mask = Signal(P)
        m.d.comb += mask.eq(Cat(*spike_bits) & Mux(s2_last_group, valid_in_last, (1 << P) - 1))
        entry = data.View(mask_layout, masks.w_data)
        m.d.comb += [
            entry.base.eq(s2_base), entry.mask.eq(mask), entry.eos.eq(s2_last_group),
            masks.w_en.eq(firing & ((mask != 0) | s2_last_group)),
        ]

        head = data.View(mask_layout, masks.r_data)
        consumed = Signal(P)
        remaining = Signal(P)
        rest = Signal(P)
        out_step = Signal(range(T))
        m.d.comb += [remaining.eq(head.mask & ~consumed), rest.eq(remaining & (remaining - 1))]
        low = lowest_set_bit(m, remaining, "low")
        addr = Signal(lp.out_bits)
        m.d.comb += addr.eq(head.base + low)
        with m.If(masks.r_rdy):
            with m.If(remaining != 0):
                m.d.comb += [self.out.valid.eq(1), self.out.payload.addr.eq(addr)]
                with m.If(self.out.ready):
                    m.d.sync += consumed.eq(consumed | (remaining ^ rest))
                    with m.If((rest == 0) & ~head.eos):
                        m.d.comb += masks.r_en.eq(1)
                        m.d.sync += consumed.eq(0)
            with m.Elif(head.eos):
                m.d.comb += [self.out.valid.eq(1), self.out.payload.eos.eq(1)]
                with m.If(self.out.ready):
                    m.d.comb += masks.r_en.eq(1)
                    m.d.sync += [consumed.eq(0), out_step.eq(step_counter_next(out_step, T))]
            with m.Else():
                m.d.comb += masks.r_en.eq(1)
                m.d.sync += consumed.eq(0)
        m.d.comb += [
            self.monitor.valid.eq(self.out.valid & self.out.ready & ~self.out.payload.eos),
            self.monitor.eos.eq(self.out.valid & self.out.ready & self.out.payload.eos),
            self.monitor.addr.eq(addr),
            self.monitor.step.eq(out_step),
        ]

    def _latch_scores(self, m, u_rd, firing, s2_g, s2_last_step, s2_last_group, pending):
        """After the last step, copy each group's scores into the result registers."""
        lp = self._lp
        P, U, n = lp.lanes, lp.state_bits, lp.layer.n_out
        for g in range(lp.groups):
            with m.If(firing & s2_last_step & (s2_g == g)):
                for p in range(P):
                    j = g * P + p
                    if j < n:
                        m.d.sync += self.scores.payload[f"class{j}"].eq(lane(u_rd.data, p, U))
        with m.If(firing & s2_last_step & s2_last_group):
            m.d.sync += pending.eq(1)
        with m.If(self.scores.valid & self.scores.ready):
            m.d.sync += pending.eq(0)
        m.d.comb += self.scores.valid.eq(pending)
