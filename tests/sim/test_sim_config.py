"""SimConfig: one config for make_sim_env's keywords and hydra's env=sim; checked when built."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from omegaconf import OmegaConf

from sim.randomize import DomainRandomization
from sim.tasks import SimConfig, make_sim_env


def test_keywords_replace_the_configs_fields():
    base = SimConfig(privileged=True, max_episode_steps=9)
    env = make_sim_env("reach", base, control_hz=20.0)
    assert env.unwrapped.cfg.privileged and env.unwrapped.max_episode_steps == 9
    assert env.unwrapped.cfg.control_hz == 20.0 and base.control_hz == 10.0  # the caller's is untouched


def test_the_old_keyword_call_builds_the_same_env():
    keywords = dict(privileged=True, cameras=(), image_size=(64, 64), domain_randomization=None)
    old_style, new_style = make_sim_env("push", **keywords), make_sim_env("push", SimConfig(privileged=True))
    np.testing.assert_array_equal(old_style.reset(seed=5)[0]["state"], new_style.reset(seed=5)[0]["state"])
    assert not old_style.unwrapped.cfg.domain_randomization.enabled  # None: randomisation off


def test_hydras_lists_become_tuples():
    node = OmegaConf.merge(
        OmegaConf.structured(SimConfig),
        {"cameras": ["front"], "image_size": [32, 48], "domain_randomization": {"mass_scale": [0.5, 2]}},
    )
    cfg = OmegaConf.to_object(node)
    assert cfg.cameras == ("front",) and cfg.image_size == (32, 48)
    assert cfg.domain_randomization.mass_scale == (0.5, 2.0) and cfg.domain_randomization.enabled
    assert isinstance(cfg.workspace_low, tuple)
    assert DomainRandomization(latency_steps=[0, 3]).latency_steps == (0, 3)  # a list from Python too


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"control_hz": 0.0}, "control_hz"),
        ({"control_hz": 600.0}, "physics_hz"),
        ({"image_size": (4, 4)}, "image_size"),
        ({"image_size": (64,)}, "image_size"),
        ({"cameras": "front"}, "cameras"),
    ],
)
def test_bad_values_are_named(fields, named):
    with pytest.raises(ValueError, match=named):
        SimConfig(**fields)


def test_unknown_keywords_are_named():
    with pytest.raises(TypeError, match="privilegd"):
        make_sim_env("reach", privilegd=True)
    assert "privileged" in {f.name for f in dataclasses.fields(SimConfig)}
