"""ResNet-9 of the DAWNBench CIFAR-10 entry by Myrtle.ai (David Page, "How to train your ResNet").

prep conv 64 -> layer1 conv 128 + max-pool + residual (two conv-BN-ReLU 128) -> layer2 conv 256 + max-pool
-> layer3 conv 512 + max-pool + residual (two conv-BN-ReLU 512) -> global max pool -> fc -> x 0.125.
Convs have no bias (BN follows) and, as in the original, neither has the classifier.
"""
from __future__ import annotations

from .. import functional as F
from .. import nn


class ConvBNReLU(nn.Module):
    """3x3 conv (no bias), BatchNorm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Stage(nn.Module):
    """conv-BN-ReLU, 2x2 max-pool, then optionally x + res2(res1(x)) (no ReLU after the add, as Myrtle's)."""

    def __init__(self, in_channels: int, out_channels: int, residual: bool):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels)
        self.pool = nn.MaxPool2d(2)
        self.residual = residual
        if residual:
            self.res1 = ConvBNReLU(out_channels, out_channels)
            self.res2 = ConvBNReLU(out_channels, out_channels)

    def forward(self, x):
        x = self.pool(self.conv(x))
        return x + self.res2(self.res1(x)) if self.residual else x

    def extra_repr(self) -> str:
        return f"residual={self.residual}"


class GlobalMaxPool2d(nn.Module):
    """Max over the whole H x W map: (N, C, H, W) -> (N, C, 1, 1)."""

    def forward(self, x):
        return F.max_pool2d(x, tuple(x.shape[2:]))


class ResNet9(nn.Module):
    """ResNet-9 for 32x32 images: prep, layer1..3, pool, flatten, fc, output scaled by `scale` (0.125)."""

    def __init__(self, num_classes: int = 10, scale: float = 0.125):
        super().__init__()
        self.prep = ConvBNReLU(3, 64)
        self.layer1 = Stage(64, 128, residual=True)
        self.layer2 = Stage(128, 256, residual=False)
        self.layer3 = Stage(256, 512, residual=True)
        self.pool = GlobalMaxPool2d()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(512, num_classes, bias=False)
        self.scale = scale

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.prep(x))))
        # NOTE: scaling the logits down keeps the initial softmax soft; Myrtle found it trains faster.
        return self.fc(self.flatten(self.pool(x))) * self.scale


def resnet9(num_classes: int = 10, **kw) -> ResNet9:
    """ResNet-9 (Myrtle.ai DAWNBench): 6,573,120 parameters with 10 classes."""
    return ResNet9(num_classes, **kw)
