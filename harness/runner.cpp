#include "runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <unordered_map>

#include "junit.h"
#include "ktap.h"
#include "version.h"

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

void on_terminate(int sig) {
    pid_t child = g_child_pgid;
    if (child > 0) {
        kill(-child, SIGKILL);
        // Reap it too (for at most 2 s: only async-signal-safe calls here),
        // so not even a zombie of the run is left for init.
        timespec ten_ms{0, 10'000'000};
        for (int i = 0; i < 200 && waitpid(child, nullptr, WNOHANG) == 0; ++i) nanosleep(&ten_ms, nullptr);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

// In the child: the runner died (even by SIGKILL), so take the whole
// scenario process group down with us instead of leaving it running.
void on_runner_death(int) { kill(0, SIGKILL); }

uint64_t instance_seed(uint64_t seed, const std::string& id) {
    uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a over the id
    for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
    return h;
}

std::string signal_name(int sig) {
    const char* abbrev = sigabbrev_np(sig);
    return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

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

[[noreturn]] void child_main(const Instance& instance, const Probe& probe, const Settings& settings, pid_t runner,
                             int result_fd, int output_fd) {
    setpgid(0, 0);
    signal(SIGPIPE, SIG_IGN);  // a send to a closed peer is a result, not a death
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, on_runner_death);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != runner) on_runner_death(SIGTERM);  // it died before prctl
    if (!set_up_child_fds(result_fd, output_fd)) _exit(kChildSetupFailed);

    Json result;
    {
        Ctx ctx(probe, settings);
        std::optional<Stop> stop;
        try {
            instance.variant->run(ctx);
        } catch (const Stop& s) {
            stop = s;
        } catch (const std::exception& e) {
            stop = Stop{"error", std::string("unexpected exception: ") + e.what()};
        }
        result = ctx.result(stop);
    }
    std::string text = dump_line(result);
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
        ssize_t n = write(kChildResultFd, p, left);
        if (n <= 0) _exit(kChildSetupFailed);
        p += n;
        left -= size_t(n);
    }
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

// A process killed while the kernel holds it (e.g. io_uring exit work
// cancelling requests) may take seconds to go; one that takes longer than
// this is reported and left to a later reap, so the suite never hangs on it.
constexpr int kKillGraceMs = 5000;

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

struct ChildEnd {
    bool timed_out = false;
    bool unkillable = false;  // still there kKillGraceMs after SIGKILL: blocked in the kernel
    int status = 0;
    std::string result_text, output;
    size_t output_bytes = 0;
};

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

Json no_run_verdict(const std::string& verdict, const std::string& reason, Json evidence) {
    return {{"verdict", verdict}, {"reason", reason}, {"iterations", 0}, {"metrics", Json::object()}, {"evidence", evidence}};
}

Json verdict_from(const ChildEnd& end, double timeout_s) {
    Json evidence = Json::object();
    if (!end.output.empty()) {
        evidence["output_tail"] = to_valid_utf8(end.output);
        if (end.output_bytes > end.output.size()) evidence["output_bytes"] = end.output_bytes;
    }
    Json result = Json::parse(end.result_text, nullptr, false);
    bool has_result = !result.is_discarded() && result.is_object();
    if (end.timed_out && has_result) {
        // The body finished, then the child never exited: stuck tearing down
        // its rings (the seed-001 failure mode). Keep what the body found.
        result["reason"] = str("scenario ended (", result["verdict"].get<std::string>(),
                               result["reason"].get<std::string>().empty() ? "" : ": " + result["reason"].get<std::string>(),
                               ") but its process did not exit within ", timeout_s,
                               " s: stuck releasing its rings or requests");
        result["verdict"] = "hang";
        for (const auto& [key, value] : evidence.items()) result["evidence"][key] = value;
        return result;
    }
    if (end.timed_out)
        return no_run_verdict("hang",
                              str("watchdog: no verdict within ", timeout_s, " s; child process group killed",
                                  end.unkillable ? str("; the child was still there ", kKillGraceMs / 1000,
                                                       " s after SIGKILL (held in the kernel)")
                                                 : ""),
                              evidence);
    if (WIFSIGNALED(end.status)) {
        evidence["signal"] = signal_name(WTERMSIG(end.status));
        return no_run_verdict("crash", "scenario child killed by " + signal_name(WTERMSIG(end.status)), evidence);
    }
    if (WEXITSTATUS(end.status) == kChildSetupFailed && end.result_text.empty())
        return no_run_verdict("error", "runner: could not set up the scenario child's descriptors (RLIMIT_NOFILE?)",
                              evidence);
    if (WEXITSTATUS(end.status) != 0 || !has_result)
        return no_run_verdict(
            "error", str("scenario child exited with status ", WEXITSTATUS(end.status), " without a verdict"), evidence);
    for (const auto& [key, value] : evidence.items()) result["evidence"][key] = value;
    return result;
}

Json make_result(const Instance& instance, const Json& verdict, double duration_ms) {
    Json r;
    r["id"] = instance.id;
    r["family"] = instance.scenario->family;
    r["scenario"] = instance.scenario->name;
    r["params"] = instance.variant->params;
    r["verdict"] = verdict["verdict"];
    r["reason"] = verdict["reason"];
    r["duration_ms"] = duration_ms;
    r["iterations"] = verdict["iterations"];
    if (verdict.value("timing_dependent", false)) r["timing_dependent"] = true;
    r["metrics"] = verdict["metrics"];
    r["evidence"] = verdict["evidence"];
    return r;
}

Json run_forked(const Instance& instance, const Probe& probe, const Settings& settings,
                const std::function<void()>& tick) {
    static const bool subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
    (void)subreaper;
    uint64_t started = now_ns();
    Settings child_settings = settings;
    child_settings.seed = instance_seed(settings.seed, instance.id);
    // The host refusing a pipe or a process (ulimit -n / -u) is an error of
    // this scenario; the suite goes on and the report says why.
    auto host_refused = [&](const char* call, int err) {
        return make_result(instance,
                           no_run_verdict("error", str("runner: ", call, ": ", errno_name(err), " (", std::strerror(err), ")"),
                                          Json::object()),
                           double(now_ns() - started) / 1e6);
    };
    int result_pipe[2], output_pipe[2];
    if (pipe2(result_pipe, O_CLOEXEC | O_NONBLOCK) < 0) return host_refused("pipe2", errno);
    if (pipe2(output_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        int err = errno;
        close(result_pipe[0]);
        close(result_pipe[1]);
        return host_refused("pipe2", err);
    }
    std::fflush(nullptr);
    pid_t runner = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        for (int fd : {result_pipe[0], result_pipe[1], output_pipe[0], output_pipe[1]}) close(fd);
        return host_refused("fork", err);
    }
    if (pid == 0) {
        // The child writes blocking; only the parent's ends are non-blocking.
        fcntl(result_pipe[1], F_SETFL, 0);
        fcntl(output_pipe[1], F_SETFL, 0);
        child_main(instance, probe, child_settings, runner, result_pipe[1], output_pipe[1]);
    }
    setpgid(pid, pid);  // also done by the child; whichever runs first wins the race
    g_child_pgid = pid;
    close(result_pipe[1]);
    close(output_pipe[1]);
    ChildEnd end = watch_child(pid, result_pipe[0], output_pipe[0], settings.timeout_s, tick);
    g_child_pgid = 0;
    close(result_pipe[0]);
    close(output_pipe[0]);
    reap_orphans();
    return make_result(instance, verdict_from(end, settings.timeout_s), double(now_ns() - started) / 1e6);
}

std::string iso8601_now() {
    time_t t = time(nullptr);
    tm utc{};
    gmtime_r(&t, &utc);
    char buf[32];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &utc);
    return buf;
}

