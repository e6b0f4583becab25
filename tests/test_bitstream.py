"""Bitstreams for real boards (``snnfpga bitstream``, ``snnfpga program``): the PLL from the
family's calculator, the board top, pin constraints, one-line refusals, and a real build of a
small model for the iCEBreaker (seconds of Yosys and nextpnr) that is byte-identical twice.
The shipped models' bitstreams (minutes each) are behind the ``slow`` marker."""

import hashlib
import json
import re
import shutil

import pytest

from snnfpga.errors import ConfigError
from snnfpga.model.artifact import load_artifact
from snnfpga.rtl.bitstream import BoardTop, board_constraints, check_user_constraints, load_result
from snnfpga.rtl.board import PINS
from snnfpga.rtl.boards import BOARDS, get_board
from snnfpga.rtl.generate import to_verilog
from snnfpga.rtl.pll import pll_module
from snnfpga.rtl.targets import get_target
from snnfpga.commands.program import find_loader
from snnfpga.commands.synth import target_plan
from tests.cli_common import cli, last_json, small_mnist_model

BITSTREAM_KEYS = ("board", "target", "clock_mhz", "fmax_mhz", "slack_mhz", "fmax_by_seed", "bitstream",
                  "bitstream_sha256", "bitstream_bytes", "logic_cells", "dsps", "multipliers")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bitstream")
    model, data = small_mnist_model(tmp, 20)
    return {"model": model, "data": data, "tmp": tmp}


@pytest.mark.parametrize("family, f_in, f_out, achieved, primitive", [
    ("ice40", 12, 36, 36.0, "SB_PLL40_PAD"), ("ice40", 12, 40, 39.75, "SB_PLL40_PAD"),
    ("ecp5", 25, 100, 100.0, "EHXPLLL"), ("ecp5", 25, 90, 90.0, "EHXPLLL")])
def test_the_pll_comes_from_the_family_calculator(family, f_in, f_out, achieved, primitive):
    text, got = pll_module(family, f_in, f_out)
    assert got == achieved and primitive in text
    assert re.search(r"module snn_pll\s*\(", text) and all(p in text for p in ("clock_in", "clock_out", "locked"))
    assert pll_module(family, f_in, f_out)[0] == text  # deterministic
    if family == "ice40":  # f_out = f_in (DIVF + 1) / (2^DIVQ (DIVR + 1)), SIMPLE feedback
        divr, divf, divq = (int(re.search(rf"{k} =\s*(\d+)", text).group(1)) for k in ("DIVR", "DIVF", "DIVQ"))
        assert f_in * (divf + 1) / (2 ** divq * (divr + 1)) == pytest.approx(achieved)
    else:  # f_out = f_in CLKFB_DIV / CLKI_DIV; the VCO (f_out CLKOP_DIV) in 400..800 MHz
        div = {k: int(re.search(rf"\.{k}\((\d+)\)", text).group(1)) for k in ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV")}
        assert f_in * div["CLKFB_DIV"] / div["CLKI_DIV"] == pytest.approx(achieved)
        assert 400 <= achieved * div["CLKOP_DIV"] <= 800


def test_pll_requests_out_of_range_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="ice40 PLL makes 16 to 275 MHz; 500 MHz"):
        pll_module("ice40", 12, 500)
    with pytest.raises(ConfigError, match="ecp5 PLL"):
        pll_module("ecp5", 25, 1)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_top_and_constraints(name):
    board = get_board(name)
    target = get_target(board.target)
    plan = target_plan(load_artifact("tiny"), target, lanes=4)
    text = to_verilog(BoardTop(plan, board, board.clock_mhz), "snn_top_board")
    header = text[text.index("module snn_top_board("):].split(");")[0]
    assert [p for p in board.ports if re.search(rf"\b{p}\b", header)] == list(board.ports)
    assert set(board.pins) == set(board.ports)
    assert "snn_pll pll" in text and ".clock_in(osc)" in text.replace(" ", "")
    pins = board_constraints(board, target.family)
    for port, pin in board.pins.items():
        assert (f"set_io {port} {pin}" if target.family == "ice40" else f'LOCATE COMP "{port}" SITE "{pin}";') in pins
    assert f"{board.oscillator_mhz:g}" in pins.splitlines()[-1] and "osc" in pins.splitlines()[-1]
    if board.link == "spi":  # the host link's SPI clock leaves the bridge its four clk cycles per SCK period
        assert board.spi_hz * 4 <= board.clock_mhz * 1e6 and "spi_bridge" in text.lower() or "bridge" in text
    else:  # the UART's bit time is a whole number of clock cycles at the board clock
        assert (board.clock_mhz * 1e6) % board.baud == 0 and "uart" in text


