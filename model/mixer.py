"""The spiking MLP-Mixer of the seed papers, as a graph of training nodes.

Follows EMI-Group/mixer-snn (``sMLPNet``; ``../shared/SEEDS.md`` sections 1.4-1.7, 4.3) on
spikes, and SNN-MLP's group LIF as an alternative token mixer (section 4.4). With ``C``
channels on an ``H x W`` map, per time step:

* stem: ``h = BN(conv_k,s,p(input spikes))``, ``x = LIF(h)``; ``h`` is the stage current;
* token block: ``x_h = LIF(BN_H(axial_H(x)))``, ``x_w = LIF(BN_W(axial_W(x)))``
  (``token_mixer = "glif"``: ``I = BN(pointwise(x))``, ``x_h = GLIF_H(I)``, ``x_w = GLIF_W(I)``),
  ``F = BN(pointwise([x; x_h; x_w]))``, ``x_tok = LIF(h + F)``;
* channel block: ``x_hid = LIF(BN(pointwise_{C -> rC}(x_tok)))``,
  ``Q = BN(pointwise_{rC -> C}(x_hid))``, ``x = LIF(h + F + Q)``: skips add currents, and
  every block of a stage adds the same stage current ``h``;
* spiking patch encoding between stages (``C_in -> 3n``, map halved): ``c1, c2, c3`` are
  3x3 stride-2 convs of ``x``, ``c12``, ``c23`` 3x3 stride-1 convs;
  ``n1 = LIF(c1)``, ``n2 = LIF(c2 + c12(n1))``, ``n3 = LIF(c3 + c1 + c23(n2))`` (node 1
  enters node 3 as a current, the seed's identity edge); the next stage's
  ``h = concat(c1, c2 + c12, c3 + c1 + c23)`` and ``x = concat(n1, n2, n3)``;
* head: global spike-count pooling, one linear layer (per-tensor weight scale, bias),
  scores summed over ``T``.

Deviation from the seed: the channel block's BatchNorm is per channel (the seed's is per
token, which cannot fold into weights shared over positions). The stage's currents
(stem or patch-encoding convs, every block's ``F`` and ``Q``) share one integer unit
``s<i>``, so that their sum into a neuron is exact (:mod:`snnfpga.model.trainable`).
"""

from __future__ import annotations

from snnfpga.model.config import TrainConfig
from snnfpga.model.trainable import (QatGraph, TrainAdd, TrainAxial, TrainConcat, TrainConv, TrainDense,
                                     TrainGlif, TrainLif, TrainOutput, TrainPointwise, TrainPool)


def conv_out(n: int, kernel: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


def mixer_nodes(c: TrainConfig, input_shape: tuple[int, int], n_classes: int) -> list:
    """The training nodes of the mixer described by ``c`` (see the module docstring)."""
    bits, alpha = c.weight_bits, c.surrogate_alpha
    nodes = []

    def lif(name, inputs):
        nodes.append(TrainLif(name, inputs, c.leak_shift, c.reset, alpha))
        return name

    k, s, p = c.stem
    h, w = (conv_out(n, k, s, p) for n in input_shape)
    ch = c.channels[0]
    nodes.append(TrainConv("stem", ("input",), "s0", 1, ch, k, s, p, bits))
    current, x = "stem", lif("stem.lif", ("stem",))
    for stage, width in enumerate(c.channels):
        unit = f"s{stage}"
        if stage:
            current, x = _patch_encoding(nodes, lif, f"s{stage}.spe", x, ch, width, unit, bits)
            ch, h, w = width, conv_out(h, 3, 2, 1), conv_out(w, 3, 2, 1)
        for block in range(c.blocks[stage]):
            x = _block(nodes, lif, c, f"s{stage}.b{block}", x, current, ch, h, w, unit, c.glif_group[stage])
    divide = c.pool_divide or float(h * w)
    nodes.append(TrainPool("pool", (x,), divide=divide))
    nodes.append(TrainDense("head", ("pool",), "head", ch, n_classes, bits, norm=False, per_channel=False, bias=True))
    nodes.append(TrainOutput("out", ("head",)))
    return nodes


def _block(nodes, lif, c, p, x, current, ch, h, w, unit, group) -> str:
    bits = c.weight_bits
    if c.token_mixer == "axial":
        branches = []
        for axis, length in (("h", h), ("w", w)):
            nodes.append(TrainAxial(f"{p}.ax_{axis}", (x,), f"{p}.ax_{axis}", axis, length, bits))
            branches.append(lif(f"{p}.ax_{axis}.lif", (f"{p}.ax_{axis}",)))
    else:
        nodes.append(TrainPointwise(f"{p}.glif_in", (x,), f"{p}.glif_in", ch, ch, bits))
        branches = []
        for axis in ("h", "w"):
            nodes.append(TrainGlif(f"{p}.glif_{axis}", (f"{p}.glif_in",), axis, group, c.glif_shift, c.surrogate_alpha))
            branches.append(f"{p}.glif_{axis}")
    nodes.append(TrainPointwise(f"{p}.fuse", (x, *branches), unit, 3 * ch, ch, bits))
    tok = lif(f"{p}.tok", (current, f"{p}.fuse"))
    hidden = c.mlp_ratio * ch
    nodes.append(TrainPointwise(f"{p}.mlp1", (tok,), f"{p}.mlp1", ch, hidden, bits))
    mid = lif(f"{p}.mlp1.lif", (f"{p}.mlp1",))
    nodes.append(TrainPointwise(f"{p}.mlp2", (mid,), unit, hidden, ch, bits))
    return lif(f"{p}.ch", (current, f"{p}.fuse", f"{p}.mlp2"))


def _patch_encoding(nodes, lif, p, x, c_in, c_out, unit, bits) -> tuple[str, str]:
    n = c_out // 3
    for i, offset in ((1, 0), (2, n), (3, 2 * n)):
        nodes.append(TrainConv(f"{p}.c{i}", (x,), unit, c_in, n, 3, 2, 1, bits, unit_offset=offset))
    n1 = lif(f"{p}.n1", (f"{p}.c1",))
    nodes.append(TrainConv(f"{p}.c12", (n1,), unit, n, n, 3, 1, 1, bits, unit_offset=n))
    nodes.append(TrainAdd(f"{p}.node2", (f"{p}.c2", f"{p}.c12")))
    n2 = lif(f"{p}.n2", (f"{p}.node2",))
    nodes.append(TrainConv(f"{p}.c23", (n2,), unit, n, n, 3, 1, 1, bits, unit_offset=2 * n))
    nodes.append(TrainAdd(f"{p}.node3", (f"{p}.c3", f"{p}.c1", f"{p}.c23")))
    n3 = lif(f"{p}.n3", (f"{p}.node3",))
    nodes.append(TrainConcat(f"{p}.h", (f"{p}.c1", f"{p}.node2", f"{p}.node3")))
    nodes.append(TrainConcat(f"{p}.x", (n1, n2, n3)))
    return f"{p}.h", f"{p}.x"


def build_mixer(config: TrainConfig, input_shape=(28, 28), n_classes: int = 10) -> QatGraph:
    return QatGraph(config, mixer_nodes(config, tuple(input_shape), n_classes), tuple(input_shape), n_classes)
