"""The generated Verilog under cocotb on Verilator and Icarus, bit-exact against the reference.

Each test runs on both simulators. Locally a missing simulator is a skip with its reason;
in CI (``CI=true``) it is a failure. Builds are cached (``snnfpga.sim.runner.cache_root``),
so a second run only simulates. The full validation split is behind ``-m slow``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from snnfpga.commands.verilog import DEFAULT_LANES
from snnfpga.errors import ArtifactError
from snnfpga.model.artifact import Encoder, load_artifact
from snnfpga.model.data import load_dataset
from snnfpga.model.synthetic import random_artifact, random_images
from snnfpga.rtl.encoder import pixel_beats
from snnfpga.rtl.plan import make_plan
from snnfpga.sim import cocotb_sim, reference, runner
from snnfpga.sim.cocotb_tb.wrapper import accelerator_shell
from snnfpga.sim.scoreboard import compare
from tests.cli_common import cli, last_json, small_mnist_model

SIMULATORS = ("verilator", "icarus")


def require(simulator: str) -> None:
    """Skip (locally) or fail (CI=true) when ``simulator`` cannot run here."""
    reason = runner.missing(simulator)
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{simulator} is required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(params=SIMULATORS)
def simulator(request):
    require(request.param)
    return request.param


def default_size_artifact():
    """The shipped default model, or a random artifact of its size until it exists."""
    try:
        return load_artifact("default")
    except ArtifactError:
        art = random_artifact(3, input_shape=(28, 28), hidden=(256,), n_classes=10, timesteps=4, weight_bits=4,
                              threshold_scale=0.3)
        return dataclasses.replace(art, encoder=Encoder("rate", phase=128))


def engine_case(seed: int):
    """A random engine configuration: artifact, layer index, lanes, images."""
    rng = np.random.default_rng(seed)
    hidden = tuple(int(h) for h in rng.integers(1, 24, size=int(rng.integers(1, 3))))
    art = random_artifact(seed, input_shape=(4, 5), hidden=hidden, n_classes=int(rng.integers(2, 6)),
                          membrane_bits=6 if rng.random() < 0.5 else None, extreme=bool(rng.random() < 0.3),
                          threshold_scale=0.3)
    index = int(rng.integers(0, len(art.layers)))
    return art, index, int(rng.integers(1, 9)), random_images(art, 5, seed=seed)


@pytest.mark.parametrize("seed", [2, 15, 19])
def test_layer_engine_alone_is_bit_exact(simulator, seed):
    art, index, lanes, images = engine_case(seed)
    run = cocotb_sim.simulate_engine(art, index, images, lanes=lanes, simulator=simulator, seed=seed)
    assert run.passed, run.first_problem()
    assert run.n == len(images)


def test_output_engine_alone_is_bit_exact(simulator):
    art = random_artifact(4, input_shape=(3, 3), hidden=(10,), n_classes=5, threshold_scale=0.2)
    run = cocotb_sim.simulate_engine(art, 1, random_images(art, 6, seed=4), lanes=2, simulator=simulator)
    assert run.passed, run.first_problem()


def test_spiking_output_engine_alone_keeps_scores_under_back_pressure(simulator):
    """A spiking output (``lif_output``) at T = 1 fed tokens back to back: the next image's
    pass waits for this one's scores to be latched and taken."""
    art = random_artifact(12, input_shape=(4, 4), hidden=(3,), n_classes=2, reset="zero", spiking_output=True,
                          threshold_scale=0.2, timesteps=1)
    images = random_images(art, 12, seed=12)
    images[::2] = 0  # images without spikes: one end-of-step token each
    run = cocotb_sim.simulate_engine(art, 1, images, lanes=2, simulator=simulator, gaps=0.0, stall=0.7)
    assert run.passed, run.first_problem()


