"""One seam for running independent jobs: a local process pool or a Dask cluster.

Sweeps (``snnfpga sweep``), placement seeds (``snnfpga synth --seeds``), sharded RTL
regressions (``snnfpga sim --scheduler``) and ``benchmarks/accuracy_sweep.py`` hand their
jobs to an :class:`Executor` from :func:`get_executor`; none of them knows where the jobs
run. The scheduler is chosen by ``--scheduler SPEC`` or, without it, the environment
variable ``SNNFPGA_SCHEDULER``:

``local`` (the default)
    ``workers`` processes on this machine (:class:`concurrent.futures.ProcessPoolExecutor`,
    spawned); ``workers=1`` runs the jobs one after another in this process.
``tcp://HOST:PORT`` (or ``tls://``)
    an existing Dask scheduler (``dask scheduler`` and ``dask worker tcp://HOST:PORT``);
    the connection gives up after ``SNNFPGA_SCHEDULER_TIMEOUT`` seconds (default 10).
``jobqueue:KIND`` or ``jobqueue:KIND:FILE.yaml``
    a batch-queue cluster of ``dask-jobqueue`` (``KIND``: slurm, pbs, sge, lsf, htcondor,
    moab, oar) configured by Dask's own configuration (``~/.config/dask/jobqueue.yaml``,
    section ``jobqueue.KIND``) or by ``FILE.yaml`` in the same format; ``workers`` Dask
    workers are requested from the queue when the first jobs are handed over.

:meth:`Executor.map_jobs` runs a function over a list of jobs (any picklable objects with
a ``name``) and returns the results in job order, whoever ran them. A job that raises, or
whose worker process dies, is run again up to ``retries`` more times; after that its slot
holds a :class:`JobFailed` naming it, and the other jobs carry on. Dask, the ``cluster``
extra, is imported only for a Dask scheduler (``pip install 'snnfpga[cluster]'``).
"""

from __future__ import annotations

import os
import re
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snnfpga.errors import ConfigError, ToolError

ENV_SCHEDULER = "SNNFPGA_SCHEDULER"
ENV_TIMEOUT = "SNNFPGA_SCHEDULER_TIMEOUT"
DEFAULT_TIMEOUT_S = 10.0
INSTALL_HINT = "pip install 'snnfpga[cluster]'"
JOBQUEUE_KINDS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster",
                  "htcondor": "HTCondorCluster", "moab": "MoabCluster", "oar": "OARCluster"}
_ADDRESS = re.compile(r"^(tcp|tls)://([A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})$")

SCHEDULER_HELP = ("where the jobs run: local (default: a process pool on this machine), tcp://HOST:PORT "
                  "(a running Dask scheduler) or jobqueue:KIND[:FILE.yaml] (a dask-jobqueue cluster, KIND "
                  f"slurm, pbs, sge, ...); default ${ENV_SCHEDULER} or local (docs/scale-out.md)")


@dataclass(frozen=True)
class JobFailed:
    """The slot of a job that failed on every attempt: its name, the last error (one line)
    and the number of attempts made."""

    name: str
    error: str
    attempts: int

    def __str__(self) -> str:
        return f"{self.name}: {self.error} (failed {self.attempts} time{'s' if self.attempts > 1 else ''})"


def failures(results: Sequence[Any]) -> list[JobFailed]:
    """The :class:`JobFailed` entries of a :meth:`Executor.map_jobs` result."""
    return [r for r in results if isinstance(r, JobFailed)]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"


def _name(job: Any) -> str:
    return str(getattr(job, "name", job))


OnResult = Callable[[int, Any, Any], None]


