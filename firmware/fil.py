"""Firmware in the loop: the real C driver, compiled as C11, linked into a Verilator harness
(``firmware/sim/fil_main.cpp``) around the generated :class:`~snnfpga.rtl.system.AcceleratorSystem`
Verilog (interface ``wishbone``). The driver's bus hooks perform Wishbone cycles on the model.

:func:`build` builds the harness for a plan, or reuses a cached build: one directory per
configuration under :func:`snnfpga.sim.runner.cache_root`, named by a hash of every source
(Verilog, generated header, driver, harness), the tool versions and the flags; never inside
the repository. :func:`run_images` infers images through the driver; :func:`compare` checks
classes, scores and counters against the integer reference.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snnfpga.errors import ToolError
from snnfpga.firmware import codegen
from snnfpga.firmware import regmap as R
from snnfpga.rtl.generate import make_top, to_verilog
from snnfpga.sim import reference, runner

FIRMWARE_DIR = Path(__file__).resolve().parent
DRIVER_SOURCES = ("snn_driver.c", "snn_driver.h")
HARNESS_SOURCE = "sim/fil_main.cpp"
TOP = "snn_top"  # the generated system
SHELL = "fil_top"  # the harness's top: the system with Verilator-friendly port names
BINARY = "fil"
C_FLAGS = ("-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2")
MAKE_FLAGS = ("CFG_CXXFLAGS_PCH_I=-include",)  # see snnfpga.sim.runner._Verilator
BUILD_FORMAT = "fil-1"


class FirmwareRunError(ToolError):
    """The harness could not run, or the driver failed before the first image."""


@dataclass(frozen=True)
class Harness:
    """A built harness: its executable, the plan it was built for, how long the build took."""

    plan: object
    binary: Path
    directory: Path
    build_s: float
    cached: bool


def c_compiler() -> str:
    return os.environ.get("CC", "cc" if shutil.which("cc") else "gcc")


SHELL_VERILOG = f"""// The accelerator system with single-underscore port names (Verilator mangles "__").
module {SHELL} (
    input clk, input rst, input wb_cyc, input wb_stb, input wb_we, input [3:0] wb_sel,
    input [ADDR_BITS-1:0] wb_adr, input [31:0] wb_dat_w, output [31:0] wb_dat_r, output wb_ack, output irq
);
    {TOP} system (
        .clk(clk), .rst(rst), .bus__cyc(wb_cyc), .bus__stb(wb_stb), .bus__we(wb_we), .bus__sel(wb_sel),
        .bus__adr(wb_adr), .bus__dat_w(wb_dat_w), .bus__dat_r(wb_dat_r), .bus__ack(wb_ack), .irq(irq)
    );
