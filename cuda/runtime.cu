// lgc packed-bits runtime: run a compiled logic-gate Circuit on the GPU, 64 samples per uint64 word.
//
// Torch-free: plain pointers and extern "C" launchers, loaded by lgc/backends/cuda.py with ctypes.
//
// Why table-driven and not generated code: the circuit arrives as data (one int4 row per gate:
// slot of operand a, slot of operand b, slot of the result, 4-bit truth table), so this file is
// compiled ONCE per toolkit (cached by content hash) and then runs any circuit of any size with no
// per-circuit nvcc call. Generated straight-line kernels would cost an nvcc build per network
// (minutes for millions of gates, the trap difflogic's compiled C falls into) and would not even
// be faster here: each gate is two 8-byte loads and one store per word, so the kernel is bound by
// memory bandwidth, not by the instruction stream; a table row is a 16-byte broadcast load that the
// 32 threads of a row share.
//
// Execution: gates sorted by level (lgc.ir.levels; rows of one level never read each other), one
// kernel launch per level over (gate, word) pairs. Launches are stream-ordered, so level L+1 sees
// every value of level L with no grid-wide barrier.
//
// Memory: node values live in *slots* assigned by liveness (lgc/backends/_schedule.py): a slot is
// recycled once the last level that reads it has run, so a chunk needs (inputs + widest live cut)
// slots, not one per node (for a layered net: about two live layers). The batch is processed in
// chunks of `chunk_words` words (64 samples each), sized by the caller so that
// n_slots * chunk_words * 8 bytes fit its memory budget; values are laid out [slot][chunk_words]
// so the threads of a warp touch consecutive words (coalesced).
//
// Readout: with a group-sum head, one thread per (class, word, part of the class's group) adds those
// output words into a bit-sliced vertical counter (plane p holds bit p of 64 per-sample counts; adding a word is a
// ripple of AND/XOR that stops when no lane carries), then extracts the 64 counts: a few word
// operations per output word instead of one bit extraction per (sample, output); parts add their
// counts atomically (see group_sum_parts).
// Without a head, one thread per (sample, output) writes the output bit as a byte.
//
// Error convention: every extern "C" function returns 0 on success, a cudaError_t (> 0), or
// LGC_CU_EBADARG (< 0); lgc_cu_error_string names it.
#include <cuda_runtime.h>
#include <stdint.h>

#include "device_guard.cuh"

#define LGC_CU_EBADARG (-1)
#define LGC_CU_PLANES 24  // group sizes up to 2^24 - 1 output bits per class
// Most blocks one level's launch uses: several times what any current GPU holds at once (an H200
// runs 132 SMs x 8 blocks of 256 threads). Past it the blocks' threads loop over rows (the kernel
// is grid-stride along rows) instead of the launch asking for one tiny block per row or two: on a
// 48K-gate net at 2^22 samples that was ~360,000 blocks per level, each doing 256 word-gates.
#define LGC_CU_LEVEL_BLOCKS 16384

#define CK(call)                                   \
    do {                                           \
        cudaError_t err_ = (call);                 \
        if (err_ != cudaSuccess) return (int)err_; \
    } while (0)

struct LgcNet {
    int64_t n_in, n_slots, n_rows, n_levels, n_out, k;
    int4 *rows;             // device [n_rows] (a slot, b slot, result slot, truth table)
    int64_t *level_bounds;  // host [n_levels + 1]
    int32_t *out_slots;     // device [n_out]
    int device;
    // grow-only workspace, reused between calls (a net runs one call at a time; the binding locks)
    void *work;
    size_t work_bytes;
    // recorded after each run's last use of the workspace, on that run's stream; the next run's
    // stream waits for it, so runs on different streams never share the workspace at once
    cudaEvent_t done;
};

// ---------------------------------------------------------------- kernels

// bytes rows x[ns, n_in] (0 / nonzero) -> words dst[i * pitch + w], w < cw; sample s = bit s%64 of
// word s/64; bits past ns are zero. Threads run along i, so a warp reads 32 consecutive bytes of a row.
__global__ void lgc_pack_rows(const uint8_t *__restrict__ x, int64_t n_in, int64_t ns, uint64_t *__restrict__ dst,
                              int64_t pitch, int64_t cw) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= n_in) return;
    for (int64_t w = blockIdx.y; w < cw; w += gridDim.y) {
        int64_t s = w * 64;
        int64_t m = ns - s < 64 ? ns - s : 64;
        const uint8_t *p = x + s * n_in + i;
        uint64_t word = 0;
        for (int64_t j = 0; j < m; ++j) word |= (uint64_t)(p[j * n_in] != 0) << j;
        dst[i * pitch + w] = word;
    }
}

