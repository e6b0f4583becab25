"""The shipped default model through the generator: bit-exact in Amaranth's simulator on 50
validation images (its synthesis check is in test_rtl_default_synth.py, a file of its own so
that a second test worker takes it)."""

import pytest

from snnfpga.model.artifact import load_artifact
from snnfpga.model.data import load_dataset
from snnfpga.rtl.plan import make_plan
from snnfpga.rtl.targets import get_target
from snnfpga.sim import amaranth_sim, reference
from snnfpga.sim.scoreboard import compare

ECP5_LANES = get_target("ecp5-85k").lanes  # 64
ECP5_BANK_DEPTH = get_target("ecp5-85k").rom_bank_depth


@pytest.fixture(scope="module")
def default_model():
    return load_artifact("default")


@pytest.mark.parametrize("first, bank_depth", [(0, None), (25, ECP5_BANK_DEPTH)])
def test_default_model_is_bit_exact_on_validation_images(default_model, first, bank_depth):
    """Images first..first+24 of the validation split (two halves: 50 images in all); the second
    half with the weight ROM in banks as ``snnfpga synth --target ecp5-85k`` builds it."""
    images = load_dataset("default").split("val").images[first:first + 25]
    plan = make_plan(default_model, lanes=ECP5_LANES, rom_bank_depth=bank_depth)
    assert plan.layers[0].weight_banks == (1 if bank_depth is None else 4)
    run = amaranth_sim.simulate(plan, images)
    mismatches = compare(reference.run(default_model, images), run.trace, image_offset=first)
    assert not mismatches, "\n".join(map(str, mismatches[:10]))
    assert (run.counter_cycles > 0).all()
