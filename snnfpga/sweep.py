"""Design-space sweep over lanes and weight bits: cycles, resources, Fmax, latency.

For every weight width ``b`` the model is re-quantized (:mod:`snnfpga.model.requantize`;
the model's own width is used as it is; without widths, the model as it is: the only way
for a layer graph, which cannot be re-quantized yet) and run through the integer reference on the
data's validation split, which gives its accuracy and the spike trains of the cycle model.
For every lane count ``P`` the accelerator (a layer graph: the graph accelerator) is
generated for the target (its pixel beat and weight storage) and synthesized, placed and routed (:func:`snnfpga.rtl.implement.implement`,
one directory per point, reused when nothing changed). Latency = mean cycles / Fmax.

:func:`mark_pareto` marks the Pareto front over latency, logic and block RAM among the
points that fit and have a latency (``pareto``), and the fastest of them (``best``: least
latency, then logic, then block RAM).

Units: ``latency_us`` microseconds, ``fmax_mhz`` MHz, ``accuracy_int`` percent,
``cycles_per_image`` clock cycles (cycle model, mean over the images).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from snnfpga import document, plots
from snnfpga.errors import ConfigError, MappingError
from snnfpga.rtl.implement import Progress, implement
from snnfpga.rtl.targets import Target

RESULT_FORMAT = "snnfpga.sweep"


def point_dir(out: Path, target: Target, bits: int, lanes: int) -> Path:
    return out / target.name / f"w{bits}_p{lanes}"


@dataclass(frozen=True)
class PointJob:
    """One sweep point for an executor: the plan to implement, where (an absolute
    directory), and how. ``name`` is ``w<bits>_p<lanes>``; ``index``/``total`` and
    ``started`` (epoch seconds) only label the progress messages."""

    name: str
    plan: object
    bits: int
    lanes: int
    target: str
    directory: str
    place_and_route: bool
    seeds: int | None
    index: int = 1
    total: int = 1
    progress: bool = False
    started: float = 0.0


def implement_point(job: PointJob) -> dict:
    """Run one point (:func:`snnfpga.rtl.implement.implement`, reused when nothing changed);
    the implementation result, or ``{"problem": ...}`` when the generator cannot map it."""
    from snnfpga.rtl.targets import get_target

    progress = Progress(f"sweep {job.name}", enabled=job.progress)
    if job.started:
        progress.start = job.started
    plan = job.plan
    progress.say(f"point {job.index}/{job.total}: {job.bits}-bit weights, {job.lanes} lanes")
    try:
        return implement(plan, get_target(job.target), job.directory, progress=progress,
                         place_and_route=job.place_and_route, seeds=job.seeds)
    except MappingError as error:
        return {"problem": str(error)}


def sweep(model: str, target: Target, lanes: list[int], weight_bits: list[int] | None, out_dir: str | Path, *,
          data: str = "default", images: int = 1000, place_and_route: bool = True, seeds: int | None = None,
          progress: Progress | None = None, executor=None, point_job=implement_point) -> dict:
    """Run the sweep (see module doc); write ``sweep.json``, ``sweep.md`` and ``sweep.html``
    (with the plot) into ``out_dir``. Returns the JSON-ready result.

    The points are jobs of ``executor`` (:mod:`snnfpga.executor`; default: one after another
    in this process), ``point_job(PointJob) -> result`` each (:func:`implement_point`); the
    accuracy, the cycle model and the tables stay here, so the result does not depend on
    where the points ran. A point that fails on every attempt is a row with ``problem``
    ``failed: ...`` and is listed in ``failed``; rerun the sweep to do only what is missing
    (finished points are reused from their directories)."""
    from snnfpga.executor import Executor, JobFailed
    from snnfpga.model.artifact import load_artifact
    from snnfpga.model.data import load_dataset
    from snnfpga.model.requantize import requantize
    from snnfpga.commands.synth import target_plan
    from snnfpga.model.kinds import Synapse
    from snnfpga.rtl.scatter import RAMPED
    from snnfpga.sim import reference

    progress = progress or Progress("sweep", enabled=False)
    executor = executor or Executor(1)
    out = Path(out_dir)
    base = load_artifact(model)
    dataset = load_dataset(data).split("val").limit(images).require_input_shape(base.input_shape)
    own_bits = sorted({n.weight_bits for n in base.nodes if isinstance(n, Synapse) or n.KIND in RAMPED})
    if weight_bits and not base.is_chain:
        raise ConfigError(f"{base.name} is a layer graph: its weights cannot be re-quantized yet (it has "
                          f"{', '.join(map(str, own_bits))}-bit weights; leave out --weight-bits)")
    # No widths asked for: the model as it is (labelled with its widest weights).
    bits_list = list(weight_bits) if weight_bits else [max(own_bits)]
    rows: list[dict | None] = []
    points = []  # (row index, job, bits, lanes, requantized, accuracy, cycles)
    total = len(bits_list) * len(lanes)
    for bits in bits_list:
        art = base if not weight_bits or [bits] == own_bits else requantize(base, bits)
        trace = reference.run(art, dataset.images)
        accuracy = round(100.0 * float((trace.classes == dataset.labels).mean()), 2)
        for p in lanes:
            try:
                plan = target_plan(art, target, lanes=p)
                cycles = float(plan.cycle_model.cycles_per_image(plan, trace).mean())
            except MappingError as error:  # this point cannot be built; the others still can
                progress.say(f"point w{bits}_p{p} skipped: {error}")
                rows.append(unmappable_row(target, bits, p, art is not base, accuracy, str(error)))
                continue
            job = PointJob(name=f"w{bits}_p{p}", plan=plan, bits=bits, lanes=p, target=target.name,
                           directory=str(point_dir(out, target, bits, p).resolve()), place_and_route=place_and_route,
                           seeds=seeds, index=len(rows) + 1, total=total, progress=progress.enabled,
                           started=progress.start)
            points.append((len(rows), job, bits, p, art is not base, accuracy, cycles))
            rows.append(None)
    if points:
        progress.say(f"{len(points)} point(s) on {executor.describe()}")

    def finished(k, job, result):
        if isinstance(result, JobFailed):
            progress.say(f"point {job.name} FAILED: {result}")
        elif executor.workers > 1 or executor.kind != "local":
            progress.say(f"point {job.name} done" + (" (reused)" if result.get("cached") else ""))

    results = executor.map_jobs(point_job, [point[1] for point in points], on_result=finished)
    failed = []
    for (slot, job, bits, p, requantized, accuracy, cycles), result in zip(points, results):
        if isinstance(result, JobFailed):
            failed.append(str(result))
            rows[slot] = unmappable_row(target, bits, p, requantized, accuracy, f"failed: {result}")
        elif result.get("problem"):
            rows[slot] = unmappable_row(target, bits, p, requantized, accuracy, result["problem"])
        else:
            rows[slot] = point_row(target, bits, p, requantized, accuracy, cycles, result)
    mark_pareto(rows)
    summary = {
        "format": RESULT_FORMAT, "version": 1, "model": str(model), "artifact": base.name,
        "sizes": base.sizes if base.is_chain else None, "target": target.name, "device": target.device,
        "pixels_per_beat": target.pixels_per_beat, "weight_storage": target.weight_storage if base.is_chain else "rom",
        "images": len(dataset), "data": str(data), "place_and_route": place_and_route,
        "units": {"latency_us": "microseconds at Fmax", "fmax_mhz": "MHz", "accuracy_int": "percent",
                  "cycles_per_image": "clock cycles, cycle model mean"},
        "rows": rows, "failed": failed,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    blocks = [("h", 1, f"Design-space sweep: {base.name} on {target.name}"),
              ("p", f"Model `{model}` ({'-'.join(map(str, base.sizes)) if base.is_chain else 'a layer graph'}), "
                    f"{target.device}, {target.pixels_per_beat} pixel(s) per beat, weights in "
                    f"{summary['weight_storage']}. Cycles from the "
                    f"cycle model on {len(dataset)} validation images; resources and Fmax from Yosys and nextpnr; "
                    "other weight widths re-quantized after training (accuracy measured by the integer reference)."),
              ("table", TABLE_HEADER, table_rows(rows))]
    if any(r["latency_us"] for r in rows):
        blocks.append(("figure", "design_space", plots.design_space(rows),
                       "Latency per image against logic, one line per weight width, labelled with the lanes"))
    files = document.write(blocks, out, "sweep", f"snnfpga sweep: {base.name}")
    return {**summary, "files": {k: str(v) for k, v in files.items()}}


def point_row(target: Target, bits: int, lanes: int, requantized: bool, accuracy: float, cycles: float,
              result: dict) -> dict:
    """A sweep row from one point's implementation result (see module doc for units)."""
    from snnfpga.rtl import cycle_model

    fmax = result.get("fmax_mhz")
    return {
        "target": target.name, "weight_bits": bits, "lanes": lanes,
        "requantized": requantized, "accuracy_int": accuracy,
        "cycles_per_image": round(cycles, 1),
        "luts": result["luts"], "ffs": result["ffs"], "logic_cells": result["logic_cells"],
        "brams": result["brams"], "brams_by_kind": result["brams_by_kind"], "dsps": result["dsps"],
        "multipliers": result["multipliers"], "fmax_mhz": fmax, "fits": result["fits"],
        "resources_from": result["resources_from"],
        **cycle_model.at_clock(cycles, fmax),
        "cached": result.get("cached", False), "problem": None,
    }


