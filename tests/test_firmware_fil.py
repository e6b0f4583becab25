"""Firmware in the loop: the real C driver on the Verilated system equals the reference.

Harness builds are cached on disk (snnfpga.sim.runner.cache_root), so a second run only
simulates. Cold, the builds of this module take about a minute on two cores.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from snnfpga import cli
from snnfpga.firmware import fil
from snnfpga.model.artifact import save_artifact
from snnfpga.rtl.graph_top import make_graph_top_plan
from snnfpga.sim import reference
from tests.firmware_common import (default_artifact, default_plan, firmware_in_the_loop, harness, small_artifact,
                                   small_images, small_plan, validation_images)


def check(art, images, outcome):
    comparison = fil.compare(art, images, outcome)
    assert not comparison.mismatches, str(comparison.mismatches[0])
    assert len(outcome.images) == len(images)
    assert all(r["cycles"] > 0 and r["bus_cycles"] > r["cycles"] for r in outcome.images)


@pytest.mark.parametrize("storage, name, beat", [("rom", "one-hidden", 4), ("ram", "one-hidden", 4),
                                                 ("ram", "two-hidden", 2)])
def test_small_model_matches_reference(storage, name, beat):
    plan = small_plan(storage, name, beat)
    images = small_images(5, name)
    outcome = fil.run_images(harness(plan), images)
    check(plan.artifact, images, outcome)
    assert ("weights" in outcome.events) == (storage == "ram")
    if storage == "ram":  # one write per chunk, two cycles per access
        chunks = sum(len(words) for words in fil.codegen.weight_image(plan).memories)
        assert outcome.events["weights"]["cycles"] - outcome.events["init"]["cycles"] >= 2 * chunks


@pytest.mark.parametrize("storage", ["ram", "rom"])
def test_default_model_matches_reference(storage):
    plan = default_plan(storage)
    images = validation_images(3)
    outcome = fil.run_images(harness(plan), images)
    check(default_artifact(), images, outcome)
    assert len(set(r["class"] for r in outcome.images)) > 1


def test_driver_timeout_and_bad_weights_on_the_rtl():
    plan = small_plan("ram")
    built = harness(plan)
    images = small_images(2)
    outcome = fil.run_images(built, images, timeout_polls=2)
    assert outcome.images[0]["error"] == "timed out waiting for the accelerator"
    assert outcome.images[1]["error"] == "the accelerator is busy"
    assert fil.compare(plan.artifact, images, outcome).mismatches[0].what == "status"
    blob = bytearray(fil.codegen.weights_blob(plan))
    blob[-1] ^= 0xFF
    with pytest.raises(fil.FirmwareRunError, match="weights: weight image malformed"):
        fil.run_images(built, images, weights_blob=bytes(blob))


def test_cli_runs_firmware_in_the_loop(tmp_path, capsys):
    plan = small_plan("rom")
    harness(plan)  # the command reuses this build
    model = save_artifact(small_artifact(), tmp_path / "model")
    data = tmp_path / "data.npz"
    images = small_images(6)
    np.savez(data, images=images, labels=np.arange(6, dtype=np.uint8) % 4)
    args = ["firmware", str(model), "--out", str(tmp_path / "fw"), "--lanes", "5", "--run", "6", "--data", str(data),
            "--split", "all", "--json"]
    assert cli.main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == 6 and summary["matches"] == 6 and summary["mismatches"] == 0
    assert summary["accuracy_firmware"] == summary["accuracy_ref"]
    assert summary["cycles_per_image"] > 0 and summary["first_mismatch"] is None
    assert {p.split("/")[-1] for p in summary["files"]} >= {"snn_regmap.h", "registers.md", "snn_driver.c", "Makefile"}


def test_cli_user_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["firmware", "default", "--out", str(tmp_path), "--weights-blob"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --weights-blob and --weights-c need --weights ram (ROM weights are in the bitstream)")
    # 128 lanes of 4-bit run-time weights: 512-bit words, beyond the WEIGHT_DATA window
    assert cli.main(["firmware", "default", "--out", str(tmp_path), "--weights", "ram", "--lanes", "128"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: cannot map onto the register block: 512-bit weight words exceed the 8 WEIGHT_DATA chunks "
        "(weights ram: use fewer lanes or weights rom)")


def test_cli_reports_the_first_mismatch(tmp_path, capsys, monkeypatch):
    plan = small_plan("rom")
    harness(plan)
    model = save_artifact(small_artifact(), tmp_path / "model")
    data = tmp_path / "data.npz"
    np.savez(data, images=small_images(3), labels=np.zeros(3, dtype=np.uint8))
    real = reference.run

    def wrong(art, images, record=True):  # the "reference" disagrees on image 1's class
        trace = real(art, images, record)
        trace.classes = trace.classes.copy()
        trace.classes[1] = (trace.classes[1] + 1) % art.n_classes
        return trace

    monkeypatch.setattr(reference, "run", wrong)
    args = ["firmware", str(model), "--out", str(tmp_path / "fw"), "--lanes", "5", "--run", "3", "--data", str(data),
            "--split", "all"]
    assert cli.main(args) == 1
    out = capsys.readouterr().out
    assert "1 image(s) differ" in out
    assert "first mismatch: image 1, class: expected" in out


def test_cli_runs_firmware_in_the_loop_for_a_layer_graph(tmp_path, capsys):
    """The same C driver and register map for a graph model: the build constants say it is
    a graph, every class, score and per-node spike counter matches the reference."""
    from snnfpga.model.synthetic import random_graph

    art = random_graph(11, token="glif", head="pool")
    summary = firmware_in_the_loop(art, tmp_path, capsys, lanes=1, seed=11)
    assert summary["n"] == 3 and summary["matches"] == 3 and summary["mismatches"] == 0
    header = (tmp_path / "fw" / "snn_regmap.h").read_text()
    assert "#define SNN_BUILD_GRAPH 1u" in header
    assert f"#define SNN_BUILD_N_LAYERS {len(art.spiking_nodes) + 1}u" in header
    assert "Spike counters (SPIKES[s]) of this layer graph: 0 encoder, 1 stem.lif" in header



def test_firmware_in_the_loop_loads_a_layer_graphs_weights_at_run_time(tmp_path, capsys):
    """``--weights ram`` on a graph: the C driver writes every synapse's weight memory
    through WEIGHT_ADDR/WEIGHT_DATA (WIDTHS.WEIGHT_MEMORIES of them), then every class,
    score and spike counter matches the reference."""
    from snnfpga.model.synthetic import random_graph

    art = random_graph(12, token="glif", head="pool")
    summary = firmware_in_the_loop(art, tmp_path, capsys, lanes=1, seed=12, weights="ram")
    assert summary["n"] == 3 and summary["matches"] == 3 and summary["mismatches"] == 0
    assert summary["weight_storage"] == "ram" and summary["weight_load_cycles"] > 0
    n_synapses = sum(1 for n in art.graph.nodes if n.name in make_graph_top_plan(art, lanes=1).specs)
    assert f"#define SNN_BUILD_WEIGHT_MEMORIES {n_synapses}u" in (tmp_path / "fw" / "snn_regmap.h").read_text()
