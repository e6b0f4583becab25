"""The executor seam (snnfpga/executor.py): the local pool and a Dask cluster give the same
results in job order, survive a worker that dies, report a job that fails twice by name;
the sweep and a sharded RTL simulation give on a 2-worker Dask ``LocalCluster`` what they
give on this machine."""

import dataclasses
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from snnfpga.errors import ConfigError, ToolError
from snnfpga.executor import Executor, JobFailed, check_scheduler, failures, get_executor
from tests.cli_common import cli, last_json, small_mnist_model


@pytest.fixture(scope="module")
def cluster():
    """The address of a Dask LocalCluster: 2 worker processes, one thread each."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                      silence_logs=logging.ERROR) as c:
        yield c.scheduler_address


@dataclass(frozen=True)
class Square:
    name: str
    x: int
    marks: str  # a directory: one file per job counts its attempts
    delay: float = 0.0
    die: str = ""  # "first": the worker process dies on the first attempt; "always": on every one
    fail: bool = False


def attempts(marks: Path, name: str) -> int:
    path = Path(marks) / f"{name}.attempts"
    return len(path.read_text()) if path.exists() else 0


def square(job: Square) -> dict:
    with open(Path(job.marks) / f"{job.name}.attempts", "a") as f:
        f.write("x")
    if job.die == "always" or (job.die == "first" and attempts(job.marks, job.name) == 1):
        os._exit(7)
    if job.fail:
        raise RuntimeError(f"{job.name} is broken")
    time.sleep(job.delay)
    return {"name": job.name, "square": job.x * job.x, "pid_is_not_ours": os.getpid() != int(job.marks.split("-")[-1])}


def executors(cluster):
    return {"inline": lambda: Executor(1), "local pool": lambda: get_executor("local", workers=2),
            "dask": lambda: get_executor(cluster, workers=2)}


def marks_dir(tmp_path: Path) -> str:
    path = tmp_path / f"marks-{os.getpid()}"
    path.mkdir()
    return str(path)


@pytest.mark.parametrize("kind", ["inline", "local pool", "dask"])
def test_results_come_back_in_job_order_whoever_ran_them(cluster, tmp_path, kind):
    marks = marks_dir(tmp_path)
    # Later jobs are quicker, so they finish first on a pool.
    jobs = [Square(f"j{k}", k, marks, delay=0.05 * (4 - k)) for k in range(5)]
    seen = []
    with executors(cluster)[kind]() as ex:
        results = ex.map_jobs(square, jobs, on_result=lambda i, job, r: seen.append((i, job.name)))
    assert [r["square"] for r in results] == [0, 1, 4, 9, 16]
    assert [r["name"] for r in results] == [j.name for j in jobs]
    assert sorted(seen) == [(k, f"j{k}") for k in range(5)]
    # inline runs here; the pool and Dask in other processes
    assert {r["pid_is_not_ours"] for r in results} == {kind != "inline"}


@pytest.mark.parametrize("kind", ["local pool", "dask"])
def test_a_worker_killed_mid_run_is_survived_by_the_retry(cluster, tmp_path, kind):
    marks = marks_dir(tmp_path)
    jobs = [Square(f"j{k}", k, marks, delay=0.2, die="first" if k == 1 else "") for k in range(4)]
    with executors(cluster)[kind]() as ex:
        results = ex.map_jobs(square, jobs)
    assert not failures(results)
    assert [r["square"] for r in results] == [0, 1, 4, 9]
    assert attempts(marks, "j1") == 2  # it really died once


@pytest.mark.parametrize("kind", ["inline", "local pool", "dask"])
def test_a_job_that_fails_twice_is_reported_by_name_and_the_others_complete(cluster, tmp_path, kind):
    marks = marks_dir(tmp_path)
    jobs = [Square(f"j{k}", k, marks, fail=k == 2) for k in range(4)]
    with executors(cluster)[kind]() as ex:
        results = ex.map_jobs(square, jobs)
    assert [r["square"] for k, r in enumerate(results) if k != 2] == [0, 1, 9]
    failed = results[2]
    assert isinstance(failed, JobFailed) and failures(results) == [failed]
    assert failed.name == "j2" and failed.attempts == 2 and "RuntimeError: j2 is broken" in failed.error
    assert str(failed).startswith("j2: RuntimeError: j2 is broken")
    assert attempts(marks, "j2") == 2 and attempts(marks, "j0") == 1


def test_a_job_that_always_kills_its_worker_is_reported_and_the_rest_complete(tmp_path):
    marks = marks_dir(tmp_path)
    jobs = [Square(f"j{k}", k, marks, delay=0.1, die="always" if k == 0 else "") for k in range(4)]
    with get_executor("local", workers=2) as ex:
        results = ex.map_jobs(square, jobs)
    assert isinstance(results[0], JobFailed) and "worker process died" in results[0].error
    assert results[0].attempts == 2 and [r["square"] for r in results[1:]] == [1, 4, 9]
    # Two deaths it alone could cause, and at most one more beside another job (not counted).
    assert attempts(marks, "j0") in (2, 3)


def test_bad_scheduler_specs_are_refused_in_one_line(monkeypatch):
    for spec, message in [("nonsense", "bad scheduler 'nonsense'"), ("tcp://host", "bad scheduler"),
                          ("tcp://host:99999", "port must be 1..65535"), ("jobqueue:k8s", "KIND one of slurm"),
                          ("jobqueue:slurm:/no/such.yaml", "no configuration file")]:
        with pytest.raises(ConfigError, match=message):
            check_scheduler(spec)
    monkeypatch.setitem(sys.modules, "distributed", None)  # Dask not installed
    with pytest.raises(ToolError, match=r"pip install 'snnfpga\[cluster\]'"):
        get_executor("tcp://127.0.0.1:8786")
    monkeypatch.setenv("SNNFPGA_SCHEDULER", "tcp://127.0.0.1:8786")
    with pytest.raises(ToolError, match="needs Dask's distributed"):
        get_executor()
    assert get_executor("local", workers=3).workers == 3  # --scheduler local overrides the variable


def test_the_command_line_gives_one_line_errors_for_a_bad_or_unreachable_scheduler(tmp_path):
    bad = cli("sweep", "tiny", "--target", "ice40-up5k", "--scheduler", "udp://x:1", "--out", tmp_path)
    assert bad.returncode == 2 and "error: bad scheduler 'udp://x:1'" in bad.stderr and "Traceback" not in bad.stderr
    env = {**os.environ, "SNNFPGA_SCHEDULER_TIMEOUT": "1"}
    start = time.time()
    gone = cli("sim", "tiny", "--data", "default", "--limit", "2", "--scheduler", "tcp://127.0.0.1:9", env=env)
    assert gone.returncode == 2 and "Traceback" not in gone.stderr
    assert "error: cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 1 s" in gone.stderr
    assert time.time() - start < 60


def test_a_jobqueue_config_file_makes_the_batch_cluster_it_describes(tmp_path):
    config = tmp_path / "slurm.yaml"
    config.write_text("jobqueue:\n  slurm:\n    cores: 4\n    memory: 8GB\n    queue: fpga\n"
                      "    walltime: '02:00:00'\n    job-extra-directives: ['--constraint=avx2']\n")
    with get_executor(f"jobqueue:slurm:{config}", workers=3) as ex:
        script = ex.cluster.job_script()
        assert ex.kind == "dask" and "SLURMCluster (3 workers requested)" in ex.describe()
    assert "#SBATCH -p fpga" in script and "#SBATCH -t 02:00:00" in script and "--constraint=avx2" in script
    assert "#SBATCH --cpus-per-task=4" in script and "--nthreads 1" in script and "--nworkers 4" in script
    (tmp_path / "empty.yaml").write_text("jobqueue:\n  pbs:\n    cores: 1\n")
    with pytest.raises(ConfigError, match="no section jobqueue: slurm:"):
        get_executor(f"jobqueue:slurm:{tmp_path / 'empty.yaml'}")


# -- the sweep through the executor ------------------------------------------------------------

@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    model, data = small_mnist_model(tmp, 40)
    return {"model": model, "data": data, "tmp": tmp}


def fake_point(job) -> dict:
    """A stand-in for the tools: resources from the plan's lanes and widths, written to and
    reused from the point's directory as implement() does; ``die``/``fail`` markers in the
    sweep's directory make the named points kill their worker once or fail every time."""
    directory = Path(job.directory)
    root = directory.parent.parent
    if (root / f"die-{job.name}").exists() and not (root / f"died-{job.name}").exists():
        (root / f"died-{job.name}").write_text("")
        os._exit(9)
    if (root / f"fail-{job.name}").exists():
        raise RuntimeError(f"tool broke on {job.name}")
    saved = directory / "result.json"
    if saved.exists():
        return {**json.loads(saved.read_text()), "cached": True}
    luts = 100 * job.lanes + 7 * job.bits + len(job.plan.layers)
    result = {"luts": luts, "ffs": luts // 2, "logic_cells": luts, "brams": job.lanes, "brams_by_kind": {"ebr": job.lanes},
              "dsps": 0, "multipliers": 0, "fmax_mhz": 50.0 - job.lanes, "fits": True, "resources_from": "fake"}
    directory.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(result))
    return {**result, "cached": False}


