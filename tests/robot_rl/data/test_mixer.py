"""DemoMixer: ratios, empty buffers, validation."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.data.mixer import DemoMixer
from robot_rl.data.replay import ReplayBuffer
from robot_rl.transition import Batch

SPEC = {"state": ((1,), np.float32), "image_cam": ((2, 2, 3), np.uint8)}


def episode(value: float, steps: int) -> tuple[dict, dict]:
    """Store-format episode whose every observation has state == value, to tell sources apart."""
    obs = {"state": np.full((steps, 1), value, np.float32), "image_cam": np.zeros((steps, 2, 2, 3), np.uint8)}
    steps_ = {
        **obs,
        "action": np.zeros((steps, 1), np.float32),
        "reward": np.zeros(steps, np.float32),
        "terminated": np.zeros(steps, bool),
        "truncated": np.zeros(steps, bool),
    }
    return steps_, {k: v[0] for k, v in obs.items()}


def buffer(value: float, steps: int) -> ReplayBuffer:
    buf = ReplayBuffer(100, SPEC, action_dim=1, seed=0)
    if steps:
        buf.add_episode(*episode(value, steps))
    return buf


def n_demo_rows(batch: Batch) -> int:
    return int((batch.obs["state"][:, 0] == 1.0).sum())


@pytest.mark.parametrize(("ratio", "expected"), [(0.5, 128), (0.25, 64), (0.0, 0), (1.0, 256), (0.3, 77)])
def test_ratio(ratio: float, expected: int) -> None:
    mixer = DemoMixer(buffer(0.0, 10), buffer(1.0, 10), demo_ratio=ratio)
    batch = mixer.sample(256)
    assert len(batch) == 256 and n_demo_rows(batch) == expected
    np.testing.assert_array_equal(batch.demo, batch.obs["state"][:, 0] == 1.0)  # marks its demo rows
    assert batch.obs["images"]["cam"].shape == (256, 2, 2, 3)
    assert batch.next_obs["state"].shape == (256, 1)
    assert batch.reward.shape == batch.discount.shape == (256,)


def test_empty_buffers_fall_back_to_the_other() -> None:
    demos_only = DemoMixer(buffer(0.0, 0), buffer(1.0, 5)).sample(8)
    assert n_demo_rows(demos_only) == 8 and demos_only.demo.all()
    online_only = DemoMixer(buffer(0.0, 5), buffer(1.0, 0)).sample(8)
    assert n_demo_rows(online_only) == 0 and not online_only.demo.any()
    assert n_demo_rows(DemoMixer(buffer(0.0, 5), None).sample(8)) == 0
    with pytest.raises(ValueError, match="both empty"):
        DemoMixer(buffer(0.0, 0), buffer(1.0, 0)).sample(8)
    with pytest.raises(ValueError, match="both empty"):
        DemoMixer(buffer(0.0, 0), None).sample(8)


@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan")])
def test_ratio_validation(ratio: float) -> None:
    with pytest.raises(ValueError, match="demo_ratio"):
        DemoMixer(buffer(0.0, 1), None, demo_ratio=ratio)


def test_iterate_is_endless_and_lazy() -> None:
    online = buffer(0.0, 0)
    batches = DemoMixer(online, buffer(1.0, 3), demo_ratio=0.5).iterate(4)
    assert n_demo_rows(next(batches)) == 4
    online.add_episode(*episode(0.0, 2))
    for _ in range(5):
        assert n_demo_rows(next(batches)) == 2


class CountingLock:
    """A lock that notes how often it was held, and whether while a batch was drawn."""

    def __init__(self) -> None:
        self.held = False
        self.times = 0

    def __enter__(self) -> None:
        assert not self.held
        self.held, self.times = True, self.times + 1

    def __exit__(self, *exc: object) -> None:
        self.held = False


def test_iterating_draws_each_batch_under_the_lock() -> None:
    lock = CountingLock()
    online, demo = buffer(0.0, 5), buffer(1.0, 5)
    for buf in (online, demo):  # what the learner's ingest thread would race with
        sample = buf.sample

        def checked(n: int, sample=sample) -> Batch:
            assert lock.held, "a batch drawn without the buffers' lock"
            return sample(n)

        buf.sample = checked
    batches = DemoMixer(online, demo, lock=lock).iterate(4)
    for _ in range(3):
        next(batches)
    assert lock.times == 3 and not lock.held
