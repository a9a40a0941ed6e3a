// Cancelation by task lifetime (issue #18, "Lifetime"): a pending request
// whose submitting task execs, or whose submitting thread exits. The fd and
// ring cases are in cancel_lifetime.cpp.
//
// No man page says what exec or a thread's exit does to a pending request;
// the rules below come from the kernel and liburing's own tests, cited at
// each check:
// - exec: begin_new_exec() (fs/exec.c) calls io_uring_task_cancel() ("Cancel
//   any io_uring activity across execve"), i.e. io_uring_cancel_generic()
//   with cancel_all (io_uring/io_uring.c): every request the task submitted,
//   on every ring it used, is canceled ("for exec all current's requests
//   should be gone"); rings whose requests an SQPOLL thread submitted are
//   left to that thread ("sqpoll task will cancel all its requests").
// - thread exit: do_exit() calls io_uring_files_cancel(), the same function
//   without cancel_all: only requests tracked as holding a ring's file are
//   canceled; the rest stay (liburing test/thread-exit.c: "thread pool issued
//   requests don't cancel on thread exit ... a poll request that sticks
//   around"). The thread's io-wq goes with it (io_uring_clean_tctx() ->
//   io_wq_put_and_exit()), so work queued or running there ends.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <fstream>
#include <optional>
#include <thread>

#include "cancel_rounds.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;
using namespace cancel_family;

constexpr uint64_t kSecond = 1'000'000'000;

Requirement needs_setup_flags(unsigned flags) {
    return [flags](const Probe& probe) { return probe.setup_refused(flags); };
}

// --- the pending request and where it waits ---

// poll: a read of an empty pipe, armed on poll. iowq: an openat of a FIFO
// with IOSQE_ASYNC, which sleeps in an io-wq worker in fifo_open() until a
// writer opens the FIFO (fs/pipe.c wait_for_partner()).
enum class Placement { poll, iowq };

template <typename P>
Axis<P, Placement> placements(Placement P::*member) {
    return axis("req", member, {{Placement::poll, "poll"}, {Placement::iowq, "iowq"}});
}

struct PendingTarget {
    Placement where;
    Pipe pipe;
    std::string dir, fifo;
    Fd writer;  // the FIFO's writer, once release() opened it
    uint64_t buf = 0;
    static constexpr uint64_t kValue = 0x0123456789abcdefull;

    // Preps the request as kTarget on `ring` (not submitted).
    PendingTarget(Ctx& ctx, Ring& ring, Placement placement) : where(placement), pipe(make_pipe(ctx)) {
        if (where == Placement::poll) {
            prep_pipe_read(ring, kTarget, pipe.read.get(), &buf);
            return;
        }
        char name[] = "/tmp/uring-conform-task-exit.XXXXXX";
        if (!mkdtemp(name)) ctx.error("mkdtemp: " + errno_name(errno));
        dir = name;
        fifo = dir + "/fifo";
        if (mkfifo(fifo.c_str(), 0600) < 0) ctx.error("mkfifo: " + errno_name(errno));
        io_uring_sqe* sqe = ring.sqe(kTarget, "openat of a FIFO in io-wq");
        io_uring_prep_openat(sqe, AT_FDCWD, fifo.c_str(), O_RDONLY | O_CLOEXEC, 0);
        sqe->flags |= IOSQE_ASYNC;
    }
    ~PendingTarget() {
        if (fifo.empty()) return;
        unlink(fifo.c_str());
        rmdir(dir.c_str());
    }

