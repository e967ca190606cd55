#include "backup/planned_files.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace lakevault {

namespace {

constexpr size_t kBlock = 1 << 20;

// Compares a.head + a.tail with b.head + b.tail as std::string would (bytes as unsigned char).
template <typename P>
int ComparePieces(const P& a, const P& b) {
  std::string_view as[2] = {a.head, a.tail}, bs[2] = {b.head, b.tail};
  size_t ai = 0, bi = 0;
  while (true) {
    while (ai < 2 && as[ai].empty()) ++ai;
    while (bi < 2 && bs[bi].empty()) ++bi;
    if (ai == 2 || bi == 2) return (ai == 2 ? 0 : 1) - (bi == 2 ? 0 : 1);
    size_t n = std::min(as[ai].size(), bs[bi].size());
    if (int c = std::memcmp(as[ai].data(), bs[bi].data(), n); c != 0) return c;
    as[ai].remove_prefix(n);
    bs[bi].remove_prefix(n);
  }
}

}  // namespace

PlannedFiles::Pieces PlannedFiles::PathOf(const Entry& e) const {
  if (e.flags & kListed) return {listed_prefix_, listed_[e.path].path};
  const PathRef& r = paths_[e.path];
  return {std::string_view(blocks_[r.block].data() + r.offset, r.size), {}};
}

PlannedFile PlannedFiles::operator[](size_t i) const {
  if (spilled_) {
    std::fprintf(stderr, "lakevault: internal error: a spilled plan was read by index\n");
    std::abort();
  }
  const Entry& e = entries_[i];
  PlannedFile f;
  Pieces p = PathOf(e);
  f.relative_path.reserve(p.head.size() + p.tail.size());
  f.relative_path.append(p.head).append(p.tail);
  f.size = e.size;
  f.mtime = e.mtime;
  f.mode = e.mode;
  f.mutable_content = (e.flags & kMutable) != 0;
  f.may_vanish = (e.flags & kMayVanish) != 0;
  if (e.extra != kNone) {
    f.link_target = extras_[e.extra].link_target;
    f.inline_content = extras_[e.extra].inline_content;
  }
  return f;
}

int64_t PlannedFiles::Bytes() const {
  if (spilled_) return spilled_bytes_;
  int64_t total = 0;
  for (const Entry& e : entries_) total += e.size;
  return total;
}

PlannedFiles::Entry PlannedFiles::EntryFor(const PlannedFile& file) const {
  Entry e;
  e.size = file.size;
  e.mtime = file.mtime;
  e.mode = file.mode;
  if (file.mutable_content) e.flags |= kMutable;
  if (file.may_vanish) e.flags |= kMayVanish;
  return e;
}

void PlannedFiles::Append(Entry e, const PlannedFile& file) {
  if (!file.link_target.empty() || file.inline_content) {
    e.extra = static_cast<uint32_t>(extras_.size());
    extras_.push_back({file.link_target, file.inline_content});
  }
  entries_.push_back(e);
}

void PlannedFiles::Add(const PlannedFile& file) {
  const std::string& path = file.relative_path;
  if (blocks_.empty() || blocks_.back().capacity() - blocks_.back().size() < path.size())
    blocks_.emplace_back().reserve(std::max(kBlock, path.size()));
  std::string& block = blocks_.back();
  PathRef ref{static_cast<uint32_t>(blocks_.size() - 1), static_cast<uint32_t>(block.size()),
              static_cast<uint32_t>(path.size())};
  block.append(path);  // within its capacity: the other paths' views stay valid
  Entry e = EntryFor(file);
  e.path = static_cast<uint32_t>(paths_.size());
  paths_.push_back(ref);
  Append(e, file);
}

void PlannedFiles::KeepListedPaths(delta::FileList list, const std::string& table_path) {
  listed_ = std::move(list);
  listed_prefix_ = table_path + "/";
}

void PlannedFiles::AddListed(uint32_t index, const PlannedFile& file) {
  std::string_view listed = listed_[index].path;
  std::string_view path = file.relative_path;
  if (path.size() != listed_prefix_.size() + listed.size() ||
      path.substr(0, listed_prefix_.size()) != listed_prefix_ ||
      path.substr(listed_prefix_.size()) != listed) {
    Add(file);
    return;
  }
  Entry e = EntryFor(file);
  e.flags |= kListed;
  e.path = index;
  Append(e, file);
}

void PlannedFiles::Sort() {
  auto before = [this](const Entry& a, const Entry& b) {
    return ComparePieces(PathOf(a), PathOf(b)) < 0;
  };
  if (!std::is_sorted(entries_.begin(), entries_.end(), before))
    std::sort(entries_.begin(), entries_.end(), before);
}

namespace {

// A spilled file's record: flags, mode, size, mtime, then the path and, by flag, the link target
// and the inline content, each as a 32-bit length and its bytes. Host byte order: the file is
// read back by the process that wrote it.
enum SpillFlags : uint8_t {
  kSpillMutable = 1,
  kSpillMayVanish = 2,
  kSpillLink = 4,
  kSpillInline = 8
};

class SpillWriter {
 public:
  explicit SpillWriter(WritableFile& file) : file_(file) { buffer_.reserve(kFlushAt + 4096); }
  Status Put(const PlannedFile& f) {
    uint8_t flags = (f.mutable_content ? kSpillMutable : 0) | (f.may_vanish ? kSpillMayVanish : 0) |
                    (f.link_target.empty() ? 0 : kSpillLink) |
                    (f.inline_content ? kSpillInline : 0);
    Raw(flags);
    Raw(f.mode);
    Raw(f.size);
    Raw(f.mtime);
    Text(f.relative_path);
    if (flags & kSpillLink) Text(f.link_target);
    if (flags & kSpillInline) Text(*f.inline_content);
    return buffer_.size() >= kFlushAt ? Flush() : Status::Ok();
  }
  Status Flush() {
    Status s = buffer_.empty() ? Status::Ok() : file_.Append(buffer_.data(), buffer_.size());
    buffer_.clear();
    return s;
  }

