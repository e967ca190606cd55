// Metrics file, failure hook and webhook, job history, and secrets kept out of every output.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "support/test_util.h"

namespace fs = std::filesystem;

namespace lakevault::testing {
namespace {

// Our parser for the Prometheus text exposition format (0.0.4): comments, then
// `name{label="v",...} value` lines. Returns name{labels} -> value; fails the test on any
// line that is not valid.
std::map<std::string, double> ParsePrometheus(const std::string& text) {
  std::map<std::string, double> out;
  std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*)?\})? ([-+]?[0-9.eE+-]+|NaN|[+-]Inf)$)");
  std::regex help(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
  std::map<std::string, std::string> types;
  for (const auto& line : Lines(text)) {
    if (line[0] == '#') {
      EXPECT_TRUE(std::regex_match(line, help)) << line;
      continue;
    }
    std::smatch m;
    EXPECT_TRUE(std::regex_match(line, m, sample)) << line;
    if (m.empty()) continue;
    EXPECT_EQ(m[1].str().rfind("lakevault_", 0), 0u) << line;
    out[m[1].str() + m[2].str()] = std::stod(m[5].str());
  }
  return out;
}

// A one-request-at-a-time HTTP listener on 127.0.0.1 that records request bodies.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(fd_, 8);
    thread_ = std::thread([this] { Serve(); });
  }
  ~Listener() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> l(mu_);
    return bodies_;
  }

 private:
  void Serve() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      size_t want = std::string::npos;
      while (true) {
        ssize_t n = ::read(c, buf, sizeof(buf));
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
        auto hdr_end = req.find("\r\n\r\n");
        if (hdr_end != std::string::npos && want == std::string::npos) {
          std::smatch m;
          std::string headers = req.substr(0, hdr_end);
          std::regex cl("Content-Length: *([0-9]+)", std::regex::icase);
          want = std::regex_search(headers, m, cl) ? hdr_end + 4 + std::stoul(m[1]) : hdr_end + 4;
        }
        if (want != std::string::npos && req.size() >= want) break;
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        auto hdr_end = req.find("\r\n\r\n");
        bodies_.push_back(hdr_end == std::string::npos ? "" : req.substr(hdr_end + 4));
      }
      std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)!::write(c, resp.data(), resp.size());
      ::close(c);
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> bodies_;
};

class MonitoringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "project";
    CopyTree(fs::path(CorpusDir()) / "table-with-dv-small", root_ / "data/lake/option_legs");
    WriteFile(root_ / "config/production.yaml", "broker: ib\n");
    WriteFile(root_ / ".env",
              "IB_PASSWORD=hunter2-secret-value\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI-secret\n");
  }
  void Config(const std::string& extra) {
    WriteFile(root_ / "lakevault.yaml",
              "metrics_file: metrics/lakevault.prom\n"
              "hooks:\n  on_failure: [\"echo \\\"$LAKEVAULT_JOB: $LAKEVAULT_ERROR\\\" >> "
              "failures.log\"]\n" +
                  extra);
  }
  RunResult Run(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    return RunLakevault(args, root_.string(), env);
  }
  TempDir tmp_;
  fs::path root_;
};

TEST_F(MonitoringTest, MetricsFileParsesAndCarriesTheLastBackup) {
  Config("");
  ASSERT_EQ(Run({"backup"}).exit_code, 0);
  ASSERT_EQ(Run({"drill"}).exit_code, 0);
  auto metrics = ParsePrometheus(ReadFile(root_ / "metrics/lakevault.prom"));
  EXPECT_GT(metrics["lakevault_last_success_timestamp_seconds{job=\"backup\"}"], 1.7e9);
  EXPECT_EQ(metrics["lakevault_failures_since_success{job=\"backup\"}"], 0);
  auto list = nlohmann::json::parse(Run({"list", "--json"}).out);
  EXPECT_EQ(metrics["lakevault_backup_archive_bytes"], list["backups"][0]["bytes"].get<double>());
  EXPECT_EQ(metrics["lakevault_backup_tables"], 1);
  EXPECT_EQ(metrics["lakevault_backups"], 1);
  EXPECT_GE(metrics["lakevault_rpo_age_seconds"], 0);
  EXPECT_EQ(metrics["lakevault_rpo_objective_seconds"], 86400);
  EXPECT_GT(metrics["lakevault_last_drill_rto_seconds"], 0);
  EXPECT_EQ(metrics["lakevault_last_drill_ok"], 1);
  // promtool, where Debian provides it, must agree.
  if (RunShell("command -v promtool").exit_code == 0) {
    auto p = RunShell("promtool check metrics < " + (root_ / "metrics/lakevault.prom").string());
    EXPECT_EQ(p.exit_code, 0) << p.out << p.err;
  }
  // The hook did not fire on success.
  EXPECT_FALSE(fs::exists(root_ / "failures.log"));
}