    // What lets the request complete on its own: data in the pipe, or a
    // writer on the FIFO (a non-blocking open succeeds once a reader waits
    // in open; ENXIO means none does any more).
    void release(Ctx& ctx) {
        if (where == Placement::poll) return send_all(ctx, pipe.write.get(), &kValue, sizeof(kValue));
        writer.reset(open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
        if (!writer && errno != ENXIO) ctx.error("open FIFO for writing: " + errno_name(errno));
    }

    // Bytes still in the pipe (FIONREAD).
    int unread(Ctx& ctx) const {
        int n = 0;
        if (ioctl(pipe.read.get(), FIONREAD, &n) < 0) ctx.error("FIONREAD: " + errno_name(errno));
        return n;
    }
};

// The barrier NOP, prepped behind the target without entering the Ring's
// bookkeeping: the task that submits it reaps it.
void prep_raw_barrier(Ring& ring) {
    io_uring_sqe* sqe = io_uring_get_sqe(ring.get());
    io_uring_prep_nop(sqe);
    sqe->user_data = kBarrier;
}

// Submits what the parent prepped (enabling the ring first when it was set
// up disabled, which makes this task its single issuer) and reaps the
// barrier: the target was issued. nullptr, or which step failed.
const char* submit_as_this_task(io_uring* ring, bool enable) {
    // io_uring_register(2) IORING_REGISTER_ENABLE_RINGS (Debian's liburing
    // 2.3 declares io_uring_enable_rings() but does not export it).
    if (enable && syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) < 0)
        return "IORING_REGISTER_ENABLE_RINGS";
    if (io_uring_submit(ring) != 2) return "io_uring_submit";
    __kernel_timespec five_s{5, 0};
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe_timeout(ring, &cqe, &five_s) < 0) return "waiting for the barrier";
    bool barrier = cqe->user_data == kBarrier;
    io_uring_cqe_seen(ring, cqe);
    return barrier ? nullptr : "the target completed before the barrier";
}

// Threads of `pid` named iou-wrk-* (io-wq workers), and how many of them sleep.
struct Workers {
    size_t total = 0, sleeping = 0;
};
Workers io_workers(pid_t pid) {
    Workers out;
    std::string base = "/proc/" + std::to_string(pid) + "/task";
    DIR* dir = opendir(base.c_str());
    if (!dir) return out;
    while (dirent* entry = readdir(dir)) {
        if (entry->d_name[0] == '.') continue;
        std::ifstream stat(base + "/" + entry->d_name + "/stat");
        std::string line;
        std::getline(stat, line);
        size_t close_paren = line.rfind(')');
        if (line.find("(iou-wrk-") == std::string::npos || close_paren == std::string::npos ||
            close_paren + 2 >= line.size())
            continue;
        ++out.total;
        out.sleeping += line[close_paren + 2] == 'S' || line[close_paren + 2] == 'D';
    }
    closedir(dir);
    return out;
}

// Polls until `done(io_workers(pid))` or `limit_ns` passed; false on timeout.
template <typename F>
bool wait_workers(pid_t pid, uint64_t limit_ns, F done) {
    uint64_t until = now_ns() + limit_ns;
    for (;;) {
        if (done(io_workers(pid))) return true;
        if (now_ns() >= until) return false;
        usleep(1000);
    }
}

// poll(2) with no events still reports POLLERR on a pipe's write end once
// no read end is left anywhere, a pending request's included.
bool readers_gone_within(int write_fd, int timeout_ms) {
    pollfd pfd{write_fd, 0, 0};
    return poll(&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLERR);
}

// Why a res is wrong beyond not being allowed: the ERESTART* codes are the
// kernel's own (include/linux/errno.h: "These should never be seen by user
// programs").
std::string restart_code_note(int res) {
    bool restart = res == -512 || res == -513 || res == -514 || res == -516;
    return restart ? " (ERESTART*: include/linux/errno.h says \"These should never be seen by user programs\")" : "";
}

// --- exec ---

// Reaps by looking at the CQ ring only, never entering the kernel: a task
// other than a DEFER_TASKRUN ring's submitter may not wait on it
// (io_uring_enter(2) EEXIST). Collects what is there into `seen` until a CQE
// of `user_data` came (true) or `limit_ns` passed.
bool peek_for(io_uring* ring, std::vector<Cqe>& seen, uint64_t user_data, uint64_t limit_ns) {
    uint64_t until = now_ns() + limit_ns;
    bool found = false;
    for (;;) {
        io_uring_cqe* raw = nullptr;
        while (io_uring_peek_cqe(ring, &raw) == 0 && raw) {
            seen.push_back(Cqe{raw->user_data, raw->res, raw->flags, now_ns(), 0});
            found |= raw->user_data == user_data;
            io_uring_cqe_seen(ring, raw);
        }
        if (found || now_ns() >= until) return found;
        usleep(1000);
    }
}

// The res of the first CQE of `user_data` in `cqes`; INT_MIN if none.
int res_of(const std::vector<Cqe>& cqes, uint64_t user_data) {
    for (const Cqe& cqe : cqes)
        if (cqe.user_data == user_data) return cqe.res;
    return INT_MIN;
}

