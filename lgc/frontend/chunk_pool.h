// A tiny thread pool for the fused kernels that never waits for a helper that has not started.
//
// run(n, threads, fn) calls fn(0..n-1) once each on at most `threads` threads (the caller and helpers
// 0 .. threads-2, even after a wider call grew the pool). The calling thread claims chunks itself from an
// atomic counter, helpers claim the rest as they wake, and the caller waits only for chunks a
// helper has already claimed. On a machine shared with other jobs a fork-join barrier (OpenMP)
// waits a whole scheduler time slice for a descheduled thread, many times per training step;
// here a late helper simply finds no work left, so a call is never much slower than one thread.
// Helpers are detached and the pool is never destroyed (safe at interpreter exit); after fork()
// the child runs everything on the calling thread.
//
// run_owned(n, threads, fn): the same, except that chunk t goes first to thread t (the caller is
// thread 0, helper h thread h + 1), so that calls partitioned alike (the fused stack's forward and
// backward, by batch columns) run a part on the core that ran it last time and read the rows that
// core wrote from its own caches; a thread done with its own chunk takes any other not yet claimed,
// so a late helper still costs no wait.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace lgc {

class ChunkPool {
  public:
    static ChunkPool& get() {
        static ChunkPool* pool = new ChunkPool();  // leaked on purpose: no destructor at exit
        return *pool;
    }

    void run(int64_t n, int threads, const std::function<void(int64_t)>& fn) { launch(n, threads, fn, false); }

    void run_owned(int64_t n, int threads, const std::function<void(int64_t)>& fn) { launch(n, threads, fn, true); }

    // Microseconds an idle helper polls for the next call before it sleeps (default 0: sleeps at once).
    void set_spin_us(int64_t us) { spin_us_.store(us < 0 ? 0 : us, std::memory_order_relaxed); }

    // While a SpinScope lives, idle helpers poll at least `us` microseconds before they sleep: for one
    // caller's run of pool calls with short serial gaps between them (a fused training step: ~10
    // calls), so a helper is not woken from sleep for each; the previous setting returns after.
    class SpinScope {
      public:
        explicit SpinScope(int64_t us) : prev_(get().spin_us_.load(std::memory_order_relaxed)) {
            get().set_spin_us(std::max(prev_, us));
        }
        ~SpinScope() { get().set_spin_us(prev_); }
        SpinScope(const SpinScope&) = delete;
        SpinScope& operator=(const SpinScope&) = delete;

      private:
        int64_t prev_;
    };

  private:
    void launch(int64_t n, int threads, const std::function<void(int64_t)>& fn, bool owned) {
        if (n <= 0) return;
        if (threads <= 1 || n == 1 || getpid() != pid_) {
            for (int64_t i = 0; i < n; ++i) fn(i);
            return;
        }
        auto job = std::make_shared<Job>();
        job->fn = &fn;
        job->n = n;
        job->helpers = threads - 1;
        if (owned) {
            job->owned = true;
            job->taken.reset(new std::atomic<bool>[(size_t)n]);
            for (int64_t i = 0; i < n; ++i) job->taken[(size_t)i].store(false, std::memory_order_relaxed);
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            while ((int)helpers_ < threads - 1 && helpers_ < 64) {
                std::thread(&ChunkPool::helper, this, helpers_).detach();
                ++helpers_;
            }
            current_ = job;
            generation_.store(generation_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
        }
        wake_.notify_all();
        work(*job, 0);
        while (job->done.load(std::memory_order_acquire) < n) std::this_thread::yield();
        std::lock_guard<std::mutex> lock(mutex_);
        if (current_ == job) current_.reset();
    }

    struct Job {
        const std::function<void(int64_t)>* fn = nullptr;  // valid while any chunk is unfinished
        int64_t n = 0;
        int helpers = 0;  // helpers 0 .. helpers-1 take part: a pool grown by a wider call stays that size
        std::atomic<int64_t> next{0};
        std::atomic<int64_t> done{0};
        bool owned = false;                         // run_owned: chunk t first to thread t
        std::unique_ptr<std::atomic<bool>[]> taken;  // run_owned: chunk claimed
    };

    ChunkPool() : pid_(getpid()) {}

    static void work(Job& job, int64_t self) {
        if (job.owned) {
            auto take = [&](int64_t i) {
                if (job.taken[(size_t)i].exchange(true, std::memory_order_relaxed)) return;
                (*job.fn)(i);
                job.done.fetch_add(1, std::memory_order_release);
            };
            if (self < job.n) take(self);
            for (int64_t i = 0; i < job.n; ++i) take(i);
            return;
        }
        for (int64_t i; (i = job.next.fetch_add(1, std::memory_order_relaxed)) < job.n;) {
            (*job.fn)(i);
            job.done.fetch_add(1, std::memory_order_release);
        }
    }

    void helper(unsigned index) {
        uint64_t seen = 0;
        for (;;) {
            std::shared_ptr<Job> job;
            const int64_t spin = spin_us_.load(std::memory_order_relaxed);
            if (spin > 0) {
                const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin);
                while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < until) {
#if defined(__x86_64__) || defined(__i386__)
                    __builtin_ia32_pause();
#endif
                }
            }
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
                seen = generation_.load(std::memory_order_relaxed);
                job = current_;
            }
            if (job && (int)index < job->helpers) work(*job, (int64_t)index + 1);
        }
    }

    const pid_t pid_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::shared_ptr<Job> current_;
    std::atomic<uint64_t> generation_{0};  // written under mutex_, polled without it
    std::atomic<int64_t> spin_us_{0};
    unsigned helpers_ = 0;
};

}  // namespace lgc
