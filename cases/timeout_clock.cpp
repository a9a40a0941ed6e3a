// Timeout clocks, after io_uring_prep_timeout(3) and time_namespaces(7):
// relative and absolute (IORING_TIMEOUT_ABS) timeouts on CLOCK_MONOTONIC
// (the default), IORING_TIMEOUT_BOOTTIME and IORING_TIMEOUT_REALTIME, each
// measured on the clock it runs on; invalid clock flags refused.
//
// Every clock scenario runs twice: ns=init, and ns=timens inside a new time
// namespace with non-zero monotonic and boottime offsets, as container
// runtimes set up. The body (already the runner's forked child) unshares
// CLONE_NEWTIME, writes the offsets, and forks a grandchild that lives in the
// namespace; the grandchild creates the ring, runs the rounds and sends one
// RoundReport per round over a pipe; the body turns the reports into checks.
// ns=init runs the same round code in the body itself.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <type_traits>

#include "timeout_common.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080  // include/uapi/linux/sched.h, 5.6
#endif

namespace {

using namespace uc;
using namespace uc::timeouts;

enum class Clock { monotonic, boottime, realtime };
enum class When { future, past };
enum class Ns { init, timens };

struct ClockParams {
    Setup setup = Setup::none;
    Clock clock = Clock::monotonic;
    When when = When::future;
    Ns ns = Ns::init;
};

// Offsets written to the new namespace's timens_offsets: the namespace's
// clocks run this far ahead of the initial namespace's.
constexpr int64_t kMonotonicOffsetS = 1000;
constexpr int64_t kBoottimeOffsetS = 2000;
constexpr int64_t kRelativeNs = 5 * kMs;       // relative timeouts
constexpr int64_t kAbsAheadNs = 10 * kMs;      // absolute deadline in the future: this far ahead
constexpr int64_t kAbsBehindNs = 100 * kMs;    // absolute deadline in the past: this far behind
constexpr int64_t kRoundQuietNs = 5 * kMs;   // silence after each round's CQE
constexpr uint64_t kRemove = kControl;

clockid_t clock_id(Clock c) {
    return c == Clock::monotonic ? CLOCK_MONOTONIC : c == Clock::boottime ? CLOCK_BOOTTIME : CLOCK_REALTIME;
}
const char* clock_label(Clock c) {
    return c == Clock::monotonic ? "CLOCK_MONOTONIC" : c == Clock::boottime ? "CLOCK_BOOTTIME" : "CLOCK_REALTIME";
}
unsigned clock_flag(Clock c) {
    return c == Clock::boottime ? IORING_TIMEOUT_BOOTTIME : c == Clock::realtime ? IORING_TIMEOUT_REALTIME : 0;
}

// --- capability probes ---

const CapabilityProbe boottime_probe{"timeout_boottime", [](const Probe& probe) {
    return timeout_flag_answer(probe, IORING_OP_TIMEOUT, IORING_TIMEOUT_BOOTTIME, "IORING_OP_TIMEOUT with IORING_TIMEOUT_BOOTTIME, 1 ms");
}};
const CapabilityProbe realtime_probe{"timeout_realtime", [](const Probe& probe) {
    return timeout_flag_answer(probe, IORING_OP_TIMEOUT, IORING_TIMEOUT_REALTIME, "IORING_OP_TIMEOUT with IORING_TIMEOUT_REALTIME, 1 ms");
}};

// Writes the namespace offsets for the children of the caller, which has
// just unshared CLONE_NEWTIME; 0 or an errno.
int write_timens_offsets() {
    int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    std::string text = str("monotonic ", kMonotonicOffsetS, " 0\nboottime ", kBoottimeOffsetS, " 0\n");
    int err = write(fd, text.data(), text.size()) == ssize_t(text.size()) ? 0 : errno;
    close(fd);
    return err;
}

// time_namespaces(7): a new namespace is made by unshare(CLONE_NEWTIME); its
// offsets can be written only before a process enters it. Tried in a
// throwaway child so the probing process keeps its own namespace. Refusal
// (absent): EPERM (no CAP_SYS_ADMIN / CAP_SYS_TIME) or EINVAL (a kernel
// without CONFIG_TIME_NS). Anything else is present and the scenario meets it.
const CapabilityProbe time_namespace_probe{"time_namespace", [](const Probe&) {
    const char* tried = "unshare(CLONE_NEWTIME) and monotonic/boottime offsets written to /proc/self/timens_offsets, in a forked child";
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return untried(tried, "pipe2: " + errno_name(errno));
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(fds[0]);
        close(fds[1]);
        return untried(tried, "fork: " + errno_name(err));
    }
    if (pid == 0) {
        int answer[2] = {0, 0};  // {step (1 unshare, 2 offsets), errno}
        if (unshare(CLONE_NEWTIME) < 0)
            answer[0] = 1, answer[1] = errno;
        else if (int err = write_timens_offsets())
            answer[0] = 2, answer[1] = err;
        ssize_t ignored = write(fds[1], answer, sizeof(answer));
        (void)ignored;
        _exit(0);
    }
    close(fds[1]);
    int answer[2] = {0, 0};
    bool got = read(fds[0], answer, sizeof(answer)) == ssize_t(sizeof(answer));
    close(fds[0]);
    waitpid(pid, nullptr, 0);
    if (!got) return untried(tried, "the probing child reported nothing");
    if (answer[0] == 0) return CapabilityEvidence{tried, "ok", true};
    std::string step = answer[0] == 1 ? "unshare(CLONE_NEWTIME)" : "write(timens_offsets)";
    std::string text = step + ": -" + errno_name(answer[1]);
    bool refused = answer[1] == EPERM || (answer[0] == 1 && answer[1] == EINVAL);
    return CapabilityEvidence{tried, text, !refused};
}};

