"""The integer artifact: the single source of truth that every later stage reads.

On disk an artifact is a directory with

* ``manifest.json`` -- format name and version, input shape, encoder, time steps, the
  network (version 1: a list of dense layers; version 2: a graph of named nodes with their
  kinds, inputs, shapes, parameters, widths and proven bounds), the decision rule,
  provenance, and the SHA-256 of the arrays file;
* ``arrays.npz`` -- the integer arrays (version 1: ``L<i>.weight``, ``L<i>.bias``,
  ``L<i>.threshold``; version 2: ``<node>.<array>``).

In memory every artifact is a graph of node kinds (:mod:`snnfpga.model.kinds`). A graph
that is a chain of dense layers (:func:`snnfpga.model.graph.chain_layers`) offers the
per-layer view (:attr:`Artifact.layers`) that the hardware stages read; one ending in an
``output`` layer is written as version 1, byte for byte as before graphs existed; any other
graph (a chain ending in ``lif_output`` included) is written as version 2.

A *model directory* (what ``snnfpga train`` writes) is an artifact directory that may also
hold ``checkpoint.pt`` (the float QAT model) and ``training.json``.

The format is documented in ``docs/artifact-format.md`` and the semantics in
``docs/integer-contract.md``. :func:`load_artifact` validates everything and raises
:class:`~snnfpga.errors.ArtifactError` with a message that names the problem.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from snnfpga.errors import ArtifactError, MappingError
from snnfpga.model import graph as G
from snnfpga.model.graph import Layer  # noqa: F401  (the chain view's layer, re-exported)
from snnfpga.model.kinds import MAX_REGISTER_BITS, WEIGHT_BITS_RANGE, Node, Output  # noqa: F401
from snnfpga.model.kinds.base import _array_dtype
from snnfpga.model.kinds.lif import DEFAULT_FIRE

FORMAT = "snnfpga.artifact"
VERSION = 1  # chains
GRAPH_VERSION = 2  # graphs
VERSIONS = (VERSION, GRAPH_VERSION)
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
ENCODERS = ("rate", "threshold", "ttfs")
MAX_TIMESTEPS = 64
TTFS_BITS = (2, 8)
MAX_TTFS_WINDOWS = 16
DECISION = {"rule": "argmax_score", "tie_break": "lowest_index"}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Encoder:
    """Input encoder of the contract, from 8-bit pixels to spikes.

    ``rate``: per pixel an integrate-and-fire unit: ``acc`` starts at ``phase``
    (0..255); each step ``acc += pixel``; spike when ``acc >= 256``, then ``acc -= 256``.
    ``threshold``: spike at every step when ``pixel >= level`` (1..255).
    ``ttfs``: time to first spike with ``bits`` ``b`` (2..8): ``x = pixel >> (8 - b)``, one
    spike at step ``S - x`` of window 0 (``S = 2**b - 1`` steps), none for ``x = 0``.
    """

    kind: str
    phase: int = 128
    level: int = 128
    bits: int = 4

    @property
    def window_steps(self) -> int | None:
        """``S``, the steps of a TTFS window; None for the rate-coded encoders."""
        return (1 << self.bits) - 1 if self.kind == "ttfs" else None

    def to_json(self) -> dict:
        if self.kind == "rate":
            return {"kind": "rate", "phase": self.phase}
        if self.kind == "ttfs":
            return {"kind": "ttfs", "bits": self.bits}
        return {"kind": "threshold", "level": self.level}

    @staticmethod
    def from_json(enc: dict) -> "Encoder":
        return Encoder(kind=enc["kind"], phase=int(enc.get("phase", 128)), level=int(enc.get("level", 128)),
                       bits=int(enc.get("bits", 0)))


@dataclass(frozen=True, eq=False)
class Artifact:
    """A validated integer artifact: metadata and a graph of nodes in topological order."""

    name: str
    input_shape: tuple[int, int]
    encoder: Encoder
    timesteps: int
    nodes: tuple[Node, ...]
    provenance: dict = field(default_factory=dict)

    @cached_property
    def graph(self) -> G.Graph:
        """Types and width proofs of every node (see :func:`snnfpga.model.graph.analyse`)."""
        return G.analyse(list(self.nodes), self.input_shape, self.timesteps, self.encoder.window_steps)

    @property
    def is_ttfs(self) -> bool:
        """Time-to-first-spike coded (``ttfs`` encoder, ``ttfs`` layers)."""
        return self.encoder.kind == "ttfs"

    @cached_property
    def chain(self) -> tuple[Layer, ...] | None:
        return G.chain_layers(self.nodes)

    @property
    def is_chain(self) -> bool:
        return self.chain is not None

    @property
    def format_version(self) -> int:
        """The manifest version it is written as: 1 for a chain that version 1 can hold
        (ending in an ``output`` layer), else 2."""
        return VERSION if self.is_chain and self.chain[-1].kind == "output" else GRAPH_VERSION

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The per-layer view of a chain of dense layers; MappingError for other graphs."""
        if self.chain is None:
            raise MappingError(self.not_a_chain())
        return self.chain

    def not_a_chain(self, what: str = "this stage") -> str:
        kinds = sorted({n.KIND for n in self.nodes} - {"dense", "lif", "output"})
        extra = f" with {', '.join(kinds)} nodes" if kinds else ""
        return (f"model {self.name!r} is a layer graph ({len(self.nodes)} nodes{extra}); {what} handles "
                f"only chains of dense LIF layers so far (for example 'default' or 'tiny')")

    @property
    def n_inputs(self) -> int:
        return self.input_shape[0] * self.input_shape[1]

    @property
    def n_classes(self) -> int:
        return self.graph.types[self.nodes[-1].name].shape[0]

    @property
    def hidden_layers(self) -> tuple[Layer, ...]:
        return self.layers[:-1]

    @property
    def sizes(self) -> list[int]:
        return [self.n_inputs] + [layer.n_out for layer in self.layers]

    def bounds(self, index: int) -> dict:
        """Proven register ranges of chain layer ``index`` (``current``, and ``membrane`` or ``score``)."""
        layer = self.layers[index]
        proofs = self.graph.proofs
        out = {"current": proofs[G.dense_name(layer.name)].registers["current"]}
        for key in ("membrane",) * layer.spiking + ("score",) * layer.is_output:
            out[key] = proofs[layer.name].registers[key]
        return out

    def saturates(self, index: int) -> bool:
        """True when chain layer ``index``'s membrane is declared narrower than its proven range."""
        layer = self.layers[index]
        return self.graph.nodes[2 * index + 1].saturates(self.graph.proofs[layer.name])

    @property
    def spiking_nodes(self) -> list[Node]:
        """The neuron populations that emit spikes (``lif``, ``glif``), in topological order."""
        return [n for n in self.nodes if n.SPIKING]


