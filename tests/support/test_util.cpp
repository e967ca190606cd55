#include "support/test_util.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "archive/archive.h"
#include "crypto/sha256.h"
#include "manifest/catalog.h"

extern char** environ;
namespace fs = std::filesystem;

namespace lakevault::testing {

std::string CorpusDir() {
  if (const char* c = std::getenv("LAKEVAULT_CORPUS"); c && *c) return c;
  for (const char* candidate : {LAKEVAULT_CORPUS_DIR, "/work/shared/delta-corpus"})
    if (fs::exists(candidate)) return fs::canonical(candidate).string();
  return LAKEVAULT_CORPUS_DIR;
}
std::string BinaryPath() { return LAKEVAULT_BIN; }
std::string SourceDir() { return LAKEVAULT_SOURCE_DIR; }

TempDir::TempDir() {
  std::string base = fs::temp_directory_path() / "lakevault-test-XXXXXX";
  std::vector<char> buf(base.begin(), base.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}
TempDir::~TempDir() {
  std::error_code ec;
  // Tests may leave read-only folders behind; make them writable before removing.
  for (auto it = fs::recursive_directory_iterator(path_, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_directory(ec)) ::chmod(it->path().c_str(), 0755);
  fs::remove_all(path_, ec);
}

namespace {
std::string Slurp(int fd) {
  std::string data;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(n));
  return data;
}

RunResult Spawn(const std::vector<std::string>& argv, const std::string& cwd,
                const std::map<std::string, std::string>& extra_env) {
  TempDir io;
  std::string out_path = io.str() + "/out", err_path = io.str() + "/err";
  pid_t pid = fork();
  if (pid == 0) {
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(127);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int in = open("/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    for (const auto& [k, v] : extra_env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  RunResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  int fd = open(out_path.c_str(), O_RDONLY);
  result.out = Slurp(fd);
  close(fd);
  fd = open(err_path.c_str(), O_RDONLY);
  result.err = Slurp(fd);
  close(fd);
  return result;
}
}  // namespace

RunResult RunLakevault(const std::vector<std::string>& args, const std::string& cwd,
                       const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv = {BinaryPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return Spawn(argv, cwd, env);
}

RunResult RunShell(const std::string& command, const std::string& cwd) {
  return Spawn({"/bin/bash", "-c", command}, cwd, {});
}

std::map<std::string, std::string> TreeDigest(const fs::path& root) {
  std::map<std::string, std::string> digest;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    std::string rel = it->path().lexically_relative(root).generic_string();
    if (it->is_symlink()) {
      digest[rel] = "-> " + fs::read_symlink(it->path()).string();
    } else if (it->is_regular_file()) {
      digest[rel] = std::to_string(it->file_size()) + ":" +
                    Sha256OfFile(Env::Default(), it->path().string()).value();
    }
  }
  return digest;
}

std::map<std::string, std::string> FolderState(const fs::path& dir) {
  std::map<std::string, std::string> state;
  if (!fs::exists(dir)) return state;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    std::string rel = it->path().lexically_relative(dir).generic_string();
    // Job history is rewritten by every run, failed ones included, by design.
    if (rel == ".lakevault-state.json") continue;
    struct stat st;
    lstat(it->path().c_str(), &st);
    state[rel] = std::to_string(st.st_size) + "@" + std::to_string(st.st_mtim.tv_sec) + "." +
                 std::to_string(st.st_mtim.tv_nsec) + "#" + std::to_string(st.st_ino);
    if (it->is_regular_file())
      state[rel] += ":" + Sha256OfFile(Env::Default(), it->path().string()).value();
  }
  return state;
}

void CopyTree(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}

S3Server::S3Server(const std::filesystem::path& data_dir, const std::string& bucket) {
  std::string dir = SourceDir() + "/tests/s3";
  auto npm = RunShell(
      "flock .install.lock sh -c 'test -d node_modules/s3rver || npm ci --no-audit --no-fund'",
      dir);
  if (npm.exit_code != 0) {
    error = "npm ci failed: " + npm.err;
    return;
  }
  std::filesystem::create_directories(data_dir);
  data_dir_ = data_dir;
  std::filesystem::path portfile = data_dir.string() + ".port";
  // stdin stays open through the pipe from sleep; the server exits when it closes.
  RunShell("(sleep 900 | node --openssl-legacy-provider server.js " + data_dir.string() + " " +
               bucket + " > " + portfile.string() + " 2>&1 &)",
           dir);
  pattern_ = "server.js " + data_dir.string();
  for (int i = 0; i < 300 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::string text = std::filesystem::exists(portfile) ? ReadFile(portfile) : "";
    if (text.rfind("PORT ", 0) == 0) port = std::stoi(text.substr(5));
  }
  if (port == 0)
    error = "s3rver did not start: " +
            (std::filesystem::exists(portfile) ? ReadFile(portfile) : std::string());
}

namespace {

// Bytes queued on loopback sockets to or from `port` (/proc/net/tcp and tcp6: tx_queue and
// rx_queue of every connection, listening sockets aside), or -1 when neither table reads.
int64_t QueuedBytes(int port) {
  int64_t total = -1;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    if (!in || !std::getline(in, line)) continue;  // header
    if (total < 0) total = 0;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues;
      fields >> slot >> local >> remote >> state >> queues;
      if (state == "0A") continue;  // LISTEN: its queue counts pending connections
      auto port_of = [](const std::string& addr) {
        auto colon = addr.rfind(':');
        return colon == std::string::npos ? -1 : std::stoi(addr.substr(colon + 1), nullptr, 16);
      };
      if (port_of(local) != port && port_of(remote) != port) continue;
      auto colon = queues.find(':');
      if (colon == std::string::npos) continue;
      total += std::stoll(queues.substr(0, colon), nullptr, 16) +
               std::stoll(queues.substr(colon + 1), nullptr, 16);
    }
  }
  return total;
}

}  // namespace

bool S3Server::WaitUntilIdle(std::chrono::milliseconds limit) const {
  auto deadline = std::chrono::steady_clock::now() + limit;
  int quiet = 0;
  // Three empty looks in a row, then the bytes the server already read (a few stream buffers)
  // must reach its files: a fixed 250 ms was too short on a loaded machine (an object not
  // matching its .sha256 after a kill, with a build and benchmarks running beside the suite).
  while (quiet < 3) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    quiet = QueuedBytes(port) == 0 ? quiet + 1 : 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Sizes and modification times only: hashing every stored object at each look would cost more
  // than the wait.
  auto look = [this] {
    std::map<std::string, std::pair<int64_t, int64_t>> seen;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(data_dir_, ec), end; !ec && it != end;
         it.increment(ec)) {
      struct stat st;
      if (::lstat(it->path().c_str(), &st) == 0)
        seen[it->path().string()] = {st.st_size,
                                     st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec};
    }
    return seen;
  };
  auto state = look();
  for (int still = 0; still < 2;) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    auto now = look();
    still = now == state ? still + 1 : 0;
    state = std::move(now);
  }
  return true;
}

