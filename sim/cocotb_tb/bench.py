"""cocotb bench of the generated accelerator: every image, spike, score and class against
the integer reference.

Built from a driver (pixel beats with random gaps), a consumer (results with random
back-pressure), the spike-event log of the monitor ports (:class:`EventLog`), the model
(:func:`snnfpga.sim.reference.run` on the same artifact) and an in-order scoreboard
(:func:`snnfpga.sim.scoreboard.compare`, one image at a time as its result arrives).
Started by :func:`snnfpga.sim.cocotb_sim.simulate` with a :class:`Job`.

Two ways to run the streams (``job.stimulus``), with the same random draws and so the same
beat, gap and stall on the same clock edge (:mod:`.stimulus`):

* ``"shell"`` (the default of :func:`~snnfpga.sim.cocotb_sim.simulate`): the Verilog shell
  replays the schedules the host wrote, and also makes the clock; Python sleeps until the
  shell has taken a result (its ``bench_results`` counter changes), then reads the logs
  and checks that image. Python does nothing per cycle or per beat.
* ``"python"``: cocotb coroutines drive the pixel beats and take the results
  (:class:`~.driver.StreamDriver`, :class:`~.monitor.StreamConsumer`), on falling edges.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, SimTimeoutError, ValueChange, with_timeout
from cocotb.simtime import get_sim_time

from snnfpga.model.artifact import load_artifact
from snnfpga.rtl import cycle_model
from snnfpga.rtl.plan import make_plan
from snnfpga.sim import reference
from snnfpga.sim.cocotb_tb import stimulus
from snnfpga.sim.cocotb_tb.job import Job
from snnfpga.sim.cocotb_tb.monitor import EventLog, ResultLog, StreamConsumer
from snnfpga.sim.scoreboard import compare, compare_graph

RESET_CYCLES = stimulus.RESET_CYCLES
DRIVEN = {"clk", "rst", "soft_reset", "pixels__payload", "pixels__valid", "result__ready"}
MAX_REPORTED = 20
# Cycles between checks of the limits while waiting for a result (Python wakes this often).
WATCH_CYCLES = 20_000
# Results the shell-driven bench checks at a time (fewer reads of the logs).
CHECK_BATCH = 16


def decode_result(word: int, layout: dict) -> tuple[int, list[int]]:
    """Class and signed scores from the result payload (``result_payload`` of the description)."""
    cls = (word >> layout["cls"]["lsb"]) & ((1 << layout["cls"]["width"]) - 1)
    scores = []
    for field in layout["scores"]:
        w = field["width"]
        v = (word >> field["lsb"]) & ((1 << w) - 1)
        scores.append(v - (1 << w) if v >> (w - 1) else v)
    return cls, scores


def image_trace(log: EventLog, k: int, classes, scores, stop: int | None = None) -> reference.Trace:
    """What the RTL did for images ``k`` to ``stop`` (default: image ``k`` alone)."""
    stop = k + 1 if stop is None else stop
    return reference.Trace(spikes=[s[k:stop] for s in log.spikes], scores=scores[k:stop], classes=classes[k:stop])


def expected_image(model: reference.Trace, k: int, stop: int | None = None) -> reference.Trace:
    stop = k + 1 if stop is None else stop
    return reference.Trace(spikes=[s[k:stop] for s in model.spikes], scores=model.scores[k:stop],
                           classes=model.classes[k:stop], names=model.names)


def graph_spikes(log: EventLog, k: int, monitors: list[dict], stop: int | None = None) -> dict:
    """Images ``k`` to ``stop``'s spikes of every spiking node of a graph, ``[N, T, *shape]``."""
    stop = k + 1 if stop is None else stop
    return {m["node"]: log.spikes[s][k:stop].reshape(stop - k, log.T, *m["shape"])
            for s, m in enumerate(monitors) if s > 0}


