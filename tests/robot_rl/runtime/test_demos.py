"""Demos from a scripted policy named by import path, and from a zarr store."""

import numpy as np
import pytest

from robot_rl.config import DemoConfig, GymEnvConfig, SimEnvConfig, TrainConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.runtime.demos import load_policy_factory, prepare_demos


def _cfg(**demos) -> TrainConfig:
    from robot_rl.agents.sac import SACConfig

    return TrainConfig(env=SimEnvConfig(task="reach"), agent=SACConfig(), demos=DemoConfig(**demos))


def test_scripted_demos_from_an_import_path(tmp_path):
    cfg = _cfg(source="scripted", num_episodes=3, policy="sim.experts:ReachExpert")
    assert prepare_demos(cfg, tmp_path, log=lambda _: None) == 3
    store = EpisodeStore(tmp_path / "demos.zarr", mode="r")
    steps = store.steps(0, store.n_steps)
    assert store.n_episodes == 3 and steps["reward"].sum() == 3  # each demo succeeded once, then ended
    assert not steps["intervened"].any() and (steps["policy_version"] == -1).all()
    assert not (tmp_path / "demos.zarr.partial").exists()


def test_demos_copied_from_a_zarr_store(tmp_path):
    src_dir, run_dir = tmp_path / "src", tmp_path / "run"
    prepare_demos(_cfg(source="scripted", num_episodes=4), src_dir, log=lambda _: None)
    cfg = _cfg(source="zarr", path=str(src_dir / "demos.zarr"), num_episodes=2)
    assert prepare_demos(cfg, run_dir) == 2
    src, dst = EpisodeStore(src_dir / "demos.zarr", mode="r"), EpisodeStore(run_dir / "demos.zarr", mode="r")
    np.testing.assert_array_equal(dst.episode(1)["action"], src.episode(1)["action"])
    np.testing.assert_array_equal(dst.final_obs(1)["state"], src.final_obs(1)["state"])


def test_resumed_run_keeps_its_demos(tmp_path):
    cfg = _cfg(source="scripted", num_episodes=2)
    prepare_demos(cfg, tmp_path, log=lambda _: None)
    before = EpisodeStore(tmp_path / "demos.zarr", mode="r").episode(0)["action"]
    assert prepare_demos(_cfg(source="scripted", num_episodes=5), tmp_path) == 2
    after = EpisodeStore(tmp_path / "demos.zarr", mode="r").episode(0)["action"]
    np.testing.assert_array_equal(after, before)


def test_none_records_nothing(tmp_path):
    assert prepare_demos(_cfg(source="none", num_episodes=0), tmp_path) == 0
    assert not (tmp_path / "demos.zarr").exists()


@pytest.mark.parametrize("path", ["no_colon", "no.such.module:X", "sim.experts:NoSuchExpert"])
def test_bad_policy_path_is_named(path):
    with pytest.raises(ValueError, match=r"demos\.policy"):
        load_policy_factory(path)


def test_scripted_demos_on_a_gym_env_need_a_policy(tmp_path):
    from robot_rl.agents.sac import SACConfig

    cfg = TrainConfig(env=GymEnvConfig(id="Pendulum-v1"), agent=SACConfig(), demos=DemoConfig())
    with pytest.raises(ValueError, match=r"demos\.policy"):
        prepare_demos(cfg, tmp_path)
