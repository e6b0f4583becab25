"""Accuracy benchmark: evaluate a model directory on the validation split (trains nothing).

    python benchmarks/accuracy.py [MODEL] [--data FILE] [--split val]

Prints float (QAT, checkpoint.pt) and integer (reference) accuracy in percent, their gap
in points, spikes per hidden neuron and synaptic operations per image, and the mean cycles
per image of the accelerator for P = 16, 32, 64 lanes at 4 pixels per beat, from the cycle
model (``snnfpga.rtl.cycle_model``, docs/hardware.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from snnfpga.errors import SnnfpgaError
from snnfpga.model.artifact import load_artifact
from snnfpga.model.data import load_dataset
from snnfpga.model.evaluate import evaluate
from snnfpga.rtl import cycle_model
from snnfpga.rtl.plan import make_plan
from snnfpga.sim import reference


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", default="default")
    p.add_argument("--data", default="default")
    p.add_argument("--split", default="val", choices=("all", "train", "val"))
    args = p.parse_args(argv)
    try:
        dataset = load_dataset(args.data).split(args.split)
        start = time.perf_counter()
        result = evaluate(args.model, dataset)
        seconds = time.perf_counter() - start
        art = load_artifact(args.model)
    except SnnfpgaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    trace = reference.run(art, dataset.images)
    cycles = {p: round(float(cycle_model.estimate(make_plan(art, lanes=p), trace)["pipelined"].mean()))
              for p in (16, 32, 64)} if art.is_chain else {}
    print(f"model {args.model}: {result['topology']}, T={result['timesteps']}, "
          f"{args.split} split of {args.data} ({result['n']} images)")
    fl = result["accuracy_float"]
    print(f"accuracy float   {'n/a' if fl is None else f'{fl:.2f}%'}")
    print(f"accuracy integer {result['accuracy_int']:.2f}%")
    if result["gap"] is not None:
        print(f"gap              {result['gap']:+.2f} points")
    print(f"spikes/neuron    {result['spikes_per_neuron']:.3f} per image (spiking nodes, all steps)")
    print(f"input spikes     {result['input_spikes']:.1f} per image ({result['input_spikes'] / result['timesteps']:.1f} per step)")
    print(f"hidden spikes    {', '.join(f'{x:.1f}' for x in result['hidden_spikes'])} per image")
    print(f"synaptic ops     {result['synaptic_ops']:.0f} per image")
    if cycles:
        print("cycles/image (cycle model) " + ", ".join(f"P={p}: {c}" for p, c in cycles.items()))
    else:
        print("cycles/image     n/a (the cycle model covers chains of dense layers so far)")
    print(f"evaluation took {seconds:.1f} s")
    print(json.dumps({**result, "cycles_estimate": cycles}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
