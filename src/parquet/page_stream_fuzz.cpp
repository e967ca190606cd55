// libFuzzer target: the streaming snappy decoder against libsnappy on any bytes. Both must
// accept the same inputs and give the same output, however the stream is read.
#include <snappy.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "parquet/page_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lakevault;
  if (size < 2) return 0;
  // The first byte picks the read piece and the take size, so boundaries move with the input.
  size_t piece = 1 + data[0] % 64, take = 1 + data[0] / 64 * 97;
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  size_t claimed = 0;
  if (snappy::GetUncompressedLength(bytes.data(), bytes.size(), &claimed) && claimed > (1u << 24))
    return 0;  // libsnappy would allocate it all first
  std::string expected;
  bool library_ok = snappy::Uncompress(bytes.data(), bytes.size(), &expected);
  auto file = NewMemoryFile(bytes, "fuzz");
  auto stream = parquet::PageStream::Open(*file, 0, bytes.size(), 1, 256u << 20, piece);
  bool ok = stream.ok();
  std::string got;
  while (ok) {
    auto p = (*stream)->Take(take);
    if (!p.ok()) {
      ok = false;
      break;
    }
    if (!*p) {
      auto rest = (*stream)->TakeRest();
      ok = rest.ok();
      if (ok) got += *rest;
      break;
    }
    got.append(reinterpret_cast<const char*>(*p), take);
  }
  if (ok != library_ok || (ok && got != expected)) std::abort();
  return 0;
}