// One level: rows[0 .. nrows) over words [0, cw). threadIdx.x runs along words, threadIdx.y along rows.
__global__ void lgc_eval_level(const int4 *__restrict__ rows, int64_t nrows, uint64_t *v, int64_t cw) {
    int64_t w = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (w >= cw) return;
    for (int64_t r = blockIdx.y * (int64_t)blockDim.y + threadIdx.y; r < nrows; r += (int64_t)gridDim.y * blockDim.y) {
        int4 g = rows[r];
        uint64_t a = v[(int64_t)g.x * cw + w];
        uint64_t b = v[(int64_t)g.y * cw + w];
        uint64_t t = (uint64_t)(uint32_t)g.w;
        // f(a, b) = bit (3 - 2a - b) of the op code: a mask per minterm, no branch per op
        uint64_t res = ((0 - ((t >> 3) & 1)) & ~a & ~b) | ((0 - ((t >> 2) & 1)) & ~a & b) |
                       ((0 - ((t >> 1) & 1)) & a & ~b) | ((0 - (t & 1)) & a & b);
        v[(int64_t)g.z * cw + w] = res;
    }
}

// Group-sum readout: scores[s, c] (s < ns) = number of set bits at sample s among class c's outputs.
// Thread (word w, class c, part z) adds outputs [z * per, (z + 1) * per) of the class's group; with one
// part it stores the counts, with several it adds them to scores (zeroed first) with atomicAdd, so a
// class's group is split across threads when one thread per (class, word) would leave the GPU idle
// (a 2^16-sample batch is 1,024 words: 10 classes gave 10,240 threads each adding 800 words).
__global__ void lgc_group_sum(const uint64_t *__restrict__ v, int64_t cw, const int32_t *__restrict__ out_slots,
                              int64_t group, int64_t per, int64_t k, int64_t ns, int32_t *__restrict__ scores) {
    int64_t w = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (w >= cw) return;
    bool accumulate = per < group;
    for (int64_t c = blockIdx.y; c < k; c += gridDim.y) {
        for (int64_t o0 = (int64_t)blockIdx.z * per; o0 < group; o0 += (int64_t)gridDim.z * per) {
            int64_t o1 = o0 + per < group ? o0 + per : group;
            int n_planes = 64 - __clzll((unsigned long long)(o1 - o0));  // planes that can hold o1 - o0
            uint64_t pl[LGC_CU_PLANES];
#pragma unroll
            for (int p = 0; p < LGC_CU_PLANES; ++p) pl[p] = 0;
            const int32_t *slots = out_slots + c * group;
            for (int64_t o = o0; o < o1; ++o) {
                uint64_t x = v[(int64_t)slots[o] * cw + w];
#pragma unroll
                for (int p = 0; p < LGC_CU_PLANES; ++p) {
                    if (!x) break;
                    uint64_t carry = pl[p] & x;
                    pl[p] ^= x;
                    x = carry;
                }
            }
            int64_t s0 = w * 64;
            int m = ns - s0 < 64 ? (int)(ns - s0) : 64;
            for (int j = 0; j < m; ++j) {
                int32_t cnt = 0;
#pragma unroll
                for (int p = 0; p < LGC_CU_PLANES; ++p)
                    if (p < n_planes) cnt |= (int32_t)((pl[p] >> j) & 1) << p;
                if (!accumulate)
                    scores[(s0 + j) * k + c] = cnt;
                else if (cnt)
                    atomicAdd(&scores[(s0 + j) * k + c], cnt);
            }
        }
    }
}

// Raw output bits: bits[s, o] = bit s of output o, for s < ns.
__global__ void lgc_output_bits(const uint64_t *__restrict__ v, int64_t cw, const int32_t *__restrict__ out_slots,
                                int64_t n_out, int64_t ns, uint8_t *__restrict__ bits) {
    int64_t total = ns * n_out;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
        int64_t s = t / n_out, o = t - s * n_out;
        bits[t] = (uint8_t)((v[(int64_t)out_slots[o] * cw + (s >> 6)] >> (s & 63)) & 1);
    }
}

// ---------------------------------------------------------------- host helpers

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static int grid_limit(int64_t blocks) { return (int)(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535); }