@pytest.mark.parametrize("case", [
    dict(seed=11, shape=(4, 4), hidden=(9,), lanes=2, beat=4, gaps=0.5, stall=0.7),
    dict(seed=13, shape=(4, 5), hidden=(8, 6), lanes=3, beat=8, gaps=0.2, stall=0.3, narrow=True),
    dict(seed=12, shape=(3, 3), hidden=(6,), lanes=4, beat=2, gaps=0.3, stall=0.5, abandon=3),
    dict(seed=14, shape=(4, 4), hidden=(10, 5), lanes=3, beat=4, gaps=0.2, stall=0.2, storage="ram"),
    dict(seed=16, shape=(4, 4), hidden=(9, 6), lanes=2, beat=4, gaps=0.2, stall=0.2, snntorch=True),
    dict(seed=18, shape=(4, 4), hidden=(9,), lanes=3, beat=4, gaps=0.2, stall=0.4, snntorch=True, spiking=True),
])
def test_random_accelerators_are_bit_exact(simulator, case):
    """Spikes of every stage, scores, classes and the cycle counter, under random gaps and
    back-pressure; a soft reset in the middle of a throw-away image in one case, weights
    loaded at run time into RAM (weight storage ``ram``) in another, snnTorch's semantics
    (fire ``>``, the next-step subtract reset) in a third, with a spiking output decided by
    spike count (``lif_output``) in a fourth."""
    variant = dict(fire=">", reset="subtract_next") if case.get("snntorch") else {}
    if case.get("spiking"):
        variant["spiking_output"] = True
    art = random_artifact(case["seed"], input_shape=case["shape"], hidden=case["hidden"], n_classes=4,
                          membrane_bits=5 if case.get("narrow") else None, threshold_scale=0.2, **variant)
    images = random_images(art, 6, seed=case["seed"])
    plan = make_plan(art, lanes=case["lanes"], pixels_per_beat=case["beat"],
                     weight_storage=case.get("storage", "rom"))
    run = cocotb_sim.simulate(plan, images, simulator=simulator, gaps=case["gaps"], stall=case["stall"],
                              seed=case["seed"], abandon_beats=case.get("abandon", 0))
    assert run.passed, run.first_problem()
    assert not compare(reference.run(art, images), run.trace)
    assert np.array_equal(run.cycles, run.counter_cycles) and (run.cycles > 0).all()


def test_default_size_model_on_mnist_images(simulator):
    art = default_size_artifact()
    n = 6 if simulator == "verilator" else 1
    images = load_dataset("default").split("val").limit(n).images
    run = cocotb_sim.simulate(make_plan(art, lanes=DEFAULT_LANES), images, simulator=simulator, seed=1)
    assert run.passed, run.first_problem()
    assert run.n == n and run.cycles.mean() > 100


@pytest.mark.slow
def test_512_lanes_and_8_pixels_per_beat_are_bit_exact(simulator):
    """The widest chain engine: 520 neurons at 512 lanes are two groups (512 + 8 lanes used),
    fed 64-bit pixel beats; 5 x 5 pixels leave 7 bytes of the last beat unused. (Slow: 300 s
    for the Verilator build, 90 s on Icarus, on a loaded 2-core machine.)"""
    art = random_artifact(31, input_shape=(5, 5), hidden=(520,), n_classes=4, threshold_scale=0.3)
    plan = make_plan(art, lanes=512, pixels_per_beat=8)
    assert (plan.layers[0].lanes, plan.layers[0].groups, plan.beats_per_image) == (512, 2, 4)
    images = random_images(art, 4, seed=31)
    run = cocotb_sim.simulate(plan, images, simulator=simulator, seed=2)
    assert run.passed, run.first_problem()
    assert not compare(reference.run(art, images), run.trace)
    assert run.trace.spike_counts()[1].sum() > 0  # the wide layer fires


