#include "report/report.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/text.h"
#include "core/time.h"

namespace lakevault {

namespace {

std::string Escape(const std::string& text) { return EscapeMarkup(text); }

std::string Mib(int64_t bytes) {
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / 1048576.0);
}

// A bar chart as inline SVG: one bar per backup, labelled with its value.
std::string BarChart(const std::string& id, const std::string& title,
                     const std::vector<std::pair<std::string, double>>& points,
                     const std::string& unit, const std::string& color) {
  const int width = 760, height = 200, left = 50, bottom = 40, top = 20;
  double max_value = 0;
  for (const auto& p : points) max_value = std::max(max_value, p.second);
  if (max_value <= 0) max_value = 1;
  std::string svg = fmt::format(
      "<figure><figcaption>{}</figcaption><svg id=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" "
      "width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"{}\">\n",
      Escape(title), id, width, height, Escape(title));
  svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>\n", left,
                     height - bottom, width - 10, height - bottom);
  svg += fmt::format("<text x=\"4\" y=\"{}\" font-size=\"11\">{:.1f} {}</text>\n", top + 4,
                     max_value, unit);
  const size_t n = points.size();
  const double slot = n ? static_cast<double>(width - left - 10) / static_cast<double>(n) : 0;
  for (size_t i = 0; i < n; ++i) {
    double h = (points[i].second / max_value) * (height - bottom - top);
    double x = left + slot * static_cast<double>(i) + slot * 0.1;
    svg += fmt::format(
        "<rect class=\"bar\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
        "fill=\"{}\" data-value=\"{:.3f}\"><title>{}: {:.2f} {}</title></rect>\n",
        x, height - bottom - h, slot * 0.8, h, color, points[i].second, Escape(points[i].first),
        points[i].second, unit);
    if (n <= 16 || i % (n / 8 + 1) == 0)
      svg += fmt::format(
          "<text x=\"{:.1f}\" y=\"{}\" font-size=\"9\" transform=\"rotate(30 "
          "{:.1f},{})\">{}</text>\n",
          x, height - bottom + 12, x, height - bottom + 12, Escape(points[i].first.substr(0, 10)));
  }
  svg += "</svg></figure>\n";
  return svg;
}

}  // namespace

RpoCompliance ComputeRpoCompliance(const std::vector<ReportBackup>& backups, const std::string& now,
                                   int64_t rpo_seconds) {
  RpoCompliance c;
  std::vector<TimePoint> times;
  for (const auto& b : backups)
    if (auto t = ParseTime(b.created); t.ok()) times.push_back(*t);
  if (auto t = ParseTime(now); t.ok()) times.push_back(*t);
  std::sort(times.begin(), times.end());
  for (size_t i = 1; i < times.size(); ++i) {
    double gap = std::chrono::duration<double>(times[i] - times[i - 1]).count();
    c.intervals++;
    if (gap <= static_cast<double>(rpo_seconds)) c.within++;
    c.worst_gap_seconds = std::max(c.worst_gap_seconds, gap);
  }
  return c;
}

