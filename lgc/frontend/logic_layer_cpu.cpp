// Thin PyTorch binding of the fused logic-layer kernels in logic_layer_cpu.h (float32 and float64).
//
// Large outputs (a layer's activations, its input gradient) come from a small cache of freed
// buffers instead of the system allocator: glibc serves blocks above 32 MiB (and often smaller
// ones) with fresh mmap pages, so every step of a large-batch run would page-fault and zero each
// activation again (72,000 faults per step measured at batch 1024, 6 x 8000). A buffer returns to
// the cache when its tensor dies and the next step of the same model takes it back by size.
#include <torch/extension.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include <sys/mman.h>
#include <unistd.h>

#include "logic_layer_cpu.h"
#include "logic_stack_cpu.h"

namespace {

// Seconds stack_train_step spent per phase since the last stack_phase_times() (benchmarks/train_step.py
// prints them: the fused step is one extension call, so torch's profiler cannot break it down).
// Written by the calling thread only; a clock read costs ~20 ns, a few per phase.
enum StackPhase { kSoftmax, kInput, kLayers, kHead, kLoss, kBackward, kReduce, kPhases };
double stack_phase_seconds[kPhases] = {};

struct PhaseTimer {
    explicit PhaseTimer(StackPhase p) : phase(p), start(std::chrono::steady_clock::now()) {}
    ~PhaseTimer() {
        stack_phase_seconds[phase] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    StackPhase phase;
    std::chrono::steady_clock::time_point start;
};

class BufferCache {
  public:
    static constexpr size_t kMinBytes = size_t(1) << 20;   // smaller blocks: malloc is fine
    static constexpr size_t kMaxCached = size_t(1) << 30;  // bytes kept while unused, at most

    static BufferCache& get() {
        static BufferCache* cache = new BufferCache();  // leaked on purpose: deleters may run at exit
        return *cache;
    }

    void* take(size_t bytes) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = free_.find(bytes);
            if (it != free_.end()) {
                void* p = it->second;
                free_.erase(it);
                cached_ -= bytes;
                return p;
            }
        }
        // 2 MiB-aligned and marked for transparent huge pages (where the kernel allows them only on
        // request): the kernels read rows of several MiB-sized arrays in random order, and with 4 KiB
        // pages nearly every row is a TLB miss (~4% of the backward at 8000 x 100 floats, measured)
        const size_t huge = size_t(2) << 20, align = bytes >= huge ? huge : 64;
        const size_t rounded = (bytes + align - 1) / align * align;
        void* p = std::aligned_alloc(align, rounded);
        TORCH_CHECK(p != nullptr, "lgc logic-layer kernel: out of memory allocating ", bytes, " bytes");
#ifdef MADV_HUGEPAGE
        if (align == huge) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: ignored where unsupported
#endif
        return p;
    }

    void give(void* p, size_t bytes) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (cached_ + bytes <= kMaxCached) {
                free_.emplace(bytes, p);
                cached_ += bytes;
                return;
            }
        }
        std::free(p);
    }

  private:
    std::mutex mutex_;
    std::multimap<size_t, void*> free_;
    size_t cached_ = 0;
};

// A tensor in a buffer from the cache (any size with always: the stack's per-layer gradients of
// 512 KiB, which glibc served from fresh pages every other step: ~1,000 page faults).
torch::Tensor empty_cached(at::IntArrayRef sizes, const torch::TensorOptions& options, bool always = false) {
    int64_t numel = 1;
    for (int64_t s : sizes) numel *= s;
    const size_t bytes = (size_t)numel * c10::elementSize(c10::typeMetaToScalarType(options.dtype()));
    if (bytes == 0 || (bytes < BufferCache::kMinBytes && !always)) return torch::empty(sizes, options);
    void* p = BufferCache::get().take(bytes);
    return torch::from_blob(p, sizes, [bytes](void* q) { BufferCache::get().give(q, bytes); }, options);
}

// out [cols, rows] = src [rows, cols] transposed (both contiguous), on the pool in 32 x 32 tiles.
template <typename T>
void transpose(const T* src, int64_t rows, int64_t cols, T* out, int nthreads) {
    constexpr int64_t kTile = 32;
    const int64_t tiles_r = (rows + kTile - 1) / kTile;
    if (rows * cols <= lgc::kParallelMin) nthreads = 1;
    const int64_t chunks = lgc::chunk_count(tiles_r, nthreads, 1), per = (tiles_r + chunks - 1) / chunks;
    lgc::ChunkPool::get().run(chunks, nthreads, [&](int64_t chunk) {
        for (int64_t tr = chunk * per; tr < std::min(tiles_r, (chunk + 1) * per); ++tr) {
            const int64_t r0 = tr * kTile, r1 = std::min(rows, r0 + kTile);
            for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
                const int64_t c1 = std::min(cols, c0 + kTile);
                for (int64_t c = c0; c < c1; ++c)
                    for (int64_t r = r0; r < r1; ++r) out[c * rows + r] = src[r * cols + c];
            }
        }
    });
}

// t itself when contiguous, else a contiguous copy in a cached buffer: on the pool when t is the
// transpose of a contiguous matrix (a layer's [batch, in] input seen feature-major), else torch's copy.
torch::Tensor contiguous(const torch::Tensor& t, int64_t nthreads) {
    if (t.is_contiguous()) return t;
    auto out = empty_cached(t.sizes(), t.options());
    if (t.dim() == 2 && t.stride(0) == 1 && t.stride(1) == t.size(0) &&
        (t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kDouble)) {
        AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "lgc_transpose", [&] {
            // t [a, b] with strides (1, a) is src = t.t() [b, a] contiguous
            transpose<scalar_t>(t.data_ptr<scalar_t>(), t.size(1), t.size(0), out.data_ptr<scalar_t>(), (int)nthreads);
        });
        return out;
    }
    out.copy_(t);
    return out;
}

void check_range(const int64_t* v, int64_t n, int64_t limit, const char* name) {
    // an index is out of range iff it is >= limit as unsigned (negatives wrap): one vectorised OR of
    // comparisons per step (AVX2 has no 64-bit min/max), the range for the message only on failure
    const uint64_t ulimit = (uint64_t)std::max<int64_t>(limit, 0);
    uint64_t bad = 0;
#pragma omp simd reduction(| : bad)
    for (int64_t i = 0; i < n; ++i) bad |= (uint64_t)((uint64_t)v[i] >= ulimit);
    if (!bad) return;
    int64_t lo = v[0], hi = v[0];
    for (int64_t i = 1; i < n; ++i) {
        lo = std::min(lo, v[i]);
        hi = std::max(hi, v[i]);
    }
    TORCH_CHECK(false, "operand indices ", name, " out of range 0..", limit - 1, " (got ", lo, "..", hi, ")");
}

