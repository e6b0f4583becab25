"""FuseSoC CAPI2 core file of a generated accelerator: ``<top>.core`` beside ``<top>.v``.

:func:`write_core` reads what :func:`snnfpga.rtl.generate.write_verilog` wrote (its
description: the Verilog files and the top module) and writes a core that FuseSoC (and
through it Edalize) takes as it is:

* name ``snnfpga:<model>:<top>:<snnfpga version>``: the library is the model, the name the
  top module, so two configurations of one model need two ``--top`` names, exactly as they
  do to sit in one design;
* fileset ``rtl``: the Verilog files (``verilogSource``); ``memories``: every file the
  Verilog reads with ``$readmemh``/``$readmemb`` (``user``, copied into the work root, where
  a simulator resolves the relative name); ``description``: ``<top>.json``;
* targets ``default`` (every fileset, the top) and ``lint`` (Edalize's lint flow: Verilator
  ``--lint-only``);
* parameters ``SNNFPGA_<NAME>`` (``vlogdefine``): the description's ``parameters``, nested
  dictionaries flattened (``encoder.kind`` -> ``SNNFPGA_ENCODER_KIND``). They are a record:
  the generated top has no HDL parameters, so changing one changes nothing in the design.
  Only ``lint`` passes them (as ``-D``): the ``default`` target, the one a depending core
  uses, does not, so two accelerators in one design do not redefine each other's macros.

The text is YAML written here (snnfpga does not depend on a YAML library): block style,
keys sorted where their order means nothing, strings quoted unless plainly safe. The same
description gives the same bytes; nothing in it is an absolute path or a time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from snnfpga.errors import ArtifactError

VENDOR = "snnfpga"
VLNV_ILLEGAL = re.compile(r"[^A-Za-z0-9_.-]")  # FuseSoC: a VLNV part is alphanumerics, '.', '-', '_'
SOURCE_TYPES = {".v": "verilogSource", ".sv": "systemVerilogSource", ".vhd": "vhdlSource", ".vhdl": "vhdlSource"}
MEMORY_READ = re.compile(r"\$readmem[hb]\s*\(\s*\"([^\"]*)\"")
# Verilator lint of Yosys output: errors fail, the lint and style warnings of generated code
# (widths, incomplete case, [-1:0] vectors) are off, as for the simulation builds (sim/runner.py).
LINT_OPTIONS = ("-Wno-lint", "-Wno-style")
TOKEN = re.compile(r"[A-Za-z0-9_.+-]+\Z")  # a str parameter passed as ``-DNAME=value`` to a tool
PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./:-]*\Z")  # a YAML value safe without quotes
PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")  # a YAML key safe without quotes
REAL = re.compile(r"-?[0-9]+\.[0-9]+\Z")  # a float that YAML 1.1 (PyYAML) reads back as a float
YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}  # plain, they would not be strings


def vlnv_part(text: str) -> str:
    """``text`` as one part of a VLNV: every character FuseSoC refuses becomes ``_``."""
    if not text:
        raise ArtifactError("a FuseSoC core name part is empty (model without a name?)")
    return VLNV_ILLEGAL.sub("_", text)


def core_name(description: dict) -> str:
    """``snnfpga:<model>:<top>:<snnfpga version>`` of a Verilog description."""
    return ":".join([VENDOR, vlnv_part(description["artifact"]["name"]), vlnv_part(description["top"]),
                     vlnv_part(description["generator"]["snnfpga"])])


def _param_name(path: tuple[str, ...]) -> str:
    return "SNNFPGA_" + "_".join(re.sub(r"[^A-Z0-9]+", "_", p.upper()).strip("_") for p in path)


def _flatten(value, path: tuple[str, ...]):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, (*path, str(key)))
    else:
        yield path, value


def core_parameters(parameters: dict, json_name: str) -> dict[str, dict]:
    """CAPI2 parameters of a description's ``parameters``: ``SNNFPGA_<PATH>`` -> definition.

    Kept: ints, bools, reals and single-token strings, nested dictionaries flattened. Left
    out (the JSON has them): lists, None, strings with spaces or quotes, and any names that
    two paths share once upper-cased and joined with ``_``.
    """
    types = {bool: "bool", int: "int", float: "real", str: "str"}
    rows: dict[str, list] = {}
    for path, value in _flatten(parameters, ()):
        datatype = types.get(type(value))
        if datatype is None or (datatype == "str" and not TOKEN.match(value)):
            continue
        rows.setdefault(_param_name(path), []).append((".".join(path), datatype, value))
    out = {}
    for name in sorted(rows):
        if len(rows[name]) != 1:
            continue  # ambiguous: two description keys became this name
        key, datatype, value = rows[name][0]
        out[name] = {"datatype": datatype, "default": value,
                     "description": f"informational (read-only): parameters.{key} in {json_name}; changing it "
                                    f"does not change the design",
                     "paramtype": "vlogdefine"}
    return out


def memory_images(out_dir: Path, verilog_files: list[str]) -> list[str]:
    """The files the Verilog reads (``$readmemh``/``$readmemb``), relative to ``out_dir``, sorted."""
    names = set()
    for name in verilog_files:
        names.update(MEMORY_READ.findall((out_dir / name).read_text()))
    for name in names:
        if Path(name).is_absolute() or ".." in Path(name).parts or not (out_dir / name).is_file():
            raise ArtifactError(f"the Verilog reads memory image {name!r}, which is not a file inside {out_dir}")
    return sorted(names)


def _scalar(value, plain=PLAIN) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):  # 1e-05 would read back as a string: quoted (FuseSoC converts a real's string)
        return repr(value) if REAL.match(repr(value)) else json.dumps(repr(value))
    if plain.match(value) and value.lower() not in YAML_WORDS:
        return value
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


def _yaml(node, indent: int = 0) -> list[str]:
    """Block-style YAML lines of dicts, lists and scalars (dicts in their given order)."""
    pad = " " * indent
    lines = []
    items = node.items() if isinstance(node, dict) else ((None, v) for v in node)
    for key, value in items:
        head = f"{pad}{_scalar(key, PLAIN_KEY)}:" if key is not None else f"{pad}-"
        if isinstance(value, (dict, list)) and value:
            sub = _yaml(value, indent + 2)
            if key is None and isinstance(value, dict):
                lines.append(f"{head} {sub[0].lstrip()}")  # "- key: ..." starts the mapping
                lines.extend(sub[1:])
            else:
                lines.append(head)
                lines.extend(sub)
        elif isinstance(value, (dict, list)):
            lines.append(f"{head} {'{}' if isinstance(value, dict) else '[]'}")
        else:
            lines.append(f"{head} {_scalar(value)}")
    return lines


def core_text(description: dict, images: list[str] | tuple[str, ...] = ()) -> str:
    """The CAPI2 text of a Verilog description; ``images``: the memory files the Verilog reads."""
    top = description["top"]
    json_name = f"{top}.json"
    sources = []
    for name in description["files"]:
        file_type = SOURCE_TYPES.get(Path(name).suffix)
        if file_type is None:
            raise ArtifactError(f"{name}: not a Verilog or VHDL file name ({', '.join(SOURCE_TYPES)})")
        sources.append({name: {"file_type": file_type}})
    filesets = {"rtl": {"files": sources}}
    if images:
        filesets["memories"] = {"files": [{name: {"copyto": name, "file_type": "user"}} for name in images]}
    filesets["description"] = {"file_type": "user", "files": [json_name]}
    parameters = core_parameters(description["parameters"], json_name)
    hdl = [name for name in filesets if name != "description"]
    art = description["artifact"]["name"]
    core = {
        "name": core_name(description),
        "description": f"snnfpga accelerator of model {art}, {description['interface']} interface "
                       f"(ports, memories and cycle model: {json_name})",
        "filesets": dict(sorted(filesets.items())),
        "parameters": parameters,
        "targets": {
            "default": {"description": f"the accelerator {top} and its description",
                        "filesets": [*hdl, "description"], "toplevel": top},
            "lint": {"description": "Verilator --lint-only (Edalize lint flow; errors fail)", "filesets": hdl,
                     "flow": "lint", "flow_options": {"tool": "verilator", "verilator_options": list(LINT_OPTIONS)},
                     "parameters": list(parameters), "toplevel": top},
        },
    }
    header = ["CAPI=2:", f"# Generated by snnfpga {description['generator']['snnfpga']} (snnfpga verilog); "
                         f"regenerate rather than edit."]
    return "\n".join(header + _yaml(core)) + "\n"


def write_core(description: dict, out_dir: str | Path) -> str:
    """Write ``<top>.core`` into ``out_dir`` (where the description's files are); return its name."""
    out = Path(out_dir)
    top = description["top"]
    for name in [*description["files"], f"{top}.json"]:
        if not (out / name).is_file():
            raise ArtifactError(f"{out / name} is missing: write the Verilog before its core file")
    text = core_text(description, memory_images(out, description["files"]))
    (out / f"{top}.core").write_text(text)
    return f"{top}.core"
