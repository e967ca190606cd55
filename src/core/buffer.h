// Large I/O buffers: compression blocks, archive members, read-ahead pieces. On the VMs this
// runs on, the first touch of a fresh 4 KiB page costs 10-15 us: a 1 MiB buffer fresh from
// malloc took 2.5-3.6 ms to fill the first time, 0.05 ms when reused, and 0.1 ms per 2 MiB on a
// transparent huge page. A short run (an incremental backup moving 10 MB) spent a quarter of its
// time in such faults. Buffers up to kSlotBytes are therefore slots of one region of the
// process on huge pages, handed out lowest first so that the slots in use stay on few of them;
// larger ones come from the heap.
#pragma once

#include <cstddef>

namespace lakevault {

class Buffer {
 public:
  // A gzip block (1 MiB) with its worst-case growth, or a member read whole, fits a slot.
  static constexpr size_t kSlotBytes = (1u << 20) + (64u << 10);

  Buffer() = default;
  // `capacity` bytes, not initialized.
  explicit Buffer(size_t capacity);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  char* data() { return data_; }
  const char* data() const { return data_; }
  size_t capacity() const { return capacity_; }
  // Whether it is a slot of the shared region (for tests).
  bool from_slot() const { return slot_ >= 0; }

 private:
  void Release();

  char* data_ = nullptr;
  size_t capacity_ = 0;
  int slot_ = -1;
};

// Slots of the shared region in use now (for tests).
int BufferSlotsInUse();
// Slots of the shared region holding memory now, in use or not (for tests).
int BufferSlotsResident();

// Hands memory back to the kernel between the steps of a job, so that what one step freed is
// not counted in the next one's peak: the heap's free pages (malloc_trim) and the slots no
// buffer holds, which otherwise stay resident for reuse.
void TrimMemory();

}  // namespace lakevault
