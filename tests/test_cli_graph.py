"""Graph models on the command line: describe, eval per node, the report with spike maps and
the hardware, Verilog and bit-exact simulation of the graph accelerator, synthesis and the
sweep, and one-line refusals of what graphs do not have yet (run-time weights,
re-quantization)."""

import json

import pytest

from snnfpga.model.artifact import load_artifact
from tests.cli_common import cli, last_json, small_graph_model


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return small_graph_model(tmp_path_factory.mktemp("graph"), 60)


def test_describe_prints_every_node_with_widths_bounds_and_memory(graph):
    model, _ = graph
    r = cli("describe", model, "--json")
    assert r.returncode == 0, r.stderr
    desc = last_json(r.stdout)
    manifest = json.loads((model / "manifest.json").read_text())
    assert [n["name"] for n in desc["nodes"]] == [n["name"] for n in manifest["nodes"]]
    conv = next(n for n in desc["nodes"] if n["name"] == "stem")
    assert conv["kind"] == "conv" and conv["weights"] == load_artifact(model).graph.node("stem").weight.size
    assert conv["widths"]["current_bits"] >= 2 and "current" in conv["bounds"]
    assert conv["memory_bits"]["weights"] == conv["weights"] * conv["widths"]["weight_bits"] + \
        conv["shape"][0] * conv["widths"]["bias_bits"]
    total = sum(sum(n["memory_bits"].values()) for n in desc["nodes"])
    assert desc["totals"]["memory_bits"] == total and not desc["chain"] and desc["version"] == 2
    for name in ("stem", "tok.h.glif", "fuse", "pool", "out"):
        assert name in r.stdout
    assert "total:" in r.stdout


def test_describe_a_chain_and_a_missing_model():
    r = cli("describe", "default")
    assert r.returncode == 0 and "fc1.dense" in r.stdout and "artifact version 1" in r.stdout
    r = cli("describe", "no-such-model")
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr


def test_eval_reports_spikes_and_operations_per_node(graph):
    model, sample = graph
    r = cli("eval", model, "--data", sample, "--json")
    assert r.returncode == 0, r.stderr
    out = last_json(r.stdout)
    assert out["n"] == 60 and out["accuracy_float"] is None and out["sizes"] is None
    nodes = {n["name"]: n for n in out["nodes"]}
    spiking = [n for n in out["nodes"] if "spikes" in n]
    assert {n["kind"] for n in spiking} == {"lif", "glif"}
    assert abs(sum(n["synaptic_ops"] for n in out["nodes"] if "synaptic_ops" in n) - out["synaptic_ops"]) < 1
    # The head reads the pooled spike counts of down.lif: 10 weights per spike.
    assert nodes["head"]["synaptic_ops"] == pytest.approx(10 * nodes["down.lif"]["spikes"], abs=0.1)
    assert "spikes" in r.stdout and "tok.w.glif" in r.stdout  # the per-node table is printed for graphs