// --- one round, run in the body (ns=init) or in the namespaced grandchild ---

// What one round saw; trivially copyable, so it crosses the pipe as bytes.
struct RoundReport {
    int32_t host_errno = 0;  // a host call failed (not the behaviour under test)
    char host_call[48] = {};
    int64_t armed_ns = 0, deadline_ns = 0;  // on the timeout's clock
    int64_t monotonic_ns = 0;                // CLOCK_MONOTONIC as this process read it (shows the namespace)
    uint32_t ncqes = 0;
    Cqe cqes[4];  // the timeout's CQEs, t_ns on the timeout's clock
    bool expired_in_window = false;
    int32_t remove_res = 1;  // TIMEOUT_REMOVE's answer when it had to be removed; 1: not needed
};
static_assert(std::is_trivially_copyable_v<RoundReport>);

RoundReport host_failure(const char* call, int err) {
    RoundReport r;
    r.host_errno = err;
    std::snprintf(r.host_call, sizeof(r.host_call), "%s", call);
    return r;
}

// One CQE within `wait_ns`, recorded with the timeout clock's time.
bool reap_one(io_uring* ring, clockid_t clock, int64_t wait_ns, RoundReport& r, int* remove_res) {
    __kernel_timespec ts = timespec_of(wait_ns);
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) != 0) return false;
    if (cqe->user_data == kRemove) {
        *remove_res = cqe->res;
    } else if (r.ncqes < std::size(r.cqes)) {
        r.cqes[r.ncqes++] = Cqe{cqe->user_data, cqe->res, cqe->flags, uint64_t(clock_now(clock)), 0};
    }
    io_uring_cqe_seen(ring, cqe);
    return true;
}

// Arms one timeout as the variant says and reaps it: its CQE within the
// window (due + late bound), then a quiet period for anything after it; if
// nothing came, removes it so the round ends with nothing pending.
RoundReport run_round(io_uring* ring, const ClockParams& p, bool absolute) {
    clockid_t clock = clock_id(p.clock);
    RoundReport r;
    r.monotonic_ns = clock_now(CLOCK_MONOTONIC);
    r.armed_ns = clock_now(clock);
    __kernel_timespec ts{};
    if (absolute) {
        r.deadline_ns = p.when == When::future ? r.armed_ns + kAbsAheadNs : r.armed_ns - kAbsBehindNs;
        ts = timespec_of(r.deadline_ns);
    } else {
        r.deadline_ns = r.armed_ns + kRelativeNs;
        ts = timespec_of(kRelativeNs);
    }
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    io_uring_prep_timeout(sqe, &ts, 0, clock_flag(p.clock) | (absolute ? IORING_TIMEOUT_ABS : 0));
    sqe->user_data = kTimeout;
    if (int ret = io_uring_submit(ring); ret < 1) return host_failure("io_uring_submit(timeout)", ret < 0 ? -ret : EAGAIN);

    int64_t window = std::max<int64_t>(r.deadline_ns - r.armed_ns, 0) + kLateBoundNs;
    int64_t until = clock_now(CLOCK_MONOTONIC) + window;
    while (r.ncqes == 0) {
        int64_t left = until - clock_now(CLOCK_MONOTONIC);
        if (left <= 0 || !reap_one(ring, clock, left, r, &r.remove_res)) break;
    }
    r.expired_in_window = r.ncqes > 0;
    if (!r.expired_in_window) {
        io_uring_sqe* remove = io_uring_get_sqe(ring);
        io_uring_prep_timeout_remove(remove, kTimeout, 0);
        remove->user_data = kRemove;
        io_uring_submit(ring);
        r.remove_res = -ETIME;  // stays if the removal itself does not answer
    }
    // Anything else (a second final CQE, the removal's CQEs) within a short
    // quiet period: rounds are many, so shorter than the family's kQuietNs.
    while (reap_one(ring, clock, kRoundQuietNs, r, &r.remove_res)) {}
    return r;
}

