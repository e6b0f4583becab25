"""The shipped default model is multiplier-free after synthesis for both FPGA families."""

from snnfpga.model.artifact import load_artifact
from snnfpga.rtl.generate import write_verilog
from snnfpga.rtl.plan import make_plan
from snnfpga.rtl.targets import get_target
from snnfpga.rtl.toolchain import multiplier_report

ECP5_LANES = get_target("ecp5-85k").lanes  # 64
UP5K_LANES = get_target("ice40-up5k").lanes  # 8: 8 x 4-bit weights in two 16-bit SPRAMs
ECP5_BANK_DEPTH = get_target("ecp5-85k").rom_bank_depth


def test_default_model_synthesizes_without_multipliers(tmp_path):
    """Generic coarse synthesis and synth_ecp5 of the ECP5 build (weights in ROM banks),
    synth_ice40 -dsp -spram of the UP5K build (weights loaded at run time): no $mul/$macc, no
    DSP cell."""
    default_model = load_artifact("default")
    ecp5_plan = make_plan(default_model, lanes=ECP5_LANES, rom_bank_depth=ECP5_BANK_DEPTH)
    write_verilog(ecp5_plan, tmp_path / "ecp5", top="snn_top")
    write_verilog(make_plan(default_model, lanes=UP5K_LANES, pixels_per_beat=1, weight_storage="ram"),
                  tmp_path / "ice40", top="snn_top")
    ecp5 = multiplier_report(tmp_path / "ecp5" / "snn_top.v", "snn_top", families=("ecp5",))
    ice40 = multiplier_report(tmp_path / "ice40" / "snn_top.v", "snn_top", families=("ice40",),
                              runtime_weights=True, coarse=False)
    assert ecp5 == {"coarse": {}, "ecp5": {}} and ice40 == {"ice40": {}}
