"""NIR export and import: the graph ``nir.read`` accepts, golden traces, the identical artifact
back, and one-line refusals naming the node."""

from __future__ import annotations

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from snnfpga.errors import ArtifactError, ConfigError  # noqa: E402
from snnfpga.model import nir_format as F  # noqa: E402
from snnfpga.model.artifact import load_artifact, save_artifact  # noqa: E402
from snnfpga.model.artifact import shipped_model_dir  # noqa: E402
from snnfpga.model.nir_export import export_nir, to_nir  # noqa: E402
from snnfpga.model.nir_import import import_nir, read_chain  # noqa: E402
from snnfpga.model.synthetic import random_artifact, random_images  # noqa: E402
from snnfpga.sim import reference  # noqa: E402
from tests.cli_common import cli, last_json  # noqa: E402


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_an_exported_chain_imports_back_to_the_identical_artifact(seed, tmp_path):
    """Random chains (leaks or none, zero or subtract reset, fire >= or >, one or two hidden
    layers): the same manifest and arrays bytes after export and import."""
    art = random_artifact(seed, hidden=(12,) if seed % 2 else (9, 7), reset=("zero", "subtract")[seed % 2],
                          leak_shift=None if seed == 2 else "random", fire=">" if seed == 3 else ">=")
    path = tmp_path / "net.nir"
    export_nir(art, path, random_images(art, 2, seed=seed))
    back = save_artifact(import_nir(path), tmp_path / "back")
    orig = save_artifact(art, tmp_path / "orig")
    for name in ("manifest.json", "arrays.npz"):
        assert (back / name).read_bytes() == (orig / name).read_bytes()


def test_the_nir_graph_holds_the_integers_in_nir_terms_and_the_golden_traces_are_the_references(tmp_path):
    art = load_artifact("tiny")
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    path = tmp_path / "tiny.nir"
    result = export_nir(art, path, images)
    graph = nir.read(path)
    assert set(graph.nodes) == {"input", "fc1.affine", "fc1", "fc2.affine", "fc2", "output"}
    fc1, hidden = graph.nodes["fc1"], art.layers[0]
    assert type(fc1).__name__ == "LIF" and np.all(fc1.tau == 2.0 ** hidden.leak_shift)
    assert np.array_equal(fc1.v_threshold, hidden.threshold) and np.array_equal(fc1.r, fc1.tau)
    assert np.array_equal(graph.nodes["fc1.affine"].weight, hidden.weights)
    assert type(graph.nodes["fc2"]).__name__ == "I" and float(graph.metadata["dt"]) == F.DT
    data = nir.read_data(result["golden"])
    trace = reference.run(art, images)
    got = data.nodes["fc1"].observables["spikes"].data
    assert got.shape == (3, art.timesteps, 128) and np.array_equal(got, trace.spikes[1])
    assert np.array_equal(data.nodes["input"].observables["spikes"].data, trace.spikes[0].reshape(3, art.timesteps, -1))
    assert np.array_equal(data.nodes["fc2"].observables["scores"].data[:, 0], trace.scores)
    again = tmp_path / "again.nir"
    export_nir(art, again, images)
    assert again.read_bytes() == path.read_bytes()  # deterministic
    assert (tmp_path / "again.golden.nir").read_bytes() == (tmp_path / "tiny.golden.nir").read_bytes()


def _graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _dense(n_out, n_in):
    return nir.Affine(weight=np.ones((n_out, n_in)), bias=np.zeros(n_out))


def test_what_the_contract_cannot_hold_is_refused_naming_the_node():
    lif = nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))
    inp, out = nir.Input(input_type={"input": np.array([4])}), nir.Output(output_type={"output": np.array([3])})
    recurrent = _graph({"input": inp, "fc": _dense(3, 4), "lif": lif, "output": out},
                       [("input", "fc"), ("fc", "lif"), ("lif", "fc"), ("lif", "output")])
    with pytest.raises(ArtifactError, match="node lif: 2 outgoing edges"):
        read_chain(recurrent, "x.nir")
    loop = _graph({"input": inp, "fc": _dense(3, 4), "lif": lif, "output": out},
                  [("input", "fc"), ("fc", "lif"), ("lif", "fc")])
    with pytest.raises(ArtifactError, match="node fc: a recurrent edge"):
        read_chain(loop, "x.nir")
    delay = _graph({"input": inp, "d": nir.Delay(delay=np.ones(4)), "lif": lif, "output": out},
                   [("input", "d"), ("d", "lif"), ("lif", "output")])
    with pytest.raises(ArtifactError, match="node d: a Delay where the contract needs an Affine"):
        read_chain(delay, "x.nir")
    shapes = _graph({"input": inp, "fc": _dense(3, 4), "lif": lif, "fc2": _dense(2, 5), "li": lif, "output": out},
                    [("input", "fc"), ("fc", "lif"), ("lif", "fc2"), ("fc2", "li"), ("li", "output")])
    with pytest.raises(ArtifactError, match="node fc2: takes 5 inputs, lif gives 3"):
        read_chain(shapes, "x.nir")


def test_an_exported_file_whose_integers_were_edited_off_the_grid_is_refused(tmp_path):
    art = random_artifact(5)
    graph = to_nir(art)
    layer = art.layers[0]
    graph.nodes[layer.name + F.AFFINE_SUFFIX].weight[0, 0] += 0.25
    nir.write(tmp_path / "edited.nir", graph)
    with pytest.raises(ArtifactError, match=f"node {layer.name}.affine: weight is not on the integer grid"):
        import_nir(tmp_path / "edited.nir")


def test_a_foreign_network_is_refused_until_its_framework_is_mapped(tmp_path):
    lif = nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([4])}), "fc": _dense(3, 4),
                                "lif": lif, "output": nir.Output(output_type={"output": np.array([3])})},
                         edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    nir.write(tmp_path / "foreign.nir", graph)
    with pytest.raises(ConfigError, match="not exported by snnfpga"):
        import_nir(tmp_path / "foreign.nir", "snntorch")


def test_cli_export_then_import_then_sim(tmp_path):
    """The command line round trip, and the imported model is bit-exact in the Verilog."""
    from tests.test_sim_cocotb import require

    r = cli("export", "tiny", "--format", "nir", "--out", tmp_path / "t.nir", "--images", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = last_json(r.stdout)
    assert out["nodes"] == 6 and out["images"] == 2 and (tmp_path / "t.golden.nir").exists()
    r = cli("import", tmp_path / "t.nir", "--out", tmp_path / "m", "--json")
    assert r.returncode == 0, r.stderr
    from snnfpga.model.artifact import arrays_sha256

    assert last_json(r.stdout)["arrays_sha256"] == arrays_sha256(load_artifact("tiny"))
    assert (tmp_path / "m" / "arrays.npz").read_bytes() == (shipped_model_dir("tiny") / "arrays.npz").read_bytes()
    for args, message in ((("export", "mixer", "--format", "nir", "--out", tmp_path / "m.nir"), "layer graph"),
                          (("import", tmp_path / "missing.nir", "--out", tmp_path / "x"), "no such NIR file")):
        r = cli(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    require("verilator")
    sample = tmp_path / "sample.npz"
    rng = np.random.default_rng(1)
    np.savez(sample, images=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), labels=np.zeros(3, np.uint8))
    r = cli("sim", tmp_path / "m", "--data", sample, "--json")
    assert r.returncode == 0, r.stderr
    assert last_json(r.stdout)["mismatches"] == 0
