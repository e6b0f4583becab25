"""What the host hands to a cocotb bench, and what the bench hands back, as files.

The host writes ``job.json`` into a fresh run directory and points the environment
variable ``SNNFPGA_JOB`` at it; the bench writes ``result.json`` (verdict, mismatches,
errors, cycles) and ``rtl.npz`` (what the design produced) beside it, and appends one line
per finished image to ``progress``.
"""

from __future__ import annotations

import json
import os
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
    extra: dict = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return Path(self.run_dir)

    @property
    def log(self) -> Path:
        return self.dir / "events.log"

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
