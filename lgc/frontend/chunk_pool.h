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
#pragma once
#include <atomic>
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

    void run(int64_t n, int threads, const std::function<void(int64_t)>& fn) {
        if (n <= 0) return;
        if (threads <= 1 || n == 1 || getpid() != pid_) {
            for (int64_t i = 0; i < n; ++i) fn(i);
            return;
        }
        auto job = std::make_shared<Job>();
        job->fn = &fn;
        job->n = n;
        job->helpers = threads - 1;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            while ((int)helpers_ < threads - 1 && helpers_ < 64) {
                std::thread(&ChunkPool::helper, this, helpers_).detach();
                ++helpers_;
            }
            current_ = job;
            ++generation_;
        }
        wake_.notify_all();
        work(*job);
        while (job->done.load(std::memory_order_acquire) < n) std::this_thread::yield();
        std::lock_guard<std::mutex> lock(mutex_);
        if (current_ == job) current_.reset();
    }

  private:
    struct Job {
        const std::function<void(int64_t)>* fn = nullptr;  // valid while any chunk is unfinished
        int64_t n = 0;
        int helpers = 0;  // helpers 0 .. helpers-1 take part: a pool grown by a wider call stays that size
        std::atomic<int64_t> next{0};
        std::atomic<int64_t> done{0};
    };

    ChunkPool() : pid_(getpid()) {}

    static void work(Job& job) {
        for (int64_t i; (i = job.next.fetch_add(1, std::memory_order_relaxed)) < job.n;) {
            (*job.fn)(i);
            job.done.fetch_add(1, std::memory_order_release);
        }
    }

    void helper(unsigned index) {
        uint64_t seen = 0;
        for (;;) {
            std::shared_ptr<Job> job;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return generation_ != seen; });
                seen = generation_;
                job = current_;
            }
            if (job && (int)index < job->helpers) work(*job);
        }
    }

    const pid_t pid_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::shared_ptr<Job> current_;
    uint64_t generation_ = 0;
    unsigned helpers_ = 0;
};

}  // namespace lgc