// All rounds of a variant on one ring; `emit` takes each report as it is made.
template <typename Emit>
void run_rounds(const ClockParams& p, bool absolute, uint64_t rounds, Emit emit) {
    io_uring ring{};
    io_uring_params params{};
    params.flags = setup_flags(p.setup);
    if (p.setup == Setup::sqpoll) params.sq_thread_idle = 50;
    if (int ret = io_uring_queue_init_params(8, &ring, &params); ret < 0) {
        emit(host_failure("io_uring_setup (the probe accepted these flags)", -ret));
        return;
    }
    for (uint64_t i = 0; i < rounds; ++i) {
        RoundReport r = run_round(&ring, p, absolute);
        emit(r);
        // Stop at the first round that never expired: each costs the late bound.
        if (r.host_errno || !r.expired_in_window) break;
    }
    io_uring_queue_exit(&ring);
}

// Runs the rounds in a grandchild inside a new time namespace; returns what
// it reported. Host trouble setting the namespace up is an error.
std::vector<RoundReport> rounds_in_time_namespace(Ctx& ctx, const ClockParams& p, bool absolute, uint64_t rounds) {
    if (unshare(CLONE_NEWTIME) < 0) ctx.error("unshare(CLONE_NEWTIME) although the probe could: " + errno_name(errno));
    if (int err = write_timens_offsets()) ctx.error("write /proc/self/timens_offsets although the probe could: " + errno_name(err));
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) ctx.error("pipe2: " + errno_name(errno));
    pid_t pid = fork();
    if (pid < 0) ctx.error("fork: " + errno_name(errno));
    if (pid == 0) {  // in the new namespace: no Ctx here, only reports
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(fds[0]);
        try {
            run_rounds(p, absolute, rounds, [&](const RoundReport& r) {
                if (write(fds[1], &r, sizeof(r)) != ssize_t(sizeof(r))) _exit(2);
            });
        } catch (...) {
            _exit(3);
        }
        _exit(0);
    }
    close(fds[1]);
    Fd reader(fds[0]);
    std::vector<RoundReport> out;
    for (;;) {
        int64_t left_ms = (int64_t(ctx.deadline_ns()) - int64_t(now_ns())) / kMs;
        pollfd pfd{reader.get(), POLLIN, 0};
        if (left_ms <= 0 || poll(&pfd, 1, int(left_ms)) != 1) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
            ctx.hang(str("the grandchild in the time namespace sent ", out.size(), " of ", rounds, " round reports by the deadline"));
        }
        RoundReport r;
        ssize_t n = read(reader.get(), &r, sizeof(r));
        if (n == 0) break;
        if (n != ssize_t(sizeof(r))) ctx.error(str("short report from the namespaced grandchild: ", n, " bytes"));
        out.push_back(r);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        ctx.error(str("the grandchild in the time namespace ended with status 0x", std::hex, status));
    // time_namespaces(7): the namespace's CLOCK_MONOTONIC runs the offset ahead
    // of ours; if it does not, the grandchild is not where we put it.
    if (!out.empty()) {
        int64_t seen_s = (out.front().monotonic_ns - clock_now(CLOCK_MONOTONIC)) / 1'000'000'000;
        ctx.metric("timens_monotonic_offset_seen_s", seen_s);
        if (seen_s < kMonotonicOffsetS - 60 || seen_s > kMonotonicOffsetS + 1)
            ctx.error(str("the grandchild's CLOCK_MONOTONIC is ", seen_s, " s from ours, not the ", kMonotonicOffsetS,
                          " s offset written: not in the new time namespace"));
    }
    return out;
}

std::vector<RoundReport> collect(Ctx& ctx, const ClockParams& p, bool absolute) {
    uint64_t rounds = timing_rounds(ctx);
    if (p.ns == Ns::timens) return rounds_in_time_namespace(ctx, p, absolute, rounds);
    std::vector<RoundReport> out;
    run_rounds(p, absolute, rounds, [&](const RoundReport& r) { out.push_back(r); });
    return out;
}

