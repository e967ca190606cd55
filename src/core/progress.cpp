#include "core/progress.h"

#include <fmt/format.h>

#include <cstdio>

namespace lakevault {

namespace {
std::string Bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", b, units[u]);
}
}  // namespace

ProgressBar::ProgressBar(std::string label, int64_t total_bytes, bool enabled)
    : label_(std::move(label)),
      total_(total_bytes),
      enabled_(enabled),
      start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() { Done(); }

void ProgressBar::Advance(int64_t bytes) {
  done_ += bytes;
  if (enabled_) Draw(false);
}

void ProgressBar::Draw(bool force) {
  auto now = std::chrono::steady_clock::now();
  if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0;
  double fraction = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1;
  if (fraction > 1) fraction = 1;
  const int width = 24;
  int filled = static_cast<int>(fraction * width);
  std::string bar = std::string(static_cast<size_t>(filled), '#') +
                    std::string(static_cast<size_t>(width - filled), '.');
  std::string eta = rate > 0 && total_ > done_
                        ? fmt::format("ETA {:.0f}s", static_cast<double>(total_ - done_) / rate)
                        : "";
  std::string line = fmt::format("\r{} [{}] {:3.0f}% {} / {} {}/s {}", label_, bar, fraction * 100,
                                 Bytes(static_cast<double>(done_)),
                                 Bytes(static_cast<double>(total_)), Bytes(rate), eta);
  std::fputs(line.c_str(), stderr);
  std::fputs("\x1b[K", stderr);  // clear what a longer previous line left
  std::fflush(stderr);
}

void ProgressBar::Done() {
  if (!enabled_ || !drawn_) return;
  std::fputs("\r\x1b[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
  enabled_ = false;
}

}  // namespace lakevault
