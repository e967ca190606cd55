// An rsync destination: another machine over ssh ("user@host:/path") or a local path (a
// mounted disk), driven by the rsync and ssh binaries run directly (fork/exec, no local shell).
//
// Put sends to ".lvtmp-<name>" with --partial, so an interrupted transfer resumes on the next
// try and never sits under the final name, then renames it into place on the remote side.
// Listing, stat and delete run small POSIX shell scripts on the destination (through ssh, or
// /bin/sh for a local path), with every path shell-quoted.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "remote/internal.h"
#include "remote/storage.h"

namespace lakevault::remote_internal {

namespace {

constexpr char kTempPrefix[] = ".lvtmp-";

struct RsyncConfig {
  std::string dest;  // as configured, for messages
  bool remote = false;
  std::string host;  // "user@host" or "host"
  std::string root;  // path on the destination
  std::string port;
  std::string key;
  std::vector<std::string> ssh_options;
};

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

class RsyncStorage final : public Storage {
 public:
  explicit RsyncStorage(RsyncConfig config) : config_(std::move(config)) {}
  ~RsyncStorage() override {
    if (control_path_.empty()) return;
    std::vector<std::string> argv = SshArgv();
    argv.insert(argv.end(), {"-O", "exit", config_.host});
    (void)RunProcess(argv, /*capture=*/false);
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(control_path_).parent_path(), ec);
  }

  Status Put(const std::string& name, const std::string& local_path) override {
    LV_RETURN_IF_ERROR(ValidateObjectName(name));
    EnsureMaster();
    const std::string what = "rsync: PUT " + name;
    const std::string path = Path(name);
    const std::string dir = DirName(path);
    const std::string temp = dir + "/" + kTempPrefix + BaseName(path);
    // --checksum: a leftover temporary with the right content is not sent again.
    std::vector<std::string> argv = {"rsync", "--partial", "--checksum"};
    if (config_.remote) {
      // The folder is created by the same ssh session, not one more round trip.
      argv.push_back("--rsync-path=mkdir -p -- " + ShellQuote(dir) + " && rsync");
    } else {
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      if (ec) return Error(what + ": creating " + dir + ": " + ec.message());
    }
    AddRsh(argv);
    argv.push_back(local_path);
    argv.push_back(Target(temp));
    LV_RETURN_IF_ERROR(Run(what, argv).status());
    // Flush the data, then rename in one step, then flush the folder entry: after this the
    // object is under its name and on disk, or (on failure) only the temporary exists.
    const std::string script =
        "set -e; sync -- " + ShellQuote(temp) + " 2>/dev/null || :; mv -f -- " + ShellQuote(temp) +
        " " + ShellQuote(path) + "; sync -- " + ShellQuote(dir) + " 2>/dev/null || :";
    return RunScript(what, script).status();
  }

  Status Get(const std::string& name, const std::string& local_path) override {
    LV_RETURN_IF_ERROR(ValidateObjectName(name));
    EnsureMaster();
    const std::string what = "rsync: GET " + name;
    const std::string temp = TempNameBeside(local_path);
    std::vector<std::string> argv = {"rsync"};
    AddRsh(argv);
    argv.push_back(Target(Path(name)));
    argv.push_back(temp);
    auto ran = Run(what, argv);
    Status st = ran.status();
    // rsync's "link_stat ... failed: No such file or directory" (exit 23), said plainly.
    if (!st.ok() && st.message().find("No such file or directory") != std::string::npos &&
        st.message().find("exited with 23") != std::string::npos) {
      st = Error(what + ": no such object in " + config_.dest);
    }
    if (st.ok()) st = Env::Default().SyncFile(temp);
    if (st.ok()) st = Env::Default().Rename(temp, local_path, /*no_replace=*/false);
    if (!st.ok()) {
      ::unlink(temp.c_str());
      return st;
    }
    return Env::Default().SyncDir(ParentDir(local_path));
  }

