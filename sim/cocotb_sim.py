"""Run the generated Verilog under cocotb and collect what the RTL did.

:func:`simulate` generates the Verilog of a plan, wraps it in the logging shell, builds it
(cached, :mod:`snnfpga.sim.runner`), runs the accelerator bench
(:mod:`snnfpga.sim.cocotb_tb.bench`) and returns a :class:`CocotbRun`: the RTL trace, the
bench's verdict (in-order scoreboard against the reference) and measured cycles.
:func:`simulate_engine` does the same for one layer engine converted on its own.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Value
from amaranth.lib import wiring

from snnfpga.model.artifact import Artifact, save_artifact
from snnfpga.rtl.engine import LayerEngine
from snnfpga.rtl.generate import write_verilog
from snnfpga.rtl.graph_generate import write_graph_verilog
from snnfpga.rtl.graph_top import GraphTopPlan
from snnfpga.rtl.plan import Plan, make_plan
from snnfpga.rtl.tokens import scores_layout, token_layout
from snnfpga.sim import reference, runner
from snnfpga.sim.cocotb_tb import stimulus as schedules
from snnfpga.sim.cocotb_tb.driver import weight_load_beats
from snnfpga.sim.cocotb_tb.job import DEFAULT_WALL_LIMIT_S, ENV, Job
from snnfpga.sim.cocotb_tb.wrapper import SHELL_SUFFIX, accelerator_shell, engine_shell
from snnfpga.sim.reference import Trace

BENCH = "snnfpga.sim.cocotb_tb.bench"
ENGINE_BENCH = "snnfpga.sim.cocotb_tb.engine_bench"
# Per-image cycle limit of a layer-graph run (a deadlock shows as no result within it): the
# first graph accelerator takes about 330,000 cycles per mixer image at 8 lanes.
GRAPH_MAX_CYCLES_PER_IMAGE = 20_000_000


@dataclass
class CocotbRun:
    """What a bench reported. ``trace`` holds spike counts per image, step and neuron as
    the monitor ports showed them (accelerator runs); ``mismatched_images`` and
    ``mismatches`` (the first ones, in full) come from the bench's scoreboard; ``errors``
    are protocol violations, counter disagreements or a deadlock. ``cycles``: first beat
    accepted to result valid, per image."""

    simulator: str
    n: int
    trace: Trace | None
    cycles: np.ndarray
    counter_cycles: np.ndarray
    mismatched_images: list[int]
    mismatches: list[str]
    errors: list[str]
    total_cycles: int
    build: runner.Build
    sim_wall_s: float  # the simulation runs (all shards), without the build
    wall_s: float  # everything: generation, build, simulation
    waves: list[Path]

    @property
    def passed(self) -> bool:
        return not self.mismatched_images and not self.errors

    def first_problem(self) -> str | None:
        """The first mismatch or error, in full (None when the run passed)."""
        if self.errors:
            return self.errors[0]
        return self.mismatches[0] if self.mismatches else None


def _watch_progress(path: Path, callback: Callable[[int], None], stop: threading.Event):
    last = 0
    while not stop.wait(0.2):
        try:
            count = path.read_text().count("\n")
        except OSError:
            continue
        if count != last:
            callback(count)
            last = count


def _run(job: Job, built: runner.Build, module: str, *, waves_file: Path | None = None,
         progress: Callable[[int], None] | None = None) -> dict:
    """Run ``module`` on ``built`` for ``job``; return the bench's ``result.json``."""
    job_path = job.save()
    stop = threading.Event()
    watcher = None
    if progress:
        watcher = threading.Thread(target=_watch_progress, args=(job.progress, progress, stop), daemon=True)
        watcher.start()
    try:
        runner.run_test(built, module, job.dir / "sim", env={ENV: str(job_path)},
                        plusargs=job.plusargs, waves_file=waves_file)
    finally:
        stop.set()
        if watcher:
            watcher.join()
    if not job.result.exists():
        log = job.dir / "sim" / "sim.log"
        raise runner.ToolError(f"{built.simulator} run ended before the bench finished: "
                               f"{_last_error(log)} (log: {log})")
    return json.loads(job.result.read_text())


def _last_error(log: Path) -> str:
    if not log.exists():
        return "no simulator log"
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line
    return lines[-1] if lines else "empty simulator log"


