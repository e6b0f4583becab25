"""Generated C header, register table and weight images: one source of truth, deterministic."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest

from snnfpga.firmware import codegen
from snnfpga.firmware import regmap as R
from snnfpga.rtl.engine import weight_words
from tests.firmware_common import default_plan, small_plan


def test_committed_files_are_up_to_date():
    for path, text in codegen.committed_files().items():
        assert path.exists(), f"{path} is missing: run python -m snnfpga.firmware.codegen"
        assert path.read_bytes() == text.encode(), f"{path} is stale: run python -m snnfpga.firmware.codegen"


def defines(header: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (\w+)(?:\(i\))? (.+?)(?:  /\*.*)?$", header, flags=re.M))


def number(text: str) -> int:
    return int(text.rstrip("u"), 0)


def test_header_is_deterministic_and_has_no_paths_or_times():
    a = codegen.c_header(small_plan("ram"))
    b = codegen.c_header(small_plan("ram"))
    assert a == b
    assert a.count("#ifndef SNN_REGMAP_H") == 1 and a.rstrip().endswith("#endif /* SNN_REGMAP_H */")
    assert not re.search(r"/(tmp|home|root|work|usr)/|\d{4}-\d{2}-\d{2}|\d\d:\d\d:\d\d", a)
    assert a != codegen.c_header(small_plan("rom"))  # GEOMETRY.WEIGHT_RAM differs


def test_header_matches_the_register_map():
    plan = small_plan("ram")
    d = defines(codegen.c_header(plan))
    for reg in R.REGISTERS:
        if reg.count == 1:
            assert number(d[f"SNN_REG_{reg.name}"]) == reg.offset
        else:
            assert number(d[f"SNN_REG_{reg.name}_BASE"]) == reg.offset
            assert number(d[f"SNN_REG_{reg.name}_COUNT"]) == reg.count
        for f in reg.fields:
            assert number(d[f"SNN_{reg.name}_{f.name}_MASK"]) == f.mask
            assert number(d[f"SNN_{reg.name}_{f.name}_SHIFT"]) == f.lsb
    consts = R.build_constants(plan)
    for name in ("ID", "VERSION", "MODEL_HASH", "SHAPE", "GEOMETRY", "WIDTHS"):
        assert number(d[f"SNN_BUILD_{name}"]) == consts[name]
    assert number(d["SNN_BUILD_WEIGHT_RAM"]) == 1
    assert number(d["SNN_BUILD_N_INPUTS"]) == 15 and number(d["SNN_BUILD_PIXEL_WORDS"]) == 4
    assert number(d["SNN_BUILD_WEIGHT_CHUNKS"]) == R.weight_chunks(plan) == 2
    for layer, size in enumerate(consts["LAYER_SIZE"]):
        assert number(d[f"SNN_BUILD_LAYER_SIZE_{layer}"]) == size
    for name, code, _ in codegen.hardware_errors():
        assert number(d[f"SNN_HW_ERROR_{name}"]) == code
    assert [name for name, _, _ in codegen.hardware_errors()] == [
        "NONE", "START_WHILE_BUSY", "PIXELS_WHILE_LOADING", "WEIGHTS_WHILE_BUSY"]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_header_compiles_alone_and_twice(tmp_path):
    (tmp_path / "snn_regmap.h").write_text(codegen.c_header(default_plan()))
    (tmp_path / "t.c").write_text(
        '#include "snn_regmap.h"\n#include "snn_regmap.h"\n'
        "_Static_assert(SNN_FIELD_GET(0x00000F00u, SNN_STATUS_ERROR_CODE) == 15u, \"field get\");\n"
        "_Static_assert(SNN_FIELD_SET(SNN_CTRL_START, 1) == 1u, \"field set\");\n"
        "_Static_assert(SNN_REG_SCORE(3) == 0x10Cu, \"array\");\n"
        "static const unsigned sizes[] = SNN_BUILD_LAYER_SIZES;\n"
        "unsigned first(void);\nunsigned first(void) { return sizes[0]; }\n")
    done = subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", "t.c", "-o", "t.o"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr, done.stderr


def test_register_table_lists_every_register_and_error():
    text = codegen.registers_markdown()
    for reg in R.REGISTERS:
        assert f"`{reg.name}" in text
        for f in reg.fields:
            assert f"`{f.name}`" in text
    for name, code, _ in codegen.hardware_errors():
        assert f"| {code} | `{name}` |" in text
    assert "Build constants" not in text
    with_plan = codegen.registers_markdown(small_plan("ram"))
    assert f"`0x{R.build_constants(small_plan('ram'))['MODEL_HASH']:08X}`" in with_plan
    # A '|' inside a cell is escaped, so every table row has the same number of cells.
    for line in text.splitlines():
        if line.startswith("| "):
            assert len(re.split(r"(?<!\\)\|", line)) in (5, 6)


def test_weight_blob_round_trips_and_is_checked():
    plan = small_plan("ram", "two-hidden")
    blob = codegen.weights_blob(plan)
    assert blob == codegen.weights_blob(plan)
    image = codegen.parse_weights_blob(blob)
    consts = R.build_constants(plan)
    assert (image.model_hash, image.geometry, image.chunks) == (consts["MODEL_HASH"], consts["GEOMETRY"], 2)
    for lp, words in zip(plan.layers, image.memories):
        expected = weight_words(lp)
        assert len(words) == 2 * len(expected)
        assert [words[2 * k] | words[2 * k + 1] << 32 for k in range(len(expected))] == expected
    flipped = bytearray(blob)
    flipped[40] ^= 1
    with pytest.raises(ValueError, match="CRC"):
        codegen.parse_weights_blob(bytes(flipped))
    with pytest.raises(ValueError, match="bytes"):
        codegen.parse_weights_blob(blob[:-8])
    with pytest.raises(ValueError, match="SNNW"):
        codegen.parse_weights_blob(b"XXXX" + blob[4:])
    assert struct.unpack_from("<I", blob, 4)[0] == codegen.BLOB_VERSION


def test_weights_c_holds_the_same_words():
    plan = small_plan("ram")
    text = codegen.weights_c(plan)
    image = codegen.weight_image(plan)
    words = [int(w.rstrip("u"), 16) for w in re.findall(r"0x[0-9A-F]{8}u", text.split("= {", 1)[1].split("};")[0])]
    assert words == [w for layer in image.memories for w in layer]
    assert f"{len(image.memories[0]) // image.chunks}u, {len(image.memories[1]) // image.chunks}u" in text
    assert "const snn_weights_t snn_model_weights" in text
