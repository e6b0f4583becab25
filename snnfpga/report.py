"""The report of one model: accuracy, activity, cycles, resources, latency, energy, figures.

:func:`make_report` gathers the figures (every one labelled with where it comes from) and
writes ``report.md`` (figures in ``figures/*.png``), a self-contained ``report.html`` and
``report.json`` into the output directory:

* accuracy (percent) on the data's validation split: float (``checkpoint.pt``), integer
  (numpy reference), and RTL on a sample (generated Verilog under Verilator, bit-exact check);
* spikes per neuron and per stage, synaptic operations (accumulates) per image;
* per target: resources and Fmax from a previous ``snnfpga synth`` in ``OUT/<target>/``
  (reused when it was made from the same model; ``synth=True`` runs missing ones, otherwise
  they are marked "not run"), cycles per image from the cycle model (and measured in RTL
  simulation), latency (us) and images/s at Fmax;
* an energy *estimate* per image from counted operations (:mod:`snnfpga.energy`);
* figures: a spike raster of one image, spikes per stage, accuracy against T and weight
  bits (from the accuracy sweep's committed JSON), cycles against lanes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from snnfpga import __version__, document, energy, plots
from snnfpga.model.artifact import arrays_sha256
from snnfpga.rtl.implement import Progress, cached_result
from snnfpga.rtl.targets import TARGETS, get_target

REPO = Path(__file__).resolve().parents[1]
ACCURACY_SWEEP = REPO / "benchmarks" / "results" / "accuracy_sweep.json"
LANE_POINTS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _fmt(x, digits=1, unit=""):
    if x is None:
        return "n/a"
    if isinstance(x, int) or (isinstance(x, float) and digits == 0):
        return f"{x:,.0f}{unit}"
    return f"{x:,.{digits}f}{unit}"


def rtl_check(plan, images, labels, *, simulator="verilator", work_dir=None, progress=None) -> dict:
    """Run ``images`` through the generated Verilog (cocotb) and compare with the reference.

    No random gaps or back-pressure, so the cycles are the accelerator's own.
    Accuracy in percent; ``mismatches``: images whose RTL output differs in any integer."""
    from snnfpga.sim import cocotb_sim, reference, runner
    from snnfpga.sim.scoreboard import compare, mismatched_images

    progress = progress or Progress("rtl", enabled=False)
    with progress.stage(f"RTL simulation of {len(images)} images ({simulator}, {plan.lanes_label})"):
        run = cocotb_sim.simulate(plan, images, simulator=simulator, gaps=0.0, stall=0.0, work_dir=work_dir)
    expected = reference.run(plan.artifact, images)
    done = run.n
    # The bench compares every spike as it runs; for a chain the host compares its trace once more.
    host = compare(reference.Trace([s[:done] for s in expected.spikes], expected.scores[:done],
                                   expected.classes[:done]), run.trace) if done and not plan.is_graph else []
    bad = sorted(set(mismatched_images(host)) | set(run.mismatched_images) | set(range(done, len(images))))
    return {
        "n": len(images),
        "simulator": runner.simulator_version(simulator),
        "lanes": plan.lanes,
        "lanes_label": plan.lanes_label,
        "pixels_per_beat": plan.pixels_per_beat,
        "weight_storage": plan.weight_storage,
        "mismatches": len(bad),
        "errors": len(run.errors),
        "accuracy_rtl": round(100.0 * float((run.trace.classes == labels[:done]).sum()) / len(images), 4),
        "accuracy_ref": round(100.0 * float((expected.classes == labels).mean()), 4),
        "cycles_per_image": round(float(run.cycles.mean()), 1) if done else None,
        "cycles_min": int(run.cycles.min()) if done else None,
        "cycles_max": int(run.cycles.max()) if done else None,
        "wall_s": round(run.wall_s, 1),
    }


def _target_row(name: str, model: str, art, out_dir: Path, trace, synth: bool, progress) -> dict:
    from snnfpga.commands.synth import plan_for_target, synthesize
    from snnfpga.rtl import cycle_model

    target = get_target(name)
    plan = plan_for_target(model, target)
    cycles = plan.cycle_model.cycles_per_image(plan, trace)
    row = {"target": name, "device": target.device, "lanes": plan.lanes, "lanes_label": plan.lanes_label,
           "weight_storage": plan.weight_storage,
           "pixels_per_beat": plan.pixels_per_beat, "cycles_per_image": round(float(cycles.mean()), 1),
           "cycles_source": "cycle model", "energy": None if plan.is_graph else energy.estimate(plan, trace)}
    sha = arrays_sha256(art)
    result = cached_result(out_dir / name)
    usable = result is not None and result.get("arrays_sha256") == sha and result.get("lanes") == plan.lanes \
        and result.get("node_lanes") == plan.parameters().get("node_lanes") \
        and result.get("weight_storage") == plan.weight_storage
    if not usable and synth:
        result = synthesize(model, name, out_dir, data=None, quiet=not progress.enabled)
        usable = True
    if not usable:
        row["status"] = "not run"
        row["command"] = f"snnfpga synth {model} --target {name} --out {out_dir}"
        return row
    row["status"] = "measured"
    for key in ("luts", "ffs", "logic_cells", "brams", "brams_by_kind", "dsps", "multipliers", "fmax_mhz", "fits",
                "clock_mhz", "fit_problems", "resources_from", "critical_path", "tools", "capacity"):
        row[key] = result.get(key)
    if row["fmax_mhz"]:
        row.update(cycle_model.at_clock(row["cycles_per_image"], row["fmax_mhz"]))
    return row


def make_report(model: str, out_dir: str | Path, *, data: str = "default", split: str = "val",
                targets: tuple[str, ...] = tuple(TARGETS), rtl_images: int = 50, simulator: str = "verilator",
                synth: bool = False, rtl: dict | None = None, rtl_target: str | None = None,
                evaluation: dict | None = None, sweep_file: str | Path | None = None,
                progress: Progress | None = None) -> dict:
    """Gather everything and write ``report.md``, ``report.html``, ``report.json`` (see module doc).

    ``evaluation``: :func:`~snnfpga.model.evaluate.evaluate` of the model on the split, already
    computed (``snnfpga run``). ``rtl``: a result of :func:`rtl_check` likewise; otherwise
    ``rtl_images`` images of the split are simulated (0: none) with the plan of
    ``rtl_target`` (default: the first of ``targets``)."""
    from snnfpga.commands.synth import plan_for_target
    from snnfpga.model.artifact import load_artifact
    from snnfpga.model.data import load_dataset
    from snnfpga.model.evaluate import evaluate
    from snnfpga.rtl import cycle_model
    from snnfpga.rtl.plan import make_plan
    from snnfpga.sim import reference

    progress = progress or Progress("report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in targets:
        get_target(name)
    art = load_artifact(model)
    dataset = load_dataset(data).split(split).require_input_shape(art.input_shape)
    with progress.stage(f"accuracy on {len(dataset)} images ({split} split)"):
        acc = evaluation or evaluate(model, dataset)
        trace = reference.run(art, dataset.images)
    labels = dataset.labels.astype(np.int64)
    rtl_target = rtl_target or targets[0]
    if rtl is None and rtl_images > 0:
        plan = plan_for_target(model, get_target(rtl_target))
        rtl = rtl_check(plan, dataset.images[:rtl_images], labels[:rtl_images], simulator=simulator,
                        work_dir=out / "rtl_sim", progress=progress)
    with progress.stage(f"cycle model and synthesis results for {', '.join(targets)}"):
        rows = [_target_row(name, model, art, out, trace, synth, progress) for name in targets]
    if not art.is_chain:
        return _graph_report(art, model, data, split, dataset, acc, trace, out, progress, rtl, rows)

    # Activity per stage and step.
    stage_names = ["input"] + [layer.name for layer in art.hidden_layers]
    per_step = [s.astype(np.float64).sum(axis=2).mean(axis=0) for s in trace.spikes]
    sizes = art.sizes[:-1]

    # Cycle model against lanes, at the pixel beat of the simulated target.
    ppb = get_target(rtl_target).pixels_per_beat
    max_lanes = max(layer.n_out for layer in art.layers)
    lane_model = {p: float(cycle_model.estimate(make_plan(art, lanes=p, pixels_per_beat=ppb), trace)["pipelined"].mean())
                  for p in LANE_POINTS if p <= max(2 * max_lanes, 1)}
    measured = {rtl["lanes"]: rtl["cycles_per_image"]} if rtl and rtl.get("cycles_per_image") else {}

    sweep_path = Path(sweep_file) if sweep_file else ACCURACY_SWEEP
    sweep = json.loads(sweep_path.read_text()) if sweep_path.exists() else None

    figures = {
        "raster": plots.spike_raster([s[0] for s in trace.spikes], stage_names,
                                     f"image 0 of the {split} split (label {int(labels[0])}, class "
                                     f"{int(trace.classes[0])})"),
        "spikes_per_layer": plots.spikes_per_layer(per_step, stage_names, sizes),
        "cycles_vs_lanes": plots.cycles_vs_lanes(lane_model, measured,
                                                 f"{art.name}, {ppb} pixel(s) per beat"),
    }
    if sweep:
        figures["accuracy_sweep"] = plots.accuracy_sweep(sweep["runs"])

    summary = {
        "format": "snnfpga.report",
        "version": 1,
        "snnfpga": __version__,
        "model": {"name": art.name, "dir": str(model), "sizes": art.sizes, "topology": acc["topology"],
                  "timesteps": art.timesteps,
                  "weight_bits": [layer.weight_bits for layer in art.layers], "encoder": art.encoder.to_json(),
                  "leak_shift": [layer.leak_shift for layer in art.hidden_layers],
                  "reset": [layer.reset for layer in art.hidden_layers],
                  "training_command": art.provenance.get("command")},
        "data": {"source": str(data), "split": split, "n": len(dataset)},
        "accuracy_unit": "percent",
        "accuracy": {"float": acc["accuracy_float"], "integer": acc["accuracy_int"], "rtl": rtl},
        "activity": {"spikes_per_neuron": acc["spikes_per_neuron"], "input_spikes": acc["input_spikes"],
                     "hidden_spikes": acc["hidden_spikes"], "synaptic_ops": acc["synaptic_ops"],
                     "spikes_per_step": {n: [round(float(x), 2) for x in p] for n, p in zip(stage_names, per_step)}},
        "targets": rows,
        "cycles_vs_lanes": {"pixels_per_beat": ppb, "model": {str(k): round(v, 1) for k, v in lane_model.items()},
                            "measured": {str(k): v for k, v in measured.items()}},
        "accuracy_sweep": str(sweep_path) if sweep else None,
    }
    blocks = _blocks(summary, sweep, figures, out)
    files = document.write(blocks, out, "report", f"snnfpga report: {art.name}")
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    progress.say(f"wrote {files['markdown']} and {files['html']}")
    return {**summary, "files": {k: str(v) for k, v in files.items()}}


def spike_map_figure(art, trace, image: int, label: str) -> bytes:
    """Heat maps of image ``image``'s spikes at every position of every spiking map node
    (summed over the steps, averaged over the channels), the encoder's first."""
    h, w = art.input_shape
    maps = [("input (encoder)", trace.spikes[0][image].reshape(-1, h, w).sum(axis=0).astype(np.float64))]
    for name, s in zip(trace.names[1:], trace.spikes[1:]):
        if s.ndim == 5:  # [N, T, C, H, W]
            maps.append((name, s[image].sum(axis=0).mean(axis=0)))
    return plots.spike_maps(maps, label)


