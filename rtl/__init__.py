"""Amaranth 0.5 generator of the multiplication-free, event-driven LIF array accelerator."""
