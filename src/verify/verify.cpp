#include "verify/verify.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "archive/archive.h"
#include "core/buffer.h"
#include "crypto/sha256.h"
#include "delta/delta.h"
#include "manifest/chain.h"
#include "manifest/list_index.h"

namespace fs = std::filesystem;

namespace lakevault {

namespace {
constexpr size_t kManifestLimit = 512u << 20;
constexpr int64_t kLogMemberLimit = 256 << 20;

// The manifest member as read, compared with the expected text (a file) when there is one.
struct ManifestMember {
  bool present = false;  // non-empty
  bool matches = false;  // the very text expected
  std::string text;      // all of it, unless dropped because it matches
};

// The first `size` bytes of the file at `path`.
Result<std::string> ReadPrefix(Env& env, const std::string& path, size_t size) {
  LV_ASSIGN_OR_RETURN(auto file, env.NewSequentialFile(path));
  std::string out(size, '\0');
  size_t got = 0;
  while (got < size) {
    LV_ASSIGN_OR_RETURN(size_t n, file->Read(out.data() + got, size - got));
    if (n == 0) break;
    got += n;
  }
  out.resize(got);
  return out;
}

// Reads the manifest member of the entry `reader` is at, comparing it with the file at
// `expected_path` as both are read: the bytes that match are not kept (at 300,000 files the text
// is 90 MB). From the first difference on, the member is kept whole.
Result<ManifestMember> ReadManifestMember(Env& env, ArchiveReader& reader,
                                          const std::optional<std::string>& expected_path) {
  ManifestMember member;
  std::unique_ptr<SequentialFile> expected;
  if (expected_path) {
    auto file = env.NewSequentialFile(*expected_path);
    if (file.ok()) expected = std::move(file).value();
  }
  if (!expected) {
    LV_ASSIGN_OR_RETURN(member.text, reader.ReadAll(kManifestLimit));
    member.present = !member.text.empty();
    return member;
  }
  // The next `n` bytes of the expected file equal `piece`; a read error is a difference.
  std::vector<char> theirs(65536);
  auto expected_continues_with = [&](std::string_view piece) {
    size_t done = 0;
    while (done < piece.size()) {
      auto n = expected->Read(theirs.data(), std::min(theirs.size(), piece.size() - done));
      if (!n.ok() || *n == 0 || piece.substr(done, *n) != std::string_view(theirs.data(), *n))
        return false;
      done += *n;
    }
    return true;
  };
  size_t size = 0;
  bool same = true;
  std::vector<char> buffer(65536);
  auto diverge = [&]() -> Status {
    same = false;
    LV_ASSIGN_OR_RETURN(member.text, ReadPrefix(env, *expected_path, size));
    if (member.text.size() != size) return Error("the manifest sidecar changed while read");
    return Status::Ok();
  };
  while (true) {
    LV_ASSIGN_OR_RETURN(size_t n, reader.Read(buffer.data(), buffer.size()));
    if (n == 0) break;
    if (size + n > kManifestLimit)
      return Error(std::string(kManifestMemberName) + " is larger than " +
                   std::to_string(kManifestLimit) + " bytes");
    const std::string_view piece(buffer.data(), n);
    if (same && !expected_continues_with(piece)) LV_RETURN_IF_ERROR(diverge());
    if (!same) member.text.append(piece);
    size += n;
  }
  member.present = size > 0;
  if (same) {
    char probe;
    auto more = expected->Read(&probe, 1);
    member.matches = more.ok() && *more == 0;
    if (!member.matches) LV_RETURN_IF_ERROR(diverge());  // the member is a prefix of it
  }
  return member;
}

// A scratch folder under $TMPDIR (or /tmp), removed with the last reference to it.
std::shared_ptr<const std::string> NewScratchFolder() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/lakevault-verify-XXXXXX";
  if (!::mkdtemp(tmpl.data())) return nullptr;
  return std::shared_ptr<const std::string>(new std::string(tmpl), [](const std::string* dir) {
    std::error_code ec;
    fs::remove_all(*dir, ec);
    delete dir;
  });
}

// What a table's version needs from the backup: its live files (the snapshot's list, sorted by
// path) and the deletion vector files they name, each marked once the list is seen to hold it.
// One bit a file: a fingerprint of each path in the backup, kept while the log replayed, was
// 8 MB at the peak for 300,000 files.
class NeededFiles {
 public:
  explicit NeededFiles(const delta::FileList& files) : files_(files), held_(files.size()) {
    for (const delta::LiveFile f : files)
      if (f.dv && !f.dv->file.empty() && f.dv->storage_type == "u") dv_files_.push_back(f.dv->file);
    std::sort(dv_files_.begin(), dv_files_.end());
    dv_files_.erase(std::unique(dv_files_.begin(), dv_files_.end()), dv_files_.end());
    dv_held_.resize(dv_files_.size());
  }