def _graph_report(art, model, data, split, dataset, acc, trace, out: Path, progress, rtl, rows) -> dict:
    """The report of a layer graph: model, accuracy, activity per node with spike maps."""
    from snnfpga.model.describe import describe

    desc = describe(art)
    labels = dataset.labels.astype(np.int64)
    figures = {
        "spike_maps": spike_map_figure(art, trace, 0, f"image 0 of the {split} split (label {int(labels[0])}, "
                                                      f"class {int(trace.classes[0])})"),
        "node_activity": plots.node_activity(acc["nodes"]),
    }
    summary = {
        "format": "snnfpga.report",
        "version": 1,
        "snnfpga": __version__,
        "model": {"name": art.name, "dir": str(model), "topology": acc["topology"], "sizes": None,
                  "timesteps": art.timesteps, "encoder": art.encoder.to_json(), "nodes": len(art.nodes),
                  "weights": desc["totals"]["weights"], "memory_bits": desc["totals"]["memory_bits"],
                  "training_command": art.provenance.get("command")},
        "data": {"source": str(data), "split": split, "n": len(dataset)},
        "accuracy_unit": "percent",
        "accuracy": {"float": acc["accuracy_float"], "integer": acc["accuracy_int"], "rtl": rtl},
        "activity": {"spikes_per_neuron": acc["spikes_per_neuron"], "input_spikes": acc["input_spikes"],
                     "synaptic_ops": acc["synaptic_ops"], "nodes": acc["nodes"]},
        "targets": rows,
    }
    blocks = _graph_blocks(summary, desc, figures)
    files = document.write(blocks, out, "report", f"snnfpga report: {art.name}")
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    progress.say(f"wrote {files['markdown']} and {files['html']}")
    return {**summary, "files": {k: str(v) for k, v in files.items()}}


