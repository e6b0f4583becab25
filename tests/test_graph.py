"""Layer graphs (contract version 2): the reference against the scalar oracle, the torch
integer mode, the width proofs, every node kind's corner cases, and rejection of bad graphs."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnfpga.errors import ArtifactError
from snnfpga.model import artifact as A
from snnfpga.model import kinds as K
from snnfpga.model.integer_torch import IntegerSNN
from snnfpga.model.kinds.conv import taps_per_position
from snnfpga.model.synthetic import random_artifact, random_graph, random_images, random_ttfs
from snnfpga.model.widths import signed_bits
from snnfpga.sim import reference
from tests.contract_oracle import run_graph_one


def assert_matches_oracle(art, images):
    """Every node's output at every step, the scores and the class, image by image."""
    trace = reference.run(art, images, record="all")
    for n, image in enumerate(images):
        history, scores, best = run_graph_one(art, image)
        for name, steps in history.items():
            ref = trace.spikes[0][n] if name == "input" else trace.outputs[name][n]
            got = np.array(steps, dtype=np.int64)
            if not np.array_equal(ref.astype(np.int64), got):
                t, *where = np.argwhere(ref.astype(np.int64) != got)[0]
                raise AssertionError(f"image {n} step {t} node {name} neuron {tuple(where)}: "
                                     f"reference {ref[(t, *where)]}, oracle {got[(t, *where)]}")
        assert trace.scores[n].tolist() == scores, f"image {n}: scores differ"
        assert int(trace.classes[n]) == best, f"image {n}: class differs"
    return trace


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), narrow=st.booleans(), extreme=st.booleans(),
       token=st.sampled_from(["axial", "glif"]), head=st.sampled_from(["pool", "flatten", "dense"]))
def test_random_graphs_equal_the_scalar_oracle(seed, narrow, extreme, token, head):
    art = random_graph(seed, membrane_bits=5 if narrow else None, extreme=extreme, token=token, head=head)
    assert_matches_oracle(art, random_images(art, 3, seed=seed))


def test_random_graphs_cover_every_kind():
    kinds = set()
    for token in ("axial", "glif"):
        for head in ("pool", "flatten"):
            kinds |= {n.KIND for n in random_graph(1, token=token, head=head).nodes}
    kinds |= {n.KIND for n in random_ttfs(1).nodes}  # time-to-first-spike kinds (tests/test_ttfs.py)
    # The spiking output ends chains (tests/test_lif_output.py).
    kinds |= {n.KIND for n in random_artifact(1, spiking_output=True).nodes}
    assert kinds == set(K.KINDS)


@pytest.mark.parametrize("seed", range(8))
def test_torch_integer_mode_equals_the_reference_on_every_node(seed):
    art = random_graph(seed, membrane_bits=6 if seed % 2 else None)
    images = random_images(art, 16, seed)
    ref = reference.run(art, images, record="all")
    ours = IntegerSNN(art).run(images, record="all")
    for name, value in ref.outputs.items():
        assert np.array_equal(value, ours.outputs[name].numpy()), name
    assert np.array_equal(ref.classes, ours.classes.numpy())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), extreme=st.booleans())
def test_proven_bounds_hold_on_random_inputs(seed, extreme):
    """Every register value seen stays in its node's proven range."""
    art = random_graph(seed, extreme=extreme)
    trace = reference.run(art, random_images(art, 12, seed), record="all")
    proofs = art.graph.proofs
    for node in art.nodes:
        out = trace.outputs[node.name]
        registers = proofs[node.name].registers
        if isinstance(node, K.Synapse):
            lo, hi = registers["output"]
            assert lo <= out.min() and out.max() <= hi, node.name
        if node.KIND == "output":
            lo, hi = registers["score"]
            assert lo <= out.min() and out.max() <= hi
            assert signed_bits(int(out.min()), int(out.max())) <= node.score_bits
        if node.KIND == "add":
            assert signed_bits(int(out.min()), int(out.max())) <= node.current_bits


# --------------------------------------------------------------------------------------
# Kind by kind: small exhaustive or hand-computed cases


def one_node_graph(synapse, input_shape):
    """input -> the synapse under test -> lif -> pool -> dense -> output."""
    channels = int(synapse.weight.shape[0]) if synapse.KIND in ("conv", "pointwise") else 1
    nodes = [synapse,
             K.Lif(name="l", inputs=(synapse.name,), threshold=np.ones((1, 1, 1), np.int64), leak_shift=None,
                   reset="zero"),
             K.Pool(name="p", inputs=("l",)),
             K.Dense(name="d", inputs=("p",), weight=np.ones((1, channels), np.int64), bias=np.zeros(1, np.int64),
                     weight_bits=2, unit="d"),
             K.Output(name="o", inputs=("d",))]
    return A.build_graph_artifact("probe", input_shape, A.Encoder("threshold", level=1), 1, nodes)


