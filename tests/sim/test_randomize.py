"""Domain randomisation: each range moves only what it names, within bounds, reproducibly by seed."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np
import pytest

from sim.experts import PickCubeExpert
from sim.randomize import RANDOMIZED_FIELDS, DomainRandomization
from sim.tasks import make_sim_env

MODERATE = DomainRandomization(
    mass_scale=(0.5, 2.0),
    friction_scale=(0.7, 1.3),
    latency_steps=(0, 25),
    camera_pos_m={"front": 0.02, "wrist": 0.005},
    camera_rot_rad={"front": 0.05, "wrist": 0.02},
    light_scale=(0.6, 1.4),
    light_pos_m=0.1,
)
MASS_DERIVED = ("body_subtreemass", "body_invweight0", "dof_invweight0")


def snapshot(model: mujoco.MjModel) -> dict[str, np.ndarray]:
    out = {name: getattr(model, name).copy() for name in RANDOMIZED_FIELDS + MASS_DERIVED}
    out["headlight_diffuse"] = model.vis.headlight.diffuse.copy()
    out["headlight_ambient"] = model.vis.headlight.ambient.copy()
    return out


def changed(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> set[str]:
    return {name for name in a if not np.array_equal(a[name], b[name])}


def rows(a: np.ndarray, b: np.ndarray) -> set[int]:
    return set(np.flatnonzero((a != b).reshape(len(a), -1).any(axis=1)).tolist())


@pytest.fixture(scope="module")
def nominal() -> dict[str, np.ndarray]:
    env = make_sim_env("pick_cube", seed=0)
    return snapshot(env.unwrapped.model)


def randomized_env(**fields):
    return make_sim_env("pick_cube", domain_randomization=DomainRandomization(**fields))


def test_off_leaves_scene_and_rollout_as_built(nominal):
    plain, off = make_sim_env("pick_cube"), randomized_env()
    assert off.unwrapped._randomizer is None and not DomainRandomization().enabled
    rng = np.random.default_rng(0)
    for seed in (0, 1):
        obs_a, _ = plain.reset(seed=seed)
        obs_b, _ = off.reset(seed=seed)
        for _ in range(5):
            action = rng.uniform(-1, 1, 4).astype(np.float32)
            obs_a, obs_b = plain.step(action)[0], off.step(action)[0]
        np.testing.assert_array_equal(obs_a["state"], obs_b["state"])
    assert changed(snapshot(off.unwrapped.model), nominal) == set()


def test_mass_scale_moves_only_the_objects_mass(nominal):
    env = randomized_env(mass_scale=(0.5, 2.0))
    cube = env.unwrapped.model.body("cube").id
    for seed in range(4):
        env.reset(seed=seed)
        now = snapshot(env.unwrapped.model)
        assert changed(now, nominal) == {"body_mass", "body_inertia", *MASS_DERIVED}
        assert rows(now["body_mass"], nominal["body_mass"]) == {cube}
        scale = now["body_mass"][cube] / nominal["body_mass"][cube]
        assert 0.5 <= scale <= 2.0
        np.testing.assert_allclose(now["body_inertia"][cube], nominal["body_inertia"][cube] * scale)


def test_friction_scale_moves_table_object_and_finger_geoms(nominal):
    env = randomized_env(friction_scale=(0.5, 1.5))
    m = env.unwrapped.model
    fingers = {m.body("left_finger").id, m.body("right_finger").id}
    named = {m.geom("table").id, m.geom("cube").id}
    named |= {g for g in range(m.ngeom) if m.geom_bodyid[g] in fingers}
    for seed in range(4):
        env.reset(seed=seed)
        now = snapshot(m)
        assert changed(now, nominal) == {"geom_friction"}
        assert rows(now["geom_friction"], nominal["geom_friction"]) == named
        ratio = now["geom_friction"][sorted(named)] / nominal["geom_friction"][sorted(named)]
        assert np.all((ratio >= 0.5) & (ratio <= 1.5))
        np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones((1, 3)))  # one factor per geom


def test_camera_jitter_moves_only_the_named_camera(nominal):
    env = randomized_env(camera_pos_m={"front": 0.03}, camera_rot_rad={"wrist": 0.1})
    m = env.unwrapped.model
    front, wrist = m.camera("front").id, m.camera("wrist").id
    for seed in range(4):
        env.reset(seed=seed)
        now = snapshot(m)
        assert changed(now, nominal) == {"cam_pos", "cam_quat"}
        assert rows(now["cam_pos"], nominal["cam_pos"]) == {front}
        assert rows(now["cam_quat"], nominal["cam_quat"]) == {wrist}
        assert np.all(np.abs(now["cam_pos"][front] - nominal["cam_pos"][front]) <= 0.03)
        turn = np.empty(3)
        mujoco.mju_subQuat(turn, now["cam_quat"][wrist], nominal["cam_quat"][wrist])
        assert 0.0 < np.linalg.norm(turn) <= 0.1 + 1e-9
        assert np.isclose(np.linalg.norm(now["cam_quat"][wrist]), 1.0)


def test_light_ranges_move_only_the_lights(nominal):
    env = randomized_env(light_scale=(0.5, 1.5), light_pos_m=0.2)
    env.reset(seed=0)
    now = snapshot(env.unwrapped.model)
    # The scene's lights have no ambient term, so only the headlight's ambient can scale.
    assert changed(now, nominal) == {"light_pos", "light_diffuse", "headlight_diffuse", "headlight_ambient"}
    assert np.all(np.abs(now["light_pos"] - nominal["light_pos"]) <= 0.2)
    ratio = now["light_diffuse"] / nominal["light_diffuse"]
    assert np.all((ratio >= 0.5) & (ratio <= 1.5))
    head = now["headlight_diffuse"] / nominal["headlight_diffuse"]
    np.testing.assert_allclose(now["headlight_ambient"] / nominal["headlight_ambient"], head)


def test_latency_range_changes_no_model_field(nominal):
    env = randomized_env(latency_steps=(3, 9))
    draws = set()
    for seed in range(8):
        env.reset(seed=seed)
        draws.add(env.unwrapped.latency_steps)
        assert changed(snapshot(env.unwrapped.model), nominal) == set()
    assert draws <= set(range(3, 10)) and len(draws) > 1


def test_same_seed_same_scene_and_no_drift(nominal):
    a, b = (
        make_sim_env("pick_cube", domain_randomization=MODERATE),
        make_sim_env("pick_cube", domain_randomization=MODERATE),
    )
    obs_a, _ = a.reset(seed=7)
    first = snapshot(a.unwrapped.model)
    for seed in (1, 2, 3):  # draws are relative to the built scene, so these leave no trace
        a.reset(seed=seed)
        assert changed(snapshot(a.unwrapped.model), first)
    obs_again, _ = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    assert changed(snapshot(a.unwrapped.model), first) == set()
    assert changed(snapshot(b.unwrapped.model), first) == set()
    assert a.unwrapped.latency_steps == b.unwrapped.latency_steps
    np.testing.assert_array_equal(obs_a["state"], obs_again["state"])
    np.testing.assert_array_equal(obs_a["state"], obs_b["state"])
    a.unwrapped._randomizer.restore()
    assert changed(snapshot(a.unwrapped.model), nominal) == set()


def ee_x_response(latency_steps: int, ticks: int = 5) -> np.ndarray:
    """ee x displacement (m) after each tick, for one full +x action then holding still."""
    dr = DomainRandomization(latency_steps=(latency_steps, latency_steps))
    env = make_sim_env("pick_cube", randomize=False, domain_randomization=dr)
    env.reset(seed=0)
    x0 = env.unwrapped.ee_position()[0]
    out = []
    for t in range(ticks):
        env.step(np.array([1.0 if t == 0 else 0.0, 0.0, 0.0, -1.0], dtype=np.float32))
        out.append(env.unwrapped.ee_position()[0] - x0)
    return np.array(out)


@pytest.mark.parametrize("ticks", [1, 2])
def test_latency_delays_the_ee_response_by_whole_ticks(ticks):
    per_tick = make_sim_env("pick_cube").unwrapped.n_substeps
    prompt, late = ee_x_response(0), ee_x_response(ticks * per_tick)
    moved = 0.005  # m; a fifth of one full action
    assert np.argmax(prompt > moved) == 0
    assert np.argmax(late > moved) == ticks
    assert np.all(np.abs(late[:ticks]) < 0.001)  # holds still until the command is due
    np.testing.assert_allclose(late[ticks:], prompt[: len(prompt) - ticks], atol=0.001)


def test_latency_within_a_tick_moves_the_ee_less_that_tick():
    per_tick = make_sim_env("pick_cube").unwrapped.n_substeps
    prompt, late = ee_x_response(0, ticks=2), ee_x_response(per_tick // 2, ticks=2)
    assert 0.001 < late[0] < prompt[0] - 0.001


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"mass_scale": (-1.0, 1.0)}, "mass_scale"),
        ({"friction_scale": (0.0, 1.0)}, "friction_scale"),
        ({"light_scale": (-0.5, 1.0)}, "light_scale"),
        ({"mass_scale": (1.2, 0.8)}, "low 1.2 > high 0.8"),
        ({"friction_scale": (1.0,)}, r"friction_scale must be \[low, high\]"),
        ({"latency_steps": (-1, 2)}, "latency_steps"),
        ({"latency_steps": (0.5, 1)}, "whole steps"),
        ({"camera_pos_m": {"front": -0.01}}, "camera_pos_m"),
        ({"camera_rot_rad": {"wrist": 4.0}}, "camera_rot_rad"),
        ({"light_pos_m": -0.1}, "light_pos_m"),
    ],
)
def test_bad_ranges_fail_naming_the_field(fields, named):
    with pytest.raises(ValueError, match=named):
        DomainRandomization(**fields)


def test_unknown_camera_fails_naming_it_and_the_scenes_cameras():
    with pytest.raises(ValueError, match=r"camera 'side'.*\['front', 'wrist'\]"):
        randomized_env(camera_rot_rad={"side": 0.1})


def render_pair(dr: DomainRandomization | None, seeds=(0, 1)) -> list[np.ndarray]:
    env = make_sim_env(
        "pick_cube", cameras=("front",), image_size=(32, 32), randomize=False, domain_randomization=dr
    )
    return [env.reset(seed=s)[0]["images"]["front"].astype(np.float64) for s in seeds]


def test_camera_and_light_draws_show_in_images():
    plain = render_pair(None)
    np.testing.assert_array_equal(plain[0], plain[1])  # the same scene renders the same
    moved = render_pair(DomainRandomization(camera_pos_m={"front": 0.05}, camera_rot_rad={"front": 0.05}))
    assert not np.array_equal(moved[0], moved[1]) and not np.array_equal(moved[0], plain[0])
    dark = render_pair(DomainRandomization(light_scale=(0.3, 0.3)), seeds=(0,))[0]
    bright = render_pair(DomainRandomization(light_scale=(1.5, 1.5)), seeds=(0,))[0]
    assert dark.mean() < plain[0].mean() < bright.mean()


def test_reset_scene_redraws_and_replaces_without_moving_the_arm(nominal):
    env = make_sim_env("pick_cube", domain_randomization=MODERATE, seed=0)
    task = env.unwrapped
    for _ in range(3):
        env.step(np.array([0.5, 0.5, 0.0, -1.0], dtype=np.float32))
    arm_q = task.data.qpos[task.ctrl.qpos_slice].copy()
    before, cube_before = snapshot(task.model), task.object_pose()[0]
    task.reset_scene(np.random.default_rng(5))
    np.testing.assert_array_equal(task.data.qpos[task.ctrl.qpos_slice], arm_q)
    assert {"body_mass", "geom_friction", "cam_pos"} <= changed(snapshot(task.model), before)
    assert not np.allclose(task.object_pose()[0], cube_before)
    env.step(np.zeros(4, dtype=np.float32))  # still steps after a scene reset


def test_expert_still_picks_the_cube_under_moderate_randomization():
    env = make_sim_env("pick_cube", domain_randomization=MODERATE)
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        expert = PickCubeExpert(env, seed=seed)
        for _ in range(env.unwrapped.max_episode_steps):
            obs, _, terminated, truncated, _ = env.step(expert(obs))
            if terminated or truncated:
                break
        assert terminated, f"seed {seed}: expert failed with {env.unwrapped.latency_steps} steps latency"


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from robot_rl.cli import CONFIG_DIR, to_train_config
    from robot_rl.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return to_train_config(hydra_compose("train", overrides=overrides))


def test_hydra_overrides_build_a_randomized_env():
    from robot_rl.envs.factory import make_env

    cfg = compose(
        [
            "run_dir=/tmp/x",
            "env=pick_cube_randomized",
            "env.domain_randomization.mass_scale=[0.8,1.2]",
            "env.domain_randomization.latency_steps=[0,5]",
            "++env.domain_randomization.camera_pos_m={front:0.01}",
        ]
    )
    env = make_env(cfg.env, seed=0)
    dr = env.unwrapped.cfg.domain_randomization
    assert dr.mass_scale == (0.8, 1.2) and dr.latency_steps == (0, 5)
    assert dr.camera_pos_m == {"front": 0.01, "wrist": 0.005}  # merged into the yaml's
    assert 0 <= env.unwrapped.latency_steps <= 5
    env.step(env.action_space.sample())
    plain = make_env(compose(["run_dir=/tmp/x"]).env).unwrapped
    assert not plain.cfg.domain_randomization.enabled and plain._randomizer is None  # off: the scene as built


def test_hydra_bad_range_fails_at_start_up_naming_it():
    with pytest.raises(SystemExit, match="friction_scale"):
        compose(["run_dir=/tmp/x", "env.domain_randomization.friction_scale=[1.5,0.5]"])
