"""Figures: one run's learning curve from its metrics.csv, and benchmark curves across seeds."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from robot_rl.eval.metrics import read_metrics
from robot_rl.eval.stats import iqm_band

Curve = tuple[np.ndarray, np.ndarray]
# drawn next to success whenever a run has them (a run with a teleop device: runtime/progress.py)
HELP_CURVES = ("train/intervention_rate_last20",)


def _new_axes() -> tuple[Figure, Axes]:
    # A bare Figure on the Agg canvas, not pyplot: no display needed (robots, CI, GPU boxes) and
    # no global backend switch or figure registry in the caller's process.
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _save(fig: Figure, out_png: str | os.PathLike[str]) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    return out


def _column(rows: Iterable[Mapping[str, Any]], x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) points from the rows that have both keys, sorted by x."""
    pts = [(float(r[x]), float(r[y])) for r in rows if x in r and y in r]
    if not pts:
        return np.empty(0), np.empty(0)
    xs, ys = np.array(pts).T
    order = np.argsort(xs, kind="stable")
    return xs[order], ys[order]


def plot_learning_curve(
    csv_path_or_rows: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    out_png: str | os.PathLike[str],
    x: str = "env_steps",
    ys: Sequence[str] = ("eval/success_rate", "train/episode_success"),
) -> Path:
    """Plot each of `ys` against `x`; columns absent from the data are skipped, not an error.

    A run where a person helped also gets its intervention rate (HELP_CURVES), dashed, on the
    same axes: both are fractions, and how fast the help falls off is read against success.
    """
    if isinstance(csv_path_or_rows, (str, os.PathLike)):
        rows: Sequence[Mapping[str, Any]] = read_metrics(csv_path_or_rows)
    else:
        rows = csv_path_or_rows
    return _save(learning_curve_figure(rows, x, ys), out_png)


def learning_curve_figure(rows: Sequence[Mapping[str, Any]], x: str, ys: Sequence[str]) -> Figure:
    """The figure plot_learning_curve saves (one axes; a legend naming each column drawn)."""
    fig, ax = _new_axes()
    plotted = 0
    for y in [*ys, *(c for c in HELP_CURVES if c not in ys)]:
        xs, vals = _column(rows, x, y)
        if xs.size:
            style = "--" if y in HELP_CURVES else "-"
            ax.plot(xs, vals, style, marker="." if xs.size < 50 else None, label=y)
            plotted += 1
    if plotted:
        ax.legend()
    else:
        ax.text(
            0.5, 0.5, f"no data for {list(ys)} vs {x!r}", ha="center", va="center", transform=ax.transAxes
        )
    ax.set_xlabel(x)
    ax.grid(alpha=0.3)
    return fig


def _common_grid(name: str, runs: Sequence[Curve], n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate each run onto a grid spanning the x range all runs cover (no extrapolation).

    Returns (grid (P,), values (N_runs, P)).
    """
    if not runs:
        raise ValueError(f"variant {name!r} has no runs")
    sorted_runs = []
    for i, (rx, ry) in enumerate(runs):
        rx, ry = np.asarray(rx, dtype=np.float64), np.asarray(ry, dtype=np.float64)
        if rx.ndim != 1 or rx.shape != ry.shape or rx.size == 0:
            raise ValueError(
                f"variant {name!r} run {i}: x and y must be equal-length non-empty 1-D arrays, "
                f"got shapes {rx.shape} and {ry.shape}"
            )
        order = np.argsort(rx, kind="stable")
        sorted_runs.append((rx[order], ry[order]))
    lo = max(rx[0] for rx, _ in sorted_runs)
    hi = min(rx[-1] for rx, _ in sorted_runs)
    if lo > hi:
        raise ValueError(f"variant {name!r}: runs share no x range (latest start {lo} > earliest end {hi})")
    grid = np.linspace(lo, hi, n_points if hi > lo else 1)
    return grid, np.stack([np.interp(grid, rx, ry) for rx, ry in sorted_runs])


def plot_runs(
    curves: Mapping[str, Sequence[Curve]],
    out_png: str | os.PathLike[str],
    xlabel: str,
    ylabel: str,
    n_points: int = 100,
    confidence: float = 0.95,
    seed: int = 0,
) -> Path:
    """Per variant, the IQM across seeds with a shaded bootstrap band.

    curves: variant name -> one (x, y) pair per seed. Seeds are interpolated onto a common grid
    over the x range they all cover.
    """
    if not curves:
        raise ValueError("curves is empty: nothing to plot")
    fig, ax = _new_axes()
    for name, runs in curves.items():
        grid, values = _common_grid(name, runs, n_points)
        mid, low, high = iqm_band(values, confidence=confidence, seed=seed)
        (line,) = ax.plot(grid, mid, label=f"{name} (n={values.shape[0]})")
        ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.25, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"IQM across seeds, {confidence:.0%} bootstrap CI")
    if len(curves) > 3:  # many long labels would hide the curves: list them under the axes
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize="small")
    else:
        ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, out_png)


def plot_confusion(
    confusion: Sequence[Sequence[int]],
    out_png: str | os.PathLike[str],
    labels: Sequence[str] = ("failure", "success"),
    title: str = "",
) -> Path:
    """A 2x2 confusion matrix [[tn, fp], [fn, tp]] as a picture: rows true, columns predicted,
    each cell its count and its share of the row."""
    counts = np.asarray(confusion, dtype=np.int64)
    if counts.shape != (len(labels), len(labels)) or (counts < 0).any():
        n = len(labels)
        raise ValueError(f"confusion must be a {n}x{n} matrix of counts, got {counts.tolist()}")
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    fig, ax = _new_axes()
    fig.set_size_inches(4.5, 4)
    ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), n in np.ndenumerate(counts):
        colour = "white" if shares[i, j] > 0.5 else "black"
        ax.text(j, i, f"{n}\n{shares[i, j]:.1%}", ha="center", va="center", color=colour)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    return _save(fig, out_png)
