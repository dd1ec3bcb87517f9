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


def test_noisy_style_records_successful_human_like_demos(tmp_path):
    def actions(style: str, run: str):
        cfg = _cfg(source="scripted", num_episodes=3, style=style)
        prepare_demos(cfg, tmp_path / run, log=lambda _: None)
        store = EpisodeStore(tmp_path / run / "demos.zarr", mode="r")
        assert store.steps(0, store.n_steps)["reward"].sum() == 3  # only successful demos kept
        return store.steps(0, store.n_steps)["action"]

    noisy = actions("noisy", "a")
    np.testing.assert_array_equal(actions("noisy", "b"), noisy)  # the run's seed fixes them
    clean = actions("clean", "c")
    assert len(noisy) > len(clean)  # slower than the expert
    with pytest.raises(ValueError, match=r"demos\.style"):
        DemoConfig(style="sloppy")
    with pytest.raises(ValueError, match=r"demos\.style"):
        DemoConfig(source="zarr", path="x.zarr", style="noisy")


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


def _write_foreign_store(path, lengths, state_dim):
    """A store laid out as diffusion_policy saves one: its own key names, float images, no rewards."""
    import numcodecs
    import zarr

    rng = np.random.default_rng(0)
    n = sum(lengths)
    data = {
        "img": rng.uniform(0, 1, (n, 8, 8, 3)).astype(np.float32),
        "agent_pos": rng.normal(size=(n, state_dim)).astype(np.float32),
        "action": rng.uniform(-1, 1, (n, 4)).astype(np.float32),
    }
    root = zarr.open_group(path, mode="w", zarr_format=2)
    group = root.create_group("data")
    for key, value in data.items():
        arr = group.create_array(
            key,
            shape=value.shape,
            chunks=value.shape,
            dtype=value.dtype,
            compressors=numcodecs.Blosc(cname="lz4"),
        )
        arr[:] = value
    root.create_group("meta").create_array("episode_ends", data=np.cumsum(lengths).astype(np.int64))
    return data


def test_foreign_zarr_store_imported_through_the_key_map(tmp_path):
    from robot_rl.runtime.demos import check_demos_fit

    data = _write_foreign_store(tmp_path / "dp.zarr", [5, 7], state_dim=25)
    cfg = _cfg(
        source="zarr",
        path=str(tmp_path / "dp.zarr"),
        num_episodes=0,
        reward_last_step=True,
        key_map={"agent_pos": "state", "img": "image_front"},
    )
    assert prepare_demos(cfg, tmp_path / "run") == 2
    store = EpisodeStore(tmp_path / "run" / "demos.zarr", mode="r")
    ep = store.episode(1)
    np.testing.assert_array_equal(ep["state"], data["agent_pos"][5:])
    assert ep["image_front"].dtype == np.uint8 and ep["image_front"].max() > 200  # [0, 1] floats scaled
    assert ep["reward"].tolist() == [0.0] * 6 + [1.0] and ep["terminated"][-1] and not ep["truncated"].any()

    from robot_rl.envs.factory import make_env

    no_camera_env = make_env(SimEnvConfig(task="reach"))
    with pytest.raises(ValueError, match="cameras the env does not"):
        check_demos_fit(
            tmp_path / "run" / "demos.zarr", no_camera_env.observation_space, no_camera_env.action_space
        )


def test_foreign_store_without_a_state_key_is_named(tmp_path):
    _write_foreign_store(tmp_path / "dp.zarr", [3], state_dim=2)
    cfg = _cfg(source="zarr", path=str(tmp_path / "dp.zarr"))
    with pytest.raises(ValueError, match=r"no 'state'.*key_map"):
        prepare_demos(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "demos.zarr").exists()  # nothing half-written


def test_demos_of_the_wrong_size_are_refused(tmp_path):
    from robot_rl.envs.factory import make_env
    from robot_rl.runtime.demos import check_demos_fit

    _write_foreign_store(tmp_path / "dp.zarr", [4], state_dim=3)
    cfg = _cfg(source="zarr", path=str(tmp_path / "dp.zarr"), key_map={"agent_pos": "state"})
    prepare_demos(cfg, tmp_path / "run")
    env = make_env(SimEnvConfig(task="reach"))
    with pytest.raises(ValueError, match=r"'state' has shape \(3,\), the env needs \(25,\)"):
        check_demos_fit(tmp_path / "run" / "demos.zarr", env.observation_space, env.action_space)


def _gym_cfg(user_project, **demos) -> TrainConfig:
    from robot_rl.agents.sac import SACConfig

    env = GymEnvConfig(id=user_project.env_id, imports=[user_project.package])
    return TrainConfig(env=env, agent=SACConfig(), demos=DemoConfig(**demos))


def test_a_demo_policy_in_the_current_folder_is_found(user_project, monkeypatch, tmp_path):
    monkeypatch.chdir(user_project.folder)  # as `python -m` would, though robot-rl's script does not
    cfg = _gym_cfg(user_project, num_episodes=2, policy=user_project.expert)
    assert prepare_demos(cfg, tmp_path / "run", log=lambda _: None) == 2
    steps = EpisodeStore(tmp_path / "run" / "demos.zarr", mode="r").steps(0, 2)
    assert steps["state"].shape == (2, 2)


def test_a_demo_policy_that_fails_leaves_no_partial_store(user_project, monkeypatch, tmp_path):
    monkeypatch.chdir(user_project.folder)
    (user_project.folder / "broken_expert.py").write_text(
        "class Expert:\n    def __init__(self, env):\n        raise RuntimeError('needs a camera')\n"
    )
    cfg = _gym_cfg(user_project, num_episodes=2, policy="broken_expert:Expert")
    with pytest.raises(RuntimeError, match="needs a camera"):
        prepare_demos(cfg, tmp_path, log=lambda _: None)
    assert not (tmp_path / "demos.zarr.partial").exists() and not (tmp_path / "demos.zarr").exists()


def test_a_demo_policy_not_found_says_where_it_looked(user_project, monkeypatch):
    monkeypatch.chdir(user_project.folder)
    with pytest.raises(ValueError, match=r"demos\.policy: cannot import 'elsewhere'.*current folder"):
        load_policy_factory("elsewhere:Expert")