void check(const torch::Tensor& x, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c) {
    TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && x.is_contiguous(), "x must be a contiguous CPU [in_dim, batch] tensor");
    TORCH_CHECK(x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble, "x must be float32 or float64");
    TORCH_CHECK(c.scalar_type() == x.scalar_type() && c.dim() == 2 && c.size(1) == 4 && c.is_contiguous(),
                "c must be a contiguous [out_dim, 4] tensor of x's dtype");
    TORCH_CHECK(a.scalar_type() == torch::kLong && b.scalar_type() == torch::kLong && a.is_contiguous() &&
                    b.is_contiguous() && a.device().is_cpu() && b.device().is_cpu() && a.numel() == c.size(0) &&
                    b.numel() == c.size(0),
                "a and b must be contiguous int64 CPU [out_dim] tensors");
    check_range(a.data_ptr<int64_t>(), a.numel(), x.size(0), "a");
    check_range(b.data_ptr<int64_t>(), b.numel(), x.size(0), "b");
}

torch::Tensor forward(torch::Tensor x, torch::Tensor a, torch::Tensor b, torch::Tensor c, int64_t nthreads) {
    check(x, a, b, c);
    auto y = empty_cached({c.size(0), x.size(1)}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lgc_logic_forward", [&] {
        lgc::logic_forward<scalar_t>(x.data_ptr<scalar_t>(), x.size(1), a.data_ptr<int64_t>(), b.data_ptr<int64_t>(),
                                     c.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), c.size(0), (int)nthreads);
    });
    return y;
}

std::vector<torch::Tensor> backward(torch::Tensor x, torch::Tensor a, torch::Tensor b, torch::Tensor c,
                                    torch::Tensor grad_y, bool need_grad_x, int64_t nthreads) {
    check(x, a, b, c);
    TORCH_CHECK(grad_y.scalar_type() == x.scalar_type() && grad_y.device().is_cpu() && grad_y.dim() == 2 &&
                    grad_y.size(0) == c.size(0) && grad_y.size(1) == x.size(1),
                "grad_y must be a CPU [out_dim, batch] tensor of x's dtype");
    grad_y = contiguous(grad_y, nthreads);
    auto grad_c = torch::empty_like(c);
    torch::Tensor grad_x = need_grad_x ? empty_cached(x.sizes(), x.options()) : torch::Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lgc_logic_backward", [&] {
        lgc::logic_backward<scalar_t>(x.data_ptr<scalar_t>(), x.size(0), x.size(1), a.data_ptr<int64_t>(),
                                      b.data_ptr<int64_t>(), c.data_ptr<scalar_t>(), grad_y.data_ptr<scalar_t>(),
                                      c.size(0), need_grad_x ? grad_x.data_ptr<scalar_t>() : nullptr,
                                      grad_c.data_ptr<scalar_t>(), (int)nthreads);
    });
    return {grad_x, grad_c};
}

void check_weights(const torch::Tensor& w, const torch::Tensor& relax) {
    TORCH_CHECK(w.device().is_cpu() && w.dim() == 2 && w.size(1) == 16 && w.is_contiguous(),
                "weights must be a contiguous CPU [out_dim, 16] tensor");
    TORCH_CHECK(w.scalar_type() == torch::kFloat || w.scalar_type() == torch::kDouble, "weights must be float32 or float64");
    TORCH_CHECK(relax.scalar_type() == w.scalar_type() && relax.is_contiguous() && relax.dim() == 2 &&
                    relax.size(0) == 16 && relax.size(1) == 4,
                "relax must be a contiguous [16, 4] tensor of the weights' dtype");
}

// (c [out_dim, 4], probs [out_dim, 16]): the coefficients and the softmax they came from.
std::vector<torch::Tensor> coefficients(torch::Tensor w, torch::Tensor relax, int64_t nthreads) {
    check_weights(w, relax);
    auto c = torch::empty({w.size(0), 4}, w.options());
    auto probs = torch::empty_like(w);
    AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "lgc_gate_coefficients", [&] {
        lgc::gate_coefficients<scalar_t>(w.data_ptr<scalar_t>(), relax.data_ptr<scalar_t>(), w.size(0),
                                         c.data_ptr<scalar_t>(), probs.data_ptr<scalar_t>(), (int)nthreads);
    });
    return {c, probs};
}

torch::Tensor coefficients_backward(torch::Tensor probs, torch::Tensor relax, torch::Tensor grad_c, int64_t nthreads) {
    check_weights(probs, relax);
    TORCH_CHECK(grad_c.scalar_type() == probs.scalar_type() && grad_c.is_contiguous() && grad_c.dim() == 2 &&
                    grad_c.size(0) == probs.size(0) && grad_c.size(1) == 4,
                "grad_c must be a contiguous [out_dim, 4] tensor of the weights' dtype");
    auto grad_w = torch::empty_like(probs);
    AT_DISPATCH_FLOATING_TYPES(probs.scalar_type(), "lgc_gate_coefficients_backward", [&] {
        lgc::gate_coefficients_backward<scalar_t>(probs.data_ptr<scalar_t>(), relax.data_ptr<scalar_t>(),
                                                  grad_c.data_ptr<scalar_t>(), probs.size(0),
                                                  grad_w.data_ptr<scalar_t>(), (int)nthreads);
    });
    return grad_w;
}

// acc[j0..j1) = the sum of rows[i][j0..j1) over i = 0..m-1 (row i at rows + i * row_stride), in
// row order, 32 columns at a time held in registers while the rows stream past.
template <typename T>
void sum_rows(const T* rows, int64_t m, int64_t row_stride, int64_t j0, int64_t j1, T* acc) {
    constexpr int64_t kLanes = 32;
    for (int64_t j = j0; j < j1; j += kLanes) {
        const int64_t w = std::min(kLanes, j1 - j);
        T sum[kLanes] = {};
        if (w == kLanes) {
            for (int64_t i = 0; i < m; ++i) {
                const T* row = rows + i * row_stride + j;
#pragma omp simd
                for (int64_t l = 0; l < kLanes; ++l) sum[l] += row[l];
            }
        } else {
            for (int64_t i = 0; i < m; ++i) {
                const T* row = rows + i * row_stride + j;
                for (int64_t l = 0; l < w; ++l) sum[l] += row[l];
            }
        }
        std::copy(sum, sum + w, acc + j);
    }
}

