// A stack of relaxed logic layers in one forward and one backward call (torch-free, plain pointers).
//
// Activations are feature-major [features, stride], stride = batch padded to whole 64-byte lines.
// The forward runs layer by layer, each split by gates (logic_forward; with a GroupSum head the
// last layer's outputs are summed per group as they are computed and never stored). The backward,
// up to kScatterMaxBatch, is split by batch columns: column j of a layer's input gradient depends
// on column j of the layers above only, so a thread that owns a range of columns runs every layer's
// backward on it with no barrier between layers and reads the gradient rows it wrote itself; column
// ranges start on line boundaries, so two threads never write one line. It scatters: per gate it
// reads its grad_y row and both operand rows once and adds its terms to the two operand gradient
// rows (no atomics: a thread owns its columns), walking the gates in order, so a, b, c and the
// partial sums stream sequentially instead of once per consumer edge as in the per-layer gather.
// Only the coefficient gradients sum over the batch: each column block (fixed by the batch size
// alone, not by the thread count) writes its partial sums, and a gate-partitioned pass adds the
// blocks in order and applies the softmax backward, so the results are the same bits at any thread
// count. Above kScatterMaxBatch the backward is the per-layer gather (stack_backward_gather).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "logic_layer_cpu.h"

namespace lgc {

// The batch split into column blocks, fixed by the batch size alone. stride: the padded row length
// (a multiple of a 64-byte line); count: blocks, min(lines, kBlocks), made by halving the lines
// (at batch 100 the 7 lines split 3 | 4, 48 | 52 real columns). Each block ends its lane sums with
// one horizontal add per gate and writes its own plane of partial sums. Two blocks: the backward
// runs on at most two threads at batch <= kScatterMaxBatch (its bits must not depend on the thread
// count), measured faster than four at one and at two threads (6 x 8000, batch 100, torch-free
// harness, side by side: 4.4-4.7 vs 4.9-5.1 ms at one thread, 2.7-2.8 vs 2.9-3.0 ms at two; four
// blocks, two per thread, pay each gate's per-block loop and reduction twice per thread). On
// hosts with more cores the forward, softmax and Adam use them all; the backward at small batches
// does not (benchmarks/RESULTS.md, Training).
struct ColumnBlocks {
    static constexpr int64_t kBlocks = 2;
    int64_t batch = 0, line = 16, stride = 16, count = 1;
    int64_t vec_end = 8;  // batch rounded up to 8: the columns the backward reads (whole 8-lane vectors)
    int64_t bound[kBlocks + 1] = {};  // block k: columns bound[k] .. bound[k + 1] - 1 (capped at batch)

    // max_blocks < kBlocks: fewer blocks (1: the batch is one block, as one block of a wider batch is)
    ColumnBlocks(int64_t batch_, int64_t item_bytes, int64_t max_blocks = kBlocks) : batch(batch_) {
        line = std::max<int64_t>(1, 64 / item_bytes);
        const int64_t lines = std::max<int64_t>(1, (batch + line - 1) / line);
        stride = lines * line;
        vec_end = std::min(stride, (batch + 7) / 8 * 8);
        count = std::max<int64_t>(1, std::min({lines, kBlocks, max_blocks}));
        split(0, lines, 0, count);
        for (int64_t k = 0; k <= count; ++k) bound[k] = std::min(batch, bound[k] * line);
    }

    // Parts (threads) the blocks split into, and part t's blocks [first(t), first(t + 1)).
    int64_t parts(int nthreads) const { return std::max<int64_t>(1, std::min<int64_t>(nthreads, count)); }
    int64_t first(int64_t t, int64_t parts) const { return count * t / parts; }
    int64_t column(int64_t block) const { return bound[block]; }
    // Part [k0, k1)'s columns: from its first block to its last block's end, the last part up to vec_end.
    int64_t begin(int64_t k0) const { return column(k0); }
    int64_t end(int64_t k1) const { return k1 >= count ? vec_end : column(k1); }