TEST_F(MonitoringTest, FailureHookAndWebhookFireWithTheErrorOnlyOnFailure) {
  Listener listener;
  Config("webhook_url: " + listener.url() + "\n");
  ASSERT_EQ(Run({"backup"}).exit_code, 0);
  EXPECT_TRUE(listener.bodies().empty());
  EXPECT_FALSE(fs::exists(root_ / "failures.log"));
  // Break the lake: the backup fails.
  fs::remove(root_ / "data/lake/option_legs/_delta_log/00000000000000000000.json");
  fs::remove(root_ / "data/lake/option_legs/_delta_log/00000000000000000001.json");
  auto r = Run({"backup"});
  ASSERT_NE(r.exit_code, 0);
  std::string log = ReadFile(root_ / "failures.log");
  EXPECT_NE(log.find("backup: "), std::string::npos) << log;
  EXPECT_NE(log.find("no commits"), std::string::npos) << log;
  auto bodies = listener.bodies();
  ASSERT_EQ(bodies.size(), 1u);
  auto doc = nlohmann::json::parse(bodies[0]);
  EXPECT_EQ(doc["job"], "backup");
  EXPECT_EQ(doc["ok"], false);
  EXPECT_NE(doc["error"].get<std::string>().find("option_legs"), std::string::npos);
  auto metrics = ParsePrometheus(ReadFile(root_ / "metrics/lakevault.prom"));
  EXPECT_EQ(metrics["lakevault_failures_since_success{job=\"backup\"}"], 1);
  EXPECT_GT(metrics["lakevault_last_failure_timestamp_seconds{job=\"backup\"}"], 1.7e9);
  auto status = Run({"status", "--json"});
  EXPECT_EQ(nlohmann::json::parse(status.out)["failures_since_success"], 1);
}

TEST_F(MonitoringTest, SecretsNeverAppearInOutputsLogsOrMetrics) {
  Listener listener;
  Config("webhook_url: " + listener.url() + "\nlog_file: logs/lakevault.log\n");
  std::map<std::string, std::string> env = {{"AWS_ACCESS_KEY_ID", "AKIASECRETKEYID12345"},
                                            {"AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-env-secret"}};
  std::string all;
  for (auto args :
       std::vector<std::vector<std::string>>{{"backup", "--json"},
                                             {"-v", "backup"},
                                             {"list", "--json"},
                                             {"verify", "--json"},
                                             {"check", "--json"},
                                             {"status", "--json"},
                                             {"drill", "--json"},
                                             {"restore", "--yes", "--json", "--with-config"},
                                             {"restore", "nope"},
                                             {"report", "--html", "r.html"}}) {
    auto r = Run(args, env);
    all += r.out + r.err;
  }
  all += ReadFile(root_ / "metrics/lakevault.prom");
  all += ReadFile(root_ / "logs/lakevault.log");
  all += ReadFile(root_ / "r.html");
  for (const auto& b : listener.bodies()) all += b;
  for (const auto& e : fs::directory_iterator(root_ / "backups"))
    if (e.path().extension() == ".json") all += ReadFile(e.path());
  for (const std::string secret : {"hunter2-secret-value", "wJalrXUtnFEMI", "AKIASECRETKEYID12345"})
    EXPECT_EQ(all.find(secret), std::string::npos) << secret << " leaked";
  // The archive holds .env (that is the point) and is owner-only, like its sidecars.
  for (const auto& e : fs::directory_iterator(root_ / "backups")) {
    if (!e.is_regular_file()) continue;
    auto perms = fs::status(e.path()).permissions();
    EXPECT_EQ(perms & (fs::perms::group_all | fs::perms::others_all), fs::perms::none) << e.path();
  }
}

}  // namespace
}  // namespace lakevault::testing