bool read_byte(int fd, char& byte, int timeout_ms) {
    pollfd pfd{fd, POLLIN, 0};
    return poll(&pfd, 1, timeout_ms) == 1 && read(fd, &byte, 1) == 1;
}

// The child: submits the parent's SQEs as its own, says so on `status_fd`
// (O_CLOEXEC), waits for the go on `control_fd`, then execs /bin/true, or
// where there is none this binary with --version (both exit at once; this
// one starts slowly in a TCG guest), output discarded.
[[noreturn]] void exec_child(io_uring* ring, bool enable, int status_fd, int control_fd) {
    const char* failed = submit_as_this_task(ring, enable);
    char go = 0;
    if (failed || write(status_fd, "s", 1) != 1 || !read_byte(control_fd, go, 5000)) _exit(3);
    int null_fd = open("/dev/null", O_WRONLY);
    if (null_fd < 0 || dup2(null_fd, 1) < 0 || dup2(null_fd, 2) < 0) _exit(4);
    execl("/bin/true", "true", static_cast<char*>(nullptr));
    execl("/proc/self/exe", "uring-conform", "--version", static_cast<char*>(nullptr));
    _exit(127);
}

// Waits for the child's exit (5 s, then SIGKILL); its wait status.
int reap_child(Ctx& ctx, pid_t pid) {
    int status = 0;
    uint64_t until = now_ns() + 5 * kSecond;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now_ns() >= until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            ctx.error("the exec child did not exit within 5 s");
        }
        usleep(1000);
    }
    return status;
}

struct ExecParams {
    Setup setup;
    Placement req;
};

// What the exec round saw, from the parent, which holds the ring throughout.
struct ExecRound {
    std::vector<Cqe> cqes;  // every CQE after the child's barrier
    bool ended_by_cloexec = false;  // the target's CQE was there once exec closed the child's O_CLOEXEC fds
};

// A child process submits the pending request on the parent's ring (its
// fd and mappings inherited across fork) and execs; the parent holds on.
ExecRound exec_round(Ctx& ctx, Ring& ring, const ExecParams& p) {
    ExecRound round;
    Pipe status = make_pipe(ctx), control = make_pipe(ctx);  // O_CLOEXEC both
    bool enable = p.setup == Setup::defer_taskrun;
    pid_t pid = fork();
    if (pid < 0) ctx.error("fork: " + errno_name(errno));
    if (pid == 0) exec_child(ring.get(), enable, status.write.get(), control.read.get());
    status.write.reset();
    control.read.reset();
    char byte = 0;
    if (!read_byte(status.read.get(), byte, 5000) || byte != 's')
        ctx.error(str("exec child failed before exec (wait status ", reap_child(ctx, pid), ")"));
    if (p.req == Placement::iowq) {
        // With SQPOLL the parent's SQ thread issued the request: its worker is ours.
        pid_t owner = p.setup == Setup::sqpoll ? getpid() : pid;
        bool asleep = wait_workers(owner, kSecond, [](Workers w) { return w.sleeping >= 1; });
        ctx.metric("worker_asleep_before_exec", asleep);
    }
    if (write(control.write.get(), "g", 1) != 1) ctx.error("write(control pipe): " + errno_name(errno));
    // EOF: the child passed exec's point of no return and closed its O_CLOEXEC fds.
    bool eof = false;
    pollfd pfd{status.read.get(), POLLIN, 0};
    if (poll(&pfd, 1, 5000) == 1) eof = read(status.read.get(), &byte, 1) == 0;
    round.ended_by_cloexec = eof && peek_for(ring.get(), round.cqes, kTarget, 0);
    int wstatus = reap_child(ctx, pid);
    if (!eof || !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
        ctx.error(str("execve of /bin/true (or /proc/self/exe --version) in the child: wait status ", wstatus, eof ? "" : ", no EOF"));
    return round;
}

const auto kExecSetups = {Setup::none, Setup::coop_taskrun, Setup::defer_taskrun};

const Register<ExecParams> exec_cancels{{
    .family = cancel,
    .name = "exec-cancels-task-requests",
    .summary = "execve() by the task that submitted a pending read or io-wq openat cancels it: one CQE, -ECANCELED "
               "(-EINTR if running), seen by the process that still holds the ring",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_OPENAT),
              // The child becomes a DEFER_TASKRUN ring's submitter by enabling it.
              when(&ExecParams::setup, Setup::defer_taskrun, needs_setup_flags(IORING_SETUP_R_DISABLED))},
    .variants = grid(setups(&ExecParams::setup, kExecSetups), placements(&ExecParams::req)),
    .body = [](Ctx& ctx, const ExecParams& p) {
        Ring ring(ctx, p.setup, 0, 32, p.setup == Setup::defer_taskrun ? IORING_SETUP_R_DISABLED : 0);
        ctx.metric("ring_fd_cloexec", (fcntl(ring.get()->ring_fd, F_GETFD) & FD_CLOEXEC) != 0);
        PendingTarget target(ctx, ring, p.req);
        prep_raw_barrier(ring);
        ExecRound round = exec_round(ctx, ring, p);
        bool ended = round.ended_by_cloexec || peek_for(ring.get(), round.cqes, kTarget, 2 * kSecond);
        peek_for(ring.get(), round.cqes, 0, kQuietNs);
        ctx.metric("ended_before_exec_closed_fds", round.ended_by_cloexec);
        // fs/exec.c begin_new_exec(): "Cancel any io_uring activity across
        // execve"; io_uring_cancel_generic(cancel_all): all of the task's
        // requests go. A poll-armed read is canceled (-ECANCELED); an io-wq
        // worker blocked in the open is interrupted (-EINTR) or its queued
        // work canceled, as io_uring_prep_cancel(3) allows for running work.
        ctx.must(Check{ended, "the pending request had not ended 2 s after its task exec'd"});
        std::vector<int> allowed = p.req == Placement::poll ? std::vector<int>{-ECANCELED}
                                                            : std::vector<int>{-ECANCELED, -EINTR};
        Check once = single_completion(round.cqes, kTarget, allowed);
        if (!once) once.rule += restart_code_note(res_of(round.cqes, kTarget));
        ctx.expect(once);
        if (p.req == Placement::poll)
            ctx.expect_eq(target.unread(ctx), 0, "bytes in the pipe after the canceled read (none were written)");
    }}};

