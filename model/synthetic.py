"""Random small artifacts, for tests and smoke runs of every stage.

:func:`random_artifact` draws a valid chain artifact from a seeded generator: sizes, weight
bits (2..8), leak shift (including none), reset mode, encoder, T, and optionally a membrane
width narrower than the proven range so that saturation is live.

:func:`random_graph` draws a valid layer graph that uses every node kind: a conv stem with
random kernel, stride and padding, a token block (axial or group-LIF mixing, a fuse
pointwise on several inputs, current skips summed into LIFs), a channel block, an ``add``
and ``concat`` of currents, a ``concat`` of spikes, a strided conv, and a head through
``pool`` or ``flatten``.
"""

from __future__ import annotations

import numpy as np

from snnfpga.model import kinds as K
from snnfpga.model.artifact import Artifact, Encoder, build_artifact, build_graph_artifact


def random_artifact(seed: int = 0, *, input_shape=(4, 4), hidden=(12,), n_classes=4, timesteps=None,
                    weight_bits=None, leak_shift="random", reset=None, encoder=None,
                    membrane_bits=None, extreme=False, threshold_scale=1.0, fire=">=",
                    spiking_output=False, leak_shift2=None) -> Artifact:
    """A valid random artifact; every unset option is drawn from ``seed`` (``fire``: the
    LIF layers' comparison, not drawn). ``spiking_output``: the last layer is LIF neurons
    decided by spike count (``lif_output``), drawn like a hidden layer. ``leak_shift2``: the
    leak's second term in every LIF layer that has a leak (a shift above that layer's).

    ``extreme`` draws weights at the ends of their range (forcing large currents and,
    with a narrow ``membrane_bits``, saturation).
    """
    rng = np.random.default_rng(seed)
    timesteps = int(rng.integers(1, 7)) if timesteps is None else timesteps
    if encoder is None:
        encoder = Encoder("rate", phase=int(rng.integers(0, 256))) if rng.random() < 0.7 else \
            Encoder("threshold", level=int(rng.integers(1, 256)))
    sizes = [input_shape[0] * input_shape[1], *hidden, n_classes]
    layers = []
    for i in range(len(sizes) - 1):
        n_in, n_out = sizes[i], sizes[i + 1]
        bits = int(rng.integers(2, 9)) if weight_bits is None else weight_bits
        wmax = (1 << (bits - 1)) - 1
        if extreme:
            weights = rng.choice([-wmax - 1, wmax], size=(n_out, n_in))
        else:
            weights = rng.integers(-wmax - 1, wmax + 1, size=(n_out, n_in))
        bias = rng.integers(-2 * wmax - 1, 2 * wmax + 2, size=n_out)
        spec = {"weights": weights, "bias": bias, "weight_bits": bits}
        if i < len(sizes) - 2 or spiking_output:
            typical = max(1.0, wmax * np.sqrt(n_in) * threshold_scale)
            spec["threshold"] = rng.integers(1, int(typical) + 2, size=n_out)
            if leak_shift == "random":
                spec["leak_shift"] = None if rng.random() < 0.3 else int(rng.integers(1, 5))
            else:
                spec["leak_shift"] = leak_shift
            if leak_shift2 is not None and spec["leak_shift"] is not None:
                spec["leak_shift2"] = max(leak_shift2, spec["leak_shift"] + 1)
            spec["reset"] = reset or ("zero" if rng.random() < 0.5 else "subtract")
            spec["fire"] = fire
        layers.append(spec)
    return build_artifact(f"random-{seed}", input_shape, encoder, timesteps, layers,
                          provenance={"generator": "snnfpga.model.synthetic", "seed": seed},
                          membrane_bits=membrane_bits)


def random_images(art: Artifact, n: int, seed: int = 0) -> np.ndarray:
    """``uint8 [n, H, W]`` images mixing blank, saturated and random pixels."""
    rng = np.random.default_rng(seed)
    h, w = art.input_shape
    images = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    mask = rng.random((n, h, w))
    images[mask < 0.3] = 0
    images[mask > 0.9] = 255
    return images


