// Training kernels of a logic-gate-tree convolution (LogicConv2d) on the GPU: torch-free, plain
// pointers, extern "C". Same contract as lgc/frontend/conv_tree_cpu.cpp:
//
// x [B, C, H, W] (NOT padded: reads outside the image are 0), y and grad_y [B, O, Ho, Wo].
// Tree of output channel o: leaf l (0..L-1, L = 2^depth) reads
// x[b, ch[o,l], oy*sh - ph + dy[o,l], ox*sw - pw + dx[o,l]]; nodes are leaves 0..L-1 then gates
// L..2L-2, gate k computes node L+k from nodes 2k, 2k+1 as c0 + c1 p + c2 q + c3 p q with
// c = coef[o, k, 0..3] (heap order: leaves' level first, root last).
// One thread per (sample, output channel, position) evaluates the whole tree in registers; the
// backward pass recomputes it, writes grad_coef [O, L-1, 4] (zeroed, then warp-reduced atomics)
// and, when grad_x is not null, grad_x [B, C, H, W] (zeroed, then atomics).
// Every launcher runs on the given stream and returns a cudaError_t code (0 = success).
#include <cuda_runtime.h>
#include <stdint.h>

#include "device_guard.cuh"

namespace {

constexpr int kThreads = 256;
constexpr unsigned kFull = 0xffffffffu;

struct Geometry {
    int64_t B, C, H, W, O, sh, sw, ph, pw, Ho, Wo;
};

template <typename T, int D>
__device__ __forceinline__ void load_tree(const T* __restrict__ x, const Geometry& g, const int64_t* __restrict__ ch,
                                          const int64_t* __restrict__ dy, const int64_t* __restrict__ dx, int64_t b,
                                          int64_t o, int64_t pos, T* v, int64_t* off) {
    constexpr int L = 1 << D;
    const int64_t oy = pos / g.Wo, ox = pos - oy * g.Wo;
    const int64_t by = oy * g.sh - g.ph, bx = ox * g.sw - g.pw;
#pragma unroll
    for (int l = 0; l < L; ++l) {
        const int64_t iy = by + dy[o * L + l], ix = bx + dx[o * L + l];
        const bool in = iy >= 0 && iy < g.H && ix >= 0 && ix < g.W;
        const int64_t at = ((b * g.C + ch[o * L + l]) * g.H + iy) * g.W + ix;
        off[l] = in ? at : -1;
        v[l] = in ? x[at] : T(0);
    }
}

template <typename T, int D>
__device__ __forceinline__ void eval_tree(const T* __restrict__ co, T* v) {
    constexpr int L = 1 << D;
#pragma unroll
    for (int k = 0; k < L - 1; ++k) {
        const T p = v[2 * k], q = v[2 * k + 1];
        v[L + k] = co[4 * k] + co[4 * k + 2] * q + p * (co[4 * k + 1] + co[4 * k + 3] * q);
    }
}

template <typename T, int D>
__global__ void forward_kernel(const T* __restrict__ x, Geometry g, const int64_t* __restrict__ ch,
                               const int64_t* __restrict__ dy, const int64_t* __restrict__ dx,
                               const T* __restrict__ coef, T* __restrict__ y) {
    constexpr int L = 1 << D;
    const int64_t P = g.Ho * g.Wo, total = g.B * g.O * P;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t pos = idx % P, bo = idx / P, o = bo % g.O, b = bo / g.O;
        T v[2 * L];
        int64_t off[L];
        load_tree<T, D>(x, g, ch, dy, dx, b, o, pos, v, off);
        eval_tree<T, D>(coef + o * (L - 1) * 4, v);
        y[idx] = v[2 * L - 2];
    }
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int s = 16; s > 0; s /= 2) v += __shfl_down_sync(kFull, v, s);
    return v;
}

// Adds s to *dst, summed over the warp first when every lane holds the same output channel.
template <typename T>
__device__ __forceinline__ void add_coef(T* dst, T s, bool same_o, bool lane0) {
    if (same_o) {
        s = warp_sum(s);
        if (lane0) atomicAdd(dst, s);
    } else {
        atomicAdd(dst, s);
    }
}

