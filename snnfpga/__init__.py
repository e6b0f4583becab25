"""snnfpga: spiking MLPs from PyTorch to bit-exact, multiplication-free FPGA Verilog.

Stages (each reads only the previous stage's artifact):

* :mod:`snnfpga.model` -- data, training (Brevitas QAT), folding, export of the integer artifact;
* :mod:`snnfpga.sim` -- the numpy integer reference (the executable specification) and the
  cocotb testbenches;
* :mod:`snnfpga.rtl` -- the Amaranth generator of the multiplication-free LIF array.
"""

__version__ = "0.1.0"
