#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/time.h"

namespace fs = std::filesystem;

namespace lakevault {

Result<Compression> ParseCompression(const std::string& text) {
  if (text == "gzip" || text == "gz" || text == "true") return Compression::kGzip;
  if (text == "zstd" || text == "zst") return Compression::kZstd;
  if (text == "none" || text == "false") return Compression::kNone;
  return Error("unknown compression '" + text + "' (use gzip, zstd or none)");
}

std::string CompressionName(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
    case Compression::kNone:
      return "none";
  }
  return "?";
}

std::string ArchiveExtension(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return ".tar.gz";
    case Compression::kZstd:
      return ".tar.zst";
    case Compression::kNone:
      return ".tar";
  }
  return ".tar";
}

std::string Config::Resolve(const std::string& relative) const {
  if (relative.empty()) return root;
  fs::path p(relative);
  fs::path full = p.is_absolute() ? p.lexically_normal() : (fs::path(root) / p).lexically_normal();
  std::string text = full.string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}
std::string Config::LakeDir() const { return Resolve(lake); }
std::string Config::BackupDir() const { return Resolve(backup_path); }

std::optional<std::string> ProcessEnv(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

namespace {

// yaml-cpp throws; this module turns every throw into an Error naming the key.
class Reader {
 public:
  Reader(std::string source) : source_(std::move(source)) {}

  Status CheckKeys(const YAML::Node& map, const std::string& where,
                   const std::set<std::string>& allowed) {
    if (!map.IsMap()) return Error(source_ + ": '" + where + "' must be a mapping");
    for (const auto& item : map) {
      std::string key = item.first.as<std::string>();
      if (!allowed.count(key)) {
        std::string known;
        for (const auto& k : allowed) known += (known.empty() ? "" : ", ") + k;
        return Error(source_ + ": unknown key '" + (where.empty() ? "" : where + ".") + key +
                     "' (known: " + known + ")");
      }
    }
    return Status::Ok();
  }

  template <typename T>
  Status Get(const YAML::Node& node, const std::string& name, T& out) {
    if (!node || node.IsNull()) return Status::Ok();
    try {
      out = node.as<T>();
    } catch (const YAML::Exception&) {
      return Error(source_ + ": '" + name + "' has the wrong type");
    }
    return Status::Ok();
  }

  Status GetList(const YAML::Node& node, const std::string& name, std::vector<std::string>& out) {
    if (!node || node.IsNull()) return Status::Ok();
    if (node.IsScalar()) {
      out = {node.as<std::string>()};
      return Status::Ok();
    }
    if (!node.IsSequence()) return Error(source_ + ": '" + name + "' must be a list");
    out.clear();
    for (const auto& item : node) {
      if (!item.IsScalar()) return Error(source_ + ": '" + name + "' must be a list of strings");
      out.push_back(item.as<std::string>());
    }
    return Status::Ok();
  }

  Status GetDuration(const YAML::Node& node, const std::string& name, int64_t& out) {
    if (!node || node.IsNull()) return Status::Ok();
    auto seconds = ParseDurationSeconds(node.as<std::string>());
    if (!seconds) return Error(source_ + ": '" + name + "': " + seconds.message());
    out = *seconds;
    return Status::Ok();
  }

  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

Status ParseInto(const YAML::Node& doc, Config& config, Reader& r) {
  if (!doc || doc.IsNull()) return Status::Ok();  // an empty file: all defaults
  LV_RETURN_IF_ERROR(
      r.CheckKeys(doc, "",
                  {"lake", "tables", "files", "logs", "backup_path", "compression",
                   "compression_level", "retention", "full_every_days", "remotes", "encryption",
                   "hooks", "objectives", "log_file", "metrics_file", "webhook_url"}));
  LV_RETURN_IF_ERROR(r.Get(doc["lake"], "lake", config.lake));
  LV_RETURN_IF_ERROR(r.GetList(doc["tables"], "tables", config.tables));
  if (doc["files"]) {
    LV_RETURN_IF_ERROR(r.GetList(doc["files"], "files", config.files));
    config.files_explicit = true;
  }
  if (auto logs = doc["logs"]; logs && !logs.IsNull()) {
    LV_RETURN_IF_ERROR(r.CheckKeys(logs, "logs", {"include", "path"}));
    LV_RETURN_IF_ERROR(r.Get(logs["include"], "logs.include", config.logs_include));
    LV_RETURN_IF_ERROR(r.Get(logs["path"], "logs.path", config.logs_path));
  }
  LV_RETURN_IF_ERROR(r.Get(doc["backup_path"], "backup_path", config.backup_path));
  if (auto c = doc["compression"]; c && !c.IsNull()) {
    auto parsed = ParseCompression(c.as<std::string>());
    if (!parsed) return Error(r.source() + ": compression: " + parsed.message());
    config.compression = *parsed;
  }
  LV_RETURN_IF_ERROR(
      r.Get(doc["compression_level"], "compression_level", config.compression_level));
  if (config.compression_level < 0 || config.compression_level > 19)
    return Error(r.source() + ": compression_level: " + std::to_string(config.compression_level) +
                 " is out of range (1-9 for gzip, 1-19 for zstd, 0 for the default)");
  if (auto ret = doc["retention"]; ret && !ret.IsNull()) {
    LV_RETURN_IF_ERROR(r.CheckKeys(
        ret, "retention", {"days", "keep_last", "keep_daily", "keep_weekly", "keep_monthly"}));
    auto& p = config.retention;
    LV_RETURN_IF_ERROR(r.Get(ret["days"], "retention.days", p.days));
    LV_RETURN_IF_ERROR(r.Get(ret["keep_last"], "retention.keep_last", p.keep_last));
    LV_RETURN_IF_ERROR(r.Get(ret["keep_daily"], "retention.keep_daily", p.keep_daily));
    LV_RETURN_IF_ERROR(r.Get(ret["keep_weekly"], "retention.keep_weekly", p.keep_weekly));
    LV_RETURN_IF_ERROR(r.Get(ret["keep_monthly"], "retention.keep_monthly", p.keep_monthly));
    for (int64_t v : {p.days, p.keep_last, p.keep_daily, p.keep_weekly, p.keep_monthly})
      if (v < 0) return Error(r.source() + ": retention values must not be negative");
  }
  LV_RETURN_IF_ERROR(r.Get(doc["full_every_days"], "full_every_days", config.full_every_days));
  if (auto remotes = doc["remotes"]; remotes && !remotes.IsNull()) {
    if (!remotes.IsMap()) return Error(r.source() + ": 'remotes' must be a mapping");
    for (const auto& item : remotes) {
      Remote remote;
      remote.name = item.first.as<std::string>();
      if (!item.second.IsMap())
        return Error(r.source() + ": remote '" + remote.name + "' must be a mapping");
      for (const auto& kv : item.second) {
        if (!kv.second.IsScalar())
          return Error(r.source() + ": remotes." + remote.name + "." + kv.first.as<std::string>() +
                       " must be a single value");
        remote.settings[kv.first.as<std::string>()] = kv.second.as<std::string>();
      }
      remote.type = remote.settings["type"];
      if (remote.type != "s3" && remote.type != "rsync" && remote.type != "local")
        return Error(r.source() + ": remote '" + remote.name + "' has type '" + remote.type +
                     "' (use s3, rsync or local)");
      config.remotes[remote.name] = remote;
    }
  }
  if (auto enc = doc["encryption"]; enc && !enc.IsNull()) {
    LV_RETURN_IF_ERROR(r.CheckKeys(enc, "encryption", {"key_file"}));
    LV_RETURN_IF_ERROR(r.Get(enc["key_file"], "encryption.key_file", config.encryption_key_file));
  }
  if (auto hooks = doc["hooks"]; hooks && !hooks.IsNull()) {
    LV_RETURN_IF_ERROR(
        r.CheckKeys(hooks, "hooks", {"stop", "start", "reconcile", "verify", "on_failure"}));
    LV_RETURN_IF_ERROR(r.GetList(hooks["stop"], "hooks.stop", config.hooks.stop));
    LV_RETURN_IF_ERROR(r.GetList(hooks["start"], "hooks.start", config.hooks.start));
    LV_RETURN_IF_ERROR(r.GetList(hooks["reconcile"], "hooks.reconcile", config.hooks.reconcile));
    LV_RETURN_IF_ERROR(r.GetList(hooks["verify"], "hooks.verify", config.hooks.verify));
    LV_RETURN_IF_ERROR(r.GetList(hooks["on_failure"], "hooks.on_failure", config.hooks.on_failure));
  }
  if (auto obj = doc["objectives"]; obj && !obj.IsNull()) {
    LV_RETURN_IF_ERROR(r.CheckKeys(obj, "objectives", {"rto", "rpo"}));
    LV_RETURN_IF_ERROR(r.GetDuration(obj["rto"], "objectives.rto", config.rto_seconds));
    LV_RETURN_IF_ERROR(r.GetDuration(obj["rpo"], "objectives.rpo", config.rpo_seconds));
  }
  LV_RETURN_IF_ERROR(r.Get(doc["log_file"], "log_file", config.log_file));
  LV_RETURN_IF_ERROR(r.Get(doc["metrics_file"], "metrics_file", config.metrics_file));
  LV_RETURN_IF_ERROR(r.Get(doc["webhook_url"], "webhook_url", config.webhook_url));
  return Status::Ok();
}

bool Truthy(const std::string& v) { return v == "true" || v == "1" || v == "yes" || v == "on"; }

}  // namespace

Result<Config> ParseConfig(const std::string& yaml_text, const std::string& root,
                           const std::string& source_name) {
  Config config;
  config.root = root;
  config.config_file = source_name;
  Reader reader(source_name);
  try {
    YAML::Node doc = YAML::Load(yaml_text);
    if (doc && !doc.IsNull() && !doc.IsMap())
      return Error(source_name + ": the top level must be a mapping of keys");
    LV_RETURN_IF_ERROR(ParseInto(doc, config, reader));
  } catch (const YAML::ParserException& e) {
    return Error(source_name + ": malformed YAML at line " + std::to_string(e.mark.line + 1) +
                 ", column " + std::to_string(e.mark.column + 1) + ": " + e.msg);
  } catch (const YAML::Exception& e) {
    return Error(source_name + ": " + e.msg);
  }
  return config;
}

Status ApplyEnvironmentOverrides(Config& config, EnvLookup env) {
  if (auto v = env("BACKUP_PATH"); v && !v->empty()) config.backup_path = *v;
  if (auto v = env("RETENTION_DAYS"); v && !v->empty()) {
    try {
      size_t pos = 0;
      config.retention.days = std::stoll(*v, &pos);
      if (pos != v->size() || config.retention.days < 0) throw std::invalid_argument(*v);
    } catch (...) {
      return Error("RETENTION_DAYS='" + *v + "' is not a number of days");
    }
  }
  if (auto v = env("COMPRESS"); v && !v->empty()) {
    // The guide's COMPRESS=true|false; a codec name is accepted too.
    if (*v == "true" || *v == "1") {
      config.compression = Compression::kGzip;
    } else {
      auto c = ParseCompression(*v);
      if (!c) return Error("COMPRESS: " + c.message());
      config.compression = *c;
    }
  }
  if (auto v = env("UPLOAD_S3"); v && !v->empty()) config.upload_s3 = Truthy(*v);
  if (auto v = env("UPLOAD_RSYNC"); v && !v->empty()) config.upload_rsync = Truthy(*v);
  if (auto v = env("S3_BUCKET"); v && !v->empty()) {
    Remote* s3 = nullptr;
    for (auto& [name, remote] : config.remotes)
      if (remote.type == "s3" && s3 == nullptr) s3 = &remote;
    if (s3 == nullptr) {
      Remote r{"s3", "s3", {{"type", "s3"}}};
      s3 = &(config.remotes["s3"] = r);
    }
    s3->settings["url"] = *v;
  }
  if (auto v = env("RSYNC_DEST"); v && !v->empty()) {
    Remote* rs = nullptr;
    for (auto& [name, remote] : config.remotes)
      if (remote.type == "rsync" && rs == nullptr) rs = &remote;
    if (rs == nullptr) {
      Remote r{"rsync", "rsync", {{"type", "rsync"}}};
      rs = &(config.remotes["rsync"] = r);
    }
    rs->settings["dest"] = *v;
  }
  return Status::Ok();
}

Result<Config> LoadConfig(const std::string& working_dir, const std::string& explicit_path,
                          EnvLookup env) {
  std::string path = explicit_path;
  if (path.empty()) {
    fs::path candidate = fs::path(working_dir) / "lakevault.yaml";
    if (fs::exists(candidate)) path = candidate.string();
  } else if (fs::path(path).is_relative()) {
    path = (fs::path(working_dir) / path).lexically_normal().string();
  }
  Config config;
  if (path.empty()) {
    config.root = fs::path(working_dir).lexically_normal().string();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Error("cannot read config file " + path + ": " + std::strerror(errno));
    std::stringstream text;
    text << in.rdbuf();
    std::string root = fs::absolute(fs::path(path)).parent_path().lexically_normal().string();
    LV_ASSIGN_OR_RETURN(config, ParseConfig(text.str(), root, path));
  }
  LV_RETURN_IF_ERROR(ApplyEnvironmentOverrides(config, env));
  return config;
}

}  // namespace lakevault
