"""The shipped default model through the generator: bit-exact in Amaranth's simulator on 50
validation images, and multiplier-free after synthesis for both FPGA families."""

import pytest

from snnfpga.model.artifact import load_artifact
from snnfpga.model.data import load_dataset
from snnfpga.rtl.generate import write_verilog
from snnfpga.rtl.plan import make_plan
from snnfpga.rtl.targets import get_target
from snnfpga.rtl.toolchain import multiplier_report
from snnfpga.sim import amaranth_sim, reference
from snnfpga.sim.scoreboard import compare

ECP5_LANES = get_target("ecp5-85k").lanes  # 64
UP5K_LANES = get_target("ice40-up5k").lanes  # 8: 8 x 4-bit weights in two 16-bit SPRAMs
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


def test_default_model_synthesizes_without_multipliers(default_model, tmp_path):
    """Generic coarse synthesis and synth_ecp5 of the ECP5 build (weights in ROM banks),
    synth_ice40 -dsp -spram of the UP5K build (weights loaded at run time): no $mul/$macc, no
    DSP cell."""
    ecp5_plan = make_plan(default_model, lanes=ECP5_LANES, rom_bank_depth=ECP5_BANK_DEPTH)
    write_verilog(ecp5_plan, tmp_path / "ecp5", top="snn_top")
    write_verilog(make_plan(default_model, lanes=UP5K_LANES, pixels_per_beat=1, weight_storage="ram"),
                  tmp_path / "ice40", top="snn_top")
    ecp5 = multiplier_report(tmp_path / "ecp5" / "snn_top.v", "snn_top", families=("ecp5",))
    ice40 = multiplier_report(tmp_path / "ice40" / "snn_top.v", "snn_top", families=("ice40",),
                              runtime_weights=True, coarse=False)
    assert ecp5 == {"coarse": {}, "ecp5": {}} and ice40 == {"ice40": {}}
