"""Class decision: argmax of the scores, lowest index on ties (contract section 3).

Scans the classes one per cycle with a strict ``>`` comparison, so the first (lowest)
index of the maximum wins. The scan is pipelined for the clock (fetch a score into a
register, compare, update: three cycles per class). Latency ``3 (n_classes - 1) + 1``
cycles from scores valid to result valid.
The scores stay in the output engine's registers until the result is taken.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from snnfpga.rtl.plan import Plan
from snnfpga.rtl.tokens import scores_layout


def result_layout(plan: Plan) -> data.StructLayout:
    """Result payload: ``cls`` (class index) and ``scores`` (``n_classes`` signed scores)."""
    return data.StructLayout({
        "cls": plan.class_bits,
        "scores": scores_layout(plan.score_bits, plan.artifact.n_classes),
    })


class ArgmaxDecision(wiring.Component):
    """Members
    -------
    scores : ``In(stream.Signature(scores_layout))``
    result : ``Out(stream.Signature(result_layout))``
    done : ``Out(1)``
        Strobes in the first cycle a result is valid.
    """

    def __init__(self, plan: Plan):
        self._plan = plan
        n, sb = plan.artifact.n_classes, plan.score_bits
        super().__init__({
            "scores": In(stream.Signature(scores_layout(sb, n))),
            "result": Out(stream.Signature(result_layout(plan))),
            "done": Out(1),
        })

    def elaborate(self, platform):
        plan = self._plan
        n = plan.artifact.n_classes
        m = Module()
        index = Signal(range(n))  # the class being scanned
        best = Signal(range(n))
        best_score = Signal(signed(plan.score_bits))
        candidate = Signal(signed(plan.score_bits))
        # Pipelined for the clock, three cycles per class: fetch the score into a register,
        # compare it (registered), update the best.
        cand = Signal(signed(plan.score_bits))
        greater = Signal()
        with m.Switch(index):
            for j in range(n):
                with m.Case(j):
                    m.d.comb += candidate.eq(self.scores.payload[f"class{j}"])
        m.d.comb += [self.result.payload.cls.eq(best), self.result.payload.scores.eq(self.scores.payload)]
        # ``done`` is a register set on the way into DONE (no logic in front of its users).
        m.d.sync += self.done.eq(0)
        with m.FSM(name="decision"):
            with m.State("IDLE"):
                with m.If(self.scores.valid):
                    m.d.sync += [index.eq(1 if n > 1 else 0), best.eq(0), best_score.eq(self.scores.payload.class0)]
                    m.next = "FETCH" if n > 1 else "DONE"
                    if n == 1:
                        m.d.sync += self.done.eq(1)
            with m.State("FETCH"):
                m.d.sync += cand.eq(candidate)
                m.next = "COMPARE"
            with m.State("COMPARE"):
                m.d.sync += greater.eq(cand > best_score)
                m.next = "UPDATE"
            with m.State("UPDATE"):
                with m.If(greater):
                    m.d.sync += [best.eq(index), best_score.eq(cand)]
                with m.If(index == n - 1):
                    m.next = "DONE"
                    m.d.sync += self.done.eq(1)
                with m.Else():
                    m.d.sync += index.eq(index + 1)
                    m.next = "FETCH"
            with m.State("DONE"):
                m.d.comb += self.result.valid.eq(1)
                with m.If(self.result.ready):
                    m.d.comb += self.scores.ready.eq(1)
                    m.next = "IDLE"
        return m