// Parts the group-sum readout splits each class's group into: doubled while the launch has fewer than
// 2^18 threads (an H200 holds 132 x 2,048 at once) and each part still adds at least 32 output words
// (below that, extracting and adding a part's 64 counts costs more than its words); at most 1,024.
static int64_t group_sum_parts(int64_t cw, int64_t k, int64_t group) {
    int64_t parts = 1;
    while (parts < 1024 && parts * 64 <= group && cw * k * parts < ((int64_t)1 << 18)) parts *= 2;
    return parts;
}

static int launch_pack(const uint8_t *x, int64_t n_in, int64_t ns, uint64_t *dst, int64_t pitch, int64_t cw,
                       cudaStream_t stream) {
    if (n_in == 0 || cw == 0) return 0;
    dim3 block(128);
    dim3 grid((unsigned)ceil_div(n_in, 128), grid_limit(cw));
    lgc_pack_rows<<<grid, block, 0, stream>>>(x, n_in, ns, dst, pitch, cw);
    CK(cudaGetLastError());
    return 0;
}

static int launch_level(const int4 *rows, int64_t nrows, uint64_t *v, int64_t cw, cudaStream_t stream) {
    if (nrows == 0 || cw == 0) return 0;
    int bx = 1;
    while (bx < cw && bx < 256) bx <<= 1;  // words per block; the rest of 256 threads go along rows
    int by = 256 / bx;
    dim3 block(bx, by);
    int64_t gx = ceil_div(cw, bx), gy = ceil_div(nrows, by);
    if (gy * gx > LGC_CU_LEVEL_BLOCKS) gy = LGC_CU_LEVEL_BLOCKS / gx > 0 ? LGC_CU_LEVEL_BLOCKS / gx : 1;
    dim3 grid((unsigned)gx, grid_limit(gy));
    lgc_eval_level<<<grid, block, 0, stream>>>(rows, nrows, v, cw);
    CK(cudaGetLastError());
    return 0;
}

