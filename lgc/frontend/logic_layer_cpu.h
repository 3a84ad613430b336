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
#include <type_traits>
#include <vector>

#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "chunk_pool.h"

namespace lgc {

// Work below this many gate-samples runs on the calling thread (a wake-up costs more).
constexpr int64_t kParallelMin = 16384;

// Split 0..n into about 16 chunks per thread of >= min_size. Many small chunks, because the caller
// waits only for chunks a helper has claimed: on a shared machine a helper descheduled in the
// middle of a chunk stalls the whole call, and the shorter its chunk the less likely that is
// (claiming one costs an atomic add, ~100 per layer call).
inline int64_t chunk_count(int64_t n, int nthreads, int64_t min_size) {
    int64_t chunks = std::min<int64_t>(16 * (int64_t)nthreads, (n + min_size - 1) / min_size);
    return std::max<int64_t>(1, chunks);
}

#ifdef __AVX2__
// Lanes 8-n..7 set (0 < n < 8). A row whose length is not a multiple of 8 (and >= 8) ends with one
// full vector at batch - 8 that overlaps the previous one, its first 8 - n lanes already done: a
// recomputed output is the same value, and a sum takes only the new lanes. (A scalar tail costs as
// much as 7 vector iterations, a quarter of a row at batch 100; AVX2's masked store is microcoded
// on AMD.)
inline __m256 last_lanes8(int64_t n) {
    alignas(32) static const int32_t bits[16] = {0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1};
    return _mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + n)));
}
#endif

// y [out_dim, batch] of x [in_dim, batch]; rows stride apart (default: batch) in x and y.
// The forward prefetches the first kForwardPrefetchLines lines of the operand rows kForwardPrefetch
// gates ahead: at batch 100 (whole rows) 15-25% faster at one and two threads (5 x 8000 gates,
// torch-free harness); at batch 1024 the first 8 of 64 lines neither help nor hurt, whole rows cost
// 10% at one thread (the hardware prefetcher follows a row once it is started).
constexpr int64_t kForwardPrefetch = 4, kForwardPrefetchLines = 8;

