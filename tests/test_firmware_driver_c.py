"""The C driver: builds warning-free as strict C11, and behaves on a fake register block."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from snnfpga.commands.firmware import write_files
from snnfpga.firmware import codegen
from snnfpga.firmware.fil import FIRMWARE_DIR
from tests.firmware_common import small_plan

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None,
                                reason="gcc and make are needed")
STRICT = ["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]
FAKE = Path(__file__).resolve().parent / "firmware_fake_device.c"


def run(args, cwd=None):
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_makefile_builds_driver_and_example_warning_free(tmp_path):
    done = run(["make", "-C", str(FIRMWARE_DIR), f"BUILD_DIR={tmp_path}"])
    assert "-std=c11 -Wall -Wextra -Werror -pedantic" in done.stdout
    assert "warning" not in done.stderr.lower()
    assert (tmp_path / "libsnn.a").exists() and (tmp_path / "snn_example").exists()
    assert not (FIRMWARE_DIR / "build").exists() or not any((FIRMWARE_DIR / "build").iterdir())


@pytest.mark.parametrize("variant", [["-DSNN_NO_BUS_HOOKS"], ["-DSNN_IO_HEADER=\"my_io.h\""]])
def test_register_layer_can_be_replaced_at_compile_time(tmp_path, variant):
    (tmp_path / "my_io.h").write_text(
        "#include <stdint.h>\n"
        "uint32_t board_read(uint32_t offset);\nvoid board_write(uint32_t offset, uint32_t value);\n"
        "#define SNN_REG_READ(dev, offset) ((void)(dev), board_read(offset))\n"
        "#define SNN_REG_WRITE(dev, offset, value) ((void)(dev), board_write((offset), (value)))\n")
    run([*STRICT, *variant, "-I", str(FIRMWARE_DIR / "default"), "-I", str(FIRMWARE_DIR), "-I", str(tmp_path),
         "-c", str(FIRMWARE_DIR / "snn_driver.c"), "-o", str(tmp_path / "d.o")])
    symbols = run(["nm", str(tmp_path / "d.o")]).stdout
    assert ("board_read" in symbols) == ("my_io.h" in variant[0])


def test_driver_on_a_fake_device_default_header(tmp_path):
    run([*STRICT, "-I", str(FIRMWARE_DIR / "default"), "-I", str(FIRMWARE_DIR), str(FAKE),
         str(FIRMWARE_DIR / "snn_driver.c"), "-o", str(tmp_path / "fake")])
    assert run([str(tmp_path / "fake")]).stdout.strip() == "all checks passed"


def test_driver_loads_weights_from_blob_and_c_array(tmp_path):
    plan = small_plan("ram", "two-hidden")
    gen = tmp_path / "gen"
    write_files(plan, gen, weights_blob=True, weights_c=True)
    run([*STRICT, "-DHAVE_WEIGHTS_C", "-I", str(gen), str(FAKE), str(gen / "snn_driver.c"),
         str(gen / "snn_weights.c"), "-o", str(tmp_path / "fake")])
    assert run([str(tmp_path / "fake"), str(gen / "snn_weights.bin")]).stdout.strip() == "all checks passed"


def test_generated_folder_builds_with_its_makefile(tmp_path):
    plan = small_plan("ram")
    written = write_files(plan, tmp_path / "gen", weights_blob=False, weights_c=True)
    assert sorted(p.name for p in written) == sorted(
        ["snn_regmap.h", "registers.md", "snn_driver.h", "snn_driver.c", "main.c", "Makefile", "snn_weights.c"])
    assert (tmp_path / "gen" / "snn_regmap.h").read_text() == codegen.c_header(plan)
    done = run(["make", "-C", str(tmp_path / "gen"), f"BUILD_DIR={tmp_path / 'build'}"])
    assert "snn_weights.o" in done.stdout  # weight storage ram: the example links the weights
    assert (tmp_path / "build" / "snn_example").exists()
