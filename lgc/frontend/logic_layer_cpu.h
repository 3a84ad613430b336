// Fused forward and backward of a layer of relaxed logic gates, on plain pointers (no torch).
//
// Layout is feature-major: x [in_dim, batch], y and grad_y [out_dim, batch], so gate i reads two
// contiguous rows x[a[i]] and x[b[i]] and the batch loop vectorises. c [out_dim, 4] holds each
// gate's relaxation coefficients: y = c0 + c1 p + c2 q + c3 p q (softmax(w) @ RELAX, computed by
// the caller, so shared-weight layers can reuse these kernels).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "chunk_pool.h"

namespace lgc {

// Work below this many gate-samples runs on the calling thread (a wake-up costs more).
constexpr int64_t kParallelMin = 16384;

// Split 0..n into about 4 chunks per thread (so a late helper still finds work) of >= min_size.
inline int64_t chunk_count(int64_t n, int nthreads, int64_t min_size) {
    int64_t chunks = std::min<int64_t>(4 * (int64_t)nthreads, (n + min_size - 1) / min_size);
    return std::max<int64_t>(1, chunks);
}

template <typename T>
void logic_forward(const T* x, int64_t batch, const int64_t* a, const int64_t* b, const T* c,
                   T* y, int64_t out_dim, int nthreads) {
    if (out_dim * batch <= kParallelMin) nthreads = 1;
    const int64_t chunks = chunk_count(out_dim, nthreads, 64), per = (out_dim + chunks - 1) / chunks;
    ChunkPool::get().run(chunks, nthreads, [&](int64_t chunk) {
        const int64_t end = std::min(out_dim, (chunk + 1) * per);
        for (int64_t i = chunk * per; i < end; ++i) {
            const T c0 = c[4 * i], c1 = c[4 * i + 1], c2 = c[4 * i + 2], c3 = c[4 * i + 3];
            const T* p = x + a[i] * batch;
            const T* q = x + b[i] * batch;
            T* out = y + i * batch;
#pragma omp simd
            for (int64_t j = 0; j < batch; ++j) out[j] = c0 + c2 * q[j] + p[j] * (c1 + c3 * q[j]);
        }
    });
}

// Backward. grad_c [out_dim, 4] is overwritten with dL/dc; grad_x [in_dim, batch] (may be null when
// the input needs no gradient) is overwritten with dL/dx. A gate whose operands are the same node
// contributes df/dp + df/dq to that node (not 2 df/dp).
//
// With grad_x, chunks split the batch (each owns grad_x's columns lo..hi, so the scatter needs no
// atomics) and each keeps partial sums of grad_c, reduced at the end; without it, chunks split
// the gates.
template <typename T>
void logic_backward(const T* x, int64_t in_dim, int64_t batch, const int64_t* a, const int64_t* b,
                    const T* c, const T* grad_y, int64_t out_dim, T* grad_x, T* grad_c, int nthreads) {
    if (batch == 0) {
        std::fill(grad_c, grad_c + 4 * out_dim, T(0));
        return;  // grad_x is [in_dim, 0]: nothing to write
    }
    if (out_dim * batch <= kParallelMin) nthreads = 1;
    if (grad_x == nullptr) {
        const int64_t chunks = chunk_count(out_dim, nthreads, 64), per = (out_dim + chunks - 1) / chunks;
        ChunkPool::get().run(chunks, nthreads, [&](int64_t chunk) {
            const int64_t end = std::min(out_dim, (chunk + 1) * per);
            for (int64_t i = chunk * per; i < end; ++i) {
                const T* p = x + a[i] * batch;
                const T* q = x + b[i] * batch;
                const T* g = grad_y + i * batch;
                T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
                for (int64_t j = 0; j < batch; ++j) {
                    s0 += g[j];
                    s1 += g[j] * p[j];
                    s2 += g[j] * q[j];
                    s3 += g[j] * p[j] * q[j];
                }
                grad_c[4 * i] = s0; grad_c[4 * i + 1] = s1; grad_c[4 * i + 2] = s2; grad_c[4 * i + 3] = s3;
            }
        });
        return;
    }
    std::memset(grad_x, 0, sizeof(T) * in_dim * batch);
    // Column blocks of a multiple of 16 samples, about two per thread.
    int64_t nt = chunk_count(batch, nthreads, 16);
    nt = nthreads == 1 ? 1 : std::min<int64_t>(nt, 2 * (int64_t)nthreads);
    const int64_t block = ((batch + nt - 1) / nt + 15) / 16 * 16;
    nt = (batch + block - 1) / block;
    std::vector<double> partial(nt > 1 ? (size_t)(nt - 1) * out_dim * 4 : 0);
    ChunkPool::get().run(nt, nthreads, [&](int64_t t) {
        const int64_t lo = t * block, hi = std::min(batch, lo + block);
        // block 0 writes grad_c directly (as T), the others their double partials
        double* mine = t > 0 ? partial.data() + (size_t)(t - 1) * out_dim * 4 : nullptr;
        for (int64_t i = 0; i < out_dim && lo < hi; ++i) {
            const T c1 = c[4 * i + 1], c2 = c[4 * i + 2], c3 = c[4 * i + 3];
            const T* p = x + a[i] * batch;
            const T* q = x + b[i] * batch;
            const T* g = grad_y + i * batch;
            T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            if (a[i] == b[i]) {
                T* dx = grad_x + a[i] * batch;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
                for (int64_t j = lo; j < hi; ++j) {
                    const T gj = g[j], pj = p[j];
                    s0 += gj; s1 += gj * pj; s2 += gj * pj; s3 += gj * pj * pj;
                    dx[j] += gj * (c1 + c2 + c3 * (pj + pj));
                }
            } else {
                T* dp = grad_x + a[i] * batch;
                T* dq = grad_x + b[i] * batch;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
                for (int64_t j = lo; j < hi; ++j) {
                    const T gj = g[j], pj = p[j], qj = q[j];
                    s0 += gj; s1 += gj * pj; s2 += gj * qj; s3 += gj * pj * qj;
                    dp[j] += gj * (c1 + c3 * qj);
                    dq[j] += gj * (c2 + c3 * pj);
                }
            }
            if (mine) {
                mine[4 * i] = s0; mine[4 * i + 1] = s1; mine[4 * i + 2] = s2; mine[4 * i + 3] = s3;
            } else {
                grad_c[4 * i] = s0; grad_c[4 * i + 1] = s1; grad_c[4 * i + 2] = s2; grad_c[4 * i + 3] = s3;
            }
        }
    });
    if (nt > 1) {
        for (int64_t k = 0; k < out_dim * 4; ++k) {
            double s = grad_c[k];
            for (int64_t t = 1; t < nt; ++t) s += partial[(size_t)(t - 1) * out_dim * 4 + k];
            grad_c[k] = (T)s;
        }
    }
}

// exp(x) for x <= 0 (softmax after subtracting the max), 16 lanes at a time. float: Cephes' range
// reduction and polynomial (~1 ulp on the reduced range) in GCC/Clang vector types, so it compiles
// to SIMD code (the auto-vectoriser gives up on it); inputs below -87 give e^-87 instead of a
// denormal (a logit that far below the max has no visible mass). double: std::exp per lane, for
// gradcheck-grade accuracy.
typedef float f16v __attribute__((vector_size(64)));
typedef int32_t i16v __attribute__((vector_size(64)));

inline void exp_nonpositive(const float* x, float* out) {
    f16v v;
    std::memcpy(&v, x, sizeof v);
    const f16v lo = f16v{} - 87.0f;
    v = v < lo ? lo : v;
    const i16v ni = __builtin_convertvector(v * 1.44269504088896341f - 0.5f, i16v);  // round to nearest (x <= 0)
    const f16v n = __builtin_convertvector(ni, f16v);
    f16v r = v - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    f16v p = f16v{} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const i16v bits = (ni + 127) << 23;
    f16v scale;
    std::memcpy(&scale, &bits, sizeof scale);
    p = p * scale;
    std::memcpy(out, &p, sizeof p);
}

inline void exp_nonpositive(const double* x, double* out) {
    for (int l = 0; l < 16; ++l) out[l] = std::exp(x[l]);
}

// The softmax parts below run 16 gates at a time, one gate per vector lane (the logits of a block
// are transposed into [16 ops][16 gates]), so every step vectorises; cost O(out_dim * 16 * 4).
constexpr int kLanes = 16;  // = the lanes of exp_nonpositive

template <typename T>
inline void load_block(const T* w, int64_t i0, int nb, T (&wt)[16][kLanes], T (&mx)[kLanes], bool (&ok)[kLanes]) {
    for (int l = 0; l < kLanes; ++l)
        for (int k = 0; k < 16; ++k) wt[k][l] = l < nb ? w[(i0 + l) * 16 + k] : T(0);
    for (int l = 0; l < kLanes; ++l) {
        bool good = true;
        for (int k = 0; k < 16; ++k) good &= !std::isnan(wt[k][l]);
        ok[l] = good;  // NaN logits (a diverged run) give NaN, as torch.softmax does, never a quiet number
    }
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) mx[l] = wt[0][l];
    for (int k = 1; k < 16; ++k) {
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) mx[l] = std::max(mx[l], wt[k][l]);
    }
    for (int l = 0; l < kLanes; ++l) ok[l] = ok[l] && std::isfinite(mx[l]);
}