  private:
    void split(int64_t l0, int64_t l1, int64_t k0, int64_t k1) {  // lines [l0, l1) into blocks [k0, k1)
        bound[k0] = l0;
        bound[k1] = l1;
        if (k1 - k0 < 2) return;
        const int64_t km = (k0 + k1) / 2, lm = l0 + (l1 - l0) / 2;  // the smaller half first
        split(l0, lm, k0, km);
        split(lm, l1, km, k1);
    }
};

template <typename T>
struct StackLayer {
    int64_t in_dim = 0, out_dim = 0;
    const int64_t* a = nullptr;
    const int64_t* b = nullptr;
    const T* c = nullptr;  // [out_dim, 4]
    T grad_factor = 1;     // scales the gradient of the layer's input (difflogic's grad_factor)
};

// Part [k0, k1) of the input transpose: x0 [in_dim, stride] = the input's columns (element (j, f) of
// the input at src[j * src_batch_stride + f * src_feature_stride]), zeros in the columns batch ..
// vec_end - 1 (the layers compute those columns too, from zeros: finite, so the AVX2 backward may
// read whole vectors there).
template <typename T>
void stack_input_part(const T* src, int64_t src_batch_stride, int64_t src_feature_stride, int64_t in_dim, T* x0,
                      const ColumnBlocks& cb, int64_t k0, int64_t k1) {
    const int64_t j0 = cb.begin(k0), j1 = cb.end(k1);
    const int64_t real_end = std::min(j1, cb.batch), stride = cb.stride;
    for (int64_t f = 0; f < in_dim; ++f) {
        T* row = x0 + f * stride;
        const T* s = src + f * src_feature_stride;
        for (int64_t j = j0; j < real_end; ++j) row[j] = s[j * src_batch_stride];
        for (int64_t j = std::max(j0, real_end); j < j1; ++j) row[j] = T(0);
    }
}

// The forward of the stack: acts[l + 1] [out_dim, stride] = layer l of acts[l], columns 0 .. vec_end - 1,
// layer by layer, each split by gates (logic_forward). Split by batch columns instead (each thread
// the whole stack on its columns, no barrier) it ran 1.4x faster on 2 threads than on 1, against
// 1.75x split by gates (6 x 8000, batch 100, torch-free harness): every thread pays each gate's
// fixed cost (its indices, coefficients, the first line of two random rows) for half the columns.
template <typename T>
void stack_forward(const std::vector<StackLayer<T>>& layers, T* const* acts, const ColumnBlocks& cb, int nthreads) {
    for (size_t l = 0; l < layers.size(); ++l) {
        const StackLayer<T>& L = layers[l];
        logic_forward<T>(acts[l], cb.vec_end, L.a, L.b, L.c, acts[l + 1], L.out_dim, nthreads, cb.stride);
    }
}

// Gates ahead whose operand rows the head prefetches: 4 ahead ran 10-30% faster than none (8000
// gates, batch 100 and 1024, one and two threads, torch-free harness, noisy host); 2 and 8 alike.
constexpr int64_t kHeadPrefetch = 4;

// The last layer with a GroupSum head: scores [k, batch], scores[g] the sum of the outputs of gates
// g m .. g m + m - 1 (m = out_dim / k) added in gate order (GroupSum's order after a kernel layer:
// sum_rows), without storing the layer's output (the backward needs the layers' inputs only).
// Chunks split the groups and the batch into blocks of 128 columns (L1-resident sums; blocks of 32
// took 1.0 ms against 0.6 at 8000 gates, batch 100: each gate's rows were read in 4 passes).
template <typename T>
void stack_head_forward(const StackLayer<T>& L, const T* x, const ColumnBlocks& cb, int64_t k, T* scores,
                        int nthreads) {
    constexpr int64_t kLanes = 128;
    const int64_t batch = cb.batch, stride = cb.stride, m = L.out_dim / k;
    const int64_t blocks = (batch + kLanes - 1) / kLanes;
    if (L.out_dim * batch <= kParallelMin) nthreads = 1;
    ChunkPool::get().run(k * blocks, nthreads, [&](int64_t chunk) {
        const int64_t g = chunk / blocks, j = (chunk % blocks) * kLanes, w = std::min(kLanes, batch - j);
        T sum[kLanes] = {};
        for (int64_t i = g * m; i < (g + 1) * m; ++i) {
            if (i + kHeadPrefetch < (g + 1) * m) {  // the operand rows of a gate a few ahead
                const T* pn = x + L.a[i + kHeadPrefetch] * stride + j;
                const T* qn = x + L.b[i + kHeadPrefetch] * stride + j;
                for (int64_t l = 0; l < w; l += 64 / (int64_t)sizeof(T)) {
                    __builtin_prefetch(pn + l);
                    __builtin_prefetch(qn + l);
                }
            }
            const T c0 = L.c[4 * i], c1 = L.c[4 * i + 1], c2 = L.c[4 * i + 2], c3 = L.c[4 * i + 3];
            const T* p = x + L.a[i] * stride + j;
            const T* q = x + L.b[i] * stride + j;
            if (w == kLanes) {
#pragma omp simd
                for (int64_t l = 0; l < kLanes; ++l) sum[l] += c0 + c2 * q[l] + p[l] * (c1 + c3 * q[l]);
            } else {
                for (int64_t l = 0; l < w; ++l) sum[l] += c0 + c2 * q[l] + p[l] * (c1 + c3 * q[l]);
            }
        }
        std::copy(sum, sum + w, scores + g * batch + j);
    });
}

// One gate over columns [jb, je) (within one block): the block's partial sums of g, g p, g q and
// g p q into part[0..3] and, with DX, dxa += g (c1 + c3 q), then dxb += g (c2 + c3 p) (in that
// order per element, so a gate reading one node twice adds both terms to it).
template <typename T, bool DX>
inline void scatter_gate(const T* g, const T* p, const T* q, T* dxa, T* dxb, T c1, T c2, T c3, int64_t jb,
                         int64_t je, T* part) {
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t j = jb; j < je; ++j) {
        const T gj = g[j], gp = gj * p[j];
        s0 += gj;
        s1 += gp;
        s2 += gj * q[j];
        s3 += gp * q[j];
    }
    if (DX) {
        for (int64_t j = jb; j < je; ++j) {  // not simd: dxa and dxb may be one row
            dxa[j] += g[j] * (c1 + c3 * q[j]);
            dxb[j] += g[j] * (c2 + c3 * p[j]);
        }
    }
    part[0] = s0; part[1] = s1; part[2] = s2; part[3] = s3;
}

