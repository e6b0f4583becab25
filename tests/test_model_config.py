"""Training configuration: presets, validation, JSON round trip."""

import pytest

from snnfpga.errors import ConfigError
from snnfpga.model.config import PRESETS, TrainConfig, preset


def test_presets_are_valid_and_named():
    assert {"default", "seed", "tiny"} <= set(PRESETS)
    for name, cfg in PRESETS.items():
        assert cfg.name == name
        assert TrainConfig.from_json(cfg.to_json()) == cfg


def test_default_preset_targets():
    d = preset("default")
    assert d.weight_bits == 4 and d.timesteps <= 8


def test_seed_preset_is_the_seed_papers_neuron():
    s = preset("seed")
    assert (s.leak_shift, s.reset, s.timesteps, s.surrogate_alpha) == (1, "zero", 4, 4.0)


def test_tiny_preset_is_small():
    assert sum(preset("tiny").hidden) <= 128


@pytest.mark.parametrize("key,value", [
    ("weight_bits", 1), ("weight_bits", 9), ("weight_bits", 4.0), ("hidden", ()), ("hidden", (0,)),
    ("hidden", (5000,)), ("timesteps", 0), ("timesteps", 65), ("leak_shift", 0), ("leak_shift", 17),
    ("reset", "soft"), ("encoder", "poisson"), ("weight_scale", "group"), ("epochs", 0), ("batch_size", 0),
    ("lr", 0.0), ("lr", -1.0), ("schedule", "step"), ("label_smoothing", 1.0), ("augment_shift", -1),
    ("augment_rotate", 90.0), ("finetune_epochs", -1), ("seed", -1), ("surrogate_alpha", 0.0),
    ("threads", 0), ("dropout", 1.0), ("hidden_bias", "yes"),
])
def test_out_of_range_values_raise_config_error(key, value):
    with pytest.raises(ConfigError, match=key):
        preset("default").replace(**{key: value})


def test_encoder_parameter_range_depends_on_kind():
    assert preset("default").replace(encoder="rate", encoder_param=0).encoder_param == 0
    with pytest.raises(ConfigError, match="encoder_param"):
        preset("default").replace(encoder="threshold", encoder_param=0)
    with pytest.raises(ConfigError, match="encoder_param"):
        preset("default").replace(encoder="rate", encoder_param=256)


def test_leak_none_is_allowed():
    assert preset("default").replace(leak_shift=None).leak_shift is None


def test_unknown_key_and_preset():
    with pytest.raises(ConfigError, match="unknown config key"):
        preset("default").replace(widht=3)
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ConfigError):
        TrainConfig.from_json(["not", "a", "dict"])


def test_config_is_frozen():
    with pytest.raises(Exception):
        preset("default").epochs = 3
