"""Event-driven layer engine: the time-multiplexed, accumulate-only LIF array of one layer.

State
-----
One word per neuron group in the state memory ``u`` (``P`` lanes of ``state_bits``):

* LIF layer: ``u = leak(v) + B + (current accumulated so far in this step)``. At image
  start ``u = B``. ``state_bits = max(membrane, bias, current) + 2`` so the sum never wraps.
* Output layer: ``u = (score so far) + B`` (the bias of the running step is pre-added). At
  image start ``u = B``. Every value ``u`` takes is a prefix ``t*B + I_0 + ... + partial I_t``
  with ``1 <= t+1 <= T``, which lies in the proven score range, so ``score_bits`` suffices.
* Spiking output layer (``lif_output``): ``u`` as a LIF layer's, and per class a spike
  counter (``bits_for(T + 1)``, a register). Its end-of-step pass counts the spikes instead
  of emitting them; after the last step it latches each class's score
  ``{count, ~v[M-1], v[M-2:0]}`` (``count * 2^M + v + 2^(M-1)``, ``v`` the membrane after
  the reset: no adder) and clears the counters.

Passes
------
* **Integrate** (per input spike ``i``): for each group ``g``: ``u[g] += W[{i, g}]``, one
  group per cycle, pipelined in three stages (issue and read in cycle ``c``, operands in
  ``c+1``, add and write in ``c+2``; forwarding and the state memory's read port, which is
  transparent to its write port, keep back-to-back updates of one group exact). ``G``
  cycles per input spike; throughput one group per cycle.
* **End of step** (on the end-of-step token), one group per cycle:
  LIF: ``v' = sat(u)``, ``s = v' >= theta`` (``v' > theta`` with ``fire = ">"``), ``v = s ? (0 | v' - theta) : v'``,
  ``u = leak(v) + B`` (``u = B`` after the last step, ready for the next image); the spike
  mask of each group goes to a mask FIFO, and a serializer turns masks into spike tokens.
  Output: ``u += B``; after the last step the scores ``u`` are latched and ``u = B``.
  Spiking output: the LIF pass, the spikes counted (see above).
  ``G`` cycles, plus waiting for the mask FIFO to be empty (LIF) or the previous scores to
  be taken (output, last step only).
* **Clear** after reset: ``u = B`` for every group (``G`` cycles).

The only arithmetic is add, subtract, compare and constant shifts.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from snnfpga.rtl.plan import LayerPlan, bits_for
from snnfpga.rtl.tokens import (count_score, lane, lowest_set_bit, monitor_signature, or_tree, pack,
                                runtime_weight_memory, leak, saturate, scores_layout, step_counter_next, token_layout,
                                weight_load_signature)


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
    load : ``In(weight_load_signature)`` (weight storage ``ram``)
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
            members["load"] = In(weight_load_signature(lp.weight_depth, lp.weight_word_bits))
        if lp.is_output:
            members["scores"] = Out(stream.Signature(scores_layout(lp.layer.score_bits, lp.layer.n_out)))
        else:
            members["out"] = Out(stream.Signature(token_layout(lp.out_bits)))
            members["monitor"] = Out(monitor_signature(lp.out_bits, bits_for(timesteps)))
        super().__init__(members)

    def elaborate(self, platform):
        lp, T = self._lp, self._T
        layer, P, G, U = lp.layer, lp.lanes, lp.groups, lp.state_bits
        lif = layer.spiking  # LIF dynamics: hidden layers and a spiking output (lif_output)
        counts = lif and lp.is_output  # spikes counted per class, not emitted
        wb, bb = layer.weight_bits, layer.bias_bits
        tb = layer.threshold_bits if lif else 0
        m = Module()

        # Memories: weights (see _weights), state u (1R1W, read transparent to write),
        # bias/threshold (ROM).
        bias_words = _group_words(layer.bias, lp, bb)
        state_init = _group_words(layer.bias, lp, U)
        m.submodules.state = umem = Memory(shape=P * U, depth=len(state_init), init=state_init)
        param_words = bias_words
        if lif:
            th_words = _group_words(layer.threshold, lp, tb, pad=1)
            param_words = [b | (t << (P * bb)) for b, t in zip(bias_words, th_words)]
        m.submodules.params = pmem = Memory(shape=P * (bb + tb), depth=len(param_words), init=param_words)
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
        last_group = Signal(init=int(G == 1))  # g == G - 1, kept as a register (short paths)

        s2_op = Signal(2)
        s3_op = Signal(2)
        s2_g = Signal(range(G))
        s2_base = Signal(range(G * P + 1))
        s2_last_group = Signal()
        s2_last_step = Signal()

        s3_weights = self._weights(m, Cat(g, cur_i) if lp.group_bits else cur_i)
        m.d.comb += [
            u_rd.addr.eq(g),
            p_rd.addr.eq(g),
        ]
        m.d.sync += [s2_op.eq(op), s2_g.eq(g), s2_base.eq(base), s2_last_group.eq(last_group),
                     s2_last_step.eq(step == T - 1)]

        if not lp.is_output:
            mask_layout = data.StructLayout({"base": len(base), "mask": P, "eos": 1})
            # An end-of-step pass starts when the FIFO looked empty in the previous cycle (a
            # register: the level compare stays off the control path). Up to two masks of the
            # previous pass may still be on their way then (pushed in stage 3), so the FIFO
            # holds a whole pass plus two.
            m.submodules.masks = masks = SyncFIFOBuffered(width=mask_layout.size, depth=G + 2)
            can_fire = Signal()
            m.d.sync += can_fire.eq(masks.w_level == 0)
        else:
            scores_pending = Signal()
            # A spiking output latches its scores in stage 3: the last step's pass of the next
            # image also waits for the stage-3 writes of this one to have left.
            busy = scores_pending | (s2_op == FIRE) | (s3_op == FIRE) if counts else scores_pending
            can_fire = (step != T - 1) | ~busy

        def next_group():
            m.d.sync += [g.eq(g + 1), base.eq(base + P), last_group.eq(g == G - 2)]

        def restart_groups():
            m.d.sync += [g.eq(0), base.eq(0), last_group.eq(G == 1)]

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
                # The pass starts once the last INTEG has left stage 2 (see the hazards below).
                with m.If(started | (can_fire & (s2_op != INTEG))):
                    m.d.comb += op.eq(FIRE)
                    m.d.sync += started.eq(1)
                    with m.If(last_group):
                        m.d.sync += [started.eq(0), step.eq(step_counter_next(step, T))]
                        restart_groups()
                        m.next = "RUN"
                    with m.Else():
                        next_group()

        # ---- stage 2: memory data; operands registered -----------------------------------
        # ---- stage 3: one addition per lane; write back ---------------------------------
        # Every operation writes back in stage 3: ``a + b`` with ``a, b = (u, w)`` for INTEG
        # and ``(leak(v), B)`` for FIRE (LIF, reset to zero: ``leak(v) = u - (u >> k)``), or,
        # for CLEAR and the fired, saturated and last-step cases of FIRE, a value chosen from
        # registers (``B`` or ``B + leak(lo)``). Stage 2 holds the memory reads, the
        # comparisons and one subtractor beside them, each registered; stage 3 one adder and
        # the final choice. (No negation: Yosys would map ``-x`` to a ``$macc`` cell.)
        # Hazards (one write port, state read in stage 1): an INTEG right after an operation
        # on the same group (G == 1) takes that operation's stage-3 result (forwarding); an
        # end-of-step pass starts only when no INTEG is in stage 2; other operations on one
        # group are at least two cycles apart, which the state port's transparency covers.
        s3_g = Signal(range(G))
        s3_base = Signal(range(G * P + 1))
        s3_last_group = Signal()
        s2_fwd = Signal()
        m.d.sync += [s3_op.eq(s2_op), s3_g.eq(s2_g), s3_base.eq(s2_base), s3_last_group.eq(s2_last_group),
                     s2_fwd.eq((op == INTEG) & (s2_op != 0) & (s2_g == g))]
        s3_integ = Signal()
        m.d.sync += s3_integ.eq(s2_op == INTEG)
        new_words = []
        spike_bits = []
        held_words = []  # counts: the membrane each lane holds after this step's reset (stage 3)
        s3_last_step = Signal()
        m.d.sync += s3_last_step.eq(s2_last_step)
        s3_fire = s3_op == FIRE
        for p in range(P):
            u = lane(u_rd.data, p, U)
            bias = lane(p_rd.data, p, bb)
            new = Signal(signed(U), name=f"u_new{p}")
            s3_u = Signal(signed(U), name=f"s3_u{p}")  # INTEG operands
            s3_a = Signal(signed(U), name=f"s3_a{p}")  # FIRE operands: a + B
            s3_b = Signal(signed(bb), name=f"s3_b{p}")  # B, also the value of CLEAR
            s3_w = lane(s3_weights, p, wb)
            m.d.sync += [s3_u.eq(Mux(s2_fwd, new, u)), s3_b.eq(bias)]
            fire_use = Signal(name=f"fire_use_sum{p}")  # stage 3: FIRE writes a + B (else alt)
            fire_alt = Signal(signed(U), name=f"fire_alt{p}")
            if lif:
                mb = layer.membrane_bits
                k, k2 = layer.leak_shift, layer.leak_shift2
                theta = p_rd.data[P * bb + p * tb:P * bb + (p + 1) * tb].as_signed()
                hi, lo = (1 << (mb - 1)) - 1, -(1 << (mb - 1))
                # sat(u) >= theta  <=>  u >= theta, since 0 <= theta <= max(membrane); with
                # fire ">", sat(u) > theta  <=>  u > theta, since the membrane holds theta + 1.
                s3_fired = Signal(name=f"s3_fired{p}")
                fires = u > theta if layer.fire == ">" else u >= theta
                m.d.sync += s3_fired.eq(fires)
                spike_bits.append(s3_fired)
                if layer.reset == "zero":
                    # Not fired, not saturated: leak(u) + B = (u - (u >> k)) + B. Fired (which
                    # u > max(membrane) implies): leak(0) + B = B. Below the range: leak(lo) + B.
                    s3_under = Signal(name=f"s3_under{p}")
                    s3_b_lo = Signal(signed(U), name=f"s3_b_lo{p}")
                    m.d.sync += [s3_a.eq(leak(u, k, k2)), s3_under.eq(u < lo), s3_b_lo.eq(bias + leak(lo, k, k2))]
                    held = Mux(fires, 0, saturate(u, mb))
                    m.d.comb += [fire_use.eq(~(s3_fired | s3_under | s3_last_step)),
                                 fire_alt.eq(Mux(s3_fired | s3_last_step, s3_b, s3_b_lo))]
                elif layer.reset == "subtract_next":
                    # snnTorch's reset: v = sat(u) is kept and the spike subtracts theta after
                    # the next step's leak: a = leak(sat(u)) - (fired ? theta : 0).
                    v_kept = Signal(signed(mb), name=f"v_kept{p}")
                    m.d.comb += v_kept.eq(saturate(u, mb))
                    leaked = leak(v_kept, k, k2)
                    m.d.sync += s3_a.eq(leaked - Mux(fires, theta, 0))
                    held = v_kept
                    m.d.comb += [fire_use.eq(~s3_last_step), fire_alt.eq(s3_b)]
                else:
                    # Reset by subtraction: v = fired ? sat(u) - theta : sat(u), then
                    # leak(v) + B = (v - (v >> k)) + B (one more subtractor in stage 2).
                    v_after = Signal(signed(mb), name=f"v_after{p}")
                    reset_value = Mux(u > hi, hi - theta, u - theta)  # sat(u) - theta when fired
                    m.d.comb += v_after.eq(Mux(fires, reset_value, saturate(u, mb)))
                    m.d.sync += s3_a.eq(leak(v_after, k, k2))
                    held = v_after
                    m.d.comb += [fire_use.eq(~s3_last_step), fire_alt.eq(s3_b)]
                if counts:
                    s3_v = Signal(signed(mb), name=f"s3_v{p}")
                    m.d.sync += s3_v.eq(held)
                    held_words.append(s3_v)
            else:
                m.d.sync += s3_a.eq(u)
                m.d.comb += [fire_use.eq(~s3_last_step), fire_alt.eq(s3_b)]
            # Stage 3: INTEG u + w; FIRE a + B or alt; CLEAR B.
            total = Mux(s3_integ, s3_u, s3_a) + Mux(s3_integ, s3_w, s3_b)
            m.d.comb += new.eq(Mux(s3_integ | (s3_fire & fire_use), total, Mux(s3_fire, fire_alt, s3_b)))
            new_words.append(new)
        m.d.comb += [u_wr.en.eq(s3_op != 0), u_wr.addr.eq(s3_g), u_wr.data.eq(Cat(*new_words))]

        if not lp.is_output:
            # The spike masks enter the mask FIFO in stage 3 (see can_fire above).
            self._serializer(m, masks, mask_layout, spike_bits, s3_op == FIRE, s3_base,
                             s3_last_group)
        elif counts:
            self._latch_counts(m, spike_bits, held_words, s3_op == FIRE, s3_g, s3_last_step, s3_last_group,
                               scores_pending)
        else:
            self._latch_scores(m, u_rd, s2_op == FIRE, s2_g, s2_last_step, s2_last_group,
                               scores_pending)
        return m

    def _weights(self, m, addr) -> Signal:
        """The weight memory, read at ``addr`` (stage 1); returns the word of the operation in
        stage 3, from registers loaded in stage 2.

        ROM: contents in the bitstream, ``weight_banks`` banks by address (rtl/plan.py); each
        bank's output is registered (zero unless it is the operation's bank) and the word is
        the OR of the registers, so block RAM outputs drive no logic. RAM:
        :func:`~snnfpga.rtl.tokens.runtime_weight_memory` (single port: maps to iCE40 SPRAM)."""
        lp = self._lp
        word = lp.weight_word_bits
        if self._ram:
            outputs = [runtime_weight_memory(m, lp.weight_depth, word, self.load, addr)]
        else:
            words = weight_words(lp)
            depth = lp.weight_bank_depth or lp.weight_depth
            outputs = []
            for b in range(lp.weight_banks):
                mem = Memory(shape=word, depth=min(depth, lp.weight_depth - b * depth),
                             init=words[b * depth:(b + 1) * depth])
                m.submodules[f"weights{b}" if lp.weight_banks > 1 else "weights"] = mem
                port = mem.read_port()
                m.d.comb += port.addr.eq(addr[:bits_for(depth)] if lp.weight_banks > 1 else addr)
                outputs.append(port.data)
        registered = [Signal(word, name=f"s3_weights{b}") for b in range(len(outputs))]
        if len(registered) == 1:
            m.d.sync += registered[0].eq(outputs[0])
            return registered[0]
        # Banked: every bank register but the operation's bank loads zero (a synchronous reset
        # of the flip-flops, no logic behind the block RAMs), so the word is their OR (no
        # select signal fanning out to every bit).
        select = Signal(range(len(registered)))  # the bank of the operation in stage 2
        m.d.sync += select.eq(addr[bits_for(lp.weight_bank_depth):])
        m.d.sync += [r.eq(Mux(select == b, d, 0)) for b, (r, d) in enumerate(zip(registered, outputs))]
        chosen = Signal(word, name="s3_weight_word")
        m.d.comb += chosen.eq(or_tree(registered))
        return chosen

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
        # The tokens leave through a one-entry output register (the priority encoder and the
        # address adder stay off the path into the next stage): ``take`` when it is empty or
        # being emptied this cycle. Throughput one token per cycle.
        o_valid = Signal()
        o_addr = Signal(lp.out_bits)
        o_eos = Signal()
        take = ~o_valid | self.out.ready
        with m.If(self.out.ready):
            m.d.sync += o_valid.eq(0)

        def emit(addr, eos):
            m.d.sync += [o_valid.eq(1), o_addr.eq(addr), o_eos.eq(eos)]

        with m.If(masks.r_rdy & take):
            with m.If(remaining != 0):
                # Group bases are multiples of P: with P a power of two the sum is an OR.
                emit(head.base | low if P & (P - 1) == 0 else head.base + low, 0)
                m.d.sync += consumed.eq(consumed | (remaining ^ rest))
            with m.Elif(head.eos):
                emit(0, 1)
                m.d.comb += masks.r_en.eq(1)
                m.d.sync += consumed.eq(0)
        # A group's mask leaves the FIFO the cycle after its last spike (one cycle per group
        # with spikes; deciding it with that spike would put the ``remaining - 1`` carry chain
        # in front of the FIFO's level logic).
        with m.If(masks.r_rdy & (remaining == 0) & ~head.eos):
            m.d.comb += masks.r_en.eq(1)
            m.d.sync += consumed.eq(0)
        transfer = self.out.valid & self.out.ready
        with m.If(transfer & o_eos):
            m.d.sync += out_step.eq(step_counter_next(out_step, T))
        m.d.comb += [
            self.out.valid.eq(o_valid), self.out.payload.addr.eq(o_addr), self.out.payload.eos.eq(o_eos),
            self.monitor.valid.eq(transfer & ~o_eos),
            self.monitor.eos.eq(transfer & o_eos),
            self.monitor.addr.eq(o_addr),
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

    def _latch_counts(self, m, fired, held, firing, s3_g, s3_last_step, s3_last_group, pending):
        """A spiking output (stage 3 of each end-of-step pass): count each class's spikes; after
        the last step latch ``{count, ~v[M-1], v[M-2:0]}`` (``count * 2^M + v + 2^(M-1)``, the
        contract's score) and clear the counts for the next image."""
        lp = self._lp
        P, n, T = lp.lanes, lp.layer.n_out, self._T
        for g in range(lp.groups):
            for p in range(P):
                j = g * P + p
                if j >= n:
                    continue
                count = Signal(range(T + 1), name=f"count{j}")
                total = Signal(range(T + 1), name=f"count_next{j}")
                v = held[p]
                m.d.comb += total.eq(count + fired[p])
                with m.If(firing & (s3_g == g)):
                    with m.If(s3_last_step):
                        m.d.sync += [self.scores.payload[f"class{j}"].eq(count_score(total, v)), count.eq(0)]
                    with m.Else():
                        m.d.sync += count.eq(total)
        with m.If(firing & s3_last_step & s3_last_group):
            m.d.sync += pending.eq(1)
        with m.If(self.scores.valid & self.scores.ready):
            m.d.sync += pending.eq(0)
        m.d.comb += self.scores.valid.eq(pending)
