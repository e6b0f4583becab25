"""The layer-graph accelerator (rtl/graph_top.py) in Amaranth's simulator, every node watched.

:func:`simulate_graph` streams images through a :class:`~snnfpga.rtl.graph_top.GraphAccelerator`
under optional random input gaps and result back-pressure, records every event of every
spiking node (with its step) as it leaves the engine, and the class and scores of each image;
:func:`snnfpga.sim.scoreboard.compare_graph` checks that against the reference.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from snnfpga.model.artifact import Artifact
from snnfpga.rtl.encoder import pixel_beats
from snnfpga.rtl.graph_top import GraphAccelerator, make_graph_top_plan
from snnfpga.sim.amaranth_sim import load_weights, send_beats
from snnfpga.sim.reference import flatten_images


@dataclass
class GraphRun:
    """What the design produced: ``spikes[name]`` counts ``int [N, T, *shape]`` per spiking
    node, ``scores`` ``int [N, n_classes]``, ``classes`` ``int [N]``, ``cycles`` per image
    (the cycle its first beat is accepted to the cycle its result is taken) and ``images`` finished."""

    spikes: dict[str, np.ndarray]
    scores: np.ndarray
    classes: np.ndarray
    cycles: np.ndarray
    images: int


def simulate_graph(art: Artifact, images: np.ndarray, *, lanes: int = 8, pixels_per_beat: int = 4,
                   input_gaps: float = 0.0, output_stall: float = 0.0, seed: int = 0,
                   max_cycles_per_image: int = 2_000_000, lane_caps: dict | None = None,
                   weight_storage: str = "rom") -> GraphRun:
    """Run ``images`` through the graph accelerator of ``art`` (see the module doc;
    ``lanes``, ``lane_caps`` and ``weight_storage`` as :func:`make_graph_top_plan`; RAM
    weights are loaded first, one word per cycle)."""
    plan = make_graph_top_plan(art, lanes, pixels_per_beat, lane_caps=lane_caps, weight_storage=weight_storage)
    dut = GraphAccelerator(plan)
    graph, T = art.graph, art.timesteps
    pixels = flatten_images(art, images)
    n = len(pixels)
    spikes = {name: np.zeros((n, T, *graph.types[name].shape), np.int16) for name in dut.engines}
    scores = np.zeros((n, art.n_classes), np.int64)
    classes = np.zeros(n, np.int64)
    starts, ends = [], []
    rng = random.Random(seed)
    padding = np.random.default_rng(seed)
    names = list(dut.engines)
    watched = []
    for name in names:
        ev = dut.engines[name].events
        watched += [ev.valid, ev.ready, ev.payload]
    state = {"done": 0, "cycle": 0}

    async def driver(ctx):
        await load_weights(ctx, dut, plan)
        for image in pixels:
            await send_beats(ctx, dut.pixels, pixel_beats(image, plan.pixels_per_beat, padding), rng, input_gaps)

    async def monitor(ctx):
        steps = {name: 0 for name in names}
        images_seen = {name: 0 for name in names}
        limit = max_cycles_per_image * (n + 1)
        beats = 0
        async for _, _, *values in ctx.tick().sample(*watched, dut.result.valid, dut.result.ready,
                                                     dut.result.payload, dut.pixels.valid, dut.pixels.ready):
            state["cycle"] += 1
            *values, p_valid, p_ready = values
            if p_valid and p_ready:  # the first beat of an image starts its cycle count
                if beats % plan.beats_per_image == 0:
                    starts.append(state["cycle"] - 1)
                beats += 1
            for k, name in enumerate(names):
                valid, ready, payload = values[3 * k:3 * k + 3]
                if not (valid and ready):
                    continue
                i = images_seen[name]
                if payload.eos:
                    steps[name] += 1
                    if steps[name] == T:
                        steps[name], images_seen[name] = 0, i + 1
                elif i < n:
                    where = (i, steps[name], payload.c, payload.y, payload.x) if spikes[name].ndim == 5 \
                        else (i, steps[name], payload.c)
                    spikes[name][where] += 1
            r_valid, r_ready, r_payload = values[-3:]
            if r_valid and r_ready:
                k = state["done"]
                classes[k] = r_payload.cls
                scores[k] = [r_payload.scores[f"class{j}"] for j in range(art.n_classes)]
                ends.append(state["cycle"])
                state["done"] += 1
                if state["done"] == n:
                    return
            if state["cycle"] > limit:
                raise RuntimeError(f"no result for image {state['done']} within {max_cycles_per_image} cycles")

    async def consumer(ctx):
        while state["done"] < n:
            ctx.set(dut.result.ready, not (output_stall and rng.random() < output_stall))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(monitor)
    sim.add_testbench(consumer, background=True)
    sim.run()
    cycles = np.array([e - s for s, e in zip(starts, ends)], np.int64)
    return GraphRun(spikes=spikes, scores=scores, classes=classes, cycles=cycles, images=state["done"])
