// The sandbox a scenario (or an explore round) runs in: a forked child in
// its own process group, stdin /dev/null, stdout/stderr captured, its verdict
// written to fd 3, under a watchdog that kills the whole group at the limit.
// Processes that escape the group are reaped (we are a subreaper); a child
// the kernel will not let go is reported, never waited for forever. The
// outcome is typed; turning it into a verdict is the runner's business.
#pragma once

#include <functional>
#include <string>

namespace uc {

struct ChildEnd {
    bool timed_out = false;
    bool unkillable = false;  // still there kKillGraceMs after SIGKILL: blocked in the kernel
    bool setup_failed = false;  // the child could not set up its descriptors (RLIMIT_NOFILE?)
    int status = 0;             // waitpid() status
    std::string result_text;    // what the child wrote to fd 3
    std::string output;         // the last kOutputTail bytes of stdout+stderr
    size_t output_bytes = 0;    // all of them, counted
    std::string host_refused;   // "pipe2: EMFILE (...)" when the child could not be started
};

// One grace period after SIGKILL, in ms: how long a dying child may take.
constexpr int kKillGraceMs = 5000;

// Forks `body` into the sandbox and watches it for `timeout_s`; `tick`, when
// given, is called about once a second meanwhile. `body` gets the fd to
// write its result to; it must not return to the caller's stack (the
// sandbox _exit()s after it).
ChildEnd run_sandboxed(const std::function<void(int result_fd)>& body, double timeout_s,
                       const std::function<void()>& tick = {});

// SIGINT/SIGTERM kill the child in the sandbox and are remembered: the
// caller finishes its bookkeeping, then calls die_of_interrupt().
void install_interrupt_handlers();
int interrupted();  // the signal number, 0 if none came
[[noreturn]] void die_of_interrupt();

std::string signal_name(int sig);  // "SIGSEGV"

}  // namespace uc
