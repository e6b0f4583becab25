"""Register map, generated C header and C driver of the accelerator."""