def build_artifact(name: str, input_shape, encoder: Encoder, timesteps: int, layers: list[dict],
                   provenance: dict | None = None, membrane_bits: int | None = None) -> Artifact:
    """Make a chain artifact from integer arrays, choosing every register width by proof.

    ``layers`` is a list of dicts with ``weights``, ``bias``, ``weight_bits`` and, for all but
    the last layer, ``threshold``, ``leak_shift`` and ``reset``; the last layer is the output
    layer. ``membrane_bits`` caps the membrane width: where the proven range needs more, the
    contract saturates (and the manifest says so). Raises :class:`ArtifactError` if the
    result is not a valid artifact.
    """
    return build_graph_artifact(name, input_shape, encoder, timesteps, G.chain_nodes(layers),
                                provenance=provenance, membrane_bits=membrane_bits)


def build_graph_artifact(name: str, input_shape, encoder: Encoder, timesteps: int, nodes: list[Node],
                         provenance: dict | None = None, membrane_bits: int | None = None) -> Artifact:
    """Make an artifact from graph nodes (widths unset or given), choosing every width by proof.

    Nodes may come in any order; they are stored in topological order."""
    input_shape = tuple(int(x) for x in input_shape)
    _check_header(name, input_shape, encoder, timesteps)
    graph = G.analyse(list(nodes), input_shape, int(timesteps), encoder.window_steps)
    sized = G.with_widths(graph, membrane_bits=membrane_bits)
    art = Artifact(name=name, input_shape=input_shape, encoder=encoder, timesteps=int(timesteps),
                   nodes=tuple(sized), provenance=dict(provenance or {}))
    validate(art)
    return art


# --------------------------------------------------------------------------------------
# Validation