def random_graph(seed: int = 0, *, input_shape=None, channels=None, timesteps=None, n_classes=3,
                 membrane_bits=None, extreme=False, token="random", head="random") -> Artifact:
    """A valid random layer graph (see the module docstring); unset options come from ``seed``.

    ``token``: ``axial``, ``glif`` or ``random``; ``head``: ``pool``, ``flatten``, ``dense``
    (a dense node reading the map directly) or ``random``; ``extreme`` draws weights at the
    ends of their range."""
    rng = np.random.default_rng(seed)
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    h, w = input_shape or (int(rng.integers(4, 10)), int(rng.integers(4, 10)))
    timesteps = int(rng.integers(1, 5)) if timesteps is None else timesteps
    c = int(rng.integers(1, 4)) if channels is None else channels
    token = pick(["axial", "glif"]) if token == "random" else token
    head = pick(["pool", "flatten", "dense"]) if head == "random" else head
    encoder = Encoder("rate", phase=int(rng.integers(0, 256))) if rng.random() < 0.7 else \
        Encoder("threshold", level=int(rng.integers(1, 256)))
    nodes = []

    def weights(*shape, bits=None):
        bits = int(rng.integers(2, 9)) if bits is None else bits
        wmax = (1 << (bits - 1)) - 1
        arr = rng.choice([-wmax - 1, wmax], size=shape) if extreme else rng.integers(-wmax - 1, wmax + 1, size=shape)
        return arr.astype(np.int64), bits

    def bias(n, bits):
        wmax = (1 << (bits - 1)) - 1
        return rng.integers(-2 * wmax - 1, 2 * wmax + 2, size=n).astype(np.int64)

    def threshold(shape, fan_in, bits):
        typical = max(1.0, ((1 << (bits - 1)) - 1) * np.sqrt(fan_in))
        return rng.integers(1, int(typical) + 2, size=shape).astype(np.int64)

    def lif(name, inputs, shape, fan_in, bits):
        per = pick([(shape[0], 1, 1), shape, (1, shape[1], 1)]) if len(shape) == 3 else shape
        nodes.append(K.Lif(name=name, inputs=tuple(inputs), threshold=threshold(per, fan_in, bits),
                           leak_shift=None if rng.random() < 0.3 else int(rng.integers(1, 4)),
                           reset=pick(["zero", "subtract"])))
        return name

    def conv(name, src, c_in, c_out, k, s, p, unit):
        wt, bits = weights(c_out, c_in, k, k)
        nodes.append(K.Conv(name=name, inputs=(src,), weight=wt, bias=bias(c_out, bits), weight_bits=bits,
                            unit=unit, stride=s, padding=p))
        return bits

    def pointwise(name, srcs, c_in, c_out, unit):
        wt, bits = weights(c_out, c_in)
        nodes.append(K.Pointwise(name=name, inputs=tuple(srcs), weight=wt, bias=bias(c_out, bits), weight_bits=bits,
                                 unit=unit))
        return bits

    # Stem: a conv with random geometry on the encoded input.
    k = int(rng.integers(1, 5))
    s = int(rng.integers(1, min(k, 3) + 1))
    p = int(rng.integers(0, k))
    if (h + 2 * p - k) // s + 1 < 2 or (w + 2 * p - k) // s + 1 < 2:
        k, s, p = 3, 1, 1
    bits = conv("stem", "input", 1, c, k, s, p, "s0")
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    x = lif("stem.lif", ["stem"], (c, ho, wo), k * k, bits)
    # Token block.
    if token == "axial":
        branches = []
        for axis, length in (("h", ho), ("w", wo)):
            wt, b = weights(length, length)
            nodes.append(K.Axial(name=f"tok.{axis}", inputs=(x,), axis=axis, weight=wt, bias=bias(length, b),
                                 weight_bits=b, unit=f"tok.{axis}"))
            branches.append(lif(f"tok.{axis}.lif", [f"tok.{axis}"], (c, ho, wo), length, b))
    else:
        branches = []
        for axis, length in (("h", ho), ("w", wo)):
            b = pointwise(f"tok.{axis}", [x], c, c, f"tok.{axis}")
            nodes.append(K.Glif(name=f"tok.{axis}.glif", inputs=(f"tok.{axis}",), axis=axis,
                                group=int(rng.integers(1, length + 1)), leak_shift=int(rng.integers(1, 4)),
                                threshold=threshold((c, 1, 1), c, b) - 1))
            branches.append(f"tok.{axis}.glif")
    b = pointwise("fuse", [x, *branches], 3 * c, c, "s0")
    tok = lif("tok.lif", ["stem", "fuse"], (c, ho, wo), 3 * c, b)
    b = pointwise("mlp1", [tok], c, 2 * c, "mlp")
    hid = lif("mlp1.lif", ["mlp1"], (2 * c, ho, wo), c, b)
    b = pointwise("mlp2", [hid], 2 * c, c, "s0")
    block = lif("block.lif", ["stem", "fuse", "mlp2"], (c, ho, wo), 4 * c, b)
    # A current buffer: add and concat of currents read by one more LIF.
    nodes.append(K.Add(name="skip", inputs=("fuse", "mlp2")))
    nodes.append(K.Concat(name="skipcat", inputs=("stem", "skip")))
    both = lif("skipcat.lif", ["skipcat"], (2 * c, ho, wo), 4 * c, b)
    # Spikes joined by channel, down-sampled by a strided conv.
    nodes.append(K.Concat(name="join", inputs=(block, both)))
    b = conv("down", "join", 3 * c, c, 3, 2, 1, "s1")
    h2, w2 = (ho - 1) // 2 + 1, (wo - 1) // 2 + 1
    last = lif("down.lif", ["down"], (c, h2, w2), 27 * c, b)
    # Head.
    if head == "pool":
        nodes.append(K.Pool(name="pool", inputs=(last,)))
        src, n_in = "pool", c
    elif head == "flatten":
        nodes.append(K.Flatten(name="flat", inputs=(last,)))
        src, n_in = "flat", c * h2 * w2
    else:
        src, n_in = last, c * h2 * w2
    wt, b = weights(n_classes, n_in)
    nodes.append(K.Dense(name="head", inputs=(src,), weight=wt, bias=bias(n_classes, b), weight_bits=b, unit="head"))
    nodes.append(K.Output(name="out", inputs=("head",)))
    return build_graph_artifact(f"random-graph-{seed}", (h, w), encoder, timesteps, nodes,
                                provenance={"generator": "snnfpga.model.synthetic.random_graph", "seed": seed},
                                membrane_bits=membrane_bits)


