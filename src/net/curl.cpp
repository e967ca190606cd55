#include "net/curl.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string>
#include <type_traits>

namespace lakevault::libcurl {
namespace {

Api api;

Status DoLoad() {
  // The soname of libcurl 7.16 and later (Debian's libcurl4 package).
  void* lib = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = ::dlerror();
    return Error(
        std::string("libcurl is needed for remotes and webhooks and could not be loaded (") +
        (why ? why : "libcurl.so.4 not found") + "); install the libcurl4 package");
  }
  std::string missing;
  auto find = [&](auto& slot, const char* name) {
    slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(::dlsym(lib, name));
    if (slot == nullptr) missing += (missing.empty() ? "" : ", ") + std::string(name);
  };
  find(api.easy_init, "curl_easy_init");
  find(api.easy_cleanup, "curl_easy_cleanup");
  find(api.easy_reset, "curl_easy_reset");
  find(api.easy_perform, "curl_easy_perform");
  find(api.easy_strerror, "curl_easy_strerror");
  find(api.easy_setopt, "curl_easy_setopt");
  find(api.easy_getinfo, "curl_easy_getinfo");
  find(api.slist_append, "curl_slist_append");
  find(api.slist_free_all, "curl_slist_free_all");
  decltype(&::curl_global_init) global_init = nullptr;
  find(global_init, "curl_global_init");
  if (!missing.empty()) return Error("libcurl.so.4 lacks " + missing + "; it is too old");
  if (global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return Error("libcurl could not be initialised");
  return Status::Ok();
}

}  // namespace

Status Load() {
  static const Status loaded = DoLoad();
  return loaded;
}

const Api& Loaded() {
  // A caller that skipped Load is a bug: stop here rather than call through a null pointer.
  static const bool ok = Load().ok();
  if (!ok) std::abort();
  return api;
}

}  // namespace lakevault::libcurl
