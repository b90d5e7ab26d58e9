#!/usr/bin/env python3
"""Reference eNTK timings for bench/ntk.ts (never needed by entk itself).

Reads the benchmark's MLP weights and points from --dir (meta.json + raw little-endian float32
files written by bench/ntk.ts), computes the full eNTK K[n*V+i, m*V+j] = <df_i(x_n), df_j(x_m)>
by up to three methods and prints one JSON object on stdout:

  torch-layerwise   the structured algorithm of entk in PyTorch/OpenBLAS: layer inputs A and
                    back-propagated signals D (ReLU MLP, closed form), K = sum_l (A A^T + 1) (.)
                    (D D^T) + (a a^T + 1) I_V for the head.
  functorch         Jacobian contraction as in the functorch NTK tutorial:
                    vmap(jacrev(f)) then einsum('Naf,Mbf->NaMb') per parameter tensor.
  numpy-layerwise   the layer-wise algorithm in numpy (OpenBLAS), when torch is missing.

Thread counts are fixed (--threads) through the environment before numpy/torch load.
Missing modules are reported as {"available": false, "reason": ...}, never as a failure.
"""
import json
import sys

from common import jacobian_ntk, new_result, parse_args, read_f32, read_meta, timed, unavailable


def add_args(p):
    p.add_argument("--functorch-n", type=int, default=0, help="points for functorch (0 = all)")
    p.add_argument("--methods", default="torch-layerwise,functorch,numpy-layerwise")


def load(directory):
    meta = read_meta(directory)
    x = read_f32(directory, meta["x"])
    layers = [(read_f32(directory, layer["kernel"]), read_f32(directory, layer["bias"])) for layer in meta["layers"]]
    return meta, x, layers


def numpy_layerwise(x, layers):
    import numpy as np

    (w1, b1), (w2, b2), (w3, b3) = layers
    n, v = x.shape[0], w3.shape[1]
    h1 = x @ w1 + b1
    a1 = np.maximum(h1, 0)
    h2 = a1 @ w2 + b2
    a2 = np.maximum(h2, 0)
    d2 = (h2 > 0).astype(np.float32)[:, None, :] * w3.T[None, :, :]  # [N, V, 256]
    d1 = (d2.reshape(n * v, -1) @ w2.T).reshape(n, v, -1) * (h1 > 0).astype(np.float32)[:, None, :]
    g1 = x @ x.T + 1
    g2 = a1 @ a1.T + 1
    g3 = a2 @ a2.T + 1
    d1f = d1.reshape(n * v, -1)
    d2f = d2.reshape(n * v, -1)
    # In place on the two Gram matrices (no [N, V, N, V] temporaries beyond them).
    k = d1f @ d1f.T
    k.reshape(n, v, n, v)[...] *= g1[:, None, :, None]
    t = d2f @ d2f.T
    t.reshape(n, v, n, v)[...] *= g2[:, None, :, None]
    k += t
    k4 = k.reshape(n, v, n, v)
    for i in range(v):
        k4[:, i, :, i] += g3
    return k


