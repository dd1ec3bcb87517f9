"""Shared by the benchmark scripts: machine description and result writing.

Each script writes benchmarks/results/<name>.json and owns one section of
benchmarks/RESULTS.md (between `<!-- name:begin -->` and `<!-- name:end -->`), which a rerun replaces.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import socket
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_MD = BENCH_DIR / "RESULTS.md"


# a smoke run evaluates often and briefly, so its curves and final evaluation exist and stay cheap
SMOKE_EVAL = ["eval_every_steps=100", "eval_episodes=2", "final_eval_episodes=5"]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "date": _dt.date.today().isoformat(),
    }


def machine_line(m: dict[str, Any]) -> str:
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    return (
        f"Machine: {m['cpu']} ({m['cores']} cores){gpu}; torch {m['torch']} with "
        f"{m['torch_threads']} thread(s); {m['date']}."
    )


def free_port() -> int:
    """A TCP port free on loopback now, for a process of the benchmark to listen on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_results(
    name: str, payload: dict[str, Any], markdown: str, command: str, section: bool = True
) -> Path:
    """Write results/<name>.json and replace this benchmark's section of RESULTS.md.

    section=False (a smoke run) writes the JSON only, leaving RESULTS.md as it is.
    """
    m = machine()
    out_dir = BENCH_DIR / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps({"name": name, "machine": m, "command": command, **payload}, indent=2))
    if not section:
        return path

    section = (
        f"<!-- {name}:begin -->\n{markdown.strip()}\n\n{machine_line(m)} Command: `{command}`\n"
        f"<!-- {name}:end -->"
    )
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"<!-- {re.escape(name)}:begin -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    RESULTS_MD.write_text(text.rstrip() + "\n")
    return path


def run_train(
    run_dir: Path, overrides: list[str], env: dict[str, str] | None = None, command: str = "train"
) -> dict[str, Any]:
    """Run the real `robot-rl train` (or `fleet`) into a fresh run_dir; returns its eval.json and stdout."""
    import shutil
    import subprocess
    import sys

    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "robot_rl.cli", command, f"run_dir={run_dir}", "progress=false", *overrides]
    res = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    )
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return json.loads((run_dir / "eval.json").read_text()) | {"run_dir": str(run_dir), "stdout": res.stdout}
