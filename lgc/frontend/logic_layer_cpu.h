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

// The consumers of each input feature, in CSR form: the edges start[k] .. start[k + 1] - 1 of
// feature k are 2 i (k is operand a of gate i) or 2 i + 1 (operand b), in increasing gate order,
// so a gate reading one node twice has both edges in that node's list. O(in_dim + out_dim).
struct Consumers {
    std::vector<int64_t> start, edge;
    void build(const int64_t* a, const int64_t* b, int64_t in_dim, int64_t out_dim) {
        start.assign((size_t)in_dim + 1, 0);
        edge.resize((size_t)(2 * out_dim));
        for (int64_t i = 0; i < out_dim; ++i) {
            ++start[(size_t)a[i] + 1];
            ++start[(size_t)b[i] + 1];
        }
        for (int64_t k = 0; k < in_dim; ++k) start[(size_t)k + 1] += start[(size_t)k];
        std::vector<int64_t>& fill = bound;  // free until the chunk bounds are computed
        fill.assign(start.begin(), start.end() - 1);
        for (int64_t i = 0; i < out_dim; ++i) {
            edge[(size_t)fill[(size_t)a[i]]++] = 2 * i;
            edge[(size_t)fill[(size_t)b[i]]++] = 2 * i + 1;
        }
    }
    std::vector<int64_t> bound;  // scratch: fill positions, then chunk bounds
};

// Backward. grad_c [out_dim, 4] is overwritten with dL/dc; grad_x [in_dim, batch] (may be null when
// the input needs no gradient) is overwritten with dL/dx. A gate whose operands are the same node
// contributes df/dp + df/dq to that node (not 2 df/dp).
//
// With grad_x the work is a gather over input features: a chunk owns a range of features k and,
// for each, walks its consumer edges, accumulating grad_x[k] over the whole batch (a row that
// stays in L1) and finishing that edge's share of the gate's grad_c (operand a: sums of g, g p and
// g p q; operand b: the sum of g q). Every output element is written by exactly one chunk, so no
// thread waits for or merges another's partial sums, and each sum runs over the batch in one fixed
// order: results do not depend on the thread count. Per gate it reads grad_y twice and each operand
// once (4 rows), per feature x[k] once and writes grad_x[k] once. Chunks split the features so
// that each holds about the same number of edges. Without grad_x, chunks split the gates.
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
    thread_local Consumers consumers;  // reused: no allocation once the largest layer has been seen
    consumers.build(a, b, in_dim, out_dim);
    const int64_t* start = consumers.start.data();
    const int64_t* edge = consumers.edge.data();
    // cost of features 0..k-1 ~ start[k] + k (edges, plus one row read and write per feature)
    const int64_t total = start[in_dim] + in_dim;
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(chunk_count(total, nthreads, 256), in_dim));
    std::vector<int64_t>& bound = consumers.bound;
    bound.assign((size_t)chunks + 1, in_dim);
    bound[0] = 0;
    for (int64_t t = 1, k = 0; t < chunks; ++t) {
        const int64_t target = total * t / chunks;
        while (k < in_dim && start[k] + k < target) ++k;
        bound[(size_t)t] = k;
    }
    const int64_t* bounds = bound.data();
    ChunkPool::get().run(chunks, nthreads, [&](int64_t chunk) {
        for (int64_t k = bounds[chunk]; k < bounds[chunk + 1]; ++k) {
            const T* xk = x + k * batch;
            T* dx = grad_x + k * batch;
            std::fill(dx, dx + batch, T(0));
            for (int64_t e = start[k]; e < start[k + 1]; ++e) {
                const int64_t i = edge[e] >> 1;
                const T* g = grad_y + i * batch;
                if ((edge[e] & 1) == 0) {  // k is operand a (p); the other operand is q
                    const T* q = x + b[i] * batch;
                    const T c1 = c[4 * i + 1], c3 = c[4 * i + 3];
                    T s0 = 0, s1 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s3)
                    for (int64_t j = 0; j < batch; ++j) {
                        const T gj = g[j], gp = gj * xk[j];
                        s0 += gj; s1 += gp; s3 += gp * q[j];
                        dx[j] += gj * (c1 + c3 * q[j]);
                    }
                    grad_c[4 * i] = s0; grad_c[4 * i + 1] = s1; grad_c[4 * i + 3] = s3;
                } else {  // k is operand b (q); the other operand is p
                    const T* p = x + a[i] * batch;
                    const T c2 = c[4 * i + 2], c3 = c[4 * i + 3];
                    T s2 = 0;
#pragma omp simd reduction(+ : s2)
                    for (int64_t j = 0; j < batch; ++j) {
                        const T gj = g[j];
                        s2 += gj * xk[j];
                        dx[j] += gj * (c2 + c3 * p[j]);
                    }
                    grad_c[4 * i + 2] = s2;
                }
            }
        }
    });
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