def test_a_mismatch_is_reported_with_image_step_layer_and_neuron(simulator):
    """The checks can fail: the bench's model runs another encoder phase than the RTL."""
    art = random_artifact(21, input_shape=(4, 4), hidden=(7,), n_classes=3, encoder=Encoder("rate", phase=0),
                          threshold_scale=0.2)
    images = random_images(art, 3, seed=21)
    other = dataclasses.replace(art, encoder=Encoder("rate", phase=200))
    run = cocotb_sim.simulate(make_plan(art, lanes=3), images, simulator=simulator, model=other)
    assert not run.passed and run.mismatched_images
    expected = compare(reference.run(other, images), reference.run(art, images))
    assert run.mismatches[0] == str(expected[0])
    assert run.mismatches[0].startswith(f"mismatch: image {expected[0].image}, step {expected[0].step}, layer 0, ")


@pytest.mark.parametrize("case", [
    dict(seed=11, shape=(4, 4), hidden=(9,), lanes=2, beat=4, gaps=0.5, stall=0.7),
    dict(seed=12, shape=(3, 3), hidden=(6,), lanes=4, beat=2, gaps=0.3, stall=0.5, abandon=3),
    dict(seed=14, shape=(4, 4), hidden=(10, 5), lanes=3, beat=4, gaps=0.2, stall=0.2, storage="ram"),
])
def test_the_shell_replays_the_python_streams_edge_for_edge(simulator, case, tmp_path):
    """The shell-driven stimulus (the default) is the Python driver's and consumer's, cycle for
    cycle: the same random gaps, stalls, weight load and abandoned image put every beat,
    spike, result and counter value on the same clock edge, so both runs log exactly the
    same events (and the back-pressure coverage is the same)."""
    art = random_artifact(case["seed"], input_shape=case["shape"], hidden=case["hidden"], n_classes=4,
                          threshold_scale=0.2)
    images = random_images(art, 6, seed=case["seed"])
    plan = make_plan(art, lanes=case["lanes"], pixels_per_beat=case["beat"], weight_storage=case.get("storage", "rom"))
    runs = {}
    for stimulus in ("python", "shell"):
        runs[stimulus] = cocotb_sim.simulate(plan, images, simulator=simulator, gaps=case["gaps"], stall=case["stall"],
                                             seed=case["seed"], abandon_beats=case.get("abandon", 0),
                                             stimulus=stimulus, work_dir=tmp_path / stimulus)
        assert runs[stimulus].passed, runs[stimulus].first_problem()
    python, shell = runs["python"], runs["shell"]
    for log in ("events.log", "results.log"):
        assert (tmp_path / "shell" / "run" / log).read_text() == (tmp_path / "python" / "run" / log).read_text(), log
    assert np.array_equal(python.cycles, shell.cycles) and python.total_cycles == shell.total_cycles
    assert (tmp_path / "shell" / "run" / "events.log").read_text().count("\nR ") >= 2  # the reset was logged


def test_without_delays_the_shell_drives_the_streams_on_cocotbs_clock(monkeypatch, tmp_path):
    """Where Verilator cannot build delays (no C++ coroutines), cocotb's clock drives ``clk``
    and the shell still replays the streams, edge for edge."""
    require("verilator")
    art = random_artifact(12, input_shape=(3, 3), hidden=(6,), n_classes=4, threshold_scale=0.2)
    images = random_images(art, 4, seed=12)
    plan = make_plan(art, lanes=4, pixels_per_beat=2)
    python = cocotb_sim.simulate(plan, images, gaps=0.3, stall=0.5, seed=12, abandon_beats=3, stimulus="python",
                                 work_dir=tmp_path / "python")
    monkeypatch.setattr(runner, "can_time", lambda simulator: False)
    shell = cocotb_sim.simulate(plan, images, gaps=0.3, stall=0.5, seed=12, abandon_beats=3, work_dir=tmp_path / "shell")
    assert python.passed and shell.passed, shell.first_problem()
    assert not shell.build.timing and "always #" not in (shell.build.directory / "src" / "snn_top_bench.v").read_text()
    for log in ("events.log", "results.log"):
        assert (tmp_path / "shell" / "run" / log).read_text() == (tmp_path / "python" / "run" / log).read_text(), log


