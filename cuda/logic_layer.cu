// Training kernels of a relaxed logic layer on the GPU: torch-free, plain pointers, extern "C".
//
// Same contract as lgc/frontend/logic_layer_cpu.h. Layout is feature-major: x [in_dim, batch],
// y and grad_y [out_dim, batch]; c [out_dim, 4] holds each gate's relaxation coefficients, so
// y = c0 + c1 p + c2 q + c3 p q with p = x[a[i]], q = x[b[i]]. The backward pass writes
// grad_c [out_dim, 4] and, when grad_x is not null, grad_x [in_dim, batch] (zeroed here, then
// accumulated with atomics; a gate whose operands are the same node adds df/dp + df/dq once).
// Every launcher runs on the given stream and returns a cudaError_t code (0 = success).
#include <cuda_runtime.h>
#include <stdint.h>

#include "device_guard.cuh"

namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;

template <typename T>
__global__ void forward_kernel(const T* __restrict__ x, int64_t batch, const int64_t* __restrict__ a,
                               const int64_t* __restrict__ b, const T* __restrict__ c, T* __restrict__ y,
                               int64_t out_dim) {
    const int64_t total = out_dim * batch;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = idx / batch, j = idx - i * batch;
        const T p = x[a[i] * batch + j], q = x[b[i] * batch + j];
        const T* ci = c + 4 * i;
        y[idx] = ci[0] + ci[2] * q + p * (ci[1] + ci[3] * q);
    }
}

template <typename T>
__device__ T warp_sum(T v) {
    for (int off = kWarp / 2; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

// One warp per gate: lanes stride over the batch, sums are reduced across the warp.
template <typename T>
__global__ void backward_kernel(const T* __restrict__ x, int64_t batch, const int64_t* __restrict__ a,
                                const int64_t* __restrict__ b, const T* __restrict__ c,
                                const T* __restrict__ grad_y, int64_t out_dim, T* grad_x, T* __restrict__ grad_c) {
    const int lane = threadIdx.x % kWarp;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x / kWarp);
    for (int64_t i = blockIdx.x * (int64_t)(blockDim.x / kWarp) + threadIdx.x / kWarp; i < out_dim; i += warps) {
        const int64_t ia = a[i], ib = b[i];
        const T c1 = c[4 * i + 1], c2 = c[4 * i + 2], c3 = c[4 * i + 3];
        const T* p = x + ia * batch;
        const T* q = x + ib * batch;
        const T* g = grad_y + i * batch;
        T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (int64_t j = lane; j < batch; j += kWarp) {
            const T gj = g[j], pj = p[j], qj = q[j];
            s0 += gj;
            s1 += gj * pj;
            s2 += gj * qj;
            s3 += gj * pj * qj;
            if (grad_x != nullptr) {
                if (ia == ib) {
                    atomicAdd(grad_x + ia * batch + j, gj * (c1 + c2 + c3 * (pj + qj)));
                } else {
                    atomicAdd(grad_x + ia * batch + j, gj * (c1 + c3 * qj));
                    atomicAdd(grad_x + ib * batch + j, gj * (c2 + c3 * pj));
                }
            }
        }
        s0 = warp_sum(s0);
        s1 = warp_sum(s1);
        s2 = warp_sum(s2);
        s3 = warp_sum(s3);
        if (lane == 0) {
            grad_c[4 * i] = s0;
            grad_c[4 * i + 1] = s1;
            grad_c[4 * i + 2] = s2;
            grad_c[4 * i + 3] = s3;
        }
    }
}

int grid_for(int64_t work, int64_t per_block) {
    int64_t blocks = (work + per_block - 1) / per_block;
    if (blocks < 1) blocks = 1;
    if (blocks > 65535 * 8) blocks = 65535 * 8;  // grid-stride loops cover the rest
    return (int)blocks;
}

template <typename T>
int forward(const T* x, int64_t batch, const int64_t* a, const int64_t* b, const T* c, T* y, int64_t out_dim,
            int device, void* stream) {
    if (out_dim * batch == 0) return 0;
    lgc_cuda::DeviceGuard guard;
    cudaError_t e = guard.enter(device);
    if (e != cudaSuccess) return (int)e;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    forward_kernel<T><<<grid_for(out_dim * batch, kThreads), kThreads, 0, s>>>(x, batch, a, b, c, y, out_dim);
    return (int)cudaGetLastError();
}

template <typename T>
int backward(const T* x, int64_t in_dim, int64_t batch, const int64_t* a, const int64_t* b, const T* c,
             const T* grad_y, int64_t out_dim, T* grad_x, T* grad_c, int device, void* stream) {
    lgc_cuda::DeviceGuard guard;
    cudaError_t e0 = guard.enter(device);
    if (e0 != cudaSuccess) return (int)e0;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (grad_x != nullptr && in_dim * batch > 0) {
        cudaError_t e = cudaMemsetAsync(grad_x, 0, sizeof(T) * in_dim * batch, s);
        if (e != cudaSuccess) return (int)e;
    }
    if (out_dim == 0) return 0;
    backward_kernel<T><<<grid_for(out_dim, kThreads / kWarp), kThreads, 0, s>>>(x, batch, a, b, c, grad_y, out_dim,
                                                                                 grad_x, grad_c);
    return (int)cudaGetLastError();
}

}  // namespace

extern "C" {

int lgc_logic_forward_f32(const float* x, int64_t batch, const int64_t* a, const int64_t* b, const float* c,
                          float* y, int64_t out_dim, int device, void* stream) {
    return forward<float>(x, batch, a, b, c, y, out_dim, device, stream);
}

int lgc_logic_forward_f64(const double* x, int64_t batch, const int64_t* a, const int64_t* b, const double* c,
                          double* y, int64_t out_dim, int device, void* stream) {
    return forward<double>(x, batch, a, b, c, y, out_dim, device, stream);
}

int lgc_logic_backward_f32(const float* x, int64_t in_dim, int64_t batch, const int64_t* a, const int64_t* b,
                           const float* c, const float* grad_y, int64_t out_dim, float* grad_x, float* grad_c,
                           int device, void* stream) {
    return backward<float>(x, in_dim, batch, a, b, c, grad_y, out_dim, grad_x, grad_c, device, stream);
}

int lgc_logic_backward_f64(const double* x, int64_t in_dim, int64_t batch, const int64_t* a, const int64_t* b,
                           const double* c, const double* grad_y, int64_t out_dim, double* grad_x, double* grad_c,
                           int device, void* stream) {
    return backward<double>(x, in_dim, batch, a, b, c, grad_y, out_dim, grad_x, grad_c, device, stream);
}

// 0 when the kernels can run on `device` (driver new enough, code built for its architecture).
int lgc_cuda_probe(int device) {
    lgc_cuda::DeviceGuard guard;
    cudaError_t e = guard.enter(device);
    if (e != cudaSuccess) return (int)e;
    cudaFuncAttributes attr;
    e = cudaFuncGetAttributes(&attr, forward_kernel<float>);
    if (e != cudaSuccess) return (int)e;
    return (int)cudaFuncGetAttributes(&attr, backward_kernel<double>);
}

const char* lgc_cuda_error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // extern "C"
