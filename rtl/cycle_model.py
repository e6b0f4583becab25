"""Cycle model of the accelerator: cycles per image as a formula in spike counts and lanes.

Notation: ``B`` pixels per beat, ``NW = ceil(n_0 / B)`` pixel words, ``G_l = ceil(n_l / P_l)``
groups of layer ``l`` (``P_l = min(P, n_l)`` lanes), ``S_l(t)`` spikes of stage ``l`` at
step ``t`` (``S_0`` = input spikes from the encoder), ``W_0(t)`` pixel words holding at
least one input spike at step ``t``.

Per step, each stage is busy for

* encoder: ``E(t) = NW + S_0(t) - W_0(t) + 4`` (one word per cycle, one extra cycle per
  additional spike in a word, pipeline and end-of-step token);
* layer ``l``: ``L_l(t) = S_{l-1}(t) * G_l + G_l + 3`` (``G_l`` cycles per input spike:
  event-driven, independent of ``n_{l-1}``; one end-of-step pass over the groups).

The stages form a pipeline across steps (each FIFO decouples neighbours), so an image takes

    cycles ~= NW + sum_t max(E(t), L_1(t), ..., L_L(t))
              + sum_{l>=2} S_{l-1}(T-1) * G_l + sum_{l>=1} (G_l + 3) + 3 * n_classes

(load, the slowest stage of each step, the drain after the last step: the deeper layers
integrate the last step's spikes, then every layer's end-of-step pass, and the class
decision, three cycles per class). The *sequential bound* ``NW + sum_t (E(t) + sum_l
L_l(t)) + 3 * n_classes`` assumes no overlap at all. Both are the latency of one image
entering an idle accelerator; images streamed back to back overlap (the encoder loads the
next image while the layers finish the last one), so each then waits for its predecessor
and the interval between results is shorter than its latency. :func:`estimate` evaluates
both from a reference trace; ``benchmarks/cycles.py`` compares them with simulation.
"""

from __future__ import annotations

import numpy as np

from snnfpga.rtl.plan import Plan
from snnfpga.sim.reference import Trace

ENCODER_OVERHEAD = 4
PIPELINE_OVERHEAD = 3
DECISION_CYCLES_PER_CLASS = 3


def stage_cycles(plan: Plan, trace: Trace) -> np.ndarray:
    """Busy cycles per image, step and stage: ``int [N, T, 1 + L]`` (encoder first)."""
    B = plan.pixels_per_beat
    n_words = plan.beats_per_image
    s0 = trace.spikes[0]
    n, T, n_in = s0.shape
    padded = np.zeros((n, T, n_words * B), dtype=bool)
    padded[:, :, :n_in] = s0 > 0
    words_with_spike = padded.reshape(n, T, n_words, B).any(axis=3).sum(axis=2)
    counts = [s.sum(axis=2) for s in trace.spikes]  # [N, T] per stage
    out = np.zeros((n, T, 1 + len(plan.layers)), dtype=np.int64)
    out[:, :, 0] = n_words + counts[0] - words_with_spike + ENCODER_OVERHEAD
    for lp in plan.layers:
        out[:, :, 1 + lp.index] = counts[lp.index] * lp.groups + lp.groups + PIPELINE_OVERHEAD
    return out


def estimate(plan: Plan, trace: Trace) -> dict[str, np.ndarray]:
    """``{"pipelined": int [N], "sequential": int [N]}`` cycles per image (see module doc)."""
    busy = stage_cycles(plan, trace)
    drain = sum(trace.spikes[lp.index][:, -1].sum(axis=1).astype(np.int64) * lp.groups for lp in plan.layers[1:])
    tail = sum(lp.groups + PIPELINE_OVERHEAD for lp in plan.layers)
    fixed = plan.beats_per_image + DECISION_CYCLES_PER_CLASS * plan.artifact.n_classes
    return {
        "pipelined": fixed + busy.max(axis=2).sum(axis=1) + drain + tail,
        "sequential": fixed + busy.sum(axis=(1, 2)),
    }


def cycles_per_image(plan: Plan, trace: Trace) -> np.ndarray:
    """The model's latency of each image entering an idle accelerator, ``int [N]``."""
    return estimate(plan, trace)["pipelined"]


def at_clock(cycles_per_image: float, mhz: float | None) -> dict:
    """``latency_us`` (us per image) and ``images_per_s`` at a clock of ``mhz`` MHz (both None
    without a clock, e.g. a design that did not place)."""
    if not mhz:
        return {"latency_us": None, "images_per_s": None}
    return {"latency_us": round(cycles_per_image / mhz, 2), "images_per_s": round(mhz * 1e6 / cycles_per_image, 1)}


def describe(plan: Plan) -> dict:
    """The formula and its constants, for the generated JSON description."""
    return {
        "formula": "NW + sum_t max(E(t), L_1(t), ..., L_L(t)) + sum_{l>=2} S_{l-1}(T-1) * G_l "
                   "+ sum_l (G_l + 3) + 3 * n_classes",
        "encoder_per_step": "E(t) = NW + S_0(t) - W_0(t) + 4",
        "layer_per_step": "L_l(t) = S_{l-1}(t) * G_l + G_l + 3",
        "sequential_bound": "NW + sum_t (E(t) + sum_l L_l(t)) + 3 * n_classes",
        "NW": plan.beats_per_image,
        "groups": [lp.groups for lp in plan.layers],
        "n_classes": plan.artifact.n_classes,
        "notes": "S_l(t): spikes of stage l at step t (S_0: input spikes); W_0(t): pixel words with "
                 "an input spike. Cycles grow with spike counts, not with n_in x n_out. Latency of one "
                 "image entering an idle accelerator; back-to-back images overlap.",
    }