  // `rel` (relative to the table) is in the backup.
  void Mark(std::string_view rel) {
    // One path is live once per deletion vector it has.
    for (size_t i = files_.LowerBound(rel); i < files_.size() && files_[i].path == rel; ++i)
      held_[i] = true;
    auto dv = std::lower_bound(dv_files_.begin(), dv_files_.end(), rel);
    if (dv != dv_files_.end() && *dv == rel) dv_held_[dv - dv_files_.begin()] = true;
  }

  // Calls `missing` with each needed file the backup does not hold, in order.
  void ForEachMissing(const std::function<void(std::string_view)>& missing) const {
    for (size_t i = 0; i < files_.size(); ++i) {
      const delta::LiveFile f = files_[i];
      if (!f.absolute && !held_[i]) missing(f.path);
    }
    for (size_t i = 0; i < dv_files_.size(); ++i)
      if (!dv_held_[i]) missing(dv_files_[i]);
  }

 private:
  const delta::FileList& files_;
  std::vector<bool> held_;
  std::vector<std::string_view> dv_files_;  // sorted, unique; views into the list's vectors
  std::vector<bool> dv_held_;
};

// Resolves each table's Delta log as the backup holds it and compares the version, the row
// count and the referenced files with the manifest. The list is read from `manifest_path` as a
// stream: first to link each log entry from the scratch copy of the archive holding it into a
// folder of the table's log, then once per table whose log was replayed, to mark which of the
// files its version needs the backup holds.
void CheckTablesAgainstContent(Env& env, const Manifest& header, const std::string& manifest_path,
                               const std::vector<const VerifyReport*>& holders,
                               size_t max_replay_bytes, VerifyReport& report) {
  struct TableCheck {
    const ManifestTable* table;
    std::string prefix;      // "<table path>/"
    std::string log_prefix;  // "<table path>/_delta_log/"
    std::shared_ptr<const std::string> scratch;
    bool written = true;
  };
  std::vector<TableCheck> checks;
  for (const auto& table : header.tables) {
    if (table.version < 0) continue;
    auto scratch = NewScratchFolder();
    if (!scratch) {
      report.Fail(header.id + ": cannot create a scratch folder to check table " + table.name);
      return;
    }
    checks.push_back(
        {&table, table.path + "/", table.path + "/_delta_log/", std::move(scratch), true});
  }
  if (checks.empty()) return;
  auto link_log = [&](const ManifestFile& file) {
    const std::string& path = file.path;
    for (auto& c : checks) {
      if (path.compare(0, c.prefix.size(), c.prefix) != 0) continue;
      if (!c.written || !file.link.empty() ||
          path.compare(0, c.log_prefix.size(), c.log_prefix) != 0)
        return;
      std::string source;
      for (const VerifyReport* h : holders)
        if (h->id == file.backup && h->log_dir) source = *h->log_dir + "/" + path;
      std::error_code ec;
      fs::path out = fs::path(*c.scratch) / "t/_delta_log" / path.substr(c.log_prefix.size());
      if (source.empty() || !fs::is_regular_file(source, ec)) {
        c.written = false;
        return;
      }
      fs::create_directories(out.parent_path(), ec);
      // A link to the copy already made; a copy where the two cannot be linked.
      fs::create_hard_link(source, out, ec);
      if (ec) fs::copy_file(source, out, fs::copy_options::overwrite_existing, ec);
      if (ec) c.written = false;
      return;
    }
  };
  auto read = ReadManifestFile(env, manifest_path, [&](ManifestFile&& f) {
    link_log(f);
    return Status::Ok();
  });
  if (!read.ok()) {
    report.Fail(header.id + ": " + read.message());
    return;
  }
  for (auto& c : checks) {
    const ManifestTable& table = *c.table;
    if (!c.written) continue;
    // The archives' read buffers and the chain index are freed by now; handing their pages back
    // before the replay, the largest step at many files, keeps them out of the peak.
    TrimMemory();
    // A table too big to replay at once is checked in shares of its files, a replay each, and
    // the list read once per share to mark what the share needs.
    int64_t version = -1;
    std::optional<int64_t> rows = 0;
    bool list_read = true;
    Status replayed = delta::ForEachSnapshotShare(
        Env::Default(), *c.scratch + "/t", std::nullopt, max_replay_bytes,
        [&](delta::Snapshot& snap, uint32_t, uint32_t) -> Status {
          version = snap.version;
          auto share_rows = snap.RowsFromStats();
          rows = rows && share_rows ? std::optional(*rows + *share_rows) : std::nullopt;
          if (snap.light_files.empty()) return Status::Ok();  // nothing to look for in the list
          // Every file the version needs (as Snapshot::RequiredFiles, without a list of them).
          // A file the backup names as missing (gone while it was taken) is not reported again.
          NeededFiles needed(snap.light_files);
          auto mark = [&](const std::string& path) {
            if (path.compare(0, c.prefix.size(), c.prefix) == 0)
              needed.Mark(std::string_view(path).substr(c.prefix.size()));
          };
          for (const auto& m : header.missing) mark(m);
          auto marked = ReadManifestFile(env, manifest_path, [&](ManifestFile&& f) {
            mark(f.path);
            return Status::Ok();
          });
          if (!marked.ok()) {
            list_read = false;
            return marked.status();
          }
          needed.ForEachMissing([&](std::string_view rel) {
            report.Fail(header.id + ": table " + table.name + ": " + std::string(rel) +
                        " (needed by version " + std::to_string(snap.version) +
                        ") is not in the backup");
          });
          return Status::Ok();
        });
    if (!list_read) {
      report.Fail(header.id + ": " + replayed.message());
      return;
    }
    if (!replayed.ok()) {
      report.Fail(header.id + ": table " + table.name +
                  ": the backed-up log is unreadable: " + replayed.message());
      continue;
    }
    if (version != table.version)
      report.Fail(header.id + ": table " + table.name + ": the backed-up log ends at version " +
                  std::to_string(version) + ", the manifest says " + std::to_string(table.version));
    if (rows && table.rows && *rows != *table.rows)
      report.Fail(header.id + ": table " + table.name + ": the backed-up log holds " +
                  std::to_string(*rows) + " rows, the manifest says " +
                  std::to_string(*table.rows));
  }
}

// Hashes members on a thread of its own while the caller reads the next bytes: with the hashing
// on the reading thread, SHA-256 was most of a verification's time there, while the other core
// had little to do once members are stored (incompressible data) and cheap to inflate. Buffers
// go round a small pool, so nothing is copied and memory stays at kBuffers x kBufferSize. A
// member whose expected digest is known is compared on that thread and only a mismatch is kept.
class HashPipe {
 public:
  static constexpr size_t kBuffers = 4;
  static constexpr size_t kBufferSize = 1 << 20;
  static constexpr size_t kNone = static_cast<size_t>(-1);

