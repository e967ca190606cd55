#include "delta/delta.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <set>
#include <unordered_map>

#include "parquet/parquet.h"

namespace lakevault::delta {
namespace fs = std::filesystem;

namespace {

bool AllDigits(const std::string& s, size_t pos, size_t n) {
  if (s.size() < pos + n) return false;
  for (size_t i = pos; i < pos + n; ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A number too large for its type (20 digits can exceed 2^63) makes the name unknown, never a
// crash: found by the delta_actions fuzz target.
template <typename T>
bool ParseNumber(const std::string& digits, T* out) {
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), *out);
  return ec == std::errc() && end == digits.data() + digits.size();
}

LogFile Classify(const std::string& name) {
  LogFile f;
  f.name = name;
  if (name == "_last_checkpoint") {
    f.kind = LogFileKind::kLastCheckpoint;
    return f;
  }
  if (name.rfind("_sidecars/", 0) == 0) {
    f.kind = LogFileKind::kSidecar;
    std::string base = name.substr(10);
    int64_t sv = -1;
    if (AllDigits(base, 0, 20) && ParseNumber(base.substr(0, 20), &sv)) f.version = sv;
    return f;
  }
  int64_t v = -1;
  if (!AllDigits(name, 0, 20) || name.size() < 21 || name[20] != '.' ||
      !ParseNumber(name.substr(0, 20), &v))
    return f;
  std::string rest = name.substr(21);
  if (rest == "json") {
    f.kind = LogFileKind::kCommit;
  } else if (rest == "crc") {
    f.kind = LogFileKind::kChecksum;
  } else if (rest == "checkpoint.parquet") {
    f.kind = LogFileKind::kCheckpoint;
  } else if (rest.rfind("checkpoint.", 0) == 0) {
    std::string tail = rest.substr(11);
    if (AllDigits(tail, 0, 10) && tail.size() == 10 + 1 + 10 + 8 && tail[10] == '.' &&
        AllDigits(tail, 11, 10) && EndsWith(tail, ".parquet")) {
      if (!ParseNumber(tail.substr(0, 10), &f.part) || !ParseNumber(tail.substr(11, 10), &f.parts))
        return f;
      f.kind = LogFileKind::kCheckpointPart;
    } else if (EndsWith(tail, ".json") || EndsWith(tail, ".parquet")) {
      f.kind = LogFileKind::kV2Checkpoint;
    } else {
      return f;
    }
  } else if (AllDigits(rest, 0, 20) && rest.substr(20) == ".compacted.json") {
    if (!ParseNumber(rest.substr(0, 20), &f.end_version)) return f;
    f.kind = LogFileKind::kCompaction;
  } else {
    return f;
  }
  f.version = v;
  return f;
}

// Writers stage commits under temporary names and rename them into place; such a file can vanish
// at any moment and is never part of a version.
bool IsTransient(const std::string& name) {
  std::string base = name.substr(name.rfind('/') + 1);
  return base.find(".tmp") != std::string::npos || base.rfind("_commit_", 0) == 0;
}

std::optional<int64_t> NumRecords(const nlohmann::json& add) {
  auto it = add.find("stats");
  if (it == add.end() || !it->is_string()) return std::nullopt;
  auto stats = nlohmann::json::parse(it->get<std::string>(), nullptr, false);
  if (stats.is_discarded() || !stats.is_object()) return std::nullopt;
  auto n = stats.find("numRecords");
  if (n == stats.end() || !n->is_number_integer()) return std::nullopt;
  return n->get<int64_t>();
}

bool IsAbsolute(const std::string& path) {
  if (!path.empty() && path[0] == '/') return true;
  auto colon = path.find(':');
  if (colon == std::string::npos || colon == 0) return false;
  for (size_t i = 0; i < colon; ++i) {
    char c = path[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.')
      return false;
  }
  return true;
}

// Takes `a` by value: callers move the parsed action in, so 300,000 adds are not deep-copied.
Result<FileAction> ToFileAction(nlohmann::json a, int64_t version) {
  FileAction f;
  f.version = version;
  auto p = a.find("path");
  if (p == a.end() || !p->is_string()) return Error("file action without a path");
  LV_ASSIGN_OR_RETURN(f.path, DecodePath(p->get<std::string>()));
  f.absolute = IsAbsolute(f.path);
  if (!f.absolute) {
    // A relative path must stay inside the table.
    fs::path norm = fs::path(f.path).lexically_normal();
    if (norm.empty() || *norm.begin() == ".." || f.path.find('\0') != std::string::npos)
      return Error("path escapes the table: " + f.path);
  }
  if (auto s = a.find("size"); s != a.end() && s->is_number_integer()) f.size = s->get<int64_t>();
  if (auto pv = a.find("partitionValues"); pv != a.end() && pv->is_object())
    for (auto& [k, v] : pv->items())
      f.partition_values[k] = v.is_string() ? v.get<std::string>() : "";
  f.num_records = NumRecords(a);
  if (auto d = a.find("deletionVector"); d != a.end() && d->is_object()) {
    DeletionVector dv;
    dv.storage_type = d->value("storageType", "");
    dv.path_or_inline = d->value("pathOrInlineDv", "");
    if (auto o = d->find("offset"); o != d->end() && o->is_number_integer()) dv.offset = *o;
    if (auto o = d->find("sizeInBytes"); o != d->end() && o->is_number_integer()) dv.size = *o;
    if (auto o = d->find("cardinality"); o != d->end() && o->is_number_integer())
      dv.cardinality = *o;
    LV_ASSIGN_OR_RETURN(dv.file, DeletionVectorFile(dv.storage_type, dv.path_or_inline));
    f.dv = dv;
  }
  f.action = std::move(a);
  return f;
}

std::string Key(const FileAction& f) {
  if (!f.dv) return f.path;
  return f.path + "\n" + f.dv->storage_type + f.dv->path_or_inline + "@" +
         std::to_string(f.dv->offset);
}

struct Replay {
  Snapshot snap;
  std::unordered_map<std::string, FileAction> live;
  std::unordered_map<std::string, FileAction> tombstones;
  std::set<std::string> unknown;

  // `action` is consumed: file actions are moved into the snapshot.
  Status Apply(nlohmann::json& action, int64_t version, bool from_checkpoint) {
    if (!action.is_object()) return Error("action is not a JSON object");
    for (auto& [name, body] : action.items()) {
      if (body.is_null()) continue;
      if (name == "add") {
        LV_ASSIGN_OR_RETURN(FileAction f, ToFileAction(std::move(body), version));
        std::string key = Key(f);
        tombstones.erase(key);
        live.insert_or_assign(std::move(key), std::move(f));
      } else if (name == "remove") {
        LV_ASSIGN_OR_RETURN(FileAction f, ToFileAction(std::move(body), version));
        std::string key = Key(f);
        if (!from_checkpoint) live.erase(key);
        tombstones.insert_or_assign(std::move(key), std::move(f));
      } else if (name == "metaData") {
        snap.metadata = body;
      } else if (name == "protocol") {
        snap.protocol = body;
      } else if (name == "txn") {
        if (body.contains("appId") && body["appId"].is_string() && body.contains("version") &&
            body["version"].is_number_integer())
          snap.app_transactions[body["appId"].get<std::string>()] = body["version"].get<int64_t>();
      } else if (name == "cdc") {
        LV_ASSIGN_OR_RETURN(FileAction f, ToFileAction(body, version));
        if (!f.absolute) snap.cdc_files.push_back(f.path);
      } else if (name == "commitInfo" || name == "sidecar" || name == "checkpointMetadata" ||
                 name == "domainMetadata") {
        // Known, nothing to resolve for a backup.
      } else {
        unknown.insert(name);
      }
    }
    return Status::Ok();
  }
};

const std::vector<std::string> kCheckpointColumns = {
    "add", "remove",  "metaData",           "protocol",
    "txn", "sidecar", "checkpointMetadata", "domainMetadata"};

Result<std::vector<nlohmann::json>> ReadActionsFile(Env& env, const std::string& path) {
  if (EndsWith(path, ".parquet")) return parquet::ReadRowsAsJson(env, path, kCheckpointColumns);
  LV_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(env, path));
  auto actions = ParseActions(text);
  if (!actions.ok()) return Error(path + ": " + actions.message());
  return actions;
}

// Reads one checkpoint (all parts, or a v2 top-level file with its sidecars) into `replay`.
Status ReadCheckpoint(Env& env, const std::string& log_dir, const std::vector<LogFile>& files,
                      Replay& replay) {
  for (const auto& f : files) {
    std::string path = log_dir + "/" + f.name;
    LV_ASSIGN_OR_RETURN(auto actions, ReadActionsFile(env, path));
    for (auto& a : actions) {
      Status st = replay.Apply(a, f.version, true);  // consumes only add/remove/cdc bodies
      if (!st.ok()) return Error(path + ": " + st.message());
      if (a.contains("sidecar") && a["sidecar"].is_object()) {
        std::string sp = a["sidecar"].value("path", "");
        LV_ASSIGN_OR_RETURN(std::string decoded, DecodePath(sp));
        if (decoded.empty() || IsAbsolute(decoded) || decoded.find("..") != std::string::npos)
          return Error(path + ": unsupported sidecar path '" + sp + "'");
        std::string side = log_dir + "/_sidecars/" + decoded;
        LV_ASSIGN_OR_RETURN(auto side_actions, ReadActionsFile(env, side));
        for (auto& sa : side_actions) {
          Status sst = replay.Apply(sa, f.version, true);
          if (!sst.ok()) return Error(side + ": " + sst.message());
        }
        replay.snap.checkpoint_files.push_back("_sidecars/" + decoded);
      }
    }
  }
  return Status::Ok();
}

// The checkpoints at or before `version`, newest first, each as the files that make it up.
std::vector<std::vector<LogFile>> CheckpointCandidates(const std::vector<LogFile>& log,
                                                       int64_t version) {
  std::map<int64_t, std::vector<std::vector<LogFile>>, std::greater<>> by_version;
  std::map<std::pair<int64_t, int>, std::vector<LogFile>> parts;
  for (const auto& f : log) {
    if (f.version < 0 || f.version > version) continue;
    if (f.kind == LogFileKind::kCheckpoint || f.kind == LogFileKind::kV2Checkpoint)
      by_version[f.version].push_back({f});
    if (f.kind == LogFileKind::kCheckpointPart) parts[{f.version, f.parts}].push_back(f);
  }
  for (auto& [key, files] : parts) {
    std::set<int> seen;
    for (const auto& f : files) seen.insert(f.part);
    if (static_cast<int>(seen.size()) != key.second || *seen.begin() != 1) continue;
    std::sort(files.begin(), files.end(),
              [](const LogFile& a, const LogFile& b) { return a.part < b.part; });
    by_version[key.first].push_back(files);
  }
  std::vector<std::vector<LogFile>> out;
  for (auto& [v, list] : by_version)
    for (auto& files : list) out.push_back(files);
  return out;
}

int JsonDepth(const std::string& line) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '{' || c == '[')
      max_depth = std::max(max_depth, ++depth);
    else if (c == '}' || c == ']')
      --depth;
  }
  return max_depth;
}

}  // namespace

