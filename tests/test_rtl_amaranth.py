"""The Amaranth design in Amaranth's simulator, bit-exact against the integer reference.

Every spike of every stage at every step, every score and every class must be equal;
streams must lose, duplicate or reorder nothing under random gaps and back-pressure.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnfpga.errors import MappingError
from snnfpga.model.synthetic import random_artifact, random_images
from snnfpga.rtl.plan import make_plan
from snnfpga.sim import amaranth_sim, reference
from snnfpga.sim.scoreboard import compare


def assert_bit_exact(art, images, **kwargs):
    lanes = kwargs.pop("lanes", 4)
    beat = kwargs.pop("pixels_per_beat", 4)
    storage = kwargs.pop("weight_storage", "rom")
    banks = kwargs.pop("rom_bank_depth", None)
    plan = make_plan(art, lanes=lanes, pixels_per_beat=beat, weight_storage=storage, rom_bank_depth=banks)
    run = amaranth_sim.simulate(plan, images, **kwargs)
    mismatches = compare(reference.run(art, images), run.trace)
    assert not mismatches, "\n".join(map(str, mismatches[:10]))
    return run


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), hidden=st.lists(st.integers(1, 11), min_size=0, max_size=2),
       classes=st.integers(1, 5), lanes=st.integers(1, 6), beat=st.sampled_from([1, 2, 4, 8]),
       shape=st.sampled_from([(3, 3), (4, 5), (2, 8)]), narrow=st.booleans(), extreme=st.booleans(),
       stalls=st.booleans(), banks=st.sampled_from([None, 2, 8]))
def test_random_artifacts_are_bit_exact(seed, hidden, classes, lanes, beat, shape, narrow, extreme, stalls, banks):
    art = random_artifact(seed, input_shape=shape, hidden=tuple(hidden), n_classes=classes,
                          membrane_bits=5 if narrow else None, extreme=extreme,
                          threshold_scale=0.3)
    images = random_images(art, 3, seed=seed)
    assert_bit_exact(art, images, lanes=lanes, pixels_per_beat=beat, seed=seed, rom_bank_depth=banks,
                     input_gaps=0.3 if stalls else 0.0, output_stall=0.5 if stalls else 0.0)


@pytest.mark.parametrize("weight_bits", [2, 8])
@pytest.mark.parametrize("leak_shift", [None, 1, 3])
@pytest.mark.parametrize("reset", ["zero", "subtract", "subtract_next"])
@pytest.mark.parametrize("fire", [">=", ">"])
def test_contract_corners(weight_bits, leak_shift, reset, fire):
    """Every reset mode (snnTorch's subtract_next too), leak on/off, both fire comparisons,
    the extreme weight widths, saturating membranes."""
    art = random_artifact(weight_bits * 10 + (leak_shift or 0), input_shape=(4, 4), hidden=(7, 5),
                          n_classes=3, weight_bits=weight_bits, leak_shift=leak_shift, reset=reset,
                          extreme=True, membrane_bits=6, timesteps=5, threshold_scale=0.2, fire=fire)
    assert art.saturates(0) or art.saturates(1)
    assert_bit_exact(art, random_images(art, 3, seed=1), lanes=3)


def test_streams_with_gaps_and_backpressure_lose_nothing():
    """Back-to-back images under heavy random gaps and back-pressure arrive complete and in order."""
    art = random_artifact(11, input_shape=(4, 4), hidden=(9,), n_classes=4, threshold_scale=0.2)
    images = random_images(art, 8, seed=2)
    run = assert_bit_exact(art, images, lanes=2, input_gaps=0.5, output_stall=0.7, seed=5)
    assert len(run.trace.classes) == 8


def test_soft_reset_in_the_middle_of_an_image_recovers():
    art = random_artifact(12, input_shape=(4, 4), hidden=(6,), n_classes=3, threshold_scale=0.2)
    images = random_images(art, 3, seed=3)
    assert_bit_exact(art, images, lanes=4, pixels_per_beat=2, abandon_beats=5)


def test_counters_report_cycles_and_spikes_per_layer():
    art = random_artifact(13, input_shape=(4, 4), hidden=(8, 6), n_classes=3, threshold_scale=0.2)
    images = random_images(art, 4, seed=4)
    run = assert_bit_exact(art, images, lanes=3, serial=True)
    ref = reference.run(art, images)
    assert np.array_equal(run.counter_cycles, run.cycles)
    expected_spikes = np.stack(ref.spike_counts(), axis=1)
    assert np.array_equal(run.counter_spikes, expected_spikes)
    assert (run.cycles > 0).all()


@pytest.mark.parametrize("seed, hidden, lanes, beat, steps", [(1, (20,), 4, 4, 4), (2, (33, 17), 5, 2, 3),
                                                             (4, (40,), 3, 4, 5), (5, (64,), 16, 1, 4)])
def test_cycle_model_predicts_the_latency_of_one_image(seed, hidden, lanes, beat, steps):
    """rtl/cycle_model.py against the cycles measured for images entering an idle design
    (about 1% on MNIST-sized models, see docs/hardware.md; small ones within 10% + 10 cycles)."""
    from snnfpga.rtl import cycle_model

    art = random_artifact(seed, input_shape=(6, 6), hidden=hidden, n_classes=5, timesteps=steps, threshold_scale=0.3)
    images = random_images(art, 3, seed=seed)
    run = assert_bit_exact(art, images, lanes=lanes, pixels_per_beat=beat, serial=True)
    model = cycle_model.estimate(make_plan(art, lanes=lanes, pixels_per_beat=beat), reference.run(art, images))
    assert (np.abs(run.cycles - model["pipelined"]) <= 0.1 * run.cycles + 10).all(), (run.cycles, model)
    assert (model["pipelined"] <= model["sequential"]).all()


def test_banked_weight_rom_has_registered_banks_and_stays_exact():
    """Weight ROM split into banks (a partial last bank, one bank, no banks): same integers."""
    art = random_artifact(17, input_shape=(5, 5), hidden=(9, 6), n_classes=4, threshold_scale=0.3)
    images = random_images(art, 3, seed=17)
    for depth in (4, 16, 64, 1024):
        plan = make_plan(art, lanes=4, rom_bank_depth=depth)
        assert [lp.weight_banks for lp in plan.layers] == [-(-lp.weight_depth // depth) if lp.weight_depth > depth
                                                            else 1 for lp in plan.layers]
        assert_bit_exact(art, images, lanes=4, rom_bank_depth=depth, input_gaps=0.2, output_stall=0.3)
    assert make_plan(art, lanes=4, rom_bank_depth=4, weight_storage="ram").layers[0].weight_banks == 1
    with pytest.raises(MappingError, match="power of two"):
        make_plan(art, lanes=4, rom_bank_depth=12)


@pytest.mark.parametrize("lanes", [1, 3, 16])
def test_weights_loaded_at_run_time_are_bit_exact(lanes):
    """Weight storage ``ram``: the memories start empty and are written through the weights port."""
    art = random_artifact(14 + lanes, input_shape=(4, 4), hidden=(9,), n_classes=3, threshold_scale=0.2)
    assert_bit_exact(art, random_images(art, 3, seed=6), lanes=lanes, weight_storage="ram", output_stall=0.3)


def test_unmappable_parameters_are_rejected():
    art = random_artifact(1)
    with pytest.raises(MappingError, match="lanes"):
        make_plan(art, lanes=0)
    with pytest.raises(MappingError, match=r"lanes must be an integer in 1\.\.512, got 513"):
        make_plan(art, lanes=513)
    assert make_plan(art, lanes=512).layers[0].lanes == art.layers[0].n_out  # clamped to the layer
    with pytest.raises(MappingError, match="pixels per beat"):
        make_plan(art, pixels_per_beat=3)
    with pytest.raises(MappingError, match="weight storage"):
        make_plan(art, weight_storage="flash")


@pytest.mark.parametrize("width", [1, 2, 3, 5, 13, 64])
def test_lowest_set_bit_finds_the_lowest_index(width):
    """The serializers' priority encoder (a tree, rtl/tokens.py) against ``v & -v``."""
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    from snnfpga.rtl.tokens import lowest_set_bit

    m = Module()
    mask = Signal(width)
    index = lowest_set_bit(m, mask, "index")
    rng = np.random.default_rng(width)
    values = list(range(min(1 << width, 256))) + [int(v) for v in rng.integers(0, 1 << min(width, 62), 200)]
    values += [1 << (width - 1), (1 << width) - 1]

    async def bench(ctx):
        for v in values:
            ctx.set(mask, v)
            assert ctx.get(index) == (0 if v == 0 else (v & -v).bit_length() - 1), v

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