// Turns the rounds into checks: the first violation is the failure, stating
// its round; all rounds count for timing_dependent and the latency metric.
void judge_rounds(Ctx& ctx, const ClockParams& p, const std::vector<RoundReport>& reports, const std::string& kind) {
    std::string clock = clock_label(p.clock);
    if (p.ns == Ns::timens)
        clock += str(" in a time namespace (offsets monotonic +", kMonotonicOffsetS, " s, boottime +", kBoottimeOffsetS, " s)");
    uint64_t violations = 0;
    std::vector<int64_t> late;
    for (size_t i = 0; i < reports.size(); ++i) {
        const RoundReport& r = reports[i];
        if (r.host_errno) ctx.error(str(r.host_call, ": ", errno_name(r.host_errno)));
        TimeoutExpect expect{.user_data = kTimeout, .clock = clock, .armed_ns = r.armed_ns, .deadline_ns = r.deadline_ns,
                             .late_bound_ns = kLateBoundNs, .allowed_res = {-ETIME}};
        std::span<const Cqe> cqes(r.cqes, r.ncqes);
        Check check = Check::pass();
        if (!r.expired_in_window) {
            check = Check::fail(str(kind, " timeout did not expire: no CQE by ", kLateBoundNs / kMs,
                                    " ms (the stated late bound) after it was due at ", std::max(r.deadline_ns, r.armed_ns),
                                    " ns on ", clock, " (deadline ", r.deadline_ns, " ns, armed at ", r.armed_ns,
                                    " ns); TIMEOUT_REMOVE then answered ", res_text(r.remove_res)));
        } else {
            // io_uring_prep_timeout(3): "-ETIME The specified timeout occurred
            // and triggered the completion event": one CQE, not before it was due.
            check = timeout_completion(cqes, expect);
            late.push_back(int64_t(r.cqes[0].t_ns) - std::max(r.armed_ns, r.deadline_ns));
        }
        if (!check.ok) {
            if (violations++ == 0) {
                check.rule = str(check.rule, " (violated in round ", i + 1, " of ", reports.size(), ")");
                ctx.expect(check);
            }
        }
    }
    if (violations && p.ns == Ns::timens && kind.rfind("abs", 0) == 0)
        ctx.note(str("an absolute deadline read inside the namespace lies the namespace offset (+", kMonotonicOffsetS,
                     " s monotonic, +", kBoottimeOffsetS, " s boottime) ahead of the initial namespace's clock: a kernel "
                     "that does not translate IORING_TIMEOUT_ABS out of the submitter's time namespace fires it that much "
                     "late (io-uring list, May 2026: 'io_uring: should IORING_TIMEOUT_ABS honour the submitter's time namespace?')"));
    ctx.timing_dependent(reports.size(), violations);
    ctx.add_iterations(reports.size());
    record_latency(ctx, kind, late);
}

std::vector<Need<ClockParams>> clock_needs() {
    return {needs_op(IORING_OP_TIMEOUT), needs_op(IORING_OP_TIMEOUT_REMOVE),
            when(&ClockParams::clock, Clock::boottime, needs_capability("timeout_boottime")),
            when(&ClockParams::clock, Clock::realtime, needs_capability("timeout_realtime")),
            when(&ClockParams::ns, Ns::timens, needs_capability("time_namespace"))};
}

auto clock_axis() {
    return axis("clock", &ClockParams::clock,
                {{Clock::monotonic, "monotonic"}, {Clock::boottime, "boottime"}, {Clock::realtime, "realtime"}});
}
auto when_axis() { return axis("when", &ClockParams::when, {{When::future, "future"}, {When::past, "past"}}); }
auto ns_axis() { return axis("ns", &ClockParams::ns, {{Ns::init, "init"}, {Ns::timens, "timens"}}); }

// --- scenarios ---

const Register<ClockParams> relative_expires{{
    .family = family,
    .name = "relative-expires",
    .summary = "a relative 5 ms timeout completes once with -ETIME, never before 5 ms on its clock, within the late bound",
    .needs = clock_needs(),
    // CLOCK_MONOTONIC under every setup mode (they change who posts the CQE
    // and when); the other clocks without a setup flag.
    .variants = join(grid(setups(&ClockParams::setup, all_setups()),
                          axis("clock", &ClockParams::clock, {{Clock::monotonic, "monotonic"}}), ns_axis()),
                     grid(setups(&ClockParams::setup, {Setup::none}),
                          axis("clock", &ClockParams::clock, {{Clock::boottime, "boottime"}, {Clock::realtime, "realtime"}}),
                          ns_axis())),
    .body = [](Ctx& ctx, const ClockParams& p) {
        // io_uring_prep_timeout(3): "If no alternate clock source is given in
        // the above flags, then CLOCK_MONOTONIC is used"; BOOTTIME/REALTIME
        // flags pick those clocks. The times below are read on that clock.
        judge_rounds(ctx, p, collect(ctx, p, false), "relative");
    }}};

