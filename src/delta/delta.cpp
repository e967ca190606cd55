#include "delta/delta.h"

#include <fcntl.h>
#include <simdjson.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <numeric>
#include <set>
#include <string_view>
#include <thread>
#include <utility>

#include "core/folder.h"
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

std::optional<int64_t> NumRecordsFromStats(std::string_view text) {
  auto stats = nlohmann::json::parse(text, nullptr, false);
  if (stats.is_discarded() || !stats.is_object()) return std::nullopt;
  auto n = stats.find("numRecords");
  if (n == stats.end() || !n->is_number_integer()) return std::nullopt;
  return n->get<int64_t>();
}

// Whether `e` is read as nlohmann reads it: its integers (unsigned ones cast, as get<int64_t>
// does) are taken, anything but a double left as it was; a double goes the slow way, since
// nlohmann reads some numbers simdjson calls doubles (-0) as integers.
bool JsonInteger(simdjson::dom::element e, int64_t& out) {
  switch (e.type()) {
    case simdjson::dom::element_type::INT64:
      out = int64_t(e);
      return true;
    case simdjson::dom::element_type::UINT64:
      out = static_cast<int64_t>(uint64_t(e));
      return true;
    case simdjson::dom::element_type::DOUBLE:
      return false;
    default:
      return true;
  }
}

// numRecords of an add's stats string through simdjson: with Spark's min/max/null counts the
// stats are most of an action, and nlohmann builds a DOM of all of it. Whatever simdjson refuses
// or reads differently is left to NumRecordsFromStats, so the answer stays nlohmann's.
class StatsReader {
 public:
  std::optional<int64_t> NumRecords(std::string_view text) {
    buf_.assign(text);
    buf_.append(simdjson::SIMDJSON_PADDING, ' ');
    simdjson::dom::element doc;
    simdjson::dom::object obj;
    if (parser_.parse(buf_.data(), text.size(), false).get(doc))
      return NumRecordsFromStats(text);  // simdjson's limits differ; nlohmann decides
    if (doc.get_object().get(obj)) return std::nullopt;
    std::optional<simdjson::dom::element> n;
    for (auto field : obj)
      if (field.key == "numRecords") n = field.value;
    if (!n) return std::nullopt;
    int64_t v = 0;
    if (!JsonInteger(*n, v)) return NumRecordsFromStats(text);
    if (n->type() != simdjson::dom::element_type::INT64 &&
        n->type() != simdjson::dom::element_type::UINT64)
      return std::nullopt;
    return v;
  }

 private:
  simdjson::dom::parser parser_;
  std::string buf_;
};

