#include "verify/verify.h"

#include <stdlib.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "archive/archive.h"
#include "crypto/sha256.h"
#include "delta/delta.h"
#include "manifest/chain.h"

namespace fs = std::filesystem;

namespace lakevault {

namespace {
constexpr size_t kManifestLimit = 512u << 20;
constexpr int64_t kLogMemberLimit = 256 << 20;

// The manifest member as read, compared with the text the caller expects when it has one.
struct ManifestMember {
  bool present = false;  // non-empty
  bool matches = false;  // the very text expected
  std::string text;      // all of it, unless dropped because it matches
};

// Reads the manifest member of the entry `reader` is at. With `drop_if_matching`, the bytes that
// match `expected` are not kept: a backup checking its own archive holds that text already, and
// at 300,000 files it is 90 MB. From the first difference on the member is kept whole.
Result<ManifestMember> ReadManifestMember(ArchiveReader& reader,
                                          std::optional<std::string_view> expected,
                                          bool drop_if_matching) {
  ManifestMember member;
  if (!expected || !drop_if_matching) {
    LV_ASSIGN_OR_RETURN(member.text, reader.ReadAll(kManifestLimit));
    member.present = !member.text.empty();
    member.matches = expected && *expected == member.text;
    return member;
  }
  size_t size = 0;
  bool same = true;
  std::vector<char> buffer(65536);
  while (true) {
    LV_ASSIGN_OR_RETURN(size_t n, reader.Read(buffer.data(), buffer.size()));
    if (n == 0) break;
    if (size + n > kManifestLimit)
      return Error(std::string(kManifestMemberName) + " is larger than " +
                   std::to_string(kManifestLimit) + " bytes");
    const std::string_view piece(buffer.data(), n);
    if (same && (size + n > expected->size() || expected->substr(size, n) != piece)) {
      same = false;
      member.text.assign(expected->substr(0, size));
    }
    if (!same) member.text.append(piece);
    size += n;
  }
  member.present = size > 0;
  member.matches = same && size == expected->size();
  if (same && !member.matches) member.text.assign(expected->substr(0, size));  // a prefix of it
  return member;
}

// Resolves each table's Delta log as the backup holds it and compares the version, the row
// count and the referenced files with the manifest.
void CheckTablesAgainstContent(const Manifest& manifest,
                               const std::vector<const VerifyReport*>& holders,
                               VerifyReport& report) {
  std::set<std::string> paths(manifest.missing.begin(), manifest.missing.end());
  for (const auto& f : manifest.files) paths.insert(f.path);
  for (const auto& table : manifest.tables) {
    if (table.version < 0) continue;
    std::string prefix = table.path + "/_delta_log/";
    char tmpl[] = "/tmp/lakevault-verify-XXXXXX";
    if (!::mkdtemp(tmpl)) {
      report.Fail(manifest.id + ": cannot create a scratch folder to check table " + table.name);
      return;
    }
    fs::path scratch(tmpl);
    bool written = true;
    for (const auto& f : manifest.files) {
      if (f.path.rfind(prefix, 0) != 0 || !f.link.empty()) continue;
      const std::string* content = nullptr;
      for (const VerifyReport* h : holders)
        if (h->id == f.backup) {
          auto it = h->log_members.find(f.path);
          if (it != h->log_members.end()) content = &it->second;
        }
      if (!content) {
        written = false;
        break;
      }
      fs::path out = scratch / "t/_delta_log" / f.path.substr(prefix.size());
      std::error_code ec;
      fs::create_directories(out.parent_path(), ec);
      // A scratch copy read once and deleted: no fsync (it cost seconds per table).
      std::ofstream stream(out, std::ios::binary);
      stream.write(content->data(), static_cast<std::streamsize>(content->size()));
      if (!stream) written = false;
    }
    if (written) {
      auto snap = delta::LoadSnapshot(Env::Default(), (scratch / "t").string(), std::nullopt,
                                      {.keep_actions = false});
      if (!snap.ok()) {
        report.Fail(manifest.id + ": table " + table.name +
                    ": the backed-up log is unreadable: " + snap.message());
      } else {
        if (snap->version != table.version)
          report.Fail(manifest.id + ": table " + table.name +
                      ": the backed-up log ends at version " + std::to_string(snap->version) +
                      ", the manifest says " + std::to_string(table.version));
        auto rows = snap->RowsFromStats();
        if (rows && table.rows && *rows != *table.rows)
          report.Fail(manifest.id + ": table " + table.name + ": the backed-up log holds " +
                      std::to_string(*rows) + " rows, the manifest says " +
                      std::to_string(*table.rows));
        for (const auto& rel : snap->RequiredFiles())
          if (!paths.count(table.path + "/" + rel))
            report.Fail(manifest.id + ": table " + table.name + ": " + rel +
                        " (needed by version " + std::to_string(snap->version) +
                        ") is not in the backup");
      }
    }
    std::error_code ec;
    fs::remove_all(scratch, ec);
  }
}
// Hashes members on a thread of its own while the caller reads the next bytes: with the hashing
// on the reading thread, SHA-256 was most of a verification's time there, while the other core
// had little to do once members are stored (incompressible data) and cheap to inflate. Buffers
// go round a small pool, so nothing is copied and memory stays at kBuffers x kBufferSize.
class HashPipe {
 public:
  static constexpr size_t kBuffers = 4;
  static constexpr size_t kBufferSize = 1 << 20;
  static constexpr size_t kNone = static_cast<size_t>(-1);

