"""Cycle model of the layer-graph accelerator (rtl/graph_top.py): cycles per image from spikes.

The accelerator runs a static schedule (see :mod:`snnfpga.rtl.graph_top`), so an image's
cycles are a sum of phases; only the phases that move events depend on the data.

Notation: ``NW = ceil(n_inputs / B)`` pixel words, ``T`` steps; for a synapse ``s`` with
``G_s`` groups, ``R_s(y, x)`` row operations per input event at ``(y, x)`` (its scatter
table); for an emitter ``e`` (the encoder or a neuron engine) the *cost* of an event is
``c_e(y, x) = max over the synapses s reading e of max(1, R_s(y, x) x G_s)``: the producer
broadcasts an event only when every reader takes it, and a reader takes the next event
when the rows of the last one are issued (one group per cycle).

An emitter's events leave in scan order (the encoder: pixel order; a ``lif``: its memory
layout, word ``line x G + g``, lanes in order; a ``glif``: along its axis). Its scan reads
one word per cycle and offers a word's spikes ``SCAN_LATENCY`` cycles later (the encoder:
``ENCODER_LATENCY``, one more cycle per extra spike of a word); it stalls while its
pipeline is full (a ``lif``/``glif``: ``SCAN_DEPTH`` words with spikes in the spike FIFO;
the encoder: ``ENCODER_DEPTH`` words, with spikes or not). Per word ``j`` with spikes::

    offer_j = max(read_j + stalls so far + latency, leave of the word it waits for + 1)
    start_j = max(offer_j, end_{j-1}),   end_j = start_j + sum of its events' costs

and the phase lasts ``max(end + IDLE_LATENCY, eos + EOS_IDLE)`` (the last reader idle, or
the end-of-step token after the scan). Per step, with ``E`` the encoder's phase and ``N_e``
engine ``e``'s::

    step = E + 1 + sum_e (1 + N_e) + (G_head + 2) + 1 + (max_s lines_s x G_s + 1)

(encode, drain, every engine started and run in topological order, the head's groups
added into the scores, every buffer cleared to its bias), and an image entering an idle
accelerator takes ``NW + 1 + sum_t step(t) + 3 x n_classes`` (load, the steps, the
decision). The encoder scans the next step (and loads the next image) while the engines
run, up to its full pipeline; its end-of-step token waits in a one-entry register until the
schedule takes the last one. A phase without events ends with its token; the encoder's
readers are idle ``ENCODER_IDLE`` cycles after its last event. A TTFS encoder does not scan
the steps after window 0 (its token leaves at once); a ``ttfs`` engine's pass reads ``G``
words like a flat ``lif``'s. With ``streamed=True`` :func:`estimate` follows images back
to back as the benches send them: the next image loads once the encoder has scanned the
last step, and its schedule starts when the decision's result is taken.
``benchmarks/graph_cycles.py --rtl M`` compares the model with simulation (0.2% per image
on the shipped mixers and within 1.6% on the tests' small random graphs before the
encoder-token and empty-phase rules above were added, not measured again on the mixers
since; 0.2% on ``ttfs-tiny``, tests/test_rtl_ttfs.py).
"""

from __future__ import annotations

import numpy as np

from snnfpga.model.graph import SOURCE
from snnfpga.sim.reference import Trace

ENCODER_LATENCY = 3  # cycles from a word's read to its first spike leaving the encoder
ENCODER_DEPTH = 3  # words (with spikes or not) the encoder's pipeline holds while stalled
SCAN_LATENCY = {"lif": 6, "glif": 3, "ttfs": 6}  # cycles from a word's issue to its first event (the update's stages)
SCAN_DEPTH = 4  # words with spikes in the spike FIFO (SpikeSerializer.DEPTH)
IDLE_LATENCY = 3  # cycles from the last row issue to every reader idle and the schedule moving on
ENCODER_IDLE = 2  # the same after the encoder's last event (the pixel coordinates register its events)
EOS_IDLE = 1  # cycles from the end-of-step token (no rows left) to the schedule moving on
DECISION_CYCLES_PER_CLASS = 3
LOAD_LATENCY = 1  # cycles from the last pixel beat to the encoder's first read
EOS_LATENCY = 1  # cycles from the encoder's end-of-step token leaving to its next scan or load


