// Shared by lgc's CUDA sources: each is built into its own shared library that links its own CUDA
// runtime, whose current device is not PyTorch's, so every entry point makes its tensors' device
// current for the call and restores the caller's device on every return path.
#pragma once
#include <cuda_runtime.h>

namespace lgc_cuda {

struct DeviceGuard {
    int prev = -1;
    bool switched = false;
    cudaError_t enter(int device) {
        cudaError_t e = cudaGetDevice(&prev);
        if (e == cudaSuccess && prev != device) {
            e = cudaSetDevice(device);
            switched = e == cudaSuccess;
        }
        return e;
    }
    ~DeviceGuard() {
        if (switched) cudaSetDevice(prev);
    }
};

}  // namespace lgc_cuda
