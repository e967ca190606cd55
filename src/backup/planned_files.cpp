#include "backup/planned_files.h"

#include <algorithm>
#include <cstring>

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

}  // namespace lakevault
