"""Energy *estimate* per image from counted operations (not a measurement).

The accelerator's work per image is counted exactly from the integer reference trace and
the generation plan (what the hardware does, lane padding included):

* weight memory reads: one word of ``P * weight_bits`` bits per input spike and group;
* state updates: ``P`` additions (and a state-memory read and write of ``P * state_bits``
  bits) per input spike and group, plus one end-of-step pass over the groups per step
  (bias, leak, compare, reset: counted as 3 additions per neuron);
* encoder: one 8-bit addition per pixel and step (rate code), one pixel-memory read per
  word and step.

Per-operation energies are Horowitz, "Computing's energy problem (and what we can do about
it)", ISSCC 2014, 45 nm at 0.9 V: 8-bit integer add 0.03 pJ, 32-bit add 0.1 pJ (we take
0.05 pJ for the 10..20-bit state adds), 8-bit multiply 0.2 pJ, and an SRAM read of 64 bits
from an 8 kB array 10 pJ (FPGA block RAMs are 0.5..4.5 kB, so the smallest array applies;
scaled by the bits read). These are ASIC figures: an FPGA spends several times more per
operation (routing, LUTs), and static power is not counted. The comparison row is a dense
8-bit ANN of the same shape (one multiply-accumulate and one 8-bit weight read per synapse).
"""

from __future__ import annotations

import numpy as np

from snnfpga.rtl.plan import Plan
from snnfpga.sim.reference import Trace

SOURCE = "Horowitz, ISSCC 2014 (45 nm, 0.9 V)"
PJ = {
    "add8": 0.03,
    "add16": 0.05,  # between the 8-bit (0.03) and 32-bit (0.1) integer adds
    "add32": 0.1,
    "mult8": 0.2,
    "sram_read_64b_8kB": 10.0,
}


def sram_pj(bits: float) -> float:
    """Energy of reading (or writing) ``bits`` bits from a small SRAM, pJ."""
    return PJ["sram_read_64b_8kB"] * bits / 64.0


def operation_counts(plan: Plan, trace: Trace) -> dict[str, float]:
    """Mean counts per image: adds by width, memory bits moved, synaptic events."""
    art = plan.artifact
    counts = [c.astype(np.float64).mean() for c in trace.spike_counts()]  # spikes per image per stage
    T = art.timesteps
    state_adds = neuron_adds = weight_bits = state_bits = 0.0
    synaptic = 0.0
    for lp in plan.layers:
        accesses = counts[lp.index] * lp.groups  # word accesses of the integrate pass
        state_adds += accesses * lp.lanes
        synaptic += counts[lp.index] * lp.layer.n_out
        weight_bits += accesses * lp.weight_word_bits
        step_accesses = T * lp.groups
        neuron_adds += 3 * T * lp.groups * lp.lanes
        state_bits += 2 * (accesses + step_accesses) * lp.lanes * lp.state_bits
    n_in = art.n_inputs
    return {
        "synaptic_events": synaptic,
        "state_adds": state_adds,
        "neuron_adds": neuron_adds,
        "encoder_adds": float(T * n_in),
        "weight_read_bits": weight_bits,
        "state_rw_bits": state_bits,
        "pixel_read_bits": float(T * plan.beats_per_image * 8 * plan.pixels_per_beat + 8 * n_in),
    }


def estimate(plan: Plan, trace: Trace) -> dict:
    """Energy per image in nJ by component, the total, and the dense 8-bit ANN comparison."""
    ops = operation_counts(plan, trace)
    parts_pj = {
        "weight memory reads": sram_pj(ops["weight_read_bits"]),
        "state memory read/write": sram_pj(ops["state_rw_bits"]),
        "state additions": ops["state_adds"] * PJ["add16"],
        "end-of-step neuron updates": ops["neuron_adds"] * PJ["add16"],
        "encoder (adds and pixel reads)": ops["encoder_adds"] * PJ["add8"] + sram_pj(ops["pixel_read_bits"]),
    }
    total = sum(parts_pj.values())
    synapses = sum(layer.n_in * layer.n_out for layer in plan.artifact.layers)
    dense_pj = synapses * (PJ["mult8"] + PJ["add32"] + sram_pj(8))
    return {
        "unit": "nJ per image",
        "estimate": True,
        "source": SOURCE,
        "pj_per_op": dict(PJ),
        "operations": {k: round(v, 1) for k, v in ops.items()},
        "parts_nj": {k: round(v / 1000, 3) for k, v in parts_pj.items()},
        "total_nj": round(total / 1000, 3),
        "dense_ann_8bit_nj": round(dense_pj / 1000, 3),
        "dense_ann_macs": synapses,
    }
