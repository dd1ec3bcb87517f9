"""Tests of robot_rl.nets: MLP, vectorised ensemble, encoders, actor."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robot_rl.nets.actor import TanhGaussianActor
from robot_rl.nets.encoders import ConvEncoder, ObsEncoder, ResNet18, ResNetEncoder, random_shift
from robot_rl.nets.ensemble import EnsembleMLP
from robot_rl.nets.mlp import MLP


@pytest.mark.parametrize("layer_norm", [False, True])
def test_ensemble_equals_separate_mlps(layer_norm: bool) -> None:
    torch.manual_seed(0)
    mlps = [MLP(7, [16, 16], 1, layer_norm=layer_norm) for _ in range(3)]
    for m in mlps:  # non-trivial LayerNorm affine so the copy is really tested
        for p in m.parameters():
            nn.init.normal_(p, std=0.3)
    ens = EnsembleMLP(7, [16, 16], 3, layer_norm=layer_norm)
    ens.load_from_mlps(mlps)
    x = torch.randn(5, 7)
    expected = torch.stack([m(x).squeeze(-1) for m in mlps])
    torch.testing.assert_close(ens(x), expected, rtol=1e-5, atol=1e-5)
    subset = torch.tensor([2, 0])
    torch.testing.assert_close(ens(x, members=subset), expected[[2, 0]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_ensemble_gradients_equal_separate_mlps(layer_norm: bool) -> None:
    """The one-unit output layer (multiply-and-sum, not bmm) and the in-place ReLU give the
    same parameter and input gradients as K separate MLPs."""
    torch.manual_seed(0)
    mlps = [MLP(7, [16, 16], 1, layer_norm=layer_norm) for _ in range(3)]
    for m in mlps:
        for p in m.parameters():
            nn.init.normal_(p, std=0.3)
    ens = EnsembleMLP(7, [16, 16], 3, layer_norm=layer_norm)
    ens.load_from_mlps(mlps)
    x = torch.randn(5, 7, requires_grad=True)
    w = torch.randn(3, 5)
    (ens(x) * w).sum().backward()
    x_grad, x.grad = x.grad.clone(), None
    sum((m(x).squeeze(-1) * w[k]).sum() for k, m in enumerate(mlps)).backward()
    torch.testing.assert_close(x_grad, x.grad, rtol=1e-5, atol=1e-5)
    for k, m in enumerate(mlps):
        linears = [lin for lin in m.modules() if isinstance(lin, nn.Linear)]
        for i, lin in enumerate(linears):
            torch.testing.assert_close(ens.weights[i].grad[k], lin.weight.grad.T, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(ens.biases[i].grad[k, 0], lin.bias.grad, rtol=1e-5, atol=1e-5)
        norms = [ln for ln in m.modules() if isinstance(ln, nn.LayerNorm)]
        for i, ln in enumerate(norms):
            torch.testing.assert_close(ens.ln_weights[i].grad[k, 0], ln.weight.grad, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(ens.ln_biases[i].grad[k, 0], ln.bias.grad, rtol=1e-5, atol=1e-5)


def test_ensemble_multi_unit_output_matches_members() -> None:
    torch.manual_seed(0)
    ens = EnsembleMLP(4, [8], 2, out_dim=3)
    x = torch.randn(6, 4)
    expected = torch.stack(
        [torch.relu(x @ ens.weights[0][k] + ens.biases[0][k]) @ ens.weights[1][k] for k in range(2)]
    )
    torch.testing.assert_close(ens(x), expected + ens.biases[1], rtol=1e-5, atol=1e-5)


def test_ensemble_detach_params_gives_input_grad_only() -> None:
    ens = EnsembleMLP(4, [8], 2)
    x = torch.randn(3, 4, requires_grad=True)
    ens(x, detach_params=True).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in ens.parameters())


def test_layer_norm_changes_structure() -> None:
    assert not any(isinstance(m, nn.LayerNorm) for m in MLP(3, [8, 8], 1).modules())
    assert sum(isinstance(m, nn.LayerNorm) for m in MLP(3, [8, 8], 1, layer_norm=True).modules()) == 2
    assert len(EnsembleMLP(3, [8, 8], 2).ln_weights) == 0
    assert len(EnsembleMLP(3, [8, 8], 2, layer_norm=True).ln_weights) == 2


def test_random_shift_keeps_shape_and_shifts_content() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 255, (16, 64, 64, 3), dtype=torch.uint8)
    out = random_shift(img, pad=4, generator=g)
    assert out.shape == img.shape and out.dtype == torch.uint8
    assert not torch.equal(out, img)
    # with pad 0 it is the identity
    assert torch.equal(random_shift(img, pad=0, generator=g), img)


def test_random_shift_is_an_integer_translation() -> None:
    img = torch.arange(20 * 20, dtype=torch.float32).reshape(1, 20, 20, 1)
    out = random_shift(img, pad=2, generator=torch.Generator().manual_seed(3))[0, ..., 0]
    # interior rows/cols are the original shifted by one constant offset
    dy = int(out[5, 5] - img[0, 5, 5, 0]) // 20
    dx = int(out[5, 5] - img[0, 5, 5, 0]) - 20 * dy
    torch.testing.assert_close(out[4:16, 4:16], img[0, 4 + dy : 16 + dy, 4 + dx : 16 + dx, 0])


def test_obs_encoder_state_only_and_pixels() -> None:
    state = torch.randn(2, 5)
    enc = ObsEncoder(5, {})
    assert enc({"state": state}) is state and enc.out_dim == 5
    enc = ObsEncoder(5, {"wrist": (64, 64), "front": (64, 64)}, feature_dim=8)
    images = {c: torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8) for c in ("wrist", "front")}
    feats = enc({"state": state, "images": images})
    assert feats.shape == (2, 5 + 2 * 8) == (2, enc.out_dim)
    torch.testing.assert_close(feats[:, :5], state)
    shared = ObsEncoder(5, {"wrist": (64, 64), "front": (64, 64)}, feature_dim=8, shared=True)
    assert shared({"state": state, "images": images}).shape == (2, 21)
    assert len(shared.image_encoders) == 1


def test_conv_encoder_output_bounded() -> None:
    enc = ConvEncoder((32, 32), feature_dim=6)
    out = enc(torch.randint(0, 255, (3, 32, 32, 3), dtype=torch.uint8))
    assert out.shape == (3, 6) and out.abs().max() <= 1.0


def test_resnet_missing_path_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        ResNetEncoder(weights=str(tmp_path / "nope.pth"))


def test_resnet_loads_own_state_dict_and_freezes(tmp_path) -> None:
    src = ResNet18()
    for m in src.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight)
    state = src.state_dict()
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)  # torchvision has fc
    torch.save(state, tmp_path / "r18.pth")
    enc = ResNetEncoder(feature_dim=4, weights=str(tmp_path / "r18.pth"), frozen=True)
    torch.testing.assert_close(enc.trunk.layer4[1].bn2.weight, src.layer4[1].bn2.weight)
    assert "layer2.0.downsample.0.weight" in enc.trunk.state_dict()
    enc.train()
    assert not enc.trunk.training and all(not p.requires_grad for p in enc.trunk.parameters())
    assert enc(torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8)).shape == (2, 4)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a resnet18 state dict"):
        ResNet18().load_pretrained(tmp_path / "bad.pth")


def test_actor_log_prob_matches_sampling() -> None:
    torch.manual_seed(0)
    actor = TanhGaussianActor(3, 2, [16])
    feats = torch.randn(64, 3)
    action, logp = actor(feats, torch.Generator().manual_seed(1))
    assert action.abs().max() < 1.0 and logp is not None and logp.shape == (64,)
    torch.testing.assert_close(actor.log_prob(feats, action), logp, rtol=1e-3, atol=1e-3)