// GroupSum's sums of a feature-major activation xt [n, batch] (rows contiguous, possibly padded: a
// stack's output): out [k, batch], out[g] the sum of
// rows g m .. g m + m - 1 (m = n / k) added in row order, on the pool (torch's sum would run on its
// one thread: 4 ms per step at 8000 x 1024). Chunks split the groups and the batch into column
// blocks, so each output element is summed by one thread in one order at any thread count.
torch::Tensor group_sum_forward(torch::Tensor xt, int64_t k, int64_t nthreads) {
    TORCH_CHECK(xt.device().is_cpu() && xt.dim() == 2 && (xt.size(1) <= 1 || xt.stride(1) == 1) &&
                    (xt.size(0) <= 1 || xt.stride(0) >= xt.size(1)) && k > 0 && xt.size(0) % k == 0 &&
                    (xt.scalar_type() == torch::kFloat || xt.scalar_type() == torch::kDouble),
                "xt must be a float32/float64 CPU [n, batch] tensor with contiguous rows and k dividing n");
    const int64_t n = xt.size(0), batch = xt.size(1), m = n / k, row_stride = xt.size(0) > 1 ? xt.stride(0) : batch;
    auto out = torch::empty({k, batch}, xt.options());
    if (n * batch <= lgc::kParallelMin) nthreads = 1;
    // column blocks of a multiple of 32 (sum_rows' width), about 4 chunks per thread over all groups
    const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>((batch + 31) / 32, (4 * nthreads + k - 1) / k));
    const int64_t width = ((batch + blocks - 1) / blocks + 31) / 32 * 32;
    lgc::ChunkPool::get().run(k * blocks, (int)nthreads, [&](int64_t chunk) {
        const int64_t g = chunk / blocks, j0 = std::min(batch, (chunk % blocks) * width);
        const int64_t j1 = std::min(batch, j0 + width);
        AT_DISPATCH_FLOATING_TYPES(xt.scalar_type(), "lgc_group_sum_forward", [&] {
            sum_rows(xt.data_ptr<scalar_t>() + g * m * row_stride, m, row_stride, j0, j1, out.data_ptr<scalar_t>() + g * batch);
        });
    });
    return out;
}

// The gradient of GroupSum's input in feature-major layout: rows [n, batch], row i a copy of
// column i / (n / k) of grad_scores [batch, k] (already divided by tau by the caller, so the values
// are torch's own). Written into a cached buffer on the pool: the broadcast-then-reshape copy that
// autograd makes instead writes into freshly faulted pages every step.
torch::Tensor group_sum_backward(torch::Tensor grad_scores, int64_t n, int64_t nthreads) {
    TORCH_CHECK(grad_scores.device().is_cpu() && grad_scores.dim() == 2 && grad_scores.size(1) > 0 &&
                    n % grad_scores.size(1) == 0,
                "grad_scores must be a CPU [batch, k] tensor with k dividing n");
    const int64_t batch = grad_scores.size(0), k = grad_scores.size(1), group = n / k;
    auto rows = grad_scores.t().contiguous();  // [k, batch]: small
    auto out = empty_cached({n, batch}, grad_scores.options());
    const size_t row_bytes = (size_t)batch * grad_scores.element_size();
    const char* src = static_cast<const char*>(rows.data_ptr());
    char* dst = static_cast<char*>(out.data_ptr());
    if (n * batch <= lgc::kParallelMin) nthreads = 1;
    const int64_t chunks = lgc::chunk_count(n, (int)nthreads, 64), per = (n + chunks - 1) / chunks;
    lgc::ChunkPool::get().run(chunks, (int)nthreads, [&](int64_t chunk) {
        for (int64_t i = chunk * per; i < std::min(n, (chunk + 1) * per); ++i)
            std::memcpy(dst + i * row_bytes, src + (i / group) * row_bytes, row_bytes);
    });
    return out;
}

// One Adam step (lgc::adam_update) over every tensor of params with its grads and moments, on the
// pool. All tensors contiguous, on the CPU, of one floating dtype; the lists of equal length.
void adam_step(std::vector<torch::Tensor> params, std::vector<torch::Tensor> grads, std::vector<torch::Tensor> exp_avgs,
               std::vector<torch::Tensor> exp_avg_sqs, double beta1, double beta2, double eps, double step_size,
               double bias2_sqrt, int64_t nthreads) {
    const size_t count = params.size();
    TORCH_CHECK(grads.size() == count && exp_avgs.size() == count && exp_avg_sqs.size() == count,
                "adam_step: params, grads and moments must be lists of equal length");
    constexpr int64_t kPiece = 16384;  // values per chunk
    std::vector<std::pair<size_t, int64_t>> pieces;  // (tensor, first value)
    int64_t total = 0;
    for (size_t t = 0; t < count; ++t) {
        const auto& p = params[t];
        TORCH_CHECK(p.device().is_cpu() && p.is_contiguous() &&
                        (p.scalar_type() == torch::kFloat || p.scalar_type() == torch::kDouble),
                    "adam_step: parameters must be contiguous float32/float64 CPU tensors");
        for (const auto* u : {&grads[t], &exp_avgs[t], &exp_avg_sqs[t]})
            TORCH_CHECK(u->device().is_cpu() && u->is_contiguous() && u->scalar_type() == p.scalar_type() &&
                            u->numel() == p.numel() && !u->is_sparse(),
                        "adam_step: gradients and moments must be dense contiguous CPU tensors like their parameter");
        for (int64_t s = 0; s < p.numel(); s += kPiece) pieces.emplace_back(t, s);
        total += p.numel();
    }
    if (total <= lgc::kParallelMin) nthreads = 1;
    lgc::ChunkPool::get().run((int64_t)pieces.size(), (int)nthreads, [&](int64_t c) {
        const size_t t = pieces[(size_t)c].first;
        const int64_t s = pieces[(size_t)c].second, len = std::min(kPiece, params[t].numel() - s);
        AT_DISPATCH_FLOATING_TYPES(params[t].scalar_type(), "lgc_adam_step", [&] {
            lgc::adam_update<scalar_t>(params[t].data_ptr<scalar_t>() + s, grads[t].data_ptr<scalar_t>() + s,
                                       exp_avgs[t].data_ptr<scalar_t>() + s, exp_avg_sqs[t].data_ptr<scalar_t>() + s,
                                       len, beta1, beta2, eps, step_size, bias2_sqrt);
        });
    });
}


// -- a stack of logic layers in one call (logic_stack_cpu.h) ------------------------------------
// The stack's layers, checked: weights[l] [out_l, 16] contiguous of x's dtype (or c[l] [out_l, 4]),
// a[l], b[l] int64 [out_l] in 0..in_l - 1, in_0 = in_dim and in_{l+1} = out_l.
void check_stack(const std::vector<torch::Tensor>& per_gate, int64_t width, const std::vector<torch::Tensor>& a,
                 const std::vector<torch::Tensor>& b, int64_t in_dim, c10::ScalarType dtype) {
    TORCH_CHECK(!per_gate.empty() && a.size() == per_gate.size() && b.size() == per_gate.size(),
                "a stack needs one or more layers, with a and b for each");
    for (size_t l = 0; l < per_gate.size(); ++l) {
        const auto& w = per_gate[l];
        TORCH_CHECK(w.device().is_cpu() && w.dim() == 2 && w.size(1) == width && w.is_contiguous() &&
                        w.scalar_type() == dtype,
                    "stack layer ", l, ": a contiguous CPU [out_dim, ", width, "] tensor of the input's dtype expected");
        const int64_t out = w.size(0);
        for (const auto* t : {&a[l], &b[l]})
            TORCH_CHECK(t->scalar_type() == torch::kLong && t->is_contiguous() && t->device().is_cpu() &&
                            t->numel() == out,
                        "stack layer ", l, ": a and b must be contiguous int64 CPU [out_dim] tensors");
        check_range(a[l].data_ptr<int64_t>(), out, in_dim, "a");
        check_range(b[l].data_ptr<int64_t>(), out, in_dim, "b");
        in_dim = out;
    }
}

