// minires's hand-written CUDA kernels, compiled once per dtype by CuPy (RawModule, -Dscalar_t=float
// or -Dscalar_t=double) and, in the tests, by a C++ compiler that runs every (block, thread) in turn.
//
// Rules that make both possible: one thread per output element in a grid-stride loop, every
// output written by exactly one thread (gather form: no atomics), no shared memory, no
// __syncthreads. Arrays are passed as pointers to their first element plus element strides
// or a documented dense layout; sizes and strides are 64-bit.
#ifndef scalar_t
#define scalar_t float
#endif
typedef long long idx_t;

#define GRID_STRIDE_LOOP(i, total) \
    for (idx_t i = (idx_t)blockIdx.x * blockDim.x + threadIdx.x; i < (total); i += (idx_t)blockDim.x * gridDim.x)

__device__ inline bool is_nan(scalar_t v) { return v != v; }

// The output index along one axis of the window whose kernel offset k reads input position pos,
// or -1 when no window does (gather-form backward passes: col2im, max-pool).
__device__ inline idx_t window_of(idx_t pos, int pad, int k, int dil, int stride, idx_t out) {
    idx_t p = pos + pad - (idx_t)k * dil;
    return (p < 0 || p % stride != 0 || p / stride >= out) ? -1 : p / stride;
}

// cols (N, OH, OW, KH, KW, C) = the zero-padded window values of x, given by its (N, C, H, W)
// element strides, so NCHW and channels-last inputs are read in place (no padded copy).
extern "C" __global__ void im2col(const scalar_t* x, scalar_t* cols, idx_t N, idx_t C, idx_t H, idx_t W,
                                  idx_t sN, idx_t sC, idx_t sH, idx_t sW, idx_t OH, idx_t OW,
                                  int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW) {
    idx_t total = N * OH * OW * KH * KW * C;
    GRID_STRIDE_LOOP(i, total) {
        idx_t r = i;
        idx_t c = r % C; r /= C;
        idx_t kw = r % KW; r /= KW;
        idx_t kh = r % KH; r /= KH;
        idx_t ow = r % OW; r /= OW;
        idx_t oh = r % OH; idx_t n = r / OH;
        idx_t h = oh * SH - PH + kh * DH, w = ow * SW - PW + kw * DW;
        cols[i] = (h >= 0 && h < H && w >= 0 && w < W) ? x[n * sN + c * sC + h * sH + w * sW] : (scalar_t)0;
    }
}

// dx (N, H, W, C), channels-last and dense, = the adjoint of im2col: each input pixel gathers
// the column entries that read it (a loop over kernel offsets, no atomics).
extern "C" __global__ void col2im(const scalar_t* cols, scalar_t* dx, idx_t N, idx_t C, idx_t H, idx_t W, idx_t OH,
                                  idx_t OW, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW) {
    idx_t total = N * H * W * C;
    GRID_STRIDE_LOOP(i, total) {
        idx_t r = i;
        idx_t c = r % C; r /= C;
        idx_t w = r % W; r /= W;
        idx_t h = r % H; idx_t n = r / H;
        scalar_t acc = 0;
        for (int kh = 0; kh < KH; ++kh) {
            idx_t oh = window_of(h, PH, kh, DH, SH, OH);
            if (oh < 0) continue;
            for (int kw = 0; kw < KW; ++kw) {
                idx_t ow = window_of(w, PW, kw, DW, SW, OW);
                if (ow < 0) continue;
                acc += cols[((((n * OH + oh) * OW + ow) * KH + kh) * KW + kw) * C + c];
            }
        }
        dx[i] = acc;
    }
}

// Batch norm over a dense array whose channel of memory element i is (i / inner) % C
// (inner = 1 for channels-last, H*W for NCHW); M = values per channel.
__device__ inline idx_t channel_elem(idx_t m, idx_t c, idx_t C, idx_t inner) {
    return (m / inner) * (C * inner) + c * inner + m % inner;  // m-th value of channel c
}