#ifdef __AVX2__
// Lanes 0..n-1 set (0 < n < 8).
inline __m256i first_lanes8(int64_t n) {
    alignas(32) static const int32_t bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + 8 - n));
}

// scatter_gate for float in AVX2, whole 8-lane vectors over [jb, je) (jb a multiple of 8): g is
// loaded masked past je (so padding lanes add nothing: p, q and dx rows are padded, finite there).
template <bool DX>
inline void scatter_gate_f32(const float* g, const float* p, const float* q, float* dxa, float* dxb, float c1,
                             float c2, float c3, int64_t jb, int64_t je, float* part) {
    const __m256 zero = _mm256_setzero_ps(), v1 = _mm256_set1_ps(c1), v2 = _mm256_set1_ps(c2),
                 v3 = _mm256_set1_ps(c3);
    __m256 s0 = zero, s1 = zero, s2 = zero, s3 = zero;
    for (int64_t j = jb; j < je; j += 8) {
        const __m256 gj = j + 8 <= je ? _mm256_loadu_ps(g + j)
                                      : _mm256_maskload_ps(g + j, first_lanes8(je - j));
        const __m256 pj = _mm256_loadu_ps(p + j), qj = _mm256_loadu_ps(q + j);
        const __m256 gp = _mm256_mul_ps(gj, pj);
        s0 = _mm256_add_ps(s0, gj);
        s1 = _mm256_add_ps(s1, gp);
        s2 = _mm256_fmadd_ps(gj, qj, s2);
        s3 = _mm256_fmadd_ps(gp, qj, s3);
        if (DX) {
            _mm256_storeu_ps(dxa + j, _mm256_fmadd_ps(gj, _mm256_fmadd_ps(v3, qj, v1), _mm256_loadu_ps(dxa + j)));
            _mm256_storeu_ps(dxb + j, _mm256_fmadd_ps(gj, _mm256_fmadd_ps(v3, pj, v2), _mm256_loadu_ps(dxb + j)));
        }
    }
    _mm_storeu_ps(part, hsum4(s0, s1, s2, s3));
}
#endif