std::string RenderHtmlReport(const ReportData& d) {
  std::string html = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n"
      "<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}"
      "td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child,th:first-child"
      "{{text-align:left}}.ok{{color:#060}}.bad{{color:#b00;font-weight:bold}}figure{{margin:1em "
      "0}}"
      "</style></head><body>\n<h1>{}</h1>\n<p>Lake <code>{}</code>, generated {}.</p>\n",
      Escape(d.title), Escape(d.title), Escape(d.lake), Escape(d.generated));

  // Summary.
  std::string last = d.backups.empty() ? "none" : d.backups.back().id;
  double age = -1;
  if (!d.backups.empty()) {
    auto created = ParseTime(d.backups.back().created);
    auto now = ParseTime(d.now);
    if (created.ok() && now.ok()) age = std::chrono::duration<double>(*now - *created).count();
  }
  bool rpo_ok = age >= 0 && age <= static_cast<double>(d.rpo_seconds);
  RpoCompliance rpo = ComputeRpoCompliance(d.backups, d.now, d.rpo_seconds);
  html += "<h2>Summary</h2>\n<table id=\"summary\">\n";
  html +=
      fmt::format("<tr><th>backups</th><td id=\"backup-count\">{}</td></tr>\n", d.backups.size());
  html += fmt::format("<tr><th>newest backup</th><td id=\"newest\">{}</td></tr>\n", Escape(last));
  html += fmt::format(
      "<tr><th>RPO (age of newest backup)</th><td id=\"rpo\" class=\"{}\">{} (objective "
      "{})</td></tr>\n",
      rpo_ok ? "ok" : "bad", age >= 0 ? FormatDuration(age) : "no backup",
      FormatDuration(static_cast<double>(d.rpo_seconds)));
  html += fmt::format(
      "<tr><th>RPO compliance</th><td id=\"rpo-compliance\">{} of {} intervals within the "
      "objective; "
      "worst gap {}</td></tr>\n",
      rpo.within, rpo.intervals, FormatDuration(rpo.worst_gap_seconds));
  if (!d.drills.empty()) {
    const auto& drill = d.drills.back();
    bool rto_ok = drill.ok && drill.rto_seconds <= static_cast<double>(d.rto_seconds);
    html += fmt::format(
        "<tr><th>last drill RTO</th><td id=\"rto\" class=\"{}\">{} (objective {})</td></tr>\n",
        rto_ok ? "ok" : "bad", FormatDuration(drill.rto_seconds),
        FormatDuration(static_cast<double>(d.rto_seconds)));
  } else {
    html += "<tr><th>last drill RTO</th><td id=\"rto\" class=\"bad\">no drill yet</td></tr>\n";
  }
  html += "</table>\n";

  // History charts.
  std::vector<std::pair<std::string, double>> sizes, durations;
  for (const auto& b : d.backups) {
    sizes.emplace_back(b.created, static_cast<double>(b.archive_bytes) / 1048576.0);
    durations.emplace_back(b.created, b.duration_seconds);
  }
  html += "<h2>Backup history</h2>\n";
  html += BarChart("chart-sizes", "Archive size per backup", sizes, "MiB", "#4a7fb5");
  html += BarChart("chart-durations", "Backup duration", durations, "s", "#c98a2b");
  html +=
      "<table id=\"backups\"><tr><th>id</th><th>kind</th><th>created (UTC)</th><th>archive</th>"
      "<th>lake</th><th>duration</th><th>verified</th></tr>\n";
  for (auto it = d.backups.rbegin(); it != d.backups.rend(); ++it) {
    std::string verified = !it->verified ? "never" : *it->verified ? "ok" : "FAILED";
    html += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2f} s</td>"
        "<td class=\"{}\">{}</td></tr>\n",
        Escape(it->id), Escape(it->kind), Escape(it->created), Mib(it->archive_bytes),
        Mib(it->lake_bytes), it->duration_seconds, it->verified && !*it->verified ? "bad" : "ok",
        verified);
  }
  html += "</table>\n";

  // Drills.
  html += "<h2>Recovery drills</h2>\n";
  if (d.drills.empty()) {
    html += "<p>No drill has run yet: <code>lakevault drill</code>.</p>\n";
  } else {
    std::vector<std::pair<std::string, double>> rtos;
    for (const auto& drill : d.drills) rtos.emplace_back(drill.time, drill.rto_seconds);
    html += BarChart("chart-rto", "Measured RTO per drill", rtos, "s", "#6a9a4a");
    html +=
        "<table id=\"drills\"><tr><th>time</th><th>backup</th><th>RTO</th><th>result</th></tr>\n";
    for (auto it = d.drills.rbegin(); it != d.drills.rend(); ++it) {
      bool ok = it->ok && it->rto_seconds <= static_cast<double>(d.rto_seconds);
      html +=
          fmt::format("<tr><td>{}</td><td>{}</td><td>{:.2f} s</td><td class=\"{}\">{}</td></tr>\n",
                      Escape(it->time), Escape(it->backup_id), it->rto_seconds, ok ? "ok" : "bad",
                      ok ? "passed" : "FAILED");
    }
    html += "</table>\n";
  }

  // Tables.
  html += "<h2>Tables</h2>\n";
  if (!d.tables_checked) {
    html += "<p>Table health was not checked.</p>\n";
  } else {
    html +=
        "<table id=\"tables\"><tr><th>table</th><th>version</th><th>rows</th><th>live files</th>"
        "<th>size</th><th>health</th></tr>\n";
    for (const auto& t : d.tables)
      html += fmt::format(
          "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td "
          "class=\"{}\">{}</td></tr>\n",
          Escape(t.name), t.version, t.rows ? std::to_string(*t.rows) : "unknown", t.live_files,
          Mib(t.bytes), t.healthy ? "ok" : "bad",
          t.healthy ? "healthy" : "UNHEALTHY: " + Escape(t.problem));
    html += "</table>\n";
  }
  html += "</body></html>\n";
  return html;
}

}  // namespace lakevault
