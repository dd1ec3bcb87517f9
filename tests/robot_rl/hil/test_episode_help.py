"""Per-episode help figures: intervention steps, takeovers (separate segments), success without help."""

from __future__ import annotations

import pytest

from robot_rl.hil.episode_help import EpisodeHelp


def _count(flags: list[bool]) -> EpisodeHelp:
    counted = EpisodeHelp()
    for flag in flags:
        counted.add(flag)
    return counted


@pytest.mark.parametrize(
    ("flags", "steps", "takeovers"),
    [
        ([], 0, 0),
        ([False] * 5, 0, 0),
        ([True] * 5, 5, 1),  # one long takeover
        ([True, False, True, True, False, True], 4, 3),  # three segments
        ([False, True, True, False, False], 2, 1),
    ],
)
def test_steps_and_takeovers(flags, steps, takeovers):
    counted = _count(flags)
    assert (counted.steps, counted.takeovers) == (steps, takeovers)


def test_success_without_help_needs_success_and_no_intervened_step():
    assert _count([False] * 3).stats(success=True)["unaided_success"] == 1.0
    assert _count([False, True]).stats(success=True)["unaided_success"] == 0.0
    assert _count([False] * 3).stats(success=False)["unaided_success"] == 0.0
    assert _count([True]).stats(success=False, rerecorded=True) == {
        "intervened": 1, "takeovers": 1, "unaided_success": 0.0, "rerecorded": 1.0,
    }  # fmt: skip


def test_reset_starts_a_new_episode():
    counted = _count([True, True])
    counted.reset()
    counted.add(True)  # a takeover of its own, not the previous episode's segment going on
    assert (counted.steps, counted.takeovers) == (1, 1)