LogFile ClassifyLogName(const std::string& name) { return Classify(name); }

bool IsTable(const std::string& dir) {
  std::error_code ec;
  return fs::is_directory(fs::path(dir) / "_delta_log", ec);
}

Result<std::vector<LogFile>> ListLog(const std::string& table_dir) {
  fs::path log_dir = fs::path(table_dir) / "_delta_log";
  std::error_code ec;
  if (!fs::is_directory(log_dir, ec)) return Error(table_dir + ": no _delta_log folder");
  std::vector<LogFile> out;
  auto add_dir = [&](const fs::path& dir, const std::string& prefix) -> Status {
    std::error_code iec;
    for (fs::directory_iterator it(dir, iec), end; !iec && it != end; it.increment(iec)) {
      std::string name = prefix + it->path().filename().string();
      std::error_code sec;
      auto st = it->symlink_status(sec);
      if (sec) continue;  // vanished while listing
      if (fs::is_directory(st)) {
        if (name == "_sidecars") continue;  // listed below
        LogFile f;
        f.name = name + "/";
        out.push_back(f);
        continue;
      }
      if (IsTransient(name)) continue;
      LogFile f = Classify(name);
      f.size = fs::is_regular_file(st) ? it->file_size(sec) : 0;
      out.push_back(f);
    }
    if (iec) return Error("listing " + dir.string() + ": " + iec.message());
    return Status::Ok();
  };
  LV_RETURN_IF_ERROR(add_dir(log_dir, ""));
  if (fs::is_directory(log_dir / "_sidecars", ec)) {
    LV_RETURN_IF_ERROR(add_dir(log_dir / "_sidecars", "_sidecars/"));
    for (auto& f : out)
      if (f.name.rfind("_sidecars/", 0) == 0) f.kind = LogFileKind::kSidecar;
  }
  std::sort(out.begin(), out.end(),
            [](const LogFile& a, const LogFile& b) { return a.name < b.name; });
  return out;
}

