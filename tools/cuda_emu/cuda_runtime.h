// A CPU emulation of the CUDA execution model, for running lgc's unchanged .cu files on a host
// with no GPU (tests and benchmarks/gpu.py --dry-run). It stands in for <cuda_runtime.h>: the
// .cu file is compiled as C++ by g++ after one source transform (tools/cuda_emu/__init__.py turns
// `kernel<<<grid, block, shmem, stream>>>(args)` into `::lgc_emu::Launch(grid, block, shmem,
// stream).run(kernel, args)`).
//
// What it models, and what it checks (a breach is recorded as a *violation*, read back with
// lgc_emu_violations(); tests fail on any):
// - Every CUDA thread is a fiber (ucontext) with its own threadIdx/blockIdx; blocks run one at a
//   time, the threads of a block cooperatively: a thread runs until it reaches a synchronising
//   primitive or exits. Blocks and threads run in forward, reverse or shuffled order
//   (lgc_emu_configure), so results that depend on the order of unsynchronised threads (races)
//   differ between runs.
// - Warps of 32 lanes (linear thread id / 32). __shfl_sync/__shfl_{up,down,xor}_sync,
//   __all_sync/__any_sync/__ballot_sync wait until every lane named by the mask has arrived at
//   the same primitive with the same mask; a named lane that has exited, does not exist (partial
//   warp) or waits at a different primitive is a violation. __syncthreads waits for the whole
//   block; a thread that exits while others wait there is a violation (a divergent barrier).
//   A state where no thread can move is a deadlock violation.
// - Launch shapes against CUDA's limits (block <= 1024 threads, block x/y <= 1024, z <= 64;
//   grid x <= 2^31 - 1, y/z <= 65535, no zero dimension): an illegal launch runs nothing, sets
//   cudaErrorInvalidConfiguration for cudaGetLastError and is a violation. Grid dimensions can be
//   capped (lgc_emu_configure) to exercise grid-stride loops with small problems: the kernel then
//   sees the capped gridDim, as if launched with it.
// - cudaMalloc fills new memory with a garbage byte (or random bytes), so reads of memory a
//   kernel never wrote show. Streams and events are ordered trivially: every call completes
//   before it returns. Device memory is host memory; pointers are not checked against buffers
//   (run under a sanitizer for that).
// - Counters: launches, blocks and threads run (lgc_emu_counters), for counting the work a
//   schedule issues.
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static  // blocks run one at a time, so one static copy is the block's
#define __launch_bounds__(...)

// ---------------------------------------------------------------- types of the runtime API

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
    unsigned x, y, z;
};
struct int4 {
    int x, y, z, w;
};

enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorLaunchFailure = 719,
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

struct CUstream_st;
typedef CUstream_st* cudaStream_t;
struct CUevent_st {
    double ms;
};
typedef CUevent_st* cudaEvent_t;

struct cudaFuncAttributes {
    size_t sharedSizeBytes, constSizeBytes, localSizeBytes;
    int maxThreadsPerBlock, numRegs, ptxVersion, binaryVersion;
};

// ---------------------------------------------------------------- the emulator

inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
constexpr int warpSize = 32;

