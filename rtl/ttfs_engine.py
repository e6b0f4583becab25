"""The neuron engine of one ``ttfs`` node: this step's currents in, first spikes out.

The node's synapse half is the dense accumulate engine of every graph synapse
(rtl/accumulate.py): its buffer holds this step's current ``I = W s`` (the weight rows of
the step's input spikes; it is cleared to zero after every step). This engine keeps, per
neuron, the slope ``J`` (``slope_bits``), the membrane ``V`` (``membrane_bits``) and the
fired bit ``f``, one state word of ``P`` lanes per group; ``R`` and ``theta`` are a ROM word
per group. Once per step, on ``start``, the **neuron pass** visits the ``G`` groups in order,
one per cycle, and applies the contract's ``ttfs`` (docs/integer-contract.md, section 11):

* integrate window (the input's window ``n``): ``J += I``; ``V += J``;
* fire window (``n + 1``), step ``k``: ``V += R`` if ``k > 0``; fire when ``~f`` and
  ``V >= theta``; ``f |= fire``;
* any other step: the state is kept; after the image's last step every word is 0.

The widths are the node's proven ones (each input fires at most once), so no sum wraps and
no saturation is needed. The only arithmetic is add and compare: the ramp forms ``W x``.

Pipeline (as :class:`~snnfpga.rtl.neuron.LifEngine`'s): issue the addresses; stage 1 the
memory words, registered with the window's operands chosen; stage 2 ``J + I`` and
``V + (J | R)``, registered; stage 3 ``V'`` (one more addition), the compare, the write
back; stage 4 the registered spike mask into a :class:`~snnfpga.rtl.neuron.SpikeSerializer`.
One group per cycle: a pass takes ``G + 4`` cycles plus the spikes of its last groups.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from snnfpga.rtl.neuron import Layout, SpikeSerializer, event_layout_of_shape, threshold_words, zero_words
from snnfpga.rtl.tokens import lane, pack, step_counter_next


def ttfs_memories(node, lanes: int) -> dict:
    """``{purpose: (depth, width)}`` of the memories of a :class:`TtfsEngine`."""
    n = int(node.weight.shape[0])
    p = min(lanes, n)
    groups = -(-n // p)
    return {"state": (max(2, groups), p * (node.slope_bits + node.membrane_bits + 1)),
            "params": (max(2, groups), p * (node.ramp_bits + node.threshold_bits))}


def param_words(node, lanes: int) -> list[int]:
    """One word per group: lane ``p`` holds ``R`` (``ramp_bits``) in the low half of the word
    and ``theta`` (``threshold_bits``) in the high half. Padding lanes: ``R = 0`` and the
    largest threshold (their ``V`` stays 0: they never fire)."""
    n = int(node.weight.shape[0])
    p = min(lanes, n)
    groups = -(-n // p)
    ramps = list(node.ramp) + [0] * (groups * p - n)
    thetas, _ = threshold_words(node.threshold.reshape(n, 1, 1), Layout("c", "y", "x", (n, 1, 1)), p,
                                node.threshold_bits)
    words = [pack(ramps[g * p:(g + 1) * p], node.ramp_bits) | (thetas[g] << (p * node.ramp_bits))
             for g in range(groups)]
    return words + [0] * (2 - len(words))


class TtfsEngine(wiring.Component):
    """One ``ttfs`` node (see the module doc). ``window``: its input's window (``start``
    step, ``steps`` = S); it fires in the ``S`` steps that follow.

    Members (as :class:`~snnfpga.rtl.neuron.LifEngine`'s, one source)
    -------
    start : ``In(1)``
        Strobe: run this step's neuron pass (only while ``busy`` is low).
    zero : ``In(1)``
        Strobe, only while ``busy`` is low: every state word to 0 (``G`` cycles).
    busy, done : ``Out(1)``
        A pass, its spikes or a zeroing is running; ``done`` strobes when the last source
        word has been used (the buffer may be cleared from the next cycle).
    src0_addr, src0_en, src0_data
        The current buffer's read port (data one cycle after the address).
    events : ``Out(stream.Signature(event (c, y, x, eos)))``
        The neurons firing in this step, in index order, then ``eos``.
    """

    def __init__(self, node, lanes: int, source_bits: int, window, timesteps: int):
        self._node = node
        self.n = int(node.weight.shape[0])
        self.lanes = min(lanes, self.n)
        self.groups = -(-self.n // self.lanes)
        self._bits = source_bits
        self._window = window
        self._T = timesteps
        self.shape = (self.n, 1, 1)
        super().__init__({"start": In(1), "zero": In(1), "busy": Out(1), "done": Out(1),
                          "src0_addr": Out(range(max(2, self.groups))), "src0_en": Out(1),
                          "src0_data": In(self.lanes * source_bits),
                          "events": Out(stream.Signature(event_layout_of_shape(self.shape)))})

    @property
    def memories(self) -> dict[str, tuple[int, int]]:
        """``{purpose: (depth, width)}`` of the memories :meth:`elaborate` builds."""
        return ttfs_memories(self._node, self.lanes)

    def elaborate(self, platform):
        node, P, G, T = self._node, self.lanes, self.groups, self._T
        sb, mb, rb, tb = node.slope_bits, node.membrane_bits, node.ramp_bits, node.threshold_bits
        word = sb + mb + 1  # one lane of the state: J, V, fired
        m = Module()
        mems = self.memories
        m.submodules.state = smem = Memory(shape=mems["state"][1], depth=mems["state"][0], init=[])
        s_wr = smem.write_port()
        s_rd = smem.read_port(transparent_for=(s_wr,))
        m.submodules.params = pmem = Memory(shape=mems["params"][1], depth=mems["params"][0],
                                            init=param_words(node, P))
        p_rd = pmem.read_port()

        # Which window this step lies in (the step counter advances at the end of each pass).
        step = Signal(range(max(2, T)))
        first, steps = self._window.start, self._window.steps
        integrating = (step >= first) & (step < first + steps)
        firing = (step >= first + steps) & (step < first + 2 * steps)
        ramping = firing & (step != first + steps)
        last_step = step == T - 1

        # ---- issue ---------------------------------------------------------------------
        running = Signal()
        g = Signal(range(max(2, G)))
        base = Signal(range(G * P + 1))  # g * P
        last_word = g == G - 1
        m.submodules.out = out = SpikeSerializer(self.shape, P, ("c", "y", "x"), depth=SpikeSerializer.DEPTH + 3)
        wiring.connect(m, out.events, wiring.flipped(self.events))
        s1_valid, s2_valid, s3_valid, s4_valid = Signal(), Signal(), Signal(), Signal()
        room = (out.level + s1_valid + s2_valid + s3_valid + s4_valid) < out.DEPTH
        issue = running & room
        m.d.comb += [s_rd.addr.eq(g), p_rd.addr.eq(g), self.src0_addr.eq(g), self.src0_en.eq(1)]
        with m.If(self.start & ~running):
            m.d.sync += [running.eq(1), g.eq(0), base.eq(0)]
        with m.If(issue):
            m.d.sync += [g.eq(g + 1), base.eq(base + P)]
            with m.If(last_word):
                m.d.sync += [running.eq(0), g.eq(0), base.eq(0)]

        # ---- stages 1 .. 4 -------------------------------------------------------------
        s1_g, s1_base, s1_last = Signal.like(g), Signal.like(base), Signal()
        m.d.sync += [s1_valid.eq(issue), s1_g.eq(g), s1_base.eq(base), s1_last.eq(issue & last_word)]
        s2_g, s2_base, s2_last = Signal.like(g), Signal.like(base), Signal()
        s3_g, s3_base, s3_last = Signal.like(g), Signal.like(base), Signal()
        m.d.sync += [s2_valid.eq(s1_valid), s2_g.eq(s1_g), s2_base.eq(s1_base), s2_last.eq(s1_last),
                     s3_valid.eq(s2_valid), s3_g.eq(s2_g), s3_base.eq(s2_base), s3_last.eq(s2_last)]
        new_words, spikes = [], []
        for p in range(P):
            state = s_rd.data[p * word:(p + 1) * word]
            j, v, f = state[:sb].as_signed(), state[sb:sb + mb].as_signed(), state[sb + mb]
            # Stage 1 -> 2: the words registered, the window's operands chosen.
            s2_j, s2_v, s2_f = Signal(signed(sb), name=f"s2_j{p}"), Signal(signed(mb), name=f"s2_v{p}"), \
                Signal(name=f"s2_f{p}")
            s2_i = Signal(signed(self._bits), name=f"s2_i{p}")
            s2_r = Signal(signed(rb), name=f"s2_r{p}")
            s2_theta = Signal(signed(tb), name=f"s2_theta{p}")
            m.d.sync += [s2_j.eq(j), s2_v.eq(v), s2_f.eq(f),
                         s2_i.eq(Mux(integrating, lane(self.src0_data, p, self._bits), 0)),
                         s2_r.eq(Mux(ramping, lane(p_rd.data, p, rb), 0)),
                         s2_theta.eq(lane(p_rd.data[P * rb:], p, tb))]
            # Stage 2 -> 3: J' = J + I; V + (J in the integrate window, else R).
            s3_j, s3_vj = Signal(signed(sb), name=f"s3_j{p}"), Signal(signed(mb + 1), name=f"s3_vj{p}")
            s3_i, s3_f = Signal(signed(self._bits), name=f"s3_i{p}"), Signal(name=f"s3_f{p}")
            s3_theta = Signal(signed(tb), name=f"s3_theta{p}")
            m.d.sync += [s3_j.eq(s2_j + s2_i), s3_vj.eq(s2_v + Mux(integrating, s2_j, s2_r)), s3_i.eq(s2_i),
                         s3_f.eq(s2_f), s3_theta.eq(s2_theta)]
            # Stage 3: V' = V + J + I (integrate) or V + R (fire); compare; write back.
            v_new = Signal(signed(mb), name=f"v_new{p}")
            fired = Signal(name=f"fired{p}")
            m.d.comb += [v_new.eq(s3_vj + s3_i), fired.eq(firing & ~s3_f & (v_new >= s3_theta))]
            new_words.append(Mux(last_step, 0, Cat(s3_j, v_new, s3_f | fired)))
            spikes.append(fired)
        tail = self.n - (G - 1) * P
        mask = Signal(P)
        m.d.comb += mask.eq(Cat(*spikes) & Mux(s3_g == G - 1, (1 << tail) - 1, (1 << P) - 1))
        m.d.comb += [s_wr.en.eq(s3_valid), s_wr.addr.eq(s3_g), s_wr.data.eq(Cat(*new_words))]
        s4_mask, s4_base, s4_last = Signal(P), Signal.like(base), Signal()
        m.d.sync += [s4_valid.eq(s3_valid), s4_mask.eq(mask), s4_base.eq(s3_base), s4_last.eq(s3_last)]
        with m.If(s3_last):
            m.d.sync += step.eq(step_counter_next(step, T))

        zeroing = zero_words(m, self.zero & ~running, s_wr, G)
        d = out.push_data
        m.d.comb += [d.mask.eq(s4_mask), d.base.eq(s4_base), d.a.eq(0), d.b.eq(0), d.eos.eq(s4_last),
                     out.push.eq(s4_valid & ((s4_mask != 0) | s4_last)), self.done.eq(s3_last),
                     self.busy.eq(running | s1_valid | s2_valid | s3_valid | s4_valid | out.busy | zeroing)]
        return m