  struct Mismatch {
    size_t order;  // the caller's, to report in manifest order
    std::string path;
  };

  HashPipe() {
    for (size_t i = 0; i < kBuffers; ++i) free_.emplace_back(kBufferSize);
    thread_ = std::thread([this] { Run(); });
  }
  ~HashPipe() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  Buffer Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !free_.empty(); });
    auto buffer = std::move(free_.back());
    free_.pop_back();
    return buffer;
  }
  void Release(Buffer buffer) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(buffer));
    cv_.notify_all();
  }
  // Hashes `size` bytes of `buffer` into the current member, then returns the buffer to the pool.
  void Update(Buffer buffer, size_t size) { Push({std::move(buffer), size, kNone, {}, {}, 0}); }
  // Ends the current member; its digest will be TakeDigests()[returned index].
  size_t Finish() {
    std::lock_guard<std::mutex> lock(mu_);
    size_t index = digests_.size();
    digests_.emplace_back();
    jobs_.push_back({Buffer(), 0, index, {}, {}, 0});
    cv_.notify_all();
    return index;
  }
  // Ends the current member, which should hash to `expected_hex`; if not, `path` is kept.
  void FinishExpecting(std::string expected_hex, std::string path, size_t order) {
    Push({Buffer(), 0, kNone, std::move(expected_hex), std::move(path), order});
  }
  // Ends the current member, whose digest nothing is compared with.
  void FinishUnchecked() { Push({Buffer(), 0, kNone, {}, {}, 0, /*unchecked=*/true}); }
  // Waits for every job, then hands over the hex digests.
  std::vector<std::string> TakeDigests() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return jobs_.empty() && !busy_; });
    return std::move(digests_);
  }
  // After TakeDigests: the members that did not hash to their expected digest.
  std::vector<Mismatch> TakeMismatches() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::move(mismatches_);
  }

 private:
  struct Job {
    Buffer data;
    size_t size;
    size_t finish;         // digest index, or kNone
    std::string expected;  // non-empty: end of a member to compare
    std::string path;
    size_t order;
    bool unchecked = false;  // end of a member, its digest dropped
  };

  void Push(Job job) {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
    cv_.notify_all();
  }

  void Run() {
    Sha256 hash;
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return !jobs_.empty() || stop_; });
      if (jobs_.empty()) return;
      Job job = std::move(jobs_.front());
      jobs_.pop_front();
      busy_ = true;
      lock.unlock();
      const bool ends = job.finish != kNone || !job.expected.empty() || job.unchecked;
      std::string digest;
      if (!ends) {
        hash.Update(job.data.data(), job.size);
      } else {
        digest = hash.HexDigest();
        hash = Sha256();
      }
      lock.lock();
      if (!ends)
        free_.push_back(std::move(job.data));
      else if (job.finish != kNone)
        digests_[job.finish] = std::move(digest);
      else if (!job.unchecked && digest != job.expected)
        mismatches_.push_back({job.order, std::move(job.path)});
      busy_ = false;
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Buffer> free_;
  std::deque<Job> jobs_;
  std::vector<std::string> digests_;
  std::vector<Mismatch> mismatches_;
  bool busy_ = false, stop_ = false;
  std::thread thread_;
};