namespace lgc_emu {

enum Wait { kNone = 0, kSync, kShflIdx, kShflUp, kShflDown, kShflXor, kAll, kAny, kBallot };
inline const char* wait_name(int w) {
    static const char* names[] = {"none", "__syncthreads", "__shfl_sync", "__shfl_up_sync", "__shfl_down_sync",
                                  "__shfl_xor_sync", "__all_sync", "__any_sync", "__ballot_sync"};
    return names[w];
}

struct Fiber {
    ucontext_t ctx;
    char* stack = nullptr;
    uint3 tid{0, 0, 0};
    int lane = 0, warp = 0;
    bool done = false;
    int wait = kNone;     // primitive this thread waits at (kNone: runnable)
    bool released = false;
    unsigned mask = 0;    // warp primitives: the mask passed
    int arg = 0;          // src lane / delta / lane mask
    int width = 32;
    uint64_t value = 0;   // this lane's operand
    uint64_t result = 0;  // filled at release
};

struct State {
    // configuration
    int order = 0;  // 0 forward, 1 reverse, 2 shuffled
    uint64_t seed = 1;
    unsigned cap[3] = {0, 0, 0};
    int garbage = 0xA5;  // -1: random bytes
    int device_count = 1;
    bool execute = true;  // false: launches are checked and counted, not run
    // state
    int device = 0;
    cudaError_t last_error = cudaSuccess;
    std::string violations;
    int64_t launches = 0, blocks = 0, threads = 0;
    std::set<void*> allocations;
    std::mt19937_64 rng{1};
    std::mutex lock;
    // the running block
    std::vector<Fiber> fibers;
    size_t stack_bytes = 128 * 1024;
    ucontext_t scheduler;
    Fiber* current = nullptr;
    const std::function<void()>* body = nullptr;
    std::string kernel;
};
inline State& S() {
    static State s;
    return s;
}

inline void violation(const std::string& what) {
    State& s = S();
    if (s.violations.size() < 8000) s.violations += "[" + s.kernel + "] " + what + "\n";
}

inline void trampoline() {
    State& s = S();
    (*s.body)();
    s.current->done = true;
    swapcontext(&s.current->ctx, &s.scheduler);  // never resumed
}

// Block here until the scheduler releases this thread from primitive `w`; returns the result.
inline uint64_t arrive(int w, unsigned mask, int arg, int width, uint64_t value) {
    State& s = S();
    Fiber* f = s.current;
    f->wait = w, f->mask = mask, f->arg = arg, f->width = width, f->value = value, f->released = false;
    swapcontext(&f->ctx, &s.scheduler);
    // resumed after release; the scheduler restored the thread's indices
    f->wait = kNone;
    return f->result;
}

template <typename T>
inline uint64_t bits_of(T v) {
    static_assert(sizeof(T) <= 8, "warp primitives on values up to 8 bytes");
    uint64_t u = 0;
    memcpy(&u, &v, sizeof(T));
    return u;
}
template <typename T>
inline T from_bits(uint64_t u) {
    T v;
    memcpy(&v, &u, sizeof(T));
    return v;
}

// The warp of the running block whose fibers are [first, first + n): release every group of
// lanes whose primitive all its named, live lanes have reached.
inline void try_release_warp(int first, int n) {
    State& s = S();
    std::vector<Fiber>& fs = s.fibers;
    for (int i = first; i < first + n; ++i) {
        Fiber& f = fs[i];
        if (f.done || f.wait == kNone || f.wait == kSync || f.released) continue;
        bool ready = true;
        std::string problems;
        for (int l = 0; l < 32; ++l) {
            if (!(f.mask >> l & 1)) continue;
            if (l >= n) {
                problems += std::string(wait_name(f.wait)) + " names lane " + std::to_string(l) +
                            " of a partial warp (" + std::to_string(n) + " lanes); ";
                continue;
            }
            Fiber& g = fs[first + l];
            if (g.done) {
                problems += std::string(wait_name(f.wait)) + " names lane " + std::to_string(l) + ", which has exited; ";
            } else if (g.wait == kNone || g.released) {
                ready = false;
            } else if (g.wait != f.wait || g.mask != f.mask) {
                problems += std::string("lanes of a warp wait at different primitives (") + wait_name(f.wait) +
                            ", " + wait_name(g.wait) + "); ";
            }
        }
        if (!ready) continue;
        if (!problems.empty()) violation(problems);
        auto member = [&](int l) {
            const Fiber& g = fs[first + l];
            return l < n && (f.mask >> l & 1) && !g.done && g.wait == f.wait && g.mask == f.mask && !g.released;
        };
        uint64_t all = 1, any = 0, ballot = 0;
        for (int l = 0; l < n; ++l) {
            if (!member(l)) continue;
            const uint64_t v = fs[first + l].value;
            all &= v != 0, any |= v != 0;
            if (v) ballot |= 1ull << l;
        }
        std::vector<int> group;
        for (int l = 0; l < n; ++l)
            if (member(l)) group.push_back(l);
        for (int l : group) {
            Fiber& g = fs[first + l];
            const int width = g.width, base = (l / width) * width;
            int src = l;
            switch (g.wait) {
                case kShflIdx: src = base + ((g.arg % width) + width) % width; break;
                case kShflUp: src = (l - base) >= g.arg ? l - g.arg : l; break;
                case kShflDown: src = (l - base) + g.arg < width ? l + g.arg : l; break;
                case kShflXor: src = ((l ^ g.arg) >= base && (l ^ g.arg) < base + width) ? (l ^ g.arg) : l; break;
                default: break;
            }
            if (g.wait == kAll) g.result = all;
            else if (g.wait == kAny) g.result = any;
            else if (g.wait == kBallot) g.result = ballot;
            else if (src < n && std::find(group.begin(), group.end(), src) != group.end()) g.result = fs[first + src].value;
            else {
                violation(std::string(wait_name(g.wait)) + " reads lane " + std::to_string(src) + ", which is not active");
                g.result = 0;
            }
        }
        for (int l : group) fs[first + l].released = true;
    }
}

inline void try_release_block() {
    State& s = S();
    bool any_sync = false, all_here = true, exited = false;
    for (Fiber& f : s.fibers) {
        if (f.done) {
            exited = true;
            continue;
        }
        if (f.wait == kSync && !f.released) any_sync = true;
        else all_here = false;
    }
    if (!any_sync || !all_here) return;
    if (exited) violation("__syncthreads reached by some threads of a block after others exited (divergent barrier)");
    for (Fiber& f : s.fibers)
        if (!f.done) f.released = true;
}

inline std::vector<size_t> ordering(size_t n) {
    State& s = S();
    std::vector<size_t> idx(n);
    for (size_t i = 0; i < n; ++i) idx[i] = i;
    if (s.order == 1) std::reverse(idx.begin(), idx.end());
    if (s.order == 2) std::shuffle(idx.begin(), idx.end(), s.rng);
    return idx;
}

inline void run_block(dim3 block, uint3 bid) {
    State& s = S();
    const int n = (int)(block.x * block.y * block.z);
    s.fibers.resize(std::max<size_t>(s.fibers.size(), (size_t)n));
    for (int t = 0; t < n; ++t) {
        Fiber& f = s.fibers[t];
        if (!f.stack) f.stack = (char*)malloc(s.stack_bytes);
        f.tid = uint3{(unsigned)(t % block.x), (unsigned)((t / block.x) % block.y), (unsigned)(t / (block.x * block.y))};
        f.lane = t % 32, f.warp = t / 32, f.done = false, f.wait = kNone, f.released = false;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = s.stack_bytes;
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, trampoline, 0);
    }
    const std::vector<size_t> order = ordering((size_t)n);
    int live = n;
    blockIdx = bid;
    while (live > 0) {
        bool progress = false;
        for (size_t i : order) {
            Fiber& f = s.fibers[i];
            if (f.done || (f.wait != kNone && !f.released)) continue;
            s.current = &f;
            threadIdx = f.tid;
            swapcontext(&s.scheduler, &f.ctx);
            progress = true;
            const int first = f.warp * 32, lanes = std::min(32, n - first);
            if (f.done) --live;
            try_release_warp(first, lanes);
            try_release_block();
        }
        if (!progress && live > 0) {
            std::string where;
            for (int t = 0; t < n; ++t)
                if (!s.fibers[t].done) {
                    where = std::string("thread ") + std::to_string(t) + " waits at " + wait_name(s.fibers[t].wait);
                    break;
                }
            violation("deadlock: no thread of block (" + std::to_string(bid.x) + "," + std::to_string(bid.y) + "," +
                      std::to_string(bid.z) + ") can move (" + where + "; " + std::to_string(live) + " threads left)");
            // abandon the stuck fibers: their contexts are rebuilt by the next block
            break;
        }
    }
}

