// libFuzzer target: the Delta JSON action parser and the path and deletion-vector decoders must
// turn any commit text into actions or an Error, never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "delta/delta.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto actions = lakevault::delta::ParseActions(text);
  if (actions.ok()) {
    for (const auto& a : *actions) {
      for (const char* kind : {"add", "remove", "cdc"}) {
        auto it = a.find(kind);
        if (it == a.end() || !it->is_object()) continue;
        auto p = it->find("path");
        if (p != it->end() && p->is_string()) (void)lakevault::delta::DecodePath(p->get<std::string>());
        auto dv = it->find("deletionVector");
        if (dv != it->end() && dv->is_object())
          (void)lakevault::delta::DeletionVectorFile(dv->value("storageType", ""),
                                                     dv->value("pathOrInlineDv", ""));
      }
    }
  }
  (void)lakevault::delta::DecodeZ85(text);
  (void)lakevault::delta::ClassifyLogName(text);
  return 0;
}
