"""One module per ``snnfpga`` sub-command (see :mod:`snnfpga.cli`)."""
