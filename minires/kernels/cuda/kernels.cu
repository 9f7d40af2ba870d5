// minires's hand-written CUDA kernels, compiled by CuPy (RawModule) once per element type and index
// width, and in the tests by a C++ compiler that runs every (block, thread) in turn.
//
//   -Dscalar_t=float | -Dscalar_t=double | -DMINIRES_HALF (float16)   element type of the arrays
//   -DMINIRES_IDX32                                                    32-bit sizes and offsets
//
// Rules that make both possible: one thread per output element in a grid-stride loop, every
// output written by exactly one thread (gather form: no atomics), no shared memory, no
// __syncthreads. Arrays are passed as pointers to their first element plus element strides
// or a documented dense layout.
//
// Arithmetic is in acc_t: float for float16 (loads widen, stores round once), else scalar_t.
// Index arithmetic is in idx_t: 32-bit when the launcher has checked that every size and offset
// fits (a 64-bit division costs dozens of instructions on a GPU), else 64-bit.
#if defined(MINIRES_HALF)
typedef unsigned short scalar_t;  // IEEE float16 bits
typedef float acc_t;
#ifndef MINIRES_EMULATOR
__device__ inline float to_acc(scalar_t v) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v)); return f; }
__device__ inline scalar_t to_scalar(float f) { scalar_t h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
#endif
#else
#ifndef scalar_t
#define scalar_t float
#endif
typedef scalar_t acc_t;
__device__ inline acc_t to_acc(scalar_t v) { return v; }
__device__ inline scalar_t to_scalar(acc_t v) { return v; }
#endif
#ifdef MINIRES_IDX32
typedef int idx_t;
#else
typedef long long idx_t;
#endif

#define GRID_STRIDE_LOOP(i, total) \
    for (idx_t i = (idx_t)(blockIdx.x * blockDim.x + threadIdx.x); i < (total); i += (idx_t)(blockDim.x * gridDim.x))

__device__ inline bool is_nan(acc_t v) { return v != v; }

// The output index along one axis of the window whose kernel offset k reads input position pos,
// or -1 when no window does (gather-form backward passes: col2im, max-pool).
__device__ inline idx_t window_of(idx_t pos, int pad, int k, int dil, int stride, idx_t out) {
    idx_t p = pos + pad - (idx_t)k * dil;
    return (p < 0 || p % stride != 0 || p / stride >= out) ? -1 : p / stride;
}

// cols (G, N, OH, OW, KH, KW, Cg) = the zero-padded window values of x (C = G*Cg channels, group g
// holding channels g*Cg ... g*Cg + Cg - 1), given by its (N, C, H, W) element strides, so NCHW and
// channels-last inputs are read in place (no padded copy). G = 1: the (N*OH*OW, KH*KW*C) columns of
// a plain conv; G > 1: one contiguous column matrix per group, the operands of a batched GEMM.
extern "C" __global__ void im2col(const scalar_t* x, scalar_t* cols, idx_t N, idx_t C, idx_t H, idx_t W,
                                  idx_t sN, idx_t sC, idx_t sH, idx_t sW, idx_t OH, idx_t OW,
                                  int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW, idx_t G) {
    idx_t total = N * OH * OW * KH * KW * C, Cg = C / G;
    GRID_STRIDE_LOOP(i, total) {
        idx_t r = i;
        idx_t c = r % Cg; r /= Cg;
        idx_t kw = r % KW; r /= KW;
        idx_t kh = r % KH; r /= KH;
        idx_t ow = r % OW; r /= OW;
        idx_t oh = r % OH; r /= OH;
        idx_t n = r % N; c += (r / N) * Cg;
        idx_t h = oh * SH - PH + kh * DH, w = ow * SW - PW + kw * DW;
        cols[i] = (h >= 0 && h < H && w >= 0 && w < W) ? x[n * sN + c * sC + h * sH + w * sW] : to_scalar(0);
    }
}

// dx (N, H, W, C), channels-last and dense, = the adjoint of im2col (same G): each input pixel
// gathers the column entries that read it (a loop over kernel offsets, no atomics).
extern "C" __global__ void col2im(const scalar_t* cols, scalar_t* dx, idx_t N, idx_t C, idx_t H, idx_t W, idx_t OH,
                                  idx_t OW, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW, idx_t G) {
    idx_t total = N * H * W * C, Cg = C / G;
    GRID_STRIDE_LOOP(i, total) {
        idx_t r = i;
        idx_t c = r % C; r /= C;
        idx_t w = r % W; r /= W;
        idx_t h = r % H; idx_t n = r / H;
        idx_t gn = (c / Cg) * N + n, cg = c % Cg;
        acc_t acc = 0;
        for (int kh = 0; kh < KH; ++kh) {
            idx_t oh = window_of(h, PH, kh, DH, SH, OH);
            if (oh < 0) continue;
            for (int kw = 0; kw < KW; ++kw) {
                idx_t ow = window_of(w, PW, kw, DW, SW, OW);
                if (ow < 0) continue;
                acc += to_acc(cols[((((gn * OH + oh) * OW + ow) * KH + kh) * KW + kw) * Cg + cg]);
            }
        }
        dx[i] = to_scalar(acc);
    }
}

// Depthwise conv (groups = C, M output channels per input channel: output o reads channel o / M),
// direct: one thread per output value, KH*KW multiply-adds, no columns. x is read through its
// (N, C, H, W) element strides; w is dense (C*M, 1, KH, KW). The output is dense, channels-last
// (N, OH, OW, C*M) when cl, else NCHW: thread i writes out[i], so adjacent threads take adjacent
// channels (cl) or adjacent pixels of one channel (NCHW), and read x where it is adjacent in memory.
// Out-of-image taps are skipped (the reference multiplies a zero: only an inf or NaN weight differs).
__device__ inline void pixel_of(idx_t i, idx_t C, idx_t H, idx_t W, int cl, idx_t& n, idx_t& c, idx_t& h, idx_t& w) {
    if (cl) { c = i % C; i /= C; w = i % W; i /= W; h = i % H; n = i / H; }
    else { w = i % W; i /= W; h = i % H; i /= H; c = i % C; n = i / C; }
}

extern "C" __global__ void depthwise_forward(const scalar_t* x, const scalar_t* wt, const scalar_t* bias, scalar_t* out,
                                             idx_t N, idx_t C, idx_t H, idx_t W, idx_t sN, idx_t sC, idx_t sH, idx_t sW,
                                             idx_t M, idx_t OH, idx_t OW, int KH, int KW, int SH, int SW, int PH, int PW,
                                             int DH, int DW, int has_bias, int cl) {
    idx_t O = C * M, total = N * O * OH * OW;
    GRID_STRIDE_LOOP(i, total) {
        idx_t n, o, oh, ow;
        pixel_of(i, O, OH, OW, cl, n, o, oh, ow);
        const scalar_t* xc = x + n * sN + (o / M) * sC;
        const scalar_t* wo = wt + o * KH * KW;
        acc_t acc = 0;
        for (int kh = 0; kh < KH; ++kh) {
            idx_t h = oh * SH - PH + (idx_t)kh * DH;
            if (h < 0 || h >= H) continue;
            for (int kw = 0; kw < KW; ++kw) {
                idx_t w = ow * SW - PW + (idx_t)kw * DW;
                if (w < 0 || w >= W) continue;
                acc += to_acc(xc[h * sH + w * sW]) * to_acc(wo[kh * KW + kw]);
            }
        }
        out[i] = to_scalar(has_bias ? acc + to_acc(bias[o]) : acc);
    }
}

// Depthwise dx, dense (NHWC when cl, else NCHW): each input pixel gathers g * w over the windows
// and the M output channels that read it (no atomics). g is read through its element strides.
extern "C" __global__ void depthwise_backward_input(const scalar_t* g, const scalar_t* wt, scalar_t* dx, idx_t N, idx_t C,
                                                    idx_t H, idx_t W, idx_t gN, idx_t gO, idx_t gH, idx_t gW, idx_t M,
                                                    idx_t OH, idx_t OW, int KH, int KW, int SH, int SW, int PH, int PW,
                                                    int DH, int DW, int cl) {
    idx_t total = N * C * H * W;
    GRID_STRIDE_LOOP(i, total) {
        idx_t n, c, h, w;
        pixel_of(i, C, H, W, cl, n, c, h, w);
        acc_t acc = 0;
        for (int kh = 0; kh < KH; ++kh) {
            idx_t oh = window_of(h, PH, kh, DH, SH, OH);
            if (oh < 0) continue;
            for (int kw = 0; kw < KW; ++kw) {
                idx_t ow = window_of(w, PW, kw, DW, SW, OW);
                if (ow < 0) continue;
                for (idx_t o = c * M; o < (c + 1) * M; ++o)
                    acc += to_acc(g[n * gN + o * gO + oh * gH + ow * gW]) * to_acc(wt[(o * KH + kh) * KW + kw]);
            }
        }
        dx[i] = to_scalar(acc);
    }
}

// Depthwise dw, level 1 of a two-pass reduction: partial t of tap (o, kh, kw) sums g * x over the
// output rows j = s, s+S, s+2S, ... of the N*OH rows (n, oh), each row whole (no division in the
// inner loop; a row whose input row is padding is skipped); the caller sums the S partials.
// Partials are laid out (S, KH*KW, O) when cl (adjacent threads: adjacent channels, adjacent in
// channels-last memory), else (O, KH*KW, S).
extern "C" __global__ void depthwise_backward_weight(const scalar_t* g, const scalar_t* x, acc_t* part, idx_t N, idx_t C,
                                                     idx_t H, idx_t W, idx_t sN, idx_t sC, idx_t sH, idx_t sW,
                                                     idx_t gN, idx_t gO, idx_t gH, idx_t gW, idx_t M, idx_t OH,
                                                     idx_t OW, int KH, int KW, int SH, int SW, int PH, int PW,
                                                     int DH, int DW, idx_t S, int cl) {
    idx_t O = C * M, KK = (idx_t)KH * KW, R = N * OH;
    GRID_STRIDE_LOOP(t, O * KK * S) {
        idx_t o, k, s;
        if (cl) { o = t % O; k = (t / O) % KK; s = t / (O * KK); }
        else { s = t % S; k = (t / S) % KK; o = t / (S * KK); }
        idx_t kh = k / KW, kw = k % KW;
        // the output columns whose tap kw lands inside the image: ow in [lo, hi)
        idx_t off = kw * DW - PW;
        idx_t lo = off >= 0 ? 0 : (-off + SW - 1) / SW;
        idx_t hi = (W - 1 - off) < 0 ? 0 : (W - 1 - off) / SW + 1;
        hi = hi < OW ? hi : OW;
        acc_t acc = 0;
        for (idx_t j = s; j < R; j += S) {
            idx_t n = j / OH, oh = j % OH;
            idx_t h = oh * SH - PH + kh * DH;
            if (h < 0 || h >= H) continue;
            const scalar_t* gr = g + n * gN + o * gO + oh * gH;
            const scalar_t* xr = x + n * sN + (o / M) * sC + h * sH;
            for (idx_t ow = lo; ow < hi; ++ow)
                acc += to_acc(gr[ow * gW]) * to_acc(xr[(ow * SW + off) * sW]);
        }
        part[t] = acc;
    }
}

// Batch norm over a dense array whose channel of memory element i is (i / inner) % C
// (inner = 1 for channels-last, H*W for NCHW); M = values per channel.
__device__ inline idx_t channel_elem(idx_t m, idx_t c, idx_t C, idx_t inner) {
    return (m / inner) * (C * inner) + c * inner + m % inner;  // m-th value of channel c
}

// Statistics, level 1: S slices per channel; partial p = c*S + s runs Welford's update over the
// values m = s, s+S, s+2S, ... of channel c. Adjacent threads read adjacent memory: adjacent
// channels for channels-last (inner == 1), adjacent slices of one channel otherwise.
__device__ inline void slice_of(idx_t t, idx_t C, idx_t S, idx_t inner, idx_t& c, idx_t& s) {
    if (inner == 1) { c = t % C; s = t / C; } else { s = t % S; c = t / S; }
}

extern "C" __global__ void bn_partial_stats(const scalar_t* x, acc_t* pmean, acc_t* pm2, acc_t* pcount, idx_t C, idx_t inner,
                                            idx_t M, idx_t S) {
    GRID_STRIDE_LOOP(t, S * C) {
        idx_t c, s;
        slice_of(t, C, S, inner, c, s);
        acc_t mean = 0, m2 = 0, count = 0;
        for (idx_t m = s; m < M; m += S) {
            acc_t v = to_acc(x[channel_elem(m, c, C, inner)]);
            count += 1;
            acc_t d = v - mean;
            mean += d / count;
            m2 += d * (v - mean);
        }
        pmean[c * S + s] = mean; pm2[c * S + s] = m2; pcount[c * S + s] = count;
    }
}

// Statistics, level 2 and up: out[c*S2 + j] merges the partials c*S + j*R ... c*S + min(S, (j+1)*R) - 1
// (Chan et al.'s pairwise update); called until one partial per channel is left.
extern "C" __global__ void bn_merge(const acc_t* pmean, const acc_t* pm2, const acc_t* pcount, acc_t* omean, acc_t* om2,
                                    acc_t* ocount, idx_t C, idx_t S, idx_t S2, idx_t R) {
    GRID_STRIDE_LOOP(o, C * S2) {
        idx_t c = o / S2, j = o % S2;
        idx_t end = (j + 1) * R < S ? (j + 1) * R : S;
        acc_t n = 0, mu = 0, m2 = 0;
        for (idx_t p = c * S + j * R; p < c * S + end; ++p) {
            acc_t nb = pcount[p];
            if (nb == 0) continue;
            acc_t d = pmean[p] - mu, tot = n + nb;
            mu += d * (nb / tot);
            m2 += pm2[p] + d * d * (n * nb / tot);
            n = tot;
        }
        omean[o] = mu; om2[o] = m2; ocount[o] = n;
    }
}

// y = (x - mean[c]) * scale[c] + shift[c], x and y dense with the same layout. Centring first keeps
// float32 precise when |mean| >> std (x * scale + shift' would cancel).
extern "C" __global__ void bn_apply(const scalar_t* x, scalar_t* y, const acc_t* mean, const acc_t* scale,
                                    const acc_t* shift, idx_t C, idx_t inner, idx_t total) {
    GRID_STRIDE_LOOP(i, total) {
        idx_t c = (i / inner) % C;
        y[i] = to_scalar((to_acc(x[i]) - mean[c]) * scale[c] + shift[c]);
    }
}

// Partial per-channel sums of g and g * (x - mean), g and x dense with the same layout; slices
// and partials as in bn_partial_stats, summed per channel afterwards.
extern "C" __global__ void bn_partial_grad_sums(const scalar_t* g, const scalar_t* x, const acc_t* mean, acc_t* psum_g,
                                                acc_t* psum_gxc, idx_t C, idx_t inner, idx_t M, idx_t S) {
    GRID_STRIDE_LOOP(t, S * C) {
        idx_t c, s;
        slice_of(t, C, S, inner, c, s);
        acc_t sg = 0, sgx = 0, mu = mean[c];
        for (idx_t m = s; m < M; m += S) {
            idx_t e = channel_elem(m, c, C, inner);
            acc_t gv = to_acc(g[e]);
            sg += gv;
            sgx += gv * (to_acc(x[e]) - mu);
        }
        psum_g[c * S + s] = sg; psum_gxc[c * S + s] = sgx;
    }
}

// dx = (g + (x - mean) * c1[c] + c0[c]) * scale[c]: the training-mode batch-norm gradient with
// c1 = -invstd^2 * sum(g*(x-mean)) / M and c0 = -sum(g) / M.
extern "C" __global__ void bn_backward_apply(const scalar_t* g, const scalar_t* x, const acc_t* mean, const acc_t* c1,
                                             const acc_t* c0, const acc_t* scale, scalar_t* dx, idx_t C, idx_t inner,
                                             idx_t total) {
    GRID_STRIDE_LOOP(i, total) {
        idx_t c = (i / inner) % C;
        dx[i] = to_scalar((to_acc(g[i]) + (to_acc(x[i]) - mean[c]) * c1[c] + c0[c]) * scale[c]);
    }
}

// out (N, C, OH, OW) dense, argmax offset idx = kh*KW + kw of the first maximum; a NaN wins and
// propagates (PyTorch's rule); padding reads as `pad` (-inf). x given by its element strides.
extern "C" __global__ void max_pool_forward(const scalar_t* x, scalar_t* out, int* idx, idx_t N, idx_t C, idx_t H, idx_t W,
                                            idx_t sN, idx_t sC, idx_t sH, idx_t sW, idx_t OH, idx_t OW,
                                            int KH, int KW, int SH, int SW, int PH, int PW, acc_t pad) {
    idx_t total = N * C * OH * OW;
    GRID_STRIDE_LOOP(i, total) {
        idx_t r = i;
        idx_t ow = r % OW; r /= OW;
        idx_t oh = r % OH; r /= OH;
        idx_t c = r % C; idx_t n = r / C;
        acc_t best = 0;
        int bk = 0;
        for (int k = 0; k < KH * KW; ++k) {
            idx_t h = oh * SH - PH + k / KW, w = ow * SW - PW + k % KW;
            acc_t v = (h >= 0 && h < H && w >= 0 && w < W) ? to_acc(x[n * sN + c * sC + h * sH + w * sW]) : pad;
            if (k == 0 || v > best || is_nan(v)) { best = v; bk = k; }
        }
        out[i] = to_scalar(best);  // exact: every float16 is a float
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
        acc_t acc = 0;
        for (int kh = 0; kh < KH; ++kh) {
            idx_t oh = window_of(h, PH, kh, 1, SH, OH);
            if (oh < 0) continue;
            for (int kw = 0; kw < KW; ++kw) {
                idx_t ow = window_of(w, PW, kw, 1, SW, OW);
                if (ow < 0) continue;
                idx_t o = (nc * OH + oh) * OW + ow;
                if (idx[o] == kh * KW + kw) acc += to_acc(g[o]);
            }
        }
        dx[i] = to_scalar(acc);
    }
}

// out = relu(x + y) and mask = out > 0 in one pass; all dense with the same layout. NaN propagates.
extern "C" __global__ void add_relu_forward(const scalar_t* x, const scalar_t* y, scalar_t* out, bool* mask, idx_t total) {
    GRID_STRIDE_LOOP(i, total) {
        acc_t s = to_acc(to_scalar(to_acc(x[i]) + to_acc(y[i])));  // rounded to scalar_t once, as NumPy
        out[i] = to_scalar((s > 0 || is_nan(s)) ? s : (acc_t)0);
        mask[i] = s > 0;
    }
}

// d = g where mask else 0 (the ReLU / add+ReLU backward); dense with the same layout.
extern "C" __global__ void mask_grad(const scalar_t* g, const bool* mask, scalar_t* d, idx_t total) {
    GRID_STRIDE_LOOP(i, total) { d[i] = mask[i] ? g[i] : to_scalar(0); }
}

// Row r of logits (N, C) dense: prob = softmax, loss = (1-eps) * nll + eps * mean_c(-log p).
// A target outside [0, C) gives a NaN loss for its row (no host sync to check it; see functional/loss.py).
extern "C" __global__ void softmax_xent_forward(const scalar_t* logits, const long long* target, scalar_t* prob, scalar_t* loss,
                                                idx_t N, idx_t C, acc_t eps) {
    GRID_STRIDE_LOOP(r, N) {
        const scalar_t* z = logits + r * C;
        acc_t mx = to_acc(z[0]);
        for (idx_t c = 1; c < C; ++c) { acc_t v = to_acc(z[c]); mx = (v > mx || is_nan(v)) ? v : mx; }
        acc_t s = 0, zsum = 0;
        for (idx_t c = 0; c < C; ++c) { s += exp(to_acc(z[c]) - mx); zsum += to_acc(z[c]) - mx; }
        acc_t lse = log(s);
        for (idx_t c = 0; c < C; ++c) prob[r * C + c] = to_scalar(exp(to_acc(z[c]) - mx) / s);
        long long t = target[r];
        if (t < 0 || t >= C) { loss[r] = to_scalar(log((acc_t)-1)); continue; }  // NaN
        acc_t nll = lse - (to_acc(z[t]) - mx);
        // eps == 0 skips the smoothing term: a -inf logit makes zsum -inf, and 0 * inf is NaN.
        loss[r] = to_scalar(eps == 0 ? nll : (1 - eps) * nll + eps * (lse - zsum / C));
    }
}

// d (N, C) = (prob - (1-eps) * onehot(target) - eps/C) * scale[r * per_row]
// (per_row = 1: one scale per row, reduction 'none'; 0: one scale for all).
extern "C" __global__ void softmax_xent_backward(const scalar_t* prob, const long long* target, const scalar_t* scale,
                                                 scalar_t* d, idx_t N, idx_t C, acc_t eps, int per_row) {
    GRID_STRIDE_LOOP(i, N * C) {
        idx_t r = i / C, c = i % C;
        acc_t v = to_acc(prob[i]) - eps / C - (c == target[r] ? 1 - eps : (acc_t)0);
        d[i] = to_scalar(v * to_acc(scale[per_row ? r : 0]));
    }
}
