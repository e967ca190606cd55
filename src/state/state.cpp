#include "state/state.h"

#include <filesystem>

namespace lakevault {

namespace {
nlohmann::json RecordToJson(const JobRecord& r) {
  return {{"job", r.job},         {"ok", r.ok},       {"time", r.time},
          {"seconds", r.seconds}, {"error", r.error}, {"details", r.details}};
}
JobRecord RecordFromJson(const nlohmann::json& j) {
  JobRecord r;
  r.job = j.value("job", "");
  r.ok = j.value("ok", false);
  r.time = j.value("time", "");
  r.seconds = j.value("seconds", 0.0);
  r.error = j.value("error", "");
  if (j.contains("details") && j["details"].is_object()) r.details = j["details"];
  return r;
}
}  // namespace

std::string StatePath(const std::string& backup_dir) {
  return (std::filesystem::path(backup_dir) / ".lakevault-state.json").string();
}

Result<State> LoadState(Env& env, const std::string& backup_dir) {
  State state;
  std::error_code ec;
  if (!std::filesystem::exists(StatePath(backup_dir), ec)) return state;
  LV_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(env, StatePath(backup_dir)));
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("jobs") || !doc["jobs"].is_object())
    return Error(StatePath(backup_dir) + " is corrupt (delete it; it only holds job history)");
  for (auto& [name, j] : doc["jobs"].items()) {
    JobState js;
    if (j.contains("last_success") && j["last_success"].is_object())
      js.last_success = RecordFromJson(j["last_success"]);
    if (j.contains("last_failure") && j["last_failure"].is_object())
      js.last_failure = RecordFromJson(j["last_failure"]);
    js.failures_since_success = j.value("failures_since_success", int64_t{0});
    state.jobs[name] = js;
  }
  return state;
}

Status RecordJob(Env& env, const std::string& backup_dir, const JobRecord& record) {
  // A job that failed before the backup folder existed leaves no folder behind for its record.
  std::error_code ec;
  if (!std::filesystem::is_directory(backup_dir, ec)) return Status::Ok();
  auto loaded = LoadState(env, backup_dir);
  State state = loaded.ok() ? std::move(loaded).value() : State{};
  JobState& js = state.jobs[record.job];
  if (record.ok) {
    js.last_success = record;
    js.failures_since_success = 0;
  } else {
    js.last_failure = record;
    js.failures_since_success++;
  }
  nlohmann::json doc;
  doc["jobs"] = nlohmann::json::object();
  for (const auto& [name, s] : state.jobs) {
    nlohmann::json j;
    j["last_success"] = s.last_success ? RecordToJson(*s.last_success) : nlohmann::json();
    j["last_failure"] = s.last_failure ? RecordToJson(*s.last_failure) : nlohmann::json();
    j["failures_since_success"] = s.failures_since_success;
    doc["jobs"][name] = j;
  }
  // Error texts can quote damaged bytes (a corrupt sidecar's file name): replace what is not
  // UTF-8 rather than throw, so recording a failure cannot turn it into a crash.
  return WriteFileAtomically(
      env, StatePath(backup_dir),
      doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", 0600);
}

}  // namespace lakevault
