"""Loss layers: CrossEntropyLoss, NLLLoss, MSELoss, L1Loss, BCELoss and BCEWithLogitsLoss, over F (which checks their arguments at the call)."""
from __future__ import annotations

from .. import functional as F
from .functional import _reduction, binary_cross_entropy, binary_cross_entropy_with_logits, l1_loss
from .module import Module


class CrossEntropyLoss(Module):
    """Cross entropy of logits (N, C) and class indices (N,), with label smoothing.

    Without weight and with the default ignore_index it is F.cross_entropy (fused log-softmax, the
    training path); there a target of -100 is out of range and raises instead of being ignored.
    With a class weight or another ignore_index it is nll_loss(log_softmax(x)), which supports no
    label smoothing. The arguments after `weight` are keyword-only; PyTorch's deprecated
    size_average/reduce become `reduction` with a warning, as in PyTorch.
    """

    def __init__(self, weight=None, *, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        reduction = _reduction("CrossEntropyLoss", size_average, reduce, reduction)
        self.reduction, self.label_smoothing, self.ignore_index = reduction, label_smoothing, ignore_index
        if (weight is not None or ignore_index != -100) and label_smoothing != 0:
            raise NotImplementedError("CrossEntropyLoss: label_smoothing together with weight or ignore_index "
                                      "is not supported")
        self.register_buffer("weight", weight)  # a buffer as in PyTorch: moves with .to(), not trained

    def forward(self, input, target):
        if self.weight is None and self.ignore_index == -100:
            return F.cross_entropy(input, target, label_smoothing=self.label_smoothing, reduction=self.reduction)
        return F.nll_loss(F.log_softmax(input, 1), target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction='{self.reduction}', label_smoothing={self.label_smoothing}"


class NLLLoss(Module):
    """Negative log-likelihood of class indices given log-probabilities (see F.nll_loss)."""

    def __init__(self, weight=None, *, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean"):
        super().__init__()
        reduction = _reduction("NLLLoss", size_average, reduce, reduction)
        self.reduction, self.ignore_index = reduction, ignore_index
        self.register_buffer("weight", weight)

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction='{self.reduction}'"


class MSELoss(Module):
    """Mean squared error (see F.mse_loss); `reduction` is keyword-only."""

    def __init__(self, *, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = _reduction("MSELoss", size_average, reduce, reduction)

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction='{self.reduction}'"


class L1Loss(Module):
    """Mean absolute error (see nn.functional.l1_loss); `reduction` is keyword-only."""

    def __init__(self, *, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = _reduction("L1Loss", size_average, reduce, reduction)

    def forward(self, input, target):
        return l1_loss(input, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction='{self.reduction}'"


class BCELoss(Module):
    """Binary cross entropy of probabilities (see nn.functional.binary_cross_entropy)."""

    def __init__(self, weight=None, *, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction
        self.register_buffer("weight", weight)

    def forward(self, input, target):
        return binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(Module):
    """Binary cross entropy of logits (see nn.functional.binary_cross_entropy_with_logits)."""

    def __init__(self, weight=None, *, reduction: str = "mean", pos_weight=None):
        super().__init__()
        self.reduction = reduction
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                pos_weight=self.pos_weight)
