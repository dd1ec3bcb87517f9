from pathlib import Path

import numpy as np
import pytest

from robot_rl.eval.metrics import MetricsLogger, read_metrics


def test_round_trip_with_growing_keys(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        log.log({"env_steps": 100, "train/loss": 0.5})
        log.log({"env_steps": 200, "train/loss": np.float32(0.25), "eval/success_rate": 0.4})
        log.log({"env_steps": 300, "train/alpha": 0.1})
    rows = read_metrics(tmp_path / "metrics.csv")
    assert rows == [
        {"env_steps": 100, "train/loss": 0.5},
        {"env_steps": 200, "train/loss": 0.25, "eval/success_rate": 0.4},
        {"env_steps": 300, "train/alpha": 0.1},
    ]
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert header == "env_steps,train/loss,eval/success_rate,train/alpha"


def test_rows_are_on_disk_before_close_and_resume_appends(tmp_path: Path) -> None:
    log = MetricsLogger(tmp_path, tensorboard=False)
    log.log({"env_steps": 1, "a": 1.5})
    assert read_metrics(tmp_path / "metrics.csv") == [{"env_steps": 1, "a": 1.5}]
    log.close()
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        log.log({"env_steps": 2, "a": 2.5, "b": True})
    assert read_metrics(tmp_path / "metrics.csv") == [
        {"env_steps": 1, "a": 1.5},
        {"env_steps": 2, "a": 2.5, "b": 1},
    ]


def test_tensorboard_events_written(tmp_path: Path) -> None:
    pytest.importorskip("torch.utils.tensorboard")
    with MetricsLogger(tmp_path) as log:
        log.log({"env_steps": 10, "train/loss": 1.0})
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_bad_rows_rejected(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        with pytest.raises(ValueError, match="env_steps"):
            log.log({"train/loss": 1.0})
        with pytest.raises(ValueError, match="obs"):
            log.log({"env_steps": 1, "obs": np.zeros(3)})
        with pytest.raises(ValueError, match="note"):
            log.log({"env_steps": 1, "note": "hi"})
    with pytest.raises(RuntimeError, match="closed"):
        log.log({"env_steps": 2})
    with pytest.raises(FileNotFoundError):
        read_metrics(tmp_path / "missing.csv")
