#include "child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "util.h"

namespace uc::explore {

Child::Child(const std::function<void(int)>& body) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(str("pipe: ", std::strerror(errno)));
    pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) {
        close(fds[0]);
        close(fds[1]);
        throw std::runtime_error(str("fork: ", std::strerror(errno)));
    }
    if (pid_ == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        close(fds[0]);
        body(fds[1]);
        _exit(0);
    }
    setpgid(pid_, pid_);  // also from here: no race with the kill below
    close(fds[1]);
    fd_ = fds[0];
}

Child::~Child() {
    if (!reaped_) {
        kill(-pid_, SIGKILL);
        kill(pid_, SIGKILL);
        waitpid(pid_, &status_, 0);
    }
    if (fd_ >= 0) close(fd_);
}

Child::Next Child::next(std::string& line, int timeout_ms) {
    uint64_t deadline = now_ns() + uint64_t(timeout_ms) * 1000000;
    for (;;) {
        size_t nl = buffered_.find('\n');
        if (nl != std::string::npos) {
            line = buffered_.substr(0, nl);
            buffered_.erase(0, nl + 1);
            return Next::line;
        }
        uint64_t now = now_ns();
        if (now >= deadline) return Next::timeout;
        pollfd p{fd_, POLLIN, 0};
        int left = int((deadline - now) / 1000000) + 1;
        int n = poll(&p, 1, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) continue;
        char buf[65536];
        ssize_t got = read(fd_, buf, sizeof(buf));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return Next::end;
        buffered_.append(buf, size_t(got));
    }
}

std::string Child::wait_status() {
    if (!reaped_) {
        waitpid(pid_, &status_, 0);
        reaped_ = true;
        kill(-pid_, SIGKILL);  // anything it left behind in its group
    }
    if (WIFEXITED(status_)) return str("exit ", WEXITSTATUS(status_));
    if (WIFSIGNALED(status_)) return str("signal ", WTERMSIG(status_), " (", sigabbrev_np(WTERMSIG(status_)), ")");
    return "unknown status";
}

void write_line(int fd, const std::string& line) {
    std::string out = line + "\n";
    size_t done = 0;
    while (done < out.size()) {
        ssize_t n = write(fd, out.data() + done, out.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(3);  // the parent is gone
        done += size_t(n);
    }
}

}  // namespace uc::explore