// Statistics in one pass over x: thread t = s*C + c runs Welford's update over the values
// m = s, s+S, ... of channel c; bn_merge then combines the S partials (Chan et al.).
extern "C" __global__ void bn_partial_stats(const scalar_t* x, scalar_t* pmean, scalar_t* pm2, scalar_t* pcount, idx_t C, idx_t inner,
                                            idx_t M, idx_t S) {
    GRID_STRIDE_LOOP(t, S * C) {
        idx_t c = t % C, s = t / C;
        scalar_t mean = 0, m2 = 0, count = 0;
        for (idx_t m = s; m < M; m += S) {
            scalar_t v = x[channel_elem(m, c, C, inner)];
            count += 1;
            scalar_t d = v - mean;
            mean += d / count;
            m2 += d * (v - mean);
        }
        pmean[t] = mean; pm2[t] = m2; pcount[t] = count;
    }
}

extern "C" __global__ void bn_merge(const scalar_t* pmean, const scalar_t* pm2, const scalar_t* pcount, scalar_t* mean, scalar_t* var, idx_t C,
                                    idx_t S) {
    GRID_STRIDE_LOOP(c, C) {
        scalar_t n = 0, mu = 0, m2 = 0;
        for (idx_t s = 0; s < S; ++s) {
            scalar_t nb = pcount[s * C + c];
            if (nb == 0) continue;
            scalar_t d = pmean[s * C + c] - mu, tot = n + nb;
            mu += d * (nb / tot);
            m2 += pm2[s * C + c] + d * d * (n * nb / tot);
            n = tot;
        }
        mean[c] = mu;
        var[c] = m2 / n;  // biased, as used for normalising
    }
}

// y = (x - mean[c]) * scale[c] + shift[c], x and y dense with the same layout. Centring first keeps
// float32 precise when |mean| >> std (x * scale + shift' would cancel).
extern "C" __global__ void bn_apply(const scalar_t* x, scalar_t* y, const scalar_t* mean, const scalar_t* scale,
                                    const scalar_t* shift, idx_t C, idx_t inner, idx_t total) {
    GRID_STRIDE_LOOP(i, total) {
        idx_t c = (i / inner) % C;
        y[i] = (x[i] - mean[c]) * scale[c] + shift[c];
    }
}

// Partial per-channel sums of g and g * (x - mean), g and x dense with the same layout.
extern "C" __global__ void bn_partial_grad_sums(const scalar_t* g, const scalar_t* x, const scalar_t* mean, scalar_t* psum_g, scalar_t* psum_gxc,
                                                idx_t C, idx_t inner, idx_t M, idx_t S) {
    GRID_STRIDE_LOOP(t, S * C) {
        idx_t c = t % C, s = t / C;
        scalar_t sg = 0, sgx = 0, mu = mean[c];
        for (idx_t m = s; m < M; m += S) {
            idx_t e = channel_elem(m, c, C, inner);
            sg += g[e];
            sgx += g[e] * (x[e] - mu);
        }
        psum_g[t] = sg; psum_gxc[t] = sgx;
    }
}

// dx = (g + (x - mean) * c1[c] + c0[c]) * scale[c]: the training-mode batch-norm gradient with
// c1 = -invstd^2 * sum(g*(x-mean)) / M and c0 = -sum(g) / M.
extern "C" __global__ void bn_backward_apply(const scalar_t* g, const scalar_t* x, const scalar_t* mean, const scalar_t* c1, const scalar_t* c0,
                                             const scalar_t* scale, scalar_t* dx, idx_t C, idx_t inner, idx_t total) {
    GRID_STRIDE_LOOP(i, total) {
        idx_t c = (i / inner) % C;
        dx[i] = (g[i] + (x[i] - mean[c]) * c1[c] + c0[c]) * scale[c];
    }
}

// out (N, C, OH, OW) dense, argmax offset idx = kh*KW + kw of the first maximum; a NaN wins and
// propagates (PyTorch's rule); padding reads as `pad` (-inf). x given by its element strides.
extern "C" __global__ void max_pool_forward(const scalar_t* x, scalar_t* out, int* idx, idx_t N, idx_t C, idx_t H, idx_t W,
                                            idx_t sN, idx_t sC, idx_t sH, idx_t sW, idx_t OH, idx_t OW,
                                            int KH, int KW, int SH, int SW, int PH, int PW, scalar_t pad) {
    idx_t total = N * C * OH * OW;
    GRID_STRIDE_LOOP(i, total) {
        idx_t r = i;
        idx_t ow = r % OW; r /= OW;
        idx_t oh = r % OH; r /= OH;
        idx_t c = r % C; idx_t n = r / C;
        scalar_t best = 0;
        int bk = 0;
        for (int k = 0; k < KH * KW; ++k) {
            idx_t h = oh * SH - PH + k / KW, w = ow * SW - PW + k % KW;
            scalar_t v = (h >= 0 && h < H && w >= 0 && w < W) ? x[n * sN + c * sC + h * sH + w * sW] : pad;
            if (k == 0 || v > best || is_nan(v)) { best = v; bk = k; }
        }
        out[i] = best;
        idx[i] = bk;
    }
}

