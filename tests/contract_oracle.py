"""A deliberately naive, scalar implementation of docs/integer-contract.md.

Written from the contract page alone, one image, one step, one node, one event at a time,
with the incremental encoder and Python integers (no numpy arithmetic), so that it shares
no code and no vectorisation tricks with ``snnfpga.sim.reference``. Unlike the reference
it runs step-major (every node of step t before step t+1, the contract's normative order)
and forms synaptic currents in *scatter* form: each input event adds weight rows, as the
contract's scatter description (and the hardware) do. Tests compare the two.

Tensors are nested Python lists: a map is ``[c][y][x]``, a flat tensor ``[i]``.
"""


def floor_shift(v: int, k: int) -> int:
    # Python's >> on int is an arithmetic (floor) shift; spelled out to match the contract text.
    return v // (1 << k)


def sat(v: int, bits: int) -> int:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return min(max(v, lo), hi)


def zeros(shape):
    if len(shape) == 1:
        return [0] * shape[0]
    return [zeros(shape[1:]) for _ in range(shape[0])]


def flat(t):
    if not isinstance(t, list):
        return [t]
    out = []
    for x in t:
        out.extend(flat(x))
    return out


def at(arr, index):
    """Element of a numpy parameter array that broadcasts (dims of size 1) to ``index``."""
    return int(arr[tuple(0 if d == 1 else i for d, i in zip(arr.shape, index))])


def positions(shape):
    if len(shape) == 1:
        return [(i,) for i in range(shape[0])]
    return [(c, y, x) for c in range(shape[0]) for y in range(shape[1]) for x in range(shape[2])]


def get(t, index):
    for i in index:
        t = t[i]
    return t


def put(t, index, value):
    for i in index[:-1]:
        t = t[i]
    t[index[-1]] = value


def add_bias(node, shape, current):
    for p in positions(shape):
        b = int(node.bias[p[0]]) if node.KIND in ("dense", "conv", "pointwise") else \
            int(node.bias[p[1] if node.axis == "h" else p[2]])
        put(current, p, get(current, p) + b)
    return current


