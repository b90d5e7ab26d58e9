#!/usr/bin/env python3
"""Reference eNTK timings for bench/ntk-models.ts (never needed by entk itself).

Reads a model's weights and points from --dir (meta.json + raw little-endian float32 files written
by bench/ntk-models.ts) and computes the full eNTK K[n*V+i, m*V+j] = <df_i(x_n), df_j(x_m)>:

  numpy-layerwise  (meta "kind": "mlp")  the layer-wise algorithm for a ReLU MLP with forward scales
                   h = s_w a W + s_b b, in numpy/OpenBLAS: A, D per layer (closed-form back-propagation),
                   K = sum_l (s_w^2 A A^T + s_b^2) (.) (D D^T) + head (s_w^2 a a^T + s_b^2) I_V.
  functorch        (meta "kind": "cnn")  the entk 'cnn' preset rebuilt in PyTorch (NHWC flatten order),
                   vmap(jacrev) then einsum('Naf,Mbf->NaMb') per parameter tensor (functorch tutorial).

Each method is timed best of --repeats runs after one untimed warm-up run (its first run is slower).
Prints one JSON object on stdout; --save-k writes K (float32). Thread counts are fixed (--threads)
through the environment before numpy/torch load.
"""
import json
import sys

from common import jacobian_ntk, new_result, parse_args, read_f32, read_meta, timed, unavailable


def mlp_layerwise(x, layers):
    """layers: list of (W, b, s_w, s_b); ReLU between layers, linear head."""
    import numpy as np

    n = x.shape[0]
    v = layers[-1][0].shape[1]
    acts = [x]
    pres = []
    a = x
    for w, b, sw, sb in layers[:-1]:
        h = sw * (a @ w) + sb * b
        pres.append(h)
        a = np.maximum(h, 0)
        acts.append(a)
    # D_l [N, V, width]: back-propagated signals at each hidden pre-activation.
    w_head, _, sw_head, sb_head = layers[-1]
    d = (pres[-1] > 0).astype(np.float32)[:, None, :] * (sw_head * w_head.T)[None, :, :]
    deltas = [d]
    for l in range(len(layers) - 2, 0, -1):
        w, _, sw, _ = layers[l]
        d = (deltas[0].reshape(n * v, -1) @ (sw * w.T)).reshape(n, v, -1) * (pres[l - 1] > 0).astype(np.float32)[
            :, None, :
        ]
        deltas.insert(0, d)
    k = np.zeros((n * v, n * v), dtype=np.float32)
    for l, (_, _, sw, sb) in enumerate(layers[:-1]):
        g = (sw * sw) * (acts[l] @ acts[l].T) + sb * sb
        df = deltas[l].reshape(n * v, -1)
        t = df @ df.T
        t.reshape(n, v, n, v)[...] *= g[:, None, :, None]
        k += t
    g = (sw_head * sw_head) * (acts[-1] @ acts[-1].T) + sb_head * sb_head
    k4 = k.reshape(n, v, n, v)
    for i in range(v):
        k4[:, i, :, i] += g
    return k


def main():
    args = parse_args(repeats=3)  # fixes the thread counts: numpy and torch load after it
    import numpy as np

    def read(entry):
        return read_f32(args.dir, entry)

    meta = read_meta(args.dir)
    x = read(meta["x"])
    result = new_result(args.threads)
    n = x.shape[0]
    if meta["kind"] == "mlp":
        layers = [(read(l["kernel"]), read(l["bias"]), l["weightScale"], l["biasScale"]) for l in meta["layers"]]
        k, t = timed(lambda: mlp_layerwise(x, layers), args.repeats, warmup=1)
        result["methods"]["numpy-layerwise"] = {"available": True, "n": n, **t}
        a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
        _, tp = timed(lambda: a @ a, 3)
        result["numpy_matmul_gflops"] = 2 * 2048**3 / tp["best_s"] / 1e9
        if args.save_k:
            k.astype("<f4").tofile(args.save_k)
    elif meta["kind"] == "cnn":
        try:
            import torch

            try:
                from torch.func import functional_call, jacrev, vmap
            except ImportError:  # torch < 2: the functorch package
                from functorch import jacrev, make_functional, vmap

                functional_call = None
        except Exception as e:  # noqa: BLE001
            result["methods"]["functorch"] = unavailable(e)
            json.dump(result, sys.stdout)
            return
        torch.set_num_threads(args.threads)
        result["torch"] = torch.__version__
        convs = [(read(c["kernel"]), read(c["bias"])) for c in meta["convs"]]
        denses = [(read(d["kernel"]), read(d["bias"])) for d in meta["denses"]]

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.convs = torch.nn.ModuleList()
                for w, b in convs:
                    kh, kw, cin, cout = w.shape
                    c = torch.nn.Conv2d(cin, cout, (kh, kw), padding=(kh // 2, kw // 2))
                    with torch.no_grad():
                        c.weight.copy_(torch.from_numpy(w.transpose(3, 2, 0, 1).copy()))
                        c.bias.copy_(torch.from_numpy(b))
                    self.convs.append(c)
                self.denses = torch.nn.ModuleList()
                for w, b in denses:
                    lin = torch.nn.Linear(w.shape[0], w.shape[1])
                    with torch.no_grad():
                        lin.weight.copy_(torch.from_numpy(w.T.copy()))
                        lin.bias.copy_(torch.from_numpy(b))
                    self.denses.append(lin)

            def forward(self, z):
                for c in self.convs:
                    z = torch.nn.functional.max_pool2d(torch.relu(c(z)), 2)
                z = z.permute(0, 2, 3, 1).flatten(1)  # tfjs flattens NHWC
                for i, lin in enumerate(self.denses):
                    z = lin(z)
                    if i < len(self.denses) - 1:
                        z = torch.relu(z)
                return z

        net = Net()
        h, w, c = meta["image"]
        X = torch.from_numpy(x.reshape(n, h, w, c).transpose(0, 3, 1, 2).copy())
        if functional_call is not None:
            params = {k: p.detach() for k, p in net.named_parameters()}

            def f_single(p, xi):
                return functional_call(net, p, (xi.unsqueeze(0),)).squeeze(0)

        else:
            fnet, params = make_functional(net)

            def f_single(p, xi):
                return fnet(p, xi.unsqueeze(0)).squeeze(0)

        def contraction():
            return jacobian_ntk(torch, vmap(jacrev(f_single), (None, 0))(params, X), n)

        k, t = timed(contraction, args.repeats, warmup=1)
        result["methods"]["functorch"] = {"available": True, "n": n, **t}
        if args.save_k:
            k.detach().numpy().astype("<f4").tofile(args.save_k)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