// Gate coefficients c [out_dim, 4] = softmax(w [out_dim, 16]) @ relax [16, 4].
template <typename T>
void gate_coefficients(const T* w, const T* relax, int64_t out_dim, T* c, int nthreads) {
    const int64_t blocks = (out_dim + kLanes - 1) / kLanes;
    for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t i0 = blk * kLanes;
        const int nb = (int)std::min<int64_t>(kLanes, out_dim - i0);
        T wt[16][kLanes], mx[kLanes], sum[kLanes] = {}, acc[4][kLanes] = {};
        bool ok[kLanes];
        load_block(w, i0, nb, wt, mx, ok);
        for (int k = 0; k < 16; ++k) {
            const T r0 = relax[4 * k], r1 = relax[4 * k + 1], r2 = relax[4 * k + 2], r3 = relax[4 * k + 3];
            T ex[kLanes];
            for (int l = 0; l < kLanes; ++l) ex[l] = wt[k][l] - mx[l];
            exp_nonpositive(ex, ex);
#pragma omp simd
            for (int l = 0; l < kLanes; ++l) {
                const T e = ex[l];
                sum[l] += e;
                acc[0][l] += e * r0;
                acc[1][l] += e * r1;
                acc[2][l] += e * r2;
                acc[3][l] += e * r3;
            }
        }
        for (int l = 0; l < nb; ++l) {
            const T scale = ok[l] ? T(1) / sum[l] : std::numeric_limits<T>::quiet_NaN();
            for (int r = 0; r < 4; ++r) c[4 * (i0 + l) + r] = acc[r][l] * scale;
        }
    }
}

