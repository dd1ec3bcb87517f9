"""Reward node: a success classifier (robot_rl/reward/) watching the cameras, publishing the task's
success topic, so a robot run gets its reward and episode end from it with RobotEnv unchanged.

It subscribes to the color image topic of every camera the classifier watches (realsense-ros'
/<camera>/color/image_raw unless renamed) and publishes `task/success` (std_msgs/Bool, as
robot_rl/ros/topics.py defines it) every tick (rate_hz, the control rate):
    new frames     every camera has a fresh frame and one of them is new since the last tick:
                   the frames are scored and the debounced verdict (classifier.Debouncer:
                   debounce_frames consecutive frames at or above the threshold) is published
    same frames    no camera sent a new frame: the last verdict again (the debounce counts frames,
                   not ticks)
    stale          a camera has sent nothing yet, or its newest frame is older than max_age_s:
                   nothing is published, so RobotEnv sees the success topic go stale and holds the
                   arm rather than act on a verdict nobody could make
A frame that does not decode, or whose size is not the classifier's, is dropped and counted; its
camera then goes stale. Start-up refuses a classifier that does not fit the cameras the robot
publishes (params.cameras, params.image_size), naming what differs.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot_rl.reward.classifier import Classifier, check_fits, load_classifier
from robot_rl.ros import codec, messages, topics
from robot_rl.ros.transport import Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RewardNodeParams:
    """The node's declared parameters."""

    rate_hz: float = 10.0  # verdicts per second: the control rate
    success_topic: str = topics.SUCCESS.name
    images: Mapping[str, str] = field(default_factory=dict)  # camera -> image topic, when renamed
    max_age_s: float = 0.25  # a newer frame than this from every camera, or no verdict
    debounce_frames: int = 3
    threshold: float | None = None  # None: the classifier's own
    cameras: tuple[str, ...] | None = None  # the robot's cameras, checked against the classifier
    image_size: tuple[int, int] | None = None  # (H, W) they publish, checked likewise

    def __post_init__(self) -> None:
        if not (isinstance(self.rate_hz, (int, float)) and 1.0 <= self.rate_hz <= 100.0):
            raise ValueError(f"RewardNodeParams.rate_hz must be in [1, 100], got {self.rate_hz!r}")
        if not (isinstance(self.max_age_s, (int, float)) and self.max_age_s > 0):
            raise ValueError(f"RewardNodeParams.max_age_s must be > 0, got {self.max_age_s!r}")

    def image_topic(self, camera: str) -> str:
        return self.images.get(camera, topics.camera_topics(camera).color.name)


