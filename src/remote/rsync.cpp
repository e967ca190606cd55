// Placeholder until the rsync backend lands.
#include "remote/internal.h"

namespace lakevault::remote_internal {
Result<std::unique_ptr<Storage>> OpenRsyncStorage(const RemoteSpec& spec) {
  return Error("rsync remote: not implemented yet");
}
}  // namespace lakevault::remote_internal