endmodule
"""


def sources(plan) -> dict[str, str]:
    """Every file the harness is built from, by name (the generated ones included)."""
    shell = SHELL_VERILOG.replace("ADDR_BITS", str(R.ADDRESS_BITS))
    files = {f"{TOP}.v": to_verilog(make_top(plan, "wishbone"), TOP), f"{SHELL}.v": shell,
             codegen.HEADER_NAME: codegen.c_header(plan)}
    for name in (*DRIVER_SOURCES, HARNESS_SOURCE):
        files[Path(name).name] = (FIRMWARE_DIR / name).read_text()
    return files


@functools.lru_cache(maxsize=None)
def _tool_versions() -> tuple[str, ...]:
    out = [runner.simulator_version("verilator")]
    for tool in (c_compiler(), os.environ.get("CXX", "c++")):
        done = subprocess.run([tool, "--version"], capture_output=True, text=True)
        out.append((done.stdout.splitlines() or ["?"])[0])
    return tuple(out)


def build_key(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for part in (BUILD_FORMAT, *_tool_versions(), *C_FLAGS, *runner.VERILATOR_ARGS, *MAKE_FLAGS,
                 os.environ.get("CFLAGS", ""), os.environ.get("CXXFLAGS", "")):
        h.update(part.encode() + b"\0")
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return h.hexdigest()


def _check_tools() -> None:
    runner.configure("verilator")  # raises SimulatorMissing (a ToolError) with the reason
    if shutil.which(c_compiler()) is None:
        raise runner.SimulatorMissing(f"firmware in the loop needs a C compiler ({c_compiler()} not on PATH)")


def _command(args: list[str], cwd: Path, log: Path, what: str) -> None:
    with open(log, "a") as out:
        out.write("$ " + " ".join(args) + "\n")
        out.flush()
        done = subprocess.run(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        lines = log.read_text(errors="replace").splitlines()
        errors = (ln.strip() for ln in lines if not ln.startswith("$ ") and ("error:" in ln.lower() or "%Error" in ln))
        why = next(errors, f"exit status {done.returncode}")
        raise runner.BuildError(f"{what} failed: {why} (log: {log})")


def build(plan, *, cache: Path | None = None, jobs: int | None = None) -> Harness:
    """Build the harness for ``plan`` (or reuse the cached build of the same sources)."""
    _check_tools()
    files = sources(plan)
    key = build_key(files)
    directory = (cache or runner.cache_root()) / f"fil-{key[:16]}"
    binary = directory / BINARY
    with runner._locked(directory):
        stamp = directory / runner.BUILD_STAMP
        if stamp.exists() and stamp.read_text() == key and binary.exists():
            stamp.touch()
            return Harness(plan, binary, directory, 0.0, True)
        start = time.time()
        for sub in ("src", "obj", "model"):
            shutil.rmtree(directory / sub, ignore_errors=True)
        src, obj, model = directory / "src", directory / "obj", directory / "model"
        src.mkdir(parents=True)
        obj.mkdir()
        for name, text in files.items():
            (src / name).write_text(text)
        log = directory / "build.log"
        log.write_text("")
        # The driver as firmware builds it: C11, strict warnings as errors.
        _command([c_compiler(), *C_FLAGS, "-I", str(src), "-c", str(src / "snn_driver.c"), "-o",
                  str(obj / "snn_driver.o")], directory, log, "compiling the C driver")
        _command(["verilator", "--cc", "--exe", *runner.VERILATOR_ARGS, "--top-module", SHELL, "--Mdir", str(model),
                  "-o", BINARY, "-CFLAGS", f"-I{src}", "-LDFLAGS", str(obj / "snn_driver.o"),
                  str(src / f"{SHELL}.v"), str(src / f"{TOP}.v"), str(src / Path(HARNESS_SOURCE).name)],
                 directory, log, "verilator")
        runtime = _runtime_dir(directory.parent)
        _restore_runtime(runtime, model)
        _command(["make", "-C", str(model), "-f", f"V{SHELL}.mk", f"-j{jobs or os.cpu_count() or 1}", *MAKE_FLAGS],
                 directory, log, "building the Verilated harness")
        _save_runtime(model, runtime)
        shutil.move(str(model / BINARY), binary)
        shutil.rmtree(model, ignore_errors=True)  # some 100 MB of C++ and objects
        shutil.rmtree(obj, ignore_errors=True)
        stamp.write_text(key)
    runner._prune(directory.parent)
    return Harness(plan, binary, directory, time.time() - start, False)


# Verilator's run-time library does not depend on the design: compiled once, then copied into
# each new build before make (newer than its sources, so make keeps it).
RUNTIME_OBJECTS = ("verilated", "verilated_threads")


def _runtime_dir(root: Path) -> Path:
    h = hashlib.sha256("\0".join([BUILD_FORMAT, *_tool_versions(), os.environ.get("CXXFLAGS", "")]).encode())
    return root / f"fil-runtime-{h.hexdigest()[:16]}"


def _restore_runtime(runtime: Path, model: Path) -> None:
    if all((runtime / f"{name}.o").exists() for name in RUNTIME_OBJECTS):
        for path in runtime.iterdir():
            shutil.copyfile(path, model / path.name)


def _save_runtime(model: Path, runtime: Path) -> None:
    if runtime.exists() or not all((model / f"{name}.o").exists() for name in RUNTIME_OBJECTS):
        return
    staging = runtime.with_name(f"{runtime.name}.tmp{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            if (model / f"{name}{ext}").exists():
                shutil.copyfile(model / f"{name}{ext}", staging / f"{name}{ext}")
    try:
        staging.rename(runtime)
    except OSError:  # another process saved them first
        shutil.rmtree(staging, ignore_errors=True)


# ---- running --------------------------------------------------------------------------------


@dataclass
class FilRun:
    """What the driver reported: ``init`` (and ``weights``) events, one record per image."""

    events: dict[str, dict]
    images: list[dict]
    total_cycles: int
    wall_s: float


def images_file(art, images: np.ndarray) -> bytes:
    """The harness's image file: ``"SNNI"``, count, n_inputs (little-endian u32), pixels."""
    flat = reference.flatten_images(art, images).astype(np.uint8)
    head = np.array([len(flat), art.n_inputs], dtype="<u4").tobytes()
    return b"SNNI" + head + flat.tobytes()


