// Small text helpers shared by modules that emit markup (the HTML report, S3's XML bodies).
#pragma once

#include <string>

namespace lakevault {

// Escapes &, <, > and " for XML and HTML text and attribute values.
inline std::string EscapeMarkup(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace lakevault
