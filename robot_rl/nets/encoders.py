"""Observation encoders: pixels -> features, and the Obs dict -> one feature vector.

Shapes: B batch, H/W image height/width, C channels (3), F feature size, D state size.
Images arrive as uint8 [B, H, W, 3] (the store's layout) and become float only on the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.nets.normalize import StateNormalizer

# ImageNet statistics: pretrained ResNet weights expect inputs normalised this way.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def random_shift(
    images: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """DrQ random shift: pad by `pad` (edge replicate) and crop back at a random offset per sample.

    images: [B, H, W, C] of any dtype (uint8 in practice) -> same shape and dtype.
    Replicate padding followed by a crop equals indexing with clamped coordinates, so this is
    one gather on the uint8 tensor with no padded copy and no float conversion.
    """
    b, h, w = images.shape[:3]
    dev = images.device
    shift = torch.randint(0, 2 * pad + 1, (b, 2), device=dev, generator=generator) - pad
    rows = (torch.arange(h, device=dev) + shift[:, :1]).clamp_(0, h - 1)  # [B, H]
    cols = (torch.arange(w, device=dev) + shift[:, 1:]).clamp_(0, w - 1)  # [B, W]
    batch = torch.arange(b, device=dev)[:, None, None]
    return images[batch, rows[:, :, None], cols[:, None, :]]


def _to_float_nchw(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, C] -> float32 [B, C, H, W] in [0, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


class ConvEncoder(nn.Module):
    """DrQ/RLPD pixel encoder: [B, H, W, 3] uint8 -> [B, F] float.

    Four 3x3 conv layers with `channels` filters (stride 2 first, then 1), ReLU, then
    Linear -> LayerNorm -> tanh to `feature_dim`, as in DrQ; the LayerNorm+tanh bound the
    features the critic sees while the encoder is trained by the critic loss.
    """

    def __init__(self, image_shape: tuple[int, int], feature_dim: int = 50, channels: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for stride in (2, 1, 1, 1):
            layers += [nn.Conv2d(c_in, channels, 3, stride=stride), nn.ReLU()]
            c_in = channels
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, 3, *image_shape)).numel()
        self.head = nn.Sequential(nn.Linear(n_flat, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())
        self.out_dim = feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _to_float_nchw(images) - 0.5
        return self.head(self.convs(x).flatten(1))


class BasicBlock(nn.Module):
    """ResNet basic block; attribute names match torchvision's so state dicts are compatible."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(out + skip)


class ResNet18(nn.Module):
    """ResNet-18 trunk: float [B, 3, H, W] (ImageNet-normalised) -> [B, 512] after global pooling.

    Parameter names follow torchvision.models.resnet18 (conv1, bn1, layer1.0.conv1, ...,
    layerN.0.downsample.{0,1}); the classifier `fc` is omitted and ignored when loading.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = (64, 128, 256, 512)
        c_in = 64
        for i, c_out in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(
                self,
                f"layer{i + 1}",
                nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)),
            )
            c_in = c_out
        self.out_dim = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def load_pretrained(self, path: str | Path) -> None:
        """Load a torchvision-format resnet18 state dict (e.g. resnet18-f37072fd.pth) from `path`."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(
                f"ResNet-18 weights file not found: {p} (set resnet_weights to a .pth file)"
            )
        state = torch.load(p, map_location="cpu", weights_only=True)
        if isinstance(state, Mapping) and "state_dict" in state:
            state = state["state_dict"]
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or wrong:
            raise ValueError(
                f"{p} is not a resnet18 state dict: missing keys {missing[:5]}, "
                f"unexpected keys {unexpected[:5]}, wrong shapes {wrong[:5]}"
            )
        self.load_state_dict(state)


