#!/usr/bin/env python3
"""SciPy reference for bench/ode.ts: POP-ODE in logit form with solve_ivp(method='RK45').

Reads the problem bench/ode.ts wrote to --dir:
  kernel.npy   float64 [(N+M)*V, N*V]  K(alpha, u), point-major (row alpha*V+i, column u*V+j)
  labels.npy   int32   [N]
  z0.npy       float64 [N+M, V]        initial logits
  t_eval.npy   float64 [T]             output times
and integrates  dz/dt = (1/N) K (E - softmax(z_train))  on all N+M points.

Variants:
  dense    the direct implementation (one dense K @ r per right-hand side)
  reduced  the same algebra entk uses: reference-label coordinates (V-1 per point) and the
           symmetric finetune block through BLAS dsymv (reads half of it), dense observation block

Prints one JSON object: seconds (best of --repeats, integration only), prep_seconds, nfev,
status, and writes logp_<variant>.npy [T, N+M, V] (log-probabilities at t_eval) to --dir.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import scipy
from scipy.integrate import solve_ivp
from scipy.linalg.blas import dsymv


def log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    s = z - m
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--rtol", type=float, default=1e-3)
    ap.add_argument("--atol", type=float, default=1e-6)
    ap.add_argument("--variant", choices=["dense", "reduced"], default="dense")
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()

    K = np.load(os.path.join(a.dir, "kernel.npy"))
    labels = np.load(os.path.join(a.dir, "labels.npy")).astype(np.int64)
    z0 = np.load(os.path.join(a.dir, "z0.npy"))
    t_eval = np.load(os.path.join(a.dir, "t_eval.npy"))
    P, V = z0.shape
    N = labels.shape[0]
    E = np.zeros((N, V))
    E[np.arange(N), labels] = 1.0

    t0 = time.perf_counter()
    if a.variant == "dense":
        def rhs(t, z):
            zt = z[: N * V].reshape(N, V)
            r = (E - np.exp(log_softmax(zt))).reshape(-1)
            return K @ r * (1.0 / N)
    else:
        W = V - 1
        # G_ij = K_ij - K_i,ref - K_ref,j + K_ref,ref on both sides
        K4 = K.reshape(P, V, N, V)
        G = K4[:, :W, :, :W] - K4[:, :W, :, W:] - K4[:, W:, :, :W] + K4[:, W:, :, W:]
        G = np.ascontiguousarray(G.reshape(P * W, N * W))
        Gtt = np.asfortranarray(G[: N * W])
        Got = np.ascontiguousarray(G[N * W:])
        n = N * W

        def rhs(t, z):
            zt = z[: N * V].reshape(N, V)
            r = (E - np.exp(log_softmax(zt)))[:, :W].reshape(-1)
            dz = np.zeros((P, V))
            dz[:N, :W] = dsymv(1.0 / N, Gtt, r, lower=0).reshape(N, W)
            if P > N:
                dz[N:, :W] = (Got @ r * (1.0 / N)).reshape(P - N, W)
            return dz.reshape(-1)
    prep = time.perf_counter() - t0

    best = None
    sol = None
    for _ in range(max(1, a.repeats)):
        t1 = time.perf_counter()
        sol = solve_ivp(rhs, (0.0, float(t_eval[-1])), z0.reshape(-1), method="RK45",
                        t_eval=t_eval, rtol=a.rtol, atol=a.atol)
        dt = time.perf_counter() - t1
        best = dt if best is None else min(best, dt)
    Z = sol.y.T.reshape(len(t_eval), P, V)
    logp = np.stack([log_softmax(Z[k]) for k in range(len(t_eval))])
    np.save(os.path.join(a.dir, f"logp_{a.variant}.npy"), logp)
    print(json.dumps({
        "variant": a.variant,
        "seconds": best,
        "prep_seconds": prep,
        "nfev": int(sol.nfev),
        "status": int(sol.status),
        "message": sol.message,
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
    }))
    return 0 if sol.status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