  Result<std::string> GetRange(const std::string& name, uint64_t offset, uint64_t length) override {
    LV_RETURN_IF_ERROR(ValidateObjectName(name));
    EnsureMaster();
    if (length == 0) return std::string();
    const std::string path = ShellQuote(Path(name));
    const std::string script = "[ -f " + path + " ] || { echo 'no such object' >&2; exit 3; }; " +
                               "tail -c +" + std::to_string(offset + 1) + " -- " + path +
                               " | head -c " + std::to_string(length);
    LV_ASSIGN_OR_RETURN(ProcessResult r, RunScript("rsync: GET " + name + " (range)", script));
    return std::move(r.out);
  }

  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override {
    EnsureMaster();
    // A destination folder that does not exist yet simply holds no objects.
    const std::string script = "cd -- " + ShellQuote(config_.root) +
                               " 2>/dev/null || exit 0; find . -type f ! -name '" + kTempPrefix +
                               "*' ! -name '." + kTempPrefix + "*' -printf '%P\\t%s\\n'";
    LV_ASSIGN_OR_RETURN(ProcessResult r, RunScript("rsync: LIST " + config_.dest, script));
    std::vector<ObjectInfo> out;
    std::istringstream lines(r.out);
    std::string line;
    while (std::getline(lines, line)) {
      size_t tab = line.rfind('\t');
      if (tab == std::string::npos) continue;
      std::string rel = line.substr(0, tab);
      if (rel.compare(0, prefix.size(), prefix) != 0) continue;
      out.push_back({rel, std::stoull(line.substr(tab + 1))});
    }
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; });
    return out;
  }

  Status Delete(const std::string& name) override {
    LV_RETURN_IF_ERROR(ValidateObjectName(name));
    EnsureMaster();
    return RunScript("rsync: DELETE " + name, "rm -f -- " + ShellQuote(Path(name))).status();
  }

  Result<std::optional<ObjectInfo>> Stat(const std::string& name) override {
    LV_RETURN_IF_ERROR(ValidateObjectName(name));
    EnsureMaster();
    const std::string path = ShellQuote(Path(name));
    const std::string script =
        "if [ -f " + path + " ]; then stat -c %s -- " + path + "; else echo missing; fi";
    LV_ASSIGN_OR_RETURN(ProcessResult r, RunScript("rsync: STAT " + name, script));
    std::string text = LastLine(r.out);
    if (text == "missing") return std::optional<ObjectInfo>();
    char* end = nullptr;
    unsigned long long size = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0') {
      return Error("rsync: STAT " + name + ": unexpected answer '" + text + "'");
    }
    return std::optional<ObjectInfo>(ObjectInfo{name, size});
  }

  std::string Describe() const override { return config_.dest; }

 private:
  std::string Path(const std::string& name) const { return config_.root + "/" + name; }
  std::string Target(const std::string& path) const {
    return config_.remote ? config_.host + ":" + path : path;
  }

  // ssh takes the first value it sees for an option, so the operator's ssh_options come
  // first and win over these defaults.
  std::vector<std::string> SshArgv() const {
    std::vector<std::string> argv = {"ssh"};
    argv.insert(argv.end(), config_.ssh_options.begin(), config_.ssh_options.end());
    if (!config_.port.empty()) argv.insert(argv.end(), {"-p", config_.port});
    // IdentitiesOnly: agent keys tried first could use up the server's MaxAuthTries.
    if (!config_.key.empty()) {
      argv.insert(argv.end(), {"-i", config_.key, "-o", "IdentitiesOnly=yes"});
    }
    // BatchMode: never stop at a password or passphrase prompt in an unattended job.
    argv.insert(argv.end(), {"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"});
    if (!control_path_.empty()) {
      argv.insert(argv.end(), {"-o", "ControlMaster=no", "-o", "ControlPath=" + control_path_});
    }
    return argv;
  }

  // One ssh connection shared by every command of this storage: a backup lists, uploads,
  // renames and stats, and each would otherwise pay a TCP and key exchange. If the master
  // cannot start, commands connect on their own (ssh falls back when the socket is missing)
  // and report their own errors. ControlPersist ends a master left behind by a crash.
  void EnsureMaster() {
    if (!config_.remote || master_tried_) return;
    master_tried_ = true;
    char dir[] = "/tmp/lakevault-ssh-XXXXXX";
    if (mkdtemp(dir) == nullptr) return;
    const std::string path = std::string(dir) + "/master";
    std::vector<std::string> argv = SshArgv();
    argv.insert(argv.end(), {"-o", "ControlMaster=yes", "-o", "ControlPath=" + path, "-o",
                             "ControlPersist=60", config_.host, "true"});
    auto r = RunProcess(argv, /*capture=*/false);
    if (r.ok() && r->exit_code == 0 && ::access(path.c_str(), F_OK) == 0) {
      control_path_ = path;
    } else {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  }

  void AddRsh(std::vector<std::string>& argv) const {
    if (!config_.remote) return;
    // rsync splits -e itself and honours quotes, so quoted paths with spaces survive.
    std::string rsh;
    for (const auto& a : SshArgv()) rsh += (rsh.empty() ? "" : " ") + ShellQuote(a);
    argv.insert(argv.end(), {"-e", rsh});
  }

  Result<ProcessResult> RunScript(const std::string& what, const std::string& script) {
    std::vector<std::string> argv;
    if (config_.remote) {
      argv = SshArgv();
      argv.push_back(config_.host);
      argv.push_back(script);
    } else {
      argv = {"/bin/sh", "-c", script};
    }
    return Run(what, argv);
  }

  Result<ProcessResult> Run(const std::string& what, const std::vector<std::string>& argv) {
    LV_ASSIGN_OR_RETURN(ProcessResult r, RunProcess(argv));
    if (r.exit_code == 0) return r;
    std::string detail = LastLine(r.err);
    if (r.exit_code == 127) return Error(what + ": " + detail);
    // ssh reports its own failures (refused, unknown host, key rejected) with 255.
    if (config_.remote && r.exit_code == 255) {
      return Error(what + ": cannot reach " + config_.host + " over ssh: " + detail);
    }
    return Error(what + ": " + argv[0] + " exited with " + std::to_string(r.exit_code) +
                 (detail.empty() ? "" : ": " + detail));
  }

  RsyncConfig config_;
  bool master_tried_ = false;
  std::string control_path_;
};

}  // namespace