inline bool legal_launch(dim3 grid, dim3 block, std::string* why) {
    const uint64_t threads = (uint64_t)block.x * block.y * block.z;
    if (!grid.x || !grid.y || !grid.z || !block.x || !block.y || !block.z) *why = "a zero grid or block dimension";
    else if (threads > 1024) *why = "block of " + std::to_string(threads) + " threads (limit 1024)";
    else if (block.x > 1024 || block.y > 1024 || block.z > 64) *why = "block dimension beyond 1024 x 1024 x 64";
    else if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
        *why = "grid (" + std::to_string(grid.x) + ", " + std::to_string(grid.y) + ", " + std::to_string(grid.z) +
               ") beyond (2^31 - 1, 65535, 65535)";
    else return true;
    return false;
}

struct Launch {
    dim3 grid, block;
    size_t shmem;
    Launch(dim3 g, dim3 b, size_t sh = 0, cudaStream_t = nullptr) : grid(g), block(b), shmem(sh) {}

    template <typename... P, typename... A>
    void run(const char* name, void (*kernel)(P...), A&&... args) {
        State& s = S();
        std::lock_guard<std::mutex> guard(s.lock);
        s.kernel = name;
        std::string why;
        if (!legal_launch(grid, block, &why)) {
            s.last_error = cudaErrorInvalidConfiguration;
            violation("illegal launch: " + why);
            return;
        }
        if (shmem > 48 * 1024) {
            s.last_error = cudaErrorInvalidValue;
            violation("dynamic shared memory beyond 48 KiB");
            return;
        }
        dim3 g = grid;
        if (s.cap[0]) g.x = std::min(g.x, s.cap[0]);
        if (s.cap[1]) g.y = std::min(g.y, s.cap[1]);
        if (s.cap[2]) g.z = std::min(g.z, s.cap[2]);
        std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
        std::function<void()> body = [&]() { std::apply(kernel, params); };
        s.body = &body;
        gridDim = g, blockDim = block;
        const size_t nblocks = (size_t)g.x * g.y * g.z;
        ++s.launches;
        s.blocks += (int64_t)nblocks;
        s.threads += (int64_t)nblocks * block.x * block.y * block.z;
        if (!s.execute) return;
        for (size_t i : ordering(nblocks)) {
            uint3 bid{(unsigned)(i % g.x), (unsigned)((i / g.x) % g.y), (unsigned)(i / ((size_t)g.x * g.y))};
            run_block(block, bid);
        }
        s.body = nullptr;
    }
};