def pass_words(plan, name: str) -> int:
    """Words one neuron pass of engine ``name`` reads (one per cycle): ``lines x G`` of a
    ``lif``, ``H x W x G`` of a ``glif``, ``G`` of a ``ttfs``."""
    if name in plan.ttfs:
        return plan.groups(name)
    if name in plan.lifs:
        return plan.lifs[name].layout.lines * plan.groups(name)
    h, w = plan.artifact.graph.types[name].shape[1:]
    return h * w * plan.groups(name)


def event_work(plan, events: dict[str, np.ndarray]) -> float:
    """Cycles per image of the engines' work alone, without the waits and overlaps of the
    schedule: every event's cost (``emitter_costs``) plus every neuron pass's words.
    ``events``: per emitter, the mean events per image by position (``float [H * W]``, see
    :func:`events_by_position`). Cheap (no pass over images): for comparing lane choices."""
    costs = emitter_costs(plan)
    scatter = sum(float(events[e] @ costs[e]) for e in events)
    passes = plan.artifact.timesteps * sum(pass_words(plan, n.name) for n in plan.artifact.spiking_nodes)
    return scatter + passes


def events_by_position(plan, trace: Trace) -> dict[str, np.ndarray]:
    """Mean events per image of every emitter (``input`` and each spiking node) by position."""
    from snnfpga.rtl.graph_top import event_shape

    graph, n = plan.artifact.graph, len(trace.spikes[0])
    h, w = graph.source.shape[1:]
    out = {SOURCE: trace.spikes[0].reshape(n, -1, h * w).sum(axis=(0, 1)).astype(np.float64) / n}
    for node in plan.artifact.spiking_nodes:
        c, h, w = event_shape(graph, node.name)
        out[node.name] = trace.node_spikes(node.name).reshape(n, -1, c, h * w).sum(axis=(0, 1, 2)) / n
    return out


def emitter_costs(plan) -> dict[str, np.ndarray]:
    """Per emitter (``input`` and each spiking node): ``int [H * W]`` event cost by position
    (1 where nothing reads it)."""
    from snnfpga.rtl.graph_top import event_shape

    graph, edges = plan.artifact.graph, plan.edges
    costs = {}
    for producer in (SOURCE, *(n.name for n in plan.artifact.spiking_nodes)):
        cost = np.ones(event_shape(graph, producer)[1:], np.int64)
        for synapse, _, _ in edges.get(producer, []):
            rows = np.asarray(plan.specs[synapse].rows_per_position(), np.int64)
            cost = np.maximum(cost, rows * plan.groups(synapse))
        costs[producer] = cost.ravel()
    return costs


def _drain(scan: np.ndarray, cost: np.ndarray, last_cost: np.ndarray, waits_for: np.ndarray, scan_end: int,
           latency: int, not_before: int = 0, idle: int = IDLE_LATENCY) -> tuple[int, int]:
    """Cycles of one emitter's phase (until its events are all taken and its readers idle)
    and the cycle its end-of-step token leaves (after its last event, before that event's
    rows are done).

    Per word with spikes, in order: ``scan``, the cycle (from the phase's start) the scan
    reads it (negative: read ahead of the phase, the encoder's look-ahead); ``cost``, the
    sum of its events' costs; ``last_cost``, its last event's; ``waits_for``, the earlier
    word whose last event must have left before the scan reads it (its pipeline is full;
    -1: none). ``scan_end``: the cycle the scan ends without stalls. ``not_before``: the
    earliest cycle the token can leave (the encoder's one-entry output register frees when
    the previous step's token is taken; it may be before the phase, < 0)."""
    leave_last = []
    end = shift = 0
    for j in range(len(scan)):
        offer = int(scan[j]) + shift + latency
        if waits_for[j] >= 0:
            offer = max(offer, leave_last[waits_for[j]] + 1)
        shift = offer - latency - int(scan[j])
        end = max(offer, end) + int(cost[j])
        leave_last.append(end - int(last_cost[j]))
    eos = max(scan_end + shift + latency, leave_last[-1] + 1 if leave_last else not_before, not_before)
    if not leave_last:  # no events: the phase ends with its token (it may be waiting already)
        return max(eos + EOS_IDLE, 1), eos
    return max(end + idle, eos + EOS_IDLE), eos


