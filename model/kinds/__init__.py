"""The node kinds of the integer contract, version 2, in one registry (:data:`KINDS`).

Importing this package registers every kind; each lives in its own module with its
semantics, width proof, reference and cost (see :mod:`snnfpga.model.kinds.base`):

| kind | module | reads | emits |
| --- | --- | --- | --- |
| ``dense`` | dense | events, any shape (flattened) | current ``(n,)`` |
| ``conv`` | conv | event map | current map |
| ``axial`` | axial | event map | current map |
| ``pointwise`` | pointwise | event maps (joined by channel) | current map |
| ``lif`` | lif | currents (summed) | spikes |
| ``glif`` | glif | current map | spikes |
| ``output`` | output | flat currents (summed) | scores |
| ``lif_output`` | lif_output | flat currents (summed) | scores (spike count, then membrane) |
| ``ttfs`` | ttfs | TTFS spikes of window n (flattened) | TTFS spikes of window n + 1 |
| ``ttfs_output`` | ttfs | TTFS spikes of the last window | scores |
| ``add``, ``concat``, ``pool``, ``flatten`` | structure | see there | |
"""

from snnfpga.model.kinds.base import (KINDS, MAX_REGISTER_BITS, WEIGHT_BITS_RANGE, Bound, Node,  # noqa: F401
                                      NodeError, Proof, Synapse, TensorType, Window, register)
from snnfpga.model.kinds import axial, conv, dense, glif, lif, lif_output, output, pointwise, structure, ttfs  # noqa: F401

Dense = dense.Dense
Conv = conv.Conv
Axial = axial.Axial
Pointwise = pointwise.Pointwise
Lif = lif.Lif
Glif = glif.Glif
Output = output.Output
LifOutput = lif_output.LifOutput
Add = structure.Add
Concat = structure.Concat
Pool = structure.Pool
Flatten = structure.Flatten
Ttfs = ttfs.Ttfs
TtfsOutput = ttfs.TtfsOutput