int64_t LatestVersion(const std::vector<LogFile>& log) {
  int64_t v = -1;
  for (const auto& f : log)
    if (f.kind == LogFileKind::kCommit || f.kind == LogFileKind::kCheckpoint ||
        f.kind == LogFileKind::kCheckpointPart || f.kind == LogFileKind::kV2Checkpoint)
      v = std::max(v, f.version);
  return v;
}

std::vector<LogFile> LogFilesUpTo(const std::vector<LogFile>& log, int64_t version) {
  std::vector<LogFile> out;
  for (const auto& f : log) {
    switch (f.kind) {
      case LogFileKind::kLastCheckpoint:
        break;
      case LogFileKind::kCompaction:
        if (f.end_version <= version) out.push_back(f);
        break;
      case LogFileKind::kOther:
        if (!f.name.empty() && f.name.back() == '/') break;  // folders: their files are listed
        out.push_back(f);
        break;
      default:
        if (f.version <= version) out.push_back(f);
    }
  }
  return out;
}

Result<std::vector<nlohmann::json>> ParseActions(const std::string& text) {
  std::vector<nlohmann::json> out;
  size_t start = 0;
  int line_no = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    ++line_no;
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (JsonDepth(line) > 64)
      return Error("line " + std::to_string(line_no) + ": nested too deeply");
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) return Error("line " + std::to_string(line_no) + ": malformed JSON");
    if (!j.is_object()) return Error("line " + std::to_string(line_no) + ": not an action object");
    out.push_back(std::move(j));
  }
  return out;
}

