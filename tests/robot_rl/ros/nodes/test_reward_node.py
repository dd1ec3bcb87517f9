"""RewardNode over the in-process transport, with a stand-in classifier that calls a bright frame a
success: it publishes the debounced verdict of new frames, repeats it between frames, stays
silent while a camera is stale or sends frames it cannot score, and refuses to start on a
classifier that does not fit the robot's cameras."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from robot_rl.reward.classifier import ClassifierError
from robot_rl.ros import codec, messages, topics
from robot_rl.ros.inproc import InprocBus, InprocTransport
from robot_rl.ros.nodes.reward_node import RewardNode, RewardNodeParams, main

WHITE, BLACK = 255, 0


class Rig:
    def __init__(self, classifier: Any, params: RewardNodeParams | None = None) -> None:
        self.t = 1000.0
        bus = InprocBus()
        self.transport = InprocTransport(bus)
        self.node = RewardNode(
            self.transport, classifier, params or RewardNodeParams(rate_hz=100.0), lambda: self.t
        )
        self.cameras = InprocTransport(bus)
        self.pubs = {c: topics.camera_topics(c).color.publisher(self.cameras) for c in ("front", "wrist")}
        self.client = InprocTransport(bus)
        self.verdicts: list[bool] = []
        self.client.subscribe(
            "task/success", codec.BOOL, lambda m: self.verdicts.append(messages.bool_from_msg(m))
        )

    def spin_until(self, done: Callable[[], bool], timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            self.transport.spin_once(0.005)
        self.client.spin_once(0.0)
        assert done(), "condition not reached"

    def show(
        self, value: int, cameras: tuple[str, ...] = ("front",), size: tuple[int, int] = (16, 16)
    ) -> None:
        """A new frame of brightness `value` from each of `cameras`, stamped now."""
        self.t += 0.1
        for cam in cameras:
            self.pubs[cam].publish(messages.image_msg(np.full((*size, 3), value, np.uint8), self.t, cam))

    def verdict_of(self, value: int) -> bool:
        """Show a frame; the verdict published once the node has scored it."""
        scored = self.node.counters["scored"]
        self.show(value)
        self.spin_until(lambda: self.node.counters["scored"] > scored)
        return self.verdicts[-1]

    def ticks(self, n: int) -> None:
        counters = self.node.counters
        target = counters["published"] + counters["stale"] + n
        self.spin_until(lambda: counters["published"] + counters["stale"] >= target)


def test_new_frames_give_the_debounced_verdict(bright_classifier) -> None:
    rig = Rig(bright_classifier())
    shown = [BLACK, WHITE, WHITE, WHITE, WHITE, BLACK, WHITE]
    assert [rig.verdict_of(v) for v in shown] == [False, False, False, True, True, False, False]


def test_between_frames_the_last_verdict_is_repeated_and_the_debounce_waits(bright_classifier) -> None:
    rig = Rig(bright_classifier())
    rig.verdict_of(WHITE)
    rig.verdict_of(WHITE)
    scored, heard = rig.node.counters["scored"], len(rig.verdicts)
    rig.ticks(5)  # no new frame: the same frame is not counted again
    assert rig.node.counters["scored"] == scored and len(rig.verdicts) >= heard + 5
    assert not any(rig.verdicts[heard:])
    assert rig.verdict_of(WHITE) is True  # the third frame


def test_a_stale_camera_silences_the_node(bright_classifier) -> None:
    rig = Rig(bright_classifier())
    rig.ticks(3)  # nothing received yet
    assert rig.verdicts == [] and rig.node.counters["published"] == 0
    rig.verdict_of(WHITE)
    rig.t += 1.0  # the frame is now older than max_age_s
    heard = len(rig.verdicts)
    rig.ticks(3)
    assert len(rig.verdicts) == heard and rig.node.counters["stale"] >= 6


def test_every_watched_camera_must_send_frames(bright_classifier) -> None:
    rig = Rig(bright_classifier(cameras=("front", "wrist")))
    rig.show(WHITE, cameras=("front",))
    rig.ticks(3)
    assert rig.verdicts == []
    rig.show(WHITE, cameras=("front", "wrist"))
    rig.spin_until(lambda: rig.node.counters["scored"] == 1)
    assert rig.verdicts == [False]


def test_a_frame_of_another_size_is_dropped_and_counted(bright_classifier) -> None:
    rig = Rig(bright_classifier())
    rig.show(WHITE, size=(32, 32))
    rig.spin_until(lambda: rig.node.counters["bad_frames"] == 1)
    rig.ticks(2)
    assert rig.verdicts == [] and rig.node.counters["scored"] == 0


@pytest.mark.parametrize(
    ("cameras", "size", "says"),
    [(("wrist",), None, r"missing \['front'\]"), (("front",), (64, 48), "gives 48x64")],
)
def test_a_classifier_that_does_not_fit_the_robots_cameras_is_refused(bright_classifier, cameras, size, says):
    params = RewardNodeParams(cameras=cameras, image_size=size)
    with pytest.raises(ClassifierError, match=says):
        RewardNode(InprocTransport(InprocBus()), bright_classifier(), params)


def test_main_names_a_missing_classifier_file(tmp_path) -> None:
    with pytest.raises(SystemExit, match=r"none\.pt not found"):
        main(["--classifier", str(tmp_path / "none.pt")])