def _graph_blocks(s: dict, desc: dict, figures: dict[str, bytes]) -> list[tuple]:
    m, act = s["model"], s["activity"]
    B = _title_blocks(s, m["topology"])
    t = desc["totals"]
    B.append(("table", ["model", "value"], [
        ["graph", f"{m['nodes']} nodes (`snnfpga describe {m['dir']}`)"],
        ["time steps T", m["timesteps"]],
        ["encoder", ", ".join(f"{k} {v}" for k, v in m["encoder"].items() if k != "kind") + f" ({m['encoder']['kind']})"],
        ["weights", f"{t['weights']:,} ({t['weight_bits'] / 1000:,.1f} kbit with biases)"],
        ["spiking neurons", f"{t['neurons']:,}"],
        ["memory (weights, thresholds, state)", f"{t['memory_bits'] / 1000:,.1f} kbit"],
        ["trained with", f"`{m['training_command']}`" if m["training_command"] else "n/a"],
    ]))
    B += _accuracy_blocks(s)
    B.append(("h", 2, "Activity per node"))
    B.append(("p", f"Per image: {act['spikes_per_neuron']:.3f} spikes per neuron of the spiking nodes, "
                   f"{act['input_spikes']:,.1f} input spikes, {act['synaptic_ops']:,.0f} synaptic operations "
                   "(accumulates), means over the split."))
    B.append(("figure", "spike_maps", figures["spike_maps"],
              "Where one image spikes: per spiking node, spikes per neuron at each position (all steps, mean over "
              "channels)"))
    rows = []
    for r in act["nodes"]:
        if "spikes" in r or "synaptic_ops" in r:
            rows.append([r["name"], r["kind"], "x".join(map(str, r["shape"])), _fmt(r.get("spikes"), 1),
                         _fmt(r.get("spikes_per_neuron"), 3), _fmt(r.get("synaptic_ops"), 0)])
    B.append(("table", ["node", "kind", "shape", "spikes", "per neuron", "synaptic ops"], rows))
    B.append(("figure", "node_activity", figures["node_activity"], "Spikes per neuron and synaptic operations per node"))
    B += _hardware_blocks(s)
    B.append(("p", "The graph accelerator (rtl/graph_top.py) runs its nodes one after another in each time step; "
                   "the energy estimate covers chains only so far."))
    B.append(("h", 2, "Reproduce"))
    B.append(("code", "\n".join([f"snnfpga describe {m['dir']}",
                                  f"snnfpga eval {m['dir']} --data {s['data']['source']} --split {s['data']['split']} --nodes",
                                  *(f"snnfpga synth {m['dir']} --target {r['target']}" for r in s["targets"]),
                                  f"snnfpga report {m['dir']} --data {s['data']['source']}"])))
    return B


