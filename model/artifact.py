"""The integer artifact: the single source of truth that every later stage reads.

On disk an artifact is a directory with

* ``manifest.json`` -- format name and version, input shape, encoder, time steps, layers
  (sizes, leak, reset, bit widths of weights and of every state register, proven bounds),
  output decision rule, provenance, and the SHA-256 of the arrays file;
* ``arrays.npz`` -- the integer arrays ``L<i>.weight`` ``[n_out, n_in]``, ``L<i>.bias``
  ``[n_out]`` and (LIF layers) ``L<i>.threshold`` ``[n_out]``.

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
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np

from snnfpga.errors import ArtifactError
from snnfpga.model import widths as W

FORMAT = "snnfpga.artifact"
VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
ENCODERS = ("rate", "threshold")
RESETS = ("zero", "subtract")
LAYER_KINDS = ("lif", "output")
MAX_TIMESTEPS = 64
MAX_LEAK_SHIFT = 16
WEIGHT_BITS_RANGE = (2, 8)
# Largest register width the contract allows. Bounds the exactness of the float32
# matrix products in the reference as well (every partial sum is an integer < 2**24).
MAX_REGISTER_BITS = 24
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Encoder:
    """Input encoder of the contract, from 8-bit pixels to spikes.

    ``rate``: per pixel an integrate-and-fire unit: ``acc`` starts at ``phase``
    (0..255); each step ``acc += pixel``; spike when ``acc >= 256``, then ``acc -= 256``.
    ``threshold``: spike at every step when ``pixel >= level`` (1..255).
    """

    kind: str
    phase: int = 128
    level: int = 128

    def to_json(self) -> dict:
        if self.kind == "rate":
            return {"kind": "rate", "phase": self.phase}
        return {"kind": "threshold", "level": self.level}


@dataclass(frozen=True, eq=False)
class Layer:
    """One fully connected layer of the contract.

    ``kind`` is ``lif`` (hidden, spiking) or ``output`` (last layer: no spikes, scores).
    Widths are two's-complement bit counts; ``membrane_bits`` and ``leak_shift``/``reset``
    exist for LIF layers only, ``score_bits`` for the output layer only.
    """

    name: str
    kind: str
    weights: np.ndarray  # int [n_out, n_in]
    bias: np.ndarray  # int [n_out]
    threshold: np.ndarray | None  # int [n_out], >= 1; None for the output layer
    weight_bits: int
    leak_shift: int | None = None
    reset: str | None = None
    bias_bits: int = 0
    threshold_bits: int = 0
    current_bits: int = 0
    membrane_bits: int = 0
    score_bits: int = 0

    @property
    def n_in(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[0])


@dataclass(frozen=True, eq=False)
class Artifact:
    """A validated integer artifact (see the module docstring)."""

    name: str
    input_shape: tuple[int, int]
    encoder: Encoder
    timesteps: int
    layers: tuple[Layer, ...]
    provenance: dict = field(default_factory=dict)

    @property
    def n_inputs(self) -> int:
        return self.input_shape[0] * self.input_shape[1]

    @property
    def n_classes(self) -> int:
        return self.layers[-1].n_out

    @property
    def hidden_layers(self) -> tuple[Layer, ...]:
        return self.layers[:-1]

    @property
    def sizes(self) -> list[int]:
        return [self.n_inputs] + [layer.n_out for layer in self.layers]

    def bounds(self, index: int) -> dict:
        """Proven register ranges of layer ``index`` (``current``, and ``membrane`` or ``score``)."""
        layer = self.layers[index]
        i_lo, i_hi = W.current_bounds(layer.weights)
        out = {"current": (int(i_lo.min()), int(i_hi.max()))}
        if layer.kind == "lif":
            lo, hi = W.membrane_bounds(layer.weights, layer.bias, layer.threshold, self.timesteps,
                                       layer.leak_shift, layer.reset)
            out["membrane"] = (int(lo.min()), int(hi.max()))
        else:
            lo, hi = W.score_bounds(layer.weights, layer.bias, self.timesteps)
            out["score"] = (int(lo.min()), int(hi.max()))
        return out

    def saturates(self, index: int) -> bool:
        """True when layer ``index``'s membrane is declared narrower than its proven range."""
        layer = self.layers[index]
        if layer.kind != "lif":
            return False
        return W.signed_bits(*self.bounds(index)["membrane"]) > layer.membrane_bits


