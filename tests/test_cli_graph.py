"""Graph models on the command line: describe, eval per node, the report with spike maps,
Verilog and bit-exact simulation of the graph accelerator, and one-line refusals from the
stages that do not map graphs yet."""

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


def test_report_of_a_graph_has_spike_maps_and_says_hardware_is_not_yet(graph, tmp_path):
    model, sample = graph
    r = cli("report", model, "--data", sample, "--out", tmp_path / "rep", "--json")
    assert r.returncode == 0, r.stderr
    out = last_json(r.stdout)
    assert out["accuracy"]["rtl"] is None and out["targets"] == [] and "layer graph" in out["hardware"]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "figures/spike_maps.png" in md and "Activity per node" in md
    assert (tmp_path / "rep" / "figures" / "spike_maps.png").stat().st_size > 1000
    assert "tok.h.glif" in md


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
    r = cli("verilog", model, "--out", tmp_path / "w", "--weights", "ram")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "ROM weights only" in r.stderr


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


@pytest.mark.parametrize("args", [("synth", "--target", "ice40-up5k"), ("firmware", "--out", "OUT")])
def test_hardware_stages_refuse_a_graph_in_one_line(graph, tmp_path, args):
    model, sample = graph
    args = [str(tmp_path / "o") if a == "OUT" else str(sample) if a == "DATA" else a for a in args]
    r = cli(args[0], model, *args[1:])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "layer graph" in lines[0] and "only chains of dense LIF layers" in lines[0]
