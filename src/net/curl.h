#pragma once

// libcurl, loaded when a remote or a webhook first needs it rather than when lakevault starts:
// linked directly, it brought 25 shared libraries (TLS, Kerberos, LDAP, IDN, SSH...) into
// every process, about 12 ms of dynamic loading and 3 MiB of resident pages that a backup to a
// local folder, a check or a status never uses. The calls keep libcurl's names and types.

#include <curl/curl.h>

#include <type_traits>

#include "core/result.h"

namespace lakevault::libcurl {

// Loads libcurl.so.4 and initialises it, once; later calls return the first outcome. Every
// function below needs a successful Load first.
Status Load();

struct Api {
  decltype(&::curl_easy_init) easy_init;
  decltype(&::curl_easy_cleanup) easy_cleanup;
  decltype(&::curl_easy_reset) easy_reset;
  decltype(&::curl_easy_perform) easy_perform;
  decltype(&::curl_easy_strerror) easy_strerror;
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  decltype(&::curl_slist_append) slist_append;
  decltype(&::curl_slist_free_all) slist_free_all;
};
const Api& Loaded();

inline CURL* easy_init() { return Loaded().easy_init(); }
inline void easy_cleanup(CURL* c) { Loaded().easy_cleanup(c); }
inline void easy_reset(CURL* c) { Loaded().easy_reset(c); }
inline CURLcode easy_perform(CURL* c) { return Loaded().easy_perform(c); }
inline const char* easy_strerror(CURLcode rc) { return Loaded().easy_strerror(rc); }
// The value goes through the variadic call with its own type, as with curl_easy_setopt.
template <class T>
CURLcode easy_setopt(CURL* c, CURLoption option, T value) {
  // libcurl reads a long, a curl_off_t or a pointer: an int would be read with garbage above it.
  static_assert(std::is_pointer_v<T> || std::is_same_v<T, long> || std::is_same_v<T, curl_off_t>,
                "pass options as long (1L), curl_off_t or a pointer");
  return Loaded().easy_setopt(c, option, value);
}
template <class T>
CURLcode easy_getinfo(CURL* c, CURLINFO info, T* out) {
  return Loaded().easy_getinfo(c, info, out);
}
inline curl_slist* slist_append(curl_slist* list, const char* text) {
  return Loaded().slist_append(list, text);
}
inline void slist_free_all(curl_slist* list) { Loaded().slist_free_all(list); }

}  // namespace lakevault::libcurl