template <typename T>
std::vector<lgc::StackLayer<T>> stack_layers(int64_t in_dim, const std::vector<torch::Tensor>& a,
                                             const std::vector<torch::Tensor>& b, const std::vector<torch::Tensor>& c,
                                             const std::vector<double>& grad_factors) {
    std::vector<lgc::StackLayer<T>> layers(a.size());
    for (size_t l = 0; l < a.size(); ++l) {
        layers[l] = {in_dim, a[l].numel(), a[l].data_ptr<int64_t>(), b[l].data_ptr<int64_t>(), c[l].data_ptr<T>(),
                     grad_factors.empty() ? T(1) : T(grad_factors[l])};
        in_dim = a[l].numel();
    }
    return layers;
}

// Runs gates(l, i0, i1, relax_t) over the gates of every layer l on the pool, chunks of >= 256 gates.
template <typename T, typename F>
void for_each_stack_gate(const T* relax, const std::vector<int64_t>& out_dims, int nthreads, F&& gates) {
    std::vector<std::pair<size_t, int64_t>> pieces;  // (layer, first gate)
    int64_t total = 0;
    for (size_t l = 0; l < out_dims.size(); ++l) total += out_dims[l];
    if (total * 16 <= lgc::kParallelMin) nthreads = 1;
    const int64_t piece = std::max<int64_t>(256, total / (16 * (int64_t)std::max(1, nthreads)) + 1);
    for (size_t l = 0; l < out_dims.size(); ++l)
        for (int64_t s = 0; s < out_dims[l]; s += piece) pieces.emplace_back(l, s);
    T relax_t[4][16];
    for (int k = 0; k < 16; ++k)
        for (int r = 0; r < 4; ++r) relax_t[r][k] = relax[4 * k + r];
    lgc::ChunkPool::get().run((int64_t)pieces.size(), nthreads, [&](int64_t chunk) {
        const size_t l = pieces[(size_t)chunk].first;
        const int64_t s = pieces[(size_t)chunk].second, e = std::min(out_dims[l], s + piece);
        gates(l, s, e, relax_t);
    });
}

// Every layer's softmax: probs[l] [out_l, 16] and coefficients c[l] [out_l, 4] of the logits
// weights[l], split by gates over all layers.
template <typename T>
void stack_softmax(const std::vector<torch::Tensor>& weights, const std::vector<torch::Tensor>& c,
                   const std::vector<torch::Tensor>& probs, const torch::Tensor& relax, const std::vector<int64_t>& out_dims,
                   int nthreads) {
    const size_t L = weights.size();
    std::vector<const T*> w(L);
    std::vector<T*> cp(L), pp(L);
    for (size_t l = 0; l < L; ++l) {
        w[l] = weights[l].template data_ptr<T>();
        cp[l] = c[l].template data_ptr<T>();
        pp[l] = probs[l].template data_ptr<T>();
    }
    for_each_stack_gate(relax.template data_ptr<T>(), out_dims, nthreads,
                        [&](size_t l, int64_t i0, int64_t i1, const T(&relax_t)[4][16]) {
                            lgc::softmax_gates(w[l], relax_t, pp[l], cp[l], i0, i1);
                        });
}

// Columns j0 .. j0 + cb.batch - 1 of x [batch, in_dim] (any strides) feature-major into x0
// [in_dim, cb.stride] (zeros past the batch: stack_input_part), on `threads` threads by column blocks.
template <typename T>
void stack_input(const torch::Tensor& x, int64_t j0, T* x0, const lgc::ColumnBlocks& cb, int64_t gates, int threads) {
    const int64_t parts = gates * cb.batch <= lgc::kParallelMin ? 1 : cb.parts(threads);
    const T* src = x.template data_ptr<T>() + j0 * x.stride(0);
    lgc::ChunkPool::get().run_owned(parts, threads, [&](int64_t p) {
        lgc::stack_input_part<T>(src, x.stride(0), x.stride(1), x.size(1), x0, cb, cb.first(p, parts),
                                 cb.first(p + 1, parts));
    });
}

// The forward of a stack of logic layers. x [batch, in_dim] (any strides), weights[l] [out_l, 16]
// (softmax relaxation), a[l], b[l] [out_l]. Returns acts (L + 1 tensors: acts[0] [in_dim, stride]
// the input feature-major, acts[l + 1] [out_l, stride] layer l's output; stride = batch padded to
// 64 bytes, columns past batch unspecified; with head_k > 0 acts[L] is instead the GroupSum
// [head_k, batch] of the last layer's output, before the division by tau), then c[l] [out_l, 4] and
// probs[l] [out_l, 16] for the
// backward. The softmax of every layer runs first (split by gates), then the layers (split by gates
// too; the backward splits by batch columns: logic_stack_cpu.h).
std::vector<torch::Tensor> stack_forward(torch::Tensor x, std::vector<torch::Tensor> weights, std::vector<torch::Tensor> a,
                                         std::vector<torch::Tensor> b, torch::Tensor relax, int64_t head_k,
                                         int64_t nthreads) {
    TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble),
                "x must be a float32/float64 CPU [batch, in_dim] tensor");
    check_stack(weights, 16, a, b, x.size(1), x.scalar_type());
    check_weights(weights[0], relax);
    const size_t L = weights.size();
    const int64_t batch = x.size(0);
    TORCH_CHECK(head_k >= 0 && (head_k == 0 || weights[L - 1].size(0) % head_k == 0),
                "stack_forward: the head's k must divide the last layer's width");
    const lgc::ColumnBlocks cb(batch, (int64_t)x.element_size());
    std::vector<torch::Tensor> out;
    out.push_back(empty_cached({x.size(1), cb.stride}, x.options()));
    for (size_t l = 0; l < L; ++l)
        out.push_back(head_k > 0 && l == L - 1 ? torch::empty({head_k, batch}, x.options())
                                                 : empty_cached({weights[l].size(0), cb.stride}, x.options()));
    std::vector<torch::Tensor> cs, probs;
    std::vector<int64_t> out_dims;
    for (size_t l = 0; l < L; ++l) {
        cs.push_back(empty_cached({weights[l].size(0), 4}, x.options(), true));
        probs.push_back(empty_cached(weights[l].sizes(), x.options(), true));
        out_dims.push_back(weights[l].size(0));
    }
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lgc_stack_forward", [&] {
        std::vector<scalar_t*> acts(L + 1);
        for (size_t l = 0; l <= L; ++l) acts[l] = out[l].data_ptr<scalar_t>();
        stack_softmax<scalar_t>(weights, cs, probs, relax, out_dims, (int)nthreads);
        const auto layers = stack_layers<scalar_t>(x.size(1), a, b, cs, {});
        int64_t gates = 0;
        for (int64_t o : out_dims) gates += o;
        stack_input<scalar_t>(x, 0, acts[0], cb, gates, (int)nthreads);
        if (head_k > 0) {
            const std::vector<lgc::StackLayer<scalar_t>> body(layers.begin(), layers.end() - 1);
            lgc::stack_forward<scalar_t>(body, acts.data(), cb, (int)nthreads);
            lgc::stack_head_forward<scalar_t>(layers.back(), acts[L - 1], cb, head_k, acts[L], (int)nthreads);
        } else {
            lgc::stack_forward<scalar_t>(layers, acts.data(), cb, (int)nthreads);
        }
    });
    for (auto& t : cs) out.push_back(t);
    for (auto& t : probs) out.push_back(t);
    return out;
}

