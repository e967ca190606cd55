#include "core/folder.h"

#include <dirent.h>

#include <cerrno>
#include <memory>
#include <string_view>

namespace lakevault {

int ForEachFolderEntry(
    const std::string& dir,
    const std::function<void(const char* name, unsigned char type, int dir_fd)>& visit) {
  std::unique_ptr<DIR, int (*)(DIR*)> listing(::opendir(dir.c_str()), ::closedir);
  if (!listing) return errno;
  while (true) {
    errno = 0;
    const struct dirent* entry = ::readdir(listing.get());
    if (entry == nullptr) return errno;
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    visit(entry->d_name, entry->d_type, ::dirfd(listing.get()));
  }
}

}  // namespace lakevault
