"""Statistics.update from Python against the same C++ call timed in C++ (rcpu._rcpu._time_update_cpp:
the binding's overhead), and against the Gram alone in numpy (x.T @ x) and torch when it is installed.
Issue 15's target: Python within 5% of C++ for blocks of 512 x 4096 float32.

    PYTHONPATH=build/gcc/python python3 benchmarks/python/bench_update.py [--tokens 512 --channels 4096 --rounds 5]

Rounds interleave the contenders; medians are reported, and the ratios are formed within one run."""
import argparse
import statistics
import time

import numpy as np

import rcpu
from rcpu import _rcpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--channels", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.tokens, a.channels), dtype=np.float32)
    try:
        import torch
        xt = torch.from_numpy(x)
    except ImportError:
        torch = None
    times = {"rcpu from Python": [], "rcpu from C++": [], "numpy x.T @ x (float32)": [],
             "numpy x.T @ x (float64)": []}
    if torch is not None:
        times["torch x.T @ x (float32)"] = []
        times["rcpu from Python, torch tensor"] = []
    for _ in range(a.rounds):
        s = rcpu.Statistics(a.channels, dtype="float32")
        t0 = time.perf_counter()
        s.update(x)
        times["rcpu from Python"].append(time.perf_counter() - t0)
        times["rcpu from C++"].append(_rcpu._time_update_cpp(x, True, 1)[0])
        t0 = time.perf_counter()
        x.T @ x
        times["numpy x.T @ x (float32)"].append(time.perf_counter() - t0)
        xd = x.astype(np.float64)
        t0 = time.perf_counter()
        xd.T @ xd
        times["numpy x.T @ x (float64)"].append(time.perf_counter() - t0)
        if torch is not None:
            t0 = time.perf_counter()
            xt.T @ xt
            times["torch x.T @ x (float32)"].append(time.perf_counter() - t0)
            s = rcpu.Statistics(a.channels, dtype="float32")
            t0 = time.perf_counter()
            s.update(xt)
            times["rcpu from Python, torch tensor"].append(time.perf_counter() - t0)
    base = statistics.median(times["rcpu from C++"])
    print(f"Statistics.update on {a.tokens} x {a.channels} float32 (C order), medians of {a.rounds} interleaved rounds")
    print(f"{'':34s} {'ms':>9s} {'/ C++':>7s}")
    for k, v in times.items():
        m = statistics.median(v)
        print(f"{k:34s} {1e3 * m:9.2f} {m / base:7.3f}")
    ratio = statistics.median(times["rcpu from Python"]) / base
    print(f"target: Python / C++ <= 1.05: {'met' if ratio <= 1.05 else 'NOT met'} ({ratio:.3f})")


if __name__ == "__main__":
    main()