template <typename T, int D>
__global__ void backward_kernel(const T* __restrict__ x, Geometry g, const int64_t* __restrict__ ch,
                                const int64_t* __restrict__ dy, const int64_t* __restrict__ dx,
                                const T* __restrict__ coef, const T* __restrict__ grad_y, T* grad_x, T* grad_coef) {
    constexpr int L = 1 << D;
    const int64_t P = g.Ho * g.Wo, total = g.B * g.O * P;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    // Every lane runs the same number of iterations (inactive lanes contribute 0), so the warp
    // shuffles below always see all 32 lanes.
    const int64_t first = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t warp_first = first - (threadIdx.x % 32);
    for (int64_t base = warp_first; base < total; base += stride) {
        const int64_t idx = base + (threadIdx.x % 32);
        const bool active = idx < total;
        const int64_t safe = active ? idx : total - 1;
        const int64_t pos = safe % P, bo = safe / P, o = bo % g.O, b = bo / g.O;
        const int64_t o0 = __shfl_sync(kFull, o, 0);
        const bool same_o = __all_sync(kFull, o == o0) != 0;
        const bool lane0 = (threadIdx.x % 32) == 0;
        T v[2 * L], gv[2 * L];
        int64_t off[L];
        load_tree<T, D>(x, g, ch, dy, dx, b, o, pos, v, off);
        const T* co = coef + o * (L - 1) * 4;
        eval_tree<T, D>(co, v);
        gv[2 * L - 2] = active ? grad_y[idx] : T(0);
#pragma unroll
        for (int k = L - 2; k >= 0; --k) {
            const T gk = gv[L + k], p = v[2 * k], q = v[2 * k + 1];
            T* gc = grad_coef + (o * (L - 1) + k) * 4;
            add_coef(gc, gk, same_o, lane0);
            add_coef(gc + 1, gk * p, same_o, lane0);
            add_coef(gc + 2, gk * q, same_o, lane0);
            add_coef(gc + 3, gk * p * q, same_o, lane0);
            gv[2 * k] = gk * (co[4 * k + 1] + co[4 * k + 3] * q);
            gv[2 * k + 1] = gk * (co[4 * k + 2] + co[4 * k + 3] * p);
        }
        if (grad_x != nullptr && active) {
#pragma unroll
            for (int l = 0; l < L; ++l)
                if (off[l] >= 0) atomicAdd(grad_x + off[l], gv[l]);
        }
    }
}

int grid_for(int64_t work) {
    int64_t blocks = (work + kThreads - 1) / kThreads;
    if (blocks > 65535) blocks = 65535;
    return blocks < 1 ? 1 : (int)blocks;
}

template <typename T>
int launch_forward(const T* x, Geometry g, const int64_t* ch, const int64_t* dy, const int64_t* dx, int64_t depth,
                   const T* coef, T* y, int device, cudaStream_t stream) {
    lgc_cuda::DeviceGuard guard;
    cudaError_t e = guard.enter(device);
    if (e != cudaSuccess) return (int)e;
    if (g.B * g.O * g.Ho * g.Wo == 0) return 0;
    const int grid = grid_for(g.B * g.O * g.Ho * g.Wo);
    switch (depth) {
        case 1: forward_kernel<T, 1><<<grid, kThreads, 0, stream>>>(x, g, ch, dy, dx, coef, y); break;
        case 2: forward_kernel<T, 2><<<grid, kThreads, 0, stream>>>(x, g, ch, dy, dx, coef, y); break;
        case 3: forward_kernel<T, 3><<<grid, kThreads, 0, stream>>>(x, g, ch, dy, dx, coef, y); break;
        case 4: forward_kernel<T, 4><<<grid, kThreads, 0, stream>>>(x, g, ch, dy, dx, coef, y); break;
        default: return (int)cudaErrorInvalidValue;
    }
    return (int)cudaGetLastError();
}

