"""A residual agent's frozen base: loaded from a run folder, a weights file or module:Class, its
action in every state (online, scripted and imported demos), a bad one stopping start-up by name,
and the residual's weights shipped over gRPC to an actor that checks it holds the same base."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from robot_rl.agents.base import make_agent
from robot_rl.agents.bc import BCConfig
from robot_rl.agents.residual import ResidualConfig, base_identity
from robot_rl.config import DemoConfig, SimEnvConfig, TrainConfig, TransportConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.envs.factory import make_env
from robot_rl.runtime.demos import check_demos_fit, import_demos, prepare_demos
from robot_rl.runtime.residual_base import demo_labeller, with_base
from robot_rl.runtime.run_folder import open_run_folder
from robot_rl.runtime.transport import save_weights
from sim.experts import ReachExpert

REACH = SimEnvConfig(task="reach")
A = 4  # reach: (dx, dy, dz, gripper)


def residual(base: str | Path, **fields) -> ResidualConfig:
    return ResidualConfig(base=str(base), hidden_dims=[32, 32], **fields)


def policy_run(folder: Path, agent_cfg: object, env_cfg: SimEnvConfig = REACH) -> tuple[Path, Any]:
    """A run folder as `robot-rl train agent=<agent_cfg's>` leaves it: config.yaml and
    weights/policy.pt of a fresh agent (seed 0) for the env."""
    env = make_env(env_cfg)
    agent = make_agent(agent_cfg, env.observation_space, env.action_space, seed=0)
    env.close()
    cfg = TrainConfig(env=env_cfg, agent=agent_cfg, demos=DemoConfig(source="none"), run_dir=str(folder))
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    save_weights(folder / "weights" / "policy.pt", 5, agent.policy_state())
    return folder, agent


def bc_run(folder: Path, env_cfg: SimEnvConfig = REACH) -> tuple[Path, Any]:
    """A run folder as `robot-rl train agent=bc` leaves it."""
    return policy_run(folder, BCConfig(hidden_dims=[16]), env_cfg)


def rollout_states(env, steps: int = 6) -> list[np.ndarray]:
    obs, _ = env.reset(seed=0)
    states = [obs["state"]]
    for _ in range(steps):
        obs, *_ = env.step(env.action_space.sample())
        states.append(obs["state"])
    return states


@pytest.mark.parametrize("weights_file", [False, True])
def test_a_run_folder_or_its_weights_file_is_the_base(tmp_path, weights_file):
    run, bc = bc_run(tmp_path / "bc")
    base = run / "weights" / "policy.pt" if weights_file else run
    env = with_base(residual(base), make_env(REACH, seed=0))
    assert env.observation_space["state"].shape[0] == make_env(REACH).observation_space["state"].shape[0] + A
    for state in rollout_states(env):
        np.testing.assert_array_equal(state[-A:], bc.act({"state": state[:-A]}, deterministic=True))
    env.close()
    assert base_identity(str(run)) == base_identity(str(run / "weights" / "policy.pt"))


def test_an_import_path_base_acts_on_the_live_env(tmp_path):
    env = with_base(residual("sim.experts:ReachExpert"), make_env(REACH, seed=0))
    expert = ReachExpert(env.env)  # the same expert, reading the same scene
    obs, _ = env.reset(seed=1)
    for _ in range(5):
        np.testing.assert_array_equal(obs["state"][-A:], expert(obs))
        obs, *_ = env.step(obs["state"][-A:])  # the base's own action: the expert's path
    env.close()


def write_module(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(body))


@pytest.mark.parametrize(
    ("base", "says"),
    [
        ("no/such/run", "agent.base=no/such/run: no such run folder"),
        ("sim.experts:NoSuchExpert", "has no 'NoSuchExpert'"),
        ("no_such_module:Policy", "cannot import 'no_such_module'"),
        ("other_spaces:Policy", "agent.base=other_spaces:Policy has action_space"),
        ("pick_cube_run", "was trained on state"),
    ],
)
def test_a_bad_base_stops_start_up_naming_it(tmp_path, monkeypatch, base, says):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(
        tmp_path,
        "other_spaces",
        """
        import gymnasium as gym
        import numpy as np

        class Policy:
            action_space = gym.spaces.Box(-1, 1, (7,), np.float32)

            def __init__(self, env):
                pass
        """,
    )
    if base == "pick_cube_run":
        base = str(bc_run(tmp_path / base, SimEnvConfig(task="pick_cube"))[0])
    cfg = TrainConfig(
        env=REACH, agent=residual(base), demos=DemoConfig(source="none"), run_dir=str(tmp_path / "run")
    )
    with pytest.raises(ValueError, match=says):
        open_run_folder(cfg)
    assert not (tmp_path / "run").exists()


def test_a_base_acting_out_of_shape_is_named_at_its_first_step(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(
        tmp_path,
        "short_base",
        """
        import numpy as np

        class Policy:
            def __init__(self, env):
                pass

            def __call__(self, obs):
                return np.zeros(2, np.float32)
        """,
    )
    env = with_base(residual("short_base:Policy"), make_env(REACH))
    with pytest.raises(ValueError, match=r"agent.base=short_base:Policy returned an action of shape \(2,\)"):
        env.reset(seed=0)


def test_a_residual_run_is_not_a_base(tmp_path):
    run, _ = bc_run(tmp_path / "bc")
    cfg = TrainConfig(env=REACH, agent=residual(run), demos=DemoConfig(), run_dir=str(tmp_path / "res"))
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    save_weights(tmp_path / "res" / "weights" / "policy.pt", 1, {})
    with pytest.raises(ValueError, match="is a residual run"):
        with_base(residual(tmp_path / "res"), make_env(REACH))


def test_scripted_demos_are_recorded_with_the_base_beside_them(tmp_path):
    cfg = TrainConfig(
        env=REACH,
        agent=residual("sim.experts:ReachExpert"),
        demos=DemoConfig(num_episodes=2, policy="sim.experts:ReachExpert"),
    )
    assert prepare_demos(cfg, tmp_path, log=lambda _: None) == 2
    store = EpisodeStore(tmp_path / "demos.zarr", mode="r")
    steps = store.steps(0, store.n_steps)
    # the base is the demo policy here, reading the same live scene: it proposes what was executed
    np.testing.assert_array_equal(steps["state"][:, -A:], steps["action"])


def test_imported_demos_get_their_base_actions_once(tmp_path):
    plain = TrainConfig(env=REACH, agent=BCConfig(), demos=DemoConfig(num_episodes=2))
    prepare_demos(plain, tmp_path / "src", log=lambda _: None)
    run, bc = bc_run(tmp_path / "bc")
    cfg = residual(run)
    messages: list[str] = []
    with demo_labeller(cfg, REACH, messages.append) as label:
        assert (
            import_demos(
                DemoConfig(source="zarr", path=str(tmp_path / "src" / "demos.zarr")),
                tmp_path / "d.zarr",
                label,
            )
            == 2
        )
    assert "labels each imported step" in messages[0]
    src, dst = (
        EpisodeStore(tmp_path / "src" / "demos.zarr", mode="r"),
        EpisodeStore(tmp_path / "d.zarr", mode="r"),
    )
    for i in range(2):
        states, final = dst.episode(i)["state"], dst.final_obs(i)["state"]
        np.testing.assert_array_equal(states[:, :-A], src.episode(i)["state"])
        for state in [*states, final]:
            np.testing.assert_array_equal(state[-A:], bc.act({"state": state[:-A]}, deterministic=True))
    env = with_base(cfg, make_env(REACH))
    check_demos_fit(tmp_path / "d.zarr", env.observation_space, env.action_space)  # fits the agent's env
    env.close()


@pytest.mark.timeout(90)  # a hang fails the test instead of the whole run
def test_residual_weights_cross_grpc_and_an_actor_checks_its_base(tmp_path):
    from robot_rl.runtime.net.client import GrpcActorTransport
    from robot_rl.runtime.net.codec import spaces_json
    from robot_rl.runtime.net.server import GrpcLearnerTransport

    cfg = residual("sim.experts:ReachExpert")
    env = with_base(cfg, make_env(REACH, seed=0))
    spaces = spaces_json(env.observation_space, env.action_space)
    learner = make_agent(cfg, env.observation_space, env.action_space, seed=1)
    with torch.no_grad():
        for p in learner.actor.parameters():
            p.normal_(0.0, 1.0)  # a residual that is not zero, so loading it shows
    link = {"kind": "grpc", "token": "t", "heartbeat_s": 0.2, "lost_after_s": 0.8}
    server = GrpcLearnerTransport(TransportConfig(listen="127.0.0.1:0", **link), tmp_path / "l", spaces, "t")
    server.start({})
    client = GrpcActorTransport(TransportConfig(learner=f"127.0.0.1:{server.port}", **link), 0, spaces, "t")
    try:
        server.publish_weights(4, learner.policy_state())
        assert client.wait_for_weights(20.0)
        version, state = client.poll_weights()
    finally:
        client.close()
        server.close(grace_s=0.2)
    actor = make_agent(cfg, env.observation_space, env.action_space, seed=2)
    actor.load_policy_state(state)
    obs, _ = env.reset(seed=3)
    assert version == 4
    np.testing.assert_array_equal(actor.act(obs, deterministic=True), learner.act(obs, deterministic=True))
    env.close()
    other = make_agent(residual(bc_run(tmp_path / "bc")[0]), env.observation_space, env.action_space)
    with pytest.raises(ValueError, match="differs from the base the weights came from"):
        other.load_policy_state(state)
