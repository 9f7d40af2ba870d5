"""Batch normalisation over the channel axis of (N, C), (N, C, L) or (N, C, H, W) inputs."""
from __future__ import annotations

import numbers

import numpy as np

from .. import _validate, amp
from ..tensor import Function
from ..backend import get_array_module
from ..parallel import array_parts
from .. import cuda
from ..cuda import ops as cuda_ops


class _Layout:
    """How per-channel math maps onto an input's memory: an (N, C, L) view, or (N*H, W*C) rows for channels-last.

    NOTE: conv2d returns NCHW views of NHWC memory. Reshaping those to (N, C, L) would be a full
    transpose copy, and the result would lose the layout that ReLU and the next conv's NHWC im2col
    read contiguously. Rows of W*C values (channel fastest) are views, and wide enough for NumPy's
    inner loops: (N*H*W, C) rows of only C = 16 values ran ~2x slower. Per-channel vectors are
    then tiled W times along a row.
    """

    def __init__(self, x):
        self.shape = x.shape
        self.cl = x.ndim == 4 and not x.flags.c_contiguous and x.transpose(0, 2, 3, 1).flags.c_contiguous
        self.C = x.shape[1]
        self.W = x.shape[3] if self.cl else 1

    def view(self, a):
        """a in this layout: (N, C, L) or (N*H, W*C); a view unless a is laid out differently."""
        if self.cl:
            N, C, H, W = self.shape
            return a.transpose(0, 2, 3, 1).reshape(N * H, W * C)  # (N*H, W*C)
        return a.reshape(self.shape[0], self.C, -1)  # (N, C, L)

    def unview(self, a):
        """Inverse of view for an array laid out like view's result: back to the input's shape."""
        if self.cl:
            N, C, H, W = self.shape
            return a.reshape(N, H, W, C).transpose(0, 3, 1, 2)  # (N, C, H, W) view of NHWC memory
        return a.reshape(self.shape)

    def bc(self, v):
        """Per-channel vector (C,) broadcastable against a viewed array."""
        return get_array_module(v).tile(v, self.W) if self.cl else v[:, None]

    def sum(self, a):
        """Per-channel sum of a viewed array -> (C,)."""
        if self.cl:
            return a.sum(axis=0).reshape(self.W, self.C).sum(axis=0)
        return a.sum(axis=(0, 2))

    def dot(self, a, b):
        """Per-channel sum of a * b for viewed arrays -> (C,), without an a * b temporary."""
        xp = get_array_module(a)
        if self.cl:
            return xp.einsum("mk,mk->k", a, b).reshape(self.W, self.C).sum(axis=0)
        return xp.einsum("ncl,ncl->c", a, b)


def _row_blocks(xp, a):
    """rows(fn): [fn(r0, r1) over row blocks of a viewed array], one block per CPU thread."""
    return lambda fn: array_parts(xp, fn, a.shape[0], row_size=a[0].size)