 private:
  static constexpr size_t kFlushAt = 256 << 10;
  template <typename T>
  void Raw(T v) {
    buffer_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void Text(std::string_view text) {
    Raw(static_cast<uint32_t>(text.size()));
    buffer_.append(text);
  }
  WritableFile& file_;
  std::string buffer_;
};

class SpillReader {
 public:
  explicit SpillReader(SequentialFile& file) : file_(file), buffer_(256 << 10) {}
  // False at a clean end of the file.
  Result<bool> Next(PlannedFile* f) {
    uint8_t flags = 0;
    LV_ASSIGN_OR_RETURN(size_t got, Take(&flags, 1));
    if (got == 0) return false;
    LV_RETURN_IF_ERROR(Exact(&f->mode, sizeof f->mode));
    LV_RETURN_IF_ERROR(Exact(&f->size, sizeof f->size));
    LV_RETURN_IF_ERROR(Exact(&f->mtime, sizeof f->mtime));
    LV_RETURN_IF_ERROR(Text(&f->relative_path));
    f->mutable_content = (flags & kSpillMutable) != 0;
    f->may_vanish = (flags & kSpillMayVanish) != 0;
    f->link_target.clear();
    if (flags & kSpillLink) LV_RETURN_IF_ERROR(Text(&f->link_target));
    if (flags & kSpillInline) {
      std::string text;
      LV_RETURN_IF_ERROR(Text(&text));
      f->inline_content = std::move(text);
    } else {
      f->inline_content = std::nullopt;
    }
    return true;
  }

 private:
  Result<size_t> Take(void* out, size_t n) {
    size_t done = 0;
    while (done < n) {
      if (begin_ == end_) {
        LV_ASSIGN_OR_RETURN(size_t got, file_.Read(buffer_.data(), buffer_.size()));
        if (got == 0) break;
        begin_ = 0;
        end_ = got;
      }
      size_t k = std::min(n - done, end_ - begin_);
      std::memcpy(static_cast<char*>(out) + done, buffer_.data() + begin_, k);
      begin_ += k;
      done += k;
    }
    return done;
  }
  Status Exact(void* out, size_t n) {
    LV_ASSIGN_OR_RETURN(size_t got, Take(out, n));
    if (got != n) return Error(file_.path() + ": the plan's scratch file ends in a record");
    return Status::Ok();
  }
  Status Text(std::string* out) {
    uint32_t n = 0;
    LV_RETURN_IF_ERROR(Exact(&n, sizeof n));
    out->resize(n);
    return Exact(out->data(), n);
  }
  SequentialFile& file_;
  std::vector<char> buffer_;
  size_t begin_ = 0, end_ = 0;
};

}  // namespace

int64_t PlannedFiles::SpillBytes() const {
  if (spilled_) return 0;
  constexpr int64_t kFixed = 1 + 4 + 8 + 8 + 4;  // flags, mode, size, mtime, path length
  int64_t total = 0;
  for (const Entry& e : entries_) {
    Pieces p = PathOf(e);
    total += kFixed + static_cast<int64_t>(p.head.size() + p.tail.size());
  }
  for (const Extra& x : extras_) {
    if (!x.link_target.empty()) total += 4 + static_cast<int64_t>(x.link_target.size());
    if (x.inline_content) total += 4 + static_cast<int64_t>(x.inline_content->size());
  }
  return total;
}

Status PlannedFiles::Spill(Env& env, const std::string& path) {
  if (spilled_) return Status::Ok();
  LV_ASSIGN_OR_RETURN(auto file, env.NewWritableFile(path, 0600));
  SpillWriter writer(*file);
  for (size_t i = 0; i < entries_.size(); ++i) LV_RETURN_IF_ERROR(writer.Put((*this)[i]));
  LV_RETURN_IF_ERROR(writer.Flush());
  // No fsync: a scratch file, read back by this process and removed after the backup.
  LV_RETURN_IF_ERROR(file->Close());
  KeepTotalsOnly();
  spill_path_ = path;
  return Status::Ok();
}

void PlannedFiles::KeepTotalsOnly() {
  if (spilled_) return;
  spilled_count_ = entries_.size();
  spilled_bytes_ = Bytes();
  spilled_ = true;
  std::deque<Entry>().swap(entries_);
  listed_ = delta::FileList();
  std::vector<PathRef>().swap(paths_);
  std::vector<std::string>().swap(blocks_);
  std::vector<Extra>().swap(extras_);
}

Status PlannedFiles::ForEach(Env& env,
                             const std::function<Status(const PlannedFile&)>& visit) const {
  if (!spilled_) {
    for (size_t i = 0; i < entries_.size(); ++i) LV_RETURN_IF_ERROR(visit((*this)[i]));
    return Status::Ok();
  }
  if (spill_path_.empty())
    return Error("internal error: the plan's files were counted, not kept (KeepTotalsOnly)");
  LV_ASSIGN_OR_RETURN(auto file, env.NewSequentialFile(spill_path_));
  SpillReader reader(*file);
  PlannedFile f;
  size_t count = 0;
  while (true) {
    LV_ASSIGN_OR_RETURN(bool more, reader.Next(&f));
    if (!more) break;
    ++count;
    LV_RETURN_IF_ERROR(visit(f));
  }
  if (count != spilled_count_)
    return Error(spill_path_ + ": the plan's scratch file holds " + std::to_string(count) +
                 " files, " + std::to_string(spilled_count_) + " were written");
  return Status::Ok();
}

}  // namespace lakevault