def _check_header(name, input_shape, encoder, timesteps) -> None:
    def fail(msg):
        raise ArtifactError(f"artifact {name!r}: {msg}")

    h, w = input_shape
    if h < 1 or w < 1:
        fail(f"input shape must be positive, got {h}x{w}")
    if encoder.kind not in ENCODERS:
        fail(f"encoder kind must be one of {', '.join(ENCODERS)}, got {encoder.kind!r}")
    if encoder.kind == "rate" and not 0 <= encoder.phase <= 255:
        fail(f"rate encoder phase must be in 0..255, got {encoder.phase}")
    if encoder.kind == "threshold" and not 1 <= encoder.level <= 255:
        fail(f"threshold encoder level must be in 1..255, got {encoder.level}")
    if encoder.kind == "ttfs":
        lo, hi = TTFS_BITS
        if not isinstance(encoder.bits, int) or not lo <= encoder.bits <= hi:
            fail(f"ttfs encoder bits must be in {lo}..{hi}, got {encoder.bits}")
        s = encoder.window_steps
        if not isinstance(timesteps, int) or timesteps % s or not 2 <= timesteps // s <= MAX_TTFS_WINDOWS:
            fail(f"timesteps must be a whole number of ttfs windows of {s} steps (2..{MAX_TTFS_WINDOWS} windows), "
                 f"got {timesteps}")
    elif not isinstance(timesteps, int) or not 1 <= timesteps <= MAX_TIMESTEPS:
        fail(f"timesteps must be in 1..{MAX_TIMESTEPS}, got {timesteps}")


def validate(art: Artifact) -> None:
    """Check every rule of the contract; raise :class:`ArtifactError` naming the first breach."""
    _check_header(art.name, art.input_shape, art.encoder, art.timesteps)
    if not art.nodes:
        raise ArtifactError(f"artifact {art.name!r}: no nodes")
    try:
        graph = art.graph
        G.check_widths(graph)
    except ArtifactError as exc:
        raise ArtifactError(f"artifact {art.name!r}: {exc}") from None
    if tuple(n.name for n in graph.nodes) != tuple(n.name for n in art.nodes):
        raise ArtifactError(f"artifact {art.name!r}: nodes are not in topological order")


# --------------------------------------------------------------------------------------
# Serialization


def manifest_dict(art: Artifact, arrays_sha256: str) -> dict:
    """The manifest as written to disk (key order fixed, no timestamps)."""
    head = {
        "format": FORMAT,
        "version": art.format_version,
        "name": art.name,
        "input": {"height": art.input_shape[0], "width": art.input_shape[1], "pixel_bits": 8,
                  "order": "row-major"},
        "encoder": art.encoder.to_json(),
        "timesteps": art.timesteps,
    }
    if art.format_version == VERSION:
        head["layers"] = [_layer_entry(art, i) for i in range(len(art.layers))]
    else:
        graph = art.graph
        head["nodes"] = [n.manifest_entry(graph.types[n.name], graph.proofs[n.name]) for n in graph.nodes]
        head["output"] = art.nodes[-1].name
    head.update({"decision": dict(DECISION), "arrays": {"file": ARRAYS, "sha256": arrays_sha256},
                 "provenance": art.provenance})
    return head


def _layer_entry(art: Artifact, i: int) -> dict:
    layer = art.layers[i]
    entry = {"name": layer.name, "kind": layer.kind, "in": layer.n_in, "out": layer.n_out,
             "weight_bits": layer.weight_bits, "bias_bits": layer.bias_bits,
             "current_bits": layer.current_bits}
    if layer.kind == "lif":
        entry.update({"threshold_bits": layer.threshold_bits, "membrane_bits": layer.membrane_bits,
                      "leak_shift": layer.leak_shift, "reset": layer.reset,
                      "saturation": "active" if art.saturates(i) else "unreachable"})
        if layer.fire != DEFAULT_FIRE:  # named only when not the default (older manifests stay the same)
            entry["fire"] = layer.fire
        if layer.leak_shift2 is not None:
            entry["leak_shift2"] = layer.leak_shift2
    else:
        entry["score_bits"] = layer.score_bits
    entry["proven_bounds"] = {k: [int(v[0]), int(v[1])] for k, v in art.bounds(i).items()}
    return entry


def _array_entries(art: Artifact):
    """``(file key, array, dtype)`` in the order they are written."""
    if art.format_version == VERSION:
        for i, layer in enumerate(art.layers):
            yield f"L{i}.weight", layer.weights, _array_dtype(layer.weight_bits)
            yield f"L{i}.bias", layer.bias, _array_dtype(layer.bias_bits)
            if layer.kind == "lif":
                yield f"L{i}.threshold", layer.threshold, _array_dtype(layer.threshold_bits)
        return
    for node in art.nodes:
        for key, arr, dtype in node.array_entries():
            yield f"{node.name}.{key}", arr, dtype


def arrays_sha256(art: Artifact) -> str:
    """SHA-256 (hex) of :func:`arrays_bytes`: identifies the integers of a model."""
    return hashlib.sha256(arrays_bytes(art)).hexdigest()


