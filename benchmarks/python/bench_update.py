"""Statistics.update from Python against the same C++ call timed in C++ (rcpu._rcpu._time_update_cpp:
the binding's overhead), and against the Gram alone in numpy (x.T @ x) and torch when it is installed.
Issue 15's target: Python within 5% of C++ for blocks of 512 x 4096 float32.

    PYTHONPATH=build/gcc/python python3 benchmarks/python/bench_update.py [--tokens 512 --channels 4096 --rounds 5]

On CPUs that Debian's OpenBLAS 0.3.21 does not know (OPENBLAS_VERBOSE=2 says Prescott) set OPENBLAS_CORETYPE.

Rounds interleave the contenders, each round starting with the next one; medians are reported, and
the ratios are formed within one run."""
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
    xd = x.astype(np.float64)

    def update(block):
        s = rcpu.Statistics(a.channels, dtype="float32")
        t0 = time.perf_counter()
        s.update(block)
        return time.perf_counter() - t0

    def product(f):
        t0 = time.perf_counter()
        f()
        return time.perf_counter() - t0

    contenders = [("rcpu from Python", lambda: update(x)),
                  ("rcpu from C++", lambda: _rcpu._time_update_cpp(x, True, 1)[0]),
                  ("numpy x.T @ x (float32)", lambda: product(lambda: x.T @ x)),
                  ("numpy x.T @ x (float64)", lambda: product(lambda: xd.T @ xd))]
    if torch is not None:
        contenders += [("rcpu from Python, torch tensor", lambda: update(xt)),
                       ("torch x.T @ x (float32)", lambda: product(lambda: xt.T @ xt))]
    times = {name: [] for name, _ in contenders}
    for r in range(a.rounds):
        # Each round starts with the next contender, so that no one always follows the same other
        # (torch's OpenMP threads spin for a while after its product; the CPU slows after an idle wait).
        k = r % len(contenders)
        for name, f in contenders[k:] + contenders[:k]:
            times[name].append(f())
            if name.startswith("torch"):
                time.sleep(0.5)  # let torch's threads stop spinning
                _rcpu._time_update_cpp(x[:128], True, 1)  # and the CPU come back up, untimed
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
