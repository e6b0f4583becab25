"""What the host hands to a cocotb bench, and what the bench hands back, as files.

The host writes ``job.json`` into a fresh run directory (with the stimulus files when the
shell drives the design) and points the environment variable ``SNNFPGA_JOB`` at it; the
shell writes its event and result logs there; the bench writes ``result.json`` (verdict,
mismatches, errors, cycles) and ``rtl.npz`` (what the design produced) beside it, and
appends one line per finished image to ``progress``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ENV = "SNNFPGA_JOB"
# Default wall-clock limit of one simulator process: far above any run of the shipped models
# on their whole validation split (minutes), low enough that a hung run ends the same day.
DEFAULT_WALL_LIMIT_S = 4 * 3600.0


@dataclass
class Job:
    """Inputs of one bench run (paths are absolute)."""

    run_dir: str
    artifact: str  # saved artifact directory
    images: str  # .npz with ``images`` (uint8 [N, H, W])
    description: str = ""  # <top>.json of the generated accelerator (accelerator bench)
    layer: int = 0  # layer index (engine bench)
    first_image: int = 0  # index of the first image in the whole run (shards), for reports
    gaps: float = 0.0  # probability of one more idle input cycle before a beat
    stall: float = 0.0  # probability of one more cycle of back-pressure on the output
    seed: int = 0
    abandon_beats: int = 0  # first send this many beats of a throw-away image, then soft reset
    max_cycles_per_image: int = 500_000
    wall_limit_s: float | None = None  # wall-clock seconds for the whole run (None: no limit)
    clock_ns: int = 10
    # "shell": the Verilog shell replays the stream schedules (written beside the job by the
    # host, :mod:`.stimulus`); "python": cocotb coroutines drive the streams (accelerator bench)
    stimulus: str = "python"
    shell_clock: bool = False  # the shell makes the clock (else cocotb's Clock drives ``clk``)
    preamble_beats: int = 0  # weight and abandoned beats before the first image's (shell stimulus)
    # The host writes the artifact, images and stimulus while the simulator starts; the bench
    # waits for ``inputs_ready`` (or ``inputs_failed``) before it reads them.
    inputs_async: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return Path(self.run_dir)

    @property
    def log(self) -> Path:
        return self.dir / "events.log"

    @property
    def results_log(self) -> Path:
        return self.dir / "results.log"

    @property
    def script(self) -> Path:
        return self.dir / "stimulus.txt"

    @property
    def stalls(self) -> Path:
        return self.dir / "stalls.txt"

    @property
    def plusargs(self) -> list[str]:
        """What the shell reads and writes (:mod:`.wrapper`)."""
        args = [f"+snn_log={self.log}", f"+snn_results={self.results_log}"]
        if self.stimulus == "shell":
            args += [f"+snn_stim={self.script}", f"+snn_stalls={self.stalls}"]
        return args

    @property
    def inputs_ready(self) -> Path:
        return self.dir / "inputs.ready"

    @property
    def inputs_failed(self) -> Path:
        return self.dir / "inputs.failed"

    def mark_inputs(self, error: BaseException | None = None) -> None:
        """The host has written the inputs (or failed to: ``error``)."""
        if error is None:
            self.inputs_ready.write_text("")
        else:
            self.inputs_failed.write_text(f"{type(error).__name__}: {error}")

    def wait_for_inputs(self, timeout_s: float = 600.0) -> None:
        """Block until the host has written the inputs (``inputs_async``); the simulation has
        not started yet, so waiting here costs no simulated time."""
        if not self.inputs_async:
            return
        deadline = time.monotonic() + timeout_s
        while not self.inputs_ready.exists():
            if self.inputs_failed.exists():
                raise RuntimeError(f"the host could not write the inputs: {self.inputs_failed.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no inputs from the host within {timeout_s:g} s")
            time.sleep(0.002)

    @property
    def progress(self) -> Path:
        return self.dir / "progress"

    @property
    def result(self) -> Path:
        return self.dir / "result.json"

    @property
    def rtl(self) -> Path:
        return self.dir / "rtl.npz"

    def save(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "job.json"
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    def finish(self, *, n: int, mismatched: list[int], mismatches: list[str], errors: list[str],
               cycles_mean: float | None, total_cycles: int, sim_wall_s: float, arrays: dict) -> None:
        """Write the bench's verdict (``result.json``) and what the design produced (``rtl.npz``)."""
        import numpy as np

        np.savez(self.rtl, **arrays)
        self.result.write_text(json.dumps({
            "n": n, "mismatched_images": mismatched, "mismatches": mismatches, "errors": errors,
            "cycles_mean": cycles_mean, "total_cycles": total_cycles, "sim_wall_s": round(sim_wall_s, 3),
        }))

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "Job":
        path = path or os.environ.get(ENV)
        if not path:
            raise RuntimeError(f"{ENV} is not set: this bench is started by snnfpga.sim.runner")
        return cls(**json.loads(Path(path).read_text()))
