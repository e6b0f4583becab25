"""The accelerator behind its register block: what a processor or bridge talks to.

``AcceleratorSystem`` = :class:`~snnfpga.rtl.csr.RegisterBlock` + the plan's accelerator
(:class:`~snnfpga.rtl.top.Accelerator` for a chain,
:class:`~snnfpga.rtl.graph_top.GraphAccelerator` for a layer graph: the same streams, soft
reset and counters, so the register block, the board shell and the firmware are the same).
Its only ports are the clock, the reset, the Wishbone bus and the interrupt, so it is the
top level that firmware drives and that the FPGA implementations place and route.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from snnfpga.firmware import regmap as R
from snnfpga.rtl.csr import RegisterBlock, check_mappable
from snnfpga.rtl.wishbone import wishbone_signature


class AcceleratorSystem(wiring.Component):
    """Members
    -------
    bus : ``In(wishbone_signature(regmap.ADDRESS_BITS))``
        Wishbone B4 classic slave, 32-bit, word addressed (see :mod:`snnfpga.firmware.regmap`).
    irq : ``Out(1)``
        Result available and interrupt enabled.
    """

    def __init__(self, plan):
        check_mappable(plan)
        self.plan = plan
        super().__init__({"bus": In(wishbone_signature(R.ADDRESS_BITS)), "irq": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.regs = regs = RegisterBlock(self.plan)
        m.submodules.core = core = self.plan.accelerator()
        wiring.connect(m, wiring.flipped(self.bus), regs.bus)
        wiring.connect(m, regs.pixels, core.pixels)
        wiring.connect(m, core.result, regs.result)
        wiring.connect(m, core.counters, regs.counters)
        m.d.comb += [self.irq.eq(regs.irq), core.soft_reset.eq(regs.soft_reset)]
        if self.plan.weight_storage == "ram":
            wiring.connect(m, regs.weights, core.weights)
        return m