def arrays_bytes(art: Artifact) -> bytes:
    """The ``arrays.npz`` bytes: deterministic (fixed entry order and zip timestamps)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr, dtype in _array_entries(art):
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.ascontiguousarray(arr.astype(dtype)), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, npy.getvalue())
    return buf.getvalue()


def save_artifact(art: Artifact, directory: str | Path) -> Path:
    """Write ``manifest.json`` and ``arrays.npz`` into ``directory`` (created if needed)."""
    validate(art)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    blob = arrays_bytes(art)
    (directory / ARRAYS).write_bytes(blob)
    manifest = manifest_dict(art, hashlib.sha256(blob).hexdigest())
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return directory


# Models shipped inside the package (model/<name>/), usable by name wherever a model
# directory is expected.
SHIPPED_MODELS = ("default", "tiny", "mixer", "mixer-glif", "mixer-tiny", "ttfs", "ttfs-tiny")


def shipped_model_dir(name: str) -> Path:
    """Directory of a shipped model (``model/<name>``)."""
    return Path(str(resources.files("snnfpga.model") / name))


def default_model_dir() -> Path:
    """The shipped default model directory (``model/default``)."""
    return shipped_model_dir("default")


def resolve_model_dir(model: str | Path) -> Path:
    """A model directory: an existing path, else a shipped model name (``default``, ``tiny``, ...)."""
    path = Path(model)
    if not path.exists() and str(model) in SHIPPED_MODELS:
        path = shipped_model_dir(str(model))
    if not path.exists():
        raise ArtifactError(f"model directory not found: {model}")
    if not path.is_dir():
        raise ArtifactError(f"{model} is not a directory (a model directory holds {MANIFEST} and {ARRAYS})")
    return path


def load_artifact(model: str | Path) -> Artifact:
    """Load and validate the artifact of a model directory (or a shipped model's name)."""
    directory = resolve_model_dir(model)
    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        raise ArtifactError(f"{directory}: no {MANIFEST} (not a model directory)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: corrupt manifest, not valid JSON ({exc})") from None
    try:
        return _from_manifest(manifest, directory)
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ArtifactError(f"{manifest_path}: malformed manifest ({type(exc).__name__}: {exc})") from None


def _read_arrays(manifest: dict, directory: Path) -> tuple[dict, Path]:
    arrays_path = directory / manifest["arrays"]["file"]
    if not arrays_path.exists():
        raise ArtifactError(f"{directory}: arrays file {arrays_path.name} is missing")
    blob = arrays_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != manifest["arrays"]["sha256"]:
        raise ArtifactError(f"{arrays_path}: corrupt (SHA-256 differs from the manifest)")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ArtifactError(f"{arrays_path}: unreadable ({exc})") from None
    return arrays, arrays_path


def _integer_array(arrays: dict, name: str, arrays_path: Path) -> np.ndarray:
    if name not in arrays:
        raise ArtifactError(f"{arrays_path}: missing array {name}")
    a = arrays[name]
    if not np.issubdtype(a.dtype, np.integer):
        raise ArtifactError(f"{arrays_path}: array {name} must be integer, got {a.dtype}")
    return a.astype(np.int64)


def _from_manifest(manifest: dict, directory: Path) -> Artifact:
    where = directory / MANIFEST
    _check_format(manifest, where)
    arrays, arrays_path = _read_arrays(manifest, directory)
    return artifact_from_manifest(manifest, arrays, where, arrays_path)


def _check_format(manifest, where) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{where}: not an snnfpga artifact (format must be {FORMAT!r})")
    version = manifest.get("version")
    if version not in VERSIONS:
        raise ArtifactError(f"{where}: unsupported artifact version {version!r} (this snnfpga reads versions "
                            f"{', '.join(map(str, VERSIONS))})")


def artifact_from_manifest(manifest: dict, arrays: dict, where, arrays_path=None) -> Artifact:
    """The artifact a manifest (as :func:`manifest_dict` writes it; its ``arrays`` entry is
    not checked) and its integer arrays (``{key: array}`` as in ``arrays.npz``) describe,
    validated as :func:`load_artifact` does. ``where`` names the source in errors."""
    _check_format(manifest, where)
    arrays_path = arrays_path or where
    version = manifest["version"]
    nodes = _chain_from_manifest(manifest, arrays, arrays_path, where) if version == VERSION else \
        _nodes_from_manifest(manifest, arrays, arrays_path)
    decision = manifest["decision"]
    if decision != DECISION:
        raise ArtifactError(f"{where}: unsupported decision rule {decision}")
    enc = manifest["encoder"]
    encoder = Encoder.from_json(enc)
    inp = manifest["input"]
    name, input_shape = str(manifest["name"]), (int(inp["height"]), int(inp["width"]))
    timesteps = int(manifest["timesteps"])
    _check_header(name, input_shape, encoder, timesteps)
    try:
        ordered = G.analyse(nodes, input_shape, timesteps, encoder.window_steps).nodes
    except ArtifactError as exc:
        raise ArtifactError(f"{where}: {exc}") from None
    art = Artifact(name=name, input_shape=input_shape, encoder=encoder, timesteps=timesteps, nodes=ordered,
                   provenance=dict(manifest.get("provenance") or {}))
    validate(art)
    if version == VERSION:
        if not art.is_chain:
            raise ArtifactError(f"{where}: version-1 layers do not form a chain")
        for i, entry in enumerate(manifest["layers"]):
            if entry["kind"] == "lif":
                declared, actual = entry.get("saturation"), "active" if art.saturates(i) else "unreachable"
                if declared != actual:
                    raise ArtifactError(f"{where}: layer {i} declares saturation {declared!r} but the proven bounds "
                                        f"make it {actual!r}")
    else:
        _check_declared(art, manifest, where)
    return art


def _chain_from_manifest(manifest, arrays, arrays_path, where) -> list[Node]:
    specs = []
    entries = manifest["layers"]
    if not entries:
        raise ArtifactError(f"{where}: no layers")
    for i, entry in enumerate(entries):
        want = "output" if i == len(entries) - 1 else "lif"
        if entry["kind"] != want:
            raise ArtifactError(f"{where}: layer {i} ({entry['name']}): kind must be {want!r}, got {entry['kind']!r} "
                                "(hidden layers are LIF, the last is the output layer)")
        lif = want == "lif"
        spec = {"name": str(entry["name"]), "weights": _integer_array(arrays, f"L{i}.weight", arrays_path),
                "bias": _integer_array(arrays, f"L{i}.bias", arrays_path),
                "weight_bits": int(entry["weight_bits"]), "bias_bits": int(entry["bias_bits"]),
                "current_bits": int(entry["current_bits"])}
        w = spec["weights"]
        if w.ndim == 2 and (w.shape[1] != entry["in"] or w.shape[0] != entry["out"]):
            raise ArtifactError(f"{where}: layer {i} declares {entry['in']}->{entry['out']} but its weights are "
                                f"{list(w.shape[::-1])}")
        if lif:
            spec.update(threshold=_integer_array(arrays, f"L{i}.threshold", arrays_path),
                        leak_shift=None if entry["leak_shift"] is None else int(entry["leak_shift"]),
                        reset=entry["reset"], fire=entry.get("fire", DEFAULT_FIRE),
                        leak_shift2=entry.get("leak_shift2"), threshold_bits=int(entry["threshold_bits"]),
                        membrane_bits=int(entry["membrane_bits"]))
        else:
            spec["score_bits"] = int(entry["score_bits"])
        specs.append(spec)
    return G.chain_nodes(specs)


def _nodes_from_manifest(manifest, arrays, arrays_path) -> list[Node]:
    nodes = []
    for entry in manifest["nodes"]:
        name = entry.get("name")
        cls = G.kind_of(entry.get("kind"))
        try:
            own = {key: _integer_array(arrays, f"{name}.{key}", arrays_path) for key in cls.ARRAYS}
            nodes.append(cls.from_manifest(entry, own))
        except KeyError as exc:
            raise ArtifactError(f"node {name!r} ({cls.KIND}): missing key {exc}") from None
        except TypeError as exc:
            raise ArtifactError(f"node {name!r} ({cls.KIND}): {exc}") from None
    return nodes


def _check_declared(art: Artifact, manifest: dict, where) -> None:
    """Shapes, saturation flags and proven bounds written in a version-2 manifest must be the
    ones the loader recomputes."""
    if manifest.get("output") != art.nodes[-1].name:
        raise ArtifactError(f"{where}: output is {manifest.get('output')!r} but the graph's output node is "
                            f"{art.nodes[-1].name!r}")
    graph = art.graph
    for entry in manifest["nodes"]:
        name = entry["name"]
        node = graph.node(name)
        expected = node.manifest_entry(graph.types[name], graph.proofs[name])
        for key in ("shape", "saturation", "proven_bounds"):
            if key in expected and entry.get(key) != expected[key]:
                raise ArtifactError(f"{where}: node {name!r} ({node.KIND}) declares {key} {entry.get(key)} but the "
                                    f"graph gives {expected[key]}")