def build_artifact(name: str, input_shape, encoder: Encoder, timesteps: int, layers: list[dict],
                   provenance: dict | None = None, membrane_bits: int | None = None) -> Artifact:
    """Make an artifact from integer arrays, choosing every register width by proof.

    ``layers`` is a list of dicts with ``weights``, ``bias``, ``weight_bits`` and, for all but
    the last layer, ``threshold``, ``leak_shift`` and ``reset``; the last layer is the output
    layer. ``membrane_bits`` caps the membrane width: where the proven range needs more, the
    contract saturates (and the manifest says so). Raises :class:`ArtifactError` if the
    result is not a valid artifact.
    """
    built = []
    for i, spec in enumerate(layers):
        is_output = i == len(layers) - 1
        weights = np.asarray(spec["weights"]).astype(np.int64)
        bias = np.asarray(spec["bias"]).astype(np.int64)
        threshold = None if is_output else np.asarray(spec["threshold"]).astype(np.int64)
        layer = Layer(name=spec.get("name", f"fc{i + 1}"), kind="output" if is_output else "lif",
                      weights=weights, bias=bias, threshold=threshold,
                      weight_bits=int(spec["weight_bits"]),
                      leak_shift=None if is_output else spec.get("leak_shift"),
                      reset=None if is_output else spec.get("reset", "zero"))
        i_lo, i_hi = W.current_bounds(weights)
        widths = {"bias_bits": W.signed_bits(int(bias.min()), int(bias.max())),
                  "current_bits": W.signed_bits(int(i_lo.min()), int(i_hi.max()))}
        if is_output:
            lo, hi = W.score_bounds(weights, bias, timesteps)
            widths["score_bits"] = W.signed_bits(int(lo.min()), int(hi.max()))
        else:
            widths["threshold_bits"] = W.signed_bits(0, int(threshold.max()))
            lo, hi = W.membrane_bounds(weights, bias, threshold, timesteps, layer.leak_shift, layer.reset)
            proven = W.signed_bits(int(lo.min()), int(hi.max()))
            need = max(proven, widths["threshold_bits"])
            widths["membrane_bits"] = need if membrane_bits is None else min(need, max(membrane_bits, widths["threshold_bits"]))
        built.append(replace(layer, **widths))
    art = Artifact(name=name, input_shape=tuple(int(x) for x in input_shape), encoder=encoder,
                   timesteps=int(timesteps), layers=tuple(built), provenance=dict(provenance or {}))
    validate(art)
    return art


# --------------------------------------------------------------------------------------
# Validation


def validate(art: Artifact) -> None:
    """Check every rule of the contract; raise :class:`ArtifactError` naming the first breach."""
    def fail(msg):
        raise ArtifactError(f"artifact {art.name!r}: {msg}")

    h, w = art.input_shape
    if h < 1 or w < 1:
        fail(f"input shape must be positive, got {h}x{w}")
    enc = art.encoder
    if enc.kind not in ENCODERS:
        fail(f"encoder kind must be one of {', '.join(ENCODERS)}, got {enc.kind!r}")
    if enc.kind == "rate" and not 0 <= enc.phase <= 255:
        fail(f"rate encoder phase must be in 0..255, got {enc.phase}")
    if enc.kind == "threshold" and not 1 <= enc.level <= 255:
        fail(f"threshold encoder level must be in 1..255, got {enc.level}")
    if not 1 <= art.timesteps <= MAX_TIMESTEPS:
        fail(f"timesteps must be in 1..{MAX_TIMESTEPS}, got {art.timesteps}")
    if len(art.layers) < 1:
        fail("no layers")
    n_in = art.n_inputs
    for i, layer in enumerate(art.layers):
        where = f"layer {i} ({layer.name})"
        want_kind = "output" if i == len(art.layers) - 1 else "lif"
        if layer.kind != want_kind:
            fail(f"{where}: kind must be {want_kind!r}, got {layer.kind!r} (hidden layers are LIF, the last is the output layer)")
        if layer.weights.ndim != 2 or layer.weights.shape[1] != n_in:
            fail(f"{where}: weights must have shape [n_out, {n_in}], got {list(layer.weights.shape)}")
        if layer.n_out < 1:
            fail(f"{where}: no neurons")
        for arr_name in ("bias",) + (("threshold",) if layer.kind == "lif" else ()):
            arr = getattr(layer, arr_name)
            if arr is None or arr.shape != (layer.n_out,):
                fail(f"{where}: {arr_name} must have shape [{layer.n_out}], got {None if arr is None else list(arr.shape)}")
        lo_b, hi_b = WEIGHT_BITS_RANGE
        if not lo_b <= layer.weight_bits <= hi_b:
            fail(f"{where}: weight_bits must be in {lo_b}..{hi_b}, got {layer.weight_bits}")
        _check_fits(fail, where, "weights", layer.weights, layer.weight_bits)
        _check_fits(fail, where, "bias", layer.bias, layer.bias_bits)
        bounds = art.bounds(i)
        _check_width(fail, where, "current", layer.current_bits, bounds["current"])
        if layer.kind == "lif":
            if layer.leak_shift is not None and not 1 <= layer.leak_shift <= MAX_LEAK_SHIFT:
                fail(f"{where}: leak_shift must be null (no leak) or 1..{MAX_LEAK_SHIFT}, got {layer.leak_shift}")
            if layer.reset not in RESETS:
                fail(f"{where}: reset must be one of {', '.join(RESETS)}, got {layer.reset!r}")
            if layer.threshold.min() < 1:
                fail(f"{where}: thresholds must be >= 1, found {int(layer.threshold.min())}")
            _check_fits(fail, where, "threshold", layer.threshold, layer.threshold_bits)
            if layer.membrane_bits < layer.threshold_bits:
                fail(f"{where}: membrane_bits ({layer.membrane_bits}) must be >= threshold_bits ({layer.threshold_bits})")
            if not 2 <= layer.membrane_bits <= MAX_REGISTER_BITS:
                fail(f"{where}: membrane_bits must be in 2..{MAX_REGISTER_BITS}, got {layer.membrane_bits}")
        else:
            _check_width(fail, where, "score", layer.score_bits, bounds["score"])
        n_in = layer.n_out


