"""cocotb bench of the generated accelerator: every image, spike, score and class against
the integer reference.

Built from a driver (pixel beats with random gaps), a consumer (results with random
back-pressure), the spike-event log of the monitor ports (:class:`EventLog`), the model
(:func:`snnfpga.sim.reference.run` on the same artifact) and an in-order scoreboard
(:func:`snnfpga.sim.scoreboard.compare`, one image at a time as its result arrives).
Started by :func:`snnfpga.sim.cocotb_sim.simulate` with a :class:`Job`.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, SimTimeoutError, with_timeout

from snnfpga.model.artifact import load_artifact
from snnfpga.rtl import cycle_model
from snnfpga.rtl.encoder import pixel_beats
from snnfpga.rtl.graph_top import make_graph_top_plan
from snnfpga.rtl.plan import make_plan
from snnfpga.sim import reference
from snnfpga.sim.cocotb_tb.driver import StreamDriver, weight_load_beats
from snnfpga.sim.cocotb_tb.job import Job
from snnfpga.sim.cocotb_tb.monitor import EventLog, StreamConsumer
from snnfpga.sim.scoreboard import compare, compare_graph

RESET_CYCLES = 3
DRIVEN = {"clk", "rst", "soft_reset", "pixels__payload", "pixels__valid", "result__ready"}
MAX_REPORTED = 20


def decode_result(word: int, layout: dict) -> tuple[int, list[int]]:
    """Class and signed scores from the result payload (``result_payload`` of the description)."""
    cls = (word >> layout["cls"]["lsb"]) & ((1 << layout["cls"]["width"]) - 1)
    scores = []
    for field in layout["scores"]:
        w = field["width"]
        v = (word >> field["lsb"]) & ((1 << w) - 1)
        scores.append(v - (1 << w) if v >> (w - 1) else v)
    return cls, scores


# Cycles between checks of the limits while waiting for a result (Python wakes this often).
WATCH_CYCLES = 20_000


def image_trace(log: EventLog, k: int, classes, scores) -> reference.Trace:
    return reference.Trace(spikes=[s[k:k + 1] for s in log.spikes], scores=scores[k:k + 1],
                           classes=classes[k:k + 1])


def expected_image(model: reference.Trace, k: int) -> reference.Trace:
    return reference.Trace(spikes=[s[k:k + 1] for s in model.spikes], scores=model.scores[k:k + 1],
                           classes=model.classes[k:k + 1], names=model.names)


def graph_spikes(log: EventLog, k: int, monitors: list[dict]) -> dict:
    """Image ``k``'s spikes of every spiking node of a graph, shaped ``[1, T, *shape]``."""
    return {m["node"]: log.spikes[s][k:k + 1].reshape(1, log.T, *m["shape"])
            for s, m in enumerate(monitors) if s > 0}


async def wait_for_result(consumer: StreamConsumer, limit_cycles: int, job: Job, started: float):
    """The next result word, waited for in slices of :data:`WATCH_CYCLES` so that both the
    cycle limit of the image and the run's wall-clock limit (``job.wall_limit_s``) are
    enforced. Returns ``(word, None)`` or ``(None, what went wrong)``."""
    task = cocotb.start_soon(consumer.receive())
    waited = 0
    while True:
        if job.wall_limit_s is not None and time.time() - started > job.wall_limit_s:
            task.cancel()
            return None, (f"no result within the wall-clock limit of {job.wall_limit_s:g} s "
                          f"({waited} cycles simulated for this image)")
        chunk = min(WATCH_CYCLES, limit_cycles - waited)
        try:
            return await with_timeout(task, chunk * job.clock_ns, "ns"), None
        except SimTimeoutError:
            waited += chunk
        if waited >= limit_cycles:
            task.cancel()
            return None, f"no result within {limit_cycles} cycles (deadlock?)"