def run_sweep(small, out, executor, lanes=(2, 4)):
    from snnfpga.rtl.targets import get_target
    from snnfpga.sweep import sweep

    return sweep(small["model"], get_target("ice40-up5k"), list(lanes), [3, 5], out, data=small["data"],
                 executor=executor, point_job=fake_point)


def test_a_sweep_on_a_dask_cluster_equals_the_local_pool_and_a_rerun_reuses_every_point(cluster, small):
    with get_executor("local", workers=2) as ex:
        local = run_sweep(small, small["tmp"] / "local", ex)
    with get_executor(cluster) as ex:
        dask = run_sweep(small, small["tmp"] / "dask", ex)
        again = run_sweep(small, small["tmp"] / "dask", ex)
    inline = run_sweep(small, small["tmp"] / "inline", Executor(1))
    assert [(r["weight_bits"], r["lanes"]) for r in local["rows"]] == [(3, 2), (3, 4), (5, 2), (5, 4)]
    assert local["rows"] == dask["rows"] == inline["rows"] and not local["failed"]
    assert local["rows"][0]["luts"] == 200 + 21 + 2 and local["rows"][0]["latency_us"] is not None
    assert all(r["cached"] for r in again["rows"]) and not any(r["cached"] for r in dask["rows"])
    strip = [{k: v for k, v in r.items() if k != "cached"} for r in again["rows"]]
    assert strip == [{k: v for k, v in r.items() if k != "cached"} for r in dask["rows"]]
    on_disk = json.loads((small["tmp"] / "dask" / "sweep.json").read_text())
    assert on_disk["rows"] == again["rows"]  # assembled from the points' own results
    point = json.loads((small["tmp"] / "dask" / "ice40-up5k" / "w5_p4" / "result.json").read_text())
    assert on_disk["rows"][3]["luts"] == point["luts"]


