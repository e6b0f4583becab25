"""A deliberately naive, scalar implementation of docs/integer-contract.md.

Written from the contract page alone, one image, one neuron, one input spike at a time,
with the incremental encoder and Python integers (no numpy arithmetic), so that it shares
no code and no vectorisation tricks with ``snnfpga.sim.reference``. Tests compare the two.
"""


def floor_shift(v: int, k: int) -> int:
    # Python's >> on int is an arithmetic (floor) shift; spelled out to match the contract text.
    return v // (1 << k)


def run_one(art, image):
    """Return (spikes per layer as list[list[list[int]]] indexed [layer][t][neuron], scores, class)."""
    pixels = [int(p) for p in image.reshape(-1)]
    T = art.timesteps
    enc = art.encoder
    acc = [enc.phase] * len(pixels)
    layer_spikes = [[] for _ in range(len(art.layers))]  # index 0 = encoder, l = hidden layer l
    membranes = [[0] * layer.n_out for layer in art.layers[:-1]]
    out_layer = art.layers[-1]
    scores = [0] * out_layer.n_out
    for t in range(T):
        if enc.kind == "rate":
            s = []
            for i, x in enumerate(pixels):
                acc[i] += x
                if acc[i] >= 256:
                    s.append(1)
                    acc[i] -= 256
                else:
                    s.append(0)
        else:
            s = [1 if x >= enc.level else 0 for x in pixels]
        layer_spikes[0].append(s)
        for li, layer in enumerate(art.layers[:-1]):
            lo, hi = -(1 << (layer.membrane_bits - 1)), (1 << (layer.membrane_bits - 1)) - 1
            out = []
            for j in range(layer.n_out):
                current = 0
                for i, spike in enumerate(s):
                    if spike:
                        current += int(layer.weights[j, i])
                v = membranes[li][j]
                if layer.leak_shift is not None:
                    v = v - floor_shift(v, layer.leak_shift)
                v = min(max(v + int(layer.bias[j]) + current, lo), hi)
                fired = v >= int(layer.threshold[j])
                if fired:
                    v = 0 if layer.reset == "zero" else v - int(layer.threshold[j])
                membranes[li][j] = v
                out.append(1 if fired else 0)
            layer_spikes[li + 1].append(out)
            s = out
        for j in range(out_layer.n_out):
            scores[j] += int(out_layer.bias[j]) + sum(int(out_layer.weights[j, i]) for i, spike in enumerate(s) if spike)
    best = 0
    for j in range(1, len(scores)):
        if scores[j] > scores[best]:
            best = j
    return layer_spikes, scores, best
