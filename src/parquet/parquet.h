// A small Parquet reader for what Delta needs: footers (row counts, schema) and the rows of a
// checkpoint's action columns, returned as JSON objects shaped like the log's JSON actions.
// No Delta semantics here.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/result.h"

namespace lakevault::parquet {

struct SchemaNode {
  std::string name;
  // Physical type for leaves ("INT32", "INT64", "BOOLEAN", "BYTE_ARRAY", "DOUBLE", ...), empty
  // for groups.
  std::string physical_type;
  std::string logical_type;  // "STRING", "MAP", "LIST", "TIMESTAMP", ... or empty
  std::string repetition;    // "REQUIRED", "OPTIONAL", "REPEATED"
  std::vector<SchemaNode> children;
};

struct RowGroupInfo {
  int64_t num_rows = 0;
  int64_t total_byte_size = 0;
};

struct FileMetadata {
  int64_t num_rows = 0;
  std::vector<RowGroupInfo> row_groups;
  SchemaNode schema;  // the root group
  std::string created_by;
};

// Reads only the footer of the Parquet file at `path`.
Result<FileMetadata> ReadFileMetadata(Env& env, const std::string& path);
// Parses a footer given as the file's last bytes (everything after the data pages: the
// thrift FileMetaData, its 4-byte length and "PAR1"). For tests and fuzzing.
Result<FileMetadata> ParseFooter(const std::string& tail);

// Reads the top-level columns named in `fields` (e.g. "add", "remove", "metaData", "protocol",
// "txn", "sidecar", "checkpointMetadata", "domainMetadata") and returns one JSON object per
// row holding only the requested fields that are non-null in that row. Structs become objects,
// MAPs objects (key -> value), LISTs arrays; INT32/INT64 integers, BOOLEAN booleans,
// FLOAT/DOUBLE numbers, BYTE_ARRAY strings; nulls inside a struct are JSON null.
Result<std::vector<nlohmann::json>> ReadRowsAsJson(Env& env, const std::string& path,
                                                   const std::vector<std::string>& fields);
// How rows are streamed. Tests shrink the sizes to reach every boundary.
struct StreamOptions {
  size_t rows_per_batch = 1024;    // rows whose column values are decoded at a time
  size_t read_piece = 128u << 10;  // bytes read from the file at a time
  // Sub-fields ("add.tags") read and checked like the others, so a damaged file is refused the
  // same, but left out of the rows: a reader that never looks at them saves building them.
  std::vector<std::string> unreturned;
};

// Calls `fn` with each row in turn, as ReadRowsAsJson would return it (`fn` may move it away),
// without holding them all, nor the file, nor a whole page: a batch of rows is decoded at a time
// from pages read and decompressed as they are consumed, so memory stays a few MB whatever the
// checkpoint's size (a checkpoint of 300,000 files is 50 MB, and several times that as JSON).
// Stops at the first error, from the file or from `fn`.
using RowCallback = std::function<Status(nlohmann::json& row)>;
Status ForEachRowAsJson(Env& env, const std::string& path, const std::vector<std::string>& fields,
                        const RowCallback& fn, const StreamOptions& options = {});
Status ForEachRowAsJson(RandomAccessFile& file, const std::vector<std::string>& fields,
                        const RowCallback& fn, const StreamOptions& options = {});
// ForEachRowAsJson on a whole file already in memory (`name` is used in errors).
Status ParseEachRowAsJson(const std::string& file, const std::vector<std::string>& fields,
                          const std::string& name, const RowCallback& fn);
// The same on a whole file already in memory (`name` is used in errors). For fuzzing.
Result<std::vector<nlohmann::json>> ParseRowsAsJson(const std::string& file,
                                                    const std::vector<std::string>& fields,
                                                    const std::string& name);

}  // namespace lakevault::parquet
