"""Run the Amaranth design in Amaranth's own simulator and collect a :class:`Trace`.

Driver (pixel stream with optional random gaps), result consumer (optional random
back-pressure), spike monitors on every stage (encoder and hidden layers) and the
counters, as async testbenches. Used by the fast bit-exactness tests of the generator;
the Verilog is checked with cocotb (:mod:`snnfpga.sim.cocotb_sim`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from snnfpga.rtl.encoder import pixel_beats
from snnfpga.rtl.plan import Plan
from snnfpga.rtl.top import Accelerator
from snnfpga.sim.reference import Trace, flatten_images


@dataclass
class RtlRun:
    """What the design produced: the trace (spike *counts* per image, step, neuron), the
    cycles per image measured by the testbench (first beat accepted to result valid) and
    as read from the design's own counters."""

    trace: Trace
    cycles: np.ndarray
    counter_cycles: np.ndarray
    counter_spikes: np.ndarray  # [N, stages]
    total_cycles: int


async def send_beats(ctx, port, beats, rng: random.Random, gaps: float) -> None:
    """Push ``beats`` into a stream ``port`` (Amaranth testbench), each after a random idle
    gap (probability ``gaps`` of one more idle cycle)."""
    for beat in beats:
        while gaps and rng.random() < gaps:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.payload, beat)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def load_weights(ctx, dut, plan) -> None:
    """Write every weight RAM through ``dut.weights``, one word per cycle (weight storage
    ``ram``; nothing to do with ROM weights)."""
    if plan.weight_storage != "ram":
        return
    for layer, addr, word in plan.weight_loads():
        ctx.set(dut.weights.payload.layer, layer)
        ctx.set(dut.weights.payload.addr, addr)
        ctx.set(dut.weights.payload.data, word)
        ctx.set(dut.weights.valid, 1)
        await ctx.tick()
    ctx.set(dut.weights.valid, 0)


def simulate(plan: Plan, images: np.ndarray, *, input_gaps: float = 0.0, output_stall: float = 0.0,
             seed: int = 0, abandon_beats: int = 0, serial: bool = False,
             max_cycles_per_image: int = 200_000) -> RtlRun:
    """Push ``images`` through the design and record everything.

    ``input_gaps``/``output_stall``: probability of an idle cycle before each beat / of
    ``ready`` low in a cycle. ``abandon_beats``: first send that many beats of a throw-away
    image, pulse ``soft_reset`` in the middle of it, then run the real images.
    """
    art = plan.artifact
    T = art.timesteps
    pixels = flatten_images(art, images)
    n_images = len(pixels)
    dut = Accelerator(plan)
    rng = random.Random(seed)
    padding = np.random.default_rng(seed)  # random bytes after the last pixel: must be ignored
    sizes = art.sizes[:-1]
    spikes = [np.zeros((n_images, T, n), dtype=np.int16) for n in sizes]
    scores = np.zeros((n_images, art.n_classes), dtype=np.int64)
    classes = np.zeros(n_images, dtype=np.int64)
    cycles = np.zeros(n_images, dtype=np.int64)
    counter_cycles = np.zeros(n_images, dtype=np.int64)
    counter_spikes = np.zeros((n_images, len(sizes)), dtype=np.int64)
    limit = max_cycles_per_image * (n_images + 1)
    beats_per_image = plan.beats_per_image
    results = {"done": 0}

    async def driver(ctx):
        await load_weights(ctx, dut, plan)
        if abandon_beats:
            for beat in pixel_beats(pixels[0], plan.pixels_per_beat, padding)[:abandon_beats]:
                ctx.set(dut.pixels.payload, beat)
                ctx.set(dut.pixels.valid, 1)
                await ctx.tick().until(dut.pixels.ready)
            ctx.set(dut.pixels.valid, 0)
            await ctx.tick().repeat(3)
            ctx.set(dut.soft_reset, 1)
            await ctx.tick()
            ctx.set(dut.soft_reset, 0)
        for n, image in enumerate(pixels):
            if serial:
                while results["done"] < n:
                    await ctx.tick()
            await send_beats(ctx, dut.pixels, pixel_beats(image, plan.pixels_per_beat, padding), rng, input_gaps)

    async def consumer(ctx):
        got, read_counters = 0, False
        ctx.set(dut.result.ready, 1)
        counter_signals = [dut.counters.cycles] + [dut.counters.spikes[f"stage{s}"] for s in range(len(sizes))]
        async for _, _, valid, payload, ready, *counters in ctx.tick().sample(
                dut.result.valid, dut.result.payload, dut.result.ready, *counter_signals):
            if read_counters:  # the counters update in the cycle after the result appeared
                counter_cycles[got - 1] = counters[0]
                counter_spikes[got - 1] = counters[1:]
                read_counters = False
                if got == n_images:
                    return
            if valid and ready:
                classes[got] = payload.cls
                scores[got] = [payload.scores[f"class{j}"] for j in range(art.n_classes)]
                got += 1
                read_counters = True
                results["done"] = got
            ctx.set(dut.result.ready, 0 if output_stall and rng.random() < output_stall else 1)

    clock = {"now": 0}

    async def timer(ctx):
        """Cycle of the first beat of each image and of each result's first valid cycle."""
        starts, beat, done, was_valid = [], 0, 0, False
        async for _, _, rst, p_valid, p_ready, r_valid, r_ready in ctx.tick().sample(
                dut.soft_reset, dut.pixels.valid, dut.pixels.ready, dut.result.valid, dut.result.ready):
            clock["now"] += 1
            if clock["now"] > limit:
                raise TimeoutError(f"no result for image {done} after {clock['now']} cycles (deadlock?)")
            if rst:
                starts, beat, was_valid = [], 0, False
                continue
            if p_valid and p_ready:
                if beat == 0:
                    starts.append(clock["now"])
                beat = 0 if beat == beats_per_image - 1 else beat + 1
            if r_valid and not was_valid:
                cycles[done] = clock["now"] - starts[done]
            was_valid = bool(r_valid) and not r_ready
            if r_valid and r_ready:
                done += 1

    def make_monitor(stage):
        mon = getattr(dut, f"mon{stage}")

        async def monitor(ctx):
            image, step = 0, 0
            async for _, _, rst, valid, eos, addr, mstep in ctx.tick().sample(
                    dut.soft_reset, mon.valid, mon.eos, mon.addr, mon.step):
                if rst:
                    image, step = 0, 0
                    spikes[stage][:] = 0
                    continue
                if valid:
                    if image >= n_images or mstep != step:
                        raise AssertionError(f"layer {stage}: spike {addr} at step {mstep} outside the "
                                             f"expected image {image} step {step}")
                    spikes[stage][image, step, addr] += 1
                if eos:
                    step += 1
                    if step == T:
                        image, step = image + 1, 0
        return monitor

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(consumer)
    sim.add_testbench(timer, background=True)
    for stage in range(len(sizes)):
        sim.add_testbench(make_monitor(stage), background=True)
    sim.run()
    trace = Trace(spikes=spikes, scores=scores, classes=classes)
    return RtlRun(trace=trace, cycles=cycles, counter_cycles=counter_cycles,
                  counter_spikes=counter_spikes, total_cycles=clock["now"])
