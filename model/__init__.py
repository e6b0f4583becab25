"""Data, training (Brevitas QAT), folding and export of the integer artifact."""