const Register<ExecParams> exec_keeps_sqpoll{{
    .family = cancel,
    .name = "exec-keeps-sqpoll-requests",
    .summary = "execve() by a process that only fed a SQPOLL ring's SQ leaves the SQ thread's pending read or "
               "io-wq openat alone: each completes normally afterwards",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_OPENAT)},
    .variants = grid(setups(&ExecParams::setup, {Setup::sqpoll}), placements(&ExecParams::req)),
    .body = [](Ctx& ctx, const ExecParams& p) {
        Ring ring(ctx, p.setup);
        PendingTarget target(ctx, ring, p.req);
        prep_raw_barrier(ring);
        ExecRound round = exec_round(ctx, ring, p);
        peek_for(ring.get(), round.cqes, kTarget, kQuietNs);
        // io_uring_setup(2) SINGLE_ISSUER: "when IORING_SETUP_SQPOLL is set it
        // is considered that the polling task is doing all submissions on
        // behalf of the userspace": the requests are the SQ thread's, and
        // io_uring_cancel_generic() skips SQPOLL rings for the exec'ing task.
        ctx.expect_true(round.cqes.empty(), "the exec of the process that fed the SQ ended the SQ thread's request");
        target.release(ctx);
        bool ended = peek_for(ring.get(), round.cqes, kTarget, 2 * kSecond);
        peek_for(ring.get(), round.cqes, 0, kQuietNs);
        ctx.must(Check{ended, "the SQ thread's request had not completed 2 s after it was released"});
        if (p.req == Placement::poll) {
            ctx.expect(single_completion(round.cqes, kTarget, {int(sizeof(target.buf))}));
            ctx.expect_eq(target.buf, PendingTarget::kValue, "data read after the exec");
        } else {
            ctx.expect(single_completion(round.cqes, kTarget));
            int fd = res_of(round.cqes, kTarget);
            ctx.expect_true(fd >= 0, "openat of the FIFO ended " + res_text(fd) + " once a writer opened it");
            if (fd >= 0) close(fd);
        }
    }}};

// --- thread exit ---

