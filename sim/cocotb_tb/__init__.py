"""cocotb 2.x testbenches of the generated Verilog (run through :mod:`snnfpga.sim.runner`).

* :mod:`.wrapper` writes the simulation-only Verilog shell around a design under test: it
  logs every monitored spike and end-of-step strobe to a file, so Python never has to
  look at every clock edge;
* :mod:`.driver` (input streams with random gaps), :mod:`.monitor` (result streams with
  random back-pressure, the spike-event log), :mod:`.job` (what the host hands to a bench
  and what comes back);
* :mod:`.bench` (the whole accelerator) and :mod:`.engine_bench` (one layer engine) are
  the cocotb test modules.
"""
