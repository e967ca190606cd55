#include "ops/notify.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "drill/drill.h"
#include "hooks/hooks.h"
#include "manifest/catalog.h"
#include "net/curl.h"

namespace lakevault {

namespace {
double Epoch(const std::string& iso) {
  auto t = ParseTime(iso);
  if (!t.ok()) return 0;
  return std::chrono::duration<double>(t->time_since_epoch()).count();
}

class MetricWriter {
 public:
  void Gauge(const std::string& name, const std::string& help) {
    out_ += fmt::format("# HELP lakevault_{} {}\n# TYPE lakevault_{} gauge\n", name, help, name);
  }
  void Value(const std::string& name, double v, const std::string& labels = "") {
    out_ += fmt::format("lakevault_{}{} {}\n", name, labels.empty() ? "" : "{" + labels + "}", v);
  }
  std::string out_;
};
}  // namespace

std::string RenderMetrics(const State& state, const std::string& backup_dir, const Config& config,
                          TimePoint now) {
  MetricWriter m;
  m.Gauge("last_success_timestamp_seconds", "Unix time of the last successful run of each job.");
  for (const auto& [job, s] : state.jobs)
    if (s.last_success)
      m.Value("last_success_timestamp_seconds", Epoch(s.last_success->time), "job=\"" + job + "\"");
  m.Gauge("last_failure_timestamp_seconds", "Unix time of the last failed run of each job.");
  for (const auto& [job, s] : state.jobs)
    if (s.last_failure)
      m.Value("last_failure_timestamp_seconds", Epoch(s.last_failure->time), "job=\"" + job + "\"");
  m.Gauge("failures_since_success", "Failed runs of each job since its last success.");
  for (const auto& [job, s] : state.jobs)
    m.Value("failures_since_success", static_cast<double>(s.failures_since_success),
            "job=\"" + job + "\"");
  m.Gauge("last_duration_seconds", "Duration of the last successful run of each job.");
  for (const auto& [job, s] : state.jobs)
    if (s.last_success)
      m.Value("last_duration_seconds", s.last_success->seconds, "job=\"" + job + "\"");
  auto it = state.jobs.find("backup");
  if (it != state.jobs.end() && it->second.last_success) {
    const auto& d = it->second.last_success->details;
    m.Gauge("backup_bytes_read", "Bytes of lake and config files the last backup covered.");
    m.Value("backup_bytes_read", d.value("bytes_read", 0.0));
    m.Gauge("backup_bytes_written", "Bytes the last backup stored (new or changed files).");
    m.Value("backup_bytes_written", d.value("bytes_written", 0.0));
    m.Gauge("backup_archive_bytes", "Size of the last backup's archive.");
    m.Value("backup_archive_bytes", d.value("archive_bytes", 0.0));
    m.Gauge("backup_files", "Files covered by the last backup.");
    m.Value("backup_files", d.value("files", 0.0));
    m.Gauge("backup_tables", "Delta tables in the last backup.");
    m.Value("backup_tables", d.value("tables", 0.0));
  }
  auto catalog = Catalog::Load(backup_dir);
  if (catalog.ok()) {
    m.Gauge("backups", "Backups in the backup folder.");
    m.Value("backups", static_cast<double>(catalog->entries().size()));
    for (auto e = catalog->entries().rbegin(); e != catalog->entries().rend(); ++e) {
      if (!e->manifest) continue;
      auto created = ParseTime(e->manifest->created);
      if (!created.ok()) continue;
      m.Gauge("rpo_age_seconds", "Age of the newest backup.");
      m.Value("rpo_age_seconds", std::chrono::duration<double>(now - *created).count());
      break;
    }
  }
  m.Gauge("rpo_objective_seconds", "The configured recovery point objective.");
  m.Value("rpo_objective_seconds", static_cast<double>(config.rpo_seconds));
  m.Gauge("rto_objective_seconds", "The configured recovery time objective.");
  m.Value("rto_objective_seconds", static_cast<double>(config.rto_seconds));
  if (auto drill = LastDrill(backup_dir)) {
    m.Gauge("last_drill_rto_seconds", "Recovery time measured by the last drill.");
    m.Value("last_drill_rto_seconds", drill->rto_seconds);
    m.Gauge("last_drill_ok", "1 when the last drill passed.");
    m.Value("last_drill_ok", drill->ok ? 1 : 0);
  }
  struct statvfs vfs;
  if (::statvfs(backup_dir.c_str(), &vfs) == 0) {
    m.Gauge("backup_free_bytes", "Free space in the backup folder's file system.");
    m.Value("backup_free_bytes",
            static_cast<double>(vfs.f_bavail) * static_cast<double>(vfs.f_frsize));
  }
  return m.out_;
}

Status PostWebhook(const std::string& url, const std::string& json) {
  if (Status loaded = libcurl::Load(); !loaded.ok()) return Error("webhook: " + loaded.message());
  CURL* curl = libcurl::easy_init();
  if (!curl) return Error("webhook: cannot initialise libcurl");
  struct curl_slist* headers = libcurl::slist_append(nullptr, "Content-Type: application/json");
  libcurl::easy_setopt(curl, CURLOPT_URL, url.c_str());
  libcurl::easy_setopt(curl, CURLOPT_POSTFIELDS, json.c_str());
  libcurl::easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(json.size()));
  libcurl::easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  libcurl::easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  libcurl::easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  libcurl::easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  libcurl::easy_setopt(
      curl, CURLOPT_WRITEFUNCTION, +[](char*, size_t s, size_t n, void*) { return s * n; });
  CURLcode rc = libcurl::easy_perform(curl);
  libcurl::slist_free_all(headers);
  libcurl::easy_cleanup(curl);
  if (rc != CURLE_OK) return Error(std::string("webhook: ") + libcurl::easy_strerror(rc));
  return Status::Ok();
}

void AfterJob(const Config& config, const std::string& backup_dir, const JobRecord& record,
              Env& env, TimePoint now) {
  Status recorded = RecordJob(env, backup_dir, record);
  if (!recorded.ok()) spdlog::warn("could not record the job's result: {}", recorded.message());
  if (!config.metrics_file.empty()) {
    auto state = LoadState(env, backup_dir);
    if (state.ok()) {
      std::string path = config.Resolve(config.metrics_file);
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
      Status s =
          WriteFileAtomically(env, path, RenderMetrics(*state, backup_dir, config, now), 0644);
      if (!s.ok()) spdlog::warn("could not write the metrics file: {}", s.message());
    }
  }
  if (record.ok) return;
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  std::map<std::string, std::string> env_vars = {{"LAKEVAULT_JOB", record.job},
                                                 {"LAKEVAULT_ERROR", record.error},
                                                 {"LAKEVAULT_TIME", record.time}};
  Status hooked = RunHooks("on_failure", config.hooks.on_failure, config.root, env_vars);
  if (!hooked.ok()) spdlog::warn("{}", hooked.message());
  if (!config.webhook_url.empty()) {
    nlohmann::json body = {{"job", record.job},   {"ok", false},  {"error", record.error},
                           {"time", record.time}, {"host", host}, {"tool", "lakevault"}};
    Status posted = PostWebhook(
        config.webhook_url, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    if (!posted.ok()) spdlog::warn("{}", posted.message());
  }
}

}  // namespace lakevault