  HashPipe() {
    for (size_t i = 0; i < kBuffers; ++i) free_.push_back(std::make_unique<char[]>(kBufferSize));
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

  std::unique_ptr<char[]> Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !free_.empty(); });
    auto buffer = std::move(free_.back());
    free_.pop_back();
    return buffer;
  }
  void Release(std::unique_ptr<char[]> buffer) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(buffer));
    cv_.notify_all();
  }
  // Hashes `size` bytes of `buffer` into the current member, then returns the buffer to the pool.
  void Update(std::unique_ptr<char[]> buffer, size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back({std::move(buffer), size, kNone});
    cv_.notify_all();
  }
  // Ends the current member; its digest will be TakeDigests()[returned index].
  size_t Finish() {
    std::lock_guard<std::mutex> lock(mu_);
    size_t index = digests_.size();
    digests_.emplace_back();
    jobs_.push_back({nullptr, 0, index});
    cv_.notify_all();
    return index;
  }
  // Waits for every job, then hands over the hex digests.
  std::vector<std::string> TakeDigests() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return jobs_.empty() && !busy_; });
    return std::move(digests_);
  }

 private:
  struct Job {
    std::unique_ptr<char[]> data;
    size_t size;
    size_t finish;  // digest index, or kNone for data
  };

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
      std::string digest;
      if (job.finish == kNone) {
        hash.Update(job.data.get(), job.size);
      } else {
        digest = hash.HexDigest();
        hash = Sha256();
      }
      lock.lock();
      if (job.finish == kNone)
        free_.push_back(std::move(job.data));
      else
        digests_[job.finish] = std::move(digest);
      busy_ = false;
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<char[]>> free_;
  std::deque<Job> jobs_;
  std::vector<std::string> digests_;
  bool busy_ = false, stop_ = false;
  std::thread thread_;
};

}  // namespace