std::optional<int64_t> NumRecords(const nlohmann::json& add, StatsReader& stats) {
  auto it = add.find("stats");
  if (it == add.end() || !it->is_string()) return std::nullopt;
  return stats.NumRecords(it->get_ref<const std::string&>());
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

// Sets the decoded path and whether it is absolute; a relative path must stay inside the table.
Status SetPath(const std::string& encoded, FileAction& f) {
  LV_ASSIGN_OR_RETURN(f.path, DecodePath(encoded));
  f.absolute = IsAbsolute(f.path);
  if (f.absolute) return Status::Ok();
  // Normalising costs more than the rest of an action; only an empty path or one with a ".."
  // component can normalise to nothing or to a path above the table.
  if (!f.path.empty() && f.path.find("..") == std::string::npos) return Status::Ok();
  fs::path norm = fs::path(f.path).lexically_normal();
  if (norm.empty() || *norm.begin() == ".." || f.path.find('\0') != std::string::npos)
    return Error("path escapes the table: " + f.path);
  return Status::Ok();
}

// `stats` null: num_records is left for the caller to read.
Result<FileAction> ToFileAction(const nlohmann::json& a, int64_t version, bool keep_action,
                                StatsReader* stats) {
  FileAction f;
  f.version = version;
  if (keep_action) f.action = a;
  auto p = a.find("path");
  if (p == a.end() || !p->is_string()) return Error("file action without a path");
  LV_RETURN_IF_ERROR(SetPath(p->get<std::string>(), f));
  if (auto s = a.find("size"); s != a.end() && s->is_number_integer()) f.size = s->get<int64_t>();
  // nlohmann's objects are sorted by key, duplicates resolved: the pairs come out sorted.
  if (auto pv = a.find("partitionValues"); keep_action && pv != a.end() && pv->is_object())
    for (auto& [k, v] : pv->items())
      f.partition_values.emplace_back(k, v.is_string() ? v.get<std::string>() : "");
  if (stats) f.num_records = NumRecords(a, *stats);
  if (auto d = a.find("deletionVector"); d != a.end() && d->is_object()) {
    auto dv = std::make_shared<DeletionVector>();
    // json::value throws on a field of another type: a malformed log is an error, not a crash.
    auto text_of = [&](const char* key) {
      auto v = d->find(key);
      return v != d->end() && v->is_string() ? v->get<std::string>() : std::string();
    };
    dv->storage_type = text_of("storageType");
    dv->path_or_inline = text_of("pathOrInlineDv");
    if (auto o = d->find("offset"); o != d->end() && o->is_number_integer()) dv->offset = *o;
    if (auto o = d->find("sizeInBytes"); o != d->end() && o->is_number_integer()) dv->size = *o;
    if (auto o = d->find("cardinality"); o != d->end() && o->is_number_integer())
      dv->cardinality = *o;
    LV_ASSIGN_OR_RETURN(dv->file, DeletionVectorFile(dv->storage_type, dv->path_or_inline));
    f.dv = std::move(dv);
  }
  return f;
}

// What identifies a live file: its path and deletion vector, from either kind of list.
struct FileKey {
  std::string_view path;
  const DeletionVector* dv = nullptr;
};

FileKey KeyOf(const FileAction& f) { return {f.path, f.dv.get()}; }

// What tells apart two actions on one path: the deletion vector, ordered as a key string
// path + DvKey() sorts ("" first, so a file without one comes before its versions with one).
std::string DvKey(const DeletionVector* dv) {
  if (!dv) return "";
  return "\n" + dv->storage_type + dv->path_or_inline + "@" + std::to_string(dv->offset);
}

std::string Key(const FileAction& f) { return f.path + DvKey(f.dv.get()); }

bool SameFile(const FileKey& a, const FileKey& b) {
  if (a.path != b.path || !a.dv != !b.dv) return false;
  return !a.dv || (a.dv->storage_type == b.dv->storage_type &&
                   a.dv->path_or_inline == b.dv->path_or_inline && a.dv->offset == b.dv->offset);
}

size_t HashFile(const FileKey& f) {
  size_t h = std::hash<std::string_view>()(f.path);
  if (f.dv)
    h ^= std::hash<std::string_view>()(f.dv->path_or_inline) * 31 +
         std::hash<int64_t>()(f.dv->offset);
  return h;
}

// Snapshot order: by path, then by deletion vector as the key strings sort.
bool FileBefore(const FileKey& a, const FileKey& b) {
  int c = a.path.compare(b.path);
  if (c != 0) return c < 0;
  return DvKey(a.dv) < DvKey(b.dv);  // rare: one path live with several deletion vectors
}

// Reorders `items` so that slot i takes the item at order[i], moving each item once along the
// permutation's cycles: no second container of them is needed. `order` ends as the identity.
template <typename Items>
void ApplyOrder(Items& items, std::vector<uint32_t>& order) {
  for (size_t start = 0; start < order.size(); ++start) {
    if (order[start] == start) continue;
    auto first = std::move(items[start]);
    size_t to = start;
    while (true) {
      size_t from = order[to];
      order[to] = static_cast<uint32_t>(to);
      if (from == start) {
        items[to] = std::move(first);
        break;
      }
      items[to] = std::move(items[from]);
      to = from;
    }
  }
}

// The live files of a full snapshot, as LiveSet reaches them: FileList's building interface over
// Snapshot::files.
class ActionList {
 public:
  explicit ActionList(std::deque<FileAction>& files) : files_(files) {}
  size_t size() const { return files_.size(); }
  FileKey KeyAt(uint32_t slot) const { return KeyOf(files_[slot]); }
  uint32_t Append(FileAction&& f) {
    files_.push_back(std::move(f));
    return static_cast<uint32_t>(files_.size() - 1);
  }
  void Set(uint32_t slot, FileAction&& f) { files_[slot] = std::move(f); }
  // Moved out, not assigned over: a string assigned a short one keeps its buffer.
  void Clear(uint32_t slot) { (void)std::exchange(files_[slot], FileAction()); }
  void MoveSlot(uint32_t from, uint32_t to) { files_[to] = std::move(files_[from]); }
  void Resize(size_t n) { files_.resize(n); }
  void Permute(std::vector<uint32_t>& order) { ApplyOrder(files_, order); }
  void Repack() {}

 private:
  std::deque<FileAction>& files_;
};

// The same over a light snapshot's FileList.
class PackedList {
 public:
  explicit PackedList(FileList& files) : files_(files) {}
  size_t size() const { return files_.size(); }
  FileKey KeyAt(uint32_t slot) const {
    LiveFile f = files_[slot];
    return {f.path, f.dv};
  }
  uint32_t Append(FileAction&& f) { return files_.Append(f); }
  void Set(uint32_t slot, FileAction&& f) { files_.Set(slot, f); }
  void Clear(uint32_t slot) { files_.Clear(slot); }
  void MoveSlot(uint32_t from, uint32_t to) { files_.MoveSlot(from, to); }
  void Resize(size_t n) { files_.Resize(n); }
  void Permute(std::vector<uint32_t>& order) { files_.Permute(order); }
  void Repack() { files_.Repack(); }
  size_t MemoryBytes() const { return files_.MemoryBytes(); }

 private:
  FileList& files_;
};

// The live files of a replay, each held once, in the snapshot's own list: the index refers to
// them by slot, not by a copy of their path. (A map keyed by path held every path twice and
// then the snapshot's vector moved them once more: about 1 KB per live file at the peak.)
template <typename List>
class LiveSet {
 public:
  explicit LiveSet(List files) : files_(files), index_(16, kNone) {}
  LiveSet(const LiveSet&) = delete;
  LiveSet& operator=(const LiveSet&) = delete;

  void Add(FileAction f) {
    size_t bucket = Find(KeyOf(f));
    if (index_[bucket] != kNone) {
      files_.Set(index_[bucket], std::move(f));  // same path and DV: the same slot and hash
      return;
    }
    uint32_t slot;
    if (free_.empty()) {
      slot = files_.Append(std::move(f));
    } else {
      slot = free_.back();
      free_.pop_back();
      files_.Set(slot, std::move(f));
    }
    index_[bucket] = slot;
    if (++used_ * 4 > index_.size() * 3) Grow();
  }

  void Remove(const FileAction& f) {
    size_t hole = Find(KeyOf(f));
    uint32_t slot = index_[hole];
    if (slot == kNone) return;
    // Backward shift: the rest of the probe run moves up over the hole, so that no lookup stops
    // early at it (no markers for deleted buckets).
    size_t mask = index_.size() - 1;
    for (size_t next = (hole + 1) & mask; index_[next] != kNone; next = (next + 1) & mask) {
      size_t home = HashFile(files_.KeyAt(index_[next])) & mask;
      if (((next - home) & mask) >= ((next - hole) & mask)) {  // the hole is on its probe run
        index_[hole] = index_[next];
        hole = next;
      }
    }
    index_[hole] = kNone;
    --used_;
    files_.Clear(slot);  // the slot is taken by a later add
    free_.push_back(slot);
  }

  // What the set holds: its files and its index.
  size_t MemoryBytes() const {
    return files_.MemoryBytes() + (index_.capacity() + free_.capacity()) * sizeof(uint32_t);
  }

  // Leaves the files sorted in snapshot order, the free slots gone.
  void Finish() {
    index_ = {};
    std::sort(free_.begin(), free_.end());
    size_t kept = 0, next_free = 0;
    for (size_t i = 0; i < files_.size(); ++i) {
      if (next_free < free_.size() && free_[next_free] == i) {
        ++next_free;
        continue;
      }
      if (kept != i) files_.MoveSlot(static_cast<uint32_t>(i), static_cast<uint32_t>(kept));
      ++kept;
    }
    files_.Resize(kept);
    free_ = {};
    // Sorted as a permutation, then moved into place along its cycles.
    std::vector<uint32_t> order(files_.size());
    std::iota(order.begin(), order.end(), 0u);
    auto before = [this](uint32_t a, uint32_t b) {
      return FileBefore(files_.KeyAt(a), files_.KeyAt(b));
    };
    if (order.size() < (1u << 15)) {
      std::sort(order.begin(), order.end(), before);
    } else {
      // Each comparison is a cache miss or two at this size: the halves are sorted on two cores.
      auto mid = order.begin() + static_cast<std::ptrdiff_t>(order.size() / 2);
      std::thread half([&] { std::sort(order.begin(), mid, before); });
      std::sort(mid, order.end(), before);
      half.join();
      std::inplace_merge(order.begin(), mid, order.end(), before);
    }
    files_.Permute(order);
    files_.Repack();
  }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;

  // The bucket holding f's slot, or the empty one where it would go.
  size_t Find(const FileKey& f) const {
    size_t mask = index_.size() - 1;
    for (size_t b = HashFile(f) & mask;; b = (b + 1) & mask)
      if (index_[b] == kNone || SameFile(files_.KeyAt(index_[b]), f)) return b;
  }

  void Grow() {
    std::vector<uint32_t> old(index_.size() * 2, kNone);
    old.swap(index_);
    size_t mask = index_.size() - 1;
    for (uint32_t slot : old) {
      if (slot == kNone) continue;
      size_t b = HashFile(files_.KeyAt(slot)) & mask;
      while (index_[b] != kNone) b = (b + 1) & mask;
      index_[b] = slot;
    }
  }

  List files_;
  // Slots by hash: open addressing, linear probing, at most three quarters full: 5.3 to 10.7
  // bytes a file, where a node-based set took about 40. (Half full, the index of 300,000 files
  // was 4 MiB of a replay's peak.)
  std::vector<uint32_t> index_;
  size_t used_ = 0;
  std::vector<uint32_t> free_;  // slots of removed files, for the next adds
};

enum class FileKind { kAdd, kRemove, kCdc };

// One replay into `snap`; not movable (the live set refers to snap.files).
struct Replay {
  Snapshot snap;
  bool keep_actions = true;
  LiveSet<ActionList> live{ActionList(snap.files)};
  LiveSet<PackedList> light{PackedList(snap.light_files)};
  // Key() -> remove; kept only with keep_actions.
  std::map<std::string, FileAction> tombstones;
  std::set<std::string> unknown;
  StatsReader stats;
  // A light replay keeps the files of share `part` of `parts` only (SnapshotOptions), and, when
  // max_bytes is set, stops taking files once they hold more: `over` then tells the caller.
  uint32_t part = 0;
  uint32_t parts = 1;
  size_t max_bytes = 0;
  bool over = false;

  // What a reader of the log returns to end the replay once it is over its bound. No one shows
  // it: the caller sees `over` and splits the share.
  Status Stopped() const {
    return over ? Status(Error("stopped: over its memory bound")) : Status::Ok();
  }

  void ApplyFile(FileKind kind, FileAction f, bool from_checkpoint) {
    if (kind == FileKind::kCdc) {
      if (!f.absolute) snap.cdc_files.push_back(f.path);
      return;
    }
    if (!keep_actions && (over || (parts > 1 && ShareOf(f.path, parts) != part))) return;
    if (kind == FileKind::kAdd) {
      if (!tombstones.empty()) tombstones.erase(Key(f));
      if (keep_actions) {
        live.Add(std::move(f));
      } else {
        light.Add(std::move(f));
        if (max_bytes > 0 && light.MemoryBytes() > max_bytes) over = true;
      }
    } else {
      if (!from_checkpoint) {
        if (keep_actions)
          live.Remove(f);
        else
          light.Remove(f);
      }
      if (keep_actions) tombstones.insert_or_assign(Key(f), std::move(f));
    }
  }

  Status Apply(const nlohmann::json& action, int64_t version, bool from_checkpoint) {
    if (!action.is_object()) return Error("action is not a JSON object");
    for (auto& [name, body] : action.items()) {
      if (body.is_null()) continue;
      if (name == "add" || name == "remove" || name == "cdc") {
        LV_ASSIGN_OR_RETURN(FileAction f, ToFileAction(body, version, keep_actions, &stats));
        FileKind kind = name == "add"      ? FileKind::kAdd
                        : name == "remove" ? FileKind::kRemove
                                           : FileKind::kCdc;
        ApplyFile(kind, std::move(f), from_checkpoint);
      } else if (name == "metaData") {
        snap.metadata = body;
      } else if (name == "protocol") {
        snap.protocol = body;
      } else if (name == "txn") {
        if (body.contains("appId") && body["appId"].is_string() && body.contains("version") &&
            body["version"].is_number_integer())
          snap.app_transactions[body["appId"].get<std::string>()] = body["version"].get<int64_t>();
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

// A checkpoint action, its file action converted ahead when the row holds only an add or a
// remove (nearly every row), so that the thread decoding the file does that work as well.
struct PreparedAction {
  nlohmann::json row;  // null when `file` holds the conversion
  FileKind kind = FileKind::kAdd;
  std::optional<Result<FileAction>> file;
  // The stats string, left for the applying thread to read (it has spare time, the decoding
  // thread has none); only without raw actions, which would need it in place.
  std::optional<std::string> stats;
};

void Prepare(PreparedAction& p, int64_t version, bool keep_actions, StatsReader& stats) {
  if (p.file || !p.row.is_object() || p.row.size() != 1) return;
  auto it = p.row.begin();
  bool add = it.key() == "add", remove = it.key() == "remove";
  nlohmann::json& body = it.value();
  if ((!add && !remove) || body.is_null()) return;
  p.kind = add ? FileKind::kAdd : FileKind::kRemove;
  if (!keep_actions && body.is_object())
    if (auto s = body.find("stats"); s != body.end() && s->is_string())
      p.stats = std::move(s->get_ref<std::string&>());
  p.file = ToFileAction(body, version, keep_actions, keep_actions ? &stats : nullptr);
  p.row = nullptr;
}

// What a light snapshot (no raw actions) never reads of a checkpoint's file actions: ToFileAction
// takes path, size, stats and deletionVector. Left out of the rows, these are still decoded and
// checked, so a damaged checkpoint is refused as the full path refuses it; not building them
// (a map, a few strings and object nodes an add) was a fifth of the decoding thread's time.
parquet::StreamOptions LightStreamOptions() {
  parquet::StreamOptions o;
  o.unreturned = {"add.partitionValues",
                  "add.modificationTime",
                  "add.dataChange",
                  "add.tags",
                  "add.baseRowId",
                  "add.defaultRowCommitVersion",
                  "add.clusteringProvider",
                  "remove.partitionValues",
                  "remove.deletionTimestamp",
                  "remove.dataChange",
                  "remove.extendedFileMetadata",
                  "remove.tags",
                  "remove.stats",
                  "remove.baseRowId",
                  "remove.defaultRowCommitVersion"};
  return o;
}

// Decodes a Parquet file's rows on a second thread, and converts their file actions there
// (Prepare), while the caller's thread applies them: a check has two cores. (Converting on the
// caller's thread when it waits was slower: rows then are freed away from the thread that made
// them.) Batches are bounded: memory stays a few thousand rows ahead of the consumer. A prepared
// row holds its stats string (about 500 bytes in a Spark checkpoint): batches of 2048 kept 8 MB
// in flight, batches of 512 keep 2 MB and cost no measurable time.
class RowPipe {
 public:
  static constexpr size_t kBatch = 512;
  static constexpr size_t kMaxQueued = 4;

  RowPipe(Env& env, const std::string& path, int64_t version, bool keep_actions) {
    worker_ = std::thread([this, &env, &path, version, keep_actions] {
      StatsReader stats;
      std::vector<PreparedAction> batch;
      Status st = parquet::ForEachRowAsJson(
          env, path, kCheckpointColumns,
          [&](nlohmann::json& row) -> Status {
            batch.emplace_back().row = std::move(row);
            Prepare(batch.back(), version, keep_actions, stats);
            if (batch.size() < kBatch) return Status::Ok();
            return Push(batch);
          },
          keep_actions ? parquet::StreamOptions{} : LightStreamOptions());
      if (st.ok() && !batch.empty()) st = Push(batch);
      std::lock_guard<std::mutex> lock(mu_);
      status_ = st;
      done_ = true;
      cv_.notify_all();
    });
  }
  ~RowPipe() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
      cv_.notify_all();
    }
    worker_.join();
  }

  // The next batch, or false at the end (then status() says whether decoding failed).
  bool Next(std::vector<PreparedAction>& out) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !queue_.empty() || done_; });
    if (queue_.empty()) return false;
    out = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
    return true;
  }
  Status status() {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }

 private:
  Status Push(std::vector<PreparedAction>& batch) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return queue_.size() < kMaxQueued || cancelled_; });
    if (cancelled_) return Error("cancelled");
    queue_.push_back(std::move(batch));
    batch.clear();
    cv_.notify_all();
    return Status::Ok();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<PreparedAction>> queue_;
  bool done_ = false, cancelled_ = false;
  Status status_ = Status::Ok();
  std::thread worker_;
};

