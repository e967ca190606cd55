// libFuzzer target: the Parquet footer and checkpoint reader must turn any bytes into rows or an
// Error: no crash, no hang, no unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <string>

#include "parquet/parquet.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  (void)lakevault::parquet::ParseFooter(bytes);
  (void)lakevault::parquet::ParseRowsAsJson(bytes, {"add", "remove", "metaData", "protocol", "txn",
                                                    "sidecar", "checkpointMetadata"},
                                            "fuzz.parquet");
  return 0;
}