def _check_fits(fail, where, what, arr, bits):
    if not 2 <= bits <= MAX_REGISTER_BITS:
        fail(f"{where}: {what} width must be in 2..{MAX_REGISTER_BITS} bits, got {bits}")
    lo, hi = W.signed_range(bits)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = int(arr.min()) if arr.min() < lo else int(arr.max())
        fail(f"{where}: {what} value {bad} is beyond the {bits}-bit range {lo}..{hi}")


def _check_width(fail, where, what, bits, bound):
    need = W.signed_bits(*bound)
    if need > MAX_REGISTER_BITS:
        fail(f"{where}: {what} range {bound[0]}..{bound[1]} needs {need} bits, more than the {MAX_REGISTER_BITS} the contract allows")
    if bits < need:
        fail(f"{where}: {what}_bits is {bits} but the proven range {bound[0]}..{bound[1]} needs {need}")
    if bits > MAX_REGISTER_BITS:
        fail(f"{where}: {what}_bits {bits} is above the {MAX_REGISTER_BITS} the contract allows")


# --------------------------------------------------------------------------------------
# Serialization


def manifest_dict(art: Artifact, arrays_sha256: str) -> dict:
    """The manifest as written to disk (key order fixed, no timestamps)."""
    layers = []
    for i, layer in enumerate(art.layers):
        entry = {"name": layer.name, "kind": layer.kind, "in": layer.n_in, "out": layer.n_out,
                 "weight_bits": layer.weight_bits, "bias_bits": layer.bias_bits,
                 "current_bits": layer.current_bits}
        bounds = art.bounds(i)
        if layer.kind == "lif":
            entry.update({"threshold_bits": layer.threshold_bits, "membrane_bits": layer.membrane_bits,
                          "leak_shift": layer.leak_shift, "reset": layer.reset,
                          "saturation": "active" if art.saturates(i) else "unreachable"})
        else:
            entry["score_bits"] = layer.score_bits
        entry["proven_bounds"] = {k: list(v) for k, v in bounds.items()}
        layers.append(entry)
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": art.name,
        "input": {"height": art.input_shape[0], "width": art.input_shape[1], "pixel_bits": 8,
                  "order": "row-major"},
        "encoder": art.encoder.to_json(),
        "timesteps": art.timesteps,
        "layers": layers,
        "decision": {"rule": "argmax_score", "tie_break": "lowest_index"},
        "arrays": {"file": ARRAYS, "sha256": arrays_sha256},
        "provenance": art.provenance,
    }


def _array_dtype(bits: int):
    return np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32


def arrays_sha256(art: Artifact) -> str:
    """SHA-256 (hex) of :func:`arrays_bytes`: identifies the integers of a model."""
    return hashlib.sha256(arrays_bytes(art)).hexdigest()