class RewardNode:
    """Scores the cameras' newest frames each tick and publishes the debounced verdict.

    counters: published (verdicts out), scored (frame sets classified), stale (ticks without a
    verdict), bad_frames (frames dropped: undecodable or of another size).
    """

    def __init__(
        self,
        transport: Transport,
        classifier: Classifier,
        params: RewardNodeParams | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.params = p = params or RewardNodeParams()
        self.classifier, self.clock = classifier, clock
        spec = classifier.spec
        if p.cameras is not None:
            size = p.image_size or spec.image_size
            check_fits(spec, {c: size for c in p.cameras}, "the robot's cameras", classifier.path)
        self.debouncer = classifier.debouncer(p.debounce_frames, p.threshold)
        self.counters: Counter[str] = Counter()
        self.verdict: bool | None = None  # the last one published
        self._latest: dict[str, tuple[np.ndarray, float]] = {}  # camera -> (frame, stamp)
        self._scored: dict[str, float] = {}  # camera -> stamp of the frame last scored
        self._was_stale = False
        self._success_pub = topics.SUCCESS.publisher(transport, p.success_topic)
        self._handles = [
            topics.camera_topics(cam).color.subscribe(transport, self._on_image(cam), p.image_topic(cam))
            for cam in spec.cameras
        ]
        self._handles.append(transport.create_timer(1.0 / p.rate_hz, self._on_timer))

    def _on_image(self, camera: str) -> Callable[[Any], None]:
        want = (*self.classifier.spec.image_size, 3)

        def callback(msg: Any) -> None:
            try:
                frame, stamp = messages.image_from_msg(msg)
                if frame.shape != want or frame.dtype != np.uint8:
                    h, w = want[:2]
                    raise ValueError(
                        f"a {frame.dtype} {frame.shape} frame; the classifier takes {w}x{h} rgb8"
                    )
            except (codec.CodecError, ValueError) as exc:
                self.counters["bad_frames"] += 1
                log.error("camera %s: dropped %s", camera, exc)
                return
            self._latest[camera] = (frame, stamp)

        return callback

    def _stale(self, now: float) -> list[str]:
        """The cameras without a frame newer than max_age_s, with why."""
        stamps = {c: got[1] if (got := self._latest.get(c)) else None for c in self.classifier.spec.cameras}
        return messages.stale(stamps, now, self.params.max_age_s)

    def _on_timer(self) -> None:
        stale = self._stale(self.clock())
        if stale:
            self.counters["stale"] += 1
            if not self._was_stale:  # once per outage, not every tick
                log.warning("no verdict: stale cameras %s; success is not published", ", ".join(stale))
            self._was_stale = True
            return
        self._was_stale = False
        cameras = self.classifier.spec.cameras
        if self.verdict is None or any(self._latest[c][1] != self._scored.get(c) for c in cameras):
            score = self.classifier.model.score({c: self._latest[c][0] for c in cameras})
            self._scored = {c: self._latest[c][1] for c in cameras}
            self.verdict = self.debouncer.update(score)
            self.counters["scored"] += 1
        self._success_pub.publish(messages.bool_msg(self.verdict))
        self.counters["published"] += 1

    def destroy(self) -> None:
        """Cancel the subscriptions and the timer; the transport is the caller's."""
        for handle in self._handles:
            handle.cancel()


def _parse_images(pairs: list[str]) -> dict[str, str]:
    images = {}
    for pair in pairs:
        camera, sep, topic = pair.partition("=")
        if not sep or not camera or not topic:
            raise SystemExit(f"error: --image takes CAMERA=TOPIC, got {pair!r}")
        images[camera] = topic
    return images


def main(argv: list[str] | None = None) -> None:
    """Publish a classifier's verdict over zenoh (connecting to the robot's bringup) until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", required=True, help="the file `robot-rl reward train` wrote")
    parser.add_argument("--rate-hz", type=float, default=10.0)
    parser.add_argument("--threshold", type=float, help="default: the classifier's own")
    parser.add_argument("--debounce-frames", type=int, default=3)
    parser.add_argument("--max-age-s", type=float, default=0.25)
    parser.add_argument("--image", action="append", default=[], metavar="CAMERA=TOPIC")
    parser.add_argument("--success-topic", default=topics.SUCCESS.name)
    parser.add_argument("--cameras", nargs="+", help="the robot's cameras, checked against the classifier")
    parser.add_argument("--image-size", nargs=2, type=int, metavar=("H", "W"), help="what they publish")
    parser.add_argument("--connect", default="tcp/127.0.0.1:7447", help="the robot's zenoh endpoint")
    args = parser.parse_args(argv)
    from robot_rl.ros.connect import RosConfig, open_transport

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        classifier = load_classifier(args.classifier)
        params = RewardNodeParams(
            rate_hz=args.rate_hz, success_topic=args.success_topic, images=_parse_images(args.image),
            max_age_s=args.max_age_s, debounce_frames=args.debounce_frames, threshold=args.threshold,
            cameras=tuple(args.cameras) if args.cameras else None,
            image_size=tuple(args.image_size) if args.image_size else None,
        )  # fmt: skip
        transport = open_transport(RosConfig(connect=[args.connect]), "reward_node")
    except ValueError as err:  # ClassifierError is one: a missing, corrupt or foreign file
        raise SystemExit(f"error: {err}") from err
    try:
        node = RewardNode(transport, classifier, params)
    except ValueError as err:  # a classifier that does not fit the cameras, a bad threshold
        transport.shutdown()
        raise SystemExit(f"error: {err}") from err
    try:
        transport.spin()
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy()
        transport.shutdown()


if __name__ == "__main__":
    main()