class Background:
    """``fn()`` on a thread, started now: the bench's reference runs while the simulation
    starts (numpy and the simulator's C++ both run without the GIL)."""

    def __init__(self, fn):
        self._value, self._error = None, None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn):
        try:
            self._value = fn()
        except BaseException as exc:  # re-raised by get()
            self._error = exc

    def ready(self) -> bool:
        return not self._thread.is_alive()

    def get(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


class Scoreboard:
    """The in-order check of one run: each result, as it arrives, against the model
    (``expected``: a :class:`Background` giving ``(model, limits)``)."""

    def __init__(self, job: Job, description: dict, art, expected: Background, n: int, log: EventLog, progress):
        self.job, self.description, self.art, self.expected, self.log = job, description, art, expected, log
        self.classes = np.zeros(n, dtype=np.int64)
        self.scores = np.zeros((n, art.n_classes), dtype=np.int64)
        self.counter_cycles = np.zeros(n, dtype=np.int64)
        self.mismatched: list[int] = []
        self.reports: list[str] = []
        self.errors: list[str] = []
        self.done = 0
        self.progress = progress

    def result(self, k: int, word: int | None, images_counter: int, cycles_counter: int) -> None:
        """Image ``k``'s result word and the counters after it was taken; the spike log must
        hold everything up to that transfer."""
        self.results(k, [(word, images_counter, cycles_counter)])

    def results(self, k: int, taken: list[tuple[int | None, int, int]]) -> None:
        """The results of images ``k``, ``k + 1``, ...: ``(word, images counter, cycles
        counter)`` each, checked together (one comparison of all their spikes), reported
        image by image in order."""
        first = self.job.first_image
        for i, (word, images_counter, cycles_counter) in enumerate(taken, start=k):
            if word is None:
                self.errors.append(f"image {first + i}: the result payload has unknown bits")
            else:
                self.classes[i], self.scores[i] = decode_result(word, self.description["result_payload"])
            self.counter_cycles[i] = cycles_counter
            if images_counter != i + 1:
                self.errors.append(f"image {first + i}: counters__images reads {images_counter}, expected {i + 1}")
        stop = k + len(taken)
        model = self.expected.get()[0]
        if "monitors" in self.description:
            found = compare_graph(expected_image(model, k, stop),
                                  graph_spikes(self.log, k, self.description["monitors"], stop),
                                  self.scores[k:stop], self.classes[k:stop], image_offset=first + k,
                                  window_steps=self.art.encoder.window_steps)
        else:
            found = compare(expected_image(model, k, stop), image_trace(self.log, k, self.classes, self.scores, stop),
                            image_offset=first + k)
        if found:
            self.mismatched += sorted({m.image for m in found})
            self.reports += [str(m) for m in found[:max(0, MAX_REPORTED - len(self.reports))]]
        self.done = stop
        self.progress.write("".join(f"{i + 1}\n" for i in range(k, stop)))
        self.progress.flush()


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


async def python_streams(dut, job: Job, description: dict, art, pixels: np.ndarray, board: Scoreboard,
                         started: float) -> None:
    """Drive the streams from Python coroutines (``job.stimulus == "python"``)."""
    from snnfpga.rtl.encoder import pixel_beats
    from snnfpga.sim.cocotb_tb.driver import StreamDriver, weight_load_beats

    limits = board.expected.get()[1]

    params = description["parameters"]
    names = {port["name"] for port in description["ports"]}
    per_beat = params["pixels_per_beat"]
    dut.rst.value = 1
    if "soft_reset" in names:
        dut.soft_reset.value = 0
    for port in description["ports"]:  # inputs this bench does not drive stay idle
        if port["direction"] == "input" and port["name"] not in DRIVEN:
            getattr(dut, port["name"]).value = 0
    rng_driver, rng_consumer, rng_loader = stimulus.streams(job.seed)
    driver = StreamDriver(dut.clk, dut.pixels__payload, dut.pixels__valid, dut.pixels__ready,
                          gaps=job.gaps, rng=rng_driver)
    consumer = StreamConsumer(dut.clk, dut.result__payload, dut.result__valid, dut.result__ready,
                              stall=job.stall, rng=rng_consumer)
    Clock(dut.clk, job.clock_ns, unit="ns").start()
    await ClockCycles(dut.clk, RESET_CYCLES, rising=False)
    dut.rst.value = 0
    if "weights__valid" in names:  # weight storage "ram": the memories are loaded first
        loader = StreamDriver(dut.clk, dut.weights__payload, dut.weights__valid, dut.weights__ready,
                              gaps=job.gaps, rng=rng_loader)
        await loader.send(weight_load_beats(_plan(art, description)))

    if job.abandon_beats:  # a throw-away partial image, abandoned by a soft reset
        await driver.send(pixel_beats(pixels[0], per_beat, np.random.default_rng(job.seed))[:job.abandon_beats])
        await ClockCycles(dut.clk, stimulus.ABANDON_WAIT, rising=False)
        dut.soft_reset.value = 1
        await FallingEdge(dut.clk)
        dut.soft_reset.value = 0

    padding = np.random.default_rng(job.seed)  # random bytes after the last pixel: must be ignored

    def beats():
        for image in pixels:
            yield from pixel_beats(image, per_beat, padding)

    cocotb.start_soon(driver.send(beats()))
    for k in range(len(pixels)):
        word, problem = await wait_for_result(consumer, int(limits[k]), job, started)
        if problem:
            board.errors.append(f"image {job.first_image + k}: {problem}; {k} images done, "
                                f"{driver.sent} beats accepted")
            break
        board.log.drain()
        board.result(k, word, dut.counters__images.value.to_unsigned(), dut.counters__cycles.value.to_unsigned())
    await ClockCycles(dut.clk, 2)  # the shell flushes its logs one edge after the last result


def _hex(word: int | None) -> str:
    return "unknown" if word is None else f"{word:#x}"


def _now_ns() -> int:
    return int(get_sim_time("ns"))


async def shell_streams(dut, job: Job, results: ResultLog, n: int, board: Scoreboard, started: float) -> None:
    """Let the shell replay the schedules (``job.stimulus == "shell"``). Python wakes when the
    shell has taken a result (its ``bench_results`` counter changes) and checks the results
    in order, a few at a time (:data:`CHECK_BATCH`: the logs are read once per batch)."""
    if not job.shell_clock:
        Clock(dut.clk, job.clock_ns, unit="ns").start()
    k, taken, since = 0, 0, 0  # checked, taken by the shell, when the last was taken
    # The first image's limit also covers the reset and the beats before its own.
    allowance = 10 * RESET_CYCLES + 16 * job.preamble_beats

    def check(upto: int) -> int:
        results.drain()
        board.log.drain()
        stop = min(upto, len(results.counters), len(results.done_payloads))
        if stop <= k:
            return k
        for i in range(k, stop):
            first, word = results.valid_payloads[i:i + 1], results.done_payloads[i]
            if first and first[0] != word:
                board.errors.append(f"image {job.first_image + i}: the result payload changed while valid "
                                    f"(first valid {_hex(first[0])}, taken {_hex(word)})")
        board.results(k, [(results.done_payloads[i], *results.counters[i]) for i in range(k, stop)])
        return stop

    while k < n:
        if taken - k >= CHECK_BATCH or taken >= n:
            k = check(taken)
            continue
        waited = (_now_ns() - since) // job.clock_ns
        # (until the reference is there, the cap of every image's limit)
        limit = int(board.expected.get()[1][taken]) if board.expected.ready() else job.max_cycles_per_image
        limit += allowance if taken == 0 else 0
        problem = None
        if job.wall_limit_s is not None and time.time() - started > job.wall_limit_s:
            problem = (f"no result within the wall-clock limit of {job.wall_limit_s:g} s "
                       f"({waited} cycles simulated for this image)")
        elif waited >= limit:
            problem = f"no result within {limit} cycles (deadlock?)"
        if problem:
            k = check(taken)
            board.errors.append(f"image {job.first_image + k}: {problem}; {k} images done, "
                                f"{len(board.log.beat_cycles)} beats accepted")
            break
        try:
            await with_timeout(ValueChange(dut.bench_results), min(WATCH_CYCLES, limit - waited) * job.clock_ns, "ns")
        except SimTimeoutError:
            k = check(taken)  # a slow stretch: check what has come (progress)
            continue
        value = dut.bench_results.value
        if value.is_resolvable and value.to_unsigned() > taken:  # (not its start-up value: Icarus, time 0)
            taken, since = min(value.to_unsigned(), n), _now_ns()


def _plan(art, description: dict):
    """The generating plan again (its lanes, beat and weight storage are in the description)."""
    params = description["parameters"]
    ram = any(p["name"] == "weights__valid" for p in description["ports"])
    if "monitors" in description:
        from snnfpga.rtl.graph_top import make_graph_top_plan

        return make_graph_top_plan(art, lanes=params["lanes"], pixels_per_beat=params["pixels_per_beat"],
                                   weight_storage="ram" if ram else "rom", lane_caps=params["node_lanes"])
    return make_plan(art, lanes=params["lanes"], pixels_per_beat=params["pixels_per_beat"],
                     fifo_depth=params["fifo_depth"], weight_storage="ram" if ram else "rom")


@cocotb.test()
async def images_match_the_reference(dut):
    """Stream the job's images through the accelerator; compare everything in order."""
    started = time.time()
    job = Job.load()
    job.wait_for_inputs()
    description = json.loads(Path(job.description).read_text())
    art = load_artifact(job.artifact)
    with np.load(job.images) as archive:
        images = archive["images"]
    pixels = reference.flatten_images(art, images)
    n = len(pixels)
    nw, T = description["parameters"]["beats_per_image"], art.timesteps
    graph = "monitors" in description  # a layer-graph accelerator (rtl/graph_top.py)

    def expected():
        model = reference.run(art, images)
        if graph:
            return model, np.full(n, job.max_cycles_per_image)
        # A deadlock shows as no result within a generous multiple of the no-overlap cycle bound.
        bound = cycle_model.estimate(_plan(art, description), model)["sequential"]
        return model, np.minimum(4 * bound + 16 * nw + 10_000, job.max_cycles_per_image)

    sizes = [int(np.prod(m["shape"])) for m in description["monitors"]] if graph else art.sizes[:-1]
    log = EventLog(job.log, sizes, T, n, job.first_image)
    results = ResultLog(job.results_log)
    with open(job.progress, "w") as progress:
        board = Scoreboard(job, description, art, Background(expected), n, log, progress)
        if job.stimulus == "shell":
            await shell_streams(dut, job, results, n, board, started)
        else:
            await python_streams(dut, job, description, art, pixels, board, started)
    log.drain()
    log.close()
    results.drain()
    results.close()
    done, errors = board.done, board.errors + log.errors

    starts = np.array(log.beat_cycles[::nw][:done], dtype=np.int64)
    valid = np.array(results.valid_cycles[:done], dtype=np.int64)
    cycles = valid - starts if len(starts) == len(valid) else np.zeros(done, dtype=np.int64)
    counter_cycles = board.counter_cycles[:done]
    for k in np.nonzero(cycles != counter_cycles)[0][:5]:
        errors.append(f"image {job.first_image + k}: counters__cycles reads {counter_cycles[k]}, "
                      f"the bench measured {cycles[k]}")
    job.finish(n=done, mismatched=board.mismatched, mismatches=board.reports, errors=errors,
               cycles_mean=float(cycles.mean()) if done else None,
               total_cycles=int(results.done_cycles[-1]) if results.done_cycles else 0,
               sim_wall_s=time.time() - started,
               arrays=dict(classes=board.classes[:done], scores=board.scores[:done], cycles=cycles,
                           counter_cycles=counter_cycles,
                           **{f"spikes{s}": log.spikes[s][:done] for s in range(len(log.spikes))}))
    assert not errors, errors[0]
    assert not board.mismatched, board.reports[0]