class BatchNorm(Function):
    name = "batch_norm"
    mixed_float_dtypes = True  # batch_norm() checks: float16 input, float32 parameters on the GPU kernels only

    # Speed/memory: per-channel statistics are reductions of a view of x (no transpose, see
    # _Layout); full-size temporaries are avoided by working in place in the output buffer (fresh
    # 32 MB arrays cost a page-zeroing pass each). Backward keeps x (alive anyway as this node's
    # input) instead of a centred copy, and rebuilds x - mean in the dx buffer. On the CPU every
    # pass runs over row blocks in parallel (minires.parallel); partial sums are added per channel.

    def forward(self, x, w=None, b=None, running_mean=None, running_var=None, training=False,
                momentum=0.1, eps=1e-5):
        xp = get_array_module(x)
        self.empty = x.shape[0] == 0  # eval on an empty batch (training refuses it): nothing to normalise
        if self.empty:
            self.shape = x.shape
            return xp.empty(x.shape, dtype=x.dtype)
        self.cuda_inner = cuda_ops.channel_layout(x) if (training and cuda.enabled(xp, x.dtype)) else None
        if self.cuda_inner is not None:
            return self._forward_cuda(xp, x, w, b, running_mean, running_var, momentum, eps)
        L = _Layout(x)
        x3 = L.view(x)  # (N, C, L) or (N*H, W*C)
        M = x.size // x.shape[1]  # values per channel
        y = xp.empty_like(x3)
        rows = _row_blocks(xp, x3)
        if training:
            mean = sum(rows(lambda r0, r1: L.sum(x3[r0:r1]))) / M
            mean_bc = L.bc(mean)

            def centre(r0, r1):  # y = x - mean, in the output buffer
                xp.subtract(x3[r0:r1], mean_bc, out=y[r0:r1])
                return L.dot(y[r0:r1], y[r0:r1])
            # NOTE: two-pass variance (centre, then square) avoids E[x^2] - E[x]^2 cancellation in float32.
            var = sum(rows(centre)) / M
            if running_mean is not None:
                running_mean *= 1 - momentum
                running_mean += momentum * mean
            if running_var is not None:
                running_var *= 1 - momentum
                running_var += (momentum * M / (M - 1)) * var  # the unbiased variance, as PyTorch
            invstd = 1 / xp.sqrt(var + eps)  # (C,)
            scale = invstd * w if w is not None else invstd
            scale_bc, shift_bc = L.bc(scale), (L.bc(b) if b is not None else None)

            def affine(r0, r1):
                y[r0:r1] *= scale_bc
                if shift_bc is not None:
                    y[r0:r1] += shift_bc
            rows(affine)
        else:
            mean = running_mean.copy()  # the caller may update running_mean before backward
            invstd = 1 / xp.sqrt(running_var + eps)
            scale = invstd * w if w is not None else invstd
            shift = -mean * scale
            if b is not None:
                shift += b
            scale_bc, shift_bc = L.bc(scale), L.bc(shift)

            def affine(r0, r1):
                xp.multiply(x3[r0:r1], scale_bc, out=y[r0:r1])
                y[r0:r1] += shift_bc
            rows(affine)
        self.x3, self.mean, self.invstd, self.scale = x3, mean, invstd, scale
        self.layout, self.M, self.training = L, M, training
        return L.unview(y)

    def _forward_cuda(self, xp, x, w, b, running_mean, running_var, momentum, eps):
        """Training forward by the kernels of minires/cuda: statistics in one pass, then one apply pass."""
        launch, inner = cuda.launcher(), self.cuda_inner
        mean, var = cuda_ops.batch_norm_stats(launch, xp, x, inner)
        M = x.size // x.shape[1]
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += (momentum * M / (M - 1)) * var
        invstd = 1 / xp.sqrt(var + eps)
        scale = invstd * w if w is not None else invstd
        shift = b if b is not None else xp.zeros_like(mean)
        self.x, self.mean, self.invstd, self.scale, self.M, self.training = x, mean, invstd, scale, M, True
        return cuda_ops.batch_norm_apply(launch, xp, x, inner, mean, scale, shift)

    def _backward_cuda(self, g):
        need_x, need_w, need_b = self.needs_input_grad[:3]
        xp = get_array_module(g)
        launch, inner, x = cuda.launcher(), self.cuda_inner, self.x
        if g.strides != x.strides:  # the kernels read g and x with one index
            gl = xp.empty_like(x)
            gl[...] = g
            g = gl
        sum_g, sum_gxc = cuda_ops.batch_norm_grad_sums(launch, xp, g, x, inner, self.mean)
        dx = None
        if need_x:
            c1 = -(self.invstd * self.invstd * sum_gxc) / self.M
            dx = cuda_ops.batch_norm_backward_apply(launch, xp, g, x, inner, self.mean, c1, -sum_g / self.M,
                                                    self.scale)
        return dx, (sum_gxc * self.invstd if need_w else None), (sum_g if need_b else None)

    def backward(self, g):
        if self.empty:  # sums over no samples
            xp = get_array_module(g)
            C = self.shape[1]
            return xp.zeros(self.shape, dtype=g.dtype), xp.zeros(C, dtype=g.dtype), xp.zeros(C, dtype=g.dtype)
        if self.cuda_inner is not None:
            return self._backward_cuda(g)
        need_x, need_w, need_b = self.needs_input_grad[:3]
        L = self.layout
        xp = get_array_module(g)
        g3 = L.view(g)  # laid out like x3 (a copy only if g's layout differs from x's)
        x3, invstd, scale, M = self.x3, self.invstd, self.scale, self.M
        full_dx = need_x and self.training  # in training the statistics depend on x
        need_sum_g, need_dot = need_b or full_dx, need_w or full_dx
        dx = xp.empty_like(x3) if need_x else None
        mean_bc = L.bc(self.mean)
        rows = _row_blocks(xp, x3)

        def sums(r0, r1):
            s_g = L.sum(g3[r0:r1]) if need_sum_g else 0
            s_gxc = 0
            if need_dot:  # sum(g * (x - mean)) = sum(g * xhat) / invstd; x - mean goes in dx's buffer
                xc = xp.subtract(x3[r0:r1], mean_bc, out=dx[r0:r1] if full_dx else None)
                s_gxc = L.dot(g3[r0:r1], xc)
            return s_g, s_gxc
        partial = rows(sums) if (need_sum_g or need_dot) else [(0, 0)]
        sum_g = sum(p[0] for p in partial)
        sum_gxc = sum(p[1] for p in partial)
        if full_dx:
            # dx = (w*invstd/M) * (M*g - sum(g) - xhat*sum(g*xhat)) with xhat = xc*invstd,
            # evaluated in place in the xc buffer: (xc*c1 + g + c0) * scale.
            c1 = L.bc(-(invstd * invstd * sum_gxc) / M)
            c0, scale_bc = L.bc(-sum_g / M), L.bc(scale)

            def finish(r0, r1):
                d = dx[r0:r1]
                d *= c1
                d += g3[r0:r1]
                d += c0
                d *= scale_bc
            rows(finish)
        elif need_x:  # eval: the statistics are constants, so the map is a per-channel scale
            scale_bc = L.bc(scale)
            rows(lambda r0, r1: xp.multiply(g3[r0:r1], scale_bc, out=dx[r0:r1]))
        dw = sum_gxc * invstd if need_w else None
        db = sum_g if need_b else None
        return (L.unview(dx) if dx is not None else None), dw, db


