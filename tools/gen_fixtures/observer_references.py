#!/usr/bin/python3
"""Numpy references for the KL and MSE calibrators (tests/quant/observer_test.cpp).

Writes tests/fixtures/observers/{gauss_tail.npy, relu_tail.npy, expected.json}: seeded data and,
for each, the KL threshold (TensorRT entropy calibration as ESP-PPQ runs it: 4096 bins of |x| over
[0, max|x|], first 0.2% of bins zeroed, candidates every 2^(bits-1) bins) and the MSE clip (the
candidate of least expected squared error over bin centres, float scale: max|x| * k / 100).
Binning follows float32 arithmetic as the observer does. Run: /usr/bin/python3 tools/gen_fixtures/observer_references.py
"""
import json
import os

import numpy as np

BINS = 4096
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "observers")


def histogram(x):
    amax = float(np.abs(x).max())
    inv = np.float32(BINS / amax)
    a = np.minimum(np.abs(x).astype(np.float32) * inv, np.float32(BINS - 1))
    idx = a.astype(np.int64)
    return np.bincount(idx, minlength=BINS).astype(np.float64), amax / BINS, amax


def kl_threshold(hist, width, bits=8):
    hist = hist.copy()
    hist[: max(1, BINS // 500)] = 0
    levels = 1 << (bits - 1)
    best, best_i = np.inf, BINS
    counted = hist.sum()
    for i in range(levels, BINS + 1, levels):
        p = hist[:i].copy()
        if hist[i:].sum() > 0.01 * counted:  # never clip more than 1% of the values
            continue
        p[i - 1] += hist[i:].sum()
        if p.sum() <= 0:
            continue
        q = np.zeros(i)
        per = i / levels
        for g in range(levels):
            s, e = int(np.floor(g * per)), int(np.floor((g + 1) * per))
            if g == levels - 1:
                e = i
            chunk = hist[s:e]
            nz = chunk > 0
            if nz.any():
                q[s:e][nz] = chunk.sum() / nz.sum()
        if q.sum() <= 0:
            continue
        pn, qn = p / p.sum(), q / q.sum()
        m = pn > 0
        qk = np.where(q[m] > 0, qn[m], 1e-12)
        kl = float(np.sum(pn[m] * np.log(pn[m] / qk)))
        if kl < best:
            best, best_i = kl, i
    return (best_i + 0.5) * width


def mse_threshold(hist, width, amax, qmax=127):
    centres = (np.arange(BINS) + 0.5) * width
    best, best_t = np.inf, amax
    for k in range(1, 101):
        t = amax * k / 100.0
        s = t / qmax
        q = np.minimum(np.floor(centres / s + 0.5), qmax) * s
        err = float(np.sum(hist * (centres - q) ** 2))
        if err < best:
            best, best_t = err, t
    return best_t


def sparse_far_from_zero(rng):
    x = rng.uniform(1.5, 17.1, 319).astype(np.float32)
    x[0] = np.float32(17.1)
    return np.append(x, np.float32(255.5 * 17.1 / BINS))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261124)
    data = {
        # Gaussian bulk with ten huge outliers at 60: KL clips far below the maximum.
        "gauss_outliers": np.concatenate([rng.standard_normal(100000), np.full(10, 60.0)]),
        # Laplacian (heavy-tailed) data: the MSE-optimal clip lies well inside the range.
        "laplace": rng.laplace(0.0, 1.0, 65536),
        # ReLU output: 40% exact zeros (the spike ESP-PPQ's zeroed first bins remove), an
        # exponential bulk and five values at 30.
        "relu_spike": np.concatenate([np.zeros(40000), rng.exponential(1.0, 60000), np.full(5, 30.0)]),
        # A GlobalAveragePool output of a real classifier (issue 12): 320 sparse values far from
        # zero in [1.5, 17.1], the smallest in the last bin of the 256-bin candidate. Unguarded KL
        # clips at 1.07 (319 of 320 values); the guarded search keeps the range.
        "sparse_far_from_zero": sparse_far_from_zero(rng),
    }
    expected = {}
    for name, x in data.items():
        x = x.astype(np.float32)
        np.save(os.path.join(OUT, name + ".npy"), x)
        hist, width, amax = histogram(x)
        expected[name] = {"kl": kl_threshold(hist, width), "mse": mse_threshold(hist, width, amax), "max_abs": amax}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(json.dumps(expected, indent=1))


if __name__ == "__main__":
    main()