def random_ttfs(seed: int = 0, *, input_shape=(5, 5), hidden=(9, 7), n_classes=4, bits=None,
                weight_bits=None) -> Artifact:
    """A random time-to-first-spike network (``ttfs`` layers of ``hidden`` sizes and a
    ``ttfs_output``): weights of ``weight_bits``, ramps 1..12, thresholds spread so that
    some neurons fire at the first step, some late and some never."""
    rng = np.random.default_rng(seed)
    bits = int(rng.integers(2, 5)) if bits is None else bits
    wb = int(rng.integers(2, 6)) if weight_bits is None else weight_bits
    s = (1 << bits) - 1
    q = 1 << (wb - 1)
    nodes, prev, n_in = [], "input", input_shape[0] * input_shape[1]
    for i, n in enumerate(hidden):
        w = rng.integers(-q, q, size=(n, n_in))
        ramp = rng.integers(1, 13, size=n)
        reach = s * np.abs(w).sum(axis=1) // 4 + 1
        theta = s * ramp - rng.integers(-reach, reach + 1)
        nodes.append(K.Ttfs(name=f"h{i + 1}", inputs=(prev,), weight=w, threshold=theta, ramp=ramp, weight_bits=wb))
        prev, n_in = f"h{i + 1}", n
    nodes.append(K.TtfsOutput(name="out", inputs=(prev,), weight=rng.integers(-q, q, size=(n_classes, n_in)),
                              bias=rng.integers(-20, 21, size=n_classes), weight_bits=wb))
    return build_graph_artifact(f"ttfs-{seed}", input_shape, Encoder("ttfs", bits=bits), (len(hidden) + 1) * s,
                                nodes)