// The backward of stack_forward: acts[0 .. L-1] (the layers' inputs), a, b, c, probs as returned
// there, grad_y [batch, out of the last layer / gy_group] (any strides; column r the gradient of the
// outputs r gy_group .. (r + 1) gy_group - 1: with a GroupSum head, its gradient divided by tau),
// grad_factors[l] (scales the gradient of layer l's input). Returns grad_w[l] [out_l, 16] for every layer, then the input's gradient
// [in_dim, stride] (feature-major, padded like acts) when need_grad_x, else an undefined tensor.
std::vector<torch::Tensor> stack_backward(std::vector<torch::Tensor> acts, std::vector<torch::Tensor> a,
                                          std::vector<torch::Tensor> b, std::vector<torch::Tensor> c,
                                          std::vector<torch::Tensor> probs, torch::Tensor relax, torch::Tensor grad_y,
                                          int64_t gy_group, std::vector<double> grad_factors, bool need_grad_x,
                                          int64_t nthreads, int64_t formulation) {
    const size_t L = c.size();
    TORCH_CHECK(L >= 1 && acts.size() == L && probs.size() == L && grad_factors.size() == L,
                "stack_backward: acts, c, probs and grad_factors need one entry per layer");
    const auto dtype = acts[0].scalar_type();
    check_stack(c, 4, a, b, acts[0].size(0), dtype);
    check_stack(probs, 16, a, b, acts[0].size(0), dtype);
    check_weights(probs[0], relax);
    const int64_t batch = grad_y.size(0);
    const lgc::ColumnBlocks cb(batch, (int64_t)acts[0].element_size());
    for (size_t l = 0; l < L; ++l)
        TORCH_CHECK(acts[l].is_contiguous() && acts[l].scalar_type() == dtype && acts[l].dim() == 2 &&
                        acts[l].size(0) == (l == 0 ? acts[0].size(0) : c[l - 1].size(0)) && acts[l].size(1) == cb.stride,
                    "stack_backward: acts[", l, "] must be stack_forward's [in_dim, stride] activation");
    TORCH_CHECK(gy_group >= 1 && grad_y.device().is_cpu() && grad_y.scalar_type() == dtype && grad_y.dim() == 2 &&
                    grad_y.size(1) * gy_group == c[L - 1].size(0),
                "stack_backward: grad_y must be a CPU [batch, out_dim] tensor of the activations' dtype");
    torch::Tensor gy = grad_y.t();  // [out, batch]: rows must be contiguous
    if (!(gy.stride(1) == 1 && gy.stride(0) >= batch)) gy = contiguous(gy, nthreads);
    const int64_t gy_stride = batch > 0 ? gy.stride(0) : 0;
    int64_t widest = 1, gates = 0;
    for (size_t l = 1; l < L; ++l) widest = std::max(widest, acts[l].size(0));
    for (size_t l = 0; l < L; ++l) gates += c[l].size(0);
    torch::Tensor turn[2];  // the gradients of the hidden activations, in turn
    if (L > 1)
        for (auto& t : turn) t = empty_cached({widest, cb.stride}, acts[0].options());
    torch::Tensor grad_x = need_grad_x ? empty_cached({acts[0].size(0), cb.stride}, acts[0].options()) : torch::Tensor();
    TORCH_CHECK(formulation >= 0 && formulation <= 2, "stack_backward: formulation 0 (auto), 1 (scatter) or 2 (gather)");
    const bool use_gather = formulation == 2 || (formulation == 0 && batch > lgc::kScatterMaxBatch);
    torch::Tensor g_rows;  // the gather reads the last layer's gradient in rows of the activations' stride
    if (use_gather && batch > 0 && (gy_group != 1 || gy_stride != cb.stride))
        g_rows = empty_cached({c[L - 1].size(0), cb.stride}, acts[0].options());
    std::vector<torch::Tensor> partial, grad_w;
    for (size_t l = 0; l < L; ++l) {
        partial.push_back(empty_cached({cb.count, c[l].size(0), 4}, acts[0].options(), true));
        grad_w.push_back(empty_cached(probs[l].sizes(), probs[l].options(), true));
    }
    AT_DISPATCH_FLOATING_TYPES(dtype, "lgc_stack_backward", [&] {
        std::vector<const scalar_t*> ap(L);
        std::vector<scalar_t*> gx(L), pp(L);
        for (size_t l = 0; l < L; ++l) {
            ap[l] = acts[l].data_ptr<scalar_t>();
            pp[l] = partial[l].data_ptr<scalar_t>();
            gx[l] = l == 0 ? (need_grad_x ? grad_x.data_ptr<scalar_t>() : nullptr) : turn[l % 2].data_ptr<scalar_t>();
        }
        const auto layers = stack_layers<scalar_t>(acts[0].size(0), a, b, c, grad_factors);
        const scalar_t* g = batch > 0 ? gy.data_ptr<scalar_t>() : nullptr;
        if (use_gather) {
            lgc::stack_backward_gather<scalar_t>(layers, ap.data(), g, gy_stride, gy_group, gx.data(), pp.data(), cb,
                                                 (int)nthreads, g_rows.defined() ? g_rows.data_ptr<scalar_t>() : nullptr);
        } else {
            const int64_t parts = gates * batch <= lgc::kParallelMin ? 1 : cb.parts((int)nthreads);
            lgc::ChunkPool::get().run_owned(parts, (int)nthreads, [&](int64_t t) {
                lgc::stack_backward_part<scalar_t>(layers, ap.data(), g, gy_stride, gy_group, gx.data(), pp.data(), cb,
                                                   cb.first(t, parts), cb.first(t + 1, parts));
            });
        }
        std::vector<int64_t> out_dims;
        std::vector<const scalar_t*> prob(L);
        std::vector<scalar_t*> gw(L);
        for (size_t l = 0; l < L; ++l) {
            out_dims.push_back(c[l].size(0));
            prob[l] = probs[l].data_ptr<scalar_t>();
            gw[l] = grad_w[l].data_ptr<scalar_t>();
        }
        for_each_stack_gate(relax.data_ptr<scalar_t>(), out_dims, (int)nthreads,
                            [&](size_t l, int64_t i0, int64_t i1, const scalar_t(&relax_t)[4][16]) {
                                for (int64_t i = i0; i < i1; ++i)
                                    lgc::reduce_gate(pp[l], use_gather ? 1 : cb.count, out_dims[l], i, prob[l], relax_t,
                                                     gw[l] + 16 * i);
                            });
    });
    grad_w.push_back(grad_x);
    return grad_w;
}


