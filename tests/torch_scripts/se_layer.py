"""A user's own layers written for PyTorch: swish written by hand, and a squeeze-excitation block
(global average pool -> 1x1 conv -> swish -> 1x1 conv -> sigmoid gate on each channel).
tests/nn/test_torch_layer_gradcheck.py gradient-checks the rewritten copy of this file on minires."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Swish(nn.Module):
    """x * sigmoid(x) (SiLU), written out rather than taken from the library."""

    def forward(self, x):
        return x * torch.sigmoid(x)


class SqueezeExcitation(nn.Module):
    """Scale each channel of x by a gate in (0, 1) computed from the channel means."""

    def __init__(self, channels, reduction=4):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.squeeze = nn.Conv2d(channels, hidden, kernel_size=1)
        self.act = Swish()
        self.excite = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)                      # (N, C, 1, 1)
        s = torch.sigmoid(self.excite(self.act(self.squeeze(s))))
        return x * s                                          # gate broadcast over H, W
