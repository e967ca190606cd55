#include "core/folder.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <map>

#include "support/test_util.h"

namespace lakevault {
namespace {

TEST(FolderTest, ListsEveryEntryButDotsWithItsTypeAndTheFolderForAtCalls) {
  testing::TempDir dir;
  testing::WriteFile(dir.path() / "a.json", "12345");
  std::filesystem::create_directory(dir.path() / "sub");
  std::filesystem::create_symlink("a.json", dir.path() / "link");
  std::map<std::string, unsigned char> seen;
  std::map<std::string, off_t> sizes;
  int err = ForEachFolderEntry(dir.str(), [&](const char* name, unsigned char type, int fd) {
    seen[name] = type;
    struct stat st;
    ASSERT_EQ(::fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW), 0) << name;
    sizes[name] = st.st_size;
  });
  EXPECT_EQ(err, 0);
  ASSERT_EQ(seen.size(), 3u);
  // DT_UNKNOWN is allowed by POSIX; the file systems tests run on give types.
  for (const auto& [name, type] : seen) {
    unsigned char want = name == "sub" ? DT_DIR : name == "link" ? DT_LNK : DT_REG;
    EXPECT_TRUE(type == want || type == DT_UNKNOWN) << name;
  }
  EXPECT_EQ(sizes["a.json"], 5);
  EXPECT_EQ(sizes["link"], 6);  // the link itself: "a.json"
}

TEST(FolderTest, AMissingFolderIsItsErrno) {
  testing::TempDir dir;
  int calls = 0;
  EXPECT_EQ(ForEachFolderEntry((dir.path() / "gone").string(),
                               [&](const char*, unsigned char, int) { ++calls; }),
            ENOENT);
  testing::WriteFile(dir.path() / "file", "x");
  EXPECT_EQ(ForEachFolderEntry((dir.path() / "file").string(),
                               [&](const char*, unsigned char, int) { ++calls; }),
            ENOTDIR);
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace lakevault
