// Operator hooks (config `hooks:`): shell commands run at fixed points of a job, e.g. the
// guide's `systemctl stop trading-engine` before a restore and its health check after.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/result.h"

namespace lakevault {

// Runs each command with /bin/sh -c in `cwd`, in order, stopping at the first that fails.
// `env` is added to the environment (LAKEVAULT_HOOK is set to `stage`). Hook output goes to
// stderr so JSON on stdout stays clean. The error names the stage, the command and its status.
Status RunHooks(const std::string& stage, const std::vector<std::string>& commands,
                const std::string& cwd, const std::map<std::string, std::string>& env = {});

}  // namespace lakevault
