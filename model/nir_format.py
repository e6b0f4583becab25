"""How snnfpga writes a model as NIR and reads it back: one place for the conventions.

NIR (the Neuromorphic Intermediate Representation, ``pip install snnfpga[nir]``) describes
a network in continuous time and stores no time step; snnfpga's graphs are written with
``dt = 1`` (one time step = 1 s of NIR time), so that Euler integration of the NIR
equations with that step gives the integer contract's updates:

* a hidden layer ``i`` (name ``n``): node ``n.affine``, ``nir.Affine(W, b)`` (the integer
  weights and bias as floats), then node ``n``: with a leak ``u - (u >> k)`` a
  ``nir.LIF(tau = 2^k, r = 2^k, v_leak = 0, v_threshold = theta)`` (Euler:
  ``v + (dt / tau)(v_leak - v + r I) = (1 - 2^-k) v + I``; the integer leak floors; a leak of
  two terms ``u - (u >> k) - (u >> k2)``: ``tau = r = 1 / (2^-k + 2^-k2)``), without
  one a ``nir.IF(r = 1, v_threshold = theta)``; ``v_reset = 0``. NIR has no subtract reset:
  the node's metadata says which reset (``zero`` or ``subtract``) and the fire comparison
  (``>=``);
* the output layer: ``n.affine`` and ``n``, ``nir.I(r = 1)`` (the scores integrate the
  current, no leak); a spiking output (``lif_output``: decided by spike count, ties by
  membrane) is a ``LIF`` or ``IF`` as a hidden layer's, its metadata's ``readout`` saying so;
* ``input`` (``nir.Input``, the encoder's spikes, one per pixel) and ``output``
  (``nir.Output``, the scores).

The graph's metadata holds the whole integer contract (:data:`MANIFEST_KEY`: the model's
manifest as JSON, widths, encoder, T, reset semantics), so that an exported model imports
back to the identical artifact (:mod:`snnfpga.model.nir_import`).
"""

from __future__ import annotations

from snnfpga.errors import ConfigError

MANIFEST_KEY = "snnfpga_manifest"  # graph metadata: the artifact's manifest.json, as a string
CONVENTION_KEY = "snnfpga_convention"  # graph metadata: how parameters map to integers
CONVENTION = "snnfpga: dt = 1 (one step), Euler; Affine holds integer weights; LIF tau = r = 2^leak_shift"
DT = 1.0
AFFINE_SUFFIX = ".affine"


def leak_tau(shift: int, shift2: int | None = None) -> float:
    """NIR's ``tau`` (and ``r``) of the leak ``v - (v >> k) [- (v >> k2)]`` at ``dt = 1``:
    ``1 - 1 / tau = 1 - 2^-k [- 2^-k2]``."""
    return 1.0 / (2.0 ** -shift + (0.0 if shift2 is None else 2.0 ** -shift2))
COUNT_READOUT = "spike count, ties by membrane"  # a spiking output's metadata["readout"]


def require_nir():
    """The ``nir`` module, or :class:`ConfigError` saying how to install it."""
    try:
        import nir
    except ModuleNotFoundError:
        raise ConfigError("NIR support needs the nir package: pip install 'snnfpga[nir]'") from None
    return nir


def golden_path(path) -> str:
    """Where the golden traces of the NIR file ``path`` go: ``NAME.golden.nir`` beside it."""
    from pathlib import Path

    path = Path(path)
    stem = path.name[:-len(".nir")] if path.name.endswith(".nir") else path.name
    return str(path.with_name(f"{stem}.golden.nir"))
