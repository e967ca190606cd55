#include "remote/storage.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "remote/internal.h"

namespace lakevault {

namespace fs = std::filesystem;
using namespace remote_internal;

Status ValidateObjectName(const std::string& name) {
  if (name.empty()) return Error("object name is empty");
  if (name.front() == '/') return Error("object name " + name + " must be relative");
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return Error("object name has a control character");
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    std::string segment = name.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") {
      return Error("object name " + name + " has an empty, '.' or '..' segment");
    }
    start = end + 1;
  }
  return Status::Ok();
}

namespace remote_internal {

std::string ParentDir(const std::string& path) {
  std::string dir = fs::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

std::string TempNameBeside(const std::string& path) {
  fs::path p(path);
  // Random so two processes downloading the same name do not write one temporary.
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char suffix[17];
  snprintf(suffix, sizeof(suffix), "%016llx", static_cast<unsigned long long>(rng()));
  return (p.parent_path() / ("." + p.filename().string() + ".lvtmp-" + suffix)).string();
}

AtomicLocalFile::AtomicLocalFile(std::string path, Env& env)
    : env_(env), path_(std::move(path)), temp_(TempNameBeside(path_)) {}

AtomicLocalFile::~AtomicLocalFile() {
  if (committed_) return;
  if (file_) file_->Close();
  env_.RemoveFile(temp_);
}

Status AtomicLocalFile::Open() {
  if (file_) {
    file_->Close();
    file_.reset();
  }
  env_.RemoveFile(temp_);
  LV_ASSIGN_OR_RETURN(file_, env_.NewWritableFile(temp_, 0600));
  return Status::Ok();
}

Status AtomicLocalFile::Append(const void* data, size_t size) { return file_->Append(data, size); }

Status AtomicLocalFile::Commit() {
  LV_RETURN_IF_ERROR(file_->Sync());
  LV_RETURN_IF_ERROR(file_->Close());
  LV_RETURN_IF_ERROR(env_.Rename(temp_, path_, /*no_replace=*/false));
  committed_ = true;
  return env_.SyncDir(ParentDir(path_));
}

std::string ShellQuote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string LastLine(const std::string& text) {
  size_t end = text.size();
  while (end > 0) {
    while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r')) --end;
    size_t start = text.rfind('\n', end == 0 ? 0 : end - 1);
    start = start == std::string::npos ? 0 : start + 1;
    std::string line = text.substr(start, end - start);
    if (!line.empty()) return line;
    end = start;
  }
  return "";
}

Result<ProcessResult> RunProcess(const std::vector<std::string>& argv, bool capture) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    close(out_pipe[0]);
    close(out_pipe[1]);
    return ErrnoError("pipe", e);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return ErrnoError("fork", errno);
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(capture ? out_pipe[1] : devnull, 1);
    dup2(capture ? err_pipe[1] : devnull, 2);
    execvp(args[0], args.data());
    dprintf(2, "cannot run %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  ProcessResult result;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waiting for " + argv[0], errno);
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace remote_internal

namespace {

// Spools to a local temporary file, then one Put: for backends with no native streaming.
class SpoolingUpload final : public UploadStream {
 public:
  SpoolingUpload(Storage& storage, std::string name, std::string spool,
                 std::unique_ptr<WritableFile> file)
      : storage_(storage),
        name_(std::move(name)),
        spool_(std::move(spool)),
        file_(std::move(file)) {}
  ~SpoolingUpload() override { Abort(); }
  Status Append(const void* data, size_t size) override {
    if (!file_) return Error("upload of " + name_ + " is already finished");
    return file_->Append(data, size);
  }
  Status Finish() override {
    if (!file_) return Error("upload of " + name_ + " is already finished");
    Status st = file_->Close();
    file_.reset();
    if (st.ok()) st = storage_.Put(name_, spool_);
    Env::Default().RemoveFile(spool_);
    spool_.clear();
    return st;
  }
  void Abort() override {
    if (file_) file_->Close();
    file_.reset();
    if (!spool_.empty()) Env::Default().RemoveFile(spool_);
    spool_.clear();
  }

 private:
  Storage& storage_;
  std::string name_;
  std::string spool_;
  std::unique_ptr<WritableFile> file_;
};

// A folder (a mounted disk or network share). Put copies to a temporary name, fsyncs and
// renames, so the folder only ever holds complete objects under their names.
class LocalStorage final : public Storage {
 public:
  explicit LocalStorage(std::string root) : root_(std::move(root)) {}

  Status Put(const std::string& name, const std::string& local_path) override {
    LV_RETURN_IF_ERROR(ValidateObjectName(name));
    std::string target = Path(name);
    std::error_code ec;
    fs::create_directories(ParentDir(target), ec);
    if (ec) return Error("creating " + ParentDir(target) + ": " + ec.message());
    Status st = Copy(local_path, target);
    if (!st.ok()) return st.error().Context("local: PUT " + name);
    return Status::Ok();
  }

  Status Get(const std::string& name, const std::string& local_path) override {
    LV_RETURN_IF_ERROR(ValidateObjectName(name));
    Status st = Copy(Path(name), local_path);
    if (!st.ok()) return st.error().Context("local: GET " + name);
    return Status::Ok();
  }

  Result<std::string> GetRange(const std::string& name, uint64_t offset, uint64_t length) override {
    LV_RETURN_IF_ERROR(ValidateObjectName(name));
    std::string path = Path(name);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoError("local: GET " + name, errno);
    std::string out;
    char buf[65536];
    while (out.size() < length) {
      size_t want = std::min<uint64_t>(sizeof(buf), length - out.size());
      ssize_t n = ::pread(fd, buf, want, static_cast<off_t>(offset + out.size()));
      if (n < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        ::close(fd);
        return ErrnoError("local: GET " + name, e);
      }
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
  }

  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override {
    std::vector<ObjectInfo> out;
    std::error_code ec;
    if (!fs::exists(root_, ec)) return out;
    for (auto it = fs::recursive_directory_iterator(root_, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file()) continue;
      std::string rel = fs::relative(it->path(), root_).generic_string();
      // Temporaries of an in-flight or interrupted Put are not objects.
      if (it->path().filename().string().find(".lvtmp-") != std::string::npos) continue;
      if (rel.compare(0, prefix.size(), prefix) != 0) continue;
      out.push_back({rel, static_cast<uint64_t>(it->file_size())});
    }
    if (ec) return Error("local: listing " + root_ + ": " + ec.message());
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; });
    return out;
  }

  Status Delete(const std::string& name) override {
    LV_RETURN_IF_ERROR(ValidateObjectName(name));
    if (::unlink(Path(name).c_str()) != 0 && errno != ENOENT) {
      return ErrnoError("local: DELETE " + name, errno);
    }
    return Env::Default().SyncDir(ParentDir(Path(name)));
  }

  Result<std::optional<ObjectInfo>> Stat(const std::string& name) override {
    LV_RETURN_IF_ERROR(ValidateObjectName(name));
    struct stat st;
    if (::stat(Path(name).c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::optional<ObjectInfo>();
      return ErrnoError("local: STAT " + name, errno);
    }
    return std::optional<ObjectInfo>(ObjectInfo{name, static_cast<uint64_t>(st.st_size)});
  }

  std::string Describe() const override { return root_; }

 private:
  std::string Path(const std::string& name) const { return root_ + "/" + name; }

  static Status Copy(const std::string& from, const std::string& to) {
    Env& env = Env::Default();
    LV_ASSIGN_OR_RETURN(auto in, env.NewSequentialFile(from));
    AtomicLocalFile out(to, env);
    LV_RETURN_IF_ERROR(out.Open());
    std::vector<char> buf(1 << 20);
    for (;;) {
      LV_ASSIGN_OR_RETURN(size_t n, in->Read(buf.data(), buf.size()));
      if (n == 0) break;
      LV_RETURN_IF_ERROR(out.Append(buf.data(), n));
    }
    return out.Commit();
  }

  std::string root_;
};

}  // namespace

Result<std::unique_ptr<UploadStream>> Storage::OpenUpload(const std::string& name) {
  LV_RETURN_IF_ERROR(ValidateObjectName(name));
  std::string dir = fs::temp_directory_path().string();
  std::string spool = TempNameBeside(dir + "/lakevault-upload");
  LV_ASSIGN_OR_RETURN(auto file, Env::Default().NewWritableFile(spool, 0600));
  return std::unique_ptr<UploadStream>(
      std::make_unique<SpoolingUpload>(*this, name, spool, std::move(file)));
}

namespace remote_internal {

Result<std::unique_ptr<Storage>> OpenLocalStorage(const RemoteSpec& spec) {
  for (const auto& [k, v] : spec.settings) {
    if (k != "path") return Error("local remote: unknown setting '" + k + "'");
  }
  auto it = spec.settings.find("path");
  if (it == spec.settings.end() || it->second.empty()) {
    return Error("local remote needs a 'path' setting");
  }
  std::string root = it->second;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  return std::unique_ptr<Storage>(std::make_unique<LocalStorage>(root));
}

}  // namespace remote_internal

Result<std::unique_ptr<Storage>> OpenStorage(const RemoteSpec& spec) {
  if (spec.type == "local") return OpenLocalStorage(spec);
  if (spec.type == "s3") return OpenS3Storage(spec);
  if (spec.type == "rsync") return OpenRsyncStorage(spec);
  return Error("unknown remote type '" + spec.type + "' (expected local, s3 or rsync)");
}

}  // namespace lakevault