// One read of the archive. With `expected_manifest_path`, members are checked against that list
// as they are read, in order: lakevault writes them in the list's order, so memory stays flat.
// Members out of that order (or all of them, without a list) are kept by path and checked at the
// end against the list, or against the archive's own manifest when there is no list.
VerifyReport VerifyPass(Env& env, const std::string& id, const std::string& archive_path,
                        const std::optional<std::string>& expected_sha256,
                        const std::optional<std::string>& expected_manifest_path,
                        const VerifyArchiveOptions& options, ManifestMember* manifest_member) {
  VerifyReport report;
  report.id = id;
  Sha256 whole;
  auto reader = ArchiveReader::Open(env, archive_path, expected_sha256 ? &whole : nullptr);
  if (!reader.ok()) {
    report.Fail(id + ": " + reader.message());
    return report;
  }
  std::optional<ManifestStream> cursor;
  if (expected_manifest_path)
    cursor.emplace(env, *expected_manifest_path,
                   [&id](const ManifestFile& f) { return f.backup == id; });
  struct Unordered {
    int64_t size;
    size_t digest;  // index into the HashPipe's digests, kNone for a link
  };
  std::map<std::string, Unordered> unordered;
  // Problems about members checked in order, by their place in the list.
  std::vector<std::pair<size_t, std::string>> ordered_problems;
  size_t order = 0;
  bool in_order = cursor.has_value();
  std::set<std::string> links;
  bool manifest_last = false;
  HashPipe hasher;
  bool readable = true;
  // The member at hand is the list's next entry: taken from the list and its checks queued.
  auto expected_next = [&](const ArchiveEntry& entry) -> std::optional<ManifestFile> {
    if (!in_order) return std::nullopt;
    const ManifestFile* next = cursor->Peek();
    if (next && next->path == entry.path) {
      order++;
      return cursor->Pop();
    }
    in_order = false;
    return std::nullopt;
  };
  while (true) {
    ArchiveEntry entry;
    auto more = (*reader)->Next(&entry);
    if (!more.ok()) {
      report.Fail(id + ": " + more.message());
      readable = false;
      break;
    }
    if (!*more) break;
    report.members++;
    if (!IsSafeMemberPath(entry.path)) {
      report.Fail(id + ": unsafe member path '" + entry.path + "'");
      continue;
    }
    if (entry.type == EntryType::kDirectory) continue;
    if (entry.type == EntryType::kOther) {
      report.Fail(id + ": " + entry.path + ": unexpected member type (hard link or device)");
      continue;
    }
    manifest_last = false;
    if (entry.path == kManifestMemberName) {
      auto member = ReadManifestMember(env, **reader, expected_manifest_path);
      if (!member.ok()) {
        report.Fail(id + ": " + member.message());
        readable = false;
        break;
      }
      *manifest_member = std::move(member).value();
      manifest_last = true;
      continue;
    }
    if (entry.type == EntryType::kSymlink) {
      // A link must resolve inside the tree it is restored into.
      fs::path resolved =
          (fs::path(entry.path).parent_path() / entry.link_target).lexically_normal();
      std::string r = resolved.generic_string();
      if (entry.link_target.empty() || entry.link_target.front() == '/' || r == ".." ||
          r.rfind("../", 0) == 0)
        report.Fail(id + ": symlink " + entry.path + " points outside the backup (" +
                    entry.link_target + ")");
      links.insert(entry.path);
      if (auto listed = expected_next(entry)) {
        // Listed as a regular file: what it holds is not these (no) bytes.
        if (listed->link.empty())
          ordered_problems.push_back(
              {order,
               listed->size != 0
                   ? id + ": " + listed->path + ": size 0 differs from the manifest's " +
                         std::to_string(listed->size)
                   : id + ": " + listed->path + ": content does not match its SHA-256 (damaged)"});
      } else {
        unordered[entry.path] = Unordered{0, HashPipe::kNone};
      }
      continue;
    }
    std::optional<ManifestFile> expected = expected_next(entry);
    int64_t size = 0;
    bool failed = false;
    const bool is_log = options.keep_log_members &&
                        entry.path.find("/_delta_log/") != std::string::npos &&
                        entry.size <= kLogMemberLimit;
    std::ofstream log_copy;
    if (is_log) {
      if (!report.log_dir) report.log_dir = NewScratchFolder();
      if (report.log_dir) {
        std::error_code ec;
        fs::path out = fs::path(*report.log_dir) / entry.path;
        fs::create_directories(out.parent_path(), ec);
        log_copy.open(out, std::ios::binary | std::ios::trunc);
      }
      if (!log_copy) report.Fail(id + ": cannot keep a scratch copy of " + entry.path);
    }
    while (true) {
      auto buffer = hasher.Acquire();
      auto n = (*reader)->Read(buffer.data(), HashPipe::kBufferSize);
      if (!n.ok() || *n == 0) {
        hasher.Release(std::move(buffer));
        if (!n.ok()) {
          report.Fail(id + ": " + entry.path + ": " + n.message());
          failed = true;
        }
        break;
      }
      if (log_copy.is_open()) log_copy.write(buffer.data(), static_cast<std::streamsize>(*n));
      size += static_cast<int64_t>(*n);
      report.bytes += static_cast<int64_t>(*n);
      hasher.Update(std::move(buffer), *n);
    }
    if (log_copy.is_open()) {
      log_copy.close();
      if (!log_copy) report.Fail(id + ": cannot keep a scratch copy of " + entry.path);
    }
    if (failed) {
      readable = false;
      break;
    }
    if (!expected) {
      unordered[entry.path] = Unordered{size, hasher.Finish()};
    } else if (!expected->link.empty()) {
      hasher.FinishUnchecked();  // a link in the list: no digest
    } else if (size != expected->size) {
      hasher.FinishUnchecked();
      ordered_problems.push_back(
          {order, id + ": " + expected->path + ": size " + std::to_string(size) +
                      " differs from the manifest's " + std::to_string(expected->size)});
    } else {
      hasher.FinishExpecting(std::move(expected->sha256), std::move(expected->path), order);
    }
  }
  std::vector<std::string> digests = hasher.TakeDigests();
  for (auto& m : hasher.TakeMismatches())
    ordered_problems.push_back(
        {m.order, id + ": " + m.path + ": content does not match its SHA-256 (damaged)"});
  if (readable) {
    Status drained = (*reader)->Drain();
    if (!drained.ok()) {
      report.Fail(id + ": " + drained.message());
      readable = false;
    }
  }
  // The whole-file checksum is reported after the member checks: a member named is more use to
  // an operator than "the file is damaged".
  auto check_whole_file = [&]() {
    if (readable && expected_sha256 && whole.HexDigest() != *expected_sha256)
      report.Fail(id +
                  ": archive checksum does not match its .sha256 sidecar (the file is damaged)");
  };
  if (!readable) return report;  // member comparisons would only repeat the damage

  if (!manifest_member->present) {
    report.Fail(id + ": the archive holds no manifest (" + std::string(kManifestMemberName) + ")");
    check_whole_file();
    return report;
  }
  if (!manifest_last) report.Fail(id + ": the manifest is not the archive's last member");
  if (expected_manifest_path && !manifest_member->matches) {
    // The list the members were checked against is not the archive's: the caller checks them
    // again against the archive's own.
    check_whole_file();
    return report;
  }

  // The rest of the list: entries past the point where the archive left its order, checked
  // against the members kept by path. Without a list, the archive's own manifest is the list.
  std::optional<Manifest> parsed;
  const Manifest* header = nullptr;
  std::vector<ManifestFile> rest;
  if (cursor) {
    while (cursor->Peek()) rest.push_back(cursor->Pop());
    if (!cursor->result().ok()) {
      report.Fail(id + ": " + cursor->result().message());
      check_whole_file();
      return report;
    }
    header = &*cursor->result();
  } else {
    auto result = ParseManifest(manifest_member->text);
    if (!result.ok()) {
      report.Fail(id + ": " + result.message());
      check_whole_file();
      return report;
    }
    parsed = std::move(result).value();
    header = &*parsed;
    for (auto& f : parsed->files)
      if (f.backup == id) rest.push_back(f);
  }
  if (header->id != id) report.Fail(id + ": the archive's manifest belongs to " + header->id);
  std::sort(ordered_problems.begin(), ordered_problems.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [at, problem] : ordered_problems) report.Fail(std::move(problem));
  for (const auto& file : rest) {
    auto it = unordered.find(file.path);
    if (it == unordered.end()) {
      report.Fail(id + ": " + file.path + ": listed in the manifest but missing from the archive");
      continue;
    }
    const Unordered seen = it->second;
    unordered.erase(it);
    if (!file.link.empty()) continue;
    if (seen.size != file.size)
      report.Fail(id + ": " + file.path + ": size " + std::to_string(seen.size) +
                  " differs from the manifest's " + std::to_string(file.size));
    else if (seen.digest == HashPipe::kNone || digests[seen.digest] != file.sha256)
      report.Fail(id + ": " + file.path + ": content does not match its SHA-256 (damaged)");
  }
  for (const auto& [path, info] : unordered)
    report.Fail(id + ": " + path + ": in the archive but not in the manifest");
  // Nothing may lie below a symlink. Links are rare: the list is read again only when there are.
  if (!links.empty()) {
    auto below_a_link = [&](const std::string& path) {
      for (fs::path p = fs::path(path).parent_path(); !p.empty() && p != p.parent_path();
           p = p.parent_path())
        if (links.count(p.generic_string()))
          report.Fail(id + ": " + path + " lies below the symlink " + p.generic_string());
    };
    if (cursor) {
      auto again = ReadManifestFile(env, *expected_manifest_path, [&](ManifestFile&& f) {
        if (f.backup == id) below_a_link(f.path);
        return Status::Ok();
      });
      if (!again.ok()) report.Fail(id + ": " + again.message());
    }
    for (const auto& file : rest) below_a_link(file.path);
  }
  check_whole_file();
  if (parsed) report.manifest = std::move(parsed);  // held already
  return report;
}

}  // namespace