// Calls `fn` with each action of a checkpoint file in turn. Parquet rows are streamed, not all
// built first: as JSON objects a big checkpoint takes several times its size. The errors are
// those of reading the whole file first: a damaged file is reported before any error of `fn`,
// unless `stopped` says the error was a stop on purpose (a bounded replay's): nothing more is read.
Status ForEachAction(Env& env, const std::string& path, int64_t version, bool keep_actions,
                     const std::function<Status(PreparedAction&)>& fn,
                     const std::function<bool()>& stopped = nullptr) {
  if (!EndsWith(path, ".parquet")) {
    LV_ASSIGN_OR_RETURN(auto actions, ReadActionsFile(env, path));
    for (auto& a : actions) {
      PreparedAction p;
      p.row = std::move(a);
      LV_RETURN_IF_ERROR(fn(p));
    }
    return Status::Ok();
  }
  Status fn_status = Status::Ok();
  Status read_status = Status::Ok();
  {
    RowPipe pipe(env, path, version, keep_actions);
    std::vector<PreparedAction> batch;
    while (fn_status.ok() && pipe.Next(batch))
      for (auto& action : batch) {
        fn_status = fn(action);
        if (!fn_status.ok()) break;
      }
    if (fn_status.ok()) read_status = pipe.status();
  }
  if (!read_status.ok()) return read_status;
  if (fn_status.ok() || (stopped && stopped())) return fn_status;
  // The rest of the file is read through, rows dropped, only to tell whether it is damaged.
  Status rest = parquet::ForEachRowAsJson(env, path, kCheckpointColumns,
                                          [](nlohmann::json&) { return Status::Ok(); });
  return rest.ok() ? fn_status : rest;
}