bool is_bad(const Json& r) { return r["verdict"] != "pass" && r["verdict"] != "skip"; }

// Progress on stderr: quiet prints nothing; on a terminal a live line
// (i/n, elapsed, failing so far, running id) is rewritten in place and only
// results that did not pass stay on screen; otherwise (CI logs) one line per
// finished scenario. Verbose prints every result and the evidence of those
// that did not pass.
class Progress {
  public:
    Progress(const RunOptions& options, size_t total) : options_(options), total_(total), started_(now_ns()) {
        const char* term = getenv("TERM");
        live_ = !options.quiet && isatty(STDERR_FILENO) && !(term && std::strcmp(term, "dumb") == 0);
        winsize size{};
        if (live_ && ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 20) width_ = size.ws_col;
    }

    void note(const std::string& text) {
        if (options_.quiet) return;
        clear();
        std::fprintf(stderr, "%s\n", text.c_str());
    }
    void counted(const Json& r) { failing_ += is_bad(r); }
    void start(size_t index, const std::string& id) {
        index_ = index;
        id_ = id;
        draw();
    }
    void tick() { draw(); }
    void finish(const Json& r) {
        counted(r);
        if (options_.quiet) return;
        std::string verdict = r["verdict"];
        if (live_ && !options_.verbose && !is_bad(r)) return draw();
        clear();
        int digits = int(std::to_string(total_).size());
        std::fprintf(stderr, "[%*zu/%zu] %-5s %7.0f ms  %s\n", digits, index_, total_, verdict.c_str(),
                     r["duration_ms"].get<double>(), r["id"].get<std::string>().c_str());
        if (verdict != "pass") std::fprintf(stderr, "      %s\n", r["reason"].get<std::string>().c_str());
        if (options_.verbose && is_bad(r))
            for (const std::string& line : evidence_lines(r["evidence"], 40))
                if (line != "failure: " + r["reason"].get<std::string>())  // printed just above
                    std::fprintf(stderr, "        %s\n", line.c_str());
        draw();
    }
    void end() { clear(); }