def run_images(harness: Harness, images: np.ndarray, *, weights_blob: bytes | None = None,
               timeout_polls: int | None = None, progress: Callable[[int], None] | None = None) -> FilRun:
    """Infer ``images`` through the C driver on the Verilated system. With weight storage
    ``ram`` the plan's weight blob is loaded first (``weights_blob`` overrides it)."""
    plan = harness.plan
    if weights_blob is None and plan.weight_storage == "ram":
        weights_blob = codegen.weights_blob(plan)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="snnfpga-fil-") as tmp:
        args = [str(harness.binary), "run", str(Path(tmp) / "images.bin")]
        (Path(tmp) / "images.bin").write_bytes(images_file(plan.artifact, images))
        if weights_blob is not None:
            (Path(tmp) / "weights.bin").write_bytes(weights_blob)
            args.append(str(Path(tmp) / "weights.bin"))
        if timeout_polls is not None:
            args += ["--timeout-polls", str(timeout_polls)]
        events, records, total = {}, [], 0
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            for line in proc.stdout:
                record = json.loads(line)
                if record["event"] == "image":
                    records.append(record)
                    if progress:
                        progress(len(records))
                elif record["event"] == "done":
                    total = record["cycles"]
                else:
                    events[record["event"]] = record
            stderr = proc.stderr.read()
            rc = proc.wait()
    if rc != 0:
        failed = next((e for e in events.values() if e["status"] != 0), None)
        if failed is not None:
            why = f"{failed['event']}: {failed['error']} (status {failed['status']}"
            why += f", hardware error {failed['hw_error']}" if failed["hw_error"] else ""
            why += f", {failed['bus_error']}" if failed["bus_error"] else ""
            raise FirmwareRunError(f"firmware in the loop failed at {why})")
        raise FirmwareRunError(f"firmware-in-the-loop harness exited with status {rc}: {stderr.strip()[-300:]}")
    return FilRun(events, records, total, time.time() - start)


@dataclass(frozen=True)
class Mismatch:
    """One disagreement between the driver's view of the hardware and the reference."""

    image: int
    what: str
    expected: object
    got: object

    def __str__(self) -> str:
        return f"mismatch: image {self.image}, {self.what}: expected {self.expected}, got {self.got}"


@dataclass
class Comparison:
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def images(self) -> list[int]:
        return sorted({m.image for m in self.mismatches})


def compare(art, images: np.ndarray, run: FilRun) -> Comparison:
    """Check every image's status, class, scores, spike counters, cycles (> 0), image counter
    (images since the driver's reset) and interrupt line against the reference."""
    ref = reference.run(art, images)
    spikes = ref.spike_counts()
    out = Comparison()
    for n in range(len(images)):
        if n >= len(run.images):
            out.mismatches.append(Mismatch(n, "result", "a result", "none (the run ended)"))
            continue
        got = run.images[n]
        checks = [("status", "ok", got["error"]),
                  ("class", int(ref.classes[n]), got["class"]),
                  ("scores", [int(s) for s in ref.scores[n]], got["scores"]),
                  ("spikes per stage", [int(c[n]) for c in spikes], got["spikes"]),
                  ("IMAGES counter", n + 1, got["images"]),
                  ("interrupt line", 1, got["irq"])]
        for what, expected, value in checks:
            if expected != value:
                out.mismatches.append(Mismatch(n, what, expected, value))
        if got["cycles"] <= 0:
            out.mismatches.append(Mismatch(n, "CYCLES counter", "> 0", got["cycles"]))
    return out
