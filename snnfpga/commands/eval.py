"""``snnfpga eval``: accuracy (float and integer), spikes and operations of a model directory.

    snnfpga eval MODEL --data FILE [--split all|train|val] [--limit N] [--json]

``MODEL`` is a model directory or ``default``. Accuracies are in percent; ``gap`` is float
minus integer, in points. ``accuracy_float`` comes from checkpoint.pt (null without one),
``accuracy_int`` from the integer reference on the artifact.
"""

from __future__ import annotations

from snnfpga.commands.common import emit_json, positive_int


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="float and integer accuracy, spikes per neuron, synaptic operations",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("model", metavar="MODEL", help="model directory, or 'default'")
    p.add_argument("--data", required=True, metavar="FILE", help=".npz, MNIST IDX images file, or 'default'")
    p.add_argument("--split", default="all", choices=("all", "train", "val"),
                   help="which part of the data: all (default), or the fixed train/val split (last eighth = val)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N images of the split")
    p.add_argument("--nodes", action="store_true",
                   help="also print spikes and synaptic operations per node (always for graph models)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run)


def node_table(rows: list[dict]) -> str:
    """Spikes and synaptic operations per node, means per image."""
    lines = [f"  {'node':<16} {'kind':<10} {'spikes':>10} {'per neuron':>10} {'synaptic ops':>13}"]
    for r in rows:
        if "spikes" not in r and "synaptic_ops" not in r:
            continue
        spikes = f"{r['spikes']:,.1f}" if "spikes" in r else ""
        per = f"{r['spikes_per_neuron']:.3f}" if "spikes" in r else ""
        ops = f"{r['synaptic_ops']:,.0f}" if "synaptic_ops" in r else ""
        lines.append(f"  {r['name']:<16} {r['kind']:<10} {spikes:>10} {per:>10} {ops:>13}")
    return "\n".join(lines)


def run(args) -> int:
    from snnfpga.model.data import load_dataset
    from snnfpga.model.evaluate import evaluate

    dataset = load_dataset(args.data).split(args.split).limit(args.limit)
    result = evaluate(args.model, dataset)
    result = {"model_dir": args.model, "split": args.split, **result}

    def pct(x):
        return "n/a (no checkpoint.pt)" if x is None else f"{x:.2f}%"

    print(f"model {args.model} ({result['model']}, {result['topology']}, T={result['timesteps']}) "
          f"on {result['n']} images ({args.split})")
    print(f"  accuracy float   {pct(result['accuracy_float'])}")
    print(f"  accuracy integer {pct(result['accuracy_int'])}")
    if result["gap"] is not None:
        print(f"  gap              {result['gap']:+.2f} points")
    print(f"  spikes/neuron    {result['spikes_per_neuron']:.3f} per image (spiking nodes, all steps); "
          f"{100 * result['silent_fraction']:.1f}% of them silent")
    print(f"  input spikes     {result['input_spikes']:.1f} per image")
    print(f"  synaptic ops     {result['synaptic_ops']:.0f} per image")
    if args.nodes or not result["sizes"]:
        print(node_table(result["nodes"]))
    if args.json:
        emit_json(result)
    return 0
