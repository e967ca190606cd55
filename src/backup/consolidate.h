// Consolidation: a synthetic full backup equal to an incremental's materialised chain, written
// from the chain's archives without reading the live lake, so long chains can be cut and old
// fulls expired.
#pragma once

#include <optional>
#include <string>

#include "config/config.h"
#include "core/env.h"
#include "core/result.h"
#include "core/time.h"
#include "manifest/manifest.h"

namespace lakevault {

struct ConsolidateOutcome {
  Manifest manifest;
  std::string archive_path;
  int64_t archive_bytes = 0;
};

Result<ConsolidateOutcome> RunConsolidate(Env& env, const std::string& backup_dir,
                                          const std::string& selector, Compression compression,
                                          std::optional<TimePoint> fixed_now);

}  // namespace lakevault
