"""The start-up shared by `robot-rl train`, `learner` and `actor`: check, then make the run folder.

A start first checks everything that can fail: resume against what the folder holds, the env
(its id and env.imports: it is built once, for its spaces) and the demo source (demos.policy
imports, a demo store opens); the actor checks its token before it calls open_run_folder. Only
then is the folder made, with config.yaml and, under hydra (the `robot-rl` command), `.hydra/`
(the config and the overrides that made it, which resume and `robot-rl eval` read) and the log
file hydra would write. So a bad env id or import leaves nothing behind. A start that fails later
while preparing (recording demos) removes the folder if this start made it (discard_on_failure),
and never removes anything that was there before.

With reward=classifier the classifier file is checked before the folder is made too (it opens,
and fits the env's cameras and image size), where it is used: by an actor, and by a process
recording scripted demos.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from robot_rl.config import TrainConfig
from robot_rl.envs.factory import make_env
from robot_rl.reward.wrapper import load_reward_classifier
from robot_rl.runtime.demos import check_demos_source
from robot_rl.runtime.residual_base import with_base

TRAIN_HOLDS = ("replay.zarr", "actor_0")  # what marks a `robot-rl train` run in a folder


class RunFailed(RuntimeError):
    """A process of the run died; the message says how to resume."""


@dataclass
class RunFolder:
    """A checked start: its folder, the env's spaces, and whether this start made the folder."""

    path: Path
    obs_space: Any
    action_space: Any
    made: bool
    log_handlers: list[logging.Handler] = field(default_factory=list)

    @contextlib.contextmanager
    def discard_on_failure(self) -> Iterator[None]:
        """Within: a failure removes the folder if this start made it, then propagates."""
        try:
            yield
        except BaseException:
            if self.made:
                for handler in self.log_handlers:
                    logging.getLogger().removeHandler(handler)
                    handler.close()
                shutil.rmtree(self.path, ignore_errors=True)
            raise


def check_resume(run_dir: Path, resume: bool, holds_run: tuple[str, ...]) -> None:
    """A folder that holds a run is continued only with resume=true; resume needs one there."""
    has_run = any((run_dir / name).exists() for name in holds_run)
    if has_run and not resume:
        raise FileExistsError(
            f"{run_dir} already holds a run: pass resume=true to continue it, or a new run_dir"
        )
    if resume and not has_run:
        raise FileNotFoundError(f"resume=true but {run_dir} holds no run to resume")


def open_run_folder(
    cfg: TrainConfig, holds_run: tuple[str, ...] = TRAIN_HOLDS, demos: bool = True
) -> RunFolder:
    """Check the start (resume, env, demo source when `demos`), then make or reopen the folder."""
    run_dir = Path(cfg.run_dir)
    check_resume(run_dir, cfg.resume, holds_run)
    env = with_base(cfg.agent, make_env(cfg.env, seed=cfg.seed))  # a residual agent's base is checked here
    obs_space, action_space = env.observation_space, env.action_space
    env.close()
    if demos:
        check_demos_source(cfg, run_dir)
    scripted = cfg.demos.source == "scripted" and cfg.demos.num_episodes > 0
    records_demos = demos and scripted and not (run_dir / "demos.zarr").exists()
    if not demos or cfg.transport.kind == "local" or records_demos:  # acts, or records demos
        load_reward_classifier(cfg.reward, obs_space)
    made = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    folder = RunFolder(run_dir, obs_space, action_space, made)
    folder.log_handlers = _hydra_record(run_dir)
    return folder


def _hydra_record(run_dir: Path) -> list[logging.Handler]:
    """What hydra writes into its output folder, written here once the start is checked (the
    `robot-rl` command keeps hydra from writing before: configs/train.yaml): .hydra/ and the
    log file. Nothing outside a hydra app."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    hydra = HydraConfig.get()
    record = run_dir / ".hydra"
    record.mkdir(exist_ok=True)
    (record / "hydra.yaml").write_text(OmegaConf.to_yaml({"hydra": hydra}))
    (record / "overrides.yaml").write_text(OmegaConf.to_yaml(hydra.overrides.task))
    (record / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    # hydra's default job logging: INFO to the console and to <run_dir>/<job name>.log
    formatter = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    handlers: list[logging.Handler] = [
        logging.StreamHandler(sys.stdout),
        logging.FileHandler(run_dir / f"{hydra.job.name}.log"),
    ]
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handlers