def synapse(node, ins, in_shapes, shape):
    """Scatter form: every input event adds its weight rows."""
    out = zeros(shape)
    w = node.weight
    if node.KIND == "dense":
        events = flat(ins[0])
        for i, m in enumerate(events):
            for _ in range(m):
                for j in range(shape[0]):
                    out[j] += int(w[j, i])
    elif node.KIND == "pointwise":
        base = 0
        for x, s in zip(ins, in_shapes):
            for (c, y, xx) in positions(s):
                for _ in range(x[c][y][xx]):
                    for o in range(shape[0]):
                        out[o][y][xx] += int(w[o, base + c])
            base += s[0]
    elif node.KIND == "axial":
        for (c, y, xx) in positions(in_shapes[0]):
            for _ in range(ins[0][c][y][xx]):
                if node.axis == "h":
                    for p in range(shape[1]):
                        out[c][p][xx] += int(w[p, y])
                else:
                    for p in range(shape[2]):
                        out[c][y][p] += int(w[p, xx])
    elif node.KIND == "conv":
        k, s, pad = w.shape[-1], node.stride, node.padding
        _, h_out, w_out = shape
        for (c, y, xx) in positions(in_shapes[0]):
            for _ in range(ins[0][c][y][xx]):
                for ky in range(k):
                    dy = y + pad - ky
                    if dy < 0 or dy % s or dy // s >= h_out:
                        continue
                    for kx in range(k):
                        dx = xx + pad - kx
                        if dx < 0 or dx % s or dx // s >= w_out:
                            continue
                        for o in range(shape[0]):
                            out[o][dy // s][dx // s] += int(w[o, c, ky, kx])
    else:
        raise AssertionError(node.KIND)
    return add_bias(node, shape, out)


def run_graph_one(art, image, observed=None):
    """Every node's output at every step: ``{name: [step t] nested list}``, the spikes of the
    encoder under ``"input"`` (flat, row-major), the scores and the class. ``observed``: a
    dict that receives each lif node's ``(min, max)`` membrane before saturation."""
    graph = art.graph
    pixels = [int(p) for p in image.reshape(-1)]
    h, w = art.input_shape
    T = art.timesteps
    enc = art.encoder
    acc = [enc.phase] * len(pixels)
    state = {}
    history = {"input": []}
    for node in graph.nodes:
        history[node.name] = []
        shape = graph.types[node.name].shape
        if node.KIND in ("lif", "lif_output", "output"):
            state[node.name] = zeros(shape)
        if node.KIND in ("lif", "lif_output"):
            state[node.name + "/spiked"] = zeros(shape)  # last step's spikes (reset subtract_next)
        if node.KIND == "lif_output":
            state[node.name + "/count"] = [0] * shape[0]
        if node.KIND in ("ttfs", "ttfs_output"):  # slope J, membrane V, fired bits
            n_out = shape[0]
            state[node.name] = {"J": [0] * n_out, "V": [0] * n_out, "fired": [False] * n_out}
    for t in range(T):
        if enc.kind == "ttfs":  # one spike at step S - (pixel >> (8 - bits)) of window 0
            S = (1 << enc.bits) - 1
            s = [1 if (x >> (8 - enc.bits)) > 0 and t == S - (x >> (8 - enc.bits)) else 0 for x in pixels]
        elif enc.kind == "rate":
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
        history["input"].append(s)
        values = {"input": [[s[y * w:(y + 1) * w] for y in range(h)]]}
        for node in graph.nodes:
            shape = graph.types[node.name].shape
            in_shapes = [t_.shape for t_ in graph.input_types(node)]
            ins = [values[n] for n in node.inputs]
            kind = node.KIND
            if kind in ("dense", "conv", "axial", "pointwise"):
                out = synapse(node, ins, in_shapes, shape)
            elif kind == "add":
                out = zeros(shape)
                for p in positions(shape):
                    put(out, p, sum(get(x, p) for x in ins))
            elif kind == "concat":
                out = [plane for x in ins for plane in x]
            elif kind == "pool":
                out = [sum(flat(plane)) for plane in ins[0]]
            elif kind == "flatten":
                out = flat(ins[0])
            elif kind in ("lif", "lif_output"):
                out = zeros(shape)
                v_all, spiked = state[node.name], state[node.name + "/spiked"]
                for p in positions(shape):
                    current = sum(get(x, p) for x in ins)
                    v = get(v_all, p)
                    theta = at(node.threshold, p)
                    if node.leak_shift is not None:
                        v = v - floor_shift(v, node.leak_shift) - \
                            (floor_shift(v, node.leak_shift2) if node.leak_shift2 is not None else 0)
                    total = v + current
                    if node.reset == "subtract_next" and get(spiked, p):
                        total -= theta  # after the leak, undecayed (snnTorch)
                    if observed is not None:
                        lo, hi = observed.get(node.name, (total, total))
                        observed[node.name] = (min(lo, total), max(hi, total))
                    v = sat(total, node.membrane_bits)
                    fired = v > theta if node.fire == ">" else v >= theta
                    if fired and node.reset == "zero":
                        v = 0
                    elif fired and node.reset == "subtract":
                        v = v - theta
                    put(v_all, p, v)
                    put(spiked, p, 1 if fired else 0)
                    put(out, p, 1 if fired else 0)
                if kind == "lif_output":  # count above the membrane, offset to 0 .. 2^M - 1
                    count, m = state[node.name + "/count"], node.membrane_bits
                    for j in range(shape[0]):
                        count[j] += out[j]
                    out = [count[j] * 2 ** m + v_all[j] + 2 ** (m - 1) for j in range(shape[0])]
                    state[node.name + ".scores"] = out
            elif kind == "glif":
                out = zeros(shape)
                c_n, h_n, w_n = shape
                length = h_n if node.axis == "h" else w_n
                full = (length // node.group) * node.group
                for c in range(c_n):
                    for other in range(w_n if node.axis == "h" else h_n):
                        carry = 0
                        for j in range(length):
                            if j % node.group == 0 or j >= full:
                                carry = 0
                            p = (c, j, other) if node.axis == "h" else (c, other, j)
                            u = floor_shift(carry, node.leak_shift) + get(ins[0], p)
                            fired = u > at(node.threshold, p)
                            carry = 0 if fired else u
                            put(out, p, 1 if fired else 0)
            elif kind in ("ttfs", "ttfs_output"):
                window = graph.input_types(node)[0].window
                S, st_ = window.steps, state[node.name]
                events = flat(ins[0])
                n_out = shape[0]
                if window.start <= t < window.start + S:  # integrate: J += W[:, j] per spike; V += J
                    for i in range(n_out):
                        st_["J"][i] += sum(int(node.weight[i, j]) for j, e in enumerate(events) if e)
                        st_["V"][i] += st_["J"][i]
                if kind == "ttfs":
                    out = [0] * n_out
                    k = t - window.start - S
                    if 0 <= k < S:  # fire: V += R after the first step; first V >= theta spikes
                        for i in range(n_out):
                            if k > 0:
                                st_["V"][i] += int(node.ramp[i])
                            if not st_["fired"][i] and st_["V"][i] >= int(node.threshold[i]):
                                st_["fired"][i] = True
                                out[i] = 1
                else:
                    out = [int(node.bias[i]) + st_["V"][i] for i in range(n_out)]
                    state[node.name + ".scores"] = out
            elif kind == "output":
                scores = state[node.name]
                for j in range(shape[0]):
                    scores[j] += sum(x[j] for x in ins)
                out = list(scores)
            else:
                raise AssertionError(f"the oracle does not know kind {kind!r}")
            values[node.name] = out
            history[node.name].append(out)
    scores = state.get(graph.output.name + ".scores", state[graph.output.name])
    best = 0
    for j in range(1, len(scores)):
        if scores[j] > scores[best]:
            best = j
    return history, scores, best


def run_one(art, image):
    """Chains: (spikes per layer as list[list[list[int]]] indexed [layer][t][neuron], scores, class)."""
    history, scores, best = run_graph_one(art, image)
    spikes = [history["input"]] + [history[layer.name] for layer in art.layers[:-1]]
    return spikes, scores, best