// grad_w from grad_c: with s = softmax(w) and d = relax @ grad_c per gate,
// grad_w[k] = s[k] (d[k] - sum_l s[l] d[l]).
template <typename T>
void gate_coefficients_backward(const T* w, const T* relax, const T* grad_c, int64_t out_dim, T* grad_w,
                                int nthreads) {
    const int64_t blocks = (out_dim + kLanes - 1) / kLanes;
    for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t i0 = blk * kLanes;
        const int nb = (int)std::min<int64_t>(kLanes, out_dim - i0);
        T wt[16][kLanes], mx[kLanes], sum[kLanes] = {}, dot[kLanes] = {}, gc[4][kLanes], d[16][kLanes];
        bool ok[kLanes];
        load_block(w, i0, nb, wt, mx, ok);
        for (int l = 0; l < kLanes; ++l)
            for (int r = 0; r < 4; ++r) gc[r][l] = l < nb ? grad_c[4 * (i0 + l) + r] : T(0);
        for (int k = 0; k < 16; ++k) {
            const T r0 = relax[4 * k], r1 = relax[4 * k + 1], r2 = relax[4 * k + 2], r3 = relax[4 * k + 3];
            T ex[kLanes];
            for (int l = 0; l < kLanes; ++l) ex[l] = wt[k][l] - mx[l];
            exp_nonpositive(ex, ex);
#pragma omp simd
            for (int l = 0; l < kLanes; ++l) {
                const T e = ex[l];
                const T dk = r0 * gc[0][l] + r1 * gc[1][l] + r2 * gc[2][l] + r3 * gc[3][l];
                wt[k][l] = e;
                d[k][l] = dk;
                sum[l] += e;
                dot[l] += e * dk;
            }
        }
        for (int l = 0; l < nb; ++l) {
            const T inv = ok[l] ? T(1) / sum[l] : std::numeric_limits<T>::quiet_NaN();
            const T mean = dot[l] * inv;
            for (int k = 0; k < 16; ++k) grad_w[16 * (i0 + l) + k] = wt[k][l] * inv * (d[k][l] - mean);
        }
    }
}

}  // namespace lgc
