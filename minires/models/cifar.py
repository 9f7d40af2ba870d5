"""CIFAR ResNets of He et al. 2016, sec. 4.2: ResNet-20/32/44/56/110 (6n+2 layers).

A 3x3 conv with 16 filters, three stages of n BasicBlocks on 32x32, 16x16 and 8x8 maps (16, 32, 64
channels; the first block of stages 2 and 3 strides by 2), global average pooling and a linear classifier.
Shortcuts use option B: identity where shapes match, a 1x1 conv + BN projection where they change (the
paper's CIFAR runs used option A, zero-padding; B adds 2 projections and 2,752 parameters to ResNet-20).
"""
from __future__ import annotations

from .. import functional as F
from .. import nn
from .resnet import BasicBlock, init_resnet, make_layer


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 images: conv1/bn1/relu, layer1..3, avgpool, fc."""

    def __init__(self, n: int, num_classes: int = 10, widths=(16, 32, 64), zero_init_residual: bool = False):
        super().__init__()
        if n < 1:
            raise ValueError(f"CifarResNet: n (blocks per stage) must be >= 1, got {n}")
        if len(widths) != 3:
            raise ValueError(f"CifarResNet: widths must have 3 entries, got {widths!r}")
        w1, w2, w3 = widths
        self.conv1 = nn.Conv2d(3, w1, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w1)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(BasicBlock, w1, w1, n, stride=1)
        self.layer2 = make_layer(BasicBlock, w1, w2, n, stride=2)
        self.layer3 = make_layer(BasicBlock, w2, w3, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(w3, num_classes)
        init_resnet(self, zero_init_residual)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.flatten(self.avgpool(x), 1)  # (N, C)
        return self.fc(x)


def resnet20(num_classes: int = 10, **kw) -> CifarResNet:
    """ResNet-20 (n=3): 272,474 parameters with 10 classes and option B shortcuts."""
    return CifarResNet(3, num_classes, **kw)


def resnet32(num_classes: int = 10, **kw) -> CifarResNet:
    """ResNet-32 (n=5)."""
    return CifarResNet(5, num_classes, **kw)


def resnet44(num_classes: int = 10, **kw) -> CifarResNet:
    """ResNet-44 (n=7)."""
    return CifarResNet(7, num_classes, **kw)


def resnet56(num_classes: int = 10, **kw) -> CifarResNet:
    """ResNet-56 (n=9)."""
    return CifarResNet(9, num_classes, **kw)


def resnet110(num_classes: int = 10, **kw) -> CifarResNet:
    """ResNet-110 (n=18)."""
    return CifarResNet(18, num_classes, **kw)