// A thread submits what the main thread prepped, waits until the request is
// where it should be, and exits; the main thread joins it. What failed, or nullptr.
const char* submit_in_thread_and_exit(Ring& ring, bool enable, Placement where) {
    const char* failed = nullptr;
    bool asleep = true;
    std::thread submitter([&] {
        failed = submit_as_this_task(ring.get(), enable);
        // An io-wq openat: its worker (this thread's, or the SQ thread's) asleep in open.
        if (!failed && where == Placement::iowq)
            asleep = wait_workers(getpid(), kSecond, [](Workers w) { return w.sleeping >= 1; });
    });
    // join() returns once the thread's exit cleared its tid, in exit_mm(),
    // which do_exit() (kernel/exit.c) runs after io_uring_files_cancel().
    submitter.join();
    ring.ctx().metric("worker_asleep_before_exit", asleep);
    return failed;
}

// Reaps (entering the kernel) until `user_data` ended or `limit_ns` passed.
bool reap_ended(Ring& ring, uint64_t user_data, uint64_t limit_ns) {
    uint64_t until = now_ns() + limit_ns;
    while (ring.is_outstanding(user_data)) {
        uint64_t now = now_ns();
        if (now >= until) return false;
        ring.wait_for(until - now);
    }
    return true;
}

// Closes the ring, then checks nothing of the request outlives it: a read
// still holding the pipe's read end (our own fd closed first), or io-wq
// workers, ours or the SQ thread's.
void close_and_check_leaks(Ctx& ctx, std::optional<Ring>& ring, PendingTarget& target, size_t workers_before) {
    target.pipe.read.reset();
    ring.reset();
    // io_uring_cancelation(7): "When an io_uring instance is closed ... all
    // pending requests are automatically canceled": none keeps its file.
    ctx.expect_true(readers_gone_within(target.pipe.write.get(), 2000),
                    "2 s after the ring was closed a request still holds the pipe's read end");
    // io_uring_clean_tctx() -> io_wq_put_and_exit() (io_uring/tctx.c) ends
    // the exited thread's workers; the SQ thread's go with its last ring.
    size_t left = 0;
    bool gone = wait_workers(getpid(), 2 * kSecond, [&](Workers w) { return (left = w.total) <= workers_before; });
    ctx.expect_true(gone, str(left, " io-wq worker thread(s) (iou-wrk-*) still there 2 s after the submitting thread "
                              "exited and the ring was closed; ", workers_before, " before"));
}

enum class Issuer { any, single };
struct ThreadParams {
    Setup setup;
    Issuer issuer;
    Placement req;
};

const Register<ThreadParams> thread_exit_ends_once{{
    .family = cancel,
    .name = "thread-exit-requests-end-once",
    .summary = "a pending read outlives its submitting thread and ends once (its data, or -ECANCELED) when data "
               "arrives; an io-wq openat ends once; no CQE or worker after the ring is closed",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_OPENAT),
              when(&ThreadParams::issuer, Issuer::single,
                   needs_setup_flags(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_R_DISABLED))},
    .variants = grid(setups(&ThreadParams::setup, {Setup::none, Setup::coop_taskrun, Setup::sqpoll}),
                     axis("issuer", &ThreadParams::issuer, {{Issuer::any, "any"}, {Issuer::single, "single"}}),
                     placements(&ThreadParams::req)),
    .body = [](Ctx& ctx, const ThreadParams& p) {
        size_t workers_before = io_workers(getpid()).total;
        bool single = p.issuer == Issuer::single;
        // io_uring_setup(2): the single issuer is "the task that enables the ring".
        std::optional<Ring> ring;
        ring.emplace(ctx, p.setup, 0, 32, single ? IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_R_DISABLED : 0);
        PendingTarget target(ctx, *ring, p.req);
        prep_raw_barrier(*ring);
        if (const char* failed = submit_in_thread_and_exit(*ring, single, p.req))
            ctx.error(str("submitting thread: ", failed));
        bool sqpoll = p.setup == Setup::sqpoll;
        bool ended_at_exit = reap_ended(*ring, kTarget, 50'000'000);
        ctx.metric("ended_at_thread_exit", ended_at_exit);
        // liburing test/thread-exit.c: requests "don't cancel on thread exit";
        // io_uring_files_cancel() leaves untracked requests. With SQPOLL the
        // SQ thread, not ours, issued it (io_uring_setup(2) SINGLE_ISSUER).
        if (p.req == Placement::poll || sqpoll)
            ctx.expect_true(!ended_at_exit, "the thread's exit ended its pending request");
        target.release(ctx);
        bool ended = reap_ended(*ring, kTarget, 2 * kSecond);
        ring->settle(kQuietNs);
        ctx.must(Check{ended, "the request had not ended 2 s after its thread exited and it was released"});
        int res = cqe_res(*ring, kTarget);
        ctx.metric("target_res", res_text(res));
        ctx.expect(single_completion(ring->trace().all(), kTarget));
        if (p.req == Placement::poll) {
            // Its task gone, the poll wakeup's task_work runs from the ring's
            // fallback work, which cancels it (io_poll_check_events():
            // io_should_terminate_tw() -> -ECANCELED); an SQ thread reads.
            std::vector<int> allowed = sqpoll ? std::vector<int>{8} : std::vector<int>{8, -ECANCELED};
            ctx.expect(single_completion(ring->trace().all(), kTarget, allowed));
            // A canceled read took nothing; a completed one took it all.
            ctx.expect_eq(target.unread(ctx), res == 8 ? 0 : 8, "bytes left in the pipe after the read ended " + res_text(res));
            if (res == 8) ctx.expect_eq(target.buf, PendingTarget::kValue, "data the read returned");
        } else {
            // The exited thread's io-wq ended the blocked open: -EINTR, or
            // -ECANCELED if still queued; a surviving one opens the FIFO.
            bool fd = res >= 0;
            ctx.expect_true(fd || (!sqpoll && (res == -EINTR || res == -ECANCELED)),
                            "the io-wq openat of the exited thread ended " + res_text(res) + restart_code_note(res));
            if (fd) close(res);
        }
        close_and_check_leaks(ctx, ring, target, workers_before);
    }}};