def test_report_of_a_graph_has_spike_maps_rtl_and_targets(graph, tmp_path):
    model, sample = graph
    r = cli("report", model, "--data", sample, "--out", tmp_path / "rep", "--rtl-images", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = last_json(r.stdout)
    rtl = out["accuracy"]["rtl"]
    assert rtl["n"] == 3 and rtl["mismatches"] == 0 and rtl["errors"] == 0 and rtl["cycles_per_image"] > 100
    assert [t["target"] for t in out["targets"]] == ["ice40-up5k", "ecp5-85k"]
    assert all(t["status"] == "not run" and t["cycles_per_image"] > 100 and t["energy"] is None
               for t in out["targets"])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "figures/spike_maps.png" in md and "Activity per node" in md and "Hardware per target" in md
    assert (tmp_path / "rep" / "figures" / "spike_maps.png").stat().st_size > 1000
    assert "tok.h.glif" in md and "bit-exact" in md and "snnfpga synth" in md


def test_verilog_of_a_graph_is_deterministic_and_describes_every_node(graph, tmp_path):
    model, _ = graph
    outs = []
    for k in range(2):
        r = cli("verilog", model, "--out", tmp_path / f"v{k}", "--lanes", "2", "--json")
        assert r.returncode == 0, r.stderr
        outs.append(last_json(r.stdout))
    a, b = ((tmp_path / f"v{k}" / "snn_top.v").read_bytes() for k in range(2))
    assert a == b and b"/tmp" not in a and len(a) > 10_000
    desc = json.loads((tmp_path / "v0" / "snn_top.json").read_text())
    names = [n.name for n in load_artifact(model).graph.nodes]
    assert [n["name"] for n in desc["nodes"]] == names and desc["version"] == 2
    roles = {n["name"]: n["role"] for n in desc["nodes"]}
    assert roles["stem"].startswith("synapse") and roles["stem.lif"] == "neuron engine (lif)"
    assert roles["tok.h.glif"] == "scan engine (glif)" and roles["pool"] == "wiring"
    assert outs[0]["engines"] == sum(r != "wiring" for r in roles.values())
    r = cli("verilog", model, "--out", tmp_path / "w", "--lanes", "2", "--weights", "ram")
    assert r.returncode == 0, r.stderr
    ram = json.loads((tmp_path / "w" / "snn_top.json").read_text())
    assert ram["parameters"]["weight_storage"] == "ram" and "written at run time" in ram["memory_contents"]
    synapses = [n for n in ram["nodes"] if "weights" in n.get("memories", {})]
    assert synapses and all(n["memories"]["weights"]["kind"].startswith("ram") for n in synapses)
    assert {"weights__valid", "weights__payload"} <= {p["name"] for p in ram["ports"]}
    text = (tmp_path / "w" / "snn_top.v").read_text()
    assert text.count("initial") < (tmp_path / "v0" / "snn_top.v").read_text().count("initial")
    r = cli("verilog", model, "--out", tmp_path / "wb", "--lanes", "2", "--interface", "wishbone", "--json")
    assert r.returncode == 0, r.stderr
    desc = json.loads((tmp_path / "wb" / "snn_top.json").read_text())
    assert desc["interface"] == "wishbone" and "monitors" not in desc
    assert {p["name"] for p in desc["ports"]} >= {"bus__adr", "bus__dat_r", "irq"}
    assert [s["node"] for s in desc["stages"]] == ["encoder"] + [n.name for n in load_artifact(model).spiking_nodes]


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_sim_of_a_graph_is_bit_exact_on_both_simulators(graph, simulator):
    from tests.test_sim_cocotb import require

    require(simulator)
    model, sample = graph
    r = cli("sim", model, "--data", sample, "--limit", "3", "--simulator", simulator, "--lanes", "2", "--json")
    assert r.returncode == 0, r.stderr + r.stdout
    out = last_json(r.stdout)
    assert out["n"] == 3 and out["mismatches"] == 0 and out["errors"] == 0
    assert out["accuracy_rtl"] == out["accuracy_ref"] and out["cycles_per_image"] > 100


def test_sim_of_a_graph_with_weights_loaded_at_run_time_is_bit_exact(graph):
    """``--weights ram``: the bench writes every synapse's weight memory through the
    ``weights`` port before the first image (the memories start undefined)."""
    from tests.test_sim_cocotb import require

    require("verilator")
    model, sample = graph
    r = cli("sim", model, "--data", sample, "--limit", "3", "--lanes", "2", "--weights", "ram", "--json")
    assert r.returncode == 0, r.stderr + r.stdout
    out = last_json(r.stdout)
    assert out["n"] == 3 and out["mismatches"] == 0 and out["errors"] == 0 and out["weights"] == "ram"


@pytest.mark.parametrize("args, message", [
    (("sweep", "--target", "ice40-up5k", "--weight-bits", "3"), "cannot be re-quantized yet")])
def test_what_graphs_do_not_have_yet_is_refused_in_one_line(graph, tmp_path, args, message):
    model, _ = graph
    r = cli(args[0], model, *args[1:], "--out", tmp_path / "o")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "layer graph" in lines[0] and message in lines[0], r.stderr


@pytest.mark.slow
def test_sweep_synthesizes_a_graph_over_lanes(graph, tmp_path):
    """Yosys on the graph accelerator behind the board shell: resources, no multiplier, the
    cycle model per lane count (a few minutes: the slow marker)."""
    model, sample = graph
    r = cli("sweep", model, "--target", "ice40-up5k", "--lanes", "1,2", "--synth-only", "--data", sample,
            "--out", tmp_path / "sw", "--json")
    assert r.returncode == 0, r.stderr
    rows = last_json(r.stdout)["rows"]
    assert [row["lanes"] for row in rows] == [1, 2]
    assert all(row["multipliers"] == 0 and row["dsps"] == 0 and row["luts"] > 100 for row in rows)
    assert rows[1]["cycles_per_image"] < rows[0]["cycles_per_image"]


def test_lanes_auto_folds_a_graph_and_is_refused_for_a_chain_in_one_line(graph, tmp_path):
    from snnfpga.rtl.graph_fold import fold_for
    from snnfpga.rtl.graph_top import make_graph_top_plan
    from snnfpga.rtl.targets import get_target

    model, _ = graph
    r = cli("verilog", model, "--out", tmp_path / "auto", "--lanes", "auto", "--json")
    assert r.returncode == 0, r.stderr
    art = load_artifact(model)
    expected = make_graph_top_plan(art, lane_caps=fold_for(art, get_target("ecp5-85k"))).node_lanes
    desc = json.loads((tmp_path / "auto" / "snn_top.json").read_text())
    assert desc["parameters"]["node_lanes"] == expected
    # For a chain, --lanes auto is a search that only snnfpga synth runs (tests/test_impl_flow.py).
    r = cli("verilog", "default", "--out", tmp_path / "chain", "--lanes", "auto")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "is a chain: --lanes auto folds" in lines[0], r.stderr
    r = cli("verilog", model, "--out", tmp_path / "bad", "--lanes", "many")
    assert r.returncode == 2 and "expected a positive integer, got 'many'" in r.stderr
