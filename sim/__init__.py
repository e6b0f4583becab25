"""The integer reference (executable specification) and the cocotb testbenches."""