def test_user_constraints_must_place_every_shell_port(tmp_path):
    good = tmp_path / "mine.pcf"
    good.write_text("".join(f"set_io {p} {n}\n" for n, p in enumerate(PINS, 1)))
    assert check_user_constraints(good, "ice40") == good.read_text()
    bad = tmp_path / "half.pcf"
    bad.write_text("set_io clk 35\nset_io -nowarn rst 10\n")
    with pytest.raises(ConfigError, match="does not place the shell's port.s. spi_sck, spi_cs_n, spi_mosi, spi_miso, irq"):
        check_user_constraints(bad, "ice40")
    with pytest.raises(ConfigError, match="needs a .lpf"):
        check_user_constraints(good, "ecp5")


def test_bitstream_and_program_refuse_bad_input_in_one_line(small, tmp_path):
    pcf = tmp_path / "mine.pcf"
    pcf.write_text("set_io clk 35\n")
    for args, message in [(("--board", "arty"), "unknown board 'arty'; choose one of icebreaker, ulx3s"),
                          (("--board", "icebreaker", "--target", "ecp5-85k"), "carries the ice40-up5k target"),
                          (("--board", str(pcf)), "needs --target"),
                          (("--board", str(tmp_path / "none.lpf"), "--target", "ecp5-85k"), "not found"),
                          (("--board", str(pcf), "--target", "ice40-up5k"), "does not place the shell's port"),
                          (("--board", "icebreaker", "--clock", "500"), "ice40 PLL makes 16 to 275 MHz")]:
        done = cli("bitstream", small["model"], *args, "--out", tmp_path / "b")
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2
    # The full 784-512-10 model does not fit the UP5K: refused in one line, before synthesis.
    done = cli("bitstream", "default", "--board", "icebreaker", "--out", tmp_path / "d")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == ("error: default does not fit the iCEBreaker v1.0 (iCE40 UP5K-SG48): "
                                                    "1,631 kbit of weights, 1,171 kbit of block memory on the device in all")
    assert not (tmp_path / "d" / "yosys.log").exists()
    done = cli("program", tmp_path)
    assert done.returncode == 2 and "holds no bitstream build" in done.stderr


@pytest.fixture(scope="module")
def built(small):
    """The small model's bitstream for the iCEBreaker, built twice in two directories."""
    runs = []
    for k in (1, 2):
        out = small["tmp"] / f"icebreaker{k}"
        done = cli("bitstream", small["model"], "--board", "icebreaker", "--lanes", 2, "--seeds", 1, "--clock", 24,
                   "--data", small["data"], "--out", out, "--json")
        assert done.returncode == 0, done.stderr
        runs.append((out, last_json(done.stdout), done))
    return runs


