"""Every node kind is complete in every layer of abstraction: a contract section, an
artifact-format row, a numpy reference with a width proof, a torch integer mode, a scalar
oracle branch and a training (QAT and folded) form. A kind that lacks one fails here, not
later in a user's flow."""

import inspect
import re
from pathlib import Path

import pytest

from snnfpga.model import integer_torch, trainable, ttfs_net
from snnfpga.model.kinds import KINDS, Node
from tests import contract_oracle

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_a_contract_section_and_a_format_row(kind):
    contract = (DOCS / "integer-contract.md").read_text()
    assert re.search(rf"^### `{kind}`$", contract, re.M), f"docs/integer-contract.md has no section for {kind}"
    fmt = (DOCS / "artifact-format.md").read_text()
    assert f"`{kind}`" in fmt, f"docs/artifact-format.md does not list {kind}"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_implements_its_reference_and_proof(kind):
    cls = KINDS[kind]
    for method in ("infer", "prove", "forward"):
        assert getattr(cls, method) is not getattr(Node, method), f"{kind} does not define {method}"
    assert cls.__doc__ or inspect.getmodule(cls).__doc__, f"{kind} has no docstring"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_a_torch_integer_mode_and_an_oracle(kind):
    assert kind in integer_torch.FORWARD
    assert f'"{kind}"' in inspect.getsource(contract_oracle), f"the scalar oracle does not handle {kind}"


def test_every_kind_has_a_training_form():
    """Rate-coded kinds train as graph nodes (trainable); the TTFS kinds as the layers of a
    quantised ReLU MLP whose export writes exactly them (ttfs_net). The spiking output
    (``lif_output``) is not trained here: networks trained elsewhere bring it (the NIR
    importer, tests/test_nir.py trains one in snnTorch)."""
    trained = {c.kind for c in vars(trainable).values()
               if inspect.isclass(c) and issubclass(c, trainable.TrainNode) and c.kind}
    folded = set(trainable.FOLDED_SYNAPSES) | {trainable.FoldedLif.kind, trainable.FoldedGlif.kind} | \
        set(trainable.FOLDED_PLAIN)
    exported_by_ttfs = {c.KIND for c in vars(ttfs_net).values() if inspect.isclass(c) and issubclass(c, Node)}
    imported_only = {"lif_output"}
    assert trained | exported_by_ttfs | imported_only == set(KINDS) and not trained & exported_by_ttfs
    assert folded | exported_by_ttfs | imported_only == set(KINDS) and not (trained | folded) & imported_only