def _drop_first_spike(stage: int):
    """A shell whose monitor ``mon<stage>`` misses its first spike (as if the RTL had not emitted it)."""
    from snnfpga.sim.cocotb_tb import wrapper

    def shell(description, **options):
        text = wrapper.accelerator_shell(description, **options)
        line = next(x for x in text.splitlines() if x.strip().startswith(f"if (mon{stage}__valid) $fwrite"))
        missing = line.replace(f"if (mon{stage}__valid)", f"if (mon{stage}__valid & bench_seen)")
        text = text.replace(line, missing + f"\n        if (mon{stage}__valid) bench_seen <= 1;")
        return text.replace("  reg [63:0] cycle = 0;", "  reg [63:0] cycle = 0;\n  reg bench_seen = 0;")
    return shell


def test_a_spike_missing_from_the_rtl_is_caught(simulator, monkeypatch):
    """One spike fewer on a monitor port (the first one the hidden layer emits) fails the run
    with exactly one mismatch: image 0, the step and neuron of that spike, expected 1, got 0."""
    art = random_artifact(22, input_shape=(4, 4), hidden=(8,), n_classes=3, threshold_scale=0.2)
    images = random_images(art, 3, seed=22)
    expected = reference.run(art, images)
    assert expected.spikes[1][0].any()
    monkeypatch.setattr(cocotb_sim, "accelerator_shell", _drop_first_spike(1))
    run = cocotb_sim.simulate(make_plan(art, lanes=3), images, simulator=simulator, seed=22)
    assert not run.passed and run.mismatched_images == [0] and len(run.mismatches) == 1, run.mismatches
    first_step = int(np.flatnonzero(expected.spikes[1][0].any(axis=1))[0])
    prefix = f"mismatch: image 0, step {first_step}, layer 1, neuron "
    assert run.mismatches[0].startswith(prefix) and run.mismatches[0].endswith(": spike expected 1, got 0")
    neuron = int(run.mismatches[0][len(prefix):].split(":")[0])
    assert expected.spikes[1][0, first_step, neuron] == 1
    found = compare(expected, run.trace)  # what the RTL delivered: one spike short, nothing else
    assert [str(m) for m in found] == run.mismatches


def test_a_stream_that_stops_is_a_deadlock_naming_the_image(monkeypatch):
    """The shell's script ends after the first image's beats: the second image never comes,
    and the run stops at its cycle limit with an error naming it."""
    require("verilator")
    from snnfpga.sim.cocotb_tb import stimulus

    art = random_artifact(8, input_shape=(3, 3), hidden=(5,), n_classes=3, threshold_scale=0.2)
    images = random_images(art, 3, seed=8)
    original = stimulus.script

    def one_image(pixels, per_beat, **kw):
        return original(pixels[:1], per_beat, **kw)
    monkeypatch.setattr(stimulus, "script", one_image)
    run = cocotb_sim.simulate(make_plan(art, lanes=2), images)
    assert not run.passed and run.n == 1
    assert run.errors[0].startswith("image 1: no result within "), run.errors[0]
    assert "cycles (deadlock?); 1 images done" in run.errors[0]


