"""The machine's float32 peak as the benchmarks measure it: NumPy's float32 matrix product (OpenBLAS
sgemm, AVX-512 / AVX2 FMA kernels where the CPU has them) on cache-friendly 2048 × 2048 operands,
best of --repeats, on --threads threads. Prints {"gflops": …, "n": …, "threads": …, "numpy": …}.

Run by bench/ntk-models.ts (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed from its environment) to
report the fraction of the machine's float32 peak that entk's contraction reaches.
"""
import argparse
import json
import os
import time

from common import THREAD_VARS


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--n", type=int, default=2048)
    args = p.parse_args()
    for var in THREAD_VARS:
        os.environ[var] = str(args.threads)
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((args.n, args.n), dtype=np.float32)
    b = rng.standard_normal((args.n, args.n), dtype=np.float32)
    a @ b  # warm-up (thread pool, pages)
    best = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    gflops = 2 * args.n**3 / best / 1e9
    print(json.dumps({"gflops": gflops, "n": args.n, "threads": args.threads, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