class Executor:
    """Runs jobs (see module doc). ``kind``: ``"local"`` or ``"dask"``; ``workers``: how
    many jobs run at once (local) or the workers requested (jobqueue); ``address``: the
    Dask scheduler's address (None for local). Use as a context manager or call
    :meth:`close`."""

    kind = "local"
    address: str | None = None

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers = workers

    def describe(self) -> str:
        """One line: where the jobs run."""
        if self.workers == 1:
            return "local, one job at a time in this process"
        return f"local process pool of {self.workers} workers"

    def map_jobs(self, fn: Callable[[Any], Any], jobs: Sequence[Any], *, retries: int = 1,
                 on_result: OnResult | None = None) -> list[Any]:
        """``fn(job)`` for every job; the results in job order, a :class:`JobFailed` where a job
        failed ``retries + 1`` times. ``on_result(index, job, result)`` is called in this
        process as each job finishes (a result or a JobFailed), in completion order."""
        jobs = list(jobs)
        if self.workers == 1:
            return self._inline(fn, jobs, retries, on_result)
        return self._pool(fn, jobs, retries, on_result)

    def _inline(self, fn, jobs, retries, on_result):
        results = []
        for index, job in enumerate(jobs):
            for attempt in range(1, retries + 2):
                try:
                    result = fn(job)
                    break
                except Exception as exc:  # noqa: BLE001 - any job error is reported by name
                    result = JobFailed(_name(job), _one_line(exc), attempt)
            results.append(result)
            if on_result:
                on_result(index, job, result)
        return results

    def _pool(self, fn, jobs, retries, on_result):
        """At most ``workers`` jobs in flight, so a dead worker's suspects are known. A pool
        that breaks (a worker died) is replaced; when several jobs were in flight, none is
        charged an attempt and each is rerun alone, where a death names its job (and its
        retry runs alone too)."""
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        context = multiprocessing.get_context("spawn")

        def new_pool():
            return ProcessPoolExecutor(max_workers=self.workers, mp_context=context)

        results: list[Any] = [None] * len(jobs)
        attempts = [0] * len(jobs)
        pending, alone = deque(range(len(jobs))), deque()
        inflight: dict = {}
        pool = new_pool()

        def finish(index, result):
            results[index] = result
            if on_result:
                on_result(index, jobs[index], result)

        def failed(index, error: str, died: bool = False):
            attempts[index] += 1
            if attempts[index] <= retries:
                (alone if died else pending).appendleft(index)
            else:
                finish(index, JobFailed(_name(jobs[index]), error, attempts[index]))

        try:
            while pending or alone or inflight:
                if alone:
                    if not inflight:
                        index = alone.popleft()
                        inflight[pool.submit(fn, jobs[index])] = index
                else:
                    while pending and len(inflight) < self.workers:
                        index = pending.popleft()
                        inflight[pool.submit(fn, jobs[index])] = index
                broken: list[int] = []

                def collect(futures) -> None:
                    for future in futures:
                        index = inflight.pop(future)
                        try:
                            finish(index, future.result())
                        except BrokenProcessPool:
                            broken.append(index)
                        except Exception as exc:  # noqa: BLE001
                            failed(index, _one_line(exc))

                collect(wait(list(inflight), return_when=FIRST_COMPLETED)[0])
                if not broken:
                    continue
                # A worker died: every other job in flight fails with it.
                collect(wait(list(inflight))[0])
                pool.shutdown(wait=True, cancel_futures=True)
                pool = new_pool()
                if len(broken) == 1:
                    failed(broken[0], "its worker process died", died=True)
                else:
                    alone.extend(sorted(broken))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results

    def close(self) -> None:
        """Release the workers (a local pool holds none between calls)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class DaskExecutor(Executor):
    """Jobs on a Dask cluster through a ``distributed.Client``. Dask itself reschedules a
    task whose worker died (up to its ``distributed.scheduler.allowed-failures``); a task
    it gives up on (``KilledWorker``) or that raised counts as one failed attempt here."""

    kind = "dask"

    def __init__(self, client, *, workers: int = 1, cluster=None, address: str | None = None):
        super().__init__(workers)
        self.client, self.cluster, self.address = client, cluster, address
        self._scaled = cluster is None

    def describe(self) -> str:
        where = f"Dask scheduler {self.address}"
        if self.cluster is not None:
            where = f"{type(self.cluster).__name__} ({self.workers} workers requested) at {self.address}"
        return where

    def _pool(self, fn, jobs, retries, on_result):
        from distributed import as_completed

        if not self._scaled:
            self.cluster.scale(self.workers)
            self._scaled = True
        token = uuid.uuid4().hex[:8]
        results: list[Any] = [None] * len(jobs)
        attempts = [0] * len(jobs)

        def submit(index):
            key = f"snnfpga-{re.sub(r'[^A-Za-z0-9_.-]+', '_', _name(jobs[index]))}-{token}-{index}-{attempts[index]}"
            future = self.client.submit(fn, jobs[index], key=key, pure=False)
            owner[future.key] = index
            return future

        owner: dict[str, int] = {}
        stream = as_completed([submit(i) for i in range(len(jobs))], loop=self.client.loop)
        for future in stream:
            index = owner.pop(future.key)
            try:
                results[index] = future.result()
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # noqa: BLE001 - a remote error, KilledWorker or a cancel
                attempts[index] += 1
                future.release()
                if attempts[index] <= retries:
                    stream.add(submit(index))
                    continue
                results[index] = JobFailed(_name(jobs[index]), _one_line(error), attempts[index])
            future.release()
            if on_result:
                on_result(index, jobs[index], results[index])
        return results

    def map_jobs(self, fn, jobs, *, retries=1, on_result=None):
        return self._pool(fn, list(jobs), retries, on_result)

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def _import_distributed(spec: str):
    try:
        import distributed
    except ImportError:
        raise ToolError(f"--scheduler {spec} needs Dask's distributed, which is not installed: "
                        f"{INSTALL_HINT}") from None
    return distributed


def _timeout() -> float:
    text = os.environ.get(ENV_TIMEOUT, "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"${ENV_TIMEOUT} must be a number of seconds > 0, got {text!r}")
    return value


def scheduler_spec(scheduler: str | None) -> str:
    """The scheduler asked for: ``scheduler``, else ``$SNNFPGA_SCHEDULER``, else ``local``."""
    spec = (scheduler if scheduler is not None else os.environ.get(ENV_SCHEDULER, "")).strip()
    return spec or "local"


def uses_cluster(scheduler: str | None) -> bool:
    """Whether ``scheduler`` (or the environment) names a Dask scheduler, not the local pool."""
    return scheduler_spec(scheduler) != "local"


def check_scheduler(spec: str) -> str:
    """Validate the form of a scheduler spec (no connection); return it or raise ConfigError."""
    if spec == "local" or _ADDRESS.match(spec):
        if spec != "local" and not 0 < int(_ADDRESS.match(spec).group(3)) < 65536:
            raise ConfigError(f"bad scheduler address {spec!r}: the port must be 1..65535")
        return spec
    if spec.startswith("jobqueue:"):
        parts = spec.split(":", 2)
        kind = parts[1] if len(parts) > 1 else ""
        if kind not in JOBQUEUE_KINDS:
            raise ConfigError(f"bad scheduler {spec!r}: jobqueue:KIND[:FILE.yaml] with KIND one of "
                              f"{', '.join(JOBQUEUE_KINDS)}")
        if len(parts) == 3 and not Path(parts[2]).is_file():
            raise ConfigError(f"bad scheduler {spec!r}: no configuration file {parts[2]}")
        return spec
    raise ConfigError(f"bad scheduler {spec!r}: expected local, tcp://HOST:PORT (a Dask scheduler) or "
                      f"jobqueue:KIND[:FILE.yaml]")


def get_executor(scheduler: str | None = None, workers: int = 1) -> Executor:
    """The executor for ``scheduler`` (see module doc); ``workers`` jobs at a time locally,
    ``workers`` Dask workers requested from a batch queue (ignored by a running scheduler,
    whose workers are what they are). Raises a one-line ConfigError / ToolError for a bad
    spec, a missing ``distributed`` or a scheduler that does not answer in time."""
    spec = check_scheduler(scheduler_spec(scheduler))
    if spec == "local":
        return Executor(workers)
    distributed = _import_distributed(spec)
    timeout = _timeout()
    if spec.startswith("jobqueue:"):
        return _jobqueue_executor(spec, workers, distributed, timeout)
    try:
        client = distributed.Client(spec, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ToolError(f"cannot reach the Dask scheduler at {spec} within {timeout:g} s "
                        f"({' '.join(str(exc).split())[:160]}); is `dask scheduler` running there?") from None
    return DaskExecutor(client, workers=workers, address=spec)


def _jobqueue_executor(spec: str, workers: int, distributed, timeout: float) -> Executor:
    try:
        import dask_jobqueue
    except ImportError:
        raise ToolError(f"--scheduler {spec} needs dask-jobqueue, which is not installed: {INSTALL_HINT}") from None
    parts = spec.split(":", 2)
    kind = parts[1]
    settings = {}
    if len(parts) == 3:
        import yaml

        try:
            settings = yaml.safe_load(Path(parts[2]).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the jobqueue configuration {parts[2]}: {_one_line(exc)}") from None
        if not isinstance(settings, dict) or not isinstance(settings.get("jobqueue", {}).get(kind), dict):
            raise ConfigError(f"{parts[2]} has no section jobqueue: {kind}: (Dask's jobqueue.yaml format, "
                              "see docs/scale-out.md)")
    cls = getattr(dask_jobqueue, JOBQUEUE_KINDS[kind])
    try:
        # The file's section as arguments (its keys are the arguments' names, "-" for "_"),
        # over Dask's own configuration.
        cluster = cls(**{key.replace("-", "_"): value for key, value in settings.get("jobqueue", {}).get(kind, {}).items()})
    except (ValueError, TypeError, KeyError, OSError, AttributeError) as exc:
        raise ConfigError(f"--scheduler {spec}: dask-jobqueue cannot make a {cls.__name__}: {_one_line(exc)}") from None
    try:
        client = distributed.Client(cluster, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        cluster.close()
        raise ToolError(f"cannot reach the {cls.__name__} scheduler within {timeout:g} s: {_one_line(exc)}") from None
    return DaskExecutor(client, workers=workers, cluster=cluster, address=cluster.scheduler_address)
