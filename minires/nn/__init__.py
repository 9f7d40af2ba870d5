"""Neural-network layers with PyTorch's names: Module, Parameter, Conv2d, BatchNorm2d, Linear, ..."""
from . import init, utils
from .activation import ReLU
from .batchnorm import BatchNorm2d
from .container import ModuleList, Sequential
from .conv import Conv2d
from .linear import Flatten, Identity, Linear
from .module import Module
from .parameter import Parameter
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = ["Module", "Parameter", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "AvgPool2d",
           "AdaptiveAvgPool2d", "Linear", "Flatten", "Identity", "Sequential", "ModuleList", "init", "utils"]