def test_the_event_log_reader_reports_protocol_errors(tmp_path):
    """Counts per image, step and neuron from the shell's log; a reset abandons what came
    before it; a wrong step tag, a neuron out of range, a spike after the last image and an
    end of step out of order are errors naming the cycle."""
    from snnfpga.sim.cocotb_tb.monitor import EventLog

    path = tmp_path / "events.log"
    events = ["S 0 0 1 1", "R 0 0 0 2", "B 0 0 0 3",
              "S 0 0 2 4", "S 0 0 2 5", "S 1 0 0 5", "E 0 0 0 6", "E 1 0 0 6",  # image 0 step 0
              "S 0 1 3 7", "S 0 0 1 8", "S 1 1 9 9", "E 0 1 0 10", "E 1 1 0 10",  # step 1: two bad spikes
              "S 0 0 1 12", "E 0 1 0 13", "E 1 0 0 13",  # image 1 (the last): an end of step out of order
              "E 0 1 0 14", "E 1 1 0 14", "S 0 0 0 15"]  # a spike after the last image
    path.write_text("\n".join(events[:5]) + "\n" + "\n".join(events[5:]) + "\nS 0 1")  # a partial last line
    log = EventLog(path, [4, 2], 2, 2)
    log.drain()
    assert log.spikes[0][0].tolist() == [[0, 0, 2, 0], [0, 0, 0, 1]] and log.spikes[1][0].tolist() == [[1, 0], [0, 0]]
    assert log.spikes[0][1].tolist() == [[0, 1, 0, 0], [0, 0, 0, 0]] and log.beat_cycles == [3]
    assert log.errors == [
        "stage 0: spike of neuron 1 tagged step 0 at cycle 8, but image 0 step 1 is running",
        "stage 1: spike of neuron 9 tagged step 1 at cycle 9, but image 0 step 1 is running",
        "stage 0: end of step 1 at cycle 13, expected image 1 step 0",
        "stage 0: spike of neuron 0 tagged step 0 at cycle 15, but image 2 step 0 is running",
    ], log.errors
    assert log.position == [[2, 0], [2, 0]]


def test_a_run_past_its_wall_clock_limit_stops_naming_the_image():
    require("verilator")
    art = random_artifact(8, input_shape=(3, 3), hidden=(5,), n_classes=3, threshold_scale=0.2)
    run = cocotb_sim.simulate(make_plan(art, lanes=2), random_images(art, 3, seed=8), wall_limit_s=1e-6)
    assert not run.passed and run.n == 0
    assert run.errors[0].startswith("image 0: no result within the wall-clock limit of 1e-06 s"), run.errors[0]


