"""Lanes per engine of the layer-graph accelerator: the fold that fits a target's block RAM.

An event costs its readers ``rows x G`` cycles, ``G = ceil(line length / P)`` (see
:mod:`snnfpga.rtl.graph_cycles`), so lanes buy cycles; they cost block RAM, because a wider
word over fewer addresses fills its blocks less. The fold is greedy, like choosing FINN's
folding factors against a resource budget: from ``base`` lanes everywhere, it raises the
lanes of one engine group at a time (the next lane count that changes it), taking the
move with the most modelled work saved (:func:`graph_cycles.event_work` on calibration
images) per block added, or in a second search the most work saved, while the whole
design fits ``target``'s block RAM less :data:`BLOCK_RESERVE`; each search stops when no
move saves work, and the better result is kept. Deterministic: the same artifact, images
and target give the same lanes.

Block RAM of a design (:func:`block_ram`): every memory the accelerator builds
(:meth:`GraphTopPlan.memories`) in its best block shape (``graph_plan.PRIMITIVE_SHAPES``),
one memory per block set, except those Yosys leaves to the fabric: a RAM (buffers,
membranes) under :data:`MIN_RAM_BITS` bits becomes LUT RAM, a ROM (weights, thresholds,
pixel coordinates) under :data:`MIN_ROM_BITS` bits or :data:`MIN_ROM_DEPTH` words becomes
logic. These limits reproduce Yosys's choices on the shipped ``mixer`` at 8 lanes and
folded (docs/hardware.md, "Layer graphs").
"""

from __future__ import annotations

import numpy as np

from snnfpga.errors import MappingError
from snnfpga.rtl.graph_plan import MAX_LANES, MemoryPlan, blocks

MIN_RAM_BITS = 1024  # smaller RAMs map to LUT RAM
MIN_ROM_BITS = 4096  # smaller ROMs, or shallower than MIN_ROM_DEPTH, map to logic
MIN_ROM_DEPTH = 32
RAM_PURPOSES = ("buffer", "state")  # written at run time; the rest are ROMs
# Block RAM the fold leaves free: for the system around the accelerator and the model's
# error (the folded mixer: 176 blocks modelled, 175 placed), and so that the placer keeps
# some room.
BLOCK_RESERVE = 0.03
FOLD_IMAGES = 32  # calibration images (the first of the validation split) the CLI folds on
BLOCK_PRIMITIVE = {"ecp5": "dp16kd", "ice40": "ebr"}


def block_ram(plan, target) -> dict[str, int]:
    """Blocks of the target's block-RAM primitive per owner (``encoder`` or a node)."""
    prim = BLOCK_PRIMITIVE[target.family]
    out: dict[str, int] = {}
    for owner, purpose, depth, width in plan.memories():
        if purpose in RAM_PURPOSES:
            in_blocks = depth * width >= MIN_RAM_BITS
        else:
            in_blocks = depth * width >= MIN_ROM_BITS and depth >= MIN_ROM_DEPTH
        if in_blocks:
            out[owner] = out.get(owner, 0) + blocks(MemoryPlan(purpose, depth, width), prim)
    return out


def lane_groups(plan) -> list[list[str]]:
    """The engines that share one lane count (:func:`graph_top.lane_group_of`), in the
    order of ``plan.node_lanes``."""
    from snnfpga.rtl.graph_top import lane_group_of

    find = lane_group_of(plan.artifact.graph)
    shared: dict[str, list[str]] = {}
    for name in plan.node_lanes:
        shared.setdefault(find(name), []).append(name)
    return list(shared.values())


def fold_lanes(art, images: np.ndarray, target, base: int | None = None, progress=None) -> dict[str, int]:
    """``{engine: lanes}`` (for ``make_graph_top_plan(lane_caps=...)``) that fits ``target``'s
    block RAM with the least modelled work per image on ``images`` (uint8 ``[N, H, W]``):
    :func:`graph_cycles.event_work`, the events' costs and the passes' words, leaving
    :data:`BLOCK_RESERVE` of the block RAM free. Two greedy searches (the move that saves
    the most work per block added; the move that saves the most work), the better one
    kept. ``progress`` is called with ``(plan, blocks, work)`` after each move.
    :class:`MappingError` when even ``base`` lanes (default ``DEFAULT_LANES``) do not fit."""
    from snnfpga.rtl import graph_cycles
    from snnfpga.rtl.graph_top import DEFAULT_LANES, make_graph_top_plan
    from snnfpga.sim import reference

    base = base or DEFAULT_LANES
    prim = BLOCK_PRIMITIVE[target.family]
    budget = int(target.capacity[prim] * (1 - BLOCK_RESERVE))
    start = make_graph_top_plan(art, base)
    events = graph_cycles.events_by_position(start, reference.run(art, images, record="all"))
    used = sum(block_ram(start, target).values())
    if used > budget:
        raise MappingError(f"graph {art.name} needs {used} {prim.upper()} blocks at {base} lanes, the "
                           f"{target.name} has {target.capacity[prim]} ({budget} after the "
                           f"{BLOCK_RESERVE:.0%} reserve): no fold of its lanes fits")

    def search(per_block: bool):
        plan, blocks_used, work, caps = start, used, graph_cycles.event_work(start, events), {}
        while True:
            best = None
            for group in lane_groups(plan):
                now = cap = plan.node_lanes[group[0]]
                while cap < MAX_LANES:  # the next cap that changes this group's lanes
                    cap = min(MAX_LANES, cap * 2)
                    trial = {**caps, group[0]: cap}
                    t_plan = make_graph_top_plan(art, base, lane_caps=trial)
                    if t_plan.node_lanes[group[0]] != now:
                        break
                else:
                    continue
                t_work = graph_cycles.event_work(t_plan, events)
                if t_work >= work:
                    continue
                t_used = sum(block_ram(t_plan, target).values())
                if t_used > budget:
                    continue
                gain = (work - t_work) / max(0.5, t_used - blocks_used) if per_block else work - t_work
                if best is None or gain > best[0]:
                    best = (gain, trial, t_plan, t_used, t_work)
            if best is None:
                return plan, work, caps
            _, caps, plan, blocks_used, work = best
            if progress is not None:
                progress(plan, blocks_used, work)

    plan, _, caps = min((search(per_block) for per_block in (True, False)), key=lambda r: r[1])
    # The lanes each cap gave (caps may exceed a line's length): the same plan.
    return {group[0]: plan.node_lanes[group[0]] for group in lane_groups(plan) if group[0] in caps}


def fold_for(art, target) -> dict[str, int]:
    """:func:`fold_lanes` on the first :data:`FOLD_IMAGES` validation images of the bundled
    data (so the fold of a model for a target is always the same); ``{}`` (no fold) when the
    design at the base lanes is already over the target's block RAM (synthesis then says by
    how much). :class:`ConfigError` when the model's input is not the bundled images' shape."""
    from snnfpga.errors import ConfigError
    from snnfpga.model.data import load_dataset

    images = load_dataset("default").split("val").limit(FOLD_IMAGES).images
    if tuple(images.shape[1:]) != tuple(art.input_shape):
        raise ConfigError(f"--lanes auto folds on the bundled {images.shape[1]}x{images.shape[2]} images; "
                          f"{art.name} takes {art.input_shape}: give --lanes P")
    try:
        return fold_lanes(art, images, target)
    except MappingError:
        return {}
