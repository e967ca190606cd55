// libFuzzer target: tar entry-name validation. Whatever IsSafeMemberPath accepts must stay
// inside the extraction folder once normalised.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "archive/archive.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path(reinterpret_cast<const char*>(data), size);
  if (!lakevault::IsSafeMemberPath(path)) return 0;
  std::string normal = (std::filesystem::path("/target") / path).lexically_normal().string();
  if (normal.rfind("/target/", 0) != 0 && normal != "/target") __builtin_trap();
  return 0;
}