VerifyReport VerifyArchive(Env& env, const std::string& id, const std::string& archive_path,
                           const std::optional<std::string>& expected_sha256,
                           const std::optional<std::string>& expected_manifest_path,
                           const VerifyArchiveOptions& options) {
  ManifestMember member;
  VerifyReport report =
      VerifyPass(env, id, archive_path, expected_sha256, expected_manifest_path, options, &member);
  if (!expected_manifest_path || !member.present || member.matches) {
    return report;
  }
  // The expected list is not the archive's manifest: said, and the members checked again
  // against the archive's own (a second read, on a damaged backup only).
  VerifyReport again =
      VerifyPass(env, id, archive_path, std::nullopt, std::nullopt, options, &member);
  VerifyReport out;
  out.id = id;
  out.members = again.members;
  out.bytes = again.bytes;
  out.manifest = std::move(again.manifest);
  out.log_dir = std::move(again.log_dir);
  out.Fail(id + ": the manifest sidecar differs from the manifest inside the archive");
  for (auto& p : again.problems) out.Fail(std::move(p));
  for (auto& p : report.problems)
    if (p.find("archive checksum does not match") != std::string::npos) out.Fail(std::move(p));
  return out;
}

VerifyWhileWritten::VerifyWhileWritten(Env& env, std::string id, std::string archive_path,
                                       std::string manifest_path)
    : env_(env, {archive_path, manifest_path}) {
  thread_ = std::thread([this, id = std::move(id), archive = std::move(archive_path),
                         manifest = std::move(manifest_path)] {
    pthread_setname_np(pthread_self(), "lakevault-check");
    report_ = VerifyArchive(env_, id, archive, std::nullopt, manifest, {.keep_log_members = false});
  });
}