// Gates ahead whose operand rows the backward prefetches: 2-4 ahead measured 5-8% faster than none
// at 6 x 8000, batch 100, one thread (torch-free harness), 8 ahead no better than none.
constexpr int64_t kScatterPrefetch = 3;

// Part [k0, k1) of the backward, layers from last to first. gy [out_dim of the last layer / gy_group,
// gy_stride] is the gradient of the stack's output, row r for outputs r gy_group .. (r + 1) gy_group - 1
// (gy_group > 1: GroupSum's gradient, its rows not broadcast into memory); gx[l] (l >= 1: two buffers used in turn are fine) receives
// the gradient of layer l's input [in_dim, stride] (gx[0] null: the stack's input needs none);
// partial[l] [cb.count, out_dim, 4] receives each block's sums for layer l's coefficient gradients.
template <typename T>
void stack_backward_part(const std::vector<StackLayer<T>>& layers, const T* const* acts, const T* gy,
                         int64_t gy_stride, int64_t gy_group, T* const* gx, T* const* partial, const ColumnBlocks& cb,
                         int64_t k0, int64_t k1) {
    const int64_t stride = cb.stride;
    const int64_t j0 = cb.begin(k0), j1 = cb.end(k1);
    const T* g_rows = gy;
    int64_t gs = gy_stride, group = std::max<int64_t>(1, gy_group);
    for (size_t l = layers.size(); l-- > 0;) {
        const StackLayer<T>& L = layers[l];
        const T* x = acts[l];
        T* dx = gx[l];
        if (dx != nullptr)
            for (int64_t f = 0; f < L.in_dim; ++f) std::fill(dx + f * stride + j0, dx + f * stride + j1, T(0));
        T* part = partial[l];
        const int64_t plane = 4 * L.out_dim;  // one block's partial sums
        for (int64_t i = 0; i < L.out_dim; ++i) {
            if (i + kScatterPrefetch < L.out_dim) {  // the operand rows of a gate a few ahead
                const int64_t an = L.a[i + kScatterPrefetch] * stride, bn = L.b[i + kScatterPrefetch] * stride;
                for (int64_t j = j0; j < std::min(j1, cb.batch); j += 64 / (int64_t)sizeof(T)) {
                    __builtin_prefetch(x + an + j);
                    __builtin_prefetch(x + bn + j);
                    if (dx != nullptr) {
                        __builtin_prefetch(dx + an + j, 1);
                        __builtin_prefetch(dx + bn + j, 1);
                    }
                }
            }
            const T c1 = L.c[4 * i + 1], c2 = L.c[4 * i + 2], c3 = L.c[4 * i + 3];
            const T* g = g_rows + (group == 1 ? i : i / group) * gs;
            const int64_t ai = L.a[i] * stride, bi = L.b[i] * stride;
            const T* p = x + ai;
            const T* q = x + bi;
            for (int64_t k = k0; k < k1; ++k) {
                const int64_t jb = cb.bound[k], je = cb.bound[k + 1];
                T* out = part + k * plane + 4 * i;
#ifdef __AVX2__
                if constexpr (std::is_same<T, float>::value) {
                    if (dx != nullptr) scatter_gate_f32<true>(g, p, q, dx + ai, dx + bi, c1, c2, c3, jb, je, out);
                    else scatter_gate_f32<false>(g, p, q, nullptr, nullptr, c1, c2, c3, jb, je, out);
                    continue;
                }
#endif
                if (dx != nullptr) scatter_gate<T, true>(g, p, q, dx + ai, dx + bi, c1, c2, c3, jb, je, out);
                else scatter_gate<T, false>(g, p, q, nullptr, nullptr, c1, c2, c3, jb, je, out);
            }
        }
        if (dx != nullptr && L.grad_factor != T(1))
            for (int64_t f = 0; f < L.in_dim; ++f)
                for (int64_t j = j0; j < j1; ++j) dx[f * stride + j] *= L.grad_factor;
        g_rows = dx;
        gs = stride;
        group = 1;
    }
}