template <typename T>
int launch_backward(const T* x, Geometry g, const int64_t* ch, const int64_t* dy, const int64_t* dx, int64_t depth,
                    const T* coef, const T* grad_y, T* grad_x, T* grad_coef, int device, cudaStream_t stream) {
    if (depth < 1 || depth > 4) return (int)cudaErrorInvalidValue;
    lgc_cuda::DeviceGuard guard;
    cudaError_t e = guard.enter(device);
    if (e != cudaSuccess) return (int)e;
    const int64_t gates = ((int64_t(1) << depth) - 1) * g.O;
    if (gates > 0) e = cudaMemsetAsync(grad_coef, 0, sizeof(T) * gates * 4, stream);
    if (e == cudaSuccess && grad_x != nullptr && g.B * g.C * g.H * g.W > 0)
        e = cudaMemsetAsync(grad_x, 0, sizeof(T) * g.B * g.C * g.H * g.W, stream);
    if (e != cudaSuccess) return (int)e;
    if (g.B * g.O * g.Ho * g.Wo == 0) return 0;
    const int grid = grid_for(g.B * g.O * g.Ho * g.Wo);
    switch (depth) {
        case 1: backward_kernel<T, 1><<<grid, kThreads, 0, stream>>>(x, g, ch, dy, dx, coef, grad_y, grad_x, grad_coef); break;
        case 2: backward_kernel<T, 2><<<grid, kThreads, 0, stream>>>(x, g, ch, dy, dx, coef, grad_y, grad_x, grad_coef); break;
        case 3: backward_kernel<T, 3><<<grid, kThreads, 0, stream>>>(x, g, ch, dy, dx, coef, grad_y, grad_x, grad_coef); break;
        default: backward_kernel<T, 4><<<grid, kThreads, 0, stream>>>(x, g, ch, dy, dx, coef, grad_y, grad_x, grad_coef); break;
    }
    return (int)cudaGetLastError();
}

}  // namespace

extern "C" {

#define LGC_CONV_ARGS int64_t B, int64_t C, int64_t H, int64_t W, const int64_t *ch, const int64_t *dy, \
    const int64_t *dx, int64_t O, int64_t depth, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t Ho, int64_t Wo
#define LGC_CONV_GEOMETRY Geometry{B, C, H, W, O, sh, sw, ph, pw, Ho, Wo}

// `device`: the CUDA device the pointers live on (made current for the call, then restored).
int lgc_conv_tree_forward_f32(const float* x, LGC_CONV_ARGS, const float* coef, float* y, int device, void* stream) {
    return launch_forward(x, LGC_CONV_GEOMETRY, ch, dy, dx, depth, coef, y, device, (cudaStream_t)stream);
}
int lgc_conv_tree_forward_f64(const double* x, LGC_CONV_ARGS, const double* coef, double* y, int device,
                              void* stream) {
    return launch_forward(x, LGC_CONV_GEOMETRY, ch, dy, dx, depth, coef, y, device, (cudaStream_t)stream);
}
int lgc_conv_tree_backward_f32(const float* x, LGC_CONV_ARGS, const float* coef, const float* grad_y, float* grad_x,
                               float* grad_coef, int device, void* stream) {
    return launch_backward(x, LGC_CONV_GEOMETRY, ch, dy, dx, depth, coef, grad_y, grad_x, grad_coef, device,
                           (cudaStream_t)stream);
}
int lgc_conv_tree_backward_f64(const double* x, LGC_CONV_ARGS, const double* coef, const double* grad_y,
                               double* grad_x, double* grad_coef, int device, void* stream) {
    return launch_backward(x, LGC_CONV_GEOMETRY, ch, dy, dx, depth, coef, grad_y, grad_x, grad_coef, device,
                           (cudaStream_t)stream);
}
const char* lgc_conv_error_string(int code) { return cudaGetErrorString((cudaError_t)code); }

}  // extern "C"