extern "C" {

const char *lgc_cu_error_string(int code) {
    if (code == 0) return "no error";
    if (code == LGC_CU_EBADARG) return "invalid argument to the lgc CUDA runtime";
    return cudaGetErrorString((cudaError_t)code);
}

int lgc_cu_device_count(int *count) {
    *count = 0;
    CK(cudaGetDeviceCount(count));
    return 0;
}

int lgc_cu_malloc(void **ptr, int64_t bytes) {
    *ptr = nullptr;
    if (bytes <= 0) return 0;
    CK(cudaMalloc(ptr, (size_t)bytes));
    return 0;
}

int lgc_cu_free(void *ptr) {
    if (ptr) CK(cudaFree(ptr));
    return 0;
}

// cudaMemcpyDefault: unified addressing tells host from device pointers. Synchronous.
int lgc_cu_memcpy(void *dst, const void *src, int64_t bytes) {
    if (bytes > 0) CK(cudaMemcpy(dst, src, (size_t)bytes, cudaMemcpyDefault));
    return 0;
}

int lgc_cu_synchronize(void) {
    CK(cudaDeviceSynchronize());
    return 0;
}

// Upload a net's tables (host arrays). rows: int32[n_rows, 4]; level_bounds: int64[n_levels + 1]
// (level L's rows are [level_bounds[L], level_bounds[L+1])); out_slots: int32[n_out]; k = 0: no head.
int lgc_cu_net_create(int64_t n_in, int64_t n_slots, int64_t n_rows, const int32_t *rows, int64_t n_levels,
                      const int64_t *level_bounds, int64_t n_out, const int32_t *out_slots, int64_t k, void **handle) {
    *handle = nullptr;
    if (n_in < 0 || n_slots < n_in || n_rows < 0 || n_levels < 0 || n_out < 0 || k < 0 || (k && n_out % k)) return LGC_CU_EBADARG;
    if (k && n_out / k >= (1LL << LGC_CU_PLANES)) return LGC_CU_EBADARG;
    if (level_bounds[0] != 0 || level_bounds[n_levels] != n_rows) return LGC_CU_EBADARG;
    for (int64_t r = 0; r < n_rows; ++r)
        for (int j = 0; j < 3; ++j)
            if (rows[4 * r + j] < 0 || rows[4 * r + j] >= n_slots) return LGC_CU_EBADARG;
    for (int64_t o = 0; o < n_out; ++o)
        if (out_slots[o] < 0 || out_slots[o] >= n_slots) return LGC_CU_EBADARG;
    LgcNet *net = new LgcNet();
    net->n_in = n_in, net->n_slots = n_slots, net->n_rows = n_rows, net->n_levels = n_levels;
    net->n_out = n_out, net->k = k;
    net->level_bounds = new int64_t[n_levels + 1];
    for (int64_t i = 0; i <= n_levels; ++i) net->level_bounds[i] = level_bounds[i];
    int rc = (int)cudaGetDevice(&net->device);
    if (!rc && n_rows) rc = (int)cudaMalloc((void **)&net->rows, sizeof(int4) * n_rows);
    if (!rc && n_rows) rc = (int)cudaMemcpy(net->rows, rows, sizeof(int4) * n_rows, cudaMemcpyHostToDevice);
    if (!rc && n_out) rc = (int)cudaMalloc((void **)&net->out_slots, sizeof(int32_t) * n_out);
    if (!rc && n_out) rc = (int)cudaMemcpy(net->out_slots, out_slots, sizeof(int32_t) * n_out, cudaMemcpyHostToDevice);
    if (!rc) rc = (int)cudaEventCreateWithFlags(&net->done, cudaEventDisableTiming);
    if (rc) {
        if (net->done) cudaEventDestroy(net->done);
        cudaFree(net->rows);
        cudaFree(net->out_slots);
        delete[] net->level_bounds;
        delete net;
        return rc;
    }
    *handle = net;
    return 0;
}

int lgc_cu_net_free(void *handle) {
    LgcNet *net = (LgcNet *)handle;
    if (!net) return 0;
    lgc_cuda::DeviceGuard guard;
    CK(guard.enter(net->device));
    cudaEventDestroy(net->done);
    cudaFree(net->rows);
    cudaFree(net->out_slots);
    cudaFree(net->work);
    delete[] net->level_bounds;
    delete net;
    return 0;
}

int lgc_cu_net_device(void *handle) { return ((LgcNet *)handle)->device; }

// Pack a whole device batch of byte rows x[n, n_in] into device words dst[n_in][wstride] (first
// ceil(n/64) words of each row written, padding bits zero).
int lgc_cu_pack(const uint8_t *x, int64_t n, int64_t n_in, uint64_t *dst, int64_t wstride, void *stream) {
    if (n < 0 || n_in < 0 || wstride < ceil_div(n, 64)) return LGC_CU_EBADARG;
    return launch_pack(x, n_in, n, dst, wstride, ceil_div(n, 64), (cudaStream_t)stream);
}

// Run the net on n samples.
//   x_kind 0: x is host byte rows [n, n_in]      1: device byte rows [n, n_in]
//          2: x is host words [n_in][wstride]     3: device words [n_in][wstride]
//   out: int32 scores [n, k] (k > 0) or uint8 bits [n, n_out] (k == 0); out_on_device 0/1.
//   chunk_words: words (64 samples) per chunk; the workspace holds n_slots * chunk_words words.
// Ordered on `stream` (0: the default stream); returns after the work is queued when both x and out
// are on the device, else after it has finished.
int lgc_cu_run(void *handle, const void *x, int x_kind, int64_t wstride, int64_t n, void *out, int out_on_device,
               int64_t chunk_words, void *stream_ptr) {
    LgcNet *net = (LgcNet *)handle;
    cudaStream_t stream = (cudaStream_t)stream_ptr;
    if (!net || n < 0 || chunk_words < 1 || x_kind < 0 || x_kind > 3) return LGC_CU_EBADARG;
    if (x_kind >= 2 && wstride < ceil_div(n, 64)) return LGC_CU_EBADARG;
    if (n == 0) return 0;
    int64_t total_words = ceil_div(n, 64);
    int64_t cw_max = chunk_words < total_words ? chunk_words : total_words;
    int64_t width = net->k ? net->k : net->n_out;
    size_t out_elem = net->k ? sizeof(int32_t) : sizeof(uint8_t);
    size_t values_bytes = (size_t)net->n_slots * cw_max * 8;
    size_t stage_bytes = x_kind == 0 ? (size_t)cw_max * 64 * net->n_in : 0;
    size_t outbuf_bytes = out_on_device ? 0 : (size_t)cw_max * 64 * width * out_elem;
    size_t need = values_bytes + 256 + stage_bytes + 256 + outbuf_bytes + 256;
    lgc_cuda::DeviceGuard guard;
    CK(guard.enter(net->device));
    CK(cudaStreamWaitEvent(stream, net->done, 0));  // the previous run (any stream) is done with the workspace
    if (net->work_bytes < need) {
        if (net->work) {
            CK(cudaDeviceSynchronize());  // earlier calls may still use it, on any stream
            CK(cudaFree(net->work));
        }
        net->work = nullptr;
        net->work_bytes = 0;
        CK(cudaMalloc(&net->work, need));
        net->work_bytes = need;
    }
    char *base = (char *)net->work;
    uint64_t *values = (uint64_t *)base;
    uint8_t *stage = (uint8_t *)(base + ((values_bytes + 255) & ~(size_t)255));
    char *outbuf = (char *)stage + ((stage_bytes + 255) & ~(size_t)255);
    int host_sync = x_kind == 0 || x_kind == 2 || !out_on_device;

    for (int64_t w0 = 0; w0 < total_words; w0 += cw_max) {
        int64_t cw = total_words - w0 < cw_max ? total_words - w0 : cw_max;
        int64_t s0 = w0 * 64;
        int64_t ns = n - s0 < cw * 64 ? n - s0 : cw * 64;
        // inputs -> slots 0 .. n_in-1 (row pitch cw)
        if (net->n_in) {
            if (x_kind == 0) {
                // the staging buffer and outbuf are reused by the next chunk: safe, as copies and
                // kernels on one stream run in order
                CK(cudaMemcpyAsync(stage, (const uint8_t *)x + s0 * net->n_in, (size_t)ns * net->n_in,
                                   cudaMemcpyHostToDevice, stream));
                int rc = launch_pack(stage, net->n_in, ns, values, cw, cw, stream);
                if (rc) return rc;
            } else if (x_kind == 1) {
                int rc = launch_pack((const uint8_t *)x + s0 * net->n_in, net->n_in, ns, values, cw, cw, stream);
                if (rc) return rc;
            } else {
                CK(cudaMemcpy2DAsync(values, cw * 8, (const uint64_t *)x + w0, wstride * 8, cw * 8, net->n_in,
                                     x_kind == 2 ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice, stream));
            }
        }
        for (int64_t L = 0; L < net->n_levels; ++L) {
            int64_t lo = net->level_bounds[L], hi = net->level_bounds[L + 1];
            int rc = launch_level(net->rows + lo, hi - lo, values, cw, stream);
            if (rc) return rc;
        }
        char *dst = out_on_device ? (char *)out + s0 * width * out_elem : outbuf;
        if (net->k) {
            int64_t group = net->n_out / net->k, parts = group_sum_parts(cw, net->k, group);
            int64_t per = ceil_div(group, parts);
            if (per < group || group == 0)  // parts add into zeroed scores; an empty group scores 0
                CK(cudaMemsetAsync(dst, 0, (size_t)ns * net->k * sizeof(int32_t), stream));
            if (group) {
                dim3 grid((unsigned)ceil_div(cw, 64), grid_limit(net->k), (unsigned)ceil_div(group, per));
                lgc_group_sum<<<grid, 64, 0, stream>>>(values, cw, net->out_slots, group, per, net->k, ns,
                                                       (int32_t *)dst);
                CK(cudaGetLastError());
            }
        } else if (net->n_out) {
            int64_t total = ns * net->n_out;
            lgc_output_bits<<<grid_limit(ceil_div(total, 256)), 256, 0, stream>>>(values, cw, net->out_slots,
                                                                                  net->n_out, ns, (uint8_t *)dst);
            CK(cudaGetLastError());
        }
        if (!out_on_device && width)
            CK(cudaMemcpyAsync((char *)out + s0 * width * out_elem, outbuf, (size_t)ns * width * out_elem,
                               cudaMemcpyDeviceToHost, stream));
    }
    CK(cudaEventRecord(net->done, stream));
    if (host_sync) CK(cudaStreamSynchronize(stream));
    return 0;
}

// Time `reps` runs (device x and out) with CUDA events on the default stream: ms[r] for run r.
int lgc_cu_time_runs(void *handle, const void *x, int x_kind, int64_t wstride, int64_t n, void *out,
                     int64_t chunk_words, int reps, float *ms) {
    if (x_kind != 1 && x_kind != 3) return LGC_CU_EBADARG;
    cudaEvent_t start, stop;
    CK(cudaEventCreate(&start));
    CK(cudaEventCreate(&stop));
    int rc = 0;
    for (int r = 0; r < reps && !rc; ++r) {
        rc = (int)cudaEventRecord(start, 0);
        if (!rc) rc = lgc_cu_run(handle, x, x_kind, wstride, n, out, 1, chunk_words, 0);
        if (!rc) rc = (int)cudaEventRecord(stop, 0);
        if (!rc) rc = (int)cudaEventSynchronize(stop);
        if (!rc) rc = (int)cudaEventElapsedTime(&ms[r], start, stop);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return rc;
}

}  // extern "C"
