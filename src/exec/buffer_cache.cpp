// Size-keyed free lists of large CPU buffers (see buffer_cache.h).
#include "exec/buffer_cache.h"

#include <c10/core/CPUAllocator.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace edgequant::exec {

namespace {
constexpr size_t kMinCached = size_t(1) << 20;  // below 1 MiB glibc already reuses memory
constexpr size_t kGranule = size_t(1) << 16;    // sizes rounded up to 64 KiB
constexpr size_t kMaxIdle = size_t(8) << 30;    // never hold more than 8 GiB unused

class BufferCache final : public c10::Allocator {
 public:
  explicit BufferCache(c10::Allocator* fallback) : fallback_(fallback) {}

  c10::DataPtr allocate(size_t n) const override {
    if (n < kMinCached) return fallback_->allocate(n);
    size_t size = (n + kGranule - 1) / kGranule * kGranule;
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        idle_ -= size;
      }
    }
    if (!p) {
      p = std::aligned_alloc(64, size);
      if (!p) throw std::bad_alloc();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      sizes_[p] = size;
    }
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  static void release(void* p) { instance()->give_back(p); }

  static BufferCache*& instance() {
    static BufferCache* cache = nullptr;
    return cache;
  }

 private:
  void give_back(void* p) const {
    std::unique_lock<std::mutex> lock(mutex_);
    auto it = sizes_.find(p);
    if (it == sizes_.end()) {
      // A small block that raw_allocate() took from the fallback: its deleter frees it.
      lock.unlock();
      fallback_->raw_deleter()(p);
      return;
    }
    size_t size = it->second;
    sizes_.erase(it);
    if (idle_ + size > kMaxIdle) {
      std::free(p);
      return;
    }
    free_[size].push_back(p);
    idle_ += size;
  }

  c10::Allocator* fallback_;
  mutable std::mutex mutex_;
  mutable std::map<size_t, std::vector<void*>> free_;
  mutable std::unordered_map<void*, size_t> sizes_;
  mutable size_t idle_ = 0;
};
}  // namespace

void install_buffer_cache() {
  static bool installed = [] {
    // Never destroyed: tensors may be freed during static destruction.
    auto* cache = new BufferCache(c10::GetDefaultCPUAllocator());
    BufferCache::instance() = cache;
    c10::SetCPUAllocator(cache, /*priority=*/1);
    return true;
  }();
  (void)installed;
}

}  // namespace edgequant::exec