// One gate's softmax over its 16 logits and its coefficients c = s @ relax [16, 4]; s (the
// probabilities) is kept for the backward, so the exponentials run once per step. NaN logits (a
// diverged run) or an infinite maximum give NaN, as torch.softmax does, never a quiet number.
template <typename T>
inline void softmax_gate(const T* w, const T* relax, T* s, T* c) {
    alignas(64) T e[16];
    T mx = w[0];
    bool nan = false;
    for (int k = 0; k < 16; ++k) {
        nan |= std::isnan(w[k]);
        mx = w[k] > mx ? w[k] : mx;
    }
    for (int k = 0; k < 16; ++k) e[k] = w[k] - mx;
    exp_nonpositive(e, e);
    T sum = 0;
    for (int k = 0; k < 16; ++k) sum += e[k];
    const T inv = (nan || !std::isfinite(mx)) ? std::numeric_limits<T>::quiet_NaN() : T(1) / sum;
    T c0 = 0, c1 = 0, c2 = 0, c3 = 0;
    for (int k = 0; k < 16; ++k) {
        const T sk = e[k] * inv;
        s[k] = sk;
        c0 += sk * relax[4 * k]; c1 += sk * relax[4 * k + 1]; c2 += sk * relax[4 * k + 2]; c3 += sk * relax[4 * k + 3];
    }
    c[0] = c0; c[1] = c1; c[2] = c2; c[3] = c3;
}

// Gate coefficients c [out_dim, 4] = softmax(w [out_dim, 16]) @ relax [16, 4]; probs [out_dim, 16]
// receives softmax(w) for gate_coefficients_backward. Chunks split the gates.
template <typename T>
void gate_coefficients(const T* w, const T* relax, int64_t out_dim, T* c, T* probs, int nthreads) {
    if (out_dim * 16 <= kParallelMin) nthreads = 1;
    const int64_t chunks = chunk_count(out_dim, nthreads, 256), per = (out_dim + chunks - 1) / chunks;
    ChunkPool::get().run(chunks, nthreads, [&](int64_t chunk) {
        const int64_t end = std::min(out_dim, (chunk + 1) * per);
        for (int64_t i = chunk * per; i < end; ++i) softmax_gate(w + 16 * i, relax, probs + 16 * i, c + 4 * i);
    });
}

// grad_w from grad_c and the forward's probabilities s: with d = relax @ grad_c per gate,
// grad_w[k] = s[k] (d[k] - sum_l s[l] d[l]).
template <typename T>
void gate_coefficients_backward(const T* probs, const T* relax, const T* grad_c, int64_t out_dim, T* grad_w,
                                int nthreads) {
    if (out_dim * 16 <= kParallelMin) nthreads = 1;
    const int64_t chunks = chunk_count(out_dim, nthreads, 256), per = (out_dim + chunks - 1) / chunks;
    ChunkPool::get().run(chunks, nthreads, [&](int64_t chunk) {
        const int64_t end = std::min(out_dim, (chunk + 1) * per);
        for (int64_t i = chunk * per; i < end; ++i) {
            const T* s = probs + 16 * i;
            const T g0 = grad_c[4 * i], g1 = grad_c[4 * i + 1], g2 = grad_c[4 * i + 2], g3 = grad_c[4 * i + 3];
            T d[16], mean = 0;
            for (int k = 0; k < 16; ++k) {
                d[k] = relax[4 * k] * g0 + relax[4 * k + 1] * g1 + relax[4 * k + 2] * g2 + relax[4 * k + 3] * g3;
                mean += s[k] * d[k];
            }
            T* out = grad_w + 16 * i;
            for (int k = 0; k < 16; ++k) out[k] = s[k] * (d[k] - mean);
        }
    });
}

}  // namespace lgc
