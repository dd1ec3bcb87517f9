"""Aggregate statistics over runs (seeds), following rliable (Agarwal et al. 2021).

The interquartile mean (IQM) is the headline number: robust to a bad seed, yet uses half the runs,
unlike the median. Uncertainty is a percentile bootstrap over runs, and success rates from a
fixed number of evaluation episodes get a Wilson score interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np

ArrayLike = Sequence[float] | np.ndarray
Stat = Callable[[np.ndarray], float]


def _as_runs(x: ArrayLike, name: str = "x") -> np.ndarray:
    """Validate a 1-D sample of run scores and return it as float64."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one score per run), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty: need at least one run")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf at indices {np.flatnonzero(~np.isfinite(a)).tolist()}")
    return a


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _iqm_along(a: np.ndarray, axis: int) -> np.ndarray:
    """IQM along `axis`, with scipy.stats.trim_mean(a, 0.25) semantics.

    int(0.25 * n) values are cut from each end, so n < 4 cuts nothing (n=3 is the plain mean)
    and n=4 averages the middle two.
    """
    n = a.shape[axis]
    cut = int(0.25 * n)
    kept = np.take(np.sort(a, axis=axis), np.arange(cut, n - cut), axis=axis)
    return kept.mean(axis=axis)


def iqm(x: ArrayLike) -> float:
    """Interquartile mean: mean of the middle 50% of runs (scipy trim_mean(x, 0.25))."""
    return float(_iqm_along(_as_runs(x), axis=0))


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap samples along axis 0."""
    alpha = 1.0 - confidence
    low, high = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return low, high


def bootstrap_ci(
    x: ArrayLike,
    stat: Stat = iqm,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat` over runs, resampling runs with replacement."""
    a = _as_runs(x)
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    idx = np.random.default_rng(seed).integers(0, a.size, size=(n_resamples, a.size))
    if stat is iqm:
        samples = _iqm_along(a[idx], axis=1)  # vectorised: the common case, and used per x in plots
    else:
        samples = np.array([stat(a[row]) for row in idx], dtype=np.float64)
    low, high = _percentile_interval(samples, confidence)
    return float(low), float(high)


def iqm_band(
    runs: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM across runs at each point of a curve, with a bootstrap band.

    runs: (N_runs, P) scores, one row per seed on a shared x grid of P points.
    Returns (iqm, low, high), each of shape (P,). The same resampled runs are used at every point,
    so the band reflects seed-to-seed variation of whole curves.
    """
    a = np.asarray(runs, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"runs must have shape (N_runs, P) with both > 0, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("runs contains NaN or inf")
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    idx = np.random.default_rng(seed).integers(0, a.shape[0], size=(n_resamples, a.shape[0]))
    samples = _iqm_along(a[idx], axis=1)  # (R, P)
    low, high = _percentile_interval(samples, confidence)
    return _iqm_along(a, axis=0), low, high


def success_rate_ci(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """Success rate and its Wilson score interval: (rate, low, high).

    Wilson rather than the normal approximation because evaluations are short (tens of
    episodes) and rates sit near 0 or 1, where the normal interval leaves [0, 1].
    """
    if isinstance(successes, bool) or isinstance(n, bool):
        raise ValueError("successes and n must be integer counts, not bools")
    if int(successes) != successes or int(n) != n:
        raise ValueError(f"successes and n must be integers, got {successes!r} and {n!r}")
    if n <= 0:
        raise ValueError(f"n (number of episodes) must be > 0, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {successes}")
    _check_confidence(confidence)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The bounds are exactly 0 and 1 at the extremes; say so rather than leave rounding residue.
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return float(p), float(low), float(high)


def summarize_runs(
    values: ArrayLike,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """IQM with its bootstrap interval, plus the plain mean and the number of runs."""
    a = _as_runs(values, name="values")
    low, high = bootstrap_ci(a, iqm, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return {"iqm": iqm(a), "ci_low": low, "ci_high": high, "mean": float(a.mean()), "n": int(a.size)}
