// A forked child that reports in lines on a pipe, watched by the parent: the
// explore rounds' sandbox (its own process group, killed as a whole; it dies
// with the parent). A line that does not come within its deadline is a hang.
#pragma once

#include <functional>
#include <string>

#include <sys/types.h>

namespace uc::explore {

class Child {
  public:
    // Forks and runs `body(write_fd)` in the child, which then _exit(0)s.
    explicit Child(const std::function<void(int)>& body);
    ~Child();  // kills the child's process group and reaps it
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    enum class Next { line, end, timeout };
    // The child's next line (without '\n') within `timeout_ms`.
    Next next(std::string& line, int timeout_ms);
    // How the child ended, after Next::end: "exit 0", "signal 11 (SIGSEGV)".
    std::string wait_status();

  private:
    pid_t pid_ = -1;
    int fd_ = -1;
    std::string buffered_;
    bool reaped_ = false;
    int status_ = 0;
};

// Writes `line` + '\n' to `fd` in full (EINTR retried).
void write_line(int fd, const std::string& line);

}  // namespace uc::explore
