"""When the actor waits for a learner that is behind: anywhere in a stepped sim, whose world is
frozen between steps, but only between episodes on an env paced by a clock (a robot, the twin, a
realtime sim), whose world keeps moving while the actor waits."""

import itertools
import queue
import threading

import pytest

from robot_rl.agents.sac import SACConfig
from robot_rl.config import SimEnvConfig, TrainConfig
from robot_rl.runtime.actor import Actor, ActorShared
from robot_rl.runtime.transport import LocalTransport


class CatchingUpLearner:
    """trained_through that advances by one env step each time the actor looks at it."""

    def __init__(self) -> None:
        self.looks = 0

    @property
    def value(self) -> int:
        self.looks += 1
        return self.looks - 1


@pytest.mark.parametrize("realtime", [False, True])
def test_where_the_actor_waits_for_the_learner(tmp_path, realtime: bool) -> None:
    cfg = TrainConfig(
        env=SimEnvConfig(task="pick_cube", max_episode_steps=5, control_hz=50.0),
        agent=SACConfig(),
        realtime=realtime,
        max_actor_lead_steps=0,  # wait whenever the learner has not trained through every step
        random_steps=1_000_000,  # random actions: no policy needed
    )
    learner = CatchingUpLearner()
    shared = ActorShared(threading.Event(), learner, queue.Queue())
    actor = Actor(cfg, tmp_path, LocalTransport(tmp_path / "weights.pt", 64), shared, next_seq=0)
    looks_at_step: list[int] = []
    step = actor.env.step

    def recording_step(action):
        looks_at_step.append(learner.looks)
        return step(action)

    actor.env.step = recording_step
    for _ in range(2):
        assert actor.run_episode()["length"] == 5
    first, second = looks_at_step[:5], looks_at_step[5:]
    if realtime:  # no wait inside an episode; before the second one, the learner caught up
        assert len(set(first)) == 1 and len(set(second)) == 1
        assert second[0] - 1 >= 5
    else:  # before each step the actor waited until the learner had trained through it
        assert all(b > a for a, b in itertools.pairwise(looks_at_step))
    actor.env.close()
