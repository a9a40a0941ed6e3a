#include "runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>

#include "version.h"

namespace uc {
namespace {

constexpr size_t kOutputTail = 4096;

// The child being watched, for the SIGINT/SIGTERM handler: an interrupted
// suite must not leave a scenario's process group behind.
volatile sig_atomic_t g_child_pgid = 0;

void on_terminate(int sig) {
    if (g_child_pgid > 0) kill(-g_child_pgid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

uint64_t instance_seed(uint64_t seed, const std::string& id) {
    uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a over the id
    for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
    return h;
}

std::string signal_name(int sig) {
    const char* abbrev = sigabbrev_np(sig);
    return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

[[noreturn]] void child_main(const Instance& instance, const Probe& probe, const Settings& settings, int result_fd,
                             int output_fd) {
    setpgid(0, 0);
    signal(SIGPIPE, SIG_IGN);  // a send to a closed peer is a result, not a death
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    dup2(output_fd, STDOUT_FILENO);
    dup2(output_fd, STDERR_FILENO);
    close(output_fd);

    Json result;
    {
        Ctx ctx(probe, instance.params, settings);
        std::optional<Stop> stop;
        try {
            instance.scenario->body(ctx);
        } catch (const Stop& s) {
            stop = s;
        } catch (const std::exception& e) {
            stop = Stop{"error", std::string("unexpected exception: ") + e.what()};
        }
        result = ctx.result(stop);
    }
    std::string text = result.dump();
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
        ssize_t n = write(result_fd, p, left);
        if (n <= 0) _exit(3);
        p += n;
        left -= size_t(n);
    }
    _exit(0);  // skip static destructors: they belong to the parent
}

// Reads what is there without blocking; false once the pipe is at EOF.
bool drain(int fd, std::string& into, size_t keep_tail) {
    char buf[8192];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            into.append(buf, size_t(n));
            if (keep_tail && into.size() > 2 * keep_tail) into.erase(0, into.size() - keep_tail);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return n < 0;  // EAGAIN: still open; 0: EOF
    }
}

struct ChildEnd {
    bool timed_out = false;
    int status = 0;
    std::string result_text, output;
    size_t output_bytes = 0;
};

ChildEnd watch_child(pid_t pid, int result_fd, int output_fd, double timeout_s) {
    ChildEnd end;
    int pidfd = int(syscall(SYS_pidfd_open, pid, 0));
    uint64_t deadline = now_ns() + uint64_t(timeout_s * 1e9);
    bool exited = false, result_open = true, output_open = true;
    while (!exited) {
        uint64_t now = now_ns();
        if (now >= deadline) {
            end.timed_out = true;
            break;
        }
        pollfd fds[3] = {{result_fd, POLLIN, 0}, {output_fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
        int wait_ms = int(std::min<uint64_t>((deadline - now) / 1'000'000 + 1, pidfd >= 0 ? 60'000 : 10));
        int n = poll(fds, pidfd >= 0 ? 3 : 2, wait_ms);
        if (n < 0 && errno != EINTR) break;
        if (result_open && fds[0].revents) result_open = drain(result_fd, end.result_text, 0);
        if (output_open && fds[1].revents) {
            size_t before = end.output.size();
            output_open = drain(output_fd, end.output, kOutputTail);
            end.output_bytes += end.output.size() > before ? end.output.size() - before : 0;
        }
        exited = waitpid(pid, &end.status, WNOHANG) == pid;
    }
    // Whatever the child left running in its group goes with it.
    kill(-pid, SIGKILL);
    if (!exited) waitpid(pid, &end.status, 0);
    drain(result_fd, end.result_text, 0);
    drain(output_fd, end.output, kOutputTail);
    if (end.output.size() > kOutputTail) end.output.erase(0, end.output.size() - kOutputTail);
    if (pidfd >= 0) close(pidfd);
    return end;
}

Json verdict_from(const ChildEnd& end, double timeout_s) {
    Json evidence = Json::object();
    if (!end.output.empty()) evidence["output_tail"] = end.output;
    if (end.timed_out)
        return {{"verdict", "hang"},
                {"reason", str("watchdog: no verdict within ", timeout_s, " s; child process group killed")},
                {"iterations", 0}, {"metrics", Json::object()}, {"evidence", evidence}};
    if (WIFSIGNALED(end.status)) {
        evidence["signal"] = signal_name(WTERMSIG(end.status));
        return {{"verdict", "crash"}, {"reason", "scenario child killed by " + signal_name(WTERMSIG(end.status))},
                {"iterations", 0}, {"metrics", Json::object()}, {"evidence", evidence}};
    }
    Json result = Json::parse(end.result_text, nullptr, false);
    if (WEXITSTATUS(end.status) != 0 || result.is_discarded() || !result.is_object())
        return {{"verdict", "error"},
                {"reason", str("scenario child exited with status ", WEXITSTATUS(end.status), " without a verdict")},
                {"iterations", 0}, {"metrics", Json::object()}, {"evidence", evidence}};
    if (!end.output.empty()) result["evidence"]["output_tail"] = end.output;
    return result;
}

Json make_result(const Instance& instance, const Json& verdict, double duration_ms) {
    Json r;
    r["id"] = instance.id;
    r["family"] = instance.scenario->family;
    r["scenario"] = instance.scenario->name;
    r["params"] = instance.params.to_json();
    r["verdict"] = verdict["verdict"];
    r["reason"] = verdict["reason"];
    r["duration_ms"] = duration_ms;
    r["iterations"] = verdict["iterations"];
    r["metrics"] = verdict["metrics"];
    r["evidence"] = verdict["evidence"];
    return r;
}

std::string iso8601_now() {
    time_t t = time(nullptr);
    tm utc{};
    gmtime_r(&t, &utc);
    char buf[32];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &utc);
    return buf;
}

void print_progress(const RunOptions& options, size_t index, size_t total, const Json& r) {
    if (options.quiet) return;
    std::string verdict = r["verdict"];
    std::fprintf(stderr, "[%*zu/%zu] %-5s %7.0f ms  %s\n", int(std::to_string(total).size()), index, total,
                 verdict.c_str(), r["duration_ms"].get<double>(), r["id"].get<std::string>().c_str());
    if (verdict != "pass") std::fprintf(stderr, "      %s\n", r["reason"].get<std::string>().c_str());
}

void print_summary(const std::vector<Json>& results, const std::string& report_path) {
    static const char* const kVerdicts[] = {"pass", "fail", "skip", "hang", "crash", "error"};
    std::map<std::string, std::map<std::string, int>> by_family;
    for (const Json& r : results) by_family[r["family"]][r["verdict"]]++;
    std::printf("\n%-14s", "family");
    for (const char* v : kVerdicts) std::printf(" %6s", v);
    std::printf("\n");
    for (auto& [family, counts] : by_family) {
        std::printf("%-14s", family.c_str());
        for (const char* v : kVerdicts) std::printf(" %6d", counts[v]);
        std::printf("\n");
    }
    bool header = false;
    for (const Json& r : results) {
        std::string v = r["verdict"];
        if (v == "pass" || v == "skip") continue;
        if (!header) std::printf("\nnot passing:\n");
        header = true;
        std::printf("  %-5s %s\n        %s\n", v.c_str(), r["id"].get<std::string>().c_str(),
                    r["reason"].get<std::string>().c_str());
    }
    std::printf("\nreport: %s\n", report_path.c_str());
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

Json run_instance(const Instance& instance, const Probe& probe, const Settings& settings) {
    uint64_t started = now_ns();
    if (auto reason = unmet_requirement(instance, probe))
        return make_result(instance,
                           {{"verdict", "skip"}, {"reason", *reason}, {"iterations", 0},
                            {"metrics", Json::object()}, {"evidence", Json::object()}},
                           0.0);

    Settings child_settings = settings;
    child_settings.seed = instance_seed(settings.seed, instance.id);
    int result_pipe[2], output_pipe[2];
    if (pipe2(result_pipe, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(output_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        close(result_pipe[0]);
        close(output_pipe[0]);
        // The child writes blocking; only the parent's ends are non-blocking.
        fcntl(result_pipe[1], F_SETFL, 0);
        fcntl(output_pipe[1], F_SETFL, 0);
        child_main(instance, probe, child_settings, result_pipe[1], output_pipe[1]);
    }
    setpgid(pid, pid);  // also done by the child; whichever runs first wins the race
    g_child_pgid = pid;
    close(result_pipe[1]);
    close(output_pipe[1]);
    ChildEnd end = watch_child(pid, result_pipe[0], output_pipe[0], settings.timeout_s);
    g_child_pgid = 0;
    close(result_pipe[0]);
    close(output_pipe[0]);
    return make_result(instance, verdict_from(end, settings.timeout_s), double(now_ns() - started) / 1e6);
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

int run_suite(const RunOptions& options, const Probe& probe, const std::vector<Instance>& instances,
              ReportWriter& writer) {
    signal(SIGINT, on_terminate);
    signal(SIGTERM, on_terminate);
    signal(SIGPIPE, SIG_IGN);
    writer.header(report_header(options, probe, instances.size()));

    Settings settings{options.profile, options.seed, options.timeout_s.value_or(default_timeout_s(options.profile)),
                      options.duration_s};
    uint64_t started = now_ns();
    bool bad = false;
    for (size_t i = 0; i < instances.size(); ++i) {
        Json r = run_instance(instances[i], probe, settings);
        writer.result(r);
        print_progress(options, i + 1, instances.size(), r);
        bad |= r["verdict"] != "pass" && r["verdict"] != "skip";
    }
    std::string path = writer.finish(double(now_ns() - started) / 1e9);
    print_summary(writer.results(), path);
    return bad ? 1 : 0;
}

}  // namespace uc