def test_a_small_model_builds_a_deterministic_icebreaker_bitstream(built):
    (out, r, done), (out2, r2, _) = built
    for key in BITSTREAM_KEYS:
        assert key in r, key
    assert r["board"] == "icebreaker" and r["target"] == "ice40-up5k" and r["clock_mhz"] == 24.0
    assert r["fmax_mhz"] >= r["clock_mhz"] and r["slack_mhz"] == pytest.approx(r["fmax_mhz"] - 24.0, abs=0.01)
    assert r["dsps"] == 0 and r["multipliers"] == 0 and set(r["fmax_by_seed"]) == {"1"}
    # nextpnr derived the accelerator clock from the oscillator through the PLL.
    fmax = json.loads((out / "report.json").read_text())["fmax"]
    assert [round(v["constraint"], 1) for v in fmax.values()] == [24.0]
    data = (out / "icebreaker.bin").read_bytes()
    assert len(data) == r["bitstream_bytes"] and hashlib.sha256(data).hexdigest() == r["bitstream_sha256"]
    assert data[:4] == bytes.fromhex("ff00ffff") or data[:2] == b"\xff\x00"  # the iCE40 preamble
    assert (out2 / "icebreaker.bin").read_bytes() == data and r2["bitstream_sha256"] == r["bitstream_sha256"]
    assert (out / "snn_icebreaker.v").read_bytes() == (out2 / "snn_icebreaker.v").read_bytes()
    assert "SB_PLL40_PAD" in (out / "snn_pll.v").read_text()
    assert str(out) not in (out / "snn_icebreaker.v").read_text()  # no absolute paths
    assert r["latency_us"] == pytest.approx(r["cycles_per_image"] / 24.0, rel=0.01)
    assert "[bitstream icebreaker" in done.stderr and "snnfpga program" in done.stdout


def test_program_dry_run_prints_the_loader_command(built, tmp_path):
    out = built[0][0]
    done = cli("program", out, "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    r = last_json(done.stdout)
    assert r["ran"] is False and r["command"][1:] == ["-b", "ice40_generic", str(out / "icebreaker.bin")]
    assert done.stdout.splitlines()[0].endswith(f"-b ice40_generic {out / 'icebreaker.bin'}")
    # A loader that is not there, and one that cannot reach a board: one line each.
    done = cli("program", out, "--loader", tmp_path / "no-such-loader")
    assert done.returncode == 2 and "openFPGALoader not found" in done.stderr and "Traceback" not in done.stderr
    fake = tmp_path / "loader"
    fake.write_text("#!/bin/sh\necho 'unable to open ftdi device: -3 (device not found)' >&2\nexit 1\n")
    fake.chmod(0o755)
    done = cli("program", out, "--loader", fake)
    assert done.returncode == 2 and "device not found" in done.stderr and "Traceback" not in done.stderr
    # The real loader (the PyPI build, where its libraries are installed) with no board on the cable.
    if find_loader(None) is not None:
        done = cli("program", out)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "could not program the iCEBreaker" in done.stderr
    # A bitstream changed after the build is caught before anything is loaded.
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "icebreaker.bin").write_bytes(b"\0" * 16)
    done = cli("program", copy, "--dry-run")
    assert done.returncode == 2 and "does not match" in done.stderr
    with pytest.raises(ConfigError, match="corrupt"):
        (copy / "bitstream.json").write_text("{")
        load_result(copy)


@pytest.mark.slow
@pytest.mark.parametrize("model, board", [("tiny", "icebreaker"), ("default", "ulx3s")])
def test_shipped_bitstreams_build_byte_identical_twice(model, board, tmp_path):
    shas = []
    for k in (1, 2):
        done = cli("bitstream", model, "--board", board, "--out", tmp_path / str(k), "--json", timeout=7200)
        assert done.returncode == 0, done.stderr
        r = last_json(done.stdout)
        assert r["fmax_mhz"] >= r["clock_mhz"] and r["dsps"] == 0 and r["multipliers"] == 0
        shas.append(r["bitstream_sha256"])
        assert json.loads((tmp_path / str(k) / "bitstream.json").read_text())["bitstream_sha256"] == shas[-1]
    assert shas[0] == shas[1]
