"""`robot-rl train device=cuda` end to end, where torch sees a GPU (skipped elsewhere, as the rclpy
tests are): the learner trains on the GPU and ships its weights to the CPU actor, for an agent of
each kind (SAC, a chunked flow BC, a residual and DSRL with best-of-N on that flow base), and a
run trained on the GPU evaluates on the CPU. Without a GPU, device=cuda stops at start-up."""

from __future__ import annotations

import json

import pytest
import torch
from test_train_e2e import TINY, assert_exactly_once, robot_rl

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")
FLOW = [
    "agent=flow_bc",
    "agent.hidden_dims=[64,64]",
    "agent.batch_size=32",
    "agent.chunk=4",
    "agent.act_horizon=2",
]


def train_on_gpu(run, *overrides: str) -> dict:
    res = robot_rl(
        "train", "env.task=reach", "device=cuda", "total_env_steps=300", f"run_dir={run}", *overrides
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "learner on cuda" in res.stdout and "final eval: success" in res.stdout
    result = json.loads((run / "eval.json").read_text())
    assert result["learner_device"] == "cuda" and result["updates"] > 0
    return result


@cuda
@pytest.mark.slow
def test_sac_trains_on_the_gpu_and_evaluates_on_the_cpu(tmp_path):
    run = tmp_path / "sac"
    train_on_gpu(run, *TINY)
    assert assert_exactly_once(run) >= 300
    res = robot_rl("eval", str(run), "--episodes", "2", "--override", "device=cpu")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert json.loads(res.stdout.strip().splitlines()[-1])["episodes"] == 2


@cuda
@pytest.mark.slow
def test_flow_base_then_residual_and_dsrl_train_on_the_gpu(tmp_path):
    base = tmp_path / "flow"
    train_on_gpu(base, TINY[0], *TINY[4:], *FLOW)
    train_on_gpu(tmp_path / "residual", *TINY, "agent=residual", f"agent.base={base}", "agent.best_of_n=4")
    dsrl = ["agent=dsrl", f"agent.base={base}", "agent.best_of_n=4", "demos=none"]
    train_on_gpu(tmp_path / "dsrl", *TINY[1:], *dsrl)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_device_cuda_without_a_gpu_stops_before_the_run_folder(tmp_path):
    res = robot_rl("train", "device=cuda", f"run_dir={tmp_path / 'run'}", timeout=120)
    assert res.returncode != 0
    assert "no CUDA device" in res.stdout + res.stderr
    assert not (tmp_path / "run").exists()