// Reads one checkpoint (all parts, or a v2 top-level file with its sidecars) into `replay`.
Status ReadCheckpoint(Env& env, const std::string& log_dir, const std::vector<LogFile>& files,
                      Replay& replay) {
  auto stopped = [&replay] { return replay.over; };
  for (const auto& f : files) {
    std::string path = log_dir + "/" + f.name;
    LV_RETURN_IF_ERROR(ForEachAction(
        env, path, f.version, replay.keep_actions,
        [&](PreparedAction& p) -> Status {
          if (p.file) {
            if (!p.file->ok()) return Error(path + ": " + p.file->message());
            if (p.stats) (*p.file)->num_records = replay.stats.NumRecords(*p.stats);
            replay.ApplyFile(p.kind, std::move(**p.file), true);
            return replay.Stopped();
          }
          const nlohmann::json& a = p.row;
          Status st = replay.Apply(a, f.version, true);
          if (!st.ok()) return Error(path + ": " + st.message());
          if (a.contains("sidecar") && a["sidecar"].is_object()) {
            std::string sp = a["sidecar"].value("path", "");
            LV_ASSIGN_OR_RETURN(std::string decoded, DecodePath(sp));
            if (decoded.empty() || IsAbsolute(decoded) || decoded.find("..") != std::string::npos)
              return Error(path + ": unsupported sidecar path '" + sp + "'");
            std::string side = log_dir + "/_sidecars/" + decoded;
            LV_RETURN_IF_ERROR(ForEachAction(
                env, side, f.version, replay.keep_actions,
                [&](PreparedAction& side_action) -> Status {
                  if (side_action.file) {
                    if (!side_action.file->ok())
                      return Error(side + ": " + side_action.file->message());
                    if (side_action.stats)
                      (*side_action.file)->num_records =
                          replay.stats.NumRecords(*side_action.stats);
                    replay.ApplyFile(side_action.kind, std::move(**side_action.file), true);
                    return replay.Stopped();
                  }
                  Status sst = replay.Apply(side_action.row, f.version, true);
                  if (!sst.ok()) return Error(side + ": " + sst.message());
                  return Status::Ok();
                },
                stopped));
            replay.snap.checkpoint_files.push_back("_sidecars/" + decoded);
          }
          return Status::Ok();
        },
        stopped));
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

// Commit lines through simdjson instead of a nlohmann DOM each: at 300,000 adds the DOMs were
// most of a snapshot's time and memory. Only the common shape is taken here (add, remove and cdc
// without deletion vectors, next to actions that need nothing); any other line, and any line
// simdjson refuses, goes through Replay::Apply on a nlohmann DOM, so what is accepted, what it
// yields and the errors stay those of that one parser. Only the light mode (keep_actions = false)
// comes here, so partition values are not read.
class FastCommitReader {
 public:
  // ParseActions refuses lines nested deeper than 64; simdjson counts the top value as depth 1 and
  // refuses a line past its limit, which then takes the nlohmann path and its error.
  FastCommitReader() { ok_ = line_parser_.allocate(1 << 16, 64) == simdjson::SUCCESS; }

  // The file actions of one line, or false when the line needs the nlohmann path.
  bool Convert(std::string_view line, int64_t version,
               std::vector<std::pair<FileKind, FileAction>>& out) {
    out.clear();
    if (!ok_) return false;
    simdjson::dom::element doc;
    simdjson::dom::object obj;
    if (line_parser_.parse(line.data(), line.size(), false).get(doc) || doc.get_object().get(obj))
      return false;
    fields_.clear();
    for (auto field : obj) fields_.emplace_back(field.key, field.value);
    // nlohmann keeps an object's keys sorted, the last of duplicates winning; Apply sees them so.
    std::stable_sort(fields_.begin(), fields_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 0; i < fields_.size(); ++i) {
      if (i + 1 < fields_.size() && fields_[i + 1].first == fields_[i].first) continue;
      auto [name, body] = fields_[i];
      if (body.is_null()) continue;
      FileKind kind;
      if (name == "add") {
        kind = FileKind::kAdd;
      } else if (name == "remove") {
        kind = FileKind::kRemove;
      } else if (name == "cdc") {
        kind = FileKind::kCdc;
      } else if (name == "commitInfo" || name == "checkpointMetadata" || name == "domainMetadata") {
        continue;
      } else {
        return false;
      }
      FileAction f;
      if (!ConvertFile(body, version, f)) return false;
      out.emplace_back(kind, std::move(f));
    }
    return true;
  }

 private:
  bool ConvertFile(simdjson::dom::element body, int64_t version, FileAction& f) {
    simdjson::dom::object obj;
    if (body.get_object().get(obj)) return false;
    std::optional<simdjson::dom::element> path, size, stats, dv;
    for (auto field : obj) {  // later duplicates win, as in nlohmann
      if (field.key == "path")
        path = field.value;
      else if (field.key == "size")
        size = field.value;
      else if (field.key == "stats")
        stats = field.value;
      else if (field.key == "deletionVector")
        dv = field.value;
    }
    if (dv && dv->is_object()) return false;  // rare; Apply resolves its file
    std::string_view text;
    if (!path || path->get_string().get(text)) return false;
    f.version = version;
    if (!SetPath(std::string(text), f).ok()) return false;
    if (size && !JsonInteger(*size, f.size)) return false;
    if (stats && stats->is_string()) f.num_records = stats_.NumRecords(std::string_view(*stats));
    return true;
  }

  bool ok_ = false;
  simdjson::dom::parser line_parser_;
  // Its own parser: a stats string is parsed while its line's document is still in use.
  StatsReader stats_;
  std::vector<std::pair<std::string_view, simdjson::dom::element>> fields_;
};

// Replays one JSON commit through FastCommitReader. Errors carry no path; a failing commit is
// parsed again as ParseActions does, so the error is the one the nlohmann path reports first.
Status ReplayCommitFast(FastCommitReader& reader, const std::string& text, int64_t version,
                        Replay& r) {
  simdjson::padded_string padded(text);
  std::string_view all(padded.data(), padded.size());
  std::vector<std::pair<FileKind, FileAction>> files;
  size_t start = 0;
  Status st = Status::Ok();
  while (start < all.size() && st.ok()) {
    size_t end = all.find('\n', start);
    if (end == std::string_view::npos) end = all.size();
    std::string_view line = all.substr(start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    if (reader.Convert(line, version, files)) {
      for (auto& [kind, f] : files) r.ApplyFile(kind, std::move(f), false);
      continue;
    }
    std::string copy(line);
    auto j = JsonDepth(copy) > 64 ? nlohmann::json(nlohmann::json::value_t::discarded)
                                  : nlohmann::json::parse(copy, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      st = Error("malformed");
    else
      st = r.Apply(j, version, false);
  }
  if (st.ok()) return st;
  auto parsed = ParseActions(text);
  if (!parsed.ok()) return parsed.error();
  return st;
}

}  // namespace

// The hash is mixed first: a replay's index takes the low bits of the path's plain hash, and a
// share's files must not all share them.
uint32_t ShareOf(std::string_view path, uint32_t parts) {
  uint64_t h = std::hash<std::string_view>()(path);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return static_cast<uint32_t>(h & (parts - 1));
}

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
  // One fstatat per entry, relative to the open folder: std::filesystem took two stats of the
  // full path (type, then size), the most of what listing a log of 100 commits cost.
  auto add_dir = [&](const fs::path& dir, const std::string& prefix) -> Status {
    const int err = ForEachFolderEntry(dir, [&](const char* base, unsigned char, int dir_fd) {
      struct stat st;
      if (::fstatat(dir_fd, base, &st, AT_SYMLINK_NOFOLLOW) != 0) return;  // vanished meanwhile
      std::string name = prefix + base;
      if (S_ISDIR(st.st_mode)) {
        if (name == "_sidecars") return;  // listed below
        LogFile f;
        f.name = name + "/";
        out.push_back(f);
        return;
      }
      if (IsTransient(name)) return;
      LogFile f = Classify(name);
      f.size = S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
      out.push_back(f);
    });
    if (err != 0) return Error("listing " + dir.string() + ": " + std::strerror(err));
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

LiveFile FileList::operator[](size_t i) const {
  const Packed& p = files_[i];
  LiveFile f;
  f.path = std::string_view(blocks_[p.path >> 32].data() + (p.path & 0xffffffffu),
                            p.path_len & ~kAbsolute);
  f.absolute = (p.path_len & kAbsolute) != 0;
  f.size = p.size;
  if (p.num_records != kNoRecords) f.num_records = p.num_records;
  if (p.dv != kNoDv) f.dv = dvs_[p.dv].get();
  return f;
}

size_t FileList::LowerBound(std::string_view path) const {
  size_t lo = 0, hi = files_.size();
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if ((*this)[mid].path < path)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

size_t FileList::MemoryBytes() const {
  // Paths by the bytes stored in their blocks, not the blocks' capacity: a block's pages are
  // touched as it fills, and a bound of a few files must be measurable.
  constexpr size_t kDvBytes = sizeof(std::shared_ptr<DeletionVector>) + sizeof(DeletionVector) + 64;
  return live_bytes_ + dead_bytes_ + files_.size() * sizeof(Packed) + dvs_.size() * kDvBytes;
}

uint64_t FileList::Store(std::string_view path) {
  if (blocks_.empty() || blocks_.back().capacity() - blocks_.back().size() < path.size()) {
    blocks_.emplace_back().reserve(std::max(kBlock, path.size()));
  }
  std::string& block = blocks_.back();
  uint64_t at = (static_cast<uint64_t>(blocks_.size() - 1) << 32) | block.size();
  block.append(path);  // within its capacity: views into the block stay valid
  live_bytes_ += path.size();
  return at;
}

FileList::Packed FileList::Pack(const FileAction& f) {
  Packed p;
  p.path = Store(f.path);
  p.path_len = static_cast<uint32_t>(f.path.size()) | (f.absolute ? kAbsolute : 0);
  p.size = f.size;
  // INT64_MIN rows cannot be told from none; no writer counts so many (negative) records.
  if (f.num_records) p.num_records = *f.num_records;
  if (f.dv) {
    p.dv = static_cast<uint32_t>(dvs_.size());
    dvs_.push_back(f.dv);
  }
  return p;
}

uint32_t FileList::Append(const FileAction& f) {
  files_.push_back(Pack(f));
  return static_cast<uint32_t>(files_.size() - 1);
}

void FileList::Set(uint32_t slot, const FileAction& f) {
  Clear(slot);
  files_[slot] = Pack(f);
}

void FileList::Clear(uint32_t slot) {
  Packed& p = files_[slot];
  uint64_t len = p.path_len & ~kAbsolute;
  live_bytes_ -= len;
  dead_bytes_ += len;
  if (p.dv != kNoDv) dvs_[p.dv].reset();
  p = Packed();
}

void FileList::MoveSlot(uint32_t from, uint32_t to) { files_[to] = files_[from]; }

void FileList::Resize(size_t n) { files_.resize(n); }

void FileList::Permute(std::vector<uint32_t>& order) { ApplyOrder(files_, order); }

void FileList::Repack() {
  if (dead_bytes_ <= live_bytes_) return;
  std::vector<std::string> old;
  old.swap(blocks_);
  live_bytes_ = dead_bytes_ = 0;
  // Block by block, each old block freed once no file refers to it any more would need to know
  // the last user; the old blocks go at the end, so the peak is both copies of the live paths.
  for (Packed& p : files_) {
    std::string_view path(old[p.path >> 32].data() + (p.path & 0xffffffffu),
                          p.path_len & ~kAbsolute);
    p.path = Store(path);
  }
  std::vector<std::shared_ptr<const DeletionVector>> dvs;
  for (Packed& p : files_) {
    if (p.dv == kNoDv) continue;
    dvs.push_back(std::move(dvs_[p.dv]));
    p.dv = static_cast<uint32_t>(dvs.size() - 1);
  }
  dvs_ = std::move(dvs);
}

namespace {
// Calls `fn` with every live file of either kind of snapshot, as a FileAction or a LiveFile
// (their fields are named alike).
template <typename Fn>
void ForEachLive(const Snapshot& snap, Fn fn) {
  for (const auto& f : snap.files) fn(f);
  for (LiveFile f : snap.light_files) fn(f);
}
}  // namespace

std::vector<std::string> Snapshot::RequiredFiles() const {
  // Sorted and unique through a vector: a set of 300,000 paths held them twice at the end.
  std::vector<std::string> out;
  out.reserve(live_count());
  ForEachLive(*this, [&](const auto& f) {
    if (!f.absolute) out.emplace_back(f.path);
    if (f.dv && !f.dv->file.empty() && f.dv->storage_type == "u") out.push_back(f.dv->file);
  });
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<std::string> Snapshot::AbsolutePaths() const {
  std::vector<std::string> out;
  ForEachLive(*this, [&](const auto& f) {
    if (f.absolute) out.emplace_back(f.path);
    if (f.dv && f.dv->storage_type == "p") out.push_back(f.dv->file);
  });
  return out;
}

std::optional<int64_t> Snapshot::RowsFromStats() const {
  int64_t rows = 0;
  bool complete = true;
  ForEachLive(*this, [&](const auto& f) {
    if (!f.num_records) complete = false;
    if (complete) rows += *f.num_records - (f.dv ? f.dv->cardinality : 0);
  });
  if (!complete) return std::nullopt;
  return rows;
}

Result<Snapshot> LoadSnapshot(Env& env, const std::string& table_dir,
                              std::optional<int64_t> version, const SnapshotOptions& options) {
  LV_ASSIGN_OR_RETURN(auto log, ListLog(table_dir));
  return LoadSnapshot(env, table_dir, log, version, options);
}

namespace {

// Where a bounded replay gave up: how much of the log it had read, and what its files held then.
struct BoundStop {
  bool over = false;
  double reached = 0;  // of the replay's log bytes; 0 when it stopped inside a checkpoint
  size_t held = 0;
};

// LoadSnapshot with a bound: a light replay whose files outgrow `max_bytes` (0: none) is given
// up, and `*stop` says where.
Result<Snapshot> LoadSnapshotBounded(Env& env, const std::string& table_dir,
                                     const std::vector<LogFile>& log,
                                     std::optional<int64_t> version, const SnapshotOptions& options,
                                     size_t max_bytes, BoundStop* stop) {
  std::string log_dir = table_dir + "/_delta_log";
  int64_t latest = LatestVersion(log);
  if (latest < 0) return Error(table_dir + ": the Delta log has no commits");
  int64_t target = version.value_or(latest);
  if (target < 0 || target > latest)
    return Error(table_dir + ": version " + std::to_string(target) + " does not exist (latest is " +
                 std::to_string(latest) + ")");

  std::vector<std::string> warnings;
  std::map<int64_t, uint64_t> commits;  // version -> size
  std::set<std::string> names;
  for (const auto& f : log) {
    names.insert(f.name);
    if (f.kind == LogFileKind::kCommit) commits[f.version] = f.size;
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

  FastCommitReader fast;
  // Bytes of the replay's log read so far and in all, for where a bounded replay stopped.
  uint64_t read_bytes = 0, log_bytes = 0;
  auto replay_commits = [&](Replay& r, int64_t from) -> Status {
    for (auto it = commits.lower_bound(from); it != commits.end() && it->first <= target; ++it)
      log_bytes += it->second;
    for (int64_t v = from; v <= target; ++v) {
      if (!commits.count(v))
        return Error(table_dir + ": commit " + std::to_string(v) + " is missing from the log");
      char name[32];
      std::snprintf(name, sizeof(name), "%020lld.json", static_cast<long long>(v));
      std::string path = log_dir + "/" + name;
      LV_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(env, path));
      if (!r.keep_actions) {
        Status st = ReplayCommitFast(fast, text, v, r);
        read_bytes += text.size();
        if (r.over) {
          if (stop && log_bytes > 0) {
            stop->reached = std::min(1.0, static_cast<double>(read_bytes) / log_bytes);
            stop->held = r.light.MemoryBytes();
          }
          return r.Stopped();
        }
        if (!st.ok()) return Error(path + ": " + st.message());
        continue;
      }
      auto actions = ParseActions(text);
      if (!actions.ok()) return Error(path + ": " + actions.message());
      for (auto& a : *actions) {
        Status st = r.Apply(a, v, false);
        if (!st.ok()) return Error(path + ": " + st.message());
      }
    }
    return Status::Ok();
  };

  auto new_replay = [&] {
    auto r = std::make_unique<Replay>();
    r->keep_actions = options.keep_actions;
    if (!options.keep_actions) {
      r->part = options.part;
      r->parts = options.parts;
      r->max_bytes = max_bytes;
    }
    return r;
  };
  // A replay stopped at its bound is not a damaged checkpoint: no other is tried.
  auto stopped = [&](const Replay& r) {
    if (r.over && stop) stop->over = true;
    return r.over;
  };
  std::unique_ptr<Replay> done;
  std::string first_error;
  for (const auto& cp : CheckpointCandidates(log, target)) {
    auto r = new_replay();
    read_bytes = log_bytes = 0;
    for (const auto& f : cp) log_bytes += f.size;
    Status st = ReadCheckpoint(env, log_dir, cp, *r);
    read_bytes = log_bytes;
    if (st.ok()) st = replay_commits(*r, cp.front().version + 1);
    if (stopped(*r)) return r->Stopped();
    if (st.ok()) {
      r->snap.checkpoint_version = cp.front().version;
      for (const auto& f : cp)
        r->snap.checkpoint_files.insert(r->snap.checkpoint_files.begin(), f.name);
      done = std::move(r);
      break;
    }
    if (first_error.empty()) first_error = st.message();
    warnings.push_back("checkpoint " + cp.front().name + " skipped: " + st.message());
  }
  if (!done) {
    auto r = new_replay();
    read_bytes = log_bytes = 0;
    Status st = commits.count(0) ? replay_commits(*r, 0)
                                 : Status(Error(table_dir +
                                                ": commit 0 is missing and no usable "
                                                "checkpoint covers version " +
                                                std::to_string(target)));
    if (stopped(*r)) return r->Stopped();
    if (!st.ok()) return first_error.empty() ? st.error() : Error(first_error);
    done = std::move(r);
  }
  done->live.Finish();
  done->light.Finish();
  Snapshot snap = std::move(done->snap);
  snap.version = target;
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

}  // namespace

Result<Snapshot> LoadSnapshot(Env& env, const std::string& table_dir,
                              const std::vector<LogFile>& log, std::optional<int64_t> version,
                              const SnapshotOptions& options) {
  return LoadSnapshotBounded(env, table_dir, log, version, options, 0, nullptr);
}

Status ForEachSnapshotShare(
    Env& env, const std::string& table_dir, std::optional<int64_t> version, size_t max_bytes,
    const std::function<Status(Snapshot& share, uint32_t part, uint32_t parts)>& each) {
  // Listed once: every share is replayed from the same log, so at the same version even while
  // a writer commits.
  LV_ASSIGN_OR_RETURN(auto log, ListLog(table_dir));
  return ForEachSnapshotShare(env, table_dir, log, version, max_bytes, each);
}

namespace {

// Into how many shares (a power of two, at least 2) a share whose replay stopped at `stop` is
// split: as many as its files would fill at the end of the log, at the rate they grew up to the
// stop, with a tenth to spare. Splitting in two each time read the log about 5.7 times for a
// table four times over the bound (a third of it, two thirds twice, then four times whole); a
// guess from the first stop reads it 4.3 times. The live set of a log that also removes grows
// slower than that rate: the guess errs towards more shares, each a replay of its own.
uint32_t SplitWays(const BoundStop& stop, size_t max_bytes) {
  if (stop.reached <= 0 || max_bytes == 0) return 2;
  double need = 1.1 * static_cast<double>(stop.held) / stop.reached / max_bytes;
  uint32_t ways = 2;
  while (ways < need && ways < (1u << 8)) ways *= 2;
  return ways;
}

}  // namespace

Status ForEachSnapshotShare(
    Env& env, const std::string& table_dir, const std::vector<LogFile>& log,
    std::optional<int64_t> version, size_t max_bytes,
    const std::function<Status(Snapshot& share, uint32_t part, uint32_t parts)>& each) {
  // Past this a share's bound is dropped: a share of one file cannot be split further.
  constexpr uint32_t kMostParts = 1u << 16;
  std::vector<std::pair<uint32_t, uint32_t>> todo{{0, 1}};  // (part, parts), the next last
  while (!todo.empty()) {
    auto [part, parts] = todo.back();
    todo.pop_back();
    BoundStop stop;
    auto snap = LoadSnapshotBounded(env, table_dir, log, version,
                                    {.keep_actions = false, .part = part, .parts = parts},
                                    parts < kMostParts ? max_bytes : 0, &stop);
    if (stop.over) {
      uint32_t ways = std::min(SplitWays(stop, max_bytes), kMostParts / parts);
      for (uint32_t i = ways; i-- > 0;) todo.emplace_back(part + i * parts, parts * ways);
      continue;
    }
    if (!snap.ok()) return snap.status();
    LV_RETURN_IF_ERROR(each(*snap, part, parts));
  }
  return Status::Ok();
}

}  // namespace lakevault::delta
