// libFuzzer target: the manifest parser must turn any bytes into a Manifest or an Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "manifest/catalog.h"
#include "manifest/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto manifest = lakevault::ParseManifest(text);
  if (manifest.ok()) {
    // What parses must serialise and parse back to the same document.
    auto again = lakevault::ParseManifest(lakevault::ManifestToJson(*manifest));
    if (!again.ok() || lakevault::ManifestToJson(*again) != lakevault::ManifestToJson(*manifest))
      __builtin_trap();
  }
  (void)lakevault::ParseSha256Sidecar(text, "backup_20260127_160000.tar.gz");
  return 0;
}
