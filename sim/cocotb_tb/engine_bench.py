"""cocotb unit bench of one layer engine (:class:`snnfpga.rtl.engine.LayerEngine` as Verilog).

The input spike trains are those the reference feeds this layer (``spikes[l]`` of
:func:`snnfpga.sim.reference.run`), sent in a random order within each step (the
contract allows any order), each step closed by an end-of-step token, with random gaps.
A LIF engine's output stream is taken with random back-pressure and checked, together
with its monitor port, against ``spikes[l+1]``; an output engine's scores against the
reference scores. Started by :func:`snnfpga.sim.cocotb_sim.simulate_engine`.
"""

from __future__ import annotations

import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, SimTimeoutError, with_timeout

from snnfpga.model.artifact import load_artifact
from snnfpga.sim import reference
from snnfpga.sim.cocotb_tb.driver import StreamDriver, gap_length
from snnfpga.sim.cocotb_tb.job import Job
from snnfpga.sim.cocotb_tb.monitor import EventLog, StreamConsumer
from snnfpga.sim.scoreboard import compare

POLL_CYCLES = 64
MAX_REPORTED = 20


def input_tokens(spikes: np.ndarray, addr_bits: int, rng: random.Random) -> list[int]:
    """Tokens of ``bool [N, T, n_in]`` spike trains: the addresses of each step in a random
    order, then the end-of-step token (bit ``addr_bits``)."""
    tokens = []
    eos = 1 << addr_bits
    for image in spikes:
        for step in image:
            addrs = [int(a) for a in np.nonzero(step)[0]]
            rng.shuffle(addrs)
            tokens += addrs + [eos]
    return tokens


async def random_ready(clk, ready, stall: float, rng: random.Random):
    """Hold ``ready`` low with probability ``stall``, high otherwise, in random stretches."""
    while True:
        ready.value = 0 if rng.random() < stall else 1
        await ClockCycles(clk, 1 + gap_length(rng, 0.7), rising=False)


def decode_scores(word: int, fields: list[tuple[int, int]]) -> list[int]:
    out = []
    for lsb, width in fields:
        v = (word >> lsb) & ((1 << width) - 1)
        out.append(v - (1 << width) if v >> (width - 1) else v)
    return out


@cocotb.test()
async def engine_matches_the_reference(dut):
    """Run the job's spike trains through the engine; compare every output spike or score."""
    started = time.time()
    job = Job.load()
    art = load_artifact(job.artifact)
    with np.load(job.images) as archive:
        images = archive["images"]
    model = reference.run(art, images)
    index, T, n = job.layer, art.timesteps, len(images)
    layer = art.layers[index]
    lif = not layer.is_output  # emits spikes (else: scores, a spiking output's included)
    rng = random.Random(job.seed)
    tokens = input_tokens(model.spikes[index], job.extra["in_bits"], rng)

    dut.rst.value = 1
    driver = StreamDriver(dut.clk, dut.inp__payload, dut.inp__valid, dut.inp__ready, gaps=job.gaps,
                          rng=random.Random(rng.random()))
    Clock(dut.clk, job.clock_ns, unit="ns").start()
    await ClockCycles(dut.clk, 3, rising=False)
    dut.rst.value = 0
    log = EventLog(job.log, [layer.n_out, layer.n_out] if lif else [], T, n)
    cocotb.start_soon(driver.send(tokens))
    scores = np.zeros((n, art.n_classes if not lif else 1), dtype=np.int64)
    errors: list[str] = []
    limit = job.max_cycles_per_image
    if lif:
        dut.out__ready.value = 1
        cocotb.start_soon(random_ready(dut.clk, dut.out__ready, job.stall, random.Random(rng.random())))
        waited = 0
        while log.position[1][0] < n and not log.errors:
            await ClockCycles(dut.clk, POLL_CYCLES, rising=False)
            log.drain()
            waited += POLL_CYCLES
            if waited > limit * n:
                errors.append(f"engine stalled: {log.position[1][0]} of {n} images out after {waited} cycles")
                break
    else:
        consumer = StreamConsumer(dut.clk, dut.scores__payload, dut.scores__valid, dut.scores__ready,
                                  stall=job.stall, rng=random.Random(rng.random()))
        for k in range(n):
            try:
                word = await with_timeout(consumer.receive(), limit * job.clock_ns, "ns")
            except SimTimeoutError:
                errors.append(f"no scores for image {k} within {limit} cycles")
                break
            scores[k] = decode_scores(word, job.extra["score_fields"])
    log.drain()
    log.close()
    errors += log.errors

    upstream = [s.copy() for s in model.spikes[:index + 1]]  # what the engine was fed
    if lif:
        expected = reference.Trace(upstream + [model.spikes[index + 1]], np.zeros((n, 1), np.int64),
                                   np.zeros(n, np.int64))
        got = reference.Trace(upstream + [log.spikes[1]], np.zeros((n, 1), np.int64), np.zeros(n, np.int64))
        for k, step, neuron in zip(*np.nonzero(log.spikes[0] != log.spikes[1])):
            errors.append(f"image {k}, step {step}: monitor shows {log.spikes[0][k, step, neuron]} spikes of "
                          f"neuron {neuron}, the output stream {log.spikes[1][k, step, neuron]}")
            break
    else:
        expected = model
        got = reference.Trace(upstream, scores, np.argmax(scores, axis=1))
    found = compare(expected, got)
    mismatched = sorted({m.image for m in found})
    job.finish(n=n, mismatched=mismatched, mismatches=[str(m) for m in found[:MAX_REPORTED]], errors=errors,
               cycles_mean=None, total_cycles=0, sim_wall_s=time.time() - started,
               arrays=dict(scores=scores, **({"spikes": log.spikes[1]} if lif else {})))
    assert not errors, errors[0]
    assert not found, str(found[0])
