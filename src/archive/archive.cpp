#include "archive/archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <thread>
#include <vector>

#include "archive/parallel_gzip.h"
#include "archive/read_pipeline.h"
#include "core/buffer.h"
#include "core/workers.h"

namespace lakevault {

namespace {
constexpr size_t kBufferSize = 1 << 20;
// Large enough that member headers and the lost 32 KiB window cost < 0.1% of the ratio, small
// enough that the blocks in flight (two per core, input and output) stay within a few MiB.
constexpr size_t kGzipBlockSize = 1 << 20;

Error ArchiveError(struct archive* a, const std::string& what) {
  const char* message = archive_error_string(a);
  return Error(what + ": " + (message ? message : "archive error"));
}
}  // namespace

// ---------------------------------------------------------------- writer

struct ArchiveWriter::Impl {
  struct archive* a = nullptr;
  std::unique_ptr<WritableFile> file;
  std::unique_ptr<ParallelGzipSink> gzip;  // set for .tar.gz: libarchive writes plain tar to it
  bool default_gzip_levels = false;        // no level configured: chosen per file (GzipLevelFor)
  Sha256 hash;
  Status io_status;  // the first failure of the output callback, kept for a precise message
  int64_t* bytes_written = nullptr;
  Buffer buffer{kBufferSize};
  // The gzip level for the file about to be written, unless the config fixed one.
  void LevelFor(const std::string& path) {
    if (gzip && default_gzip_levels) gzip->SetLevel(GzipLevelFor(path));
  }
  ~Impl() {
    if (a != nullptr) archive_write_free(a);
  }
};

namespace {
la_ssize_t WriteCallback(struct archive*, void* client, const void* buffer, size_t length) {
  auto* impl = static_cast<ArchiveWriter::Impl*>(client);
  Status s = impl->gzip ? impl->gzip->Write(buffer, length) : impl->file->Append(buffer, length);
  if (!s.ok()) {
    if (impl->io_status.ok()) impl->io_status = s;
    return -1;
  }
  if (!impl->gzip) {
    impl->hash.Update(buffer, length);
    *impl->bytes_written += static_cast<int64_t>(length);
  }
  return static_cast<la_ssize_t>(length);
}
int CloseCallback(struct archive*, void*) { return ARCHIVE_OK; }
}  // namespace

Result<std::unique_ptr<ArchiveWriter>> ArchiveWriter::Create(Env& env, const std::string& path,
                                                             Compression c, int level) {
  std::unique_ptr<ArchiveWriter> writer(new ArchiveWriter());
  writer->impl_ = std::make_unique<Impl>();
  Impl& impl = *writer->impl_;
  impl.bytes_written = &writer->bytes_written_;
  LV_ASSIGN_OR_RETURN(impl.file, env.NewWritableFile(path, 0600));
  impl.a = archive_write_new();
  archive_write_set_format_pax_restricted(impl.a);
  int rc = ARCHIVE_OK;
  switch (c) {
    case Compression::kGzip: {
      impl.gzip = std::make_unique<ParallelGzipSink>(
          *impl.file, &impl.hash, level > 0 ? std::min(level, 12) : kDefaultGzipLevel,
          WorkerPool::DefaultThreads(), kGzipBlockSize);
      impl.default_gzip_levels = level <= 0;
      rc = archive_write_add_filter_none(impl.a);
      break;
    }
    case Compression::kZstd:
      rc = archive_write_add_filter_zstd(impl.a);
      if (rc == ARCHIVE_OK && level > 0)
        rc = archive_write_set_filter_option(impl.a, "zstd", "compression-level",
                                             std::to_string(level).c_str());
      break;
    case Compression::kNone:
      rc = archive_write_add_filter_none(impl.a);
      break;
  }
  if (rc != ARCHIVE_OK) return ArchiveError(impl.a, "setting up compression for " + path);
  // Larger writes into the file; no padding after the end-of-archive marker. The gzip sink
  // buffers by itself, and takes each write as libarchive makes it, so that a file's bytes reach
  // it after the level chosen for that file is set.
  archive_write_set_bytes_per_block(impl.a, impl.gzip ? 0 : 64 * 1024);
  archive_write_set_bytes_in_last_block(impl.a, 1);
  if (archive_write_open2(impl.a, &impl, nullptr, WriteCallback, CloseCallback, nullptr) !=
      ARCHIVE_OK)
    return ArchiveError(impl.a, "starting archive " + path);
  return writer;
}

ArchiveWriter::~ArchiveWriter() = default;

Status ArchiveWriter::WriteHeader(const ArchiveEntry& entry) {
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname_utf8(e, entry.path.c_str());
  switch (entry.type) {
    case EntryType::kDirectory:
      archive_entry_set_filetype(e, AE_IFDIR);
      archive_entry_set_size(e, 0);
      break;
    case EntryType::kSymlink:
      archive_entry_set_filetype(e, AE_IFLNK);
      archive_entry_set_symlink_utf8(e, entry.link_target.c_str());
      archive_entry_set_size(e, 0);
      break;
    default:
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_size(e, entry.size);
  }
  archive_entry_set_perm(e, entry.mode & 07777);
  archive_entry_set_mtime(e, entry.mtime, 0);
  int rc = archive_write_header(impl_->a, e);
  archive_entry_free(e);
  if (rc != ARCHIVE_OK) {
    if (!impl_->io_status.ok()) return impl_->io_status;
    return ArchiveError(impl_->a, "writing header of " + entry.path);
  }
  return Status::Ok();
}

int GzipLevelFor(const std::string& path) {
  constexpr std::string_view kParquet = ".parquet";
  bool parquet = path.size() >= kParquet.size() &&
                 path.compare(path.size() - kParquet.size(), kParquet.size(), kParquet) == 0;
  return parquet ? kColumnarGzipLevel : kDefaultGzipLevel;
}

Status ArchiveWriter::AddFile(const ArchiveEntry& entry, SequentialFile& source,
                              Sha256* content_hash) {
  impl_->LevelFor(entry.path);
  LV_RETURN_IF_ERROR(WriteHeader(entry));
  int64_t remaining = entry.size;
  auto& buffer = impl_->buffer;
  while (true) {
    LV_ASSIGN_OR_RETURN(size_t n, source.Read(buffer.data(), buffer.capacity()));
    if (n == 0) break;
    if (static_cast<int64_t>(n) > remaining)
      return Error(entry.path + " grew while it was being backed up (expected " +
                   std::to_string(entry.size) + " bytes)");
    if (content_hash) content_hash->Update(buffer.data(), n);
    la_ssize_t written = archive_write_data(impl_->a, buffer.data(), n);
    if (written < 0 || static_cast<size_t>(written) != n) {
      if (!impl_->io_status.ok()) return impl_->io_status;
      return ArchiveError(impl_->a, "writing " + entry.path + " into the archive");
    }
    remaining -= static_cast<int64_t>(n);
    bytes_in_ += static_cast<int64_t>(n);
  }
  if (remaining != 0)
    return Error(entry.path + " shrank while it was being backed up (expected " +
                 std::to_string(entry.size) + " bytes)");
  return Status::Ok();
}

Status ArchiveWriter::AddBytes(const ArchiveEntry& entry, const std::string& data) {
  impl_->LevelFor(entry.path);
  ArchiveEntry e = entry;
  e.type = EntryType::kFile;
  e.size = static_cast<int64_t>(data.size());
  LV_RETURN_IF_ERROR(WriteHeader(e));
  if (!data.empty()) {
    la_ssize_t written = archive_write_data(impl_->a, data.data(), data.size());
    if (written < 0 || static_cast<size_t>(written) != data.size()) {
      if (!impl_->io_status.ok()) return impl_->io_status;
      return ArchiveError(impl_->a, "writing " + entry.path + " into the archive");
    }
  }
  bytes_in_ += static_cast<int64_t>(data.size());
  return Status::Ok();
}

Status ArchiveWriter::AddDirectory(const ArchiveEntry& entry) {
  ArchiveEntry e = entry;
  e.type = EntryType::kDirectory;
  return WriteHeader(e);
}

Status ArchiveWriter::AddSymlink(const ArchiveEntry& entry) {
  ArchiveEntry e = entry;
  e.type = EntryType::kSymlink;
  return WriteHeader(e);
}

Status ArchiveWriter::Finish(const std::function<void()>& written) {
  if (archive_write_close(impl_->a) != ARCHIVE_OK) {
    if (!impl_->io_status.ok()) return impl_->io_status;
    return ArchiveError(impl_->a, "finishing archive " + impl_->file->path());
  }
  if (impl_->gzip) {
    LV_RETURN_IF_ERROR(impl_->gzip->Finish());
    bytes_written_ = impl_->gzip->bytes_out();
  }
  if (written) written();
  LV_RETURN_IF_ERROR(impl_->file->Sync());
  LV_RETURN_IF_ERROR(impl_->file->Close());
  archive_sha256_ = impl_->hash.HexDigest();
  return Status::Ok();
}

// ---------------------------------------------------------------- reader

struct ArchiveReader::Impl {
  struct archive* a = nullptr;
  std::unique_ptr<ReadPipeline> pipeline;
  Status io_status;
  std::string current;
  int64_t current_size = 0;  // as its header says
  ~Impl() {
    if (a != nullptr) archive_read_free(a);
  }
};

namespace {
la_ssize_t ReadCallback(struct archive*, void* client, const void** out) {
  auto* impl = static_cast<ArchiveReader::Impl*>(client);
  auto piece = impl->pipeline->Next();
  if (!piece.ok()) {
    if (impl->io_status.ok()) impl->io_status = piece.status();
    return -1;
  }
  *out = piece->data();
  return static_cast<la_ssize_t>(piece->size());
}
}  // namespace

Result<std::unique_ptr<ArchiveReader>> ArchiveReader::Open(Env& env, const std::string& path,
                                                           Sha256* archive_hash) {
  std::unique_ptr<ArchiveReader> reader(new ArchiveReader());
  reader->impl_ = std::make_unique<Impl>();
  Impl& impl = *reader->impl_;
  LV_ASSIGN_OR_RETURN(auto file, env.NewSequentialFile(path));
  impl.pipeline = std::make_unique<ReadPipeline>(std::move(file), archive_hash);
  impl.a = archive_read_new();
  archive_read_support_format_tar(impl.a);
  if (!impl.pipeline->inflating()) {
    archive_read_support_filter_gzip(impl.a);
    archive_read_support_filter_zstd(impl.a);
  }
  archive_read_support_filter_none(impl.a);
  if (archive_read_open(impl.a, &impl, nullptr, ReadCallback, nullptr) != ARCHIVE_OK) {
    if (!impl.io_status.ok()) return impl.io_status;
    return ArchiveError(impl.a, "opening archive " + path);
  }
  return reader;
}

ArchiveReader::~ArchiveReader() = default;

Result<bool> ArchiveReader::Next(ArchiveEntry* entry) {
  struct archive_entry* e = nullptr;
  int rc = archive_read_next_header(impl_->a, &e);
  if (rc == ARCHIVE_EOF) return false;
  if (rc != ARCHIVE_OK) {
    if (!impl_->io_status.ok()) return impl_->io_status.error();
    std::string after = impl_->current.empty() ? "at the start" : "after " + impl_->current;
    return ArchiveError(impl_->a, "archive unreadable " + after);
  }
  const char* name = archive_entry_pathname_utf8(e);
  if (name == nullptr) name = archive_entry_pathname(e);
  entry->path = name ? name : "";
  entry->size = archive_entry_size(e);
  entry->mode = archive_entry_perm(e);
  entry->mtime = archive_entry_mtime(e);
  entry->hardlink = archive_entry_hardlink(e) != nullptr;
  entry->link_target.clear();
  switch (archive_entry_filetype(e)) {
    case AE_IFREG:
      entry->type = entry->hardlink ? EntryType::kOther : EntryType::kFile;
      if (entry->hardlink) entry->link_target = archive_entry_hardlink(e);
      break;
    case AE_IFDIR:
      entry->type = EntryType::kDirectory;
      break;
    case AE_IFLNK:
      entry->type = EntryType::kSymlink;
      if (const char* t = archive_entry_symlink(e)) entry->link_target = t;
      break;
    default:
      entry->type = EntryType::kOther;
  }
  if (entry->hardlink && entry->type != EntryType::kOther) entry->type = EntryType::kOther;
  impl_->current = entry->path;
  impl_->current_size = entry->size;
  return true;
}

Result<size_t> ArchiveReader::Read(void* buffer, size_t size) {
  la_ssize_t n = archive_read_data(impl_->a, buffer, size);
  if (n < 0) {
    if (!impl_->io_status.ok()) return impl_->io_status.error();
    return ArchiveError(impl_->a, "reading " + impl_->current + " from the archive");
  }
  return static_cast<size_t>(n);
}

Result<std::string> ArchiveReader::ReadAll(size_t limit) {
  std::string data;
  // One allocation of the size the header gives (a manifest is megabytes at thousands of files;
  // growing by doubling held up to twice that), unless the header claims more than the limit.
  if (impl_->current_size > 0 && static_cast<uint64_t>(impl_->current_size) <= limit)
    data.reserve(static_cast<size_t>(impl_->current_size));
  char buffer[65536];
  while (true) {
    LV_ASSIGN_OR_RETURN(size_t n, Read(buffer, sizeof buffer));
    if (n == 0) break;
    if (data.size() + n > limit)
      return Error(impl_->current + " is larger than " + std::to_string(limit) + " bytes");
    data.append(buffer, n);
  }
  return data;
}

Status ArchiveReader::Drain() {
  // libarchive stops at the end-of-archive marker; the rest of the file still counts for the
  // whole-file hash, and garbage appended after the marker must not pass unnoticed.
  while (true) {
    LV_ASSIGN_OR_RETURN(std::string_view piece, impl_->pipeline->Next());
    if (piece.empty()) break;
  }
  return Status::Ok();
}

bool IsSafeMemberPath(const std::string& path) {
  if (path.empty() || path.front() == '/' || path.find('\0') != std::string::npos) return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (part == "..") return false;
    if (part.empty() && end != path.size()) return false;  // "a//b"
    if (part == ".") return false;
    start = end + 1;
  }
  return true;
}

}  // namespace lakevault
