#include "sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "util.h"

namespace uc {
namespace {

constexpr size_t kOutputTail = 4096;
// One drain() call reads at most this much, so a child flooding its output
// cannot keep the watchdog loop from checking the deadline.
constexpr size_t kDrainChunk = 64 * 1024;
// The child's descriptors: stdin is /dev/null, stdout/stderr the output
// pipe, this one the result pipe; nothing else of the runner is inherited.
constexpr int kChildResultFd = 3;
constexpr int kChildSetupFailed = 125;

// The child being watched, for the SIGINT/SIGTERM handler: an interrupted
// suite must not leave a scenario's process group behind.
volatile sig_atomic_t g_child_pgid = 0;
volatile sig_atomic_t g_interrupted = 0;

void on_terminate(int sig) {
    g_interrupted = sig;
    pid_t child = g_child_pgid;
    if (child > 0) kill(-child, SIGKILL);  // the watch loop reaps it and returns
}

// In the child: the runner died (even by SIGKILL), so take the whole
// scenario process group down with us instead of leaving it running.
void on_runner_death(int) { kill(0, SIGKILL); }

// Gives the child exactly stdin=/dev/null, stdout/stderr=output, fd 3=result,
// needing at most one descriptor more than it has (ulimit -n may be tiny).
bool set_up_child_fds(int result_fd, int output_fd) {
    for (int* fd : {&result_fd, &output_fd})
        if (*fd <= kChildResultFd && (*fd = fcntl(*fd, F_DUPFD, kChildResultFd + 1)) < 0) return false;
    // Close every inherited descriptor above 3 but the two pipe ends.
    int low = std::min(result_fd, output_fd), high = std::max(result_fd, output_fd);
    close_range(kChildResultFd + 1, unsigned(low) - 1, 0);  // before 5.9 (ENOSYS) the extra fds just stay
    close_range(unsigned(low) + 1, unsigned(high) - 1, 0);
    close_range(unsigned(high) + 1, ~0u, 0);
    close(STDIN_FILENO);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || (null_fd != STDIN_FILENO && dup2(null_fd, STDIN_FILENO) < 0)) return false;
    if (null_fd != STDIN_FILENO) close(null_fd);
    if (dup2(output_fd, STDOUT_FILENO) < 0 || dup2(output_fd, STDERR_FILENO) < 0 || dup2(result_fd, kChildResultFd) < 0)
        return false;
    close(result_fd);
    close(output_fd);
    return true;
}

[[noreturn]] void child_main(const std::function<void(int)>& body, pid_t runner, int result_fd, int output_fd) {
    setpgid(0, 0);
    signal(SIGPIPE, SIG_IGN);  // a send to a closed peer is a result, not a death
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, on_runner_death);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != runner) on_runner_death(SIGTERM);  // it died before prctl
    if (!set_up_child_fds(result_fd, output_fd)) _exit(kChildSetupFailed);
    body(kChildResultFd);
    _exit(0);  // skip static destructors: they belong to the parent
}

// Reads what is there without blocking (at most kDrainChunk); false once the
// pipe is at EOF. Counts every byte; keeps only the last keep_tail when
// keep_tail is set.
bool drain(int fd, std::string& into, size_t keep_tail, size_t* counted = nullptr) {
    char buf[8192];
    for (size_t total = 0; total < kDrainChunk;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            into.append(buf, size_t(n));
            total += size_t(n);
            if (counted) *counted += size_t(n);
            if (keep_tail && into.size() > 2 * keep_tail) into.erase(0, into.size() - keep_tail);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return n < 0;  // EAGAIN: still open; 0: EOF
    }
    return true;
}

// Reaps a SIGKILLed child within wait_ms; false while the kernel still holds it.
bool reap_within(pid_t pid, int pidfd, int wait_ms, int* status) {
    uint64_t deadline = now_ns() + uint64_t(wait_ms) * 1'000'000;
    for (;;) {
        if (waitpid(pid, status, WNOHANG) == pid) return true;
        uint64_t now = now_ns();
        if (now >= deadline) return false;
        int left_ms = int((deadline - now) / 1'000'000) + 1;
        if (pidfd >= 0) {
            pollfd exit_fd = {pidfd, POLLIN, 0};
            poll(&exit_fd, 1, left_ms);
        } else {
            usleep(unsigned(std::min(left_ms, 10)) * 1000);
        }
    }
}