def _title_blocks(s: dict, shape: str) -> list[tuple]:
    """The title (model, its shape, T) and where the figures come from."""
    m = s["model"]
    caveat = (" The bundled data is an 8,000-image MNIST subset: accuracies on it are not directly comparable "
              "with full-MNIST figures; latency and resources are." if s["data"]["source"] == "default" else "")
    return [("h", 1, f"snnfpga report: {m['name']} ({shape}, T={m['timesteps']})"),
            ("p", f"Generated by snnfpga {s['snnfpga']} from the model `{m['dir']}` on the {s['data']['split']} split "
                  f"of `{s['data']['source']}` ({s['data']['n']:,} images). All accuracies in percent.{caveat}")]


def _accuracy_blocks(s: dict) -> list[tuple]:
    """The accuracy table: float, integer and (when simulated) RTL."""
    acc = s["accuracy"]
    rtl = acc["rtl"]
    rows = [["float (QAT checkpoint)", _fmt(acc["float"], 2, "%"), s["data"]["n"], "PyTorch, checkpoint.pt"],
            ["integer (reference)", _fmt(acc["integer"], 2, "%"), s["data"]["n"], "numpy integer contract"]]
    if rtl:
        verdict = "bit-exact" if rtl["mismatches"] == 0 and rtl["errors"] == 0 else \
            f"{rtl['mismatches']} image(s) differ, {rtl['errors']} error(s)"
        rows.append(["RTL (generated Verilog)", _fmt(rtl["accuracy_rtl"], 2, "%"), rtl["n"],
                     f"{rtl['simulator']}, {rtl['lanes_label']}: {verdict} (reference on the same images "
                     f"{rtl['accuracy_ref']:.2f}%)"])
    else:
        rows.append(["RTL (generated Verilog)", "not run", 0, "snnfpga sim / snnfpga report --rtl-images N"])
    return [("h", 2, "Accuracy"), ("table", ["", "accuracy", "images", "how"], rows)]