def cost(row: dict) -> tuple:
    """``(latency_us, logic, block RAM)`` of a point: what the Pareto front trades off
    (logic: LCs on the iCE40, LUT4 elsewhere)."""
    logic = row["logic_cells"] if row["target"].startswith("ice40") else row["luts"]
    return row["latency_us"], logic, row["brams"]


def mark_pareto(rows: list[dict]) -> None:
    """Set ``pareto`` (no other fitting point is at least as good in latency, logic and block
    RAM and better in one) and ``best`` (the fastest point of the front) on every row; points
    that do not fit or have no latency (synthesis only) are neither."""
    candidates = [r for r in rows if r.get("fits") and r.get("latency_us") is not None]
    for row in rows:
        row["pareto"] = row["best"] = False
    for row in candidates:
        mine = cost(row)
        row["pareto"] = not any(all(a <= b for a, b in zip(cost(o), mine)) and cost(o) != mine
                                for o in candidates if o is not row)
    if candidates:
        min(candidates, key=cost)["best"] = True


def unmappable_row(target: Target, bits: int, lanes: int, requantized: bool, accuracy: float, problem: str) -> dict:
    """A sweep row for a point the generator cannot map (no resources, no timing)."""
    empty = dict.fromkeys(("cycles_per_image", "luts", "ffs", "logic_cells", "brams", "dsps", "multipliers",
                           "fmax_mhz", "latency_us", "images_per_s"))
    return {"target": target.name, "weight_bits": bits, "lanes": lanes, "requantized": requantized,
            "accuracy_int": accuracy, **empty, "brams_by_kind": {}, "fits": False, "resources_from": None,
            "cached": False, "problem": problem}