def _masks(words: np.ndarray, costs: np.ndarray):
    """The step's events grouped by the word they leave from (``words`` in scan order, each
    event's cost ``costs``): ``(word, cost sum, last event's cost)`` per word."""
    if len(words) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, words[1:] != words[:-1]])
    ends = np.r_[starts[1:], len(words)] - 1
    return words[starts], np.add.reduceat(costs, starts), costs[ends]


class _Scan:
    """How one neuron engine visits its map: event order, word of each event, words per pass."""

    def __init__(self, plan, name: str):
        from snnfpga.rtl.graph_top import event_shape

        graph = plan.artifact.graph
        c, h, w = event_shape(graph, name)  # a flat node: (C, 1, 1)
        P, G = plan.node_lanes[name], plan.groups(name)
        if name in plan.lifs:
            lay = plan.lifs[name].layout
            axes = (lay.lane_axis, lay.outer, lay.inner)
        elif name in plan.ttfs:
            axes = ("c", "y", "x")
        else:  # glif: position-major, along its axis
            axes = ("c", "x", "y") if graph.node(name).axis == "h" else ("c", "y", "x")
        sizes = {"c": c, "y": h, "x": w}
        coord = dict(zip("cyx", np.indices((c, h, w))))  # coordinates of every neuron
        lane_axis, outer, inner = axes
        line = coord[outer] * sizes[inner] + coord[inner]
        word = (line * G + coord[lane_axis] // P).ravel()
        self.order = np.lexsort((coord[lane_axis].ravel(), word))  # scan order of the neurons
        self.word = word[self.order]
        self.position = (coord["y"] * w + coord["x"]).ravel()[self.order]
        self.words = sizes[outer] * sizes[inner] * G
        self.latency = SCAN_LATENCY[graph.node(name).KIND]


def estimate(plan, trace: Trace, streamed: bool = False, timeline: list | None = None) -> dict[str, np.ndarray]:
    """Cycles per image, ``int [N]`` each: ``cycles`` (first beat accepted to result valid)
    and its parts: ``encode`` (the encoder's phases), ``neuron`` (the engines' passes as
    if no event had to be scattered), ``integrate`` (the rest of the engines' phases: their
    events' scatter into the readers), ``fixed`` (schedule, clearing, decision and waiting).

    ``trace``: a reference run that kept every spiking node's spikes (``record=True``).
    ``streamed``: the images arrive back to back, as in the benches: the next image loads
    while the last one's engines finish its last step, and its cycles count from its first
    beat (so they include that wait; the first image also waits for the clearing after
    reset); otherwise each image enters an idle accelerator. ``timeline``: a list that
    receives ``(cycle, image, what)`` of the modelled first beats, encoder end-of-step
    tokens, engine starts and results (to compare with a simulation's)."""
    art = plan.artifact
    T, n = art.timesteps, len(trace.spikes[0])
    B, nw = plan.pixels_per_beat, plan.beats_per_image
    costs = emitter_costs(plan)
    engines = [node.name for node in art.spiking_nodes]
    scans = {name: _Scan(plan, name) for name in engines}
    head = plan.head
    clear = max(plan.specs[s].lines * plan.groups(s) for s in plan.specs)
    # After the engines: the head's groups into the scores, CLEAR, the clearing pass.
    step_tail = (plan.groups(head) + 2) + 1 + (clear + 1)
    decision = DECISION_CYCLES_PER_CLASS * art.n_classes
    cycles = np.zeros(n, np.int64)
    encode = np.zeros(n, np.int64)
    integrate = np.zeros(n, np.int64)
    passes = T * sum(sc.words + sc.latency + EOS_IDLE for sc in scans.values())  # engine phases without events
    pixel_word = np.arange(art.n_inputs) // B
    # Absolute cycles: the image's first beat; the schedule back in ENCODE (after a reset, the
    # schedule first clears every buffer and membrane).
    init = max(clear, *(plan.lifs[e].layout.lines * plan.groups(e) for e in plan.lifs),
               *(plan.groups(e) for e in plan.ttfs)) + 2
    # A TTFS encoder fires in window 0 only and does not scan the later steps.
    scanned = [nw if art.encoder.kind != "ttfs" or t < art.encoder.window_steps else 0 for t in range(T)]
    first_beat, fsm_free = 0, init if streamed else 0
    taken = -(1 << 62)  # when the encoder's last end-of-step token was taken
    for i in range(n):
        if not streamed:
            first_beat = fsm_free = 0
            taken = -(1 << 62)
        now = fsm_free  # the encode phase of step 0 begins
        log = timeline.append if timeline is not None else (lambda item: None)
        log((first_beat, i, "first beat"))
        scan_start = first_beat + nw + LOAD_LATENCY  # the encoder begins scanning step 0
        for t in range(T):
            lookahead = now - scan_start  # cycles the encoder has scanned ahead of this phase
            fired = np.flatnonzero(trace.spikes[0][i, t])
            # One cycle per word, one more per extra spike of a word.
            extra = np.cumsum(np.bincount(pixel_word[fired], minlength=nw).clip(min=1) - 1)
            words, cost, last = _masks(pixel_word[fired], costs[SOURCE][fired])
            scan = words + np.r_[0, extra][words] - lookahead
            # The encoder's pipeline holds ENCODER_DEPTH words, with spikes or without.
            waits_for = np.searchsorted(words, words - ENCODER_DEPTH, side="right") - 1
            e, eos = _drain(scan, cost, last, waits_for, scanned[t] + int(extra[-1]) - lookahead,
                            ENCODER_LATENCY if scanned[t] else 0,  # no scan: the token at once
                            taken - now, ENCODER_IDLE)
            encode[i] += e
            taken = now + e  # the token is taken: the encoder's output register is free
            log((now + eos, i, "encoder eos"))
            scan_start = now + eos + EOS_LATENCY  # the encoder's end-of-step token has left: it scans on
            now += e + 1  # ENCODE_DRAIN
            for name, sc in scans.items():
                log((now, i, f"start {name}"))
                hit = np.flatnonzero(trace.node_spikes(name)[i, t].ravel()[sc.order])
                words, csum, clast = _masks(sc.word[hit], costs[name][sc.position[hit]])
                # The spike FIFO holds SCAN_DEPTH words with spikes (empty words are not kept).
                waits_for = np.arange(len(words)) - SCAN_DEPTH
                phase = _drain(words, csum, clast, waits_for, sc.words, sc.latency)[0]
                integrate[i] += phase
                now += 1 + phase  # START, then the phase
            now += step_tail
        cycles[i] = now + decision - first_beat
        log((now + decision, i, "result"))
        # The decision takes the scores when its result is taken: the schedule waits for it.
        first_beat, fsm_free = scan_start, now + decision + 1
    neuron = np.full(n, passes, np.int64)
    return {"cycles": cycles, "encode": encode, "neuron": neuron, "integrate": integrate - neuron,
            "fixed": cycles - encode - integrate}


def cycles_per_image(plan, trace: Trace) -> np.ndarray:
    """The model's latency of each image entering an idle accelerator, ``int [N]``."""
    return estimate(plan, trace)["cycles"]


def describe(plan) -> dict:
    """The formula and its constants, for generated JSON descriptions."""
    return {
        "formula": "NW + 1 + sum_t (E(t) + 1 + sum_e (1 + N_e(t)) + G_head + 2 + 1 + max_s(lines_s x G_s) + 1) "
                   "+ 3 * n_classes",
        "event_cost": "c_e(y, x) = max over readers s of max(1, R_s(y, x) * G_s)",
        "phase": "events leave in scan order, each after the previous one's cost; the scan offers a word "
                 f"{SCAN_LATENCY['lif']} (lif) or {SCAN_LATENCY['glif']} (glif) cycles after reading it and stalls "
                 f"while {SCAN_DEPTH} words wait "
                 f"(encoder: {ENCODER_LATENCY}, {ENCODER_DEPTH})",
        "NW": plan.beats_per_image,
        "n_classes": plan.artifact.n_classes,
        "notes": "Latency of one image entering an idle accelerator (one image at a time). E(t): the "
                 "encoder's phase, N_e(t): engine e's (see rtl/graph_cycles.py).",
    }