// Adam's step as stack_train_step applies it to every layer's logits as their gradients are made.
struct StackAdam {
    std::vector<torch::Tensor> params, exp_avgs, exp_avg_sqs;
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, step_size = 0, bias2_sqrt = 1;
};

// Bytes of the last-level cache that one core's threads share: the largest cache of cpu0 in sysfs
// (32 MiB where unknown). Not sysconf(_SC_LEVEL3_CACHE_SIZE): in a VM it can report the whole
// package's L3 (256 MiB on this EPYC host, whose cores share 32 MiB each).
int64_t cache_bytes_override = 0;  // > 0: last_level_cache() returns it (set_train_cache_bytes, for tests)

int64_t last_level_cache() {
    if (cache_bytes_override > 0) return cache_bytes_override;
    static const int64_t bytes = [] {
        int64_t best = 0;
        for (int index = 0; index < 8; ++index) {
            std::ifstream in("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
            std::string text;
            if (!(in >> text) || text.empty()) continue;
            const char unit = text.back();
            const int64_t scale = unit == 'K' ? 1024 : unit == 'M' ? 1024 * 1024 : unit == 'G' ? 1024 * 1024 * 1024 : 1;
            try {
                best = std::max<int64_t>(best, std::stoll(text) * scale);
            } catch (const std::exception&) {
            }
        }
        return best > 0 ? best : int64_t(32) << 20;
    }();
    return bytes;
}

// Columns of one span of stack_train_step: batches above kScatterMaxBatch run as spans of this many
// columns, each through the whole stack (forward, loss, backward) by one thread while its activations
// stay in the last-level cache, the threads taking spans as they come (6 x 8000, batch 1024, 64
// columns: 47 ms at one thread and 27 at two, against 58 and 35 for tiles of 128 columns whose halves
// two threads share layer by layer, and 74 and 49 for the whole batch layer by layer; 32 columns as
// fast). Two spans at a time must fit in the cache, else the whole batch runs layer by layer.
constexpr int64_t kTrainSpan = 64;

// One training step of a stack of logic layers with a GroupSum head (lgc.frontend.fused_step): the
// mean cross-entropy of the scores (GroupSum(k, tau) of the last layer) [batch, k] against the class
// indices y (int64 [batch], each in 0 .. k - 1), its gradient, and Adam's step (torch.optim.Adam
// without amsgrad, weight decay or maximize; lr, betas, eps as there) applied to each layer's logits
// weights[l] in place, in the pass that makes their gradients (which are not kept: adam_update's
// arithmetic on the coefficient gradients' softmax backward). Up to kScatterMaxBatch the whole batch
// runs through the stack: the input transposed, the layers' forward split by gates, the last layer
// summed per group, the loss and its gradient, the backward split by the batch's two column blocks
// (stack_backward_part). Above, spans of kTrainSpan columns (one block each) run the same way on one
// thread each, the threads taking spans as they come, while two spans fit in the last-level cache;
// else the whole batch with the per-layer gather (split by input features). The coefficient
// gradients add the blocks in order. Spans and blocks depend on the batch
// only: the same bits at any thread count. Each layer's step count steps[l] (a float32 scalar tensor,
// torch.optim.Adam's state["step"]) is incremented and its bias corrections taken in double as torch
// takes them. The loss and its gradient are computed in double from the float scores (torch
// computes them in the scores' dtype: the results agree to float rounding). Returns the loss (a
// scalar tensor of x's dtype), or None, having changed nothing, when some y is not a class index or
// the step counts differ (the caller takes the generic step then). Everything is checked before
// anything is written.
template <typename T>
double train_step_spans(const torch::Tensor& x, const std::vector<torch::Tensor>& weights,
                        const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b,
                        const torch::Tensor& relax, int64_t k, double tau, const int64_t* y,
                        const std::vector<double>& grad_factors, const StackAdam& adam, int nthreads) {
    const size_t L = weights.size();
    const int64_t batch = x.size(0), in_dim = x.size(1);
    std::vector<int64_t> out_dims;
    std::vector<torch::Tensor> cs, probs, partial;
    int64_t gates = 0, widest_dim = in_dim, rows = in_dim;  // rows: of a span's activations and gradients
    for (size_t l = 0; l < L; ++l) {
        out_dims.push_back(weights[l].size(0));
        gates += out_dims.back();
        widest_dim = std::max(widest_dim, out_dims.back());
        if (l + 1 < L) rows += out_dims.back();
    }
    rows += (L > 1 ? 2 : 0) * widest_dim;
    // spans while two of them fit in the last-level cache; else the whole batch at once, with the
    // per-layer gather above kScatterMaxBatch (8 x 16000: 74 MiB for two spans)
    const bool spans = batch > lgc::kScatterMaxBatch &&
                       rows * 2 * kTrainSpan * (int64_t)sizeof(T) <= last_level_cache();
    const int64_t cols = spans ? kTrainSpan : batch;  // columns run at once, at most
    const int64_t count = (batch + cols - 1) / cols;   // spans, or 1
    const bool gather = cols > lgc::kScatterMaxBatch;
    // column blocks, in order: one per span; the whole batch: its ColumnBlocks (the gather: one)
    const int64_t blocks = spans ? count : gather ? 1 : lgc::ColumnBlocks(batch, sizeof(T)).count;
    const lgc::ColumnBlocks widest(cols, sizeof(T));  // the widest rows
    for (size_t l = 0; l < L; ++l) {
        cs.push_back(empty_cached({out_dims[l], 4}, x.options(), true));
        probs.push_back(empty_cached(weights[l].sizes(), x.options(), true));
        partial.push_back(empty_cached({blocks, out_dims[l], 4}, x.options(), true));
    }
    // Spans: each thread runs whole spans through the whole stack, taking them as they come (no barrier
    // between layers; a thread that runs slower, as this VM's second vCPU does for minutes at a time,
    // takes fewer spans instead of holding up every layer). The spans depend on the batch only: the
    // same bits at any thread count. The whole batch: each layer split over all threads.
    const int64_t sets = spans ? std::min<int64_t>(nthreads, count) : 1;

    // a span's activations: the input and every layer's input [dim, stride] (the last layer's output is
    // summed per group, never stored), the gradients of the hidden activations in turn, scores [k, span]
    struct Buffers {
        std::vector<torch::Tensor> act_buf;
        torch::Tensor turn[2];
        std::vector<T*> acts, gx, part;
        std::vector<T> scores, grad;
        std::vector<double> sc;
    };
    std::vector<Buffers> bufs((size_t)sets);
    for (auto& bs : bufs) {
        bs.act_buf.push_back(empty_cached({in_dim, widest.stride}, x.options()));
        for (size_t l = 0; l + 1 < L; ++l) bs.act_buf.push_back(empty_cached({out_dims[l], widest.stride}, x.options()));
        if (L > 1)
            for (auto& u : bs.turn) u = empty_cached({widest_dim, widest.stride}, x.options());
        bs.acts.resize(L);
        bs.gx.resize(L);
        bs.part.resize(L);
        for (size_t l = 0; l < L; ++l) {
            bs.acts[l] = bs.act_buf[l].template data_ptr<T>();
            bs.gx[l] = l == 0 ? nullptr : bs.turn[l % 2].template data_ptr<T>();
        }
        bs.scores.resize((size_t)(k * cols));
        bs.grad.resize((size_t)(k * cols));
        bs.sc.resize((size_t)k);
    }
    torch::Tensor g_rows;  // the gather reads the last layer's gradient in rows of the activations' stride
    if (gather) g_rows = empty_cached({out_dims[L - 1], widest.stride}, x.options());
    std::vector<double> terms((size_t)batch);  // each sample's loss, added in order at the end

    {
        const PhaseTimer timer(kSoftmax);
        stack_softmax<T>(weights, cs, probs, relax, out_dims, nthreads);
    }
    const auto layers = stack_layers<T>(in_dim, a, b, cs, grad_factors);
    const std::vector<lgc::StackLayer<T>> body(layers.begin(), layers.end() - 1);
    const int64_t group = out_dims[L - 1] / k;
    // Columns j0 .. j0 + cb.batch - 1 through the whole stack on `threads` threads with buffers bs, its
    // blocks' partial sums from block `block` on. Phase times only on the calling thread's spans.
    const auto span = [&](int64_t j0, const lgc::ColumnBlocks& cb, Buffers& bs, int threads, int64_t block,
                          bool timed) {
        const int64_t width = cb.batch;
        const int64_t parts = gates * width <= lgc::kParallelMin ? 1 : cb.parts(threads);
        std::optional<PhaseTimer> timer;
        if (timed) timer.emplace(kInput);
        stack_input<T>(x, j0, bs.acts[0], cb, gates, threads);
        if (timed) timer.emplace(kLayers);
        lgc::stack_forward<T>(body, bs.acts.data(), cb, threads);
        if (timed) timer.emplace(kHead);
        lgc::stack_head_forward<T>(layers.back(), bs.acts[L - 1], cb, k, bs.scores.data(), threads);
        if (timed) timer.emplace(kLoss);
        for (int64_t j = 0; j < width; ++j) {
            const int64_t target = y[j0 + j];
            double top = -std::numeric_limits<double>::infinity();
            for (int64_t c = 0; c < k; ++c) {
                bs.sc[(size_t)c] = (double)bs.scores[(size_t)(c * width + j)] / tau;
                top = std::max(top, bs.sc[(size_t)c]);
            }
            double z = 0;
            for (int64_t c = 0; c < k; ++c) z += std::exp(bs.sc[(size_t)c] - top);
            const double lse = top + std::log(z);
            terms[(size_t)(j0 + j)] = lse - bs.sc[(size_t)target];
            // d loss / d sums = (softmax - one-hot) / batch / tau
            for (int64_t c = 0; c < k; ++c)
                bs.grad[(size_t)(c * width + j)] =
                    (T)((std::exp(bs.sc[(size_t)c] - lse) - (c == target ? 1.0 : 0.0)) / batch / tau);
        }
        if (timed) timer.emplace(kBackward);
        for (size_t l = 0; l < L; ++l) bs.part[l] = partial[l].data_ptr<T>() + block * 4 * out_dims[l];
        if (gather) {
            lgc::stack_backward_gather<T>(layers, bs.acts.data(), bs.grad.data(), width, group, bs.gx.data(),
                                          bs.part.data(), cb, threads, g_rows.data_ptr<T>());
        } else {
            lgc::ChunkPool::get().run_owned(parts, threads, [&](int64_t p) {
                lgc::stack_backward_part<T>(layers, bs.acts.data(), bs.grad.data(), width, group, bs.gx.data(),
                                            bs.part.data(), cb, cb.first(p, parts), cb.first(p + 1, parts));
            });
        }
    };
    if (spans) {
        std::atomic<int64_t> next{0};
        lgc::ChunkPool::get().run_owned(sets, nthreads, [&](int64_t set) {
            for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < count;) {
                const int64_t j0 = i * cols;
                span(j0, lgc::ColumnBlocks(std::min(cols, batch - j0), sizeof(T), 1), bufs[(size_t)set], 1, i,
                     set == 0);
            }
        });
    } else {
        span(0, lgc::ColumnBlocks(batch, sizeof(T)), bufs[0], nthreads, 0, true);
    }
    double loss = 0;
    for (double term : terms) loss += term;
    // each gate's coefficient gradient (the blocks added in order), its softmax backward, Adam
    const PhaseTimer timer(kReduce);
    std::vector<T*> wp(L), mp(L), vp(L);
    std::vector<const T*> part_all(L), pp(L);
    for (size_t l = 0; l < L; ++l) {
        pp[l] = probs[l].data_ptr<T>();
        wp[l] = adam.params[l].data_ptr<T>();
        mp[l] = adam.exp_avgs[l].data_ptr<T>();
        vp[l] = adam.exp_avg_sqs[l].data_ptr<T>();
        part_all[l] = partial[l].data_ptr<T>();
    }
    for_each_stack_gate(relax.data_ptr<T>(), out_dims, nthreads, [&](size_t l, int64_t i0, int64_t i1,
                                                                    const T(&relax_t)[4][16]) {
        alignas(64) T g[16];
        for (int64_t i = i0; i < i1; ++i) {
            lgc::reduce_gate(part_all[l], blocks, out_dims[l], i, pp[l], relax_t, g);
            lgc::adam_update<T>(wp[l] + 16 * i, g, mp[l] + 16 * i, vp[l] + 16 * i, 16, adam.beta1, adam.beta2, adam.eps,
                                adam.step_size, adam.bias2_sqrt);
        }
    });
    return loss / batch;
}

