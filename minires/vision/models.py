"""torchvision.models: the ResNet constructors under torchvision's names, built by minires.models.

minires ships no pretrained weights: weights=/pretrained= other than None/False is an error that says how
to load a state_dict file instead.
"""
from __future__ import annotations

import sys

from .. import missing
from .. import models as _models
from ..models.resnet import BasicBlock, Bottleneck, ResNet


class _Weights:
    """Stand-in for torchvision's weight enums (ResNet18_Weights.DEFAULT...): naming one is allowed, using it is not."""

    def __init__(self, arch: str):
        self.arch = arch
        self.DEFAULT = self.IMAGENET1K_V1 = self.IMAGENET1K_V2 = f"{arch}.IMAGENET1K"

    def __repr__(self) -> str:
        return f"<{self.arch} weights: minires ships none>"


ResNet18_Weights, ResNet34_Weights = _Weights("ResNet18_Weights"), _Weights("ResNet34_Weights")
ResNet50_Weights, ResNet101_Weights = _Weights("ResNet50_Weights"), _Weights("ResNet101_Weights")
ResNet152_Weights = _Weights("ResNet152_Weights")


def _build(name: str, factory, pretrained, weights, progress, kwargs):
    if weights is not None or pretrained:
        asked = f"weights={weights!r}" if weights is not None else f"pretrained={pretrained!r}"
        raise ValueError(f"{name}: minires ships no pretrained weights ({asked}); build the model with "
                         f"weights=None and load a state_dict file you have: "
                         f"model = {name}(); model.load_state_dict(minires.load(path))")
    if "norm_layer" in kwargs and kwargs["norm_layer"] is not None:
        raise ValueError(f"{name}: norm_layer is not supported (minires's ResNet uses BatchNorm2d)")
    kwargs.pop("norm_layer", None)
    return factory(**kwargs)


def resnet18(pretrained: bool = False, progress: bool = True, *, weights=None, **kwargs) -> ResNet:
    """ResNet-18 (torchvision's layout and state_dict names); num_classes=1000 by default."""
    return _build("resnet18", _models.resnet18, pretrained, weights, progress, kwargs)


def resnet34(pretrained: bool = False, progress: bool = True, *, weights=None, **kwargs) -> ResNet:
    """ResNet-34."""
    return _build("resnet34", _models.resnet34, pretrained, weights, progress, kwargs)


def resnet50(pretrained: bool = False, progress: bool = True, *, weights=None, **kwargs) -> ResNet:
    """ResNet-50 (Bottleneck, stride on the 3x3 conv as torchvision's v1.5)."""
    return _build("resnet50", _models.resnet50, pretrained, weights, progress, kwargs)


def resnet101(pretrained: bool = False, progress: bool = True, *, weights=None, **kwargs) -> ResNet:
    """ResNet-101."""
    return _build("resnet101", _models.resnet101, pretrained, weights, progress, kwargs)


def resnet152(pretrained: bool = False, progress: bool = True, *, weights=None, **kwargs) -> ResNet:
    """ResNet-152."""
    return _build("resnet152", _models.resnet152, pretrained, weights, progress, kwargs)


__all__ = ["ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "ResNet18_Weights", "ResNet34_Weights", "ResNet50_Weights", "ResNet101_Weights", "ResNet152_Weights"]

missing.install(sys.modules[__name__])  # a torchvision name minires lacks: an error naming it
