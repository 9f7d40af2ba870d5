"""Array-level wrappers of the kernels in kernels.cu: allocate outputs, check layouts, launch.

Each takes `launch` (a launcher.Launcher) and `xp` (cupy, or numpy in the CPU emulation tests)
so the same code runs on the GPU and under test. Outputs match the generic array-code paths of
minires.functional in shape, layout and dtype.
"""
from __future__ import annotations

from ... import tuning
from .launcher import ACC_DTYPE


def _strides(a):
    """Element strides of an array."""
    return tuple(s // a.itemsize for s in a.strides)


def channel_layout(x):
    """inner such that memory element i of dense x has channel (i // inner) % C, or None.

    C-contiguous (N, C, ...) gives the product of the dims after C; an (N, C, H, W) view of
    channels-last memory gives 1. Anything else (a strided slice, say) gives None.
    """
    if x.flags.c_contiguous:
        inner = 1
        for d in x.shape[2:]:
            inner *= d
        return inner
    if x.ndim == 4 and x.transpose(0, 2, 3, 1).flags.c_contiguous:
        return 1
    return None


def im2col(launch, xp, x, kernel_size, stride, padding, dilation, out_size, groups=1):
    """x (N, C, H, W), any strides -> columns (N*OH*OW, KH*KW*C), rows ordered like the CPU path's;
    with groups G > 1, (G, N*OH*OW, KH*KW*C/G): each group's columns, contiguous."""
    N, C, H, W = x.shape
    (KH, KW), (OH, OW) = kernel_size, out_size
    shape = (N * OH * OW, KH * KW * C) if groups == 1 else (groups, N * OH * OW, KH * KW * (C // groups))
    cols = xp.empty(shape, dtype=x.dtype)
    launch("im2col", cols.size, x, cols, N, C, H, W, *_strides(x), OH, OW, KH, KW, *stride, *padding, *dilation,
           groups)
    return cols


def col2im(launch, xp, cols, x_shape, kernel_size, stride, padding, dilation, out_size, groups=1):
    """Columns as im2col gives them (same groups) -> dx (N, C, H, W) as a view of channels-last memory
    (summed overlaps)."""
    N, C, H, W = x_shape
    (KH, KW), (OH, OW) = kernel_size, out_size
    cols = xp.ascontiguousarray(cols)
    dx = xp.empty((N, H, W, C), dtype=cols.dtype)
    launch("col2im", dx.size, cols, dx, N, C, H, W, OH, OW, KH, KW, *stride, *padding, *dilation, groups)
    return dx.transpose(0, 3, 1, 2)


def _pixels(xp, shape, dtype, cl):
    """A dense (N, C, H, W) array: a view of channels-last memory when cl, else C order."""
    if cl:
        N, C, H, W = shape
        return xp.empty((N, H, W, C), dtype=dtype).transpose(0, 3, 1, 2)
    return xp.empty(shape, dtype=dtype)


def depthwise_forward(launch, xp, x, w, b, stride, padding, dilation, out_size, cl):
    """x (N, C, H, W) any strides, w (C*M, 1, KH, KW), b (C*M,) or None -> out (N, C*M, OH, OW),
    dense, channels-last when cl else NCHW."""
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    out = _pixels(xp, (N, O) + tuple(out_size), x.dtype, cl)
    w = xp.ascontiguousarray(w)
    bias = w if b is None else xp.ascontiguousarray(b)  # any scalar_t array when there is no bias: never read
    launch("depthwise_forward", out.size, x, w, bias, out, N, C, H, W, *_strides(x), O // C, *out_size, KH, KW,
           *stride, *padding, *dilation, int(b is not None), int(cl))
    return out


def depthwise_backward_input(launch, xp, g, w, x_shape, stride, padding, dilation, cl):
    """dx (N, C, H, W) of a depthwise conv from g (N, C*M, OH, OW) any strides; dense, channels-last when cl."""
    N, C, H, W = x_shape
    O, _, KH, KW = w.shape
    dx = _pixels(xp, x_shape, g.dtype, cl)
    launch("depthwise_backward_input", dx.size, g, xp.ascontiguousarray(w), dx, N, C, H, W, *_strides(g), O // C,
           *g.shape[2:], KH, KW, *stride, *padding, *dilation, int(cl))
    return dx


def depthwise_backward_weight(launch, xp, g, x, kernel_size, stride, padding, dilation, cl):
    """dw (C*M, 1, KH, KW) of a depthwise conv from g (N, C*M, OH, OW) and x, any strides: S partial sums
    per tap over slices of the N*OH output rows, in the accumulator dtype, then their sum."""
    N, C, H, W = x.shape
    O, (OH, OW), (KH, KW) = g.shape[1], g.shape[2:], kernel_size
    taps = O * KH * KW
    # as the statistics kernels slice a channel (tuning.STAT_*), in whole rows of OW values
    S = max(1, min(N * OH, N * OH * OW // tuning.STAT_MIN_VALUES, tuning.STAT_THREADS // taps))
    part = xp.empty(S * taps, dtype=ACC_DTYPE[x.dtype])
    launch("depthwise_backward_weight", part.size, g, x, part, N, C, H, W, *_strides(x), *_strides(g), O // C,
           OH, OW, KH, KW, *stride, *padding, *dilation, S, int(cl))
    if cl:  # (S, KH*KW, O)
        dw = part.reshape(S, KH * KW, O).sum(axis=0).T
    else:   # (O, KH*KW, S)
        dw = part.reshape(O, KH * KW, S).sum(axis=2)
    return xp.ascontiguousarray(dw.reshape(O, 1, KH, KW), dtype=x.dtype)


def _stat_slices(M: int, C: int) -> int:
    """Slices per channel for the level-1 statistics kernels (tuning.STAT_THREADS, tuning.STAT_MIN_VALUES)."""
    return max(1, min(M // tuning.STAT_MIN_VALUES, tuning.STAT_THREADS // C))


def _acc(xp, v, dtype):
    """A per-channel vector as the kernels' accumulator dtype, contiguous."""
    return xp.ascontiguousarray(v, dtype=ACC_DTYPE[dtype])


def batch_norm_stats(launch, xp, x, inner):
    """(mean, biased var) per channel of dense x, in the accumulator dtype: Welford over S slices per
    channel, then Chan's merge tuning.MERGE_FANIN partials at a time until one per channel is left."""
    C = x.shape[1]
    M = x.size // C
    S = _stat_slices(M, C)
    acc = ACC_DTYPE[x.dtype]
    mean, m2, count = (xp.empty((C, S), dtype=acc) for _ in range(3))
    launch("bn_partial_stats", S * C, x, mean, m2, count, C, inner, M, S)
    while S > 1:
        S2 = -(-S // tuning.MERGE_FANIN)
        out = tuple(xp.empty((C, S2), dtype=acc) for _ in range(3))
        launch("bn_merge", C * S2, mean, m2, count, *out, C, S, S2, -(-S // S2))
        (mean, m2, count), S = out, S2
    return mean.reshape(C), (m2 / count).reshape(C)


def batch_norm_apply(launch, xp, x, inner, mean, scale, shift):
    """y = (x - mean[c]) * scale[c] + shift[c], laid out like x."""
    y = xp.empty_like(x)
    launch("bn_apply", x.size, x, y, *(_acc(xp, v, x.dtype) for v in (mean, scale, shift)),
           x.shape[1], inner, x.size)
    return y


def batch_norm_grad_sums(launch, xp, g, x, inner, mean):
    """Per-channel sum(g) and sum(g * (x - mean)) in the accumulator dtype; g laid out like x."""
    C = x.shape[1]
    M = x.size // C
    S = _stat_slices(M, C)
    acc = ACC_DTYPE[x.dtype]
    psum_g, psum_gxc = xp.empty((C, S), dtype=acc), xp.empty((C, S), dtype=acc)
    launch("bn_partial_grad_sums", S * C, g, x, _acc(xp, mean, x.dtype), psum_g, psum_gxc, C, inner, M, S)
    return psum_g.sum(axis=1), psum_gxc.sum(axis=1)


def batch_norm_backward_apply(launch, xp, g, x, inner, mean, c1, c0, scale):
    """dx = (g + (x - mean) * c1 + c0) * scale per channel, laid out like x."""
    dx = xp.empty_like(x)
    launch("bn_backward_apply", x.size, g, x, *(_acc(xp, v, x.dtype) for v in (mean, c1, c0, scale)),
           dx, x.shape[1], inner, x.size)
    return dx


def max_pool(launch, xp, x, kernel_size, stride, padding, out_size):
    """x (N, C, H, W), any strides -> out (N, C, OH, OW) and the int32 argmax offset of each window."""
    N, C, H, W = x.shape
    out = xp.empty((N, C) + tuple(out_size), dtype=x.dtype)
    idx = xp.empty(out.shape, dtype=xp.int32)
    launch("max_pool_forward", out.size, x, out, idx, N, C, H, W, *_strides(x), *out_size,
           *kernel_size, *stride, *padding, float("-inf"))
    return out, idx


def max_pool_backward(launch, xp, g, idx, x_shape, kernel_size, stride, padding):
    """dx (N, C, H, W): each pixel gathers g of the windows whose first maximum it is."""
    N, C, H, W = x_shape
    g = xp.ascontiguousarray(g)
    dx = xp.empty(x_shape, dtype=g.dtype)
    launch("max_pool_backward", dx.size, g, idx, dx, N, C, H, W, *g.shape[2:], *kernel_size, *stride, *padding)
    return dx


def _dense_alike(a, b):
    """a is dense (C order, or an NCHW view of channels-last memory) and b is laid out element for element like it."""
    dense = a.flags.c_contiguous or (a.ndim == 4 and channel_layout(a) == 1)
    return dense and a.shape == b.shape and _strides(a) == _strides(b)


def add_relu(launch, xp, x, y):
    """(relu(x + y), mask out > 0) in one pass, for x and y laid out alike; None when they are not."""
    if not _dense_alike(x, y):
        return None
    out, mask = xp.empty_like(x), xp.empty_like(x, dtype=bool)
    launch("add_relu_forward", x.size, x, y, out, mask, x.size)
    return out, mask


def mask_grad(launch, xp, g, mask):
    """g where mask else 0, for g laid out like mask; None when it is not."""
    if not _dense_alike(g, mask):
        return None
    d = xp.empty_like(g)
    launch("mask_grad", g.size, g, mask, d, g.size)
    return d


def softmax_cross_entropy(launch, xp, logits, target, label_smoothing):
    """(softmax probabilities (N, C), per-row loss (N,)) of dense logits; target int64 (N,)."""
    N, C = logits.shape
    logits = xp.ascontiguousarray(logits)
    target = xp.ascontiguousarray(target, dtype=xp.int64)
    prob, loss = xp.empty_like(logits), xp.empty(N, dtype=logits.dtype)
    launch("softmax_xent_forward", N, logits, target, prob, loss, N, C, label_smoothing)
    return prob, loss


def softmax_cross_entropy_backward(launch, xp, prob, target, scale, label_smoothing):
    """d (N, C) = (prob - smoothed one-hot) * scale, scale (N,) per row or (1,) for all rows."""
    N, C = prob.shape
    scale = xp.ascontiguousarray(scale, dtype=prob.dtype).reshape(-1)
    d = xp.empty_like(prob)
    launch("softmax_xent_backward", d.size, prob, xp.ascontiguousarray(target, dtype=xp.int64), scale, d,
           N, C, label_smoothing, int(scale.size == N and N != 1))
    return d