template <typename T>
void logic_forward(const T* x, int64_t batch, const int64_t* a, const int64_t* b, const T* c,
                   T* y, int64_t out_dim, int nthreads, int64_t stride = -1) {
    if (stride < 0) stride = batch;
    if (out_dim * batch <= kParallelMin) nthreads = 1;
    const int64_t chunks = chunk_count(out_dim, nthreads, 64), per = (out_dim + chunks - 1) / chunks;
    ChunkPool::get().run(chunks, nthreads, [&](int64_t chunk) {
        const int64_t end = std::min(out_dim, (chunk + 1) * per);
        for (int64_t i = chunk * per; i < end; ++i) {
            if (i + kForwardPrefetch < end) {  // the first lines of the operand rows of a gate a few ahead
                const T* pn = x + a[i + kForwardPrefetch] * stride;
                const T* qn = x + b[i + kForwardPrefetch] * stride;
                const int64_t upto = std::min<int64_t>(batch, kForwardPrefetchLines * 64 / (int64_t)sizeof(T));
                for (int64_t j = 0; j < upto; j += 64 / (int64_t)sizeof(T)) {
                    __builtin_prefetch(pn + j);
                    __builtin_prefetch(qn + j);
                }
            }
            const T c0 = c[4 * i], c1 = c[4 * i + 1], c2 = c[4 * i + 2], c3 = c[4 * i + 3];
            const T* p = x + a[i] * stride;
            const T* q = x + b[i] * stride;
            T* out = y + i * stride;
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

// One consumer edge of input feature k in the gather backward: gate i, the gate's grad_y row, its
// other operand's row, and the coefficients of dy/dx[k] = lin + c3 * other.
template <typename T>
struct GatherEdge {
    int64_t gate;
    int role;  // 0: k is operand a of the gate, 1: operand b
    const T* g;
    const T* other;
    T lin, c3;
};

template <typename T>
inline GatherEdge<T> gather_edge(int64_t edge, const T* x, const int64_t* a, const int64_t* b, const T* c,
                                 const T* grad_y, int64_t stride) {
    const int64_t i = edge >> 1;
    const bool is_a = (edge & 1) == 0;  // k is operand a (p): other is q, dy/dp = c1 + c3 q; else c2 + c3 p
    return {i, is_a ? 0 : 1, grad_y + i * stride, x + (is_a ? b[i] : a[i]) * stride, c[4 * i + (is_a ? 1 : 2)], c[4 * i + 3]};
}

// Adds one or two edges' terms to grad_x[k] (dx) in one sweep over the batch and writes their share
// of grad_c: role 0 (k is operand a) the sums of g, g p and g p q; role 1 (operand b) the sum of
// g q. R2 = -1: no second edge. The per-element order (edge 1's term, then edge 2's) is that of
// walking the edges one at a time.
template <typename T, int R1, int R2>
inline void gather(const T* xk, T* dx, int64_t batch, const GatherEdge<T>& e1, const GatherEdge<T>& e2,
                   T* grad_c) {
    const T* g1 = e1.g; const T* o1 = e1.other; const T l1 = e1.lin, k1 = e1.c3;
    const T* g2 = e2.g; const T* o2 = e2.other; const T l2 = e2.lin, k2 = e2.c3;
    T a0 = 0, a1 = 0, a3 = 0, b0 = 0, b1 = 0, b3 = 0;
#pragma omp simd reduction(+ : a0, a1, a3, b0, b1, b3)
    for (int64_t j = 0; j < batch; ++j) {
        const T xj = xk[j];
        T d = dx[j];
        {
            const T gj = g1[j], oj = o1[j], gx = gj * xj;
            a1 += gx;
            if (R1 == 0) { a0 += gj; a3 += gx * oj; }
            d += gj * (l1 + k1 * oj);
        }
        if (R2 >= 0) {
            const T gj = g2[j], oj = o2[j], gx = gj * xj;
            b1 += gx;
            if (R2 == 0) { b0 += gj; b3 += gx * oj; }
            d += gj * (l2 + k2 * oj);
        }
        dx[j] = d;
    }
    T* c1 = grad_c + 4 * e1.gate;
    if (R1 == 0) { c1[0] = a0; c1[1] = a1; c1[3] = a3; } else { c1[2] = a1; }
    if (R2 >= 0) {
        T* c2 = grad_c + 4 * e2.gate;
        if (R2 == 0) { c2[0] = b0; c2[1] = b1; c2[3] = b3; } else { c2[2] = b1; }
    }
}

#ifdef __AVX2__
// The four horizontal sums of v0..v3, in lanes 0..3.
inline __m128 hsum4(__m256 v0, __m256 v1, __m256 v2, __m256 v3) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(v0, v1), _mm256_hadd_ps(v2, v3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// gather<float> in AVX2 intrinsics, for one or two edges (two: e2 != nullptr), any roles: each
// edge sums g, g x and g x o (operand a keeps all three, operand b the second), so the edges'
// roles need no branch in the sweep. first: dx is not read (the feature's first sweep).
inline void gather_f32(const float* xk, float* dx, int64_t batch, const GatherEdge<float>& e1,
                       const GatherEdge<float>* e2, float* grad_c, bool first) {
    const float* g1 = e1.g; const float* o1 = e1.other;
    const float* g2 = e2 ? e2->g : e1.g; const float* o2 = e2 ? e2->other : e1.other;
    const __m256 l1 = _mm256_set1_ps(e1.lin), k1 = _mm256_set1_ps(e1.c3);
    const __m256 l2 = _mm256_set1_ps(e2 ? e2->lin : 0.0f), k2 = _mm256_set1_ps(e2 ? e2->c3 : 0.0f);
    const __m256 zero = _mm256_setzero_ps();
    __m256 a0 = zero, a1 = zero, a3 = zero, b0 = zero, b1 = zero, b3 = zero;
    auto lanes = [&](__m256 xj, __m256 d, __m256 g, __m256 o, __m256 h, __m256 r) {
        const __m256 gx = _mm256_mul_ps(g, xj);
        a0 = _mm256_add_ps(a0, g);
        a1 = _mm256_add_ps(a1, gx);
        a3 = _mm256_fmadd_ps(gx, o, a3);
        d = _mm256_fmadd_ps(g, _mm256_fmadd_ps(k1, o, l1), d);
        if (e2) {
            const __m256 hx = _mm256_mul_ps(h, xj);
            b0 = _mm256_add_ps(b0, h);
            b1 = _mm256_add_ps(b1, hx);
            b3 = _mm256_fmadd_ps(hx, r, b3);
            d = _mm256_fmadd_ps(h, _mm256_fmadd_ps(k2, r, l2), d);
        }
        return d;
    };
    int64_t j = 0;
    for (; j + 8 <= batch; j += 8) {
        const __m256 d = first ? zero : _mm256_loadu_ps(dx + j);
        const __m256 out = e2 ? lanes(_mm256_loadu_ps(xk + j), d, _mm256_loadu_ps(g1 + j), _mm256_loadu_ps(o1 + j),
                                      _mm256_loadu_ps(g2 + j), _mm256_loadu_ps(o2 + j))
                              : lanes(_mm256_loadu_ps(xk + j), d, _mm256_loadu_ps(g1 + j), _mm256_loadu_ps(o1 + j),
                                      zero, zero);
        _mm256_storeu_ps(dx + j, out);
    }
    if (j < batch) {  // the last 8 elements; g and h only in the lanes not yet done, so the
                      // done lanes add 0 to every sum and keep their dx
        const int64_t j0 = batch - 8;
        const __m256 m = last_lanes8(batch - j);
        const __m256 out = lanes(_mm256_loadu_ps(xk + j0), first ? _mm256_andnot_ps(m, _mm256_loadu_ps(dx + j0)) : _mm256_loadu_ps(dx + j0),
                                 _mm256_and_ps(m, _mm256_loadu_ps(g1 + j0)), _mm256_loadu_ps(o1 + j0),
                                 e2 ? _mm256_and_ps(m, _mm256_loadu_ps(g2 + j0)) : zero,
                                 e2 ? _mm256_loadu_ps(o2 + j0) : zero);
        _mm256_storeu_ps(dx + j0, out);
    }
    alignas(16) float s[8];
    _mm_store_ps(s, hsum4(a0, a1, a3, b0));
    _mm_store_ps(s + 4, hsum4(b1, b3, zero, zero));
    float* c1 = grad_c + 4 * e1.gate;
    if (e1.role == 0) { c1[0] = s[0]; c1[1] = s[1]; c1[3] = s[2]; } else { c1[2] = s[1]; }
    if (e2) {
        float* c2 = grad_c + 4 * e2->gate;
        if (e2->role == 0) { c2[0] = s[3]; c2[1] = s[4]; c2[3] = s[5]; } else { c2[2] = s[4]; }
    }
}
#endif

// Backward. grad_c [out_dim, 4] is overwritten with dL/dc; grad_x [in_dim, batch] (may be null when
// the input needs no gradient) is overwritten with dL/dx. Rows of x, grad_y and grad_x lie stride
// apart (default: batch). A gate whose operands are the same node
// contributes df/dp + df/dq to that node (not 2 df/dp).
//
// With grad_x the work is a gather over input features: a chunk owns a range of features k and,
// for each, walks its consumer edges, accumulating grad_x[k] over the whole batch (a row that
// stays in L1) and finishing that edge's share of the gate's grad_c (operand a: sums of g, g p and
// g p q; operand b: the sum of g q). Every output element is written by exactly one chunk, so no
// thread waits for or merges another's partial sums, and each sum runs over the batch in one fixed
// order: results do not depend on the thread count. Per gate it reads grad_y twice and each operand
// once (4 rows), per feature x[k] once and writes grad_x[k] once. Chunks split the features so
// that each holds about the same number of edges. Without grad_x, chunks split the gates. float
// with AVX2 and batch >= 8 sweeps with gather_f32 (2-4% faster at batch 100, ~10% at 1024 than the
// auto-vectorised gather, whose scalar tail and per-pair branch on the roles it avoids; software
// prefetch of the next edges' rows was measured too and gained nothing).
template <typename T>
void logic_backward(const T* x, int64_t in_dim, int64_t batch, const int64_t* a, const int64_t* b,
                    const T* c, const T* grad_y, int64_t out_dim, T* grad_x, T* grad_c, int nthreads,
                    int64_t stride = -1) {
    if (stride < 0) stride = batch;
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
                const T* p = x + a[i] * stride;
                const T* q = x + b[i] * stride;
                const T* g = grad_y + i * stride;
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
            const T* xk = x + k * stride;
            T* dx = grad_x + k * stride;
            int64_t e = start[k];
#ifdef __AVX2__
            if constexpr (std::is_same<T, float>::value) {
                if (batch >= 8) {  // gather_f32: a sweep of whole 8-lane vectors
                    for (; e + 1 < start[k + 1]; e += 2) {
                        const GatherEdge<T> e1 = gather_edge(edge[e], x, a, b, c, grad_y, stride);
                        const GatherEdge<T> e2 = gather_edge(edge[e + 1], x, a, b, c, grad_y, stride);
                        gather_f32(xk, dx, batch, e1, &e2, grad_c, e == start[k]);
                    }
                    if (e < start[k + 1]) {
                        const GatherEdge<T> e1 = gather_edge(edge[e], x, a, b, c, grad_y, stride);
                        gather_f32(xk, dx, batch, e1, nullptr, grad_c, e == start[k]);
                    } else if (e == start[k]) {
                        std::fill(dx, dx + batch, T(0));  // a feature no gate reads
                    }
                    continue;
                }
            }
#endif
            std::fill(dx, dx + batch, T(0));
            for (; e + 1 < start[k + 1]; e += 2) {  // two edges per sweep: x[k] and grad_x[k] read once
                const int roles = (int)(edge[e] & 1) * 2 + (int)(edge[e + 1] & 1);
                const GatherEdge<T> e1 = gather_edge(edge[e], x, a, b, c, grad_y, stride);
                const GatherEdge<T> e2 = gather_edge(edge[e + 1], x, a, b, c, grad_y, stride);
                if (roles == 0) gather<T, 0, 0>(xk, dx, batch, e1, e2, grad_c);
                else if (roles == 1) gather<T, 0, 1>(xk, dx, batch, e1, e2, grad_c);
                else if (roles == 2) gather<T, 1, 0>(xk, dx, batch, e1, e2, grad_c);
                else gather<T, 1, 1>(xk, dx, batch, e1, e2, grad_c);
            }
            if (e < start[k + 1]) {
                const GatherEdge<T> e1 = gather_edge(edge[e], x, a, b, c, grad_y, stride);
                if ((edge[e] & 1) == 0) gather<T, 0, -1>(xk, dx, batch, e1, e1, grad_c);
                else gather<T, 1, -1>(xk, dx, batch, e1, e1, grad_c);
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

// Sum and maximum of 16 values as a tree (the compiler vectorises each level): a left-to-right
// loop would be a chain of 16 dependent adds, since without -ffast-math it may not reorder them.
template <typename T>
inline T tree_sum16(const T* v) {
    T t[8];
    for (int k = 0; k < 8; ++k) t[k] = v[k] + v[k + 8];
    for (int k = 0; k < 4; ++k) t[k] += t[k + 4];
    return (t[0] + t[2]) + (t[1] + t[3]);
}

template <typename T>
inline T tree_max16(const T* v) {
    T t[8];
    for (int k = 0; k < 8; ++k) t[k] = v[k] > v[k + 8] ? v[k] : v[k + 8];
    for (int k = 0; k < 4; ++k) t[k] = t[k] > t[k + 4] ? t[k] : t[k + 4];
    const T u = t[0] > t[2] ? t[0] : t[2], v1 = t[1] > t[3] ? t[1] : t[3];
    return u > v1 ? u : v1;
}

// One gate's softmax over its 16 logits and its coefficients c = s @ relax (relax_t is relax
// transposed, [4, 16]); s (the probabilities) is kept for the backward, so the exponentials run
// once per step. NaN logits (a diverged run) or an infinite maximum make e or the maximum NaN, so
// the sum and every output are NaN, as with torch.softmax, never a quiet number.
template <typename T>
inline void softmax_gate(const T* w, const T (&relax_t)[4][16], T* s, T* c) {
    alignas(64) T e[16], prob[16], prod[16];  // locals, so no store to s can alias a later load
    const T mx = tree_max16(w);
    for (int k = 0; k < 16; ++k) e[k] = w[k] - mx;
    exp_nonpositive(e, e);
    const T inv = T(1) / tree_sum16(e);
    for (int k = 0; k < 16; ++k) prob[k] = e[k] * inv;
    for (int r = 0; r < 4; ++r) {
        for (int k = 0; k < 16; ++k) prod[k] = prob[k] * relax_t[r][k];
        c[r] = tree_sum16(prod);
    }
    std::memcpy(s, prob, sizeof prob);
}

#ifdef __AVX2__
// The same softmax_gate for float in AVX2 intrinsics (two 8-lane registers per gate): GCC 12 turns
// the generic version's 16-wide vector code and small reductions into ~300 mostly scalar
// instructions per gate (callgrind), this into ~80.
inline __m256 exp_nonpositive8(__m256 v) {  // exp_nonpositive's Cephes steps, 8 lanes
    v = _mm256_max_ps(_mm256_set1_ps(-87.0f), v);  // NaN stays NaN (max_ps returns its second operand)
    // truncation of x log2(e) - 0.5 rounds to nearest for x <= 0, as in exp_nonpositive
    const __m256i ni = _mm256_cvttps_epi32(_mm256_fmsub_ps(v, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    const __m256 n = _mm256_cvtepi32_ps(ni);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), v);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

inline __m256 broadcast_max8(__m256 v) {
    v = _mm256_max_ps(v, _mm256_permute2f128_ps(v, v, 1));
    v = _mm256_max_ps(v, _mm256_shuffle_ps(v, v, 0x4E));
    return _mm256_max_ps(v, _mm256_shuffle_ps(v, v, 0xB1));
}

inline __m256 broadcast_sum8(__m256 v) {
    v = _mm256_add_ps(v, _mm256_permute2f128_ps(v, v, 1));
    v = _mm256_add_ps(v, _mm256_shuffle_ps(v, v, 0x4E));
    return _mm256_add_ps(v, _mm256_shuffle_ps(v, v, 0xB1));
}

template <>
inline void softmax_gate<float>(const float* w, const float (&relax_t)[4][16], float* s, float* c) {
    const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
    const __m256 mx = broadcast_max8(_mm256_max_ps(w0, w1));
    const __m256 e0 = exp_nonpositive8(_mm256_sub_ps(w0, mx)), e1 = exp_nonpositive8(_mm256_sub_ps(w1, mx));
    const __m256 inv = _mm256_div_ps(_mm256_set1_ps(1.0f), broadcast_sum8(_mm256_add_ps(e0, e1)));
    const __m256 p0 = _mm256_mul_ps(e0, inv), p1 = _mm256_mul_ps(e1, inv);
    _mm256_storeu_ps(s, p0);
    _mm256_storeu_ps(s + 8, p1);
    __m256 acc[4];
    for (int r = 0; r < 4; ++r)
        acc[r] = _mm256_fmadd_ps(p1, _mm256_loadu_ps(relax_t[r] + 8), _mm256_mul_ps(p0, _mm256_loadu_ps(relax_t[r])));
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
    _mm_storeu_ps(c, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

// softmax_gate<float> of 4 consecutive gates (w, s [4, 16], c [4, 4]), their steps interleaved: one
// gate's exp and sums are a chain of ~30 dependent instructions, which out-of-order execution
// overlaps with only 2-3 gates on its own.
inline void softmax_gates4(const float* w, const float (&relax_t)[4][16], float* s, float* c) {
    __m256 p0[4], p1[4];
    for (int g = 0; g < 4; ++g) {
        const __m256 w0 = _mm256_loadu_ps(w + 16 * g), w1 = _mm256_loadu_ps(w + 16 * g + 8);
        const __m256 mx = broadcast_max8(_mm256_max_ps(w0, w1));
        p0[g] = exp_nonpositive8(_mm256_sub_ps(w0, mx));
        p1[g] = exp_nonpositive8(_mm256_sub_ps(w1, mx));
    }
    for (int g = 0; g < 4; ++g) {
        const __m256 inv = _mm256_div_ps(_mm256_set1_ps(1.0f), broadcast_sum8(_mm256_add_ps(p0[g], p1[g])));
        p0[g] = _mm256_mul_ps(p0[g], inv);
        p1[g] = _mm256_mul_ps(p1[g], inv);
        _mm256_storeu_ps(s + 16 * g, p0[g]);
        _mm256_storeu_ps(s + 16 * g + 8, p1[g]);
    }
    for (int g = 0; g < 4; ++g) {
        __m256 acc[4];
        for (int r = 0; r < 4; ++r)
            acc[r] = _mm256_fmadd_ps(p1[g], _mm256_loadu_ps(relax_t[r] + 8), _mm256_mul_ps(p0[g], _mm256_loadu_ps(relax_t[r])));
        const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
        _mm_storeu_ps(c + 4 * g, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    }
}
#endif

// Gates [i0, i1) of softmax_gate (w, s and c of gate i at w + 16 i, s + 16 i, c + 4 i); float with
// AVX2 four at a time (the same bits per gate as softmax_gate<float>).
template <typename T>
inline void softmax_gates(const T* w, const T (&relax_t)[4][16], T* s, T* c, int64_t i0, int64_t i1) {
    int64_t i = i0;
#ifdef __AVX2__
    if constexpr (std::is_same<T, float>::value)
        for (; i + 4 <= i1; i += 4) softmax_gates4(w + 16 * i, relax_t, s + 16 * i, c + 4 * i);
#endif
    for (; i < i1; ++i) softmax_gate(w + 16 * i, relax_t, s + 16 * i, c + 4 * i);
}

// Runs gates(i0, i1, relax_t) over the gates i0 .. i1 - 1 of each chunk on the pool, chunks splitting
// the gates, with relax_t the transpose [4][16] of relax [16, 4] (the per-gate softmax kernels read
// its rows).
template <typename T, typename F>
void for_each_gate_range(const T* relax, int64_t out_dim, int nthreads, F&& gates) {
    if (out_dim * 16 <= kParallelMin) nthreads = 1;
    const int64_t chunks = chunk_count(out_dim, nthreads, 256), per = (out_dim + chunks - 1) / chunks;
    T relax_t[4][16];
    for (int k = 0; k < 16; ++k)
        for (int r = 0; r < 4; ++r) relax_t[r][k] = relax[4 * k + r];
    ChunkPool::get().run(chunks, nthreads, [&](int64_t chunk) {
        gates(chunk * per, std::min(out_dim, (chunk + 1) * per), relax_t);
    });
}

// Runs gate(i, relax_t) for every gate i < out_dim on the pool (for_each_gate_range).
template <typename T, typename F>
void for_each_gate(const T* relax, int64_t out_dim, int nthreads, F&& gate) {
    for_each_gate_range(relax, out_dim, nthreads, [&](int64_t i0, int64_t i1, const T(&relax_t)[4][16]) {
        for (int64_t i = i0; i < i1; ++i) gate(i, relax_t);
    });
}

// Gate coefficients c [out_dim, 4] = softmax(w [out_dim, 16]) @ relax [16, 4]; probs [out_dim, 16]
// receives softmax(w) for gate_coefficients_backward.
template <typename T>
void gate_coefficients(const T* w, const T* relax, int64_t out_dim, T* c, T* probs, int nthreads) {
    for_each_gate_range(relax, out_dim, nthreads, [&](int64_t i0, int64_t i1, const T(&relax_t)[4][16]) {
        softmax_gates(w, relax_t, probs, c, i0, i1);
    });
}

// One gate's grad_w from its grad_c g and probabilities s: with d = relax @ g,
// grad_w[k] = s[k] (d[k] - sum_l s[l] d[l]).
template <typename T>
inline void softmax_gate_backward(const T* s, const T (&relax_t)[4][16], const T* g, T* grad_w) {
    T d[16], sd[16];
    for (int k = 0; k < 16; ++k) {
        d[k] = relax_t[0][k] * g[0] + relax_t[1][k] * g[1] + relax_t[2][k] * g[2] + relax_t[3][k] * g[3];
        sd[k] = s[k] * d[k];
    }
    const T mean = tree_sum16(sd);
    for (int k = 0; k < 16; ++k) grad_w[k] = s[k] * (d[k] - mean);
}

#ifdef __AVX2__
template <>
inline void softmax_gate_backward<float>(const float* s, const float (&relax_t)[4][16], const float* g, float* grad_w) {
    __m256 d0 = _mm256_mul_ps(_mm256_loadu_ps(relax_t[0]), _mm256_set1_ps(g[0]));
    __m256 d1 = _mm256_mul_ps(_mm256_loadu_ps(relax_t[0] + 8), _mm256_set1_ps(g[0]));
    for (int r = 1; r < 4; ++r) {
        d0 = _mm256_fmadd_ps(_mm256_loadu_ps(relax_t[r]), _mm256_set1_ps(g[r]), d0);
        d1 = _mm256_fmadd_ps(_mm256_loadu_ps(relax_t[r] + 8), _mm256_set1_ps(g[r]), d1);
    }
    const __m256 s0 = _mm256_loadu_ps(s), s1 = _mm256_loadu_ps(s + 8);
    const __m256 mean = broadcast_sum8(_mm256_fmadd_ps(s1, d1, _mm256_mul_ps(s0, d0)));
    _mm256_storeu_ps(grad_w, _mm256_mul_ps(s0, _mm256_sub_ps(d0, mean)));
    _mm256_storeu_ps(grad_w + 8, _mm256_mul_ps(s1, _mm256_sub_ps(d1, mean)));
}
#endif

// grad_w [out_dim, 16] from grad_c [out_dim, 4] and the forward's probabilities [out_dim, 16].
template <typename T>
void gate_coefficients_backward(const T* probs, const T* relax, const T* grad_c, int64_t out_dim, T* grad_w,
                                int nthreads) {
    for_each_gate(relax, out_dim, nthreads, [&](int64_t i, const T(&relax_t)[4][16]) {
        softmax_gate_backward(probs + 16 * i, relax_t, grad_c + 4 * i, grad_w + 16 * i);
    });
}

// Adam (Kingma & Ba, ICLR 2015) as torch.optim.Adam with amsgrad, weight decay and maximize off, in
// one pass over n values: m <- m + (1 - beta1) (g - m), v <- beta2 v + (1 - beta2) g^2,
// p <- p - step_size m / (sqrt(v) / bias2_sqrt + eps), with step_size = lr / (1 - beta1^t) and
// bias2_sqrt = sqrt(1 - beta2^t) computed by the caller (in double, as torch does). The same
// arithmetic per element as torch's fused CPU kernel (lerp with weight 1 - beta1 < 0.5 is
// m + w (g - m)), so results agree to float rounding. Chunks of one call split the values.
template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, int64_t n, double beta1, double beta2, double eps, double step_size,
                 double bias2_sqrt) {
    const T w1 = T(1 - beta1), b2 = T(beta2), w2 = T(1 - beta2), e = T(eps), ss = T(-step_size), bs = T(bias2_sqrt);
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
        const T gj = g[j];
        const T mj = m[j] + w1 * (gj - m[j]);
        const T vj = v[j] * b2 + w2 * gj * gj;
        m[j] = mj;
        v[j] = vj;
        p[j] = p[j] + ss * mj / (std::sqrt(vj) / bs + e);
    }
}

}  // namespace lgc
