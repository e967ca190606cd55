// A progress bar on stderr with bytes, rate and ETA: drawn only on a terminal (or when forced),
// at most ten times a second, so it costs nothing on the hot path and nothing in a journal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace lakevault {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total_bytes, bool enabled);
  ~ProgressBar();
  void Advance(int64_t bytes);
  // Clears the bar line.
  void Done();

 private:
  void Draw(bool force);
  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace lakevault
