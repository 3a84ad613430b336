// Fused forward and backward of a layer of relaxed logic gates, on plain pointers (no torch).
//
// Layout is feature-major: x [in_dim, batch], y and grad_y [out_dim, batch], so gate i reads two
// contiguous rows x[a[i]] and x[b[i]] and the batch loop vectorises. c [out_dim, 4] holds each
// gate's relaxation coefficients: y = c0 + c1 p + c2 q + c3 p q (softmax(w) @ RELAX, computed by
// the caller, so shared-weight layers can reuse these kernels).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lgc {

template <typename T>
void logic_forward(const T* x, int64_t batch, const int64_t* a, const int64_t* b, const T* c,
                   T* y, int64_t out_dim, int nthreads) {
#pragma omp parallel for schedule(static) num_threads(nthreads) if (out_dim * batch > 16384)
    for (int64_t i = 0; i < out_dim; ++i) {
        const T c0 = c[4 * i], c1 = c[4 * i + 1], c2 = c[4 * i + 2], c3 = c[4 * i + 3];
        const T* p = x + a[i] * batch;
        const T* q = x + b[i] * batch;
        T* out = y + i * batch;
#pragma omp simd
        for (int64_t j = 0; j < batch; ++j) out[j] = c0 + c2 * q[j] + p[j] * (c1 + c3 * q[j]);
    }
}

// Backward. grad_c [out_dim, 4] is overwritten with dL/dc; grad_x [in_dim, batch] (may be null when
// the input needs no gradient) is overwritten with dL/dx. A gate whose operands are the same node
// contributes df/dp + df/dq to that node (not 2 df/dp).
//
// With grad_x, threads split the batch (each owns grad_x's columns lo..hi, so the scatter needs no
// atomics) and each keeps partial sums of grad_c, reduced at the end; without it, threads split
// the gates.
template <typename T>
void logic_backward(const T* x, int64_t in_dim, int64_t batch, const int64_t* a, const int64_t* b,
                    const T* c, const T* grad_y, int64_t out_dim, T* grad_x, T* grad_c, int nthreads) {
    if (grad_x == nullptr) {
#pragma omp parallel for schedule(static) num_threads(nthreads) if (out_dim * batch > 16384)
        for (int64_t i = 0; i < out_dim; ++i) {
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
        return;
    }
    std::memset(grad_x, 0, sizeof(T) * in_dim * batch);
    // Column blocks: a multiple of 16 samples each, at most one per thread.
    int64_t nt = std::max<int64_t>(1, std::min<int64_t>(nthreads, (batch + 15) / 16));
    if (out_dim * batch <= 16384) nt = 1;
    const int64_t block = ((batch + nt - 1) / nt + 15) / 16 * 16;
    nt = (batch + block - 1) / block;
    std::vector<double> partial(nt > 1 ? (size_t)(nt - 1) * out_dim * 4 : 0);
    // a loop over blocks (not one block per thread id), so every block runs however many threads come
#pragma omp parallel for schedule(static, 1) num_threads((int)nt) if (nt > 1)
    for (int64_t t = 0; t < nt; ++t) {
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
    }
    if (nt > 1) {
        for (int64_t k = 0; k < out_dim * 4; ++k) {
            double s = grad_c[k];
            for (int64_t t = 1; t < nt; ++t) s += partial[(size_t)(t - 1) * out_dim * 4 + k];
            grad_c[k] = (T)s;
        }
    }
}

}  // namespace lgc
