"""Scalar metrics of a run: one wide CSV (`metrics.csv`) plus TensorBoard when available.

The CSV has one row per `log()` call and one column per key, `env_steps` first. When a row
brings a key not seen before, the file is rewritten with the wider header (to a temporary file,
then atomically renamed), so earlier rows are kept and get empty cells for the new column.
Every row is flushed at once, so a crash loses nothing already logged. An existing
`metrics.csv` in `run_dir` is appended to, which makes resumed runs continue the same file.
"""

from __future__ import annotations

import csv
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

STEP_KEY = "env_steps"
CSV_NAME = "metrics.csv"

Scalar = int | float


def _to_scalar(key: str, value: Any) -> Scalar:
    """Turn numbers, numpy scalars and 0-d tensors into a Python int or float."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, numbers.Integral):  # bool included: stored as 0/1
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise ValueError(f"metric {key!r} must be a scalar number, got {type(value).__name__}: {value!r}")


def _format_cell(value: Scalar | None) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)  # repr: exact, and "nan" reads back


def _parse_cell(cell: str) -> Scalar | None:
    if cell == "":
        return None
    try:
        return int(cell)
    except ValueError:
        return float(cell)


def read_metrics(csv_path: str | os.PathLike[str]) -> list[dict[str, Scalar]]:
    """Rows of a metrics CSV as dicts; empty cells are left out, integers stay int."""
    path = Path(csv_path)
    if not path.is_file():
        raise FileNotFoundError(f"no metrics file at {path}")
    rows: list[dict[str, Scalar]] = []
    with path.open(newline="") as f:
        for line_no, raw in enumerate(csv.DictReader(f), start=2):
            row: dict[str, Scalar] = {}
            for key, cell in raw.items():
                if key is None or cell is None:
                    raise ValueError(f"{path}:{line_no}: row has a different number of cells than the header")
                try:
                    value = _parse_cell(cell)
                except ValueError as e:
                    raise ValueError(f"{path}:{line_no}: column {key!r} is not a number: {cell!r}") from e
                if value is not None:
                    row[key] = value
            rows.append(row)
    return rows


def _open_summary_writer(log_dir: Path) -> Any | None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch or tensorboard missing: the CSV alone still records everything
        return None
    return SummaryWriter(log_dir=str(log_dir))


class MetricsLogger:
    """Appends rows of scalar metrics (each with `env_steps`) to `run_dir/metrics.csv`."""

    def __init__(self, run_dir: str | os.PathLike[str], tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.run_dir / CSV_NAME
        self._columns: list[str] = self._existing_header()
        self._file: TextIO = self.csv_path.open("a", newline="")
        self._writer = _open_summary_writer(self.run_dir / "tb") if tensorboard else None

    def _existing_header(self) -> list[str]:
        if not self.csv_path.is_file() or self.csv_path.stat().st_size == 0:
            return []
        with self.csv_path.open(newline="") as f:
            return next(csv.reader(f), [])

    def log(self, row: Mapping[str, Any]) -> None:
        """Record one row; `row` must hold `env_steps` and scalar values only."""
        if self._file.closed:
            raise RuntimeError(f"MetricsLogger for {self.csv_path} is closed")
        if STEP_KEY not in row:
            raise ValueError(f"metrics row must contain {STEP_KEY!r}, got keys {sorted(row)}")
        values = {str(k): _to_scalar(str(k), v) for k, v in row.items()}
        new_keys = [k for k in values if k not in self._columns]
        if new_keys:
            self._widen(new_keys)
        csv.writer(self._file).writerow([_format_cell(values.get(c)) for c in self._columns])
        self._file.flush()
        self._write_tensorboard(values)

    def _widen(self, new_keys: list[str]) -> None:
        """Rewrite the CSV with new columns appended (env_steps first), keeping all rows."""
        old_columns = self._columns
        columns = old_columns + new_keys
        if STEP_KEY in columns:
            columns = [STEP_KEY] + [c for c in columns if c != STEP_KEY]
        self._file.close()
        old_rows = read_metrics(self.csv_path) if old_columns else []
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for r in old_rows:
                w.writerow([_format_cell(r.get(c)) for c in columns])
        os.replace(tmp, self.csv_path)
        self._columns = columns
        self._file = self.csv_path.open("a", newline="")

    def _write_tensorboard(self, values: Mapping[str, Scalar]) -> None:
        if self._writer is None:
            return
        step = int(values[STEP_KEY])
        for key, value in values.items():
            if key != STEP_KEY:
                self._writer.add_scalar(key, value, global_step=step)
        self._writer.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
