#include "manifest/header_scan.h"

#include <cstring>

namespace lakevault {

// Byte by byte, but over a few KB: the header before the list. A depth-1 string followed by ':'
// is a key; the list is the '[' that follows the key "files" as lakevault writes it (unescaped).
size_t ManifestHeaderScan::ScanBeforeList(const char* data, size_t size) {
  for (size_t i = 0; i < size; ++i) {
    const char c = data[i];
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
        key_ = depth_ == 1 && string_ == "files" ? Key::kFilesString : Key::kNone;
        continue;
      }
      if (string_.size() < 8) string_ += c;
      continue;
    }
    switch (c) {
      case ' ':
      case '\t':
      case '\n':
      case '\r':
        break;
      case '"':
        in_string_ = true;
        string_.clear();
        key_ = Key::kNone;
        break;
      case ':':
        key_ = key_ == Key::kFilesString ? Key::kFilesColon : Key::kNone;
        break;
      case '[':
        if (depth_ == 1 && key_ == Key::kFilesColon) {
          kept_.append(data, i + 1);
          phase_ = Phase::kInList;
          list_depth_ = 1;
          return i + 1;
        }
        [[fallthrough]];
      case '{':
        depth_++;
        key_ = Key::kNone;
        break;
      case ']':
      case '}':
        depth_--;
        key_ = Key::kNone;
        break;
      default:
        key_ = Key::kNone;
    }
  }
  kept_.append(data, size);
  return size;
}

// The hot loop: 90 MB at 300,000 files. Inside a string only '"' and '\\' matter, and memchr
// finds them many bytes at a time (paths and digests are most of the text); between strings,
// only brackets and braces. Measured on the 91 MB sidecar of a 300,000-file backup, in the page
// cache, read in 1 MiB blocks: reading alone 0.01-0.02 s, reading and this scan 0.045-0.065 s,
// reading and a byte-by-byte state machine 0.09-0.11 s (nlohmann's SAX parse: about 0.6 s).
size_t ManifestHeaderScan::SkipList(const char* data, size_t size) {
  const char* p = data;
  const char* const end = data + size;
  while (p < end) {
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
        ++p;
        continue;
      }
      const char* quote = static_cast<const char*>(std::memchr(p, '"', end - p));
      const char* stop = quote ? quote : end;
      const char* backslash = static_cast<const char*>(std::memchr(p, '\\', stop - p));
      if (backslash) {
        p = backslash + 1;
        escaped_ = true;
      } else if (quote) {
        p = quote + 1;
        in_string_ = false;
      } else {
        p = end;
      }
      continue;
    }
    for (; p < end; ++p) {
      const char c = *p;
      if (c == '"') {
        in_string_ = true;
        ++p;
        break;
      }
      if (c == '[' || c == '{') {
        ++list_depth_;
      } else if ((c == ']' || c == '}') && --list_depth_ == 0) {
        // The ']' is kept: the text after the list starts with it.
        if (c != ']') unbalanced_ = true;
        phase_ = Phase::kAfterList;
        return static_cast<size_t>(p - data);
      }
    }
  }
  return size;
}

Status ManifestHeaderScan::Feed(const char* data, size_t size) {
  while (size > 0) {
    size_t used = size;
    switch (phase_) {
      case Phase::kBeforeList:
        used = ScanBeforeList(data, size);
        break;
      case Phase::kInList:
        used = SkipList(data, size);
        if (unbalanced_) return Error("malformed manifest: the file list's brackets do not match");
        break;
      case Phase::kAfterList:
        kept_.append(data, size);
        break;
    }
    data += used;
    size -= used;
  }
  return Status::Ok();
}

Status ManifestHeaderScan::Finish() const {
  if (phase_ == Phase::kInList) return Error("malformed manifest: the file list is cut short");
  return Status::Ok();
}

}  // namespace lakevault