template <typename T>
inline T shfl(int w, unsigned mask, T v, int arg, int width) {
    if (width < 1 || width > 32 || (width & (width - 1))) violation("shuffle width must be a power of 2 up to 32");
    return from_bits<T>(arrive(w, mask, arg, width, bits_of(v)));
}

}  // namespace lgc_emu

// ---------------------------------------------------------------- device functions

inline void __syncthreads() { lgc_emu::arrive(lgc_emu::kSync, 0, 0, 32, 0); }
template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    return lgc_emu::shfl(lgc_emu::kShflIdx, mask, v, src, width);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return lgc_emu::shfl(lgc_emu::kShflUp, mask, v, (int)delta, width);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return lgc_emu::shfl(lgc_emu::kShflDown, mask, v, (int)delta, width);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    return lgc_emu::shfl(lgc_emu::kShflXor, mask, v, lane_mask, width);
}
inline int __all_sync(unsigned mask, int pred) { return (int)lgc_emu::arrive(lgc_emu::kAll, mask, 0, 32, pred != 0); }
inline int __any_sync(unsigned mask, int pred) { return (int)lgc_emu::arrive(lgc_emu::kAny, mask, 0, 32, pred != 0); }
inline unsigned __ballot_sync(unsigned mask, int pred) {
    return (unsigned)lgc_emu::arrive(lgc_emu::kBallot, mask, 0, 32, pred != 0);
}
// One OS thread runs every CUDA thread and switches only at the primitives above, so a
// read-modify-write is atomic here.
template <typename T>
inline T atomicAdd(T* p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}
template <typename T>
inline T atomicMax(T* p, T v) {
    T old = *p;
    *p = old > v ? old : v;
    return old;
}
template <typename T>
inline T atomicOr(T* p, T v) {
    T old = *p;
    *p = old | v;
    return old;
}
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clzll(long long v) { return v ? __builtin_clzll((unsigned long long)v) : 64; }
inline int __popc(unsigned v) { return __builtin_popcount(v); }

// ---------------------------------------------------------------- runtime API

