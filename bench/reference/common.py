"""Pieces the eNTK reference scripts share (ntk_torch.py, ntk_models.py, ntk_transformer.py).

The common arguments (--dir with meta.json and raw little-endian float32 files, --threads,
--repeats, --save-k), the thread environment (set before numpy/torch load: import numpy only after
parse_args), reading the files, the first fields of the JSON result and timing.
"""
import argparse
import json
import os
import sys
import time

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(repeats=3, save_k_help=None, add=None, argv=None):
    """Parse the common arguments (plus those `add(parser)` adds), then fix the thread counts."""
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=repeats)
    if add is not None:
        add(p)
    p.add_argument("--save-k", default="", help=save_k_help)
    args = p.parse_args(argv)
    for var in THREAD_VARS:
        os.environ[var] = str(args.threads)
    return args


def read_meta(directory):
    with open(os.path.join(directory, "meta.json")) as f:
        return json.load(f)


def read_f32(directory, entry):
    """The array of a {"file", "shape"} entry of meta.json."""
    import numpy as np

    return np.fromfile(os.path.join(directory, entry["file"]), dtype="<f4").reshape(entry["shape"])


def new_result(threads):
    """The JSON result's first fields: interpreter, numpy, threads and an empty "methods"."""
    import numpy as np

    return {"python": sys.version.split()[0], "numpy": np.__version__, "threads": threads, "methods": {}}


def timed(fn, repeats, warmup=0):
    """fn's last output and {best_s, median_s, runs_s} over `repeats` calls, after `warmup` untimed
    calls (the first call of a torch or NumPy computation is slower: allocator, kernels, pages)."""
    times = []
    out = None
    for _ in range(warmup):
        out = fn()
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, {"best_s": min(times), "median_s": sorted(times)[len(times) // 2], "runs_s": times}


def jacobian_ntk(torch, jac, n):
    """K [n*V, n*V] from per-parameter-tensor Jacobians [n, V, ...] (a dict or a sequence), as in the
    functorch NTK tutorial: the sum over tensors of einsum('Naf,Mbf->NaMb')."""
    k = None
    for j in jac.values() if isinstance(jac, dict) else jac:
        j = j.flatten(2)
        t = torch.einsum("Naf,Mbf->NaMb", j, j)
        k = t if k is None else k + t
    return k.reshape(n * k.shape[1], n * k.shape[1])


def unavailable(e):
    """A method's entry when its module cannot be loaded."""
    return {"available": False, "reason": f"{type(e).__name__}: {e}"}