def arrays_bytes(art: Artifact) -> bytes:
    """The ``arrays.npz`` bytes: deterministic (fixed entry order and zip timestamps)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, layer in enumerate(art.layers):
            entries = [("weight", layer.weights, layer.weight_bits), ("bias", layer.bias, layer.bias_bits)]
            if layer.kind == "lif":
                entries.append(("threshold", layer.threshold, layer.threshold_bits))
            for key, arr, bits in entries:
                npy = io.BytesIO()
                np.lib.format.write_array(npy, np.ascontiguousarray(arr.astype(_array_dtype(bits))), allow_pickle=False)
                info = zipfile.ZipInfo(f"L{i}.{key}.npy", date_time=_ZIP_DATE)
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
# directory is expected: ``default`` (the accuracy preset) and ``tiny`` (iCE40 UP5K).
SHIPPED_MODELS = ("default", "tiny")


def shipped_model_dir(name: str) -> Path:
    """Directory of a shipped model (``model/<name>``)."""
    return Path(str(resources.files("snnfpga.model") / name))


def default_model_dir() -> Path:
    """The shipped default model directory (``model/default``)."""
    return shipped_model_dir("default")


def resolve_model_dir(model: str | Path) -> Path:
    """A model directory: an existing path, else a shipped model name (``default``, ``tiny``)."""
    path = Path(model)
    if not path.exists() and str(model) in SHIPPED_MODELS:
        path = shipped_model_dir(str(model))
    if not path.exists():
        raise ArtifactError(f"model directory not found: {model}")
    if not path.is_dir():
        raise ArtifactError(f"{model} is not a directory (a model directory holds {MANIFEST} and {ARRAYS})")
    return path


def load_artifact(model: str | Path) -> Artifact:
    """Load and validate the artifact of a model directory (or ``default``)."""
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


def _from_manifest(manifest: dict, directory: Path) -> Artifact:
    where = directory / MANIFEST
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{where}: not an snnfpga artifact (format must be {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise ArtifactError(f"{where}: unsupported artifact version {manifest.get('version')!r} (this snnfpga reads version {VERSION})")
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
    layers = []
    for i, entry in enumerate(manifest["layers"]):
        def arr(key):
            name = f"L{i}.{key}"
            if name not in arrays:
                raise ArtifactError(f"{arrays_path}: missing array {name}")
            a = arrays[name]
            if not np.issubdtype(a.dtype, np.integer):
                raise ArtifactError(f"{arrays_path}: array {name} must be integer, got {a.dtype}")
            return a.astype(np.int64)
        lif = entry["kind"] == "lif"
        layer = Layer(name=str(entry["name"]), kind=str(entry["kind"]), weights=arr("weight"), bias=arr("bias"),
                      threshold=arr("threshold") if lif else None, weight_bits=int(entry["weight_bits"]),
                      leak_shift=(None if entry["leak_shift"] is None else int(entry["leak_shift"])) if lif else None,
                      reset=entry["reset"] if lif else None, bias_bits=int(entry["bias_bits"]),
                      threshold_bits=int(entry["threshold_bits"]) if lif else 0,
                      current_bits=int(entry["current_bits"]),
                      membrane_bits=int(entry["membrane_bits"]) if lif else 0,
                      score_bits=0 if lif else int(entry["score_bits"]))
        if layer.weights.ndim == 2 and (layer.n_in != entry["in"] or layer.n_out != entry["out"]):
            raise ArtifactError(f"{where}: layer {i} declares {entry['in']}->{entry['out']} but its weights are {list(layer.weights.shape[::-1])}")
        layers.append(layer)
    decision = manifest["decision"]
    if decision != {"rule": "argmax_score", "tie_break": "lowest_index"}:
        raise ArtifactError(f"{where}: unsupported decision rule {decision}")
    enc = manifest["encoder"]
    encoder = Encoder(kind=enc["kind"], phase=int(enc.get("phase", 128)), level=int(enc.get("level", 128)))
    inp = manifest["input"]
    art = Artifact(name=str(manifest["name"]), input_shape=(int(inp["height"]), int(inp["width"])),
                   encoder=encoder, timesteps=int(manifest["timesteps"]), layers=tuple(layers),
                   provenance=dict(manifest.get("provenance") or {}))
    validate(art)
    for i, entry in enumerate(manifest["layers"]):
        if entry["kind"] == "lif":
            declared = entry.get("saturation")
            actual = "active" if art.saturates(i) else "unreachable"
            if declared != actual:
                raise ArtifactError(f"{where}: layer {i} declares saturation {declared!r} but the proven bounds make it {actual!r}")
    return art
