// libFuzzer target: the manifest parser must turn any bytes into a Manifest or an Error, and the
// catalogue's header scan must end on any bytes, fed in any pieces.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "manifest/catalog.h"
#include "manifest/header_scan.h"
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
  lakevault::ManifestHeaderScan scan;
  const size_t piece = size == 0 ? 1 : 1 + data[size - 1] % 97;
  bool scanned = true;
  for (size_t at = 0; at < size && scanned; at += piece)
    scanned = scan.Feed(text.data() + at, std::min(piece, size - at)).ok();
  if (scanned) scanned = scan.Finish().ok();
  if (manifest.ok() && scan.list_skipped()) {
    // A document the parser accepts is scanned, and what is kept is it with its list emptied.
    if (!scanned) __builtin_trap();
    auto whole = nlohmann::json::parse(text);
    auto kept = nlohmann::json::parse(scan.kept(), nullptr, false);
    if (kept.is_discarded() || !kept.is_object()) __builtin_trap();
    whole["files"] = nlohmann::json::array();
    kept["files"] = nlohmann::json::array();
    if (kept != whole) __builtin_trap();
  }
  (void)lakevault::ParseSha256Sidecar(text, "backup_20260127_160000.tar.gz");
  return 0;
}
