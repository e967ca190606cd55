#include "core/buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace lakevault {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSlots = false;  // every buffer is a heap block, so overruns are caught
#else
constexpr bool kSlots = true;
#endif

TEST(BufferTest, AFreedSlotIsTheNextOneHandedOut) {
  const int before = BufferSlotsInUse();
  Buffer a(1 << 20), b(Buffer::kSlotBytes);
  EXPECT_EQ(a.from_slot(), kSlots);
  EXPECT_EQ(b.from_slot(), kSlots);
  EXPECT_EQ(BufferSlotsInUse(), before + (kSlots ? 2 : 0));
  char* first = a.data();
  a = Buffer();
  EXPECT_EQ(BufferSlotsInUse(), before + (kSlots ? 1 : 0));
  Buffer c(4096);
  if (kSlots) {
    EXPECT_EQ(c.data(), first);  // lowest first: the slot a gave back
  }
  EXPECT_EQ(c.capacity(), 4096u);
}

TEST(BufferTest, LargerThanASlotComesFromTheHeap) {
  const int before = BufferSlotsInUse();
  Buffer big(Buffer::kSlotBytes + 1);
  EXPECT_FALSE(big.from_slot());
  EXPECT_EQ(BufferSlotsInUse(), before);
  std::memset(big.data(), 7, big.capacity());
  EXPECT_EQ(big.data()[Buffer::kSlotBytes], 7);
}

TEST(BufferTest, WhenEverySlotIsTakenBuffersComeFromTheHeapAndSlotsDoNotOverlap) {
  const int before = BufferSlotsInUse();
  std::vector<Buffer> held;
  for (int i = 0; i < 70; ++i) {
    held.emplace_back(Buffer::kSlotBytes);
    std::memset(held.back().data(), i, Buffer::kSlotBytes);
  }
  EXPECT_EQ(BufferSlotsInUse(), kSlots ? 64 : 0);
  EXPECT_EQ(before, 0);
  EXPECT_FALSE(held.back().from_slot());
  // Each buffer still holds its own pattern from end to end: no two share a byte.
  for (int i = 0; i < 70; ++i) {
    const char* p = held[i].data();
    EXPECT_EQ(p[0], static_cast<char>(i));
    EXPECT_EQ(p[Buffer::kSlotBytes - 1], static_cast<char>(i)) << i;
  }
  held.clear();
  EXPECT_EQ(BufferSlotsInUse(), before);
}

TEST(BufferTest, AMovedBufferGivesItsSlotBackOnce) {
  const int before = BufferSlotsInUse();
  {
    Buffer a(100);
    Buffer b(std::move(a));
    EXPECT_EQ(a.data(), nullptr);
    EXPECT_EQ(a.capacity(), 0u);
    Buffer c;
    c = std::move(b);
    EXPECT_EQ(c.capacity(), 100u);
    EXPECT_EQ(BufferSlotsInUse(), before + (kSlots ? 1 : 0));
  }
  EXPECT_EQ(BufferSlotsInUse(), before);
}

// Between steps a job hands idle slots' pages back; a slot still held keeps its bytes.
TEST(BufferTest, TrimMemoryReleasesIdleSlotsOnly) {
  TrimMemory();  // what earlier tests left
  EXPECT_EQ(BufferSlotsResident(), BufferSlotsInUse());
  Buffer kept(Buffer::kSlotBytes);
  std::memset(kept.data(), 5, kept.capacity());
  {
    Buffer a(Buffer::kSlotBytes), b(Buffer::kSlotBytes);
    std::memset(a.data(), 6, a.capacity());
    std::memset(b.data(), 7, b.capacity());
  }
  EXPECT_EQ(BufferSlotsResident(), kSlots ? BufferSlotsInUse() + 2 : 0);
  TrimMemory();
  EXPECT_EQ(BufferSlotsResident(), BufferSlotsInUse());
  size_t intact = 0;
  for (size_t i = 0; i < kept.capacity(); ++i) intact += kept.data()[i] == 5;
  EXPECT_EQ(intact, kept.capacity());
  // A released slot handed out again is usable.
  Buffer again(Buffer::kSlotBytes);
  std::memset(again.data(), 8, again.capacity());
  EXPECT_EQ(again.data()[Buffer::kSlotBytes - 1], 8);
}

}  // namespace
}  // namespace lakevault
