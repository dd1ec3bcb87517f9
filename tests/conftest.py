"""Fixtures the tests share: whether this machine can render offscreen (the sim and camera tests)."""

from __future__ import annotations

import mujoco
import pytest


@pytest.fixture(scope="session")
def gl_problem() -> str | None:
    """None when an offscreen GL context can be made, else the reason it cannot (asked once)."""
    try:
        mujoco.Renderer(mujoco.MjModel.from_xml_string("<mujoco><worldbody/></mujoco>"), 8, 8).close()
    except Exception as exc:  # any backend failure means: no offscreen GL here
        return f"no offscreen GL (set MUJOCO_GL=egl with libegl1 + libgl1-mesa-dri): {exc}"
    return None


@pytest.fixture
def needs_gl(gl_problem: str | None) -> None:
    """Skip a camera test, with the reason, where nothing renders."""
    if gl_problem:
        pytest.skip(gl_problem)
