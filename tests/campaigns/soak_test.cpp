// Soak test: a writer keeps committing to four Delta tables while the scheduled jobs run in a
// loop for a bounded time (full and incremental backups, verify, prune with a policy that really
// deletes, restores into a new folder). Every restore must be a complete Delta version of every
// table, and neither the lakevault processes nor this one may grow in memory or descriptors.
#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/test_util.h"

extern char** environ;
namespace fs = std::filesystem;

namespace lakevault::testing {
namespace {

int SoakSeconds() {
  if (const char* s = std::getenv("LAKEVAULT_SOAK_SECONDS"); s && *s)
    return std::max(1, std::atoi(s));
  return 60 * CampaignScale();
}

int CountFds(const fs::path& dir) {
  std::error_code ec;
  int n = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
#if defined(__SANITIZE_ADDRESS__)
    // Under AddressSanitizer the runtime opens a pipe pair of its own for a moment (sanitizer
    // common's probe of whether memory is readable): sampled at that instant, a `list` of 6
    // descriptors showed 9. The plain build shows no pipe; the soak's jobs open none.
    std::error_code link_ec;
    if (fs::read_symlink(it->path(), link_ec).string().rfind("pipe:", 0) == 0) continue;
#endif
    ++n;
  }
  return n;
}

struct Measured {
  RunResult result;
  long max_rss_kb = 0;  // the child's peak resident set, from wait4
  int peak_fds = 0;     // the most descriptors seen open in the child while it ran
};

// Runs lakevault like RunLakevault, but reaps it with wait4 for its own rusage and samples
// /proc/<pid>/fd while it runs. Everything the child needs is built before fork: the writer
// thread may hold locks at that instant.
Measured RunMeasured(const std::vector<std::string>& args, const fs::path& cwd,
                     const std::map<std::string, std::string>& extra_env) {
  TempDir io;
  const std::string out_path = io.str() + "/out", err_path = io.str() + "/err";
  std::vector<std::string> argv_s = {BinaryPath()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    if (!extra_env.count(kv.substr(0, kv.find('=')))) env_s.push_back(kv);
  }
  for (const auto& [k, v] : extra_env) env_s.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string dir = cwd.string();

  Measured m;
  pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir.c_str()) != 0) _exit(127);
    int in = open("/dev/null", O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    // Only 0-2 go on: a descriptor of this process leaking into the child would count as the
    // child's.
    close_range(3, ~0U, 0);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  const fs::path proc_fd = fs::path("/proc") / std::to_string(pid) / "fd";
  int status = 0;
  struct rusage ru {};
  while (true) {
    pid_t w = wait4(pid, &status, WNOHANG, &ru);
    if (w == pid || w < 0) break;
    m.peak_fds = std::max(m.peak_fds, CountFds(proc_fd));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  m.max_rss_kb = ru.ru_maxrss;
  m.result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  m.result.out = ReadFile(out_path);
  m.result.err = ReadFile(err_path);
  return m;
}

// The resource use of one run of one kind of job.
struct Usage {
  int iteration = 0;
  long rss_kb = 0;
  int fds = 0;
};

// Growth is judged on a lake of steady size: it starts with this many commits per table and the
// writer adds at most kGrowth more, spread over the whole soak however long it runs. A leak in
// lakevault then shows as growth beyond the lake's own, and a long soak stays linear instead of
// replaying an ever longer log.
constexpr int kPreloaded = 200;
constexpr int kGrowth = 80;
// Iterations before the backup folder is at its steady size (prune deletes from the 4th on):
// runs before it are not compared with later ones.
constexpr int kWarmUp = 6;
// Enough iterations after the warm-up to compare early and late runs of every kind of job (a
// full backup every 4th, a restore every 3rd), even on a slow machine past the time limit.
constexpr int kMinIterations = kWarmUp + 10;

// The ceiling for any lakevault run's peak resident set. Under AddressSanitizer its shadow memory
// and quarantine alone take a few hundred MiB, so only growth is judged there, against a looser
// ceiling that still catches a runaway.
#if defined(__SANITIZE_ADDRESS__)
constexpr long kRssCeilingKb = 1024 * 1024;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr long kRssCeilingKb = 1024 * 1024;
#else
constexpr long kRssCeilingKb = 200 * 1024;
#endif
#else
constexpr long kRssCeilingKb = 200 * 1024;
#endif

TEST(Soak, JobsLoopWhileAWriterCommitsWithoutGrowth) {
  const int seconds = SoakSeconds();
  TempDir tmp;
  const fs::path project = tmp.path() / "project";
  const std::vector<std::string> names = {"position_updates", "option_legs", "account_snapshots",
                                          "strategy_executions"};
  std::vector<std::unique_ptr<DeltaWriter>> writers;
  for (const auto& n : names) {
    writers.push_back(std::make_unique<DeltaWriter>(project / "data/lake" / n));
    for (int i = 0; i < kPreloaded; ++i) writers.back()->Append();
  }
  WriteFile(project / ".env", "IB_ACCOUNT=DU9\n");
  // keep_last 3 (no age rule) so prune has something to delete every few iterations.
  WriteFile(project / "lakevault.yaml", "retention: {days: 0, keep_last: 3}\n");

  const int fds_before = CountFds("/proc/self/fd");
  std::atomic<bool> stop{false};
  std::atomic<int64_t> commits{0};
  std::thread writer([&] {
    const int64_t max_version = kPreloaded + kGrowth;
    const auto pause = std::chrono::milliseconds(seconds * 1000 / (names.size() * kGrowth));
    size_t next = 0;
    while (!stop) {
      DeltaWriter& w = *writers[next++ % writers.size()];
      if (w.version() < max_version) {
        w.Append();
        ++commits;
      }
      std::this_thread::sleep_for(pause);
    }
  });
  ThreadJoiner joiner{stop, writer};

  std::map<std::string, std::vector<Usage>> usage;
  int iterations = 0;
  auto run = [&](const std::string& kind, const std::vector<std::string>& args,
                 const std::string& now) {
    Measured m = RunMeasured(args, project, {{"LAKEVAULT_NOW", now}});
    usage[kind].push_back({iterations, m.max_rss_kb, m.peak_fds});
    return m.result;
  };

  // id -> table name -> version and rows, as each backup's manifest recorded them.
  std::map<std::string, std::map<std::string, nlohmann::json>> recorded;
  int fulls = 0, incrementals = 0, verifies = 0, restores = 0, pruned = 0;
  int max_self_fds = fds_before;
  // Fake time, a minute per iteration: ids never collide and no run waits for the next second.
  const std::time_t base = 1795510800;  // 2026-11-24T09:00:00Z
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline || iterations < kMinIterations) {
    const int i = iterations;
    const std::string now = fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(base + 60 * i));
    SCOPED_TRACE("iteration " + std::to_string(i) + " at " + now);
    const bool full = i % 4 == 0;
    auto b = run(full ? "backup --full" : "backup --incremental",
                 {"backup", full ? "--full" : "--incremental", "--no-prune", "--json"}, now);
    ASSERT_EQ(b.exit_code, 0) << b.err;
    (full ? fulls : incrementals)++;
    auto doc = nlohmann::json::parse(b.out);
    const std::string id = doc["id"];
    ASSERT_EQ(doc["tables"].size(), names.size()) << b.out;

    // The new backup and the chain it needs.
    auto v = run("verify", {"verify", "latest"}, now);
    ASSERT_EQ(v.exit_code, 0) << v.out << v.err;
    ++verifies;

    auto p = run("prune", {"prune", "--json"}, now);
    ASSERT_EQ(p.exit_code, 0) << p.err;
    pruned += static_cast<int>(nlohmann::json::parse(p.out)["deleted"].size());
    auto list = run("list", {"list", "--json"}, now);
    ASSERT_EQ(list.exit_code, 0) << list.err;
    auto listed = nlohmann::json::parse(list.out)["backups"];
    // keep_last 3, plus the full and incrementals the oldest kept one needs (a full every 4).
    EXPECT_LE(listed.size(), 6u) << list.out;
    ASSERT_FALSE(listed.empty());
    ASSERT_EQ(listed.back()["id"], id) << list.out;
    // The manifest (as list reads it) records what the backup reported, per table.
    for (const auto& t : doc["tables"]) {
      const std::string name = t["name"];
      ASSERT_TRUE(listed.back()["tables"].contains(name)) << list.out;
      recorded[id][name] = listed.back()["tables"][name];
      EXPECT_EQ(recorded[id][name]["version"], t["version"]) << name;
      EXPECT_GT(t["version"].get<int64_t>(), 0) << name;
    }

    if (i % 3 == 2) {
      const fs::path to = tmp.path() / ("restore-" + std::to_string(i));
      auto r = run("restore", {"restore", "latest", "--to", to.string(), "--json"}, now);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      ++restores;
      const std::string rid = nlohmann::json::parse(r.out)["id"];
      ASSERT_EQ(rid, id) << "latest is the backup just taken";
      const fs::path lake = to / "data/lake";
      auto c = run("check", {"check", "--lake", lake.string(), "--json"}, now);
      auto health = nlohmann::json::parse(c.out, nullptr, false);
      ASSERT_FALSE(health.is_discarded()) << c.out << c.err;
      EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
      EXPECT_TRUE(health.value("healthy", false)) << c.out;
      ASSERT_EQ(health["tables"].size(), names.size()) << c.out;
      for (const auto& t : health["tables"]) {
        const std::string name = t["name"];
        ASSERT_TRUE(recorded[rid].count(name)) << name;
        const int64_t version = recorded[rid][name]["version"].get<int64_t>();
        EXPECT_TRUE(t["healthy"].get<bool>()) << t.dump();
        EXPECT_EQ(t["version"].get<int64_t>(), version) << name;
        EXPECT_EQ(t["rows"], recorded[rid][name]["rows"]) << name;
        // The log ends at the recorded version: complete up to it, nothing past it.
        EXPECT_TRUE(fs::exists(lake / name / "_delta_log" / CommitName(version))) << name;
        EXPECT_FALSE(fs::exists(lake / name / "_delta_log" / CommitName(version + 1))) << name;
      }
      fs::remove_all(to);
    }
    max_self_fds = std::max(max_self_fds, CountFds("/proc/self/fd"));
    ++iterations;
    if (HasFailure()) break;
  }
  stop = true;
  writer.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const int fds_after = CountFds("/proc/self/fd");

  EXPECT_GT(pruned, 0) << "prune never deleted anything";
  EXPECT_GT(restores, 0);
  int64_t newest_recorded = 0;
  for (const auto& [name, table] : recorded.rbegin()->second)
    newest_recorded = std::max(newest_recorded, table["version"].get<int64_t>());
  EXPECT_GT(newest_recorded, kPreloaded) << "the writer did not commit during the soak";
  // This process: the same descriptors at the end as before the loop (the writer may hold one
  // or two for a moment during it).
  EXPECT_EQ(fds_after, fds_before);
  EXPECT_LE(max_self_fds, fds_before + 3);

  // The children: per kind of job, its last runs against its first runs after the warm-up. A
  // leak grows with every file or every iteration; the lake itself grows by a bounded fraction.
  std::string summary;
  for (const auto& [kind, all] : usage) {
    std::vector<Usage> runs;
    for (const auto& u : all)
      if (u.iteration >= kWarmUp) runs.push_back(u);
    long peak_rss = 0;
    for (const auto& u : all) peak_rss = std::max(peak_rss, u.rss_kb);
    EXPECT_LT(peak_rss, kRssCeilingKb) << kind;
    if (runs.size() < 2) {
      ADD_FAILURE() << kind << ": too few runs after the warm-up to compare";
      continue;
    }
    const size_t window = std::min<size_t>(3, runs.size() / 2);
    long first_rss = 0, last_rss = 0;
    int first_fds = 0, last_fds = 0;
    for (size_t k = 0; k < window; ++k) {
      first_rss = std::max(first_rss, runs[k].rss_kb);
      first_fds = std::max(first_fds, runs[k].fds);
      last_rss = std::max(last_rss, runs[runs.size() - 1 - k].rss_kb);
      last_fds = std::max(last_fds, runs[runs.size() - 1 - k].fds);
    }
    EXPECT_LE(last_rss, first_rss * 3 / 2)
        << kind << ": peak RSS grew from " << first_rss << " KiB to " << last_rss << " KiB";
    // A command of a few milliseconds is sampled only a few times (every 5 ms), so the most
    // descriptors seen in three runs can miss its true peak: the last runs are compared with the
    // most seen in all the runs before them, which a real leak (more with every run) still
    // exceeds.
    int earlier_fds = 0;
    for (size_t k = 0; k + window < runs.size(); ++k)
      earlier_fds = std::max(earlier_fds, runs[k].fds);
    EXPECT_LE(last_fds, earlier_fds + 2)
        << kind << ": open descriptors grew from " << earlier_fds << " to " << last_fds;
    summary += fmt::format(" [{}: {} runs, RSS {}->{} KiB (peak {}), fds {}->{}]", kind, all.size(),
                           first_rss, last_rss, peak_rss, first_fds, last_fds);
  }
  std::cout << fmt::format(
                   "soak: {:.0f} s, {} iterations, {} backups ({} full, {} incremental), {} "
                   "verify, {} deleted by prune, {} restores checked, {} commits by the writer, "
                   "own fds {}->{} (max {})",
                   elapsed, iterations, fulls + incrementals, fulls, incrementals, verifies, pruned,
                   restores, commits.load(), fds_before, fds_after, max_self_fds)
            << summary << "\n";
  RecordProperty("iterations", iterations);
  RecordProperty("backups", fulls + incrementals);
  RecordProperty("restores", restores);
  RecordProperty("pruned", pruned);
  RecordProperty("commits", static_cast<int>(commits.load()));
}

}  // namespace
}  // namespace lakevault::testing
