// Fused forward/backward of a logic-gate-tree convolution on the CPU: torch-free, plain pointers,
// extern "C", threads from chunk_pool.h (the same pool as the logic-layer kernels, so a step's
// kernels never wait at an OpenMP barrier for a descheduled thread). Same contract as
// cuda/logic_conv.cu.
//
// x [B, C, H, W] (batch-major, NOT padded: reads outside the image are 0), y and grad_y
// [B, O, Ho, Wo]. Tree of output channel o: leaves l = 0..L-1 (L = 2^depth) read
// x[b, ch[o,l], oy*sh - ph + dy[o,l], ox*sw - pw + dx[o,l]]; node ids are leaves 0..L-1 then
// gates L..2L-2, and gate k (0..L-2) computes node L+k from nodes 2k and 2k+1 (heap order:
// leaves' level first, root last) as c0 + c1 p + c2 q + c3 p q with c = coef[o, k, 0..3].
// Positions run in chunks of kChunk so the gate loops vectorise over positions.
// The backward recomputes the tree (nothing is stored between passes), writes grad_coef
// [O, L-1, 4] and, when grad_x is not null, grad_x [B, C, H, W] (zeroed here).
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <vector>

#include "chunk_pool.h"

namespace {

constexpr int kChunk = 64;
constexpr int kMaxLeaves = 16;

struct Geometry {
    int64_t B, C, H, W, O, depth, sh, sw, ph, pw, Ho, Wo;
};

// Input offset (within one sample) of every leaf at every position of a chunk, -1 when padding.
template <typename T>
inline void load_leaves(const T* xb, const Geometry& g, const int64_t* ch, const int64_t* dy, const int64_t* dx,
                        int64_t o, int64_t start, int n, T (*v)[kChunk], int64_t (*off)[kChunk]) {
    const int64_t L = int64_t(1) << g.depth;
    int64_t by[kChunk], bx[kChunk];
    int64_t oy = start / g.Wo, ox = start - oy * g.Wo;
    for (int j = 0; j < n; ++j) {   // top-left corner of each position's window, without padding
        by[j] = oy * g.sh - g.ph;
        bx[j] = ox * g.sw - g.pw;
        if (++ox == g.Wo) { ox = 0; ++oy; }
    }
    for (int64_t l = 0; l < L; ++l) {
        const int64_t ey = dy[o * L + l], ex = dx[o * L + l];
        const T* plane = xb + ch[o * L + l] * g.H * g.W;
        const int64_t plane_off = ch[o * L + l] * g.H * g.W;
        for (int j = 0; j < n; ++j) {
            const int64_t iy = by[j] + ey, ix = bx[j] + ex;
            const bool in = iy >= 0 && iy < g.H && ix >= 0 && ix < g.W;
            const int64_t at = iy * g.W + ix;
            off[l][j] = in ? plane_off + at : -1;
            v[l][j] = in ? plane[at] : T(0);
        }
    }
}

template <typename T>
inline void run_gates(const T* co, int64_t L, int n, T (*v)[kChunk]) {
    for (int64_t k = 0; k < L - 1; ++k) {
        const T c0 = co[4 * k], c1 = co[4 * k + 1], c2 = co[4 * k + 2], c3 = co[4 * k + 3];
        const T* p = v[2 * k];
        const T* q = v[2 * k + 1];
        T* out = v[L + k];
#pragma omp simd
        for (int j = 0; j < n; ++j) out[j] = c0 + c2 * q[j] + p[j] * (c1 + c3 * q[j]);
    }
}

template <typename T>
void forward(const T* x, const Geometry& g, const int64_t* ch, const int64_t* dy, const int64_t* dx, const T* coef,
             T* y, int threads) {
    const int64_t L = int64_t(1) << g.depth, P = g.Ho * g.Wo, chunks = (P + kChunk - 1) / kChunk;
    const int64_t work = g.B * g.O * chunks;
    const int64_t pieces = std::max<int64_t>(1, std::min<int64_t>(work, threads <= 1 ? 1 : 16 * (int64_t)threads));
    lgc::ChunkPool::get().run(pieces, threads, [&](int64_t piece) {
    for (int64_t w = work * piece / pieces; w < work * (piece + 1) / pieces; ++w) {
        T v[2 * kMaxLeaves][kChunk];
        int64_t off[kMaxLeaves][kChunk];
        const int64_t chunk = w % chunks, bo = w / chunks, o = bo % g.O, b = bo / g.O;
        const int64_t start = chunk * kChunk;
        const int n = int(P - start < kChunk ? P - start : kChunk);
        load_leaves(x + b * g.C * g.H * g.W, g, ch, dy, dx, o, start, n, v, off);
        run_gates(coef + o * (L - 1) * 4, L, n, v);
        memcpy(y + (b * g.O + o) * P + start, v[2 * L - 2], sizeof(T) * n);
    }
    });
}

template <typename T>
void backward(const T* x, const Geometry& g, const int64_t* ch, const int64_t* dy, const int64_t* dx, const T* coef,
              const T* grad_y, T* grad_x, T* grad_coef, int threads) {
    const int64_t L = int64_t(1) << g.depth, P = g.Ho * g.Wo, chunks = (P + kChunk - 1) / kChunk;
    const int64_t G = L - 1, sample = g.C * g.H * g.W;
    if (grad_x != nullptr) memset(grad_x, 0, sizeof(T) * g.B * sample);
    // Parallel over samples: a piece owns grad_x of its samples (no races) and sums coefficient
    // gradients into its own double accumulators, reduced in piece order at the end. The pieces
    // depend on the batch only (kPieces, not the thread count), so the result is the same bits at
    // any number of threads.
    constexpr int64_t kPieces = 16;
    const int64_t pieces = std::max<int64_t>(1, std::min<int64_t>(g.B, kPieces));
    std::vector<double> acc(size_t(pieces) * g.O * G * 4, 0.0);
    lgc::ChunkPool::get().run(pieces, threads, [&](int64_t piece) {
        double* my = acc.data() + size_t(piece) * g.O * G * 4;
        T v[2 * kMaxLeaves][kChunk];
        T gv[2 * kMaxLeaves][kChunk];
        int64_t off[kMaxLeaves][kChunk];
        for (int64_t b = g.B * piece / pieces; b < g.B * (piece + 1) / pieces; ++b) {
            const T* xb = x + b * sample;
            T* gxb = grad_x != nullptr ? grad_x + b * sample : nullptr;
            for (int64_t o = 0; o < g.O; ++o) {
                const T* co = coef + o * G * 4;
                double* mo = my + o * G * 4;
                for (int64_t start = 0; start < P; start += kChunk) {
                    const int n = int(P - start < kChunk ? P - start : kChunk);
                    load_leaves(xb, g, ch, dy, dx, o, start, n, v, off);
                    run_gates(co, L, n, v);
                    memcpy(gv[2 * L - 2], grad_y + (b * g.O + o) * P + start, sizeof(T) * n);
                    for (int64_t k = G - 1; k >= 0; --k) {
                        const T c1 = co[4 * k + 1], c2 = co[4 * k + 2], c3 = co[4 * k + 3];
                        const T* p = v[2 * k];
                        const T* q = v[2 * k + 1];
                        const T* gk = gv[L + k];
                        T* gp = gv[2 * k];
                        T* gq = gv[2 * k + 1];
                        T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
                        for (int j = 0; j < n; ++j) {
                            const T gj = gk[j], pj = p[j], qj = q[j];
                            s0 += gj;
                            s1 += gj * pj;
                            s2 += gj * qj;
                            s3 += gj * pj * qj;
                            gp[j] = gj * (c1 + c3 * qj);
                            gq[j] = gj * (c2 + c3 * pj);
                        }
                        mo[4 * k] += s0;
                        mo[4 * k + 1] += s1;
                        mo[4 * k + 2] += s2;
                        mo[4 * k + 3] += s3;
                    }
                    if (gxb != nullptr) {
                        for (int64_t l = 0; l < L; ++l)
                            for (int j = 0; j < n; ++j)
                                if (off[l][j] >= 0) gxb[off[l][j]] += gv[l][j];
                    }
                }
            }
        }
    });
    for (int64_t i = 0; i < g.O * G * 4; ++i) {
        double s = 0;
        for (int64_t t = 0; t < pieces; ++t) s += acc[size_t(t) * g.O * G * 4 + i];
        grad_coef[i] = T(s);
    }
}

Geometry geometry(int64_t B, int64_t C, int64_t H, int64_t W, int64_t O, int64_t depth, int64_t sh, int64_t sw,
                  int64_t ph, int64_t pw, int64_t Ho, int64_t Wo) {
    return Geometry{B, C, H, W, O, depth, sh, sw, ph, pw, Ho, Wo};
}

}  // namespace

