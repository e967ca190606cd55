// A manifest's text with the entries of its file list cut out, found without parsing them: the
// catalogue reads every backup's header on every command, and at 300,000 files the list is 90 MB
// of a sidecar whose header is a few KB (docs/format.md, "The manifest").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/result.h"

namespace lakevault {

// Fed a manifest's text block by block, keeps all of it but what lies between the '[' and the
// ']' of the top-level "files" array, so "files": [...] becomes "files": []. The kept text is
// left for a JSON parser to check; the skipped bytes are only scanned for strings (with their
// escapes) and brackets, to find where the list ends. A list that does not end, or whose
// brackets do not balance, is an error. Keys are sorted in what lakevault writes, so the list
// sits between the header's "created" and "format": the header cannot be read by stopping early.
class ManifestHeaderScan {
 public:
  // Past this much kept text the header is not a header (no top-level "files" was found where
  // lakevault writes it, e.g. a key spelled with escapes): the caller reads the document whole.
  static constexpr size_t kMaxKeptBytes = 16u << 20;

  Status Feed(const char* data, size_t size);
  // At the end of the input: fails when it ended inside the list.
  Status Finish() const;
  // The text kept; complete once Finish succeeded.
  const std::string& kept() const { return kept_; }
  bool list_skipped() const { return phase_ != Phase::kBeforeList; }
  bool too_long() const { return kept_.size() > kMaxKeptBytes; }

 private:
  enum class Phase { kBeforeList, kInList, kAfterList };
  // Where the scan before the list stands with respect to a depth-1 key "files".
  enum class Key { kNone, kFilesString, kFilesColon };
  size_t ScanBeforeList(const char* data, size_t size);
  size_t SkipList(const char* data, size_t size);

  std::string kept_;
  Phase phase_ = Phase::kBeforeList;
  // Before the list: the JSON structure around the bytes kept.
  bool in_string_ = false;
  bool escaped_ = false;  // the previous byte was a string's backslash
  int64_t depth_ = 0;
  std::string string_;  // the current depth-1 string's raw bytes, up to a few
  Key key_ = Key::kNone;
  // In the list: brackets and braces open, the list's own '[' included.
  int64_t list_depth_ = 0;
  bool unbalanced_ = false;
};

}  // namespace lakevault
