"""Helpers that the CPU and the CUDA fast paths share, on NumPy or CuPy arrays alike.

weight_matrix is the conv weight as the GEMM operand of a channels-last column row (both convs);
global_mean_backward is the gradient of a global average pool laid out like its input (both pools).
"""
from __future__ import annotations

from ..backend import get_array_module


def weight_matrix(w, groups):
    """w (O, Cg, KH, KW) -> (G, KH*KW*Cg, O/G): each group's GEMM operand, rows ordered like a row of columns."""
    O, Cg, KH, KW = w.shape
    G = groups
    return w.reshape(G, O // G, Cg, KH, KW).transpose(0, 3, 4, 2, 1).reshape(G, KH * KW * Cg, O // G)


def global_mean_backward(g, shape, channels_last):
    """dx (N, C, H, W) of a global mean from g (N, C, 1, 1), laid out channels-last when x was."""
    xp = get_array_module(g)
    N, C, H, W = shape
    share = g * g.dtype.type(1.0 / (H * W))                                  # (N, C, 1, 1)
    if channels_last:  # dx laid out like x; C-value runs fill 4.7x faster than H*W-value runs at 4x4
        dx = xp.empty((N, H, W, C), dtype=g.dtype)
        dx[...] = share.reshape(N, 1, 1, C)
        return dx.transpose(0, 3, 1, 2)                                      # (N, C, H, W) view of NHWC memory
    return xp.broadcast_to(share, (N, C, H, W)).copy()