S3Server::~S3Server() {
  if (!pattern_.empty()) RunShell("pkill -f '" + pattern_ + "'");
}

int CampaignScale() {
  const char* s = std::getenv("LAKEVAULT_CAMPAIGN_SCALE");
  return s ? std::max(1, std::atoi(s)) : 1;
}

std::string CommitName(int64_t v) {
  char name[32];
  std::snprintf(name, sizeof(name), "%020lld.json", static_cast<long long>(v));
  return name;
}

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string data(size, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  return data;
}

DeltaWriter::DeltaWriter(std::filesystem::path dir) : dir_(std::move(dir)) {
  std::filesystem::create_directories(dir_ / "_delta_log");
  Commit(
      {R"({"protocol":{"minReaderVersion":1,"minWriterVersion":2}})",
       R"({"metaData":{"id":"t","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[]}","partitionColumns":["day"],"configuration":{},"createdTime":0}})"});
}

void DeltaWriter::Append() {
  std::string day = "2026-11-" + std::to_string(10 + version_ % 20);
  std::string rel = "day=" + day + "/part-" + std::to_string(version_) + ".parquet";
  std::filesystem::create_directories((dir_ / rel).parent_path());
  std::string data(1000 + (version_ * 37) % 5000, static_cast<char>('a' + version_ % 26));
  WriteFile(dir_ / rel, data);
  std::vector<std::string> actions = {nlohmann::json{
      {"add",
       {{"path", rel},
        {"size", data.size()},
        {"partitionValues", {{"day", day}}},
        {"modificationTime", 0},
        {"dataChange", true},
        {"stats", "{\"numRecords\":" + std::to_string(version_ + 1) +
                      "}"}}}}.dump()};
  if (version_ % 4 == 0 && !live_.empty()) {
    actions.push_back(
        nlohmann::json{{"remove", {{"path", live_.front()}, {"dataChange", true}}}}.dump());
    live_.erase(live_.begin());
  }
  live_.push_back(rel);
  Commit(actions);
}

void DeltaWriter::Commit(const std::vector<std::string>& actions) {
  std::string text;
  for (const auto& a : actions) text += a + "\n";
  std::filesystem::path tmp = dir_ / "_delta_log" / (".tmp-" + std::to_string(version_));
  WriteFile(tmp, text);
  std::filesystem::rename(tmp, dir_ / "_delta_log" / CommitName(version_));
  ++version_;
}

void WriteBackupForTest(const std::filesystem::path& dir, const Manifest& manifest,
                        const std::vector<std::pair<std::string, std::string>>& members) {
  for (const auto& name : BackupFileNames(dir.string(), manifest.id)) std::filesystem::remove(name);
  const std::string json = ManifestToJson(manifest);
  const std::string archive = (dir / manifest.archive).string();
  auto writer = ArchiveWriter::Create(Env::Default(), archive, Compression::kGzip, 0);
  if (!writer.ok()) throw std::runtime_error(writer.message());
  auto add = [&](const std::string& path, const std::string& content) {
    ArchiveEntry e;
    e.path = path;
    e.size = static_cast<int64_t>(content.size());
    Status s = (*writer)->AddBytes(e, content);
    if (!s.ok()) throw std::runtime_error(s.message());
  };
  for (const auto& [path, content] : members) add(path, content);
  add(kManifestMemberName, json);
  Status finished = (*writer)->Finish();
  if (!finished.ok()) throw std::runtime_error(finished.message());
  WriteFile(ManifestSidecarPath(dir.string(), manifest.id), json);
  WriteFile(Sha256SidecarPath(archive),
            Sha256SidecarContent(*Sha256OfFile(Env::Default(), archive), manifest.archive));
}

}  // namespace lakevault::testing