def main():
    # Fixes the thread counts: numpy and torch load after it.
    args = parse_args(
        repeats=3, save_k_help="write the torch-layerwise (or numpy) K here (float32)", add=add_args
    )
    import numpy as np

    meta, x, layers = load(args.dir)
    methods = args.methods.split(",")
    result = new_result(args.threads)
    n, v = x.shape[0], layers[-1][0].shape[1]
    saved = False

    torch = None
    try:
        import torch  # noqa: F811

        torch.set_num_threads(args.threads)
        result["torch"] = torch.__version__
    except Exception as e:  # noqa: BLE001
        result["torch_unavailable"] = unavailable(e)["reason"]

    if "torch-layerwise" in methods:
        if torch is None:
            result["methods"]["torch-layerwise"] = {"available": False, "reason": result["torch_unavailable"]}
        else:
            X = torch.from_numpy(x)
            L = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in layers]

            def layerwise():
                with torch.no_grad():
                    (w1, b1), (w2, b2), (w3, b3) = L
                    h1 = X @ w1 + b1
                    a1 = torch.relu(h1)
                    h2 = a1 @ w2 + b2
                    a2 = torch.relu(h2)
                    d2 = (h2 > 0).float()[:, None, :] * w3.T[None, :, :]
                    d1 = (d2.reshape(n * v, -1) @ w2.T).view(n, v, -1) * (h1 > 0).float()[:, None, :]
                    g1 = X @ X.T + 1
                    g2 = a1 @ a1.T + 1
                    g3 = a2 @ a2.T + 1
                    d1f = d1.reshape(n * v, -1)
                    d2f = d2.reshape(n * v, -1)
                    # In place on the two Gram matrices (no [N, V, N, V] temporaries beyond them).
                    k = torch.mm(d1f, d1f.T)
                    k.view(n, v, n, v).mul_(g1[:, None, :, None])
                    t = torch.mm(d2f, d2f.T)
                    t.view(n, v, n, v).mul_(g2[:, None, :, None])
                    k.add_(t)
                    k.view(n, v, n, v).diagonal(dim1=1, dim2=3).add_(g3[:, :, None])
                    return k

            k, t = timed(layerwise, args.repeats)
            result["methods"]["torch-layerwise"] = {"available": True, "n": n, **t}
            if args.save_k:
                k.numpy().astype("<f4").tofile(args.save_k)
                saved = True
            # float32 matmul peak of torch/OpenBLAS on these threads, for context.
            a = torch.randn(2048, 2048)
            b = torch.randn(2048, 2048)
            _, tp = timed(lambda: a @ b, 3)
            result["torch_matmul_gflops"] = 2 * 2048**3 / tp["best_s"] / 1e9

    if "functorch" in methods:
        try:
            if torch is None:
                raise ImportError(result["torch_unavailable"])
            from functorch import jacrev, make_functional, vmap

            nf = args.functorch_n if 0 < args.functorch_n < n else n
            dims = [layers[0][0].shape[0]] + [w.shape[1] for w, _ in layers]
            mods = []
            for i, (w, b) in enumerate(layers):
                lin = torch.nn.Linear(dims[i], dims[i + 1])
                with torch.no_grad():
                    lin.weight.copy_(torch.from_numpy(w.T.copy()))
                    lin.bias.copy_(torch.from_numpy(b))
                mods.append(lin)
                if i < len(layers) - 1:
                    mods.append(torch.nn.ReLU())
            net = torch.nn.Sequential(*mods)
            fnet, params = make_functional(net)
            X = torch.from_numpy(x[:nf].copy())

            def fnet_single(p, xi):
                return fnet(p, xi.unsqueeze(0)).squeeze(0)

            def contraction():
                return jacobian_ntk(torch, vmap(jacrev(fnet_single), (None, 0))(params, X), nf)

            kf, t = timed(contraction, 1)  # tens of seconds: one run
            entry = {"available": True, "n": nf, **t}
            if nf < n:
                entry["extrapolated_best_s"] = t["best_s"] * (n / nf) ** 2
                entry["extrapolation"] = "quadratic in N (the N^2 V^2 P contraction dominates)"
            result["methods"]["functorch"] = entry
            if "torch-layerwise" in result["methods"] and result["methods"]["torch-layerwise"].get("available"):
                kl = layerwise()[: nf * v, : nf * v] if nf == n else None
                if kl is not None:
                    err = (kf - kl).abs().max() / kl.abs().max()
                    result["methods"]["functorch"]["rel_max_error_vs_layerwise"] = float(err)
        except Exception as e:  # noqa: BLE001
            result["methods"]["functorch"] = unavailable(e)

    if "numpy-layerwise" in methods:
        k, t = timed(lambda: numpy_layerwise(x, layers), args.repeats)
        result["methods"]["numpy-layerwise"] = {"available": True, "n": n, **t}
        if args.save_k and not saved:
            k.astype("<f4").tofile(args.save_k)
        a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
        _, tp = timed(lambda: a @ a, 3)
        result["numpy_matmul_gflops"] = 2 * 2048**3 / tp["best_s"] / 1e9

    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