VerifyReport VerifyArchive(Env& env, const std::string& id, const std::string& archive_path,
                           const std::optional<std::string>& expected_sha256,
                           std::optional<std::string_view> expected_manifest_json,
                           const VerifyArchiveOptions& options) {
  VerifyReport report;
  report.id = id;
  Sha256 whole;
  auto reader = ArchiveReader::Open(env, archive_path, expected_sha256 ? &whole : nullptr);
  if (!reader.ok()) {
    report.Fail(id + ": " + reader.message());
    return report;
  }
  struct Seen {
    std::string sha256;
    int64_t size;
    size_t digest = HashPipe::kNone;  // index into the HashPipe's digests
  };
  std::map<std::string, Seen> seen;
  std::set<std::string> links;
  ManifestMember manifest_member;
  bool manifest_last = false;
  HashPipe hasher;
  bool readable = true;
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
      auto member = ReadManifestMember(**reader, expected_manifest_json,
                                       /*drop_if_matching=*/options.source_manifest != nullptr);
      if (!member.ok()) {
        report.Fail(id + ": " + member.message());
        readable = false;
        break;
      }
      manifest_member = std::move(member).value();
      manifest_last = true;
      continue;
    }
    if (entry.type == EntryType::kSymlink) {
      seen[entry.path] = Seen{"", 0};
      // A link must resolve inside the tree it is restored into.
      fs::path resolved =
          (fs::path(entry.path).parent_path() / entry.link_target).lexically_normal();
      std::string r = resolved.generic_string();
      if (entry.link_target.empty() || entry.link_target.front() == '/' || r == ".." ||
          r.rfind("../", 0) == 0)
        report.Fail(id + ": symlink " + entry.path + " points outside the backup (" +
                    entry.link_target + ")");
      links.insert(entry.path);
      continue;
    }
    int64_t size = 0;
    bool failed = false;
    const bool is_log = options.keep_log_members &&
                        entry.path.find("/_delta_log/") != std::string::npos &&
                        entry.size <= kLogMemberLimit;
    std::string* log_content = is_log ? &report.log_members[entry.path] : nullptr;
    while (true) {
      auto buffer = hasher.Acquire();
      auto n = (*reader)->Read(buffer.get(), HashPipe::kBufferSize);
      if (!n.ok() || *n == 0) {
        hasher.Release(std::move(buffer));
        if (!n.ok()) {
          report.Fail(id + ": " + entry.path + ": " + n.message());
          failed = true;
        }
        break;
      }
      if (log_content) log_content->append(buffer.get(), *n);
      size += static_cast<int64_t>(*n);
      report.bytes += static_cast<int64_t>(*n);
      hasher.Update(std::move(buffer), *n);
    }
    if (failed) {
      readable = false;
      break;
    }
    seen[entry.path] = Seen{"", size, hasher.Finish()};
  }
  {
    std::vector<std::string> digests = hasher.TakeDigests();
    for (auto& [path, info] : seen)
      if (info.digest != HashPipe::kNone) info.sha256 = std::move(digests[info.digest]);
  }
  for (const auto& [path, info] : seen)
    for (fs::path p = fs::path(path).parent_path(); !p.empty() && p != p.parent_path();
         p = p.parent_path())
      if (links.count(p.generic_string()))
        report.Fail(id + ": " + path + " lies below the symlink " + p.generic_string());
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

  if (!manifest_member.present) {
    report.Fail(id + ": the archive holds no manifest (" + std::string(kManifestMemberName) + ")");
    check_whole_file();
    return report;
  }
  if (!manifest_last) report.Fail(id + ": the manifest is not the archive's last member");
  bool as_expected = manifest_member.matches;
  if (expected_manifest_json && !as_expected)
    report.Fail(id + ": the manifest sidecar differs from the manifest inside the archive");
  std::optional<Manifest> parsed;
  const Manifest* manifest = options.source_manifest;
  if (!as_expected || !manifest) {
    auto result = ParseManifest(manifest_member.text);
    if (!result.ok()) {
      report.Fail(id + ": " + result.message());
      check_whole_file();
      return report;
    }
    parsed = std::move(result).value();
    manifest = &*parsed;
  }
  std::string().swap(manifest_member.text);
  if (manifest->id != id) report.Fail(id + ": the archive's manifest belongs to " + manifest->id);
  // The paths this archive should hold, by pointer into the manifest: a set of copies was one
  // more string per file.
  std::vector<const std::string*> expected;
  for (const auto& file : manifest->files) {
    if (file.backup != manifest->id) continue;  // its bytes live in an ancestor's archive
    expected.push_back(&file.path);
    auto it = seen.find(file.path);
    if (it == seen.end()) {
      report.Fail(id + ": " + file.path + ": listed in the manifest but missing from the archive");
      continue;
    }
    if (!file.link.empty()) continue;
    if (it->second.size != file.size)
      report.Fail(id + ": " + file.path + ": size " + std::to_string(it->second.size) +
                  " differs from the manifest's " + std::to_string(file.size));
    else if (it->second.sha256 != file.sha256)
      report.Fail(id + ": " + file.path + ": content does not match its SHA-256 (damaged)");
  }
  auto by_value = [](const std::string* a, const std::string* b) { return *a < *b; };
  std::sort(expected.begin(), expected.end(), by_value);
  for (const auto& [path, info] : seen)
    if (!std::binary_search(expected.begin(), expected.end(), &path, by_value))
      report.Fail(id + ": " + path + ": in the archive but not in the manifest");
  check_whole_file();
  report.manifest = std::move(parsed);
  return report;
}