@pytest.mark.parametrize("beat", [1, 2, 4, 8])
def test_pixel_beats_carry_the_pixels_and_random_padding(beat):
    """Both benches pack pixels with rtl.encoder.pixel_beats: pixel k in byte k % B of beat
    k // B; the bytes after the last pixel are random (the encoder must ignore them)."""
    pixels = np.random.default_rng(beat).integers(0, 256, size=15)
    words = pixel_beats(pixels, beat, np.random.default_rng(3))
    assert len(words) == -(-15 // beat)
    data = [(w >> (8 * k)) & 0xFF for w in words for k in range(beat)]
    assert data[:15] == list(pixels)
    assert pixel_beats(pixels, beat) == [w & ((1 << (8 * min(beat, 15 - i * beat))) - 1)
                                         for i, w in enumerate(words)]
    if beat > 1:  # 15 pixels leave a partial last beat: its padding is not all zero
        assert any(data[15:]), data[15:]


def test_the_shell_logs_every_monitor_of_the_description(tmp_path):
    from snnfpga.rtl.generate import write_verilog

    art = random_artifact(6, input_shape=(3, 3), hidden=(4, 3), n_classes=2)
    text = accelerator_shell(write_verilog(make_plan(art, lanes=2), tmp_path))
    for stage in range(3):
        assert f"if (mon{stage}__valid) $fwrite(log_fd, \"S {stage} " in text
        assert f"if (mon{stage}__eos) $fwrite(log_fd, \"E {stage} " in text
    assert "mon3" not in text and "snn_top dut (" in text


def test_ci_turns_a_missing_simulator_into_a_failure(monkeypatch):
    monkeypatch.setattr(runner, "missing", lambda name: f"{name} is not installed")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI"):
        require("icarus")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require("icarus")


def test_a_failed_build_is_one_line_naming_the_error(simulator, tmp_path):
    with pytest.raises(runner.BuildError) as caught:
        runner.build({"broken.v": "module broken(input a;\nendmodule\n"}, "broken", simulator, cache=tmp_path)
    message = str(caught.value)
    assert "\n" not in message and f"{simulator} build of broken failed" in message and "broken.v" in message


def test_a_missing_simulator_is_a_tool_error(monkeypatch):
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    if runner.missing("icarus") is None:
        pytest.skip("iverilog is inside the virtual environment")
    with pytest.raises(runner.SimulatorMissing, match="iverilog"):
        runner.configure("icarus")


# ---- the command line -------------------------------------------------------------------------

def sim_cli(*args, env=None, cwd=None, timeout=600):
    return cli("sim", *args, env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sim-cli")
    model, _ = small_mnist_model(tmp, 8)
    np.savez(tmp / "small.npz", images=np.zeros((2, 8, 8), np.uint8), labels=np.zeros(2, np.uint8))
    return model, tmp


def test_cli_reports_a_bit_exact_run(simulator, small_model, tmp_path):
    model, data = small_model
    done = sim_cli(model, "--data", data / "sample.npz", "--limit", 4, "--simulator", simulator, "--lanes", 4,
               "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    summary = last_json(done.stdout)
    assert summary["n"] == 4 and summary["mismatches"] == 0 and summary["simulator"] == simulator
    assert summary["accuracy_rtl"] == summary["accuracy_ref"]
    for key in ("cycles_per_image", "wall_s", "build_s", "images_per_s"):
        assert summary[key] is not None, key
    assert list(tmp_path.iterdir()) == []  # nothing written into the working directory


def test_cli_writes_waves_only_on_request(small_model, tmp_path):
    require("icarus")
    model, data = small_model
    out = tmp_path / "out"
    done = sim_cli(model, "--data", data / "sample.npz", "--limit", 1, "--simulator", "icarus", "--lanes", 4,
               "--out", out, "--waves", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "waves.fst").stat().st_size > 0
    assert last_json(done.stdout)["waves"] == [str((out / "waves.fst").resolve())]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert not list(out.glob("run/**/*.fst")) and not list(out.glob("run/**/*.vcd"))


@pytest.mark.parametrize("args, message", [
    (["--data", "missing.npz"], "not found"),
    (["--data", "{data}/small.npz"], "model expects 28x28"),
    (["--waves"], "--waves needs --out"),
    (["--lanes", "0"], "positive integer"),
    (["--gaps", "1.5"], "probability"),
])
def test_cli_rejects_bad_input_in_one_line(small_model, tmp_path, args, message):
    model, data = small_model
    args = [a.format(data=data) for a in args]
    if "--data" not in args:
        args += ["--data", data / "sample.npz"]
    done = sim_cli(model, *args, cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr


def test_cli_rejects_a_corrupt_model_and_a_missing_simulator(small_model, tmp_path):
    model, data = small_model
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{\n")
    done = sim_cli(tmp_path / "broken", "--data", data / "sample.npz")
    assert done.returncode != 0 and "Traceback" not in done.stderr and done.stderr.startswith("error:")
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    if runner.missing("icarus") is not None or "iverilog" in os.listdir(Path(sys.executable).parent):
        pytest.skip("cannot hide iverilog")
    done = sim_cli(model, "--data", data / "sample.npz", "--simulator", "icarus", env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: Icarus Verilog is not installed")


# ---- long regressions (-m slow) -----------------------------------------------------------------

@pytest.mark.slow
def test_whole_validation_split_is_bit_exact(simulator):
    """Every validation image (1,000) of the default-size model, on both simulators."""
    art = default_size_artifact()
    dataset = load_dataset("default").split("val")
    run = cocotb_sim.simulate(make_plan(art, lanes=DEFAULT_LANES), dataset.images, simulator=simulator, seed=5,
                              jobs=2 if simulator == "icarus" else 1)
    assert run.passed, run.first_problem()
    assert run.n == len(dataset)


@pytest.mark.slow
def test_verilator_waves(tmp_path):
    require("verilator")
    art = random_artifact(11, input_shape=(4, 4), hidden=(9,), n_classes=4, threshold_scale=0.2)
    run = cocotb_sim.simulate(make_plan(art, lanes=2), random_images(art, 2, seed=2), simulator="verilator",
                              waves_dir=tmp_path / "w")
    expected = tmp_path / "w" / f"waves.{runner.waves_format('verilator')}"
    assert run.passed and run.waves == [expected]
    assert expected.stat().st_size > 0