std::optional<torch::Tensor> stack_train_step(torch::Tensor x, std::vector<torch::Tensor> weights,
                                              std::vector<torch::Tensor> a, std::vector<torch::Tensor> b,
                                              torch::Tensor relax, int64_t k, double tau, torch::Tensor y,
                                              std::vector<double> grad_factors, std::vector<torch::Tensor> exp_avgs,
                                              std::vector<torch::Tensor> exp_avg_sqs, std::vector<torch::Tensor> steps,
                                              double lr, double beta1, double beta2, double eps, int64_t nthreads) {
    const size_t L = weights.size();
    TORCH_CHECK(k >= 1 && tau > 0, "stack_train_step: k >= 1 classes and tau > 0 expected");
    TORCH_CHECK(L >= 1 && steps.size() == L && grad_factors.size() == L && exp_avgs.size() == L &&
                    exp_avg_sqs.size() == L,
                "stack_train_step: one step count, grad_factor and two moments per layer expected");
    TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && x.size(0) >= 1 &&
                    (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble),
                "stack_train_step: x must be a float32/float64 CPU [batch, in_dim] tensor, batch >= 1");
    const int64_t batch = x.size(0);
    check_stack(weights, 16, a, b, x.size(1), x.scalar_type());
    check_weights(weights[0], relax);
    TORCH_CHECK(weights[L - 1].size(0) % k == 0, "stack_train_step: k must divide the last layer's width");
    for (size_t l = 0; l < L; ++l)
        for (const auto* t : {&exp_avgs[l], &exp_avg_sqs[l]})
            TORCH_CHECK(t->device().is_cpu() && t->is_contiguous() && t->scalar_type() == x.scalar_type() &&
                            t->sizes() == weights[l].sizes(),
                        "stack_train_step: layer ", l, "'s moments must be contiguous CPU tensors like its logits");
    TORCH_CHECK(y.device().is_cpu() && y.scalar_type() == torch::kLong && y.dim() == 1 && y.size(0) == batch,
                "stack_train_step: y must be int64 [batch] class indices for x [batch, in_dim]");
    const auto yc = y.contiguous();
    const int64_t* yp = yc.data_ptr<int64_t>();
    for (int64_t j = 0; j < batch; ++j)
        if (yp[j] < 0 || yp[j] >= k) return std::nullopt;  // not a class index (cross_entropy's ignore_index?)
    float step = 0;
    for (size_t l = 0; l < L; ++l) {
        TORCH_CHECK(steps[l].device().is_cpu() && steps[l].scalar_type() == torch::kFloat && steps[l].numel() == 1 &&
                        steps[l].is_contiguous(),
                    "stack_train_step: step counts must be float32 scalar CPU tensors");
        const float s = *steps[l].data_ptr<float>();
        if (l > 0 && s != step) return std::nullopt;  // the layers' Adam states at different steps (loaded so)
        step = s;
    }
    step += 1;  // torch: state["step"] += 1 on a float32 tensor, then float() of it
    const double t = (double)step;
    // ~10 pool calls (per span) follow with a few microseconds between them: helpers poll instead of
    // sleeping (2-thread step ~3% faster, 6 x 8000, batch 100), for at most 50 us after the step
    const lgc::ChunkPool::SpinScope spin(50);
    const StackAdam adam{weights, exp_avgs, exp_avg_sqs, beta1, beta2, eps,
                         lr / (1 - std::pow(beta1, t)), std::sqrt(1 - std::pow(beta2, t))};
    double loss = 0;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lgc_stack_train_step", [&] {
        loss = train_step_spans<scalar_t>(x, weights, a, b, relax, k, tau, yp, grad_factors, adam, (int)nthreads);
    });
    for (auto& s : steps) *s.data_ptr<float>() = step;  // torch's Adam: state["step"] += 1
    return torch::scalar_tensor(loss, x.options());
}

}  // namespace

