"""Configs: command-line overrides reach the objects they name; bad values fail early."""

import pytest

from robot_rl.agents.base import make_agent
from robot_rl.agents.sac import SACAgent
from robot_rl.cli import load_run_config, resume_overrides
from robot_rl.config import SimEnvConfig, TrainConfig
from robot_rl.envs.factory import make_env, sim_env_config


def compose(overrides: list[str]) -> TrainConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from robot_rl.cli import CONFIG_DIR, to_train_config
    from robot_rl.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return to_train_config(hydra_compose("train", overrides=overrides))


def test_defaults_are_typed():
    cfg = compose(["run_dir=/tmp/x"])
    assert isinstance(cfg, TrainConfig) and isinstance(cfg.env, SimEnvConfig)
    assert cfg.env.task == "pick_cube" and cfg.demos.num_episodes == 20


def test_overrides_reach_the_objects_they_name():
    cfg = compose(
        [
            "run_dir=/tmp/x",
            "agent.num_critics=3",
            "agent.hidden_dims=[32,16]",
            "env.control_hz=20",
            "env.max_episode_steps=7",
        ]
    )
    env = make_env(cfg.env, seed=0)
    agent = make_agent(cfg.agent, env.observation_space, env.action_space, seed=cfg.seed)
    assert isinstance(agent, SACAgent)
    assert agent.critic.num_members == 3
    assert [w.shape[-1] for w in agent.critic.weights][:2] == [32, 16]
    assert env.unwrapped.cfg.control_hz == 20
    env.reset(seed=0)
    steps = 0
    while True:
        steps += 1
        if any(env.step(env.action_space.sample())[2:4]):
            break
    assert steps == 7


def test_gpu_preset_carries_rlpd_recipe():
    cfg = compose(["run_dir=/tmp/x", "agent=sac_gpu"])
    assert cfg.agent.num_critics == 10 and cfg.agent.utd == 20 and cfg.agent.critic_layer_norm


def test_anchored_residual_preset_is_the_residual_with_its_anchors():
    cfg = compose(["run_dir=/tmp/x", "agent=residual_anchored", "agent.base=runs/base", "agent.scale=0.05"])
    plain = compose(["run_dir=/tmp/x", "agent=residual", "agent.base=runs/base"]).agent
    assert type(cfg.agent) is type(plain) and cfg.agent.base == "runs/base"
    anchors = (cfg.agent.bc_weight, cfg.agent.actor_warmup_updates, cfg.agent.progressive_steps)
    assert anchors == (2.0, 20000, 10000)
    assert cfg.agent.scale == 0.05  # a command-line override still wins over the preset
    assert plain.bc_weight == 0.0 and plain.actor_warmup_updates == 0 and plain.progressive_steps == 0
    with pytest.raises(SystemExit, match=r"agent\.base"):
        compose(["run_dir=/tmp/x", "agent=residual_anchored"])


def test_the_reward_group_names_a_classifier_and_its_debounce():
    assert compose(["run_dir=/tmp/x"]).reward.kind == "ground_truth"
    cfg = compose(["run_dir=/tmp/x", "reward=classifier", "reward.path=c.pt", "reward.debounce_frames=5"])
    assert (cfg.reward.kind, cfg.reward.path, cfg.reward.debounce_frames) == ("classifier", "c.pt", 5)
    with pytest.raises(SystemExit, match=r"reward\.path"):
        compose(["run_dir=/tmp/x", "reward=classifier"])
    with pytest.raises(SystemExit, match="threshold"):
        compose(["run_dir=/tmp/x", "reward=classifier", "reward.path=c.pt", "reward.threshold=1.5"])


def test_demos_none_and_gym_group():
    cfg = compose(["run_dir=/tmp/x", "env=gym", "env.id=Pendulum-v1", "demos=none"])
    assert cfg.demos.source == "none" and cfg.env.id == "Pendulum-v1"


def test_env_sim_is_sims_own_config():
    from sim.tasks import SimConfig

    cfg = compose(["run_dir=/tmp/x", "env.cameras=[wrist,front]", "env.domain_randomization.light_pos_m=0.1"])
    assert isinstance(cfg.env, SimConfig) and cfg.env.privileged  # the learning default
    assert cfg.env.cameras == ("wrist", "front") and cfg.env.domain_randomization.enabled


def test_a_sim_task_by_its_gymnasium_id():
    cfg = compose(
        ["run_dir=/tmp/x", "env=gym", "env.id=robot_rl/PickCube-v0", "++env.kwargs.privileged=true"]
    )
    assert cfg.env.id == "robot_rl/PickCube-v0"
    env, sim_env = make_env(cfg.env, seed=0), make_env(compose(["run_dir=/tmp/x"]).env, seed=0)
    assert env.observation_space == sim_env.observation_space and env.action_space == sim_env.action_space
    env.reset(seed=0)
    obs, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    demo_cfg = sim_env_config(cfg.env)  # scripted demos: the task's expert in the same env
    assert isinstance(demo_cfg, SimEnvConfig) and demo_cfg.task == "pick_cube" and demo_cfg.privileged
    assert make_env(demo_cfg).observation_space == env.observation_space


@pytest.mark.parametrize("bad", ["agent.num_critics=0", "replay.demo_ratio=-0.1", "env.image_size=[4,4]"])
def test_bad_values_fail_with_the_field_named(bad):
    with pytest.raises(SystemExit, match=bad.split("=")[0].split(".")[-1]):
        compose(["run_dir=/tmp/x", bad])


def test_resume_keeps_the_runs_overrides_and_todays_win(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- agent.num_critics=4\n- total_env_steps=100\n")
    args = resume_overrides(["resume=true", f"run_dir={tmp_path}", "total_env_steps=500"])
    assert (
        "agent.num_critics=4" in args and "total_env_steps=500" in args and "total_env_steps=100" not in args
    )
    cfg = load_run_config(tmp_path)
    assert cfg.agent.num_critics == 4 and cfg.total_env_steps == 100


def test_a_twin_run_evaluated_in_sim_drops_its_env_overrides(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text(
        "- env=robot_twin\n- env.ros.connect=[tcp/127.0.0.1:7447]\n- seed=3\n- agent.num_critics=4\n"
    )
    cfg = load_run_config(tmp_path, ["env=sim"])  # robot-rl eval RUN --override env=sim
    assert cfg.env.kind == "sim" and cfg.env.task == "pick_cube"
    assert cfg.seed == 3 and cfg.agent.num_critics == 4  # the rest of the run's config stays
    cfg = load_run_config(tmp_path, ["env.ros.connect=[tcp/10.0.0.2:7447]"])
    assert cfg.env.kind == "robot" and cfg.env.ros.connect == ["tcp/10.0.0.2:7447"]


def test_resume_without_run_dir_is_refused():
    with pytest.raises(SystemExit, match="run_dir"):
        resume_overrides(["resume=true"])


def test_demo_key_map_from_the_command_line():
    cfg = compose(
        [
            "run_dir=/tmp/x",
            "demos=zarr",
            "demos.path=/data/pusht.zarr",
            "++demos.key_map={agent_pos:state,img:image_front}",
            "demos.reward_last_step=true",
        ]
    )
    assert cfg.demos.key_map == {"agent_pos": "state", "img": "image_front"} and cfg.demos.reward_last_step
