"""Figures of the report and the sweeps (matplotlib, Agg backend), as PNG bytes.

Every function returns the bytes of one PNG; the same inputs give the same bytes (no
timestamps or software tag in the file).
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
import numpy as np  # noqa: E402

DPI = 110


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def spike_raster(spikes: list[np.ndarray], names: list[str], label: str | None = None) -> bytes:
    """Raster of one image: per stage a panel, x = time step, y = neuron, a tick per spike.

    ``spikes``: ``bool [T, n]`` per stage (encoder first)."""
    T = spikes[0].shape[0]
    fig, axes = plt.subplots(1, len(spikes), figsize=(3.2 * len(spikes), 4.2), squeeze=False)
    for ax, s, name in zip(axes[0], spikes, names):
        t, n = np.nonzero(s)
        ax.scatter(t, n, marker="|", s=60, linewidths=1.2, color="black")
        ax.set_xlim(-0.5, T - 0.5)
        ax.set_ylim(-0.5, s.shape[1] - 0.5)
        ax.set_xticks(range(T))
        ax.set_xlabel("time step")
        ax.set_title(f"{name}: {int(s.sum())} spikes", fontsize=10)
    axes[0][0].set_ylabel("neuron")
    if label:
        fig.suptitle(label, fontsize=10)
    return _png(fig)


def spikes_per_layer(per_step: list[np.ndarray], names: list[str], sizes: list[int]) -> bytes:
    """Mean spikes per image of each stage, stacked by time step; ``per_step``: ``float [T]`` each."""
    T = len(per_step[0])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    bottom = np.zeros(len(names))
    colors = plt.cm.viridis(np.linspace(0.15, 0.85, T))
    for t in range(T):
        values = np.array([p[t] for p in per_step])
        ax.bar(names, values, bottom=bottom, color=colors[t], label=f"step {t}")
        bottom += values
    ax.set_ylabel("spikes per image")
    ax.legend(fontsize=8)
    ax.set_title("spikes per stage", fontsize=10)
    rate = [p.sum() / n for p, n in zip(per_step, sizes)]
    ax2.bar(names, rate, color="tab:gray")
    ax2.set_ylabel("spikes per neuron per image")
    ax2.set_title(f"per neuron (over {T} steps)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def accuracy_sweep(runs: list[dict], highlight: tuple[int, int] | None = None) -> bytes:
    """Integer accuracy against T (one line per weight width) from the sweep's runs
    (``timesteps``, ``weight_bits``, ``val_accuracy_int``)."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    bits = sorted({r["weight_bits"] for r in runs})
    steps = sorted({r["timesteps"] for r in runs})
    for b in bits:
        pts = sorted((r["timesteps"], r["val_accuracy_int"]) for r in runs if r["weight_bits"] == b)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{b}-bit weights")
    ax.set_xscale("log", base=2)
    ax.set_xticks(steps, [str(s) for s in steps])
    ax.set_xlabel("time steps T")
    ax.set_ylabel("integer accuracy (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    for t in steps:
        pts = sorted((r["weight_bits"], r["val_accuracy_int"]) for r in runs if r["timesteps"] == t)
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], marker="s", label=f"T = {t}")
    ax2.set_xticks(bits)
    ax2.set_xlabel("weight bits")
    ax2.set_ylabel("integer accuracy (%)")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    if highlight:
        for r in runs:
            if (r["timesteps"], r["weight_bits"]) == highlight:
                ax.plot([r["timesteps"]], [r["val_accuracy_int"]], marker="*", markersize=14, color="red")
    fig.tight_layout()
    return _png(fig)


def cycles_vs_lanes(model: dict[int, float], measured: dict[int, float] | None = None,
                    title: str = "") -> bytes:
    """Cycles per image against lanes: the cycle model (line) and measured points."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    lanes = sorted(model)
    ax.plot(lanes, [model[p] for p in lanes], marker="o", label="cycle model")
    if measured:
        pts = sorted(measured)
        ax.plot(pts, [measured[p] for p in pts], linestyle="none", marker="x", markersize=9, color="red",
                label="measured (RTL simulation)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _plain_numbers(ax.yaxis)
    ax.tick_params(which="both", labelsize=8)
    ax.set_xticks(lanes, [str(p) for p in lanes])
    ax.set_xlabel("lanes P")
    ax.set_ylabel("cycles per image")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _plain_numbers(axis) -> None:
    """Label a log axis with plain numbers (``30``, ``2,000``), not powers of ten."""
    plain = ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}")
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(plain)


def design_space(rows: list[dict]) -> bytes:
    """Sweep results: latency (us) against LUTs or logic cells, one marker per weight width,
    labelled with the lane count; one panel per target."""
    targets = sorted({r["target"] for r in rows})
    fig, axes = plt.subplots(1, len(targets), figsize=(5.5 * len(targets), 4), squeeze=False)
    for ax, target in zip(axes[0], targets):
        sub = [r for r in rows if r["target"] == target and r.get("latency_us")]
        for b in sorted({r["weight_bits"] for r in sub}):
            pts = sorted((r["lanes"], r["logic_cells"], r["latency_us"], r["fits"]) for r in sub
                         if r["weight_bits"] == b)
            ax.plot([p[1] for p in pts], [p[2] for p in pts], marker="o", label=f"{b}-bit weights")
            for lanes, x, y, fits in pts:
                ax.annotate(f"P={lanes}" + ("" if fits else " (no fit)"), (x, y), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_numbers(ax.xaxis)
        _plain_numbers(ax.yaxis)
        ax.tick_params(which="both", labelsize=8)
        ax.set_xlabel("logic cells" if target.startswith("ice40") else "LUT4")
        ax.set_ylabel("latency per image (us, at Fmax)")
        ax.set_title(target, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def spike_maps(maps: list[tuple[str, np.ndarray]], label: str | None = None, columns: int = 6) -> bytes:
    """One heat map per node: the spikes of one image at each position, summed over the time
    steps and averaged over the channels (spikes per neuron at that position).

    ``maps``: ``(name, float [H, W])`` per node, in graph order (the encoder first)."""
    rows = -(-len(maps) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, grid) in zip(axes.flat, maps):
        im = ax.imshow(grid, cmap="magma", vmin=0, interpolation="nearest")
        ax.set_title(f"{name}\n{grid.shape[0]}x{grid.shape[1]}, max {grid.max():.2f}", fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
    if label:
        fig.suptitle(label, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def node_activity(rows: list[dict]) -> bytes:
    """Spikes per neuron per image (spiking nodes) and synaptic operations per image
    (synapse nodes), one bar per node in graph order."""
    spiking = [r for r in rows if "spikes_per_neuron" in r]
    synapses = [r for r in rows if "synaptic_ops" in r]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    ax.bar([r["name"] for r in spiking], [r["spikes_per_neuron"] for r in spiking], color="tab:gray")
    ax.set_ylabel("spikes per neuron per image")
    ax.set_title("spiking nodes", fontsize=10)
    ax2.bar([r["name"] for r in synapses], [r["synaptic_ops"] for r in synapses], color="tab:blue")
    ax2.set_yscale("log")
    _plain_numbers(ax2.yaxis)
    ax2.set_ylabel("synaptic operations per image")
    ax2.set_title("synapse nodes", fontsize=10)
    for a in (ax, ax2):
        a.tick_params(axis="x", labelrotation=70, labelsize=7)
    fig.tight_layout()
    return _png(fig)