@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_conv_gather_equals_scatter_for_every_padding_and_size(kernel, stride):
    """The reference's gather form equals the oracle's event scatter on every geometry."""
    rng = np.random.default_rng(kernel * 10 + stride)
    for padding in range(kernel):
        for size in range(max(1, kernel - 2 * padding), 8):
            if (size + 2 * padding - kernel) // stride + 1 < 1:
                continue
            w = rng.integers(-8, 8, size=(2, 1, kernel, kernel))
            conv = K.Conv(name="c", inputs=("input",), weight=w, bias=np.array([1, -2]), weight_bits=4, unit="u",
                          stride=stride, padding=padding)
            art = one_node_graph(conv, (size, size + 1))
            images = (rng.random((4, size, size + 1)) < 0.5).astype(np.uint8) * 255
            trace = reference.run(art, images, record="all")
            for n in range(len(images)):
                history, _, _ = run_graph_one(art, images[n])
                assert np.array_equal(trace.outputs["c"][n], np.array(history["c"])), (kernel, stride, padding, size)


@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 1), (3, 1, 1), (2, 2, 0), (4, 4, 0), (5, 3, 2)])
def test_conv_synaptic_ops_count_the_valid_taps(kernel, stride, padding):
    """One event adds C_out weights per tap that reaches an output: the scatter's row count."""
    size = 9
    n_out = (size + 2 * padding - kernel) // stride + 1
    taps = taps_per_position(size, kernel, stride, padding)
    for i in range(size):
        want = sum(1 for k in range(kernel) if (i + padding - k) >= 0 and (i + padding - k) % stride == 0
                   and (i + padding - k) // stride < n_out)
        assert taps[i] == want
    conv = K.Conv(name="c", inputs=("input",), weight=np.ones((3, 1, kernel, kernel), np.int64), bias=np.zeros(3, np.int64),
                  weight_bits=2, unit="u", stride=stride, padding=padding)
    art = one_node_graph(conv, (size, size))
    image = np.zeros((1, size, size), np.uint8)
    image[0, 4, 7] = 255
    trace = reference.run(art, image)
    assert trace.ops["c"][0] == 3 * taps[4] * taps[7]


def test_axial_mixes_along_one_axis_only():
    w = np.array([[1, 2, 3], [-1, 0, 4], [2, 2, -3]])
    for axis in ("h", "w"):
        ax = K.Axial(name="a", inputs=("input",), axis=axis, weight=w, bias=np.array([5, 6, 7]), weight_bits=4, unit="u")
        art = one_node_graph(ax, (3, 3))
        image = np.array([[[255, 0, 0], [0, 255, 0], [255, 0, 255]]], np.uint8)
        got = reference.run(art, image, record="all").outputs["a"][0, 0, 0]
        x = (image[0] > 0).astype(int)
        want = (w @ x + np.array([5, 6, 7])[:, None]) if axis == "h" else (x @ w.T + np.array([5, 6, 7])[None, :])
        assert got.tolist() == want.tolist(), axis


def glif_probe(values, group, shift, theta):
    """A glif along w over one line of currents ``values`` (made by a 1x1 conv of weight 1 and bias)."""
    length = len(values)
    nodes = [K.Axial(name="a", inputs=("input",), axis="w", weight=np.zeros((length, length), np.int64),
                     bias=np.array(values), weight_bits=2, unit="u"),
             K.Glif(name="g", inputs=("a",), axis="w", group=group, leak_shift=shift,
                    threshold=np.full((1, 1, 1), theta, np.int64)),
             K.Pool(name="p", inputs=("g",)),
             K.Dense(name="d", inputs=("p",), weight=np.ones((1, 1), np.int64), bias=np.zeros(1, np.int64),
                     weight_bits=2, unit="d"),
             K.Output(name="o", inputs=("d",))]
    art = A.build_graph_artifact("glif", (1, length), A.Encoder("threshold", level=1), 1, nodes)
    trace = reference.run(art, np.zeros((1, 1, length), np.uint8), record="all")
    history, _, _ = run_graph_one(art, np.zeros((1, length), np.uint8))
    assert trace.outputs["g"][0, 0, 0, 0].astype(int).tolist() == history["g"][0][0][0]
    return trace.outputs["g"][0, 0, 0, 0].astype(int).tolist()


def test_glif_groups_carry_strict_threshold_and_remainder():
    # group 3, k = 1, theta = 4: u = (carry >> 1) + I.
    # group 0: u = 3 (no), (3 >> 1) + 3 = 4 (not > 4), (4 >> 1) + 3 = 5 -> spike
    # group 1: restarts at 0: u = 4 (no), 2 + 4 = 6 -> spike, carry 0: u = 1 (no)
    # remainder (7 % 3 = 1 position): a group of one: u = 5 -> spike
    assert glif_probe([3, 3, 3, 4, 4, 1, 5], group=3, shift=1, theta=4) == [0, 0, 1, 0, 1, 0, 1]
    # negative carries shift by floor: (-3 >> 1) = -2
    assert glif_probe([-3, 6, 0], group=3, shift=1, theta=3) == [0, 1, 0]   # -2 + 6 = 4 > 3
    assert glif_probe([-3, 5, 0], group=3, shift=1, theta=3) == [0, 0, 0]   # -2 + 5 = 3, not > 3; 1 + 0
    # no carry across groups: group 1 spikes alone
    assert glif_probe([4, 4], group=1, shift=1, theta=3) == [1, 1]


def test_lif_sums_its_currents_with_their_biases():
    """A skip: two currents of one unit summed into one neuron, step by step."""
    c1 = K.Dense(name="c1", inputs=("input",), weight=np.array([[2, 1]]), bias=np.array([1]), weight_bits=3, unit="u")
    c2 = K.Dense(name="c2", inputs=("input",), weight=np.array([[-1, 3]]), bias=np.array([-2]), weight_bits=3, unit="u")
    nodes = [c1, c2, K.Lif(name="l", inputs=("c1", "c2"), threshold=np.array([5]), leak_shift=1, reset="subtract"),
             K.Dense(name="d", inputs=("l",), weight=np.array([[1]]), bias=np.array([0]), weight_bits=2, unit="d"),
             K.Output(name="o", inputs=("d",))]
    art = A.build_graph_artifact("skip", (1, 2), A.Encoder("threshold", level=1), 3, nodes)
    trace = assert_matches_oracle(art, np.array([[[255, 255]]], np.uint8))
    # I = (2+1+1) + (-1+3-2) = 4 each step; v' = 4, 6 -> spike, v = 1; 0 + 4 = 4... with leak:
    # t0: v' = 0 + 4 = 4 (no); t1: 4 - 2 + 4 = 6 >= 5 spike, v = 1; t2: 1 - 0 + 4 = 5 spike
    assert trace.outputs["l"][0, :, 0].tolist() == [False, True, True]


def test_pool_counts_events_and_scales_the_dense_bound():
    nodes = [K.Pool(name="p", inputs=("input",)),
             K.Dense(name="d", inputs=("p",), weight=np.array([[3], [-2]]), bias=np.array([0, 1]), weight_bits=3,
                     unit="d"),
             K.Output(name="o", inputs=("d",))]
    art = A.build_graph_artifact("pool", (2, 3), A.Encoder("threshold", level=1), 2, nodes)
    assert art.graph.types["p"].max_count == 6
    assert art.graph.proofs["d"].registers["current"] == (-12, 18)
    trace = assert_matches_oracle(art, np.array([[[255, 0, 255], [255, 255, 0]]], np.uint8))
    assert trace.scores[0].tolist() == [2 * 12, 2 * (-8 + 1)]
    assert trace.ops["d"][0] == 2 * 4 * 2  # 4 events per step, 2 weights each, 2 steps


def test_ties_go_to_the_lowest_index_in_graphs():
    nodes = [K.Pool(name="p", inputs=("input",)),
             K.Dense(name="d", inputs=("p",), weight=np.array([[0], [1], [0]]), bias=np.array([0, 0, 1]),
                     weight_bits=2, unit="d"),
             K.Output(name="o", inputs=("d",))]
    art = A.build_graph_artifact("tie", (1, 1), A.Encoder("threshold", level=1), 1, nodes)
    trace = assert_matches_oracle(art, np.full((1, 1, 1), 255, np.uint8))
    assert trace.scores[0].tolist() == [0, 1, 1] and trace.classes[0] == 1


def test_narrow_membranes_saturate_in_graphs():
    art = random_graph(3, membrane_bits=4, extreme=True)
    sat = [n.name for n in art.nodes if n.KIND == "lif" and n.saturates(art.graph.proofs[n.name])]
    assert sat, "the extreme graph with 4-bit membranes should saturate somewhere"
    assert_matches_oracle(art, random_images(art, 4, seed=3))


# --------------------------------------------------------------------------------------
# Artifact version 2: round trip and rejection


def test_graph_round_trip_is_exact_and_deterministic(tmp_path):
    art = random_graph(11, membrane_bits=6)
    A.save_artifact(art, tmp_path / "a")
    back = A.load_artifact(tmp_path / "a")
    A.save_artifact(back, tmp_path / "b")
    for name in (A.MANIFEST, A.ARRAYS):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    manifest = json.loads((tmp_path / "a" / A.MANIFEST).read_text())
    assert manifest["version"] == 2 and manifest["output"] == "out"
    assert [n["name"] for n in manifest["nodes"]] == [n.name for n in art.nodes]
    images = random_images(art, 8, 11)
    assert np.array_equal(reference.run(art, images).scores, reference.run(back, images).scores)


def test_chains_are_still_written_as_version_1(tmp_path):
    art = random_artifact(2, hidden=(5, 4))
    d = A.save_artifact(art, tmp_path / "c")
    manifest = json.loads((d / A.MANIFEST).read_text())
    assert manifest["version"] == 1 and len(manifest["layers"]) == 3 and "nodes" not in manifest
    assert [n.KIND for n in art.nodes] == ["dense", "lif", "dense", "lif", "dense", "output"]


def saved_graph(tmp_path, edit=None):
    art = random_graph(5, token="axial", head="pool")
    d = A.save_artifact(art, tmp_path / "g")
    manifest = json.loads((d / A.MANIFEST).read_text())
    if edit:
        edit(manifest)
    (d / A.MANIFEST).write_text(json.dumps(manifest))
    return d


def node_entry(m, name):
    return next(n for n in m["nodes"] if n["name"] == name)


@pytest.mark.parametrize("edit, message", [
    (lambda m: node_entry(m, "fuse").update(inputs=["stem.lif", "nowhere"]), "input 'nowhere' does not exist"),
    (lambda m: node_entry(m, "stem").update(inputs=["down.lif"]), "has a cycle: .*'down.lif' -> 'stem'"),
    (lambda m: node_entry(m, "tok.lif").update(inputs=["stem", "tok.h"]), "mixed scales"),
    (lambda m: node_entry(m, "block.lif").update(inputs=["stem", "mlp1"]), "different shapes"),
    (lambda m: node_entry(m, "stem").update(stride=5), "stride must be"),
    (lambda m: node_entry(m, "stem").update(current_bits=2), "current_bits is 2"),
    (lambda m: node_entry(m, "block.lif").update(membrane_bits=1), "membrane_bits"),
    (lambda m: node_entry(m, "tok.h.lif").update(reset="sideways"), "reset must be"),
    (lambda m: node_entry(m, "stem").update(kind="deconv"), "unknown node kind 'deconv'"),
    (lambda m: node_entry(m, "out").update(score_bits=3), "score_bits is 3"),
    (lambda m: node_entry(m, "block.lif").update(saturation="active"), "declares saturation"),
    (lambda m: node_entry(m, "down").update(shape=[1, 2, 3]), "declares shape"),
    (lambda m: node_entry(m, "down").pop("padding"), "missing key 'padding'"),
    (lambda m: m["nodes"].append(dict(node_entry(m, "pool"), name="spare")), "does not lead to the output"),
    (lambda m: m["nodes"].append(dict(node_entry(m, "out"), name="out2")), "exactly one output node"),
    (lambda m: m.update(output="head"), "output is 'head'"),
])
def test_inconsistent_graph_manifests_are_rejected(tmp_path, edit, message):
    d = saved_graph(tmp_path, edit)
    with pytest.raises(ArtifactError, match=message):
        A.load_artifact(d)


def test_weights_beyond_their_width_name_the_node():
    with pytest.raises(ArtifactError, match=r"node 'c' \(conv\): weight value 9 is beyond the 4-bit range"):
        one_node_graph(K.Conv(name="c", inputs=("input",), weight=np.full((1, 1, 3, 3), 9), bias=np.zeros(1, np.int64),
                              weight_bits=4, unit="u", stride=1, padding=1), (4, 4))


def test_a_kernel_the_contract_does_not_allow_is_rejected():
    with pytest.raises(ArtifactError, match="kernel 9x9 is outside"):
        one_node_graph(K.Conv(name="c", inputs=("input",), weight=np.ones((1, 1, 9, 9), np.int64),
                              bias=np.zeros(1, np.int64), weight_bits=2, unit="u", stride=1, padding=4), (9, 9))


def test_hardware_stages_refuse_graphs_in_one_line():
    from snnfpga.errors import MappingError
    art = random_graph(0)
    assert not art.is_chain
    with pytest.raises(MappingError, match="is a layer graph .* only chains of dense LIF layers"):
        art.layers
