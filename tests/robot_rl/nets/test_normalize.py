"""Tests of robot_rl.nets.normalize.StateNormalizer and the encoder's normalised state."""

from __future__ import annotations

import torch

from robot_rl.nets.encoders import ObsEncoder
from robot_rl.nets.normalize import StateNormalizer


def test_identity_until_fit_then_zero_mean_unit_std() -> None:
    norm = StateNormalizer(3)
    x = torch.tensor([[0.45, 0.01, 5.0], [0.46, 0.03, -5.0], [0.47, 0.05, 1.0]])
    torch.testing.assert_close(norm(x), x)
    norm.fit(x)
    y = norm(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    assert bool(norm.fitted)


def test_millimetres_become_visible_and_far_states_are_clipped() -> None:
    norm = StateNormalizer(1, clip=10.0)
    norm.fit(torch.linspace(0.40, 0.50, 101)[:, None])  # positions over 10 cm, std ~2.9 cm
    step = norm(torch.tensor([[0.452]])) - norm(torch.tensor([[0.450]]))
    assert step.item() > 0.05  # 2 mm is 0.002 raw, about 0.07 normalised
    assert norm(torch.tensor([[100.0]])).item() == 10.0
    assert norm(torch.tensor([[-100.0]])).item() == -10.0


def test_constant_dimension_normalises_to_zero() -> None:
    norm = StateNormalizer(2)
    norm.fit(torch.tensor([[1.0, 0.0], [1.0, 2.0]]))
    out = norm(torch.tensor([[1.0, 1.0]]))
    assert torch.isfinite(out).all() and out[0, 0].item() == 0.0


def test_round_trip_and_weights_from_before_load_as_raw_state() -> None:
    a = ObsEncoder(state_dim=3, image_shapes={}, normalize_state=True)
    assert a.needs_state_fit
    a.fit_state(torch.randn(64, 3) * 0.1 + 0.5)
    b = ObsEncoder(state_dim=3, image_shapes={}, normalize_state=True)
    b.load_state_dict(a.state_dict())
    x = {"state": torch.randn(5, 3)}
    torch.testing.assert_close(b(x), a(x))
    assert not b.needs_state_fit
    # a state dict saved by an encoder without the normaliser: raw state, and never refitted
    old = ObsEncoder(state_dim=3, image_shapes={}).state_dict()
    c = ObsEncoder(state_dim=3, image_shapes={}, normalize_state=True)
    c.load_state_dict(old)
    assert not c.needs_state_fit
    torch.testing.assert_close(c(x), x["state"])


def test_without_normalize_state_the_encoder_is_unchanged() -> None:
    enc = ObsEncoder(state_dim=3, image_shapes={})
    assert not enc.needs_state_fit and enc.state_dict() == {}
    x = {"state": torch.randn(4, 3)}
    enc.fit_state(x["state"])  # a no-op
    torch.testing.assert_close(enc(x), x["state"])
