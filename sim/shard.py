"""A regression sharded over an executor's workers (``snnfpga sim --scheduler``).

:func:`simulate_sharded` cuts the images into ``jobs`` contiguous shards exactly as
:func:`snnfpga.sim.cocotb_sim.simulate` does with ``jobs`` threads (the same bounds), runs
shard ``k`` as one job, :func:`run_shard`: ``cocotb_sim.simulate`` on its images with
``seed + k`` (the seed that shard gets locally, so the same stream gaps and stalls), on
whichever worker takes it, with the Verilog the client generated once; each worker builds
the simulation model once or finds it in its build cache (:mod:`snnfpga.sim.runner`, keyed and file-locked). :func:`merge` joins
the shards' :class:`~snnfpga.sim.cocotb_sim.CocotbRun` results into the one the local
run gives: traces and cycles concatenated (each shard numbers its images from its first
one, ``first_image``, so mismatches and errors need no renumbering), cut after the first
shard that did not finish all its images.

Units: ``wall_s`` and ``sim_wall_s`` in seconds (the slowest shard's simulation).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snnfpga.errors import ToolError

@dataclass(frozen=True)
class ShardJob:
    """Images ``lo .. hi-1`` of a run, as one executor job. ``work_dir``: keep the shard's
    files there (an absolute path the worker can write; None: a temporary directory);
    ``waves``: write ``waves.<fst|vcd>`` into ``work_dir``; ``model``: as in
    ``cocotb_sim.simulate``."""

    name: str
    plan: object
    images: np.ndarray
    lo: int
    hi: int
    simulator: str
    gaps: float
    stall: float
    seed: int
    wall_limit_s: float | None
    work_dir: str | None = None
    waves: bool = False
    model: object = None  # the artifact the bench's reference runs (default: the plan's)
    rtl: dict | None = None  # the design, generated once by the client (cocotb_sim.generate_rtl)


def shard_bounds(n: int, jobs: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` of each shard: the same cut as ``cocotb_sim.simulate(jobs=jobs)``."""
    bounds = [int(b) for b in np.linspace(0, n, min(jobs, n) + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def run_shard(job: ShardJob):
    """Simulate one shard (on a worker); returns its ``CocotbRun`` (images numbered from ``lo``)."""
    from snnfpga.sim import cocotb_sim

    return cocotb_sim.simulate(job.plan, job.images, simulator=job.simulator, gaps=job.gaps, stall=job.stall,
                               seed=job.seed, jobs=1, work_dir=job.work_dir,
                               waves_dir=job.work_dir if job.waves else None, wall_limit_s=job.wall_limit_s,
                               model=job.model, first_image=job.lo, rtl=job.rtl)


def merge(runs: list, shards: list[tuple[int, int]], wall_s: float):
    """One ``CocotbRun`` from the shards' runs (see module doc)."""
    from snnfpga.sim.cocotb_sim import CocotbRun
    from snnfpga.sim.reference import Trace

    kept, fields = [], {"mismatched_images": [], "mismatches": [], "errors": [], "waves": []}
    for run, (lo, hi) in zip(runs, shards):
        kept.append(run)
        fields["mismatched_images"] += list(run.mismatched_images)
        fields["mismatches"] += list(run.mismatches)
        fields["errors"] += list(run.errors)
        fields["waves"] += list(run.waves)
        if run.n < hi - lo:
            break
    first = kept[0].trace
    trace = Trace(spikes=[np.concatenate(stage) for stage in zip(*(r.trace.spikes for r in kept))],
                  scores=np.concatenate([r.trace.scores for r in kept]),
                  classes=np.concatenate([r.trace.classes for r in kept]), names=first.names)
    build = dataclasses.replace(kept[0].build, build_s=max(r.build.build_s for r in runs),
                                cached=all(r.build.cached for r in runs))
    return CocotbRun(simulator=kept[0].simulator, n=len(trace.classes), trace=trace,
                     cycles=np.concatenate([r.cycles for r in kept]),
                     counter_cycles=np.concatenate([r.counter_cycles for r in kept]),
                     total_cycles=sum(r.total_cycles for r in kept), build=build,
                     sim_wall_s=max(r.sim_wall_s for r in runs), wall_s=wall_s, **fields)


def simulate_sharded(executor, plan, images: np.ndarray, *, jobs: int, simulator: str = "verilator",
                     gaps: float = 0.1, stall: float = 0.2, seed: int = 0, wall_limit_s: float | None = None,
                     work_dir: str | Path | None = None, waves: bool = False, model=None,
                     progress: Callable[[int], None] | None = None):
    """``cocotb_sim.simulate(plan, images, jobs=jobs, ...)`` with the shards as jobs of
    ``executor`` (:mod:`snnfpga.executor`); the same ``CocotbRun``. ``work_dir``: shard
    ``k`` keeps its files in ``work_dir/shard<k>`` (workers must share that file system).
    ``progress(images_done)`` after each finished shard. A shard that fails twice raises
    ToolError naming it."""
    from snnfpga.executor import JobFailed

    start = time.time()
    if len(images) == 0:
        raise ValueError("no images to simulate")
    from snnfpga.sim.cocotb_sim import generate_rtl

    shards = shard_bounds(len(images), jobs)
    rtl = generate_rtl(plan)  # once here, not once per worker
    root = Path(work_dir).resolve() if work_dir is not None else None
    shard_jobs = [ShardJob(name=f"shard {k} (images {lo}..{hi - 1})", plan=plan, images=np.ascontiguousarray(images[lo:hi]),
                           lo=lo, hi=hi, simulator=simulator, gaps=gaps, stall=stall, seed=seed + k,
                           wall_limit_s=wall_limit_s, work_dir=str(root / f"shard{k}") if root else None,
                           waves=waves and root is not None, model=model, rtl=rtl)
                  for k, (lo, hi) in enumerate(shards)]
    done = [0]

    def finished(k, job, result):
        if not isinstance(result, JobFailed):
            done[0] += result.n
            if progress:
                progress(done[0])

    runs = executor.map_jobs(run_shard, shard_jobs, on_result=finished)
    failed = [r for r in runs if isinstance(r, JobFailed)]
    if failed:
        raise ToolError(f"simulation {failed[0]}" + (f" (and {len(failed) - 1} more shard(s))" if len(failed) > 1 else ""))
    return merge(runs, shards, time.time() - start)
