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
// Also here: OR pooling (max pooling with its argmax) for OrPool2d, on the same pool.
#include <stdint.h>
#include <string.h>

#ifdef __AVX2__
#include <immintrin.h>
#endif

#include <algorithm>
#include <type_traits>
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

// OR pooling (lgc.frontend.conv.OrPool2d: max pooling, no padding) of x [planes, H, W] into y
// [planes, Ho, Wo]: the maximum of each kh x kw window at stride (sh, sw), and arg [planes, Ho, Wo]
// the window offset (row-major, dy * kw + dx) it came from, by torch's max_pool2d rule: the first
// maximum, a NaN taking the place of any number (so the last NaN). Planes split over the threads.
// off[k]: window offset k's element relative to the window's corner. (A plain function per range of
// planes, with restrict pointers: in a lambda, every uint8 store to arg may alias the captures.)
#ifdef __AVX2__
// One row of 2 x 2 windows at stride 2, float, 8 outputs at a time from the window rows r0 and r1:
// 16 values of each row split into even (dx = 0) and odd (dx = 1) columns, then max_pool2d's rule
// in its order (0, 0), (0, 1), (1, 0), (1, 1) by masks. Returns the outputs done (a multiple of 8).
inline int64_t or_pool_row_2x2_f32(const float* r0, const float* r1, int64_t Wo, int64_t W, float* y, uint8_t* arg) {
    int64_t ox = 0;
    const auto split = [](const float* r, __m256& even, __m256& odd) {
        const __m256 lo = _mm256_loadu_ps(r), hi = _mm256_loadu_ps(r + 8);
        even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8));
        odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8));
    };
    for (; ox + 8 <= Wo && 2 * ox + 16 <= W; ox += 8) {
        __m256 e0, o0, e1, o1;
        split(r0 + 2 * ox, e0, o0);
        split(r1 + 2 * ox, e1, o1);
        __m256 best = e0, at = _mm256_setzero_ps();  // at: the window offset as float lanes
        const __m256 vs[3] = {o0, e1, o1};
        for (int k = 0; k < 3; ++k) {
            const __m256 v = vs[k];
            const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            best = _mm256_blendv_ps(best, v, take);
            at = _mm256_blendv_ps(at, _mm256_set1_ps(float(k + 1)), take);
        }
        _mm256_storeu_ps(y + ox, best);
        alignas(32) int32_t idx[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(idx), _mm256_cvttps_epi32(at));
        for (int l = 0; l < 8; ++l) arg[ox + l] = uint8_t(idx[l]);
    }
    return ox;
}
#endif

// KH, KW, SH, SW > 0: the window and stride as constants (2 x 2 at stride 2, the usual pool, takes
// the AVX2 row function for float: 8 outputs per step; one output at a time the compare-selects
// compile to mispredicted branches: 1.9 ms against 0.3 for 1,536 planes of 18 x 18); 0: runtime.
template <typename T, int KH, int KW, int SH, int SW>
void or_pool_planes(const T* __restrict x, int64_t p0, int64_t p1, int64_t H, int64_t W, int64_t kh_, int64_t kw_,
                    int64_t sh_, int64_t sw_, int64_t Ho, int64_t Wo, T* __restrict y, uint8_t* __restrict arg) {
    const int64_t kh = KH ? KH : kh_, kw = KW ? KW : kw_, sh = SH ? SH : sh_, sw = SW ? SW : sw_;
    for (int64_t pl = p0; pl < p1; ++pl) {
        const T* xp = x + pl * H * W;
        T* yp = y + pl * Ho * Wo;
        uint8_t* ap = arg + pl * Ho * Wo;
        for (int64_t oy = 0; oy < Ho; ++oy) {
            int64_t ox = 0;
#ifdef __AVX2__
            if constexpr (std::is_same<T, float>::value && KH == 2 && KW == 2 && SH == 2 && SW == 2)
                ox = or_pool_row_2x2_f32(xp + 2 * oy * W, xp + (2 * oy + 1) * W, Wo, W, yp + oy * Wo, ap + oy * Wo);
#endif
            for (; ox < Wo; ++ox) {
                const T* w = xp + oy * sh * W + ox * sw;
                T best = w[0];
                int at = 0;
                for (int64_t dy = 0; dy < kh; ++dy)
                    for (int64_t dx = 0; dx < kw; ++dx) {
                        const T v = w[dy * W + dx];
                        const bool take = (v > best) | (v != v);  // max_pool2d's rule (the first (0, 0) is a no-op)
                        best = take ? v : best;
                        at = take ? int(dy * kw + dx) : at;
                    }
                yp[oy * Wo + ox] = best;
                ap[oy * Wo + ox] = uint8_t(at);
            }
        }
    }
}