def _save_inputs(run_dir: Path, art: Artifact, images: np.ndarray) -> tuple[str, str]:
    save_artifact(art, run_dir / "artifact")
    np.savez(run_dir / "images.npz", images=np.ascontiguousarray(images))
    return str((run_dir / "artifact").resolve()), str((run_dir / "images.npz").resolve())


def generate_rtl(plan: Plan | GraphTopPlan, top: str = "snn_top") -> dict:
    """The accelerator of ``plan`` as ``{"verilog": text, "description": dict}`` (what
    ``snnfpga verilog`` writes), for :func:`simulate`."""
    with tempfile.TemporaryDirectory(prefix="snnfpga-rtl-") as tmp:
        graph = isinstance(plan, GraphTopPlan)
        description = (write_graph_verilog if graph else write_verilog)(plan, Path(tmp), top)
        return {"verilog": (Path(tmp) / f"{top}.v").read_text(), "description": description}


def simulate(plan: Plan | GraphTopPlan, images: np.ndarray, *, simulator: str = "verilator", gaps: float = 0.1,
             stall: float = 0.2, seed: int = 0, abandon_beats: int = 0, jobs: int = 1,
             waves_dir: str | Path | None = None, work_dir: str | Path | None = None,
             cache: Path | None = None, top: str = "snn_top", model: Artifact | None = None,
             progress: Callable[[int], None] | None = None,
             on_built: Callable[[runner.Build], None] | None = None,
             wall_limit_s: float | None = DEFAULT_WALL_LIMIT_S, stimulus: str = "shell",
             first_image: int = 0, rtl: dict | None = None) -> CocotbRun:
    """Build (or reuse) the design of ``plan`` for ``simulator`` and run ``images`` through it.

    ``gaps``/``stall``: probability of one more idle input cycle before each pixel beat /
    one more cycle of back-pressure before each result. ``abandon_beats``: first send that
    many beats of a throw-away image and soft-reset in the middle of it. ``jobs``: split the
    images into that many contiguous shards, each in its own simulator process.
    ``waves_dir``: write ``waves.fst`` (``waves<k>.fst`` per shard) there; never by default
    (``.vcd`` from Verilator where its FST writer cannot be built, see
    :func:`runner.waves_format`).
    ``work_dir``: keep the run's files there (default: a temporary directory).
    ``model``: the artifact the bench's reference runs (default: the plan's; a different
    one is how the tests prove that a mismatch is caught). ``progress(images_done)`` is
    called from a helper thread while the simulation runs; ``on_built(build)`` once the
    model is built. ``wall_limit_s``: wall-clock seconds each shard's simulation may take
    (None: no limit); past it the run stops with an error naming the image it was waiting
    for (``errors``), like the per-image cycle limit.
    ``rtl``: the design as :func:`generate_rtl` gave it for this ``plan`` and ``top``
    (generated here when None; a shard on another worker gets it from its client).
    ``first_image``: the index of ``images[0]`` in a larger run (a shard of it,
    :mod:`snnfpga.sim.shard`): mismatches, errors and ``mismatched_images`` count from it.
    ``stimulus``: ``"shell"`` (default): the Verilog shell replays the stream schedules and
    makes the clock (where the simulator can build delays, :func:`runner.can_time`), Python
    only checks each result; ``"python"``: cocotb coroutines drive the streams. Both draw the
    same gaps and stalls from ``seed`` and put them on the same clock edges
    (:mod:`snnfpga.sim.cocotb_tb.stimulus`).
    """
    start = time.time()
    runner.configure(simulator)
    n = len(images)
    if n == 0:
        raise ValueError("no images to simulate")
    with tempfile.TemporaryDirectory(prefix="snnfpga-sim-") as tmp:
        run_dir = Path(work_dir if work_dir is not None else tmp).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        graph = isinstance(plan, GraphTopPlan)
        rtl = rtl or generate_rtl(plan, top)
        (run_dir / "rtl").mkdir(parents=True, exist_ok=True)
        (run_dir / "rtl" / f"{top}.v").write_text(rtl["verilog"])
        (run_dir / "rtl" / f"{top}.json").write_text(json.dumps(rtl["description"], indent=2) + "\n")
        description = rtl["description"]
        shell_clock = stimulus == "shell" and runner.can_time(simulator)
        sources = {f"{top}.v": (run_dir / "rtl" / f"{top}.v").read_text(),
                   f"{top}{SHELL_SUFFIX}.v": accelerator_shell(description, stimulus=stimulus,
                                                               clock_ns=Job.clock_ns if shell_clock else None)}
        waves = waves_dir is not None
        built = runner.build(sources, f"{top}{SHELL_SUFFIX}", simulator, waves=waves, cache=cache,
                             timing=shell_clock and simulator == "verilator")
        if on_built:
            on_built(built)
        per_beat = description["parameters"]["pixels_per_beat"]
        ram = any(p["name"] == "weights__valid" for p in description["ports"])
        weight_words = weight_load_beats(plan) if stimulus == "shell" and ram else None
        bounds = [int(b) for b in np.linspace(0, n, min(jobs, n) + 1)]
        shards = list(zip(bounds[:-1], bounds[1:]))
        done_per_shard = [0] * len(shards)
        lock = threading.Lock()

        def run_shard(k: int, lo: int, hi: int) -> tuple[Job, dict, Path | None]:
            shard_dir = (run_dir / (f"shard{k}" if len(shards) > 1 else "run")).resolve()
            shard_dir.mkdir(parents=True, exist_ok=True)
            job = Job(run_dir=str(shard_dir), artifact=str(shard_dir / "artifact"), images=str(shard_dir / "images.npz"),
                      description=str(run_dir / "rtl" / f"{top}.json"), gaps=gaps, stall=stall,
                      seed=seed + k, abandon_beats=abandon_beats, first_image=first_image + lo,
                      wall_limit_s=wall_limit_s, stimulus=stimulus, shell_clock=shell_clock, inputs_async=True,
                      preamble_beats=len(weight_words or []) + abandon_beats if stimulus == "shell" else 0,
                      max_cycles_per_image=GRAPH_MAX_CYCLES_PER_IMAGE if graph else Job.max_cycles_per_image)
            for stale in (job.log, job.results_log, job.result, job.progress, job.inputs_ready,
                          job.inputs_failed):  # a reused work_dir
                stale.unlink(missing_ok=True)
            if stimulus == "shell":  # the shell reads this one at time 0 (the script at its first edge)
                schedules.write_stalls(job.stalls, hi - lo, seed=job.seed, stall=stall)
            failed: list[BaseException] = []

            def prepare():  # while the simulator starts (the bench waits for job.inputs_ready)
                try:
                    _save_inputs(shard_dir, model or plan.artifact, images[lo:hi])
                    if stimulus == "shell":  # the streams' schedules, drawn here as the bench would draw them
                        schedules.write(job.script, None, reference.flatten_images(plan.artifact, images[lo:hi]),
                                        per_beat, seed=job.seed, gaps=gaps, stall=stall, abandon_beats=abandon_beats,
                                        weight_words=weight_words)
                    job.mark_inputs()
                except BaseException as exc:  # the bench stops waiting, the host raises this
                    failed.append(exc)
                    job.mark_inputs(exc)
            wave_file = None
            if waves:
                Path(waves_dir).mkdir(parents=True, exist_ok=True)
                name = (f"waves{k}" if len(shards) > 1 else "waves") + "." + runner.waves_format(simulator)
                wave_file = Path(waves_dir).resolve() / name

            def shard_progress(count):
                with lock:
                    done_per_shard[k] = count
                    total = sum(done_per_shard)
                progress(total)

            writer = threading.Thread(target=prepare, daemon=True)
            writer.start()
            try:
                result = _run(job, built, BENCH, waves_file=wave_file, progress=shard_progress if progress else None)
            except runner.ToolError:
                writer.join()
                if failed:
                    raise failed[0] from None
                raise
            writer.join()
            if failed:
                raise failed[0]
            return job, result, wave_file

        run_start = time.time()
        if len(shards) == 1:
            outcomes = [run_shard(0, *shards[0])]
        else:
            with ThreadPoolExecutor(max_workers=len(shards)) as pool:
                outcomes = list(pool.map(lambda a: run_shard(*a), [(k, lo, hi) for k, (lo, hi) in enumerate(shards)]))
        run_s = time.time() - run_start
        merged = _merge(outcomes, shards, plan.artifact.n_classes)
        if graph:  # spikes per node in its own shape, named as the reference names them
            t = merged["trace"]
            shapes = [m["shape"] for m in description["monitors"]]
            merged["trace"] = Trace(spikes=[x.reshape(len(x), x.shape[1], *shape) for x, shape in zip(t.spikes, shapes)],
                                    scores=t.scores, classes=t.classes,
                                    names=[m["node"] for m in description["monitors"]])
    return CocotbRun(simulator=simulator, build=built, sim_wall_s=run_s, wall_s=time.time() - start, **merged)