extern "C" {

#define LGC_CONV_ARGS int64_t B, int64_t C, int64_t H, int64_t W, const int64_t *ch, const int64_t *dy, \
    const int64_t *dx, int64_t O, int64_t depth, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t Ho, int64_t Wo

int lgc_conv_tree_forward_f32(const float* x, LGC_CONV_ARGS, const float* coef, float* y, int threads) {
    if (depth < 1 || depth > 4) return 1;
    forward(x, geometry(B, C, H, W, O, depth, sh, sw, ph, pw, Ho, Wo), ch, dy, dx, coef, y, threads);
    return 0;
}
int lgc_conv_tree_forward_f64(const double* x, LGC_CONV_ARGS, const double* coef, double* y, int threads) {
    if (depth < 1 || depth > 4) return 1;
    forward(x, geometry(B, C, H, W, O, depth, sh, sw, ph, pw, Ho, Wo), ch, dy, dx, coef, y, threads);
    return 0;
}
int lgc_conv_tree_backward_f32(const float* x, LGC_CONV_ARGS, const float* coef, const float* grad_y, float* grad_x,
                               float* grad_coef, int threads) {
    if (depth < 1 || depth > 4) return 1;
    backward(x, geometry(B, C, H, W, O, depth, sh, sw, ph, pw, Ho, Wo), ch, dy, dx, coef, grad_y, grad_x, grad_coef,
             threads);
    return 0;
}
int lgc_conv_tree_backward_f64(const double* x, LGC_CONV_ARGS, const double* coef, const double* grad_y,
                               double* grad_x, double* grad_coef, int threads) {
    if (depth < 1 || depth > 4) return 1;
    backward(x, geometry(B, C, H, W, O, depth, sh, sw, ph, pw, Ho, Wo), ch, dy, dx, coef, grad_y, grad_x, grad_coef,
             threads);
    return 0;
}

}  // extern "C"
