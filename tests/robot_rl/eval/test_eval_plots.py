from pathlib import Path

import numpy as np
import pytest

from robot_rl.eval.metrics import MetricsLogger
from robot_rl.eval.plots import learning_curve_figure, plot_learning_curve, plot_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def test_learning_curve_from_csv(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        for step in range(0, 1000, 100):
            log.log({"env_steps": step, "train/episode_success": step / 1000})
            if step % 300 == 0:
                log.log({"env_steps": step, "eval/success_rate": step / 900})
    out = plot_learning_curve(tmp_path / "metrics.csv", tmp_path / "fig" / "curve.png")
    assert _is_png(out)


def test_learning_curve_tolerates_missing_columns(tmp_path: Path) -> None:
    rows = [{"env_steps": 1, "other": 0.1}, {"other": 0.2}]
    assert _is_png(plot_learning_curve(rows, tmp_path / "empty.png"))


def _legend(rows: list[dict]) -> list[str]:
    ys = ("eval/success_rate", "train/success_last20")
    legend = learning_curve_figure(rows, "env_steps", ys).axes[0].get_legend()
    return [t.get_text() for t in legend.get_texts()]


def test_intervention_rate_is_drawn_next_to_success_only_when_a_person_helped(tmp_path: Path) -> None:
    plain = [{"env_steps": s, "train/success_last20": s / 100} for s in range(0, 100, 10)]
    helped = [r | {"train/intervention_rate_last20": 1 - r["train/success_last20"]} for r in plain]
    assert _legend(plain) == ["train/success_last20"]
    assert _legend(helped) == ["train/success_last20", "train/intervention_rate_last20"]
    assert _is_png(plot_learning_curve(helped, tmp_path / "helped.png"))


def test_plot_runs_iqm_band(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    curves = {
        variant: [(np.sort(rng.uniform(0, 1000, 30)), rng.uniform(0, 1, 30) * scale) for _ in range(5)]
        for variant, scale in [("sac", 1.0), ("residual", 0.5)]
    }
    out = plot_runs(curves, tmp_path / "runs.png", xlabel="env steps", ylabel="success")
    assert _is_png(out)


def test_plot_runs_rejects_disjoint_runs(tmp_path: Path) -> None:
    curves = {"v": [(np.array([0.0, 1.0]), np.zeros(2)), (np.array([2.0, 3.0]), np.zeros(2))]}
    with pytest.raises(ValueError, match="no x range"):
        plot_runs(curves, tmp_path / "x.png", xlabel="x", ylabel="y")