@pytest.mark.parametrize("kind", ["local pool", "dask"])
def test_a_sweep_survives_a_worker_killed_mid_sweep(cluster, small, kind):
    out = small["tmp"] / f"killed-{kind.replace(' ', '-')}"
    out.mkdir()
    (out / "die-w3_p4").write_text("")
    with executors(cluster)[kind]() as ex:
        r = run_sweep(small, out, ex)
    assert (out / "died-w3_p4").exists()  # a worker really died
    assert not r["failed"] and all(row["problem"] is None for row in r["rows"])
    assert r["rows"] == run_sweep(small, small["tmp"] / f"plain-{kind}", Executor(1))["rows"]


def test_a_point_that_fails_twice_is_reported_by_name_and_the_sweep_goes_on(cluster, small):
    out = small["tmp"] / "failing"
    out.mkdir()
    (out / "fail-w5_p2").write_text("")
    with get_executor(cluster) as ex:
        r = run_sweep(small, out, ex)
    bad = r["rows"][2]
    assert (bad["weight_bits"], bad["lanes"]) == (5, 2) and not bad["fits"] and bad["luts"] is None
    assert bad["problem"].startswith("failed: w5_p2: RuntimeError: tool broke on w5_p2") and "2 times" in bad["problem"]
    assert r["failed"] == [bad["problem"][len("failed: "):]]
    assert [row["problem"] for k, row in enumerate(r["rows"]) if k != 2] == [None] * 3
    assert "failed: w5_p2" in (out / "sweep.md").read_text()
    (out / "fail-w5_p2").unlink()  # the rerun does the missing point only
    with get_executor(cluster) as ex:
        rerun = run_sweep(small, out, ex)
    assert [row["cached"] for row in rerun["rows"]] == [True, True, False, True] and not rerun["failed"]


