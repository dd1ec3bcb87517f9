"""Evaluation: run statistics (IQM, bootstrap and Wilson intervals), metrics logging, figures."""

from robot_rl.eval.metrics import MetricsLogger, read_metrics
from robot_rl.eval.stats import bootstrap_ci, iqm, iqm_band, success_rate_ci, summarize_runs

__all__ = [
    "MetricsLogger",
    "bootstrap_ci",
    "iqm",
    "iqm_band",
    "read_metrics",
    "success_rate_ci",
    "summarize_runs",
]
