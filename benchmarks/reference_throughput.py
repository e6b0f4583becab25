"""Throughput of the numpy integer reference (images/s) on one CPU core.

    python benchmarks/reference_throughput.py [MODEL] [--images N] [--batch B] [--repeat R]

Pins OpenMP/MKL/OpenBLAS and torch to one thread *before* numpy is imported, runs
``snnfpga.sim.reference.run`` on the validation images (recycled up to ``N``) in batches
of ``B`` and reports the best of ``R`` repeats (wall time, and the process's CPU time,
which other jobs on a shared machine inflate less), plus where the time goes.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    import torch

    torch.set_num_threads(1)
    from snnfpga.model.artifact import load_artifact
    from snnfpga.model.data import load_dataset
    from snnfpga.model.evaluate import topology
    from snnfpga.sim import reference

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", default="default")
    p.add_argument("--data", default="default")
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    art = load_artifact(args.model)
    val = load_dataset(args.data).split("val").images
    reps = -(-args.images // len(val))
    images = np.concatenate([val] * reps)[:args.images]
    best = best_cpu = float("inf")
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        for s in range(0, len(images), args.batch):
            reference.run(art, images[s:s + args.batch], record=False)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    rate = len(images) / best
    # Where the time goes: the encoder alone, and the run with spike recording.
    start = time.perf_counter()
    for s in range(0, len(images), args.batch):
        reference.encode(art.encoder, reference.flatten_images(art, images[s:s + args.batch]), art.timesteps)
    enc = time.perf_counter() - start
    start = time.perf_counter()
    for s in range(0, len(images), args.batch):
        reference.run(art, images[s:s + args.batch], record=True)
    rec = time.perf_counter() - start
    print(f"model {args.model}: {topology(art)}, T={art.timesteps}; {len(images)} images, "
          f"batch {args.batch}, 1 thread")
    print(f"reference.run: {rate:,.0f} images/s (best of {args.repeat}: {best:.3f} s; "
          f"{len(images) / best_cpu:,.0f} images/s of process CPU time, {best_cpu:.3f} s)")
    print(f"  encoder alone {len(images) / enc:,.0f} images/s; with spike recording {len(images) / rec:,.0f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