inline cudaError_t lgc_emu_status(cudaError_t e) {
    if (e != cudaSuccess) lgc_emu::S().last_error = e;
    return e;
}
inline cudaError_t cudaGetLastError() {
    cudaError_t e = lgc_emu::S().last_error;
    lgc_emu::S().last_error = cudaSuccess;
    return e;
}
inline cudaError_t cudaPeekAtLastError() { return lgc_emu::S().last_error; }
inline const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
        default: return "unknown error";
    }
}
inline cudaError_t cudaGetDeviceCount(int* n) {
    *n = lgc_emu::S().device_count;
    return *n ? cudaSuccess : lgc_emu_status(cudaErrorNoDevice);
}
inline cudaError_t cudaSetDevice(int d) {
    if (d < 0 || d >= lgc_emu::S().device_count) return lgc_emu_status(cudaErrorInvalidDevice);
    lgc_emu::S().device = d;
    return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) {
    *d = lgc_emu::S().device;
    return cudaSuccess;
}
inline cudaError_t cudaMalloc(void** p, size_t bytes) {
    lgc_emu::State& s = lgc_emu::S();
    *p = aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
    if (!*p) return lgc_emu_status(cudaErrorMemoryAllocation);
    if (s.garbage >= 0) {
        memset(*p, s.garbage, bytes);
    } else {
        for (size_t i = 0; i < bytes; ++i) ((unsigned char*)*p)[i] = (unsigned char)s.rng();
    }
    s.allocations.insert(*p);
    return cudaSuccess;
}
template <typename T>
inline cudaError_t cudaMalloc(T** p, size_t bytes) {
    return cudaMalloc((void**)p, bytes);
}
inline cudaError_t cudaFree(void* p) {
    if (!p) return cudaSuccess;
    lgc_emu::State& s = lgc_emu::S();
    if (!s.allocations.erase(p)) {
        lgc_emu::violation("cudaFree of a pointer cudaMalloc did not return");
        return lgc_emu_status(cudaErrorInvalidValue);
    }
    free(p);
    return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t = nullptr) {
    return cudaMemcpy(dst, src, bytes, kind);
}
inline cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                                     size_t height, cudaMemcpyKind, cudaStream_t = nullptr) {
    if (width > dpitch || width > spitch) return lgc_emu_status(cudaErrorInvalidValue);
    for (size_t r = 0; r < height; ++r) memmove((char*)dst + r * dpitch, (const char*)src + r * spitch, width);
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t bytes, cudaStream_t = nullptr) {
    memset(p, v, bytes);
    return cudaSuccess;
}
inline cudaError_t cudaMemset(void* p, int v, size_t bytes) { return cudaMemsetAsync(p, v, bytes); }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
    *e = new CUevent_st{0};
    return cudaSuccess;
}
constexpr unsigned cudaEventDisableTiming = 2;
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t = nullptr) {
    e->ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
    return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned = 0) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = (float)(b->ms - a->ms);
    return cudaSuccess;
}
template <typename F>
inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, F) {
    memset(attr, 0, sizeof(*attr));
    attr->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}

// ---------------------------------------------------------------- control, for the tests

#define LGC_EMU_API extern "C" __attribute__((visibility("default")))
// order: 0 forward, 1 reverse, 2 shuffled (seeded); cap_*: 0 = no cap; garbage: fill byte, -1 random.
LGC_EMU_API void lgc_emu_configure(int order, uint64_t seed, unsigned cap_x, unsigned cap_y, unsigned cap_z, int garbage,
                              int device_count) {
    lgc_emu::State& s = lgc_emu::S();
    s.order = order, s.seed = seed, s.rng.seed(seed);
    s.cap[0] = cap_x, s.cap[1] = cap_y, s.cap[2] = cap_z;
    s.garbage = garbage, s.device_count = device_count;
}
// execute 0: launches are checked and counted but not run (counting the work of big problems)
LGC_EMU_API void lgc_emu_set_execute(int execute) { lgc_emu::S().execute = execute != 0; }
LGC_EMU_API const char* lgc_emu_violations() { return lgc_emu::S().violations.c_str(); }
LGC_EMU_API void lgc_emu_clear() {
    lgc_emu::State& s = lgc_emu::S();
    s.violations.clear();
    s.last_error = cudaSuccess;
    s.launches = s.blocks = s.threads = 0;
}
LGC_EMU_API void lgc_emu_counters(int64_t* out) {
    lgc_emu::State& s = lgc_emu::S();
    out[0] = s.launches, out[1] = s.blocks, out[2] = s.threads;
}
LGC_EMU_API int64_t lgc_emu_live_allocations() { return (int64_t)lgc_emu::S().allocations.size(); }
