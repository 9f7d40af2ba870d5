"""Neural-network layers with PyTorch's names: Module, Parameter, Conv2d, BatchNorm2d, Linear, ..."""
from . import functional, init, parallel, utils
from .activation import ReLU
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import ModuleDict, ModuleList, Sequential
from .conv import Conv2d
from .elementwise import (ELU, GELU, Dropout, Dropout2d, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSoftmax, ReLU6,
                          SiLU, Sigmoid, Softmax, Softplus, Tanh)
from .linear import Flatten, Identity, Linear
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module
from .normalization import GroupNorm, LayerNorm
from .parallel import DataParallel
from .parameter import Parameter
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = ["Module", "Parameter", "Conv2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "ReLU", "GELU",
           "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Dropout", "MaxPool2d", "AvgPool2d",
           "AdaptiveAvgPool2d", "Linear", "Flatten", "Identity", "Sequential", "ModuleList", "ModuleDict",
           "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss", "GroupNorm", "ELU", "Dropout2d", "Hardsigmoid", "Hardswish",
           "Hardtanh", "ReLU6", "SiLU", "Softplus", "DataParallel", "functional", "init", "parallel", "utils"]