@cocotb.test()
async def images_match_the_reference(dut):
    """Stream the job's images through the accelerator; compare everything in order."""
    started = time.time()
    job = Job.load()
    description = json.loads(Path(job.description).read_text())
    params = description["parameters"]
    art = load_artifact(job.artifact)
    with np.load(job.images) as archive:
        images = archive["images"]
    pixels = reference.flatten_images(art, images)
    n = len(pixels)
    model = reference.run(art, images)
    rng = random.Random(job.seed)
    per_beat, nw, T = params["pixels_per_beat"], params["beats_per_image"], art.timesteps
    names = {port["name"] for port in description["ports"]}
    ram = "weights__valid" in names  # weight storage "ram": the memories are loaded first
    graph = "monitors" in description  # a layer-graph accelerator (rtl/graph_top.py)
    if graph:
        sizes = [int(np.prod(m["shape"])) for m in description["monitors"]]
        limits = np.full(n, job.max_cycles_per_image)
        # The generating plan again (its lanes per engine are in the description): what the
        # weight load writes.
        plan = make_graph_top_plan(art, lanes=params["lanes"], pixels_per_beat=per_beat,
                                   weight_storage="ram" if ram else "rom", lane_caps=params["node_lanes"])
    else:
        sizes = art.sizes[:-1]
        plan = make_plan(art, lanes=params["lanes"], pixels_per_beat=per_beat, fifo_depth=params["fifo_depth"],
                         weight_storage="ram" if ram else "rom")
        # A deadlock shows as no result within a generous multiple of the no-overlap cycle bound.
        limits = np.minimum(4 * cycle_model.estimate(plan, model)["sequential"] + 16 * nw + 10_000,
                            job.max_cycles_per_image)

    dut.rst.value = 1
    if "soft_reset" in names:
        dut.soft_reset.value = 0
    for port in description["ports"]:  # inputs this bench does not drive stay idle
        if port["direction"] == "input" and port["name"] not in DRIVEN:
            getattr(dut, port["name"]).value = 0
    driver = StreamDriver(dut.clk, dut.pixels__payload, dut.pixels__valid, dut.pixels__ready,
                          gaps=job.gaps, rng=random.Random(rng.random()))
    consumer = StreamConsumer(dut.clk, dut.result__payload, dut.result__valid, dut.result__ready,
                              stall=job.stall, rng=random.Random(rng.random()))
    Clock(dut.clk, job.clock_ns, unit="ns").start()
    await ClockCycles(dut.clk, RESET_CYCLES, rising=False)
    dut.rst.value = 0
    log = EventLog(job.log, sizes, T, n, job.first_image)
    if ram:
        loader = StreamDriver(dut.clk, dut.weights__payload, dut.weights__valid, dut.weights__ready,
                              gaps=job.gaps, rng=random.Random(rng.random()))
        await loader.send(weight_load_beats(plan))

    if job.abandon_beats:  # a throw-away partial image, abandoned by a soft reset
        await driver.send(pixel_beats(pixels[0], per_beat, np.random.default_rng(job.seed))[:job.abandon_beats])
        await ClockCycles(dut.clk, 3, rising=False)
        dut.soft_reset.value = 1
        await FallingEdge(dut.clk)
        dut.soft_reset.value = 0

    padding = np.random.default_rng(job.seed)  # random bytes after the last pixel: must be ignored

    def beats():
        for image in pixels:
            yield from pixel_beats(image, per_beat, padding)

    cocotb.start_soon(driver.send(beats()))
    classes = np.zeros(n, dtype=np.int64)
    scores = np.zeros((n, art.n_classes), dtype=np.int64)
    counter_cycles = np.zeros(n, dtype=np.int64)
    mismatched: list[int] = []
    reports: list[str] = []
    errors: list[str] = []
    done = 0
    with open(job.progress, "w") as progress:
        for k in range(n):
            word, problem = await wait_for_result(consumer, int(limits[k]), job, started)
            if problem:
                errors.append(f"image {job.first_image + k}: {problem}; {k} images done, "
                              f"{driver.sent} beats accepted")
                break
            classes[k], scores[k] = decode_result(word, description["result_payload"])
            counter_cycles[k] = dut.counters__cycles.value.to_unsigned()
            images_counter = dut.counters__images.value.to_unsigned()
            if images_counter != k + 1:
                errors.append(f"image {job.first_image + k}: counters__images reads {images_counter}, "
                              f"expected {k + 1}")
            log.drain()
            if graph:
                found = compare_graph(expected_image(model, k), graph_spikes(log, k, description["monitors"]),
                                      scores[k:k + 1], classes[k:k + 1], image_offset=job.first_image + k,
                                      window_steps=art.encoder.window_steps)
            else:
                found = compare(expected_image(model, k), image_trace(log, k, classes, scores),
                                image_offset=job.first_image + k)
            if found:
                mismatched.append(job.first_image + k)
                reports += [str(m) for m in found[:max(0, MAX_REPORTED - len(reports))]]
            done = k + 1
            progress.write(f"{done}\n")
            progress.flush()
    log.drain()
    log.close()
    errors += log.errors

    starts = np.array(log.beat_cycles[::nw][:done], dtype=np.int64)
    valid = np.array(log.valid_cycles[:done], dtype=np.int64)
    cycles = valid - starts if len(starts) == len(valid) else np.zeros(done, dtype=np.int64)
    for k in np.nonzero(cycles != counter_cycles[:done])[0][:5]:
        errors.append(f"image {job.first_image + k}: counters__cycles reads {counter_cycles[k]}, "
                      f"the bench measured {cycles[k]}")
    job.finish(n=done, mismatched=mismatched, mismatches=reports, errors=errors,
               cycles_mean=float(cycles.mean()) if done else None,
               total_cycles=int(log.done_cycles[-1]) if log.done_cycles else 0,
               sim_wall_s=time.time() - started,
               arrays=dict(classes=classes[:done], scores=scores[:done], cycles=cycles,
                           counter_cycles=counter_cycles[:done],
                           **{f"spikes{s}": log.spikes[s][:done] for s in range(len(log.spikes))}))
    assert not errors, errors[0]
    assert not mismatched, reports[0]