  private:
    void draw() {
        if (!live_ || index_ == 0) return;
        std::string line = str("[", index_, "/", total_, "] ", (now_ns() - started_) / 1'000'000'000, "s, ", failing_,
                               " failing  ", id_);
        if (line.size() > width_ - 1) line.resize(width_ - 1);
        std::fprintf(stderr, "\r\033[K%s", line.c_str());
        std::fflush(stderr);
        drawn_ = true;
    }
    void clear() {
        if (!drawn_) return;
        std::fprintf(stderr, "\r\033[K");
        drawn_ = false;
    }

    const RunOptions& options_;
    size_t total_;
    uint64_t started_;
    bool live_ = false, drawn_ = false;
    size_t width_ = 80, index_ = 0, failing_ = 0;
    std::string id_;
};

// Families in order of first appearance, each family's variants together:
// KTAP nests variants under their family and needs them contiguous.
std::vector<Instance> grouped_by_family(const std::vector<Instance>& instances) {
    std::vector<std::string> order;
    for (const Instance& inst : instances)
        if (std::find(order.begin(), order.end(), inst.scenario->family) == order.end())
            order.push_back(inst.scenario->family);
    std::vector<Instance> grouped;
    for (const std::string& family : order)
        for (const Instance& inst : instances)
            if (inst.scenario->family == family) grouped.push_back(inst);
    return grouped;
}

std::vector<KtapFamily> ktap_families(const std::vector<Instance>& instances) {
    std::vector<KtapFamily> families;
    for (const Instance& inst : instances) {
        if (families.empty() || families.back().name != inst.scenario->family)
            families.push_back({inst.scenario->family, 0});
        ++families.back().planned;
    }
    return families;
}

// The header of a new run, or the interrupted run's with resumed = true;
// either way with this session's notes (checks it could not do).
Json header_for_run(const RunOptions& options, const Probe& probe, size_t planned, const PreviousRun* previous,
                    const std::vector<std::string>& notes) {
    Json header = previous ? previous->header : report_header(options, probe, planned);
    Json& run = header["run"];
    for (const std::string& note : notes) {
        if (!run.contains("notes")) run["notes"] = Json::array();
        if (std::find(run["notes"].begin(), run["notes"].end(), note) == run["notes"].end()) run["notes"].push_back(note);
    }
    if (previous) run["resumed"] = true;
    return header;
}

std::vector<std::string> ktap_diagnostics(const Json& header, const PreviousRun* previous) {
    const Json& run = header["run"];
    std::vector<std::string> lines = {str("uring-conform ", UC_TOOL_VERSION, ", kernel ",
                                          header["kernel"].value("release", ""), " ", header["kernel"].value("machine", ""),
                                          ", profile ", run.value("profile", ""), ", seed ",
                                          dump_line(run.value("seed", Json())), ", filter ", run.value("filter", ""))};
    for (const Json& note : run.value("notes", Json::array())) lines.push_back("note: " + note.get<std::string>());
    if (previous) lines.push_back("resumed from " + previous->jsonl_path);
    return lines;
}

}  // namespace

double default_timeout_s(Profile profile) {
    switch (profile) {
        case Profile::quick: return 10;
        case Profile::full: return 30;
        case Profile::stress: return 300;
    }
    return 10;
}

Json run_instance(const Instance& instance, const Probe& probe, const Settings& settings,
                  const std::function<void()>& tick) {
    if (auto reason = unmet_requirement(instance, probe))
        return make_result(instance, no_run_verdict("skip", *reason, Json::object()), 0.0);
    return run_forked(instance, probe, settings, tick);
}

void attach_kernel_findings(Json& result, const KernelFindings& findings) {
    Json& evidence = result["evidence"];
    if (findings.lost_records)
        evidence["notes"].push_back("the kernel log overran while this scenario ran: some records were lost");
    if (!findings.splat() && !findings.taint_changed()) return;
    if (!findings.log.empty()) evidence["kernel_log"] = findings.log;
    std::string what;
    if (findings.taint_changed()) {
        uint64_t before = *findings.taint_before, after = *findings.taint_after;
        evidence["taint"] = {{"before", before}, {"after", after}, {"added", taint_letters(after & ~before)}};
        what = str("kernel taint changed ", before, " -> ", after, " (", taint_letters(after & ~before), ")");
    }
    if (findings.splat()) what = "kernel log: " + findings.first_splat + (what.empty() ? "" : "; " + what);
    std::string verdict = result["verdict"];
    if (verdict == "hang" || verdict == "crash") {
        evidence["notes"].push_back(what);
        return;
    }
    if (verdict == "fail") {
        evidence["failures"].push_back(what);
        return;
    }
    // A splat means the kernel broke while this scenario drove it, whatever its CQEs said.
    std::string reason = result["reason"];
    if (!reason.empty()) evidence["notes"].push_back("before the kernel check: " + verdict + ": " + reason);
    result["verdict"] = "fail";
    result["reason"] = what;
    evidence["failures"].push_back(what);
}

