#include "hooks/hooks.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

extern char** environ;

namespace lakevault {

Status RunHooks(const std::string& stage, const std::vector<std::string>& commands,
                const std::string& cwd, const std::map<std::string, std::string>& env) {
  for (const auto& command : commands) {
    pid_t pid = ::fork();
    if (pid < 0)
      return Error(stage + " hook: cannot start '" + command + "': " + std::strerror(errno));
    if (pid == 0) {
      ::dup2(2, 1);
      if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
      ::setenv("LAKEVAULT_HOOK", stage.c_str(), 1);
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) return Error(stage + " hook '" + command + "': " + std::strerror(errno));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    std::string how = WIFEXITED(status)
                          ? "exited with status " + std::to_string(WEXITSTATUS(status))
                          : "was killed by signal " + std::to_string(WTERMSIG(status));
    return Error(stage + " hook '" + command + "' " + how);
  }
  return Status::Ok();
}

}  // namespace lakevault