class ResNetEncoder(nn.Module):
    """uint8 [B, H, W, 3] -> [B, F]: ImageNet normalisation, ResNet-18, Linear -> LayerNorm -> tanh.

    frozen: the trunk's weights get no gradients and its BatchNorm stays in eval mode (running
    statistics from pretraining are kept even while the agent trains).
    """

    def __init__(self, feature_dim: int = 50, weights: str | None = None, frozen: bool = False) -> None:
        super().__init__()
        self.trunk = ResNet18()
        if weights is not None:
            self.trunk.load_pretrained(weights)
        self.frozen = frozen
        if frozen:
            self.trunk.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Sequential(nn.Linear(512, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())
        self.out_dim = feature_dim

    def train(self, mode: bool = True) -> ResNetEncoder:
        super().train(mode)
        if self.frozen:
            self.trunk.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (_to_float_nchw(images) - self.mean) / self.std
        return self.head(self.trunk(x))


class ObsEncoder(nn.Module):
    """Obs dict -> feature vector, so agents treat state-only and pixel observations alike.

    obs: {"state": float32[B, D], "images": {cam: uint8[B, H, W, 3]}} -> float32[B, D + n_cams * F]
    (state passed through, then each camera's features in sorted camera order). normalize_state:
    the state is normalised first (nets/normalize.StateNormalizer; the agent fits it with
    fit_state() before its first update), otherwise passed through as it is.
    kind: "conv" (DrQ encoder) or "resnet18". shared: one encoder for all cameras (the cameras
    are then stacked on the batch axis and encoded in one call); otherwise one per camera.
    """

    def __init__(
        self,
        state_dim: int,
        image_shapes: Mapping[str, tuple[int, int]],
        kind: str = "conv",
        feature_dim: int = 50,
        resnet_weights: str | None = None,
        resnet_frozen: bool = False,
        shared: bool = False,
        normalize_state: bool = False,
    ) -> None:
        super().__init__()
        self.state_norm = StateNormalizer(state_dim) if normalize_state else None
        if kind not in ("conv", "resnet18"):
            raise ValueError(f"encoder must be 'conv' or 'resnet18', got {kind!r}")
        self.cameras = sorted(image_shapes)
        self.shared = shared and len(self.cameras) > 1
        if self.shared and len({tuple(image_shapes[c]) for c in self.cameras}) > 1:
            raise ValueError("a shared encoder needs all cameras to have the same image size")

        def build(shape: tuple[int, int]) -> nn.Module:
            if kind == "conv":
                return ConvEncoder(tuple(shape), feature_dim)
            return ResNetEncoder(feature_dim, resnet_weights, resnet_frozen)

        names = ["shared"] if self.shared else self.cameras
        self.image_encoders = nn.ModuleDict(
            {n: build(image_shapes[self.cameras[0] if self.shared else n]) for n in names}
        )
        self.out_dim = state_dim + feature_dim * len(self.cameras)

    @property
    def has_images(self) -> bool:
        return bool(self.cameras)

    @property
    def needs_state_fit(self) -> bool:
        """Whether the state normaliser still waits for its statistics (fit_state)."""
        return self.state_norm is not None and not bool(self.state_norm.fitted)

    def fit_state(self, state: torch.Tensor) -> None:
        """state [N, D] -> the normaliser's statistics (a no-op without normalize_state)."""
        if self.state_norm is not None:
            self.state_norm.fit(state.to(self.state_norm.mean.device))

    def forward(self, obs: Mapping[str, torch.Tensor | Mapping[str, torch.Tensor]]) -> torch.Tensor:
        state = obs["state"]
        if self.state_norm is not None:
            state = self.state_norm(state)
        if not self.cameras:
            return state
        images = obs["images"]
        if self.shared:
            stacked = torch.cat([images[c] for c in self.cameras], 0)  # [n_cams * B, H, W, 3]
            feats = self.image_encoders["shared"](stacked).chunk(len(self.cameras), 0)
        else:
            feats = [self.image_encoders[c](images[c]) for c in self.cameras]
        return torch.cat([state.float(), *feats], dim=-1)
