"""Energy *estimate* per image from counted operations (not a measurement).

The accelerator's work per image is counted exactly from the integer reference trace and
the generation plan (what the hardware does, lane padding included):

* weight memory reads: one word of ``P * weight_bits`` bits per input spike and group;
* state updates: ``P`` additions, and a state-memory read and write of ``P * state_bits``
  bits, per input spike and group, plus one end-of-step pass over the groups per step
  (bias, leak, compare, reset: counted as 3 additions per neuron);
* encoder: one 8-bit addition per pixel and step (rate code), one pixel-memory read per
  word and step.

Per-operation energies are Horowitz, "Computing's energy problem (and what we can do about
it)", ISSCC 2014, 45 nm at 0.9 V: 8-bit integer add 0.03 pJ, 32-bit add 0.1 pJ (we take
0.05 pJ for the 10..20-bit state adds), 8-bit multiply 0.2 pJ, and SRAM reads of 64 bits:
10 pJ from 8 kB, 20 pJ from 32 kB, 100 pJ from 1 MB. Those three points follow
``10 pJ * sqrt(capacity / 8 kB)`` (within 15%), which we use for every memory at its own
capacity, scaled by the bits moved: a small state memory costs less per bit than a large
weight memory. These are ASIC figures: an FPGA spends several times more per operation
(routing, LUTs), and static power is not counted.

The comparison row is a dense 8-bit ANN of the same shape under the same rules: one 8-bit
multiply, one 32-bit add and one 8-bit read from its weight memory (all weights, 8 bits
each) per synapse; its activations' memory traffic is not counted.
"""

from __future__ import annotations

import math

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
SRAM_REFERENCE_BITS = 8 * 1024 * 8  # 8 kB


def sram_pj(bits: float, capacity_bits: float) -> float:
    """Energy of reading (or writing) ``bits`` bits of an SRAM of ``capacity_bits``, pJ:
    ``10 pJ per 64 bits * sqrt(capacity / 8 kB)`` (see the module doc)."""
    return PJ["sram_read_64b_8kB"] * math.sqrt(capacity_bits / SRAM_REFERENCE_BITS) * bits / 64.0


def operation_counts(plan: Plan, trace: Trace) -> dict[str, float]:
    """Mean counts per image: additions, synaptic events, and per memory the bits moved and
    its capacity (``*_bits``, ``*_capacity_bits``; per layer for weights and state)."""
    art = plan.artifact
    counts = [c.astype(np.float64).mean() for c in trace.spike_counts()]  # spikes per image per stage
    T = art.timesteps
    layers = []
    for lp in plan.layers:
        accesses = counts[lp.index] * lp.groups  # word accesses of the integrate pass
        layers.append({
            "synaptic_events": counts[lp.index] * lp.layer.n_out,
            "state_adds": accesses * lp.lanes,
            "neuron_adds": 3.0 * T * lp.groups * lp.lanes,
            "weight_read_bits": accesses * lp.weight_word_bits,
            "weight_capacity_bits": float(lp.weight_depth * lp.weight_word_bits),
            "state_rw_bits": 2.0 * (accesses + T * lp.groups) * lp.lanes * lp.state_bits,
            "state_capacity_bits": float(lp.groups * lp.lanes * lp.state_bits),
        })
    n_in = art.n_inputs
    pixel_capacity = float(plan.beats_per_image * 8 * plan.pixels_per_beat)
    return {
        "synaptic_events": sum(layer["synaptic_events"] for layer in layers),
        "state_adds": sum(layer["state_adds"] for layer in layers),
        "neuron_adds": sum(layer["neuron_adds"] for layer in layers),
        "encoder_adds": float(T * n_in),
        "weight_read_bits": sum(layer["weight_read_bits"] for layer in layers),
        "state_rw_bits": sum(layer["state_rw_bits"] for layer in layers),
        "pixel_read_bits": T * pixel_capacity + 8.0 * n_in,
        "pixel_capacity_bits": pixel_capacity,
        "layers": layers,
    }


def estimate(plan: Plan, trace: Trace) -> dict:
    """Energy per image in nJ by component, the total, and the dense 8-bit ANN comparison."""
    ops = operation_counts(plan, trace)
    layers = ops["layers"]
    parts_pj = {
        "weight memory reads": sum(sram_pj(x["weight_read_bits"], x["weight_capacity_bits"]) for x in layers),
        "state memory read/write": sum(sram_pj(x["state_rw_bits"], x["state_capacity_bits"]) for x in layers),
        "state additions": ops["state_adds"] * PJ["add16"],
        "end-of-step neuron updates": ops["neuron_adds"] * PJ["add16"],
        "encoder (adds and pixel reads)": ops["encoder_adds"] * PJ["add8"]
        + sram_pj(ops["pixel_read_bits"], ops["pixel_capacity_bits"]),
    }
    total = sum(parts_pj.values())
    synapses = sum(layer.n_in * layer.n_out for layer in plan.artifact.layers)
    dense_pj = synapses * (PJ["mult8"] + PJ["add32"] + sram_pj(8, 8 * synapses))
    return {
        "unit": "nJ per image",
        "estimate": True,
        "source": SOURCE,
        "pj_per_op": dict(PJ),
        "sram_scaling": "10 pJ per 64 bits * sqrt(capacity / 8 kB)",
        "operations": {k: round(v, 1) for k, v in ops.items() if k != "layers"},
        "parts_nj": {k: round(v / 1000, 3) for k, v in parts_pj.items()},
        "total_nj": round(total / 1000, 3),
        "dense_ann_8bit_nj": round(dense_pj / 1000, 3),
        "dense_ann_macs": synapses,
    }