def _hardware_blocks(s: dict) -> list[tuple]:
    """Resources, Fmax, cycles and latency per target, and the RTL measurement."""
    rtl = s["accuracy"]["rtl"]
    B = [("h", 2, "Hardware per target"),
         ("p", "Resources and Fmax from Yosys and nextpnr (`snnfpga synth`, the SPI board shell around the "
               "accelerator); cycles per image from the cycle model on the validation split; latency = "
               "cycles / Fmax.")]
    hw = []
    for r in s["targets"]:
        if r["status"] != "measured":
            hw.append([r["target"], r["lanes_label"].replace(" lanes", ""), "not run", "", "", "", "", "", _fmt(r["cycles_per_image"], 0), "", "",
                       f"`{r['command']}`"])
            continue
        bram = ", ".join(f"{v} {k.upper()}" for k, v in (r["brams_by_kind"] or {}).items())
        logic = f"{r['logic_cells']:,} LC" if r["target"].startswith("ice40") else f"{r['luts']:,} LUT4"
        hw.append([r["target"], r["lanes_label"].replace(" lanes", ""), logic, _fmt(r["ffs"], 0), bram, r["dsps"], r["multipliers"],
                   _fmt(r["fmax_mhz"], 1, " MHz"), _fmt(r["cycles_per_image"], 0), _fmt(r.get("latency_us"), 1, " us"),
                   _fmt(r.get("images_per_s"), 0), "yes" if r["fits"] else "NO: " + "; ".join(r["fit_problems"])])
    B.append(("table", ["target", "lanes", "logic", "FFs", "block RAM", "DSP", "mult. cells", "Fmax",
                        "cycles/image", "latency", "images/s", "fits"], hw))
    if rtl and rtl.get("cycles_per_image"):
        B.append(("p", f"Measured in RTL simulation ({rtl['lanes_label']}, {rtl['pixels_per_beat']} pixel(s) per "
                       f"beat, no stream gaps): {rtl['cycles_per_image']:,.0f} cycles per image (min "
                       f"{rtl['cycles_min']:,}, max {rtl['cycles_max']:,}) over {rtl['n']} images."))
    return B