// Batches above this take the per-layer gather backward (stack_backward_gather): the scatter moves 7
// rows per gate (5 read, 2 written back) where the gather moves 6 (4 per gate, 2 per feature), which
// tells once rows of 1 KiB and more leave the cache. Training step, 6 x 8000, one thread (ms, scatter
// / gather): batch 100 10.2 / 12.4, 256 24.5 / 23.7, 512 49.1 / 41.8, 1024 86.8 / 78.5.
constexpr int64_t kScatterMaxBatch = 192;

// The backward of the stack as the per-layer gather (logic_backward, split by input features: it
// reads 4 rows per gate and x and grad_x once per feature) with layer l's coefficient gradients in
// partial[l] [out_dim, 4] (one block). g_rows [out_dim of the last layer, stride]: scratch for gy in
// rows of the activations' stride when it is not already (gy_group > 1 or another stride), else null.
template <typename T>
void stack_backward_gather(const std::vector<StackLayer<T>>& layers, const T* const* acts, const T* gy,
                           int64_t gy_stride, int64_t gy_group, T* const* gx, T* const* partial, const ColumnBlocks& cb,
                           int nthreads, T* g_rows) {
    const int64_t stride = cb.stride, batch = cb.batch;
    if (batch == 0) {
        for (size_t l = 0; l < layers.size(); ++l) std::fill(partial[l], partial[l] + 4 * layers[l].out_dim, T(0));
        return;
    }
    const T* g = gy;
    if (g_rows != nullptr) {
        const int64_t out = layers.back().out_dim, group = std::max<int64_t>(1, gy_group);
        const int64_t chunks = chunk_count(out, nthreads, 64), per = (out + chunks - 1) / chunks;
        ChunkPool::get().run(chunks, out * batch <= kParallelMin ? 1 : nthreads, [&](int64_t chunk) {
            for (int64_t i = chunk * per; i < std::min(out, (chunk + 1) * per); ++i)
                std::copy(gy + (i / group) * gy_stride, gy + (i / group) * gy_stride + batch, g_rows + i * stride);
        });
        g = g_rows;
    }
    for (size_t l = layers.size(); l-- > 0;) {
        const StackLayer<T>& L = layers[l];
        logic_backward<T>(acts[l], L.in_dim, batch, L.a, L.b, L.c, g, L.out_dim, gx[l], partial[l], nthreads, stride);
        if (gx[l] != nullptr && L.grad_factor != T(1)) {
            T* dx = gx[l];
            const int64_t chunks = chunk_count(L.in_dim, nthreads, 64), per = (L.in_dim + chunks - 1) / chunks;
            ChunkPool::get().run(chunks, L.in_dim * batch <= kParallelMin ? 1 : nthreads, [&](int64_t chunk) {
                for (int64_t f = chunk * per; f < std::min(L.in_dim, (chunk + 1) * per); ++f)
                    for (int64_t j = 0; j < batch; ++j) dx[f * stride + j] *= L.grad_factor;
            });
        }
        g = gx[l];
    }
}

// grad_c of gate i = the blocks' partial sums added in block order, then that gate's softmax
// backward: grad_w [16] (the gate's 16 logit gradients, written to grad_w[0..15]) from probs [16].
template <typename T>
inline void reduce_gate(const T* partial, int64_t count, int64_t out_dim, int64_t i, const T* probs,
                        const T (&relax_t)[4][16], T* grad_w) {
    T g[4] = {partial[4 * i], partial[4 * i + 1], partial[4 * i + 2], partial[4 * i + 3]};
    for (int64_t k = 1; k < count; ++k) {
        const T* s = partial + k * 4 * out_dim + 4 * i;
        g[0] += s[0]; g[1] += s[1]; g[2] += s[2]; g[3] += s[3];
    }
    softmax_gate_backward(probs + 16 * i, relax_t, g, grad_w);
}

}  // namespace lgc