Result<std::unique_ptr<Storage>> OpenRsyncStorage(const RemoteSpec& spec) {
  static const char* kKnown[] = {"dest", "ssh_port", "ssh_key", "ssh_options"};
  for (const auto& [k, v] : spec.settings) {
    if (std::find(std::begin(kKnown), std::end(kKnown), k) == std::end(kKnown)) {
      return Error("rsync remote: unknown setting '" + k + "'");
    }
  }
  auto get = [&](const std::string& k) {
    auto it = spec.settings.find(k);
    return it == spec.settings.end() ? std::string() : it->second;
  };
  RsyncConfig cfg;
  cfg.dest = get("dest");
  if (cfg.dest.empty()) return Error("rsync remote needs a 'dest' setting (user@host:/path)");
  // rsync's own rule: a ':' before the first '/' makes it host:path.
  size_t colon = cfg.dest.find(':');
  size_t slash = cfg.dest.find('/');
  if (colon != std::string::npos && (slash == std::string::npos || colon < slash)) {
    cfg.remote = true;
    cfg.host = cfg.dest.substr(0, colon);
    cfg.root = cfg.dest.substr(colon + 1);
    if (cfg.host.empty()) return Error("rsync remote: dest " + cfg.dest + " has no host");
    if (cfg.host[0] == '-') return Error("rsync remote: host may not start with '-'");
    if (cfg.root.empty()) cfg.root = ".";
  } else {
    cfg.root = cfg.dest;
  }
  while (cfg.root.size() > 1 && cfg.root.back() == '/') cfg.root.pop_back();
  cfg.port = get("ssh_port");
  if (!cfg.port.empty() && cfg.port.find_first_not_of("0123456789") != std::string::npos) {
    return Error("rsync remote: ssh_port must be a number, not '" + cfg.port + "'");
  }
  cfg.key = get("ssh_key");
  std::istringstream opts(get("ssh_options"));
  for (std::string word; opts >> word;) cfg.ssh_options.push_back(word);
  return std::unique_ptr<Storage>(std::make_unique<RsyncStorage>(std::move(cfg)));
}

}  // namespace lakevault::remote_internal