const Register<ClockParams> abs_deadline{{
    .family = family,
    .name = "abs-deadline",
    .summary = "IORING_TIMEOUT_ABS: a future deadline fires at that time on the caller's clock, a past one at once",
    .needs = clock_needs(),
    // Every clock and both deadlines without a setup flag; under SQPOLL (the
    // SQ thread submits on the caller's behalf) the future monotonic one.
    .variants = join(grid(setups(&ClockParams::setup, {Setup::none}), clock_axis(), when_axis(), ns_axis()),
                     grid(setups(&ClockParams::setup, {Setup::sqpoll}),
                          axis("clock", &ClockParams::clock, {{Clock::monotonic, "monotonic"}}),
                          axis("when", &ClockParams::when, {{When::future, "future"}}), ns_axis())),
    .body = [](Ctx& ctx, const ClockParams& p) {
        // io_uring_prep_timeout(3): "IORING_TIMEOUT_ABS The value specified in
        // ts is an absolute value rather than a relative one", on the clock
        // the flags pick. A deadline already past is due at arming. In a time
        // namespace, time_namespaces(7): its processes "share per-namespace
        // values for these clocks" - the value the caller read is the value
        // the deadline means.
        judge_rounds(ctx, p, collect(ctx, p, true), p.when == When::future ? "abs_future" : "abs_past");
    }}};

// --- invalid flag combinations ---

enum class Invalid { two_clocks, negative_nsec, multishot_abs };
struct InvalidParams {
    Invalid what = Invalid::two_clocks;
};

const Register<InvalidParams> invalid_einval{{
    .family = family,
    .name = "invalid-einval",
    .summary = "two clock flags, a negative tv_nsec, or MULTISHOT with ABS: the timeout completes at once with -EINVAL",
    .needs = {needs_op(IORING_OP_TIMEOUT),
              when(&InvalidParams::what, Invalid::two_clocks, needs_capability("timeout_boottime")),
              when(&InvalidParams::what, Invalid::two_clocks, needs_capability("timeout_realtime")),
              when(&InvalidParams::what, Invalid::multishot_abs, needs_capability("timeout_multishot"))},
    .variants = grid(axis("case", &InvalidParams::what,
                          {{Invalid::two_clocks, "two-clocks"}, {Invalid::negative_nsec, "negative-nsec"},
                           {Invalid::multishot_abs, "multishot-abs"}})),
    .body = [](Ctx& ctx, const InvalidParams& p) {
        Ring ring(ctx, Setup::none);
        __kernel_timespec ts{0, 5 * kMs};
        unsigned flags = 0;
        if (p.what == Invalid::two_clocks) flags = IORING_TIMEOUT_BOOTTIME | IORING_TIMEOUT_REALTIME;
        if (p.what == Invalid::negative_nsec) ts.tv_nsec = -1;
        if (p.what == Invalid::multishot_abs) {
            flags = IORING_TIMEOUT_MULTISHOT | IORING_TIMEOUT_ABS;
            ts = timespec_of(clock_now(CLOCK_MONOTONIC) + 5 * kMs);
        }
        io_uring_prep_timeout(ring.sqe(kTimeout, "invalid timeout"), &ts, 1, flags);
        ring.submit();
        if (!reap_final_by(ring, kTimeout, now_ns() + 5 * kMs + kLateBoundNs)) {
            io_uring_prep_timeout_remove(ring.sqe(kCleanup, "timeout remove (cleanup)"), kTimeout, 0);
            ring.submit();
            reap_final_by(ring, kTimeout, now_ns() + 200 * kMs);
        }
        ring.settle(kQuietNs);
        // io_uring_prep_timeout(3) ERRORS: "-EINVAL One of the fields set in
        // the SQE was invalid. For example, two clocksources were given, the
        // specified timeout seconds or nanoseconds were < 0"; io_uring_enter(2):
        // "IORING_TIMEOUT_MULTISHOT must not be used with IORING_TIMEOUT_ABS".
        ctx.expect(single_completion(ring.trace().all(), kTimeout, {-EINVAL}));
    }}};

}  // namespace