def _merge(outcomes, shards, n_classes: int) -> dict:
    """One result from the shards, cut at the first shard that did not finish."""
    spikes, scores, classes, cycles, counters = [], [], [], [], []
    mismatched, mismatches, errors, waves = [], [], [], []
    total_cycles = 0
    for (job, result, wave_file), (lo, hi) in zip(outcomes, shards):
        with np.load(job.rtl) as rtl:
            stages = sorted((k for k in rtl.files if k.startswith("spikes")), key=lambda s: int(s[6:]))
            spikes.append([rtl[k] for k in stages])
            scores.append(rtl["scores"].reshape(-1, n_classes))
            classes.append(rtl["classes"])
            cycles.append(rtl["cycles"])
            counters.append(rtl["counter_cycles"])
        mismatched += result["mismatched_images"]
        mismatches += result["mismatches"]
        errors += result["errors"]
        total_cycles += result["total_cycles"]
        if wave_file is not None and wave_file.exists():
            waves.append(wave_file)
        if result["n"] < hi - lo:
            break
    trace = Trace(spikes=[np.concatenate(layer) for layer in zip(*spikes)], scores=np.concatenate(scores),
                  classes=np.concatenate(classes))
    return dict(n=len(trace.classes), trace=trace, cycles=np.concatenate(cycles),
                counter_cycles=np.concatenate(counters), mismatched_images=mismatched, mismatches=mismatches,
                errors=errors, total_cycles=total_cycles, waves=waves)