struct DeferParams {
    Setup setup;
    Placement req;
};

const Register<DeferParams> defer_taskrun_exit{{
    .family = cancel,
    .name = "thread-exit-defer-taskrun-wait-eexist",
    .summary = "after a DEFER_TASKRUN ring's submitting thread exited, another thread's wait is refused with -EEXIST; "
               "closing the ring releases the pending read or io-wq openat",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_OPENAT), needs_setup_flags(IORING_SETUP_R_DISABLED)},
    .variants = grid(setups(&DeferParams::setup, {Setup::defer_taskrun}), placements(&DeferParams::req)),
    .body = [](Ctx& ctx, const DeferParams& p) {
        size_t workers_before = io_workers(getpid()).total;
        std::optional<Ring> ring;
        ring.emplace(ctx, p.setup, 0, 32, IORING_SETUP_R_DISABLED);
        PendingTarget target(ctx, *ring, p.req);
        prep_raw_barrier(*ring);
        if (const char* failed = submit_in_thread_and_exit(*ring, true, p.req))
            ctx.error(str("submitting thread: ", failed));
        target.release(ctx);
        // A bounded GETEVENTS wait (EXT_ARG timeout) straight from the syscall,
        // so that liburing's own checks of the CQ ring cannot answer it.
        __kernel_timespec ten_ms{0, 10'000'000};
        io_uring_getevents_arg arg{0, _NSIG / 8, 0, reinterpret_cast<uint64_t>(&ten_ms)};
        long ret = syscall(__NR_io_uring_enter, ring->get()->ring_fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                           &arg, sizeof(arg));
        int err = ret < 0 ? -errno : int(ret);
        // io_uring_enter(2) IORING_ENTER_GETEVENTS: with DEFER_TASKRUN "the
        // thread issuing the syscall must be the thread that created the
        // io_uring ... or be the thread that enabled the ring"; EEXIST "The
        // thread submitting the work is invalid".
        ctx.expect_eq(err, -EEXIST, "GETEVENTS wait by a thread other than the exited submitter");
        std::vector<Cqe> peeked;
        peek_for(ring->get(), peeked, kTarget, kQuietNs);
        ctx.metric("cqe_in_cq_ring_after_exit", !peeked.empty());
        // io_uring_setup(2) DEFER_TASKRUN: completions may "not be delivered"
        // unless the submitter waits; nothing promises more, so only that
        // closing the ring still ends the request.
        close_and_check_leaks(ctx, ring, target, workers_before);
    }}};

}  // namespace
