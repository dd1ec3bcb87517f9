"""The progress display of the three apps: success for envs that report it, return otherwise."""

import math

from robot_rl.agents.sac import SACConfig
from robot_rl.config import DemoConfig, GymEnvConfig, TrainConfig
from robot_rl.eval.metrics import read_metrics
from robot_rl.runtime.progress import (
    Progress,
    actor_outcome_text,
    budget_text,
    eval_text,
    final_eval_line,
    outcome_text,
)


def _episode(steps: int, ret: float, success: bool | None = None) -> dict:
    msg = {"source": "actor", "kind": "episode", "env_steps": steps, "episode": steps // 10,
           "train/episode_return": ret, "train/episode_length": 10.0}  # fmt: skip
    if success is not None:
        msg["train/episode_success"] = float(success)
    return msg


def _progress(tmp_path) -> Progress:
    cfg = TrainConfig(env=GymEnvConfig(id="Hopper-v5"), agent=SACConfig(), demos=DemoConfig(source="none"))
    return Progress(cfg, tmp_path)


def test_return_only_env_shows_its_return(tmp_path, capsys):
    progress = _progress(tmp_path)
    for i, ret in enumerate([100.0, 300.0]):
        progress.handle(_episode(10 * (i + 1), ret))
    progress.handle({"source": "actor", "kind": "eval", "env_steps": 20, "eval/return": 250.0})
    progress.show(force=True)
    line = capsys.readouterr().out
    assert "return(last 20) 200.0" in line and "eval return 250.0" in line
    assert "success" not in line
    progress.logger.close()
    rows = read_metrics(tmp_path / "metrics.csv")
    assert rows[1]["train/return_last20"] == 200.0 and "train/success_last20" not in rows[1]


def test_success_env_display_is_unchanged(tmp_path, capsys):
    progress = _progress(tmp_path)
    progress.handle(_episode(10, -3.0, success=True))
    progress.handle(_episode(20, -5.0, success=False))
    progress.handle({"source": "actor", "kind": "eval", "env_steps": 20, "eval/success_rate": 0.25})
    progress.show(force=True)
    line = capsys.readouterr().out
    assert "success(last 20) 0.50" in line and "| eval 0.25 |" in line and "return" not in line
    progress.logger.close()
    assert read_metrics(tmp_path / "metrics.csv")[1]["train/success_last20"] == 0.5


def test_formatters():
    assert outcome_text([], []) == "success(last 20) -"
    assert outcome_text([], [1.0, 2.0]) == "return(last 20) 1.5"
    assert outcome_text([1.0, 0.0], [1.0, 2.0]) == "success(last 20) 0.50"
    assert eval_text({}) == "eval -"
    assert actor_outcome_text({"success_last20": math.nan, "last_return": 12.34}) == "return(last) 12.3"
    assert actor_outcome_text({"success_last20": 0.4, "last_return": 1.0}) == "success(last 20) 0.40"


def test_final_line_shows_return_when_the_env_reports_no_success():
    base = {"episodes": 5, "episode_length": 100.0, "return": 812.5, "return_std": 40.0}
    line = final_eval_line(base)
    assert line.startswith("final eval: return 812.50 +- 40.00 over 5 episodes")
    assert "success 0.00" not in line
    with_success = base | {"success_rate": 0.6, "success_ci_low": 0.2, "success_ci_high": 0.9}
    assert final_eval_line(with_success, 7).startswith("final eval (weights v7): success 0.60 [0.20, 0.90]")


def test_budget_overshoot_is_said():
    assert budget_text(20_000, 20_000) == "20,000 env steps"
    said = "20,171 env steps (20,000 asked; 171 more to finish the last episode)"
    assert budget_text(20_171, 20_000) == said


def _teleop_progress(tmp_path) -> Progress:
    from robot_rl.config import SimEnvConfig
    from robot_rl.hil.sim_human import SimHumanConfig

    return Progress(TrainConfig(env=SimEnvConfig(), agent=SACConfig(), teleop=SimHumanConfig()), tmp_path)


def _helped(steps: int, success: bool, intervened: int, takeovers: int, rerecorded: bool = False) -> dict:
    from robot_rl.hil.episode_help import EpisodeHelp

    counted = EpisodeHelp()
    for t in range(10):  # `takeovers` segments of intervened steps, spread over the episode
        counted.add(t < 2 * takeovers and t % 2 == 0 and t // 2 < intervened)
    figures = counted.stats(success, rerecorded)
    return _episode(steps, 1.0, success) | {f"train/episode_{k}": float(v) for k, v in figures.items()}


def test_help_figures_with_a_person(tmp_path, capsys):
    """With teleop: the intervention rate, takeovers per episode, success without help and the
    re-recorded episodes, in the line and in metrics.csv."""
    progress = _teleop_progress(tmp_path)
    progress.handle(_helped(10, True, intervened=2, takeovers=2))
    progress.handle(_helped(20, True, intervened=0, takeovers=0))
    progress.handle(_helped(30, False, intervened=1, takeovers=1, rerecorded=True))
    progress.show(force=True)
    line = capsys.readouterr().out
    assert "| help 0.10 of steps, 1.0 takeovers/ep, unaided 0.33, 1 re-recorded |" in line
    progress.logger.close()
    last = read_metrics(tmp_path / "metrics.csv")[-1]
    assert last["train/intervention_rate_last20"] == 0.1 and last["train/takeovers_last20"] == 1.0
    assert last["train/unaided_success_last20"] == 1 / 3
    assert (last["train/intervention_steps_total"], last["train/rerecorded_total"]) == (3.0, 1.0)


def test_no_help_figures_without_a_person(tmp_path, capsys):
    progress = _progress(tmp_path)
    progress.handle(_episode(10, 1.0) | {"train/episode_intervened": 0.0})
    progress.show(force=True)
    assert "help" not in capsys.readouterr().out
    progress.logger.close()
    assert not any("intervention" in k or "takeovers" in k for k in read_metrics(tmp_path / "metrics.csv")[0])


def test_an_estop_from_the_actor_is_kept_for_the_supervisor(tmp_path):
    progress = _teleop_progress(tmp_path)
    progress.handle({"source": "actor", "kind": "estop", "message": "e-stop pressed: the arm was held"})
    assert progress.estop == "e-stop pressed: the arm was held" and "message" not in progress.state
    progress.logger.close()


def test_formatters_of_help():
    from robot_rl.runtime.progress import HelpWindow, rerecorded_text

    assert HelpWindow().text() == "help -"
    assert rerecorded_text(0) == ""
    assert rerecorded_text(2) == " | re-recorded (stored, not trained on): 2 episodes"