// Distinct threads that ran a pool call of `n` chunks (each ~0.2 ms) with `threads` threads: the pool
// must keep to the count asked for, also after a wider call grew it (tests/test_frontend_kernels.py).
int64_t pool_threads_used(int64_t n, int64_t threads) {
    std::mutex m;
    std::set<std::thread::id> ids;
    lgc::ChunkPool::get().run(n, (int)threads, [&](int64_t) {
        {
            std::lock_guard<std::mutex> lock(m);
            ids.insert(std::this_thread::get_id());
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    });
    return (int64_t)ids.size();
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("forward", &forward, "relaxed logic layer forward (feature-major)");
    m.def("coefficients", &coefficients, "(softmax(w) @ relax, softmax(w)), fused per gate");
    m.def("coefficients_backward", &coefficients_backward, "gradient of the coefficients wrt the logits, from softmax(w)");
    m.def("backward", &backward, "relaxed logic layer backward: grad_x (or undefined), grad_c");
    m.def("group_sum_forward", &group_sum_forward, "GroupSum's group sums [k, batch] of a feature-major [n, batch]");
    m.def("group_sum_backward", &group_sum_backward, "GroupSum's input gradient, feature-major [n, batch]");
    m.def("adam_step", &adam_step, "one fused Adam step over lists of tensors, on the kernels' pool");
    m.def("pool_threads_used", &pool_threads_used, "threads that ran a pool call (a test of the thread cap)");
    m.def("stack_forward", &stack_forward, "a stack of logic layers' forward in one call (softmax, then the layers)");
    m.def("stack_backward", &stack_backward, "a stack of logic layers' backward in one call: grad_w per layer, grad_x");
    m.def("stack_phase_times", [] {
              std::map<std::string, double> out;
              const char* names[kPhases] = {"softmax", "input", "layers", "head", "loss", "backward", "reduce"};
              for (int k = 0; k < kPhases; ++k) {
                  out[names[k]] = stack_phase_seconds[k];
                  stack_phase_seconds[k] = 0;
              }
              return out;
          },
          "seconds stack_train_step spent per phase since the last call (then zeroed)");
    m.def("set_train_cache_bytes", [](int64_t bytes) {
              const int64_t previous = cache_bytes_override;
              cache_bytes_override = std::max<int64_t>(bytes, 0);
              return previous;
          },
          "the cache size stack_train_step runs spans for (0: the host's); returns the previous override");
    m.def("stack_train_step", &stack_train_step,
          "one training step of a logic-layer stack with a GroupSum head: forward, cross-entropy, backward, Adam");
    m.def("set_pool_spin_us", [](int64_t us) { lgc::ChunkPool::get().set_spin_us(us); },
          "microseconds an idle pool helper polls for the next call before it sleeps");
    m.def("contiguous", &contiguous, "the tensor, or a contiguous copy of it in a reused buffer");
}
