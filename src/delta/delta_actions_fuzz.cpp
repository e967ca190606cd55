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
        if (p != it->end() && p->is_string())
          (void)lakevault::delta::DecodePath(p->get<std::string>());
        auto dv = it->find("deletionVector");
        // json::value throws on a field of another type: the harness reads strings only.
        auto text_of = [&](const char* key) {
          auto f = dv->find(key);
          return f != dv->end() && f->is_string() ? f->get<std::string>() : std::string();
        };
        if (dv != it->end() && dv->is_object())
          (void)lakevault::delta::DeletionVectorFile(text_of("storageType"),
                                                     text_of("pathOrInlineDv"));
      }
    }
  }
  (void)lakevault::delta::DecodeZ85(text);
  (void)lakevault::delta::ClassifyLogName(text);
  return 0;
}