Result<std::string> DecodePath(const std::string& encoded) {
  std::string out;
  out.reserve(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    char c = encoded[i];
    if (c != '%') {
      out.push_back(c);
      continue;
    }
    if (i + 2 >= encoded.size() || !std::isxdigit(static_cast<unsigned char>(encoded[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(encoded[i + 2])))
      return Error("malformed escape in path '" + encoded + "'");
    out.push_back(static_cast<char>(std::stoi(encoded.substr(i + 1, 2), nullptr, 16)));
    i += 2;
  }
  if (out.find('\0') != std::string::npos) return Error("NUL in path '" + encoded + "'");
  return out;
}

Result<std::string> DecodeZ85(const std::string& text) {
  static const std::string kAlphabet =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  if (text.size() % 5 != 0) return Error("Z85 text length is not a multiple of 5");
  std::string out;
  for (size_t i = 0; i < text.size(); i += 5) {
    uint64_t v = 0;
    for (size_t j = 0; j < 5; ++j) {
      auto pos = kAlphabet.find(text[i + j]);
      if (pos == std::string::npos) return Error("invalid Z85 character");
      v = v * 85 + pos;
    }
    if (v > 0xffffffffULL) return Error("Z85 block out of range");
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
  }
  return out;
}

Result<std::string> DeletionVectorFile(const std::string& storage_type,
                                       const std::string& path_or_inline) {
  if (storage_type == "i") return std::string();
  if (storage_type == "p") return DecodePath(path_or_inline);
  if (storage_type != "u")
    return Error("unknown deletion vector storage type '" + storage_type + "'");
  if (path_or_inline.size() < 20) return Error("deletion vector id too short");
  std::string prefix = path_or_inline.substr(0, path_or_inline.size() - 20);
  LV_ASSIGN_OR_RETURN(std::string raw, DecodeZ85(path_or_inline.substr(prefix.size())));
  static const char* hex = "0123456789abcdef";
  std::string uuid;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) uuid.push_back('-');
    auto b = static_cast<unsigned char>(raw[i]);
    uuid.push_back(hex[b >> 4]);
    uuid.push_back(hex[b & 15]);
  }
  if (prefix.find("..") != std::string::npos || (!prefix.empty() && prefix[0] == '/'))
    return Error("deletion vector prefix escapes the table");
  return (prefix.empty() ? "" : prefix + "/") + "deletion_vector_" + uuid + ".bin";
}

