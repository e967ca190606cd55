// What happens after every job: its result goes into the state file, the Prometheus metrics
// file is rewritten, and a failure runs the on_failure hooks and posts to the webhook.
#pragma once

#include <string>

#include "config/config.h"
#include "core/env.h"
#include "core/time.h"
#include "state/state.h"

namespace lakevault {

// Prometheus text format (for node_exporter's textfile collector) from the state and catalogue.
std::string RenderMetrics(const State& state, const std::string& backup_dir, const Config& config,
                          TimePoint now);

// Posts `json` to `url` (libcurl, 10 s timeout). Errors are returned, never thrown.
Status PostWebhook(const std::string& url, const std::string& json);

// Records the job and notifies. Problems here are logged as warnings: they must never turn a
// successful job into a failed one.
void AfterJob(const Config& config, const std::string& backup_dir, const JobRecord& record,
              Env& env, TimePoint now);

}  // namespace lakevault