VerifyWhileWritten::~VerifyWhileWritten() {
  if (!thread_.joinable()) return;
  env_.Abort();
  thread_.join();
}

void VerifyWhileWritten::Written() { env_.Complete(); }

Status VerifyWhileWritten::Finish() {
  env_.Complete();
  if (thread_.joinable()) thread_.join();
  if (!report_.ok) return Error("the new archive failed verification: " + report_.problems[0]);
  return Status::Ok();
}

VerifyReport VerifyBackup(Env& env, const Catalog& catalog, const CatalogEntry& entry) {
  std::optional<std::string> sha;
  std::optional<std::string> manifest_file;
  VerifyReport sidecar_problems;
  sidecar_problems.id = entry.id;
  auto sidecar = ReadWholeFile(env, Sha256SidecarPath(entry.archive_path));
  if (!sidecar.ok()) {
    sidecar_problems.Fail(entry.id + ": checksum sidecar " + entry.archive_name +
                          ".sha256 is missing or unreadable");
  } else {
    auto hex = ParseSha256Sidecar(*sidecar, entry.archive_name);
    if (hex.ok())
      sha = *hex;
    else
      sidecar_problems.Fail(entry.id + ": " + entry.archive_name + ".sha256: " + hex.message());
  }
  const std::string manifest_path = ManifestSidecarPath(catalog.dir(), entry.id);
  std::error_code ec;
  if (fs::is_regular_file(manifest_path, ec) && ::access(manifest_path.c_str(), R_OK) == 0)
    manifest_file = manifest_path;
  else
    sidecar_problems.Fail(entry.id + ": manifest sidecar is missing or unreadable");

  // The list is read from the sidecar where it is needed; the report need not hold it.
  VerifyReport report = VerifyArchive(env, entry.id, entry.archive_path, sha, manifest_file,
                                      {.keep_log_members = true});
  for (auto& p : sidecar_problems.problems) report.Fail(p);
  return report;
}

}  // namespace lakevault

