"""Top level: encoder -> layer engines -> decision, with counters and spike monitors.

Dataflow (one FIFO of spike tokens between consecutive stages)::

    pixels -> InputEncoder -> FIFO -> LayerEngine 1 -> FIFO -> ... -> LayerEngine L (output)
           -> ArgmaxDecision -> result

Each stage works through the time steps of an image independently, so layer ``l`` can
work on step ``t`` while layer ``l-1`` works on step ``t+1`` and the encoder already
loads the next image once it has scanned the last step of the current one.
"""

from __future__ import annotations

from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from snnfpga.rtl.decision import ArgmaxDecision, result_layout
from snnfpga.rtl.encoder import InputEncoder
from snnfpga.rtl.engine import LayerEngine
from snnfpga.rtl.plan import Plan, bits_for
from snnfpga.rtl.tokens import counters_layout, monitor_signature, route_weight_load, weight_port_signature

COUNTER_BITS = 32
# Images whose start time the cycle counter can hold at once (encoder, engines, result).
IMAGES_IN_FLIGHT = 4


def counters_signature(plan) -> wiring.Signature:
    """Read-only counters: ``cycles`` (first beat accepted to result valid, last image),
    ``images`` (results delivered since reset), ``spikes`` (per spiking stage, last image:
    field ``stage0`` the encoder, ``stage{s}`` the ``s``-th of ``plan.stage_names``)."""
    return wiring.Signature({
        "cycles": Out(COUNTER_BITS),
        "images": Out(COUNTER_BITS),
        "spikes": Out(counters_layout(plan.n_stages, COUNTER_BITS, "stage")),
    })


def count_images(m: Module, counters, encoder: InputEncoder, decision: ArgmaxDecision, monitors, timesteps: int):
    """Drive ``counters`` (:func:`counters_signature`) from the encoder's image starts, the
    decision's results and the stages' spike ``monitors`` (``valid``, ``eos``, ``step``).
    Holds the encoder while :data:`IMAGES_IN_FLIGHT` images are in flight."""
    now = Signal(COUNTER_BITS)
    m.d.sync += now.eq(now + 1)
    starts = SyncFIFOBuffered(width=COUNTER_BITS, depth=IMAGES_IN_FLIGHT)
    m.submodules.start_times = starts
    # The start time enters the FIFO one cycle later (registered: keeps the pixel handshake
    # off the FIFO's enables); image starts are many cycles apart, so ``hold`` stays exact.
    start_seen = Signal()
    start_time = Signal(COUNTER_BITS)
    m.d.sync += [start_seen.eq(encoder.image_start), start_time.eq(now)]
    m.d.comb += [
        starts.w_data.eq(start_time), starts.w_en.eq(start_seen),
        encoder.hold.eq(~starts.w_rdy),
        starts.r_en.eq(decision.done),
    ]
    with m.If(decision.done):
        m.d.sync += [counters.cycles.eq(now - starts.r_data), counters.images.eq(counters.images + 1)]
    for stage, mon in enumerate(monitors):
        running = Signal(COUNTER_BITS, name=f"spikes_running{stage}")
        # Count from registered strobes (one cycle late): keeps the counters' enables off
        # the token handshakes.
        spike_seen = Signal(name=f"spike_seen{stage}")
        image_end = Signal(name=f"image_end{stage}")
        m.d.sync += [spike_seen.eq(mon.valid), image_end.eq(mon.eos & (mon.step == timesteps - 1))]
        with m.If(image_end):
            m.d.sync += [counters.spikes[f"stage{stage}"].eq(running), running.eq(0)]
        with m.Elif(spike_seen):
            m.d.sync += running.eq(running + 1)


def _fifo_between(m, name, producer, consumer, width, depth):
    fifo = SyncFIFOBuffered(width=width, depth=depth)
    m.submodules[name] = fifo
    m.d.comb += [
        fifo.w_data.eq(producer.payload), fifo.w_en.eq(producer.valid), producer.ready.eq(fifo.w_rdy),
        consumer.payload.eq(fifo.r_data), consumer.valid.eq(fifo.r_rdy), fifo.r_en.eq(consumer.ready),
    ]
    return fifo


class Accelerator(wiring.Component):
    """The multiplication-free spiking MLP accelerator generated from one artifact.

    Members
    -------
    pixels : ``In(stream.Signature(8 * B))``
        Pixel beats, ``B`` pixels per beat, pixel ``k`` of a beat in bits ``[8k, 8k+8)``;
        ``ceil(n_inputs / B)`` beats per image, row-major; no framing signal.
    result : ``Out(stream.Signature(StructLayout({"cls", "scores"})))``
        One result per image, in order: class (lowest index on ties) and all scores.
    soft_reset : ``In(1)``
        Synchronous reset of all state (an image in flight is abandoned).
    counters : ``Out(counters_signature)``
    weights : ``In(weight_port_signature)`` (weight storage ``ram``)
        ``{layer, addr, data}`` writes into the weight memories; ``ready`` is always high (one
        write per cycle); only while no image is in flight. Word layout and addresses as in
        :mod:`snnfpga.rtl.plan`.
    mon0 .. mon{L-1} : ``Out(monitor_signature)``
        Spikes of the encoder (``mon0``) and of each hidden layer, for verification.
    """

    def __init__(self, plan: Plan):
        self.plan = plan
        art = plan.artifact
        members = {
            "pixels": In(stream.Signature(8 * plan.pixels_per_beat)),
            "result": Out(stream.Signature(result_layout(plan))),
            "soft_reset": In(1),
            "counters": Out(counters_signature(plan)),
        }
        if plan.weight_storage == "ram":
            members["weights"] = In(weight_port_signature(plan))
        step_bits = bits_for(art.timesteps)
        for stage, n in enumerate(art.sizes[:-1]):
            members[f"mon{stage}"] = Out(monitor_signature(bits_for(n), step_bits))
        super().__init__(members)

    def elaborate(self, platform):
        plan = self.plan
        art = plan.artifact
        m = Module()
        m.submodules.encoder = encoder = InputEncoder(plan)
        engines = []
        for lp in plan.layers:
            engine = LayerEngine(lp, art.timesteps, plan.weight_storage)
            m.submodules[f"engine{lp.index}"] = engine
            engines.append(engine)
            if plan.weight_storage == "ram":
                route_weight_load(m, self.weights, lp.index, engine.load)
        m.submodules.decision = decision = ArgmaxDecision(plan)

        wiring.connect(m, wiring.flipped(self.pixels), encoder.pixels)
        producers = [encoder.spikes] + [e.out for e in engines[:-1]]
        for stage, (producer, engine) in enumerate(zip(producers, engines)):
            _fifo_between(m, f"fifo{stage}", producer, engine.inp, len(producer.payload.as_value()),
                          plan.fifo_depth)
        wiring.connect(m, engines[-1].scores, decision.scores)
        wiring.connect(m, decision.result, wiring.flipped(self.result))

        monitors = [encoder.monitor] + [e.monitor for e in engines[:-1]]
        for stage, mon in enumerate(monitors):
            wiring.connect(m, mon, wiring.flipped(getattr(self, f"mon{stage}")))

        count_images(m, self.counters, encoder, decision, monitors, art.timesteps)
        return ResetInserter(self.soft_reset)(m)