def _blocks(s: dict, sweep: dict | None, figures: dict[str, bytes], out: Path) -> list[tuple]:
    m, act = s["model"], s["activity"]
    B = _title_blocks(s, "-".join(map(str, m["sizes"])))
    B.append(("table", ["model", "value"], [
        ["layers", " - ".join(map(str, m["sizes"]))],
        ["time steps T", m["timesteps"]],
        ["weight bits per layer", ", ".join(map(str, m["weight_bits"]))],
        ["encoder", ", ".join(f"{k} {v}" for k, v in m["encoder"].items() if k != "kind") + f" ({m['encoder']['kind']})"],
        ["leak shift / reset", ", ".join(f"{k} / {r}" for k, r in zip(m["leak_shift"], m["reset"]))],
        ["trained with", f"`{m['training_command']}`" if m["training_command"] else "n/a"],
    ]))
    B += _accuracy_blocks(s)

    B.append(("h", 2, "Activity"))
    B.append(("table", ["per image", "value"], [
        ["spikes per hidden neuron (all steps)", _fmt(act["spikes_per_neuron"], 3)],
        ["input spikes", _fmt(act["input_spikes"], 1)],
        ["hidden spikes per layer", ", ".join(_fmt(x, 1) for x in act["hidden_spikes"])],
        ["synaptic operations (accumulates)", _fmt(act["synaptic_ops"], 0)],
    ]))
    B.append(("figure", "raster", figures["raster"], "Spike raster of one image (input and hidden layers)"))
    B.append(("figure", "spikes_per_layer", figures["spikes_per_layer"], "Mean spikes per image per stage and step"))

    B += _hardware_blocks(s)
    B.append(("figure", "cycles_vs_lanes", figures["cycles_vs_lanes"],
              "Cycles per image against lanes: cycle model (mean over the split) and RTL measurement"))

    B.append(("h", 2, "Energy per image (estimate)"))
    e0 = s["targets"][0]["energy"]
    B.append(("p", "**Estimate, not a measurement**: operations counted from the integer reference trace and the "
                   f"hardware plan, times per-operation energies of {e0['source']}: "
                   + ", ".join(f"{k} {v} pJ" for k, v in e0["pj_per_op"].items())
                   + f"; every memory access scaled to that memory's capacity ({e0['sram_scaling']}, a fit "
                     "of Horowitz's 8 kB, 32 kB and 1 MB points). ASIC figures; an FPGA spends several times more "
                     "per operation, and static power is not counted. The comparison is a dense 8-bit ANN of the "
                     "same shape under the same rules (one 8-bit multiply, one 32-bit add and one 8-bit weight "
                     "read per synapse; its activation traffic not counted)."))
    erows = []
    for r in s["targets"]:
        e = r["energy"]
        erows.append([r["target"], r["lanes"]] + [_fmt(v, 2) for v in e["parts_nj"].values()]
                     + [_fmt(e["total_nj"], 2), _fmt(e["dense_ann_8bit_nj"], 1)])
    B.append(("table", ["target", "lanes"] + [f"{k} (nJ)" for k in e0["parts_nj"]] + ["total (nJ)", "dense ANN (nJ)"],
              erows))

    B.append(("h", 2, "Accuracy against time steps and weight bits"))
    if sweep:
        B.append(("p", f"Short trainings ({sweep.get('description', '')}); produced by `{sweep.get('command', '')}`, "
                       "results committed in `benchmarks/results/accuracy_sweep.json`."))
        B.append(("figure", "accuracy_sweep", figures["accuracy_sweep"],
                  "Integer accuracy (validation split) against T and weight bits"))
    else:
        B.append(("p", "No accuracy sweep results found (run `python benchmarks/accuracy_sweep.py`)."))

    B.append(("h", 2, "Reproduce"))
    cmds = [f"snnfpga eval {m['dir']} --data {s['data']['source']} --split {s['data']['split']}"]
    cmds += [f"snnfpga synth {m['dir']} --target {r['target']} --out {out}" for r in s["targets"]]
    cmds.append(f"snnfpga report {m['dir']} --data {s['data']['source']} --out {out}")
    B.append(("code", "\n".join(cmds)))
    return B