@pytest.mark.slow
def test_a_real_synthesis_sweep_on_dask_equals_the_local_pool(cluster, small):
    """Yosys on two points (about 30 s each on 2 cores), local pool and Dask, then a rerun."""
    args = ["sweep", small["model"], "--target", "ice40-up5k", "--lanes", "2,4", "--data", small["data"],
            "--synth-only", "--json"]
    local = cli(*args, "--jobs", "2", "--out", small["tmp"] / "real-local")
    dask = cli(*args, "--scheduler", cluster, "--out", small["tmp"] / "real-dask")
    again = cli(*args, "--scheduler", cluster, "--out", small["tmp"] / "real-dask")
    assert local.returncode == dask.returncode == again.returncode == 0, local.stderr + dask.stderr
    rows = [last_json(p.stdout)["rows"] for p in (local, dask, again)]
    assert rows[0] == rows[1] and rows[0][0]["luts"] > 0
    assert all(r["cached"] for r in rows[2]) and "point w3_p2 done (reused)" in again.stderr


# -- a sharded regression ---------------------------------------------------------------------

from tests.test_sim_cocotb import require  # noqa: E402


def same_run(a, b) -> None:
    assert a.n == b.n
    for x, y in zip(a.trace.spikes, b.trace.spikes, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.trace.scores, b.trace.scores)
    np.testing.assert_array_equal(a.trace.classes, b.trace.classes)
    np.testing.assert_array_equal(a.cycles, b.cycles)
    np.testing.assert_array_equal(a.counter_cycles, b.counter_cycles)
    assert (a.mismatched_images, a.mismatches, a.errors, a.total_cycles) == \
        (b.mismatched_images, b.mismatches, b.errors, b.total_cycles)


def test_a_sharded_simulation_on_dask_equals_the_local_threads(cluster, tmp_path):
    require("verilator")
    from snnfpga.model.artifact import Encoder
    from snnfpga.model.data import load_dataset
    from snnfpga.model.synthetic import random_artifact
    from snnfpga.rtl.plan import make_plan
    from snnfpga.sim import cocotb_sim
    from snnfpga.sim.shard import simulate_sharded

    images = load_dataset("default").split("val").limit(5).images
    from snnfpga.commands.synth import plan_for_target
    from snnfpga.rtl.targets import get_target

    plan = plan_for_target("tiny", get_target("ice40-up5k"))
    here = cocotb_sim.simulate(plan, images, jobs=2, seed=3, gaps=0.3, stall=0.3)
    with get_executor(cluster) as ex:
        there = simulate_sharded(ex, plan, images, jobs=2, seed=3, gaps=0.3, stall=0.3)
    assert here.passed and there.passed
    same_run(here, there)
    # A mismatch (the bench's model runs another encoder phase) is named with its image in the
    # whole run, as the local run names it: shards 1 and 2 start at images 1 and 2.
    art = random_artifact(21, input_shape=(4, 4), hidden=(7,), n_classes=3, encoder=Encoder("rate", phase=0),
                          threshold_scale=0.2)
    rng = np.random.default_rng(21)
    small = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    other = dataclasses.replace(art, encoder=Encoder("rate", phase=200))
    small_plan = make_plan(art, lanes=3)
    here = cocotb_sim.simulate(small_plan, small, jobs=3, model=other)
    with get_executor(cluster) as ex:
        there = simulate_sharded(ex, small_plan, small, jobs=3, model=other)
    assert not there.passed and max(there.mismatched_images) > 0
    same_run(here, there)


def test_snnfpga_sim_with_a_scheduler_reports_what_the_local_run_reports(cluster):
    require("verilator")
    args = ["sim", "tiny", "--data", "default", "--split", "val", "--limit", "4", "--jobs", "2", "--json"]
    local = cli(*args)
    dask = cli(*args, "--scheduler", cluster)
    assert local.returncode == dask.returncode == 0, dask.stderr
    timing = {"wall_s", "build_s", "build_cached", "sim_s", "images_per_s"}
    a, b = ({k: v for k, v in last_json(p.stdout).items() if k not in timing} for p in (local, dask))
    assert a == b and a["n"] == 4 and a["mismatches"] == 0
    assert f"2 shard(s) on Dask scheduler {cluster}" in dask.stderr