Json report_header(const RunOptions& options, const Probe& probe, size_t planned) {
    Json h;
    h["schema_version"] = 1;
    h["tool"] = {{"name", "uring-conform"}, {"version", UC_TOOL_VERSION}};
    h["kernel"] = {{"release", probe.kernel_release}, {"version", probe.kernel_version}, {"machine", probe.machine}};
    h["liburing"] = {{"compile", probe.liburing_compile}, {"runtime", probe.liburing_runtime}};
    h["probe"] = probe.to_json();
    h["run"] = {{"profile", profile_name(options.profile)},
                {"seed", options.seed},
                {"filter", options.filter},
                {"started", iso8601_now()},
                {"timeout_s", options.timeout_s ? Json(*options.timeout_s) : Json(nullptr)},
                {"environment", options.environment}};
    h["planned"] = planned;
    return h;
}

int run_suite(const RunOptions& options, const Probe& probe, const std::vector<Instance>& selected,
              ReportWriter& writer, const PreviousRun* previous) {
    signal(SIGINT, on_terminate);
    signal(SIGTERM, on_terminate);
    signal(SIGPIPE, SIG_IGN);
    std::vector<Instance> instances = grouped_by_family(selected);
    std::optional<KtapWriter> ktap;
    if (!options.ktap_path.empty()) ktap.emplace(options.ktap_path);
    std::optional<KernelWatch> kernel_watch(std::in_place, options.kmsg_path, options.taint_path);
    KernelWatch& kernel = *kernel_watch;

    Json header = header_for_run(options, probe, instances.size(), previous, kernel.notes());
    writer.header(header);

    std::unordered_map<std::string, const Json*> carried;
    if (previous)
        for (const Json& r : previous->results) carried[r["id"]] = &r;
    Progress progress(options, instances.size());
    if (previous) {
        size_t done = 0;
        for (const Instance& inst : instances) done += carried.count(inst.id);
        progress.note(str("resuming ", previous->jsonl_path, ": ", previous->results.size(),
                          " results carried over, ", instances.size() - done, " to run"));
    }
    for (const std::string& note : kernel.notes()) progress.note("note: " + note);
    if (ktap) ktap->begin(ktap_diagnostics(header, previous), ktap_families(instances));

    Settings settings{options.profile, options.seed, options.timeout_s.value_or(default_timeout_s(options.profile)),
                      options.duration_s};
    uint64_t started = now_ns();
    double carried_ms = 0;
    std::function<void()> tick = [&progress] { progress.tick(); };
    for (size_t i = 0; i < instances.size(); ++i) {
        const Instance& inst = instances[i];
        if (auto it = carried.find(inst.id); it != carried.end()) {
            writer.carried_over(*it->second);
            carried.erase(it);
            progress.counted(writer.results().back());
            carried_ms += writer.results().back()["duration_ms"].get<double>();
            if (ktap) ktap->result(writer.results().back());
            continue;
        }
        progress.start(i + 1, inst.id);
        Json r;
        if (auto reason = unmet_requirement(inst, probe)) {
            r = make_result(inst, no_run_verdict("skip", *reason, Json::object()), 0.0);
        } else {
            writer.started(inst.id, i, instances.size());
            r = run_forked(inst, probe, settings, tick);
            attach_kernel_findings(r, kernel.collect());
        }
        writer.result(r);
        if (ktap) ktap->result(r);
        progress.finish(r);
    }
    // Results of the interrupted run for ids no longer selected (a renamed
    // scenario): still real results, kept at the end.
    if (previous)
        for (const Json& r : previous->results)
            if (carried.count(r["id"])) {
                writer.carried_over(r);
                carried_ms += r["duration_ms"].get<double>();
            }
    progress.end();
    // Under a tiny ulimit -n the final report needs the descriptors these hold.
    kernel_watch.reset();
    ktap.reset();
    std::string path = writer.finish(carried_ms / 1000 + double(now_ns() - started) / 1e9);
    if (!options.junit_path.empty()) write_junit(options.junit_path, writer.final_report());
    bool bad = std::any_of(writer.results().begin(), writer.results().end(), is_bad);
    print_summary(options.ktap_path == "-" ? stderr : stdout, writer.results(), path);
    return bad ? 1 : 0;
}

}  // namespace uc
