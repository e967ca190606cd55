#include "core/buffer.h"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdint>
#include <mutex>
#include <new>
#include <utility>

namespace lakevault {

namespace {

constexpr size_t kHugePage = 2u << 20;
constexpr int kSlots = 64;  // one bit each in SlotRegion::used

// Under AddressSanitizer every buffer is its own heap block, so an overrun is still caught.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kUseSlots = false;
#else
constexpr bool kUseSlots = true;
#endif

class SlotRegion {
 public:
  // The region is reserved once and never unmapped: slots not yet touched hold no memory, and a
  // buffer may outlive any object that could own the region.
  static SlotRegion& Get() {
    static SlotRegion* region = new SlotRegion();
    return *region;
  }

  // The lowest free slot, or -1 when all are taken (or the region could not be reserved).
  int Take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (base_ == nullptr || used_ == ~uint64_t{0}) return -1;
    int slot = __builtin_ctzll(~used_);
    used_ |= uint64_t{1} << slot;
    resident_ |= uint64_t{1} << slot;
    return slot;
  }
  void Give(int slot) {
    std::lock_guard<std::mutex> lock(mu_);
    used_ &= ~(uint64_t{1} << slot);
  }
  char* At(int slot) const { return base_ + static_cast<size_t>(slot) * Buffer::kSlotBytes; }
  int InUse() {
    std::lock_guard<std::mutex> lock(mu_);
    return __builtin_popcountll(used_);
  }
  int Resident() {
    std::lock_guard<std::mutex> lock(mu_);
    return __builtin_popcountll(resident_);
  }
  // The pages of every slot not in use go back to the kernel (a later Take faults them in anew).
  void ReleaseIdle() {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t idle = resident_ & ~used_;
    while (idle != 0) {
      int slot = __builtin_ctzll(idle);
      idle &= idle - 1;
      if (::madvise(At(slot), Buffer::kSlotBytes, MADV_DONTNEED) == 0)
        resident_ &= ~(uint64_t{1} << slot);
    }
  }

 private:
  SlotRegion() {
    const size_t bytes = kSlots * Buffer::kSlotBytes;
    void* p = ::mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return;  // every buffer then comes from the heap
    auto aligned = (reinterpret_cast<uintptr_t>(p) + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1);
    base_ = reinterpret_cast<char*>(aligned);
    // Without transparent huge pages (disabled, or an older kernel) the slots still save the
    // faults of reuse; only the first touch costs more.
    ::madvise(base_, bytes, MADV_HUGEPAGE);
  }

  std::mutex mu_;
  char* base_ = nullptr;
  uint64_t used_ = 0;
  uint64_t resident_ = 0;  // slots touched since their pages were last handed back
};

}  // namespace

Buffer::Buffer(size_t capacity) : capacity_(capacity) {
  if (capacity == 0) return;
  if (kUseSlots && capacity <= kSlotBytes) {
    SlotRegion& region = SlotRegion::Get();
    slot_ = region.Take();
    if (slot_ >= 0) {
      data_ = region.At(slot_);
      return;
    }
  }
  data_ = new char[capacity];
}

Buffer::~Buffer() { Release(); }

void Buffer::Release() {
  if (slot_ >= 0)
    SlotRegion::Get().Give(slot_);
  else
    delete[] data_;
  data_ = nullptr;
  capacity_ = 0;
  slot_ = -1;
}

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      capacity_(std::exchange(other.capacity_, 0)),
      slot_(std::exchange(other.slot_, -1)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    capacity_ = std::exchange(other.capacity_, 0);
    slot_ = std::exchange(other.slot_, -1);
  }
  return *this;
}

int BufferSlotsInUse() { return kUseSlots ? SlotRegion::Get().InUse() : 0; }

int BufferSlotsResident() { return kUseSlots ? SlotRegion::Get().Resident() : 0; }

void TrimMemory() {
  ::malloc_trim(0);
  if (kUseSlots) SlotRegion::Get().ReleaseIdle();
}

}  // namespace lakevault
