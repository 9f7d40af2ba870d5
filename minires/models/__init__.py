"""Model zoo: torchvision ResNets, the CIFAR ResNets of He et al. 2016, Myrtle's ResNet-9 and airbench94's net."""
from __future__ import annotations

from .airbench import Airbench94, airbench94
from .cifar import CifarResNet, resnet20, resnet32, resnet44, resnet56, resnet110
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50, resnet101, resnet152
from .resnet9 import ResNet9, resnet9

_REGISTRY = {
    "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnet101": resnet101,
    "resnet152": resnet152,
    "resnet20": resnet20, "resnet32": resnet32, "resnet44": resnet44, "resnet56": resnet56,
    "resnet110": resnet110,
    "resnet9": resnet9,
    "airbench94": airbench94,
}


def names() -> list:
    """The model names `get` accepts."""
    return list(_REGISTRY)


def get(name: str, num_classes: int = 10, **kwargs):
    """Build a model by name, e.g. get("resnet20") or get("resnet18", num_classes=100, small_input=True)."""
    key = name.lower() if isinstance(name, str) else name
    if key not in _REGISTRY:
        raise ValueError(f"models.get: unknown model {name!r}; available: {', '.join(names())}")
    return _REGISTRY[key](num_classes=num_classes, **kwargs)


__all__ = ["get", "names", "ResNet", "BasicBlock", "Bottleneck", "CifarResNet", "ResNet9",
           "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet9", "Airbench94", "airbench94"]
