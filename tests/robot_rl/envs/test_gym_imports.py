"""A third-party package's gymnasium ids: env.imports, gymnasium's module:id form, and errors
that say how to name the package; modules in the current folder are found as `python -m` would."""

import numpy as np
import pytest

from robot_rl.config import GymEnvConfig
from robot_rl.envs.factory import make_env


def test_unregistered_id_says_how_to_name_its_package(user_project, monkeypatch):
    monkeypatch.chdir(user_project.folder)
    with pytest.raises(ValueError, match=r"env\.id=<module>:Reach-v0 or env\.imports=\[<module>\]") as err:
        make_env(GymEnvConfig(id="Reach-v0"))
    assert "\n" not in str(err.value)


def test_a_namespace_that_is_a_module_is_guessed(user_project, monkeypatch):
    monkeypatch.chdir(user_project.folder)
    pkg = user_project.package
    with pytest.raises(ValueError, match=f"did you mean env.id={pkg}:{pkg}/Reach-v0"):
        make_env(GymEnvConfig(id=user_project.env_id))


def test_env_imports_register_the_package_from_the_current_folder(user_project, monkeypatch):
    monkeypatch.chdir(user_project.folder)
    env = make_env(GymEnvConfig(id=user_project.env_id, imports=[user_project.package]), seed=0)
    obs, _ = env.reset()
    assert obs["state"].shape == (2,) and env.action_space.shape == (1,)


def test_module_colon_id_form(user_project, monkeypatch):
    monkeypatch.chdir(user_project.folder)
    env = make_env(GymEnvConfig(id=f"{user_project.package}:{user_project.env_id}"), seed=0)
    assert env.reset()[0]["state"].shape == (2,)


def test_missing_import_is_named(user_project, monkeypatch):
    monkeypatch.chdir(user_project.folder)
    with pytest.raises(ValueError, match=r"env\.imports: cannot import 'no_such_pkg'.*current folder"):
        make_env(GymEnvConfig(id="Pendulum-v1", imports=["no_such_pkg"]))
    with pytest.raises(ValueError, match=r"cannot import 'no_such_pkg'.*before ':'"):
        make_env(GymEnvConfig(id="no_such_pkg:Task-v0"))


def test_the_seed_fixes_the_first_reset_and_later_ones_continue_the_stream():
    def starts(seed):
        env = make_env(GymEnvConfig(id="Pendulum-v1"), seed=seed)
        return [env.reset()[0]["state"] for _ in range(3)]

    a, b, c = starts(5), starts(5), starts(6)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], a[1])  # a later reset is a new draw, not the seed again
