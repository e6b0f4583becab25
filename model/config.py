"""Training configuration: one frozen dataclass and the named presets.

A :class:`TrainConfig` fixes everything that decides the trained artifact: topology,
quantisation, neuron model (``docs/integer-contract.md``), encoder, optimisation and seed.
Out-of-range values raise :class:`~snnfpga.errors.ConfigError` on construction, so a config
that exists is valid.

Presets (:func:`preset`):

* ``default`` -- the accuracy preset: 4-bit weights, one hidden LIF layer of 512 neurons
  (``k = 1``, hard reset), ``T = 4``, rate-coded input (about 100 input spikes per step on
  MNIST), shift/rotation/scale augmentation, 60 QAT epochs.
* ``seed`` -- the neuron of the seed paper (Li, Leng, Cheng et al.): ``tau = 2``
  (``leak_shift = 1``), hard reset to zero, ``T = 4``, threshold 1 before folding,
  sigmoid surrogate with ``alpha = 4``.
* ``tiny`` -- a small net for the Lattice iCE40 UP5K: 128 hidden neurons whose 4-bit
  weights (784 x 128 x 4 = 401 kbit) fit two of the UP5K's four single-port RAMs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace

from snnfpga.errors import ConfigError

TOPOLOGIES = ("mlp", "mixer", "ttfs")
TOKEN_MIXERS = ("axial", "glif")
ENCODERS = ("rate", "threshold", "ttfs")
RESETS = ("zero", "subtract")
WEIGHT_SCALES = ("channel", "tensor")
SCHEDULES = ("onecycle", "cosine", "constant")
MAX_HIDDEN = 4096
MAX_TIMESTEPS = 64
MAX_LEAK_SHIFT = 16


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a trained model (see the module docstring).

    Neuron model: ``leak_shift`` ``k`` gives the float decay ``v - v * 2**-k`` (``None``: no
    leak); fire when ``v >= 1``; ``reset`` is ``zero`` or ``subtract``. ``weight_scale`` is the
    Brevitas scale granularity of the hidden layers (``channel``: one scale per output neuron,
    folded into its threshold; ``tensor``: one per layer); the output layer always has one
    scale per tensor, since a per-class scale would change the argmax. ``encoder_param`` is
    the rate encoder's ``phase`` (0..255) or the threshold encoder's ``level`` (1..255).
    ``augment_*``: random shift (pixels), rotation (degrees) and scale (fraction) of the
    training images. ``lr`` is the peak learning rate of the float QAT run;
    ``finetune_*`` configure the folded integer-unit fine-tune (``finetune_lr`` is in
    integer units per step).

    ``topology`` ``mlp`` is the chain ``encoder -> hidden -> classes``; ``mixer`` is the
    spiking MLP-Mixer of :mod:`snnfpga.model.mixer` (``hidden`` unused): a stem conv
    ``stem = (kernel, stride, padding)``, stages of ``channels[i]`` channels with
    ``blocks[i]`` token + channel blocks (channel MLP ratio ``mlp_ratio``), a spiking patch
    encoding between stages, a spike-count head (counts divided by ``pool_divide`` in the
    float model; 0 = by the last map's area). ``token_mixer`` ``axial`` (the seed's H x H
    and W x W matrices) or ``glif`` (SNN-MLP's group LIF, groups of ``glif_group[i]``,
    carry shift ``glif_shift``). Mixer fields are left out of :meth:`to_json` for ``mlp``.
    ``ttfs`` is the time-to-first-spike network of :mod:`snnfpga.model.ttfs_net` (a quantised
    ReLU MLP of ``hidden`` layers): encoder ``ttfs`` with ``encoder_param`` activation bits
    ``b`` (2..8), ``timesteps = (len(hidden) + 1) * (2**b - 1)`` (one window per layer),
    ``activation_l1`` the weight of the L1 term on hidden activations (fewer spikes).
    """

    name: str = "custom"
    topology: str = "mlp"
    hidden: tuple[int, ...] = (512,)
    stem: tuple[int, ...] = (3, 2, 1)
    channels: tuple[int, ...] = (24, 48)
    blocks: tuple[int, ...] = (1, 1)
    mlp_ratio: int = 3
    token_mixer: str = "axial"
    glif_group: tuple[int, ...] = (7, 7)
    glif_shift: int = 2
    pool_divide: float = 0.0
    weight_bits: int = 4
    weight_scale: str = "channel"
    hidden_bias: bool = False
    timesteps: int = 4
    leak_shift: int | None = 1
    reset: str = "zero"
    encoder: str = "rate"
    encoder_param: int = 128
    surrogate_alpha: float = 4.0
    detach_reset: bool = True
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3
    schedule: str = "onecycle"
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    dropout: float = 0.0
    augment_shift: int = 2
    augment_rotate: float = 0.0
    augment_scale: float = 0.0
    finetune_epochs: int = 3
    finetune_lr: float = 1e-2
    activation_l1: float = 0.0
    seed: int = 0
    threads: int = 1

    def __post_init__(self):
        for name in _TUPLE_FIELDS:
            value = getattr(self, name)
            object.__setattr__(self, name, tuple(value) if isinstance(value, (list, tuple)) else value)
        _validate(self)
        for name in _FLOAT_FIELDS:  # 10 and 10.0 are one config: store (and serialise) floats
            object.__setattr__(self, name, float(getattr(self, name)))

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` applied (validated; unknown keys raise ConfigError)."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
        return replace(self, **changes)

    def to_json(self) -> dict:
        """Plain JSON types, keys in field order (an ``mlp`` config without the mixer fields)."""
        out = asdict(self)
        for name in _TUPLE_FIELDS:
            out[name] = list(getattr(self, name))
        if self.topology == "mlp":
            for name in ("topology",) + MIXER_FIELDS:
                out.pop(name)
        elif self.topology == "ttfs":
            for name in MIXER_FIELDS:
                out.pop(name)
        else:
            out.pop("hidden")
        if self.topology != "ttfs":
            out.pop("activation_l1")
        return out

    @classmethod
    def from_json(cls, obj: dict) -> "TrainConfig":
        """Inverse of :meth:`to_json`; raises ConfigError on unknown keys or bad values."""
        if not isinstance(obj, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(obj).__name__}")
        return cls().replace(**obj)

    def describe(self) -> str:
        return json.dumps(self.to_json(), sort_keys=False)


_TUPLE_FIELDS = ("hidden", "stem", "channels", "blocks", "glif_group")
MIXER_FIELDS = ("stem", "channels", "blocks", "mlp_ratio", "token_mixer", "glif_group", "glif_shift", "pool_divide")
_FLOAT_FIELDS = ("pool_divide", "surrogate_alpha", "lr", "weight_decay", "label_smoothing", "dropout", "augment_rotate",
                 "augment_scale", "finetune_lr", "activation_l1")


def _validate(c: TrainConfig) -> None:
    def fail(msg):
        raise ConfigError(f"config {c.name!r}: {msg}")

    def is_int(x):
        return isinstance(x, int) and not isinstance(x, bool)

    def is_num(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if not isinstance(c.name, str) or not c.name:
        fail("name must be a non-empty string")
    if c.topology not in TOPOLOGIES:
        fail(f"topology must be one of {', '.join(TOPOLOGIES)}, got {c.topology!r}")
    if not c.hidden:
        fail("hidden must list at least one hidden layer size")
    for n in c.hidden:
        if not is_int(n) or not 1 <= n <= MAX_HIDDEN:
            fail(f"hidden layer sizes must be integers in 1..{MAX_HIDDEN}, got {n!r}")
    if c.topology == "mixer":
        _validate_mixer(c, fail, is_int)
    if not is_int(c.weight_bits) or not 2 <= c.weight_bits <= 8:
        fail(f"weight_bits must be an integer in 2..8, got {c.weight_bits!r}")
    if c.weight_scale not in WEIGHT_SCALES:
        fail(f"weight_scale must be one of {', '.join(WEIGHT_SCALES)}, got {c.weight_scale!r}")
    if not isinstance(c.hidden_bias, bool) or not isinstance(c.detach_reset, bool):
        fail("hidden_bias and detach_reset must be true or false")
    if c.leak_shift is not None and (not is_int(c.leak_shift) or not 1 <= c.leak_shift <= MAX_LEAK_SHIFT):
        fail(f"leak_shift must be null (no leak) or an integer in 1..{MAX_LEAK_SHIFT}, got {c.leak_shift!r}")
    if c.reset not in RESETS:
        fail(f"reset must be one of {', '.join(RESETS)}, got {c.reset!r}")
    if c.encoder not in ENCODERS:
        fail(f"encoder must be one of {', '.join(ENCODERS)}, got {c.encoder!r}")
    if (c.topology == "ttfs") != (c.encoder == "ttfs"):
        fail("the ttfs topology and the ttfs encoder go together (time-to-first-spike coding)")
    if not is_num(c.activation_l1) or not 0 <= c.activation_l1 <= 100:
        fail(f"activation_l1 must be in [0, 100], got {c.activation_l1!r}")
    if c.encoder == "ttfs":
        if not is_int(c.encoder_param) or not 2 <= c.encoder_param <= 8:
            fail(f"encoder_param (ttfs activation bits) must be an integer in 2..8, got {c.encoder_param!r}")
        want = (len(c.hidden) + 1) * ((1 << c.encoder_param) - 1)
        if c.timesteps != want:
            fail(f"timesteps must be (hidden layers + 1) x (2**bits - 1) = {want} for ttfs, got {c.timesteps!r}")
        return _validate_common(c, fail, is_int, is_num)
    if not is_int(c.timesteps) or not 1 <= c.timesteps <= MAX_TIMESTEPS:
        fail(f"timesteps must be an integer in 1..{MAX_TIMESTEPS}, got {c.timesteps!r}")
    lo = 0 if c.encoder == "rate" else 1
    if not is_int(c.encoder_param) or not lo <= c.encoder_param <= 255:
        what = "phase" if c.encoder == "rate" else "level"
        fail(f"encoder_param ({c.encoder} {what}) must be an integer in {lo}..255, got {c.encoder_param!r}")
    _validate_common(c, fail, is_int, is_num)


def _validate_common(c: TrainConfig, fail, is_int, is_num) -> None:
    if not is_num(c.surrogate_alpha) or not 0 < c.surrogate_alpha <= 100:
        fail(f"surrogate_alpha must be in (0, 100], got {c.surrogate_alpha!r}")
    if not is_int(c.epochs) or not 1 <= c.epochs <= 10_000:
        fail(f"epochs must be an integer in 1..10000, got {c.epochs!r}")
    if not is_int(c.batch_size) or not 1 <= c.batch_size <= 65_536:
        fail(f"batch_size must be an integer in 1..65536, got {c.batch_size!r}")
    if not is_num(c.lr) or not 0 < c.lr <= 10:
        fail(f"lr must be in (0, 10], got {c.lr!r}")
    if c.schedule not in SCHEDULES:
        fail(f"schedule must be one of {', '.join(SCHEDULES)}, got {c.schedule!r}")
    if not is_num(c.weight_decay) or not 0 <= c.weight_decay < 1:
        fail(f"weight_decay must be in [0, 1), got {c.weight_decay!r}")
    if not is_num(c.label_smoothing) or not 0 <= c.label_smoothing < 1:
        fail(f"label_smoothing must be in [0, 1), got {c.label_smoothing!r}")
    if not is_num(c.dropout) or not 0 <= c.dropout < 1:
        fail(f"dropout must be in [0, 1), got {c.dropout!r}")
    if not is_int(c.augment_shift) or not 0 <= c.augment_shift <= 8:
        fail(f"augment_shift must be an integer in 0..8 pixels, got {c.augment_shift!r}")
    if not is_num(c.augment_rotate) or not 0 <= c.augment_rotate <= 45:
        fail(f"augment_rotate must be in [0, 45] degrees, got {c.augment_rotate!r}")
    if not is_num(c.augment_scale) or not 0 <= c.augment_scale <= 0.5:
        fail(f"augment_scale must be in [0, 0.5], got {c.augment_scale!r}")
    if not is_int(c.finetune_epochs) or not 0 <= c.finetune_epochs <= 1000:
        fail(f"finetune_epochs must be an integer in 0..1000, got {c.finetune_epochs!r}")
    if not is_num(c.finetune_lr) or not 0 < c.finetune_lr <= 10:
        fail(f"finetune_lr must be in (0, 10], got {c.finetune_lr!r}")
    if not is_int(c.seed) or not 0 <= c.seed < 2**63:
        fail(f"seed must be a non-negative integer, got {c.seed!r}")
    if not is_int(c.threads) or not 1 <= c.threads <= 256:
        fail(f"threads must be an integer in 1..256, got {c.threads!r}")


def _validate_mixer(c: TrainConfig, fail, is_int) -> None:
    if not isinstance(c.stem, tuple) or len(c.stem) != 3 or not all(is_int(x) for x in c.stem):
        fail(f"stem must be [kernel, stride, padding], got {c.stem!r}")
    k, s, p = c.stem
    if not (1 <= k <= 7 and 1 <= s <= 4 and 0 <= p < k):
        fail(f"stem kernel {k} stride {s} padding {p} is outside kernel 1..7, stride 1..4, padding 0..kernel-1")
    if not c.channels or not all(is_int(x) and 1 <= x <= 512 for x in c.channels):
        fail(f"channels must list 1..512 channels per stage, got {c.channels!r}")
    for i, ch in enumerate(c.channels[1:], 1):
        if ch % 3:
            fail(f"channels[{i}] = {ch}: a spiking patch encoding makes 3 nodes, so a later stage needs a multiple of 3")
    if len(c.blocks) != len(c.channels) or not all(is_int(x) and 0 <= x <= 16 for x in c.blocks):
        fail(f"blocks must give 0..16 blocks for each of the {len(c.channels)} stages, got {c.blocks!r}")
    if not is_int(c.mlp_ratio) or not 1 <= c.mlp_ratio <= 8:
        fail(f"mlp_ratio must be an integer in 1..8, got {c.mlp_ratio!r}")
    if c.token_mixer not in TOKEN_MIXERS:
        fail(f"token_mixer must be one of {', '.join(TOKEN_MIXERS)}, got {c.token_mixer!r}")
    if len(c.glif_group) != len(c.channels) or not all(is_int(x) and x >= 1 for x in c.glif_group):
        fail(f"glif_group must give a group size >= 1 for each of the {len(c.channels)} stages, got {c.glif_group!r}")
    if not is_int(c.glif_shift) or not 1 <= c.glif_shift <= MAX_LEAK_SHIFT:
        fail(f"glif_shift must be an integer in 1..{MAX_LEAK_SHIFT}, got {c.glif_shift!r}")
    if not isinstance(c.pool_divide, (int, float)) or isinstance(c.pool_divide, bool) or not 0 <= c.pool_divide <= 1e6:
        fail(f"pool_divide must be a number in [0, 1e6] (0: the last map's area), got {c.pool_divide!r}")


PRESETS: dict[str, TrainConfig] = {
    # 784-512-10, T=4: 98.8% integer accuracy on the validation split (3 seeds: 98.7..98.8).
    "default": TrainConfig(name="default", hidden=(512,), epochs=60, augment_rotate=10.0, augment_scale=0.1),
    # The seed paper's neuron and a plain recipe (shift augmentation only, 30 epochs).
    "seed": TrainConfig(name="seed", hidden=(512,), weight_bits=4, timesteps=4, leak_shift=1,
                        reset="zero", surrogate_alpha=4.0, epochs=30),
    # 784-128-10 for the iCE40 UP5K (4-bit weights: 401 kbit, two of its four SPRAMs).
    "tiny": TrainConfig(name="tiny", hidden=(128,), epochs=100, augment_rotate=10.0, augment_scale=0.1),
    # The seed's spiking MLP-Mixer for MNIST on an ECP5-85F: 3x3/2 stem to 14x14x24, one block,
    # spiking patch encoding to 7x7x72, one block, spike-count head (docs/training.md).
    "mixer": TrainConfig(name="mixer", topology="mixer", stem=(3, 2, 1), channels=(24, 72), blocks=(1, 1),
                         mlp_ratio=3, pool_divide=7.0, epochs=26, batch_size=32, lr=6e-3, augment_rotate=10.0,
                         augment_scale=0.1),
    # The same with SNN-MLP's group LIF (groups of 7 along H and W) as the token mixer.
    "mixer-glif": TrainConfig(name="mixer-glif", topology="mixer", stem=(3, 2, 1), channels=(24, 72),
                              blocks=(1, 1), mlp_ratio=3, token_mixer="glif", glif_group=(7, 7), pool_divide=7.0,
                              epochs=22, batch_size=32, lr=6e-3, augment_rotate=10.0, augment_scale=0.1),
    # A mixer whose weights and state fit the iCE40 UP5K: the stem (14x14x24) straight into the
    # spiking patch encoding (7x7x72) and one block there, no block at 14x14 (docs/training.md).
    "mixer-tiny": TrainConfig(name="mixer-tiny", topology="mixer", stem=(3, 2, 1), channels=(24, 72),
                              blocks=(0, 1), mlp_ratio=3, pool_divide=7.0, epochs=26, batch_size=32, lr=6e-3,
                              augment_rotate=10.0, augment_scale=0.1),
    # Time-to-first-spike coding (Stanojevic et al.): a 4-bit quantised ReLU MLP, 784-400-10,
    # 15-step windows; at most one spike per neuron (docs/training.md, "TTFS").
    "ttfs": TrainConfig(name="ttfs", topology="ttfs", hidden=(400,), encoder="ttfs", encoder_param=4, timesteps=30,
                        epochs=40, lr=2e-3, activation_l1=0.5, augment_rotate=10.0, augment_scale=0.1,
                        finetune_epochs=3, finetune_lr=1e-2),
    # The same for the iCE40 UP5K: 784-128-10 (4-bit weights: 401 kbit).
    "ttfs-tiny": TrainConfig(name="ttfs-tiny", topology="ttfs", hidden=(128,), encoder="ttfs", encoder_param=4,
                             timesteps=30, epochs=60, lr=2e-3, activation_l1=0.8, augment_rotate=10.0,
                             augment_scale=0.1, finetune_epochs=3, finetune_lr=1e-2),
}


def preset(name: str) -> TrainConfig:
    """The named preset; ConfigError naming the choices if there is none."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