ChildEnd watch_child(pid_t pid, int result_fd, int output_fd, double timeout_s, const std::function<void()>& tick) {
    ChildEnd end;
    int pidfd = int(syscall(SYS_pidfd_open, pid, 0));
    uint64_t deadline = now_ns() + uint64_t(timeout_s * 1e9);
    uint64_t next_tick = now_ns() + 1'000'000'000;
    bool exited = false, result_open = true, output_open = true;
    while (!exited) {
        uint64_t now = now_ns();
        if (now >= deadline) {
            end.timed_out = true;
            break;
        }
        if (tick && now >= next_tick) {
            tick();
            next_tick = now + 1'000'000'000;
        }
        pollfd fds[3] = {{result_open ? result_fd : -1, POLLIN, 0},
                         {output_open ? output_fd : -1, POLLIN, 0},
                         {pidfd, POLLIN, 0}};
        uint64_t until = tick ? std::min(deadline, next_tick) : deadline;
        int wait_ms = int(std::min<uint64_t>((until - std::min(until, now)) / 1'000'000 + 1, pidfd >= 0 ? 60'000 : 10));
        int n = poll(fds, pidfd >= 0 ? 3 : 2, wait_ms);
        if (n < 0 && errno != EINTR) break;
        if (result_open && fds[0].revents) result_open = drain(result_fd, end.result_text, 0);
        if (output_open && fds[1].revents) output_open = drain(output_fd, end.output, kOutputTail, &end.output_bytes);
        exited = waitpid(pid, &end.status, WNOHANG) == pid;
    }
    // Whatever the child left running in its group goes with it.
    kill(-pid, SIGKILL);
    if (!exited) end.unkillable = !reap_within(pid, pidfd, kKillGraceMs, &end.status);
    // What is still buffered (a pipe holds less than one drain); a process
    // that escaped the group may keep the pipes open, so no waiting for EOF.
    drain(result_fd, end.result_text, 0);
    drain(output_fd, end.output, kOutputTail, &end.output_bytes);
    if (end.output.size() > kOutputTail) end.output.erase(0, end.output.size() - kOutputTail);
    if (pidfd >= 0) close(pidfd);
    return end;
}

// Processes the scenario left behind outside its process group (setsid,
// double fork) were adopted by us (PR_SET_CHILD_SUBREAPER): kill and reap
// them. Our own group's children (none in the CLI) are not ours to touch.
void reap_orphans() {
    static const std::string children_path = str("/proc/self/task/", getpid(), "/children");
    for (int pass = 0; pass < 8; ++pass) {
        int fd = open(children_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return;
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0) return;
        buf[n] = '\0';
        std::vector<pid_t> orphans;
        for (char* p = buf; *p;) {
            char* next;
            long pid = strtol(p, &next, 10);
            if (next == p) break;
            p = next;
            if (pid > 0 && getpgid(pid_t(pid)) != getpgrp()) orphans.push_back(pid_t(pid));
        }
        if (orphans.empty()) return;
        for (pid_t pid : orphans) {
            pid_t group = getpgid(pid);
            if (group > 0 && group != getpgrp()) kill(-group, SIGKILL);
            kill(pid, SIGKILL);
        }
        // Reaped when dead; one the kernel still holds is left for a later pass.
        size_t reaped = 0;
        for (pid_t pid : orphans) {
            Fd pidfd(int(syscall(SYS_pidfd_open, pid, 0)));
            int status;
            reaped += reap_within(pid, pidfd.get(), 100, &status);
        }
        if (reaped == 0) return;
    }
}

}  // namespace

std::string signal_name(int sig) {
    const char* abbrev = sigabbrev_np(sig);
    return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

ChildEnd run_sandboxed(const std::function<void(int)>& body, double timeout_s, const std::function<void()>& tick) {
    static const bool subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
    (void)subreaper;
    // The host refusing a pipe or a process (ulimit -n / -u) is an error of
    // this scenario; the caller goes on and says why.
    auto refused = [](const char* call, int err) {
        ChildEnd end;
        end.host_refused = str(call, ": ", errno_name(err), " (", std::strerror(err), ")");
        return end;
    };
    int result_pipe[2], output_pipe[2];
    if (pipe2(result_pipe, O_CLOEXEC | O_NONBLOCK) < 0) return refused("pipe2", errno);
    if (pipe2(output_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        int err = errno;
        close(result_pipe[0]);
        close(result_pipe[1]);
        return refused("pipe2", err);
    }
    std::fflush(nullptr);
    pid_t runner = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        for (int fd : {result_pipe[0], result_pipe[1], output_pipe[0], output_pipe[1]}) close(fd);
        return refused("fork", err);
    }
    if (pid == 0) {
        // The child writes blocking; only the parent's ends are non-blocking.
        fcntl(result_pipe[1], F_SETFL, 0);
        fcntl(output_pipe[1], F_SETFL, 0);
        child_main(body, runner, result_pipe[1], output_pipe[1]);
    }
    setpgid(pid, pid);  // also done by the child; whichever runs first wins the race
    g_child_pgid = pid;
    close(result_pipe[1]);
    close(output_pipe[1]);
    ChildEnd end = watch_child(pid, result_pipe[0], output_pipe[0], timeout_s, tick);
    g_child_pgid = 0;
    close(result_pipe[0]);
    close(output_pipe[0]);
    reap_orphans();
    end.setup_failed = !end.timed_out && WIFEXITED(end.status) && WEXITSTATUS(end.status) == kChildSetupFailed &&
                       end.result_text.empty();
    return end;
}

void install_interrupt_handlers() {
    signal(SIGINT, on_terminate);
    signal(SIGTERM, on_terminate);
    signal(SIGPIPE, SIG_IGN);
}

int interrupted() { return g_interrupted; }

[[noreturn]] void die_of_interrupt() {
    int sig = g_interrupted;
    signal(sig, SIG_DFL);
    raise(sig);
    _exit(128 + sig);
}

}  // namespace uc