namespace lakevault {

VerifyReport VerifyBackupWithChain(Env& env, const Catalog& catalog, const CatalogEntry& entry,
                                   std::map<std::string, VerifyReport>* cache,
                                   size_t max_replay_bytes, size_t max_chain_index_bytes) {
  auto verify_one = [&](const CatalogEntry& e) -> VerifyReport {
    if (cache) {
      auto it = cache->find(e.id);
      if (it != cache->end()) return it->second;
    }
    VerifyReport r = VerifyBackup(env, catalog, e);
    if (cache) (*cache)[e.id] = r;
    return r;
  };
  VerifyReport report = verify_one(entry);
  if (!entry.manifest) return report;
  std::vector<VerifyReport> ancestors;
  auto check_content = [&]() {
    // Only once the archive is known to match its sidecar, which is then read as its list.
    if (!report.ok) return;
    std::vector<const VerifyReport*> holders = {&report};
    for (const auto& a : ancestors) holders.push_back(&a);
    CheckTablesAgainstContent(env, *entry.manifest, ManifestSidecarPath(catalog.dir(), entry.id),
                              holders, max_replay_bytes, report);
  };
  if (entry.manifest->kind == "full") {
    check_content();
    return report;
  }
  auto chain = ResolveChain(catalog, entry.id);
  if (!chain.ok()) {
    report.Fail(entry.id + ": " + chain.message());
    return report;
  }
  // What each link holds itself, as fingerprints; the target's list is then read as a stream
  // and each file it says an ancestor holds is looked up there.
  // The ancestors are verified first: the index is not held through their archives' reads.
  for (const CatalogEntry* link : *chain) {
    if (link == &entry) continue;
    VerifyReport ancestor = verify_one(*link);
    for (const auto& p : ancestor.problems)
      report.Fail(entry.id + " needs " + link->id + ", which failed: " + p);
    ancestors.push_back(std::move(ancestor));
  }
  {
    // Scoped: given back before the tables' logs are replayed below.
    std::set<std::string> in_chain, unreadable;
    // The headers' counts of what each ancestor holds size the shares; a count that falls short
    // only costs a share split in two.
    size_t held = 0;
    for (const CatalogEntry* link : *chain) {
      in_chain.insert(link->id);
      if (link == &entry || !link->manifest) continue;
      const Manifest& m = *link->manifest;
      held += static_cast<size_t>(
          std::max<int64_t>(0, m.files_stored > 0 ? m.files_stored : m.listed_files));
    }
    const size_t max_records =
        std::max<size_t>(1, max_chain_index_bytes / HeldFilesIndex::kRecordBytes);
    // 5% over the count: the shares' sizes vary around their mean.
    const uint64_t shares = std::max<uint64_t>(1, (held + held / 20) / max_records + 1);
    // Share s of n is that of the paths whose fingerprint is s modulo n; one that outgrows the
    // bound is split into s and s + n of 2n. Past 2^20 shares (never met: one path is held once
    // a backup) the bound is dropped rather than split for ever.
    std::vector<std::pair<uint64_t, uint64_t>> todo;
    for (uint64_t s = shares; s-- > 0;) todo.push_back({s, shares});
    bool list_failed = false;
    while (!todo.empty()) {
      auto [share, of] = todo.back();
      todo.pop_back();
      HeldFilesIndex index(share, of, of >= (uint64_t{1} << 20) ? SIZE_MAX : max_records);
      index.Reserve(std::min(max_records, held / of + held / of / 16 + 64));
      for (const CatalogEntry* link : *chain) {
        if (link == &entry || unreadable.count(link->id)) continue;
        Status added = index.Add(env, ManifestSidecarPath(catalog.dir(), link->id), link->id);
        if (!added.ok()) {
          unreadable.insert(link->id);
          report.Fail(entry.id + " needs " + link->id +
                      ", whose list cannot be read: " + added.message());
        }
        if (index.full()) break;
      }
      if (index.full()) {
        spdlog::debug("{}: share {} of {} of the chain's files is over {} records: split", entry.id,
                      share, of, max_records);
        todo.push_back({share + of, 2 * of});
        todo.push_back({share, 2 * of});
        continue;
      }
      ++report.chain_passes;
      if (list_failed) continue;
      auto read = ReadManifestFile(
          env, ManifestSidecarPath(catalog.dir(), entry.id), [&](ManifestFile&& file) {
            if (file.backup == entry.id || unreadable.count(file.backup) ||
                !index.Covers(file.path))
              return Status::Ok();
            if (!in_chain.count(file.backup))
              report.Fail(entry.id + ": " + file.path + ": its bytes are said to be in " +
                          file.backup + ", which is not in this backup's chain");
            else if (!index.Holds(file.backup, file.path, file.sha256))
              report.Fail(entry.id + ": " + file.path + ": " + file.backup +
                          " does not hold these bytes (checksum differs)");
            return Status::Ok();
          });
      if (!read.ok()) {
        // Said once: the next shares' reads would stop at the same place.
        list_failed = true;
        report.Fail(entry.id + ": " + read.message());
      }
    }
  }
  check_content();
  return report;
}

}  // namespace lakevault