def engine_verilog(plan: Plan, index: int, top: str) -> tuple[str, list[dict]]:
    """Verilog of layer engine ``index`` on its own, and its ports (name, direction, width)."""
    engine = LayerEngine(plan.layers[index], plan.artifact.timesteps)
    ports = [{"name": "clk", "direction": "input", "width": 1}, {"name": "rst", "direction": "input", "width": 1}]
    for path, member, value in engine.signature.flatten(engine):
        ports.append({"name": "__".join(str(p) for p in path),
                      "direction": "input" if member.flow == wiring.In else "output",
                      "width": len(Value.cast(value))})
    return verilog.convert(engine, name=top, emit_src=False), ports


def simulate_engine(art: Artifact, index: int, images: np.ndarray, *, lanes: int, simulator: str = "verilator",
                    gaps: float = 0.2, stall: float = 0.3, seed: int = 0, cache: Path | None = None,
                    top: str = "snn_engine") -> CocotbRun:
    """Feed layer ``index`` of ``art`` (as one Verilog engine with ``lanes`` lanes) the spike
    trains the reference gives it on ``images``; check its output spikes or scores."""
    start = time.time()
    runner.configure(simulator)
    plan = make_plan(art, lanes=lanes)
    lp = plan.layers[index]
    text, ports = engine_verilog(plan, index, top)
    eos_out = token_layout(lp.out_bits)["eos"].offset
    built = runner.build({f"{top}.v": text, f"{top}{SHELL_SUFFIX}.v": engine_shell(top, ports, eos_out)},
                         f"{top}{SHELL_SUFFIX}", simulator, cache=cache)
    extra = {"in_bits": token_layout(lp.in_bits)["eos"].offset}
    if lp.is_output:
        layout = scores_layout(lp.layer.score_bits, lp.layer.n_out)
        extra["score_fields"] = [(layout[f"class{j}"].offset, lp.layer.score_bits) for j in range(lp.layer.n_out)]
    with tempfile.TemporaryDirectory(prefix="snnfpga-engine-") as tmp:
        run_dir = Path(tmp).resolve()
        artifact, images_file = _save_inputs(run_dir, art, images)
        job = Job(run_dir=str(run_dir), artifact=artifact, images=images_file, layer=index, gaps=gaps,
                  stall=stall, seed=seed, extra=extra, max_cycles_per_image=50_000)
        result = _run(job, built, ENGINE_BENCH)
    return CocotbRun(simulator=simulator, n=result["n"], trace=None, cycles=np.zeros(0, np.int64),
                     counter_cycles=np.zeros(0, np.int64), mismatched_images=result["mismatched_images"],
                     mismatches=result["mismatches"], errors=result["errors"], total_cycles=0, build=built,
                     sim_wall_s=result["sim_wall_s"], wall_s=time.time() - start, waves=[])