std::vector<std::string> Snapshot::RequiredFiles() const {
  std::set<std::string> out;
  for (const auto& f : files) {
    if (!f.absolute) out.insert(f.path);
    if (f.dv && !f.dv->file.empty() && f.dv->storage_type == "u") out.insert(f.dv->file);
  }
  return {out.begin(), out.end()};
}

std::vector<std::string> Snapshot::AbsolutePaths() const {
  std::vector<std::string> out;
  for (const auto& f : files) {
    if (f.absolute) out.push_back(f.path);
    if (f.dv && f.dv->storage_type == "p") out.push_back(f.dv->file);
  }
  return out;
}

std::optional<int64_t> Snapshot::RowsFromStats() const {
  int64_t rows = 0;
  for (const auto& f : files) {
    if (!f.num_records) return std::nullopt;
    rows += *f.num_records - (f.dv ? f.dv->cardinality : 0);
  }
  return rows;
}

Result<Snapshot> LoadSnapshot(Env& env, const std::string& table_dir,
                              std::optional<int64_t> version) {
  LV_ASSIGN_OR_RETURN(auto log, ListLog(table_dir));
  return LoadSnapshot(env, table_dir, log, version);
}

Result<Snapshot> LoadSnapshot(Env& env, const std::string& table_dir,
                              const std::vector<LogFile>& log, std::optional<int64_t> version) {
  std::string log_dir = table_dir + "/_delta_log";
  int64_t latest = LatestVersion(log);
  if (latest < 0) return Error(table_dir + ": the Delta log has no commits");
  int64_t target = version.value_or(latest);
  if (target < 0 || target > latest)
    return Error(table_dir + ": version " + std::to_string(target) + " does not exist (latest is " +
                 std::to_string(latest) + ")");

  std::vector<std::string> warnings;
  std::set<int64_t> commits;
  std::set<std::string> names;
  for (const auto& f : log) {
    names.insert(f.name);
    if (f.kind == LogFileKind::kCommit) commits.insert(f.version);
  }
  // _last_checkpoint is only a hint; a stale or broken one is reported, not trusted.
  if (names.count("_last_checkpoint")) {
    auto text = ReadWholeFile(env, log_dir + "/_last_checkpoint");
    auto hint = text.ok() ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
    if (!text.ok() || hint.is_discarded() || !hint.is_object() || !hint.contains("version") ||
        !hint["version"].is_number_integer()) {
      warnings.push_back("_last_checkpoint is unreadable");
    } else {
      int64_t hv = hint["version"].get<int64_t>();
      bool found = false;
      for (const auto& f : log)
        if (f.version == hv &&
            (f.kind == LogFileKind::kCheckpoint || f.kind == LogFileKind::kCheckpointPart ||
             f.kind == LogFileKind::kV2Checkpoint))
          found = true;
      if (!found)
        warnings.push_back("_last_checkpoint points to version " + std::to_string(hv) +
                           " but no checkpoint file for it exists");
    }
  }

  auto replay_commits = [&](Replay& r, int64_t from) -> Status {
    for (int64_t v = from; v <= target; ++v) {
      if (!commits.count(v))
        return Error(table_dir + ": commit " + std::to_string(v) + " is missing from the log");
      char name[32];
      std::snprintf(name, sizeof(name), "%020lld.json", static_cast<long long>(v));
      std::string path = log_dir + "/" + name;
      LV_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(env, path));
      auto actions = ParseActions(text);
      if (!actions.ok()) return Error(path + ": " + actions.message());
      for (auto& a : *actions) {
        Status st = r.Apply(a, v, false);
        if (!st.ok()) return Error(path + ": " + st.message());
      }
    }
    return Status::Ok();
  };

  std::optional<Replay> done;
  std::string first_error;
  for (const auto& cp : CheckpointCandidates(log, target)) {
    Replay r;
    Status st = ReadCheckpoint(env, log_dir, cp, r);
    if (st.ok()) st = replay_commits(r, cp.front().version + 1);
    if (st.ok()) {
      r.snap.checkpoint_version = cp.front().version;
      for (const auto& f : cp)
        r.snap.checkpoint_files.insert(r.snap.checkpoint_files.begin(), f.name);
      done = std::move(r);
      break;
    }
    if (first_error.empty()) first_error = st.message();
    warnings.push_back("checkpoint " + cp.front().name + " skipped: " + st.message());
  }
  if (!done) {
    Replay r;
    Status st = commits.count(0) ? replay_commits(r, 0)
                                 : Status(Error(table_dir +
                                                ": commit 0 is missing and no usable "
                                                "checkpoint covers version " +
                                                std::to_string(target)));
    if (!st.ok()) return first_error.empty() ? st.error() : Error(first_error);
    done = std::move(r);
  }
  Snapshot snap = std::move(done->snap);
  snap.version = target;
  for (auto& [k, f] : done->live) snap.files.push_back(std::move(f));
  std::sort(snap.files.begin(), snap.files.end(),
            [](const FileAction& a, const FileAction& b) { return a.path < b.path; });
  for (auto& [k, f] : done->tombstones) snap.tombstones.push_back(std::move(f));
  snap.unknown_actions.assign(done->unknown.begin(), done->unknown.end());
  snap.warnings = std::move(warnings);
  if (snap.metadata.is_object()) {
    if (auto pc = snap.metadata.find("partitionColumns");
        pc != snap.metadata.end() && pc->is_array())
      for (auto& c : *pc)
        if (c.is_string()) snap.partition_columns.push_back(c);
    if (auto conf = snap.metadata.find("configuration");
        conf != snap.metadata.end() && conf->is_object())
      if (auto m = conf->find("delta.columnMapping.mode"); m != conf->end() && m->is_string())
        snap.column_mapping_mode = *m;
  } else {
    return Error(table_dir + ": no metaData action up to version " + std::to_string(target));
  }
  return snap;
}

}  // namespace lakevault::delta