def _channel_arg(name, t, x, C):
    if t is None:
        return None
    _validate.tensor_arg("batch_norm", name, t)
    if t.shape != (C,):
        raise ValueError(f"batch_norm: argument '{name}' must have shape ({C},) for input of shape "
                         f"{x.shape}, got {t.shape}")
    return t


def _half_on_kernels(x) -> bool:
    """A float16 Tensor under autocast that the CUDA batch-norm kernels take as it is."""
    if amp.autocast_dtype() is None or getattr(x, "dtype", None) != np.float16:
        return False
    return cuda.enabled(get_array_module(x.data), x.dtype) and cuda_ops.channel_layout(x.data) is not None


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    """Normalise each channel by its batch statistics (training) or running statistics (eval).

    In training, running_mean/running_var (if given) are updated in place:
    new = (1 - momentum) * old + momentum * batch_stat, with the unbiased batch variance.
    """
    # Under autocast a float16 input is widened to float32 (statistics and normalisation in float32),
    # except where the CUDA kernels train on it: they read and write float16 and keep the statistics
    # and parameters in float32 (half the memory traffic, the same arithmetic).
    half_kernels = training and _half_on_kernels(x)
    if not half_kernels:
        x = amp.widen_one(x)
    _validate.tensor_arg("batch_norm", "input", x, ndim=(2, 3, 4))
    C = x.shape[1]
    _channel_arg("running_mean", running_mean, x, C)
    _channel_arg("running_var", running_var, x, C)
    _channel_arg("weight", weight, x, C)
    _channel_arg("bias", bias, x, C)
    tensors = dict(input=x, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    _validate.same_device("batch_norm", **tensors)
    _validate.same_dtype("batch_norm", **({k: v for k, v in tensors.items() if k != "input"} if half_kernels else tensors))
    for name, v in (("momentum", momentum), ("eps", eps)):
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise TypeError(f"batch_norm: argument '{name}' must be a real number, got {v!r}")
    if eps <= 0:
        raise ValueError(f"batch_norm: argument 'eps' must be > 0, got {eps}")
    if training:
        M = x.numel() // C if C else 0
        if M <= 1:
            raise ValueError(f"batch_norm: Expected more than 1 value per channel when training, "
                             f"got input size {x.shape}")
    elif running_mean is None or running_var is None:
        raise ValueError("batch_norm: running_mean and running_var are required when training=False")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    return BatchNorm.apply(x, weight, bias,
                           running_mean=None if running_mean is None else running_mean.data,
                           running_var=None if running_var is None else running_var.data,
                           training=bool(training), momentum=float(momentum), eps=float(eps))