// dx (N, C, H, W) dense: each input pixel gathers g of the windows whose argmax it is.
extern "C" __global__ void max_pool_backward(const scalar_t* g, const int* idx, scalar_t* dx, idx_t N, idx_t C, idx_t H,
                                             idx_t W, idx_t OH, idx_t OW, int KH, int KW, int SH, int SW,
                                             int PH, int PW) {
    idx_t total = N * C * H * W;
    GRID_STRIDE_LOOP(i, total) {
        idx_t r = i;
        idx_t w = r % W; r /= W;
        idx_t h = r % H; idx_t nc = r / H;
        scalar_t acc = 0;
        for (int kh = 0; kh < KH; ++kh) {
            idx_t oh = window_of(h, PH, kh, 1, SH, OH);
            if (oh < 0) continue;
            for (int kw = 0; kw < KW; ++kw) {
                idx_t ow = window_of(w, PW, kw, 1, SW, OW);
                if (ow < 0) continue;
                idx_t o = (nc * OH + oh) * OW + ow;
                if (idx[o] == kh * KW + kw) acc += g[o];
            }
        }
        dx[i] = acc;
    }
}

// out = relu(x + y) and mask = out > 0 in one pass; all dense with the same layout. NaN propagates.
extern "C" __global__ void add_relu_forward(const scalar_t* x, const scalar_t* y, scalar_t* out, bool* mask, idx_t total) {
    GRID_STRIDE_LOOP(i, total) {
        scalar_t s = x[i] + y[i];
        out[i] = (s > 0 || is_nan(s)) ? s : (scalar_t)0;
        mask[i] = s > 0;
    }
}

// d = g where mask else 0 (the ReLU / add+ReLU backward); dense with the same layout.
extern "C" __global__ void mask_grad(const scalar_t* g, const bool* mask, scalar_t* d, idx_t total) {
    GRID_STRIDE_LOOP(i, total) { d[i] = mask[i] ? g[i] : (scalar_t)0; }
}

// Row r of logits (N, C) dense: prob = softmax, loss = (1-eps) * nll + eps * mean_c(-log p).
extern "C" __global__ void softmax_xent_forward(const scalar_t* logits, const long long* target, scalar_t* prob, scalar_t* loss,
                                                idx_t N, idx_t C, scalar_t eps) {
    GRID_STRIDE_LOOP(r, N) {
        const scalar_t* z = logits + r * C;
        scalar_t mx = z[0];
        for (idx_t c = 1; c < C; ++c) mx = (z[c] > mx || is_nan(z[c])) ? z[c] : mx;
        scalar_t s = 0, zsum = 0;
        for (idx_t c = 0; c < C; ++c) { s += exp(z[c] - mx); zsum += z[c] - mx; }
        scalar_t lse = log(s);
        for (idx_t c = 0; c < C; ++c) prob[r * C + c] = exp(z[c] - mx) / s;
        scalar_t nll = lse - (z[target[r]] - mx);
        // eps == 0 skips the smoothing term: a -inf logit makes zsum -inf, and 0 * inf is NaN.
        loss[r] = eps == 0 ? nll : (1 - eps) * nll + eps * (lse - zsum / C);
    }
}

// d (N, C) = (prob - (1-eps) * onehot(target) - eps/C) * scale[r * per_row]
// (per_row = 1: one scale per row, reduction 'none'; 0: one scale for all).
extern "C" __global__ void softmax_xent_backward(const scalar_t* prob, const long long* target, const scalar_t* scale,
                                                 scalar_t* d, idx_t N, idx_t C, scalar_t eps, int per_row) {
    GRID_STRIDE_LOOP(i, N * C) {
        idx_t r = i / C, c = i % C;
        scalar_t v = prob[i] - eps / C - (c == target[r] ? 1 - eps : (scalar_t)0);
        d[i] = v * scale[per_row ? r : 0];
    }
}
