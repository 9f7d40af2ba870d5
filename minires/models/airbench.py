"""The network of Keller Jordan's airbench94 (arXiv 2404.00498): CIFAR-10 to 94% in under 10 epochs.

whiten (2x2 conv 3 -> 24, frozen weight set from the data's patch covariance, trained bias) -> GELU
-> three groups (64, 256, 256 channels) of conv -> max-pool 2 -> BN -> GELU -> conv -> BN -> GELU
-> max-pool 3 -> flatten -> linear (no bias) -> x 1/9. No residuals. Convs start as PyTorch's default
with their first in_channels filters set to the identity (dirac); BatchNorms have eps 1e-12, a
frozen weight of 1, and keep 0.6 of their running statistics per step (PyTorch momentum 0.4).
Spatial sizes for 32x32 input: 31 -> 15 -> 7 -> 3 -> 1.
"""
from __future__ import annotations

from .. import nn
from ..tensor import no_grad


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """3x3 'same' conv without bias, its first in_channels filters the identity."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
    with no_grad():
        nn.init.dirac_(conv.weight[:min(in_channels, out_channels)])
    return conv


def _norm(channels: int, momentum: float) -> nn.BatchNorm2d:
    """BatchNorm with eps 1e-12 and its weight frozen at 1 (only the bias trains)."""
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=momentum)
    bn.weight.requires_grad = False
    return bn


class ConvGroup(nn.Module):
    """conv -> max-pool 2 -> BN -> GELU -> conv -> BN -> GELU: (N, C_in, H, W) -> (N, C_out, H // 2, W // 2)."""

    def __init__(self, in_channels: int, out_channels: int, bn_momentum: float):
        super().__init__()
        self.conv1 = _conv(in_channels, out_channels)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _norm(out_channels, bn_momentum)
        self.conv2 = _conv(out_channels, out_channels)
        self.norm2 = _norm(out_channels, bn_momentum)
        self.activ = nn.GELU()

    def forward(self, x):
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class Airbench94(nn.Module):
    """airbench94's network; call `whiten_from(images)` (normalised training images) before training."""

    def __init__(self, num_classes: int = 10, widths=(64, 256, 256), bn_momentum: float = 0.4,
                 scale: float = 1 / 9):
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"Airbench94: widths must be three channel counts, got {widths!r}")
        self.whiten = nn.Conv2d(3, 24, kernel_size=2, padding=0, bias=True)  # (N, 3, 32, 32) -> (N, 24, 31, 31)
        self.whiten.weight.requires_grad = False
        with no_grad():
            self.whiten.bias.array[...] = 0
        self.activ = nn.GELU()
        self.layer1 = ConvGroup(24, widths[0], bn_momentum)
        self.layer2 = ConvGroup(widths[0], widths[1], bn_momentum)
        self.layer3 = ConvGroup(widths[1], widths[2], bn_momentum)
        self.pool = nn.MaxPool2d(3)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(widths[2], num_classes, bias=False)
        self.scale = float(scale)

    def whiten_from(self, images, eps: float = 5e-4) -> None:
        """Set the whitening filters from (N, 3, H, W) images (airbench: the first 5,000 training images)."""
        nn.init.patch_whitening_(self.whiten.weight, images, eps)

    def forward(self, x):
        x = self.activ(self.whiten(x))  # (N, 24, 31, 31)
        x = self.layer3(self.layer2(self.layer1(x)))  # (N, 256, 3, 3)
        return self.fc(self.flatten(self.pool(x))) * self.scale  # (N, num_classes)

    def extra_repr(self) -> str:
        return f"scale={self.scale:.6g}"


def airbench94(num_classes: int = 10, **kw) -> Airbench94:
    return Airbench94(num_classes=num_classes, **kw)