TABLE_HEADER = ["weight bits", "lanes", "int. acc. (%)", "cycles/image", "LUT4 / LC", "FFs", "BRAM", "DSP",
                "Fmax (MHz)", "latency (us)", "fits", "Pareto"]


def table_rows(rows: list[dict]) -> list[list]:
    def num(x, fmt):
        return "n/a" if x is None else format(x, fmt)

    out = []
    for r in rows:
        bits = f"{r['weight_bits']}" + (" (requant.)" if r["requantized"] else "")
        if r.get("problem"):
            out.append([bits, r["lanes"], f"{r['accuracy_int']:.2f}"] + ["n/a"] * 7 + [f"no: {r['problem']}", ""])
            continue
        logic = r["logic_cells"] if r["target"].startswith("ice40") else r["luts"]
        bram = ", ".join(f"{v} {k.upper()}" for k, v in r["brams_by_kind"].items() if v) or "0"
        out.append([bits, r["lanes"], f"{r['accuracy_int']:.2f}", f"{r['cycles_per_image']:,.0f}", f"{logic:,}",
                    f"{r['ffs']:,}", bram, r["dsps"], num(r["fmax_mhz"], ".1f"), num(r["latency_us"], ".1f"),
                    "yes" if r["fits"] else "no",
                    "best" if r.get("best") else "yes" if r.get("pareto") else ""])
    return out


def text_table(rows: list[dict]) -> str:
    """The result table as aligned plain text."""
    body = [TABLE_HEADER] + [[str(c) for c in row] for row in table_rows(rows)]
    widths = [max(len(row[k]) for row in body) for k in range(len(TABLE_HEADER))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in body)
