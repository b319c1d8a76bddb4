"""GEMM at the models' shapes: tensorgraph's kernel (criterion, `cargo bench --bench kernels`)
against numpy's sgemm (OpenBLAS), alternating in one run, with 1 and 2 threads.

    python3 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install numpy threadpoolctl
    /tmp/peers-venv/bin/python benches/compare_gemm.py --reps 3      # from the repository root

Prints GFLOP/s per shape and the ratio ours / OpenBLAS (the issue asks >= 0.90), medians over
the repetitions.
"""
import argparse
import os
import re
import statistics
import subprocess
import time

import numpy as np
from threadpoolctl import threadpool_limits

SHAPES = [(50, 784, 300), (784, 50, 300), (19600, 288, 64), (288, 19600, 64), (19600, 64, 288)]
UNIT = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def numpy_seconds(m, k, n, threads, calls=25):
    rng = np.random.default_rng(0)
    a = rng.uniform(-0.5, 0.5, (m, k)).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, (k, n)).astype(np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        for _ in range(3):
            a @ b
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ours_seconds(threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(["cargo", "bench", "--bench", "kernels", "--", "gemm/"], env=env, check=True,
                         capture_output=True, text=True).stdout
    found = {}
    for name, value, unit in re.findall(r"gemm/(\d+x\d+x\d+)\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", out):
        found[name] = float(value) * UNIT[unit]
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    subprocess.run(["cargo", "bench", "--bench", "kernels", "--no-run"], check=True, capture_output=True)
    for threads in (2, 1):
        ours = {f"{m}x{k}x{n}": [] for m, k, n in SHAPES}
        blas = {f"{m}x{k}x{n}": [] for m, k, n in SHAPES}
        for _ in range(args.reps):
            for name, t in ours_seconds(threads).items():
                ours[name].append(t)
            for m, k, n in SHAPES:
                blas[f"{m}x{k}x{n}"].append(numpy_seconds(m, k, n, threads))
        print(f"threads={threads}")
        print(f"{'shape':>14} {'ours GFLOP/s':>13} {'OpenBLAS GFLOP/s':>17} {'ratio':>6}")
        for m, k, n in SHAPES:
            name = f"{m}x{k}x{n}"
            flop = 2 * m * k * n
            g_ours = flop / statistics.median(ours[name]) / 1e9
            g_blas = flop / statistics.median(blas[name]) / 1e9
            print(f"{name:>14} {g_ours:13.0f} {g_blas:17.0f} {g_ours / g_blas:6.2f}")


if __name__ == "__main__":
    main()
