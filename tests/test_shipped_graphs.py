"""The shipped layer-graph models: the PyTorch integer mode equals the numpy reference on
every node, every step and every image of the validation split; the figures recorded at
training time are what evaluation measures; the graphs are the seeds' networks."""

import json

import numpy as np
import pytest

from snnfpga.model.artifact import load_artifact, shipped_model_dir
from snnfpga.model.data import load_dataset
from snnfpga.model.integer_torch import IntegerSNN
from snnfpga.sim import reference

GRAPHS = ("mixer", "mixer-glif", "mixer-tiny")
CHUNK = 100


@pytest.fixture(scope="module")
def val():
    return load_dataset("default").split("val")


@pytest.mark.parametrize("name", GRAPHS)
def test_torch_integer_mode_equals_the_reference_on_the_whole_validation_split(name, val):
    art = load_artifact(name)
    torch_model = IntegerSNN(art)
    assert len(val) == 1000
    for start in range(0, len(val), CHUNK):
        images = val.images[start:start + CHUNK]
        ref = reference.run(art, images, record="all")
        ours = torch_model.run(images, record="all")
        for node in art.nodes:
            a, b = ref.outputs[node.name], ours.outputs[node.name].numpy()
            if not np.array_equal(a, b):
                n, t, *where = np.argwhere(a != b)[0]
                raise AssertionError(f"{name}: image {start + n} step {t} node {node.name} neuron {tuple(where)}: "
                                     f"reference {a[(n, t, *where)]}, torch {b[(n, t, *where)]}")
        assert np.array_equal(ref.classes, ours.classes.numpy())


@pytest.mark.parametrize("name", GRAPHS)
def test_training_record_matches_evaluation(name, val):
    from snnfpga.model.evaluate import evaluate

    summary = json.loads((shipped_model_dir(name) / "training.json").read_text())
    result = evaluate(name, val)
    assert summary["integer_model_matches_reference"]
    assert result["accuracy_int"] == summary["val_accuracy_int"]
    assert result["accuracy_float"] == summary["val_accuracy_float"]


@pytest.mark.parametrize("name", GRAPHS)
def test_shipped_graphs_are_the_seed_networks(name):
    art = load_artifact(name)
    kinds = {n.KIND for n in art.nodes}
    assert not art.is_chain and {"conv", "pointwise", "lif", "pool", "dense", "output"} <= kinds
    assert ("glif" in kinds) == (name == "mixer-glif") and ("axial" in kinds) == (name != "mixer-glif")
    # a stem, a stage with blocks, the spiking patch encoding with its identity edge, a second stage with blocks
    assert {"add", "concat"} <= kinds
    spe = [n for n in art.nodes if n.name.endswith(".node3")]
    assert len(spe) == 1 and len(spe[0].inputs) == 3
    assert any(n.name.startswith("s1.b0.") for n in art.nodes)
    # mixer-tiny has no block at 14x14: the stem feeds the patch encoding directly (UP5K memory)
    assert any(n.name.startswith("s0.b0.") for n in art.nodes) == (name != "mixer-tiny")
    for node in art.nodes:  # every skip sums the stage current and the block's currents, one unit
        if node.KIND == "lif" and len(node.inputs) > 1:
            units = {art.graph.types[s].unit for s in node.inputs}
            assert len(units) == 1
