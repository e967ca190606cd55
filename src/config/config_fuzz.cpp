// libFuzzer target: the config loader must turn any YAML (or not-YAML) into a Config or an
// Error, never crash or throw.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto config = lakevault::ParseConfig(text, "/project", "lakevault.yaml");
  if (config.ok()) (void)config->LakeDir();
  return 0;
}
