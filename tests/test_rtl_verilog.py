"""Verilog generation: deterministic bytes, a truthful JSON description, no multiplier."""

import json
import re

import pytest

from snnfpga.model.artifact import save_artifact
from snnfpga.model.synthetic import random_artifact, random_images
from snnfpga.rtl.decision import result_layout
from snnfpga.rtl.generate import write_verilog
from snnfpga.rtl.plan import make_plan
from snnfpga.rtl.toolchain import multiplier_report
from tests.cli_common import cli, last_json


@pytest.fixture(scope="module")
def small_artifact():
    return random_artifact(21, input_shape=(5, 6), hidden=(10, 7), n_classes=4, weight_bits=5)


def test_same_input_gives_same_bytes_without_paths_or_timestamps(tmp_path, small_artifact):
    plan = make_plan(small_artifact, lanes=3, pixels_per_beat=2)
    write_verilog(plan, tmp_path / "a", top="snn_small")
    write_verilog(plan, tmp_path / "b", top="snn_small")
    for name in ("snn_small.v", "snn_small.json"):
        a = (tmp_path / "a" / name).read_bytes()
        assert a == (tmp_path / "b" / name).read_bytes(), name
        text = a.decode()
        assert str(tmp_path) not in text
        assert not re.search(r"/(home|root|tmp|work|usr)/", text), name
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b|\d\d:\d\d:\d\d", text), name


def test_description_matches_the_plan_and_the_verilog(tmp_path, small_artifact):
    plan = make_plan(small_artifact, lanes=4, pixels_per_beat=8)
    desc = write_verilog(plan, tmp_path, top="acc")
    assert desc == json.loads((tmp_path / "acc.json").read_text())
    verilog = (tmp_path / "acc.v").read_text()
    ports = {p["name"]: p for p in desc["ports"]}
    assert ports["pixels__payload"]["width"] == 64 and ports["pixels__payload"]["direction"] == "input"
    assert ports["result__payload"]["width"] == result_layout(plan).size
    for name, port in ports.items():
        width = f"[{port['width'] - 1}:0] " if port["width"] > 1 else ""
        assert re.search(rf"\b{port['direction']} {re.escape(width)}{name};", verilog), name
    for entry, layer in zip(desc["layers"], small_artifact.layers):
        assert entry["weight_bits"] == layer.weight_bits and entry["current_bits"] == layer.current_bits
        assert entry["groups"] == -(-layer.n_out // entry["lanes"])
    scores = desc["result_payload"]["scores"]
    assert scores[0]["lsb"] == desc["result_payload"]["cls"]["width"]
    assert desc["cycle_model"]["NW"] == plan.beats_per_image == 4


def test_generated_design_has_no_multiplier(tmp_path, small_artifact):
    write_verilog(make_plan(small_artifact, lanes=3), tmp_path, top="snn_top")
    report = multiplier_report(tmp_path / "snn_top.v", "snn_top")
    assert report == {"coarse": {}, "ice40": {}, "ecp5": {}}


def test_multiplier_check_can_fail(tmp_path):
    """The check itself detects a multiplier (so a pass above means something)."""
    (tmp_path / "m.v").write_text("module m(input clk, input [7:0] a, b, output reg [15:0] q);\n"
                                  "always @(posedge clk) q <= a * b;\nendmodule\n")
    report = multiplier_report(tmp_path / "m.v", "m")
    assert report["coarse"] and report["ice40"] and report["ecp5"]


def test_cli_writes_verilog_and_rejects_bad_input(tmp_path, small_artifact):
    model = save_artifact(small_artifact, tmp_path / "model")
    done = cli("verilog", str(model), "--out", str(tmp_path / "v"), "--lanes", "5", "--json")
    assert done.returncode == 0, done.stderr
    summary = last_json(done.stdout)
    assert summary["lanes"] == 5 and (tmp_path / "v" / "snn_top.v").exists()
    for args, message in [(["--lanes", "0"], "positive integer"), (["--top", "1x"], "Verilog identifier"),
                          (["--pixels-per-beat", "3"], "invalid choice")]:
        bad = cli("verilog", str(model), "--out", str(tmp_path / "w"), *args)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{")
    bad = cli("verilog", str(tmp_path / "broken"), "--out", str(tmp_path / "w"))
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr and "Traceback" not in bad.stderr


def test_hundreds_of_weight_banks_elaborate_and_stay_bit_exact(tmp_path):
    """660 inputs, 1 lane, banks of depth 2: 330 weight ROM banks. Their bank-select OR is a
    balanced tree (a chain of 330 operands overflowed Amaranth's recursion)."""
    from snnfpga.sim import amaranth_sim, reference
    from snnfpga.sim.scoreboard import compare

    art = random_artifact(9, input_shape=(33, 20), hidden=(1,), n_classes=2, threshold_scale=0.3)
    plan = make_plan(art, lanes=1, pixels_per_beat=8, rom_bank_depth=2)
    assert plan.layers[0].weight_banks == 330
    write_verilog(plan, tmp_path, top="banked")
    assert "weights329" in (tmp_path / "banked.v").read_text()
    images = random_images(art, 1, seed=9)
    assert not compare(reference.run(art, images), amaranth_sim.simulate(plan, images).trace)
