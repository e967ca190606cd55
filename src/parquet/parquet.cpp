// Placeholder until the reader lands: every call reports that it is not available.
#include "parquet/parquet.h"

namespace lakevault::parquet {

Result<FileMetadata> ReadFileMetadata(Env&, const std::string& path) {
  return Error("reading " + path + ": Parquet reader not available yet");
}
Result<FileMetadata> ParseFooter(const std::string&) {
  return Error("Parquet reader not available yet");
}
Result<std::vector<nlohmann::json>> ReadRowsAsJson(Env&, const std::string& path,
                                                   const std::vector<std::string>&) {
  return Error("reading " + path + ": Parquet reader not available yet");
}

}  // namespace lakevault::parquet