template <typename T>
void or_pool_forward(const T* x, int64_t planes, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t sh,
                     int64_t sw, int64_t Ho, int64_t Wo, T* y, uint8_t* arg, int threads) {
    const int64_t per = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, Ho * Wo));  // planes per chunk
    const int64_t chunks = (planes + per - 1) / per;
    const bool two = kh == 2 && kw == 2 && sh == 2 && sw == 2;
    lgc::ChunkPool::get().run(chunks, planes * H * W < 65536 ? 1 : threads, [&](int64_t chunk) {
        const int64_t p0 = chunk * per, p1 = std::min(planes, (chunk + 1) * per);
        if (two) or_pool_planes<T, 2, 2, 2, 2>(x, p0, p1, H, W, kh, kw, sh, sw, Ho, Wo, y, arg);
        else or_pool_planes<T, 0, 0, 0, 0>(x, p0, p1, H, W, kh, kw, sh, sw, Ho, Wo, y, arg);
    });
}

// The backward of or_pool_forward: grad_x [planes, H, W] (zeroed here) receives each output's
// gradient at its window's arg, outputs in row-major order (max_pool2d's order: the same sums).
template <typename T>
void or_pool_grad_planes(const T* __restrict grad_y, const uint8_t* __restrict arg, int64_t p0, int64_t p1, int64_t H,
                         int64_t W, const int64_t* __restrict off, int64_t sh, int64_t sw, int64_t Ho, int64_t Wo,
                         T* __restrict grad_x) {
    for (int64_t pl = p0; pl < p1; ++pl) {
        T* gx = grad_x + pl * H * W;
        std::fill(gx, gx + H * W, T(0));
        const T* gy = grad_y + pl * Ho * Wo;
        const uint8_t* ap = arg + pl * Ho * Wo;
        for (int64_t oy = 0; oy < Ho; ++oy)
            for (int64_t ox = 0; ox < Wo; ++ox) gx[oy * sh * W + ox * sw + off[ap[oy * Wo + ox]]] += gy[oy * Wo + ox];
    }
}

template <typename T>
void or_pool_backward(const T* grad_y, const uint8_t* arg, int64_t planes, int64_t H, int64_t W, int64_t kw,
                      int64_t sh, int64_t sw, int64_t Ho, int64_t Wo, T* grad_x, int threads) {
    int64_t off[256];  // as in or_pool_forward (kh * kw <= 256 checked by the caller)
    for (int k = 0; k < 256; ++k) off[k] = (k / kw) * W + k % kw;
    const int64_t per = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, Ho * Wo));
    const int64_t chunks = (planes + per - 1) / per;
    lgc::ChunkPool::get().run(chunks, planes * H * W < 65536 ? 1 : threads, [&](int64_t chunk) {
        or_pool_grad_planes(grad_y, arg, chunk * per, std::min(planes, (chunk + 1) * per), H, W, off, sh, sw, Ho, Wo,
                            grad_x);
    });
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

#define LGC_POOL_ARGS int64_t planes, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t sh, int64_t sw, \
    int64_t Ho, int64_t Wo

// 0, or 1 for a geometry the kernel does not take (window over 256 values or outside the image)
static int pool_geometry_bad(LGC_POOL_ARGS) {
    return (planes < 0 || kh < 1 || kw < 1 || kh * kw > 256 || sh < 1 || sw < 1 || Ho < 0 || Wo < 0 ||
            (Ho > 0 && (Ho - 1) * sh + kh > H) || (Wo > 0 && (Wo - 1) * sw + kw > W)) ? 1 : 0;
}

int lgc_or_pool_forward_f32(const float* x, LGC_POOL_ARGS, float* y, uint8_t* arg, int threads) {
    if (pool_geometry_bad(planes, H, W, kh, kw, sh, sw, Ho, Wo)) return 1;
    or_pool_forward(x, planes, H, W, kh, kw, sh, sw, Ho, Wo, y, arg, threads);
    return 0;
}
int lgc_or_pool_forward_f64(const double* x, LGC_POOL_ARGS, double* y, uint8_t* arg, int threads) {
    if (pool_geometry_bad(planes, H, W, kh, kw, sh, sw, Ho, Wo)) return 1;
    or_pool_forward(x, planes, H, W, kh, kw, sh, sw, Ho, Wo, y, arg, threads);
    return 0;
}
int lgc_or_pool_backward_f32(const float* grad_y, const uint8_t* arg, LGC_POOL_ARGS, float* grad_x, int threads) {
    if (pool_geometry_bad(planes, H, W, kh, kw, sh, sw, Ho, Wo)) return 1;
    or_pool_backward(grad_y, arg, planes, H, W, kw, sh, sw, Ho, Wo, grad_x, threads);
    return 0;
}
int lgc_or_pool_backward_f64(const double* grad_y, const uint8_t* arg, LGC_POOL_ARGS, double* grad_x, int threads) {
    if (pool_geometry_bad(planes, H, W, kh, kw, sh, sw, Ho, Wo)) return 1;
    or_pool_backward(grad_y, arg, planes, H, W, kw, sh, sw, Ho, Wo, grad_x, threads);
    return 0;
}

}  // extern "C"
