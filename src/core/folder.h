// Listing a folder with readdir itself.
#pragma once

#include <functional>
#include <string>

namespace lakevault {

// Calls `visit` with each entry of folder `dir` but "." and "..": its name, its type as the
// listing gives it (a dirent DT_* value, DT_UNKNOWN where the file system gives none) and the
// folder's descriptor, for fstatat and the like. readdir itself: std::filesystem's iterator
// costs a path, a shared state and an allocation or two per entry. Returns 0, or the errno of a
// failed opendir or readdir.
int ForEachFolderEntry(
    const std::string& dir,
    const std::function<void(const char* name, unsigned char type, int dir_fd)>& visit);

}  // namespace lakevault
