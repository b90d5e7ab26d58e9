#!/usr/bin/env python3
"""NumPy/SciPy references for bench/analysis.ts (kernel analysis).

  generate --n N --rank R --out K.npy [--dtype float32]
      a PSD kernel K = J diag(s) J^T, J ~ N(0, 1) [N, R] (seed 0), s_q = exp(-q / 40): a decaying
      spectrum like an eNTK's; written as .npy (float32 by default, the store's dtype).
  eigsh --file K.npy --k 20
      loads the file into memory and runs scipy.sparse.linalg.eigsh(K, k, which='LA').
  mse --dir D --times t1,t2,...
      the closed-form MSE flow with numpy.linalg.eigh on D/train.npy [N, N], D/test.npy [M, N],
      D/y.npy [N, V] (f0 = 0, time convention t/N); writes D/numpy_<k>.npy (test outputs [M, V]).

Prints one JSON object on the last line: timings (seconds), peak RSS (bytes) and results.
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["generate", "eigsh", "mse"])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rank", type=int, default=400)
    ap.add_argument("--out")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--file")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--dir")
    ap.add_argument("--times", default="1,10,inf")
    a = ap.parse_args()
    info = {"numpy": np.__version__, "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")}}
    if a.mode == "generate":
        rng = np.random.default_rng(0)
        J = rng.standard_normal((a.n, a.rank), dtype=np.float32)
        J *= np.sqrt(np.exp(-np.arange(a.rank, dtype=np.float32) / 40.0))[None, :]
        K = J @ J.T  # float32 [n, n]
        K = (K + K.T) * 0.5
        np.save(a.out, K.astype(a.dtype, copy=False))
        info["shape"] = list(K.shape)
    elif a.mode == "eigsh":
        import scipy
        from scipy.sparse.linalg import eigsh

        info["scipy"] = scipy.__version__
        t0 = time.perf_counter()
        K = np.load(a.file)
        t1 = time.perf_counter()
        w = eigsh(K, k=a.k, which="LA", return_eigenvectors=False)
        t2 = time.perf_counter()
        info.update(load_seconds=t1 - t0, eigsh_seconds=t2 - t1, total_seconds=t2 - t0,
                    eigenvalues=sorted(w.tolist(), reverse=True), peak_rss=peak_rss(), dtype=str(K.dtype))
    else:
        d = a.dir
        K = np.load(os.path.join(d, "train.npy"))
        X = np.load(os.path.join(d, "test.npy"))
        Y = np.load(os.path.join(d, "y.npy"))
        N = K.shape[0]
        t0 = time.perf_counter()
        lam, U = np.linalg.eigh(K)
        lam = np.maximum(lam, 0)
        g = U.T @ Y
        A = X @ U
        t1 = time.perf_counter()
        outs = []
        for k, s in enumerate(a.times.split(",")):
            t = float(s)
            if np.isinf(t):
                f = np.where(lam > 1e-12 * lam.max(), 1.0 / np.where(lam > 0, lam, 1), 0.0)
            else:
                f = np.where(lam > 0, -np.expm1(-lam * t / N) / np.where(lam > 0, lam, 1), t / N)
            test = A @ (f[:, None] * g)
            np.save(os.path.join(d, f"numpy_{k}.npy"), test)
        t2 = time.perf_counter()
        info.update(eigh_seconds=t1 - t0, predict_seconds=t2 - t1, total_seconds=t2 - t0, peak_rss=peak_rss())
    print(json.dumps(info))


if __name__ == "__main__":
    sys.exit(main())