VerifyReport VerifyBackup(Env& env, const Catalog& catalog, const CatalogEntry& entry) {
  std::optional<std::string> sha;
  std::optional<std::string> manifest_json;
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
  auto manifest = ReadWholeFile(env, ManifestSidecarPath(catalog.dir(), entry.id));
  if (manifest.ok())
    manifest_json = std::move(manifest).value();
  else
    sidecar_problems.Fail(entry.id + ": manifest sidecar is missing or unreadable");

  VerifyReport report = VerifyArchive(env, entry.id, entry.archive_path, sha, manifest_json);
  for (auto& p : sidecar_problems.problems) report.Fail(p);
  return report;
}

}  // namespace lakevault

namespace lakevault {

VerifyReport VerifyBackupWithChain(Env& env, const Catalog& catalog, const CatalogEntry& entry,
                                   std::map<std::string, VerifyReport>* cache) {
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
    if (!report.ok || !report.manifest) return;
    std::vector<const VerifyReport*> holders = {&report};
    for (const auto& a : ancestors) holders.push_back(&a);
    CheckTablesAgainstContent(*report.manifest, holders, report);
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
  // Per ancestor, its files by path (a lookup per file: linear scans would be quadratic).
  std::map<std::string, std::unordered_map<std::string, const ManifestFile*>> held_by;
  std::map<std::string, Manifest> manifests;
  for (const CatalogEntry* link : *chain) {
    auto& files = held_by[link->id];
    auto loaded = LoadManifestFiles(catalog, *link);
    if (loaded.ok()) {
      Manifest& m = manifests[link->id] = std::move(loaded).value();
      for (const auto& f : m.files) files[f.path] = &f;
    }
    if (link == &entry) continue;
    VerifyReport ancestor = verify_one(*link);
    for (const auto& p : ancestor.problems)
      report.Fail(entry.id + " needs " + link->id + ", which failed: " + p);
    ancestors.push_back(std::move(ancestor));
  }
  for (const auto& file : manifests[entry.id].files) {
    if (file.backup == entry.id) continue;
    auto it = held_by.find(file.backup);
    if (it == held_by.end()) {
      report.Fail(entry.id + ": " + file.path + ": its bytes are said to be in " + file.backup +
                  ", which is not in this backup's chain");
      continue;
    }
    auto found = it->second.find(file.path);
    const ManifestFile* held = found == it->second.end() ? nullptr : found->second;
    if (held == nullptr || held->backup != file.backup || held->sha256 != file.sha256)
      report.Fail(entry.id + ": " + file.path + ": " + file.backup +
                  " does not hold these bytes (checksum differs)");
  }
  check_content();
  return report;
}

}  // namespace lakevault
