// Cancelation semantics: one scenario per rule of io_uring_cancelation(7),
// with the return values of io_uring_prep_cancel(3) and
// io_uring_register_sync_cancel(3). The eventfd race of seed 001 is in
// cancel_race.cpp.
//
// Every scenario that cancels settles its round through cancel_accounting():
// each request yields exactly one CQE, in whatever order the cancel's and the
// target's CQEs arrive ("The order of these CQEs is not guaranteed").
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <vector>

#include "cancel_checks.h"
#include "cancel_rounds.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;
using namespace cancel_family;

// --- capability probes ---

// Cancels a pending pipe read (on fixed file slot 0 when `fixed`) with
// `flags` on a scratch ring. io_async_cancel_prep() refuses a flag it does
// not know, and a field it does not use (sqe->len before IORING_ASYNC_CANCEL_OP),
// with -EINVAL (io_uring/cancel.c); any other answer means the kernel took
// the flags: whether the cancel then finds the read is for the scenarios to
// judge, so it is recorded, not decided on.
CapabilityEvidence cancel_of_pending_read(const Probe& probe, const std::string& flag_names, unsigned flags,
                                          bool fixed = false) {
    for (int op : {IORING_OP_READ, IORING_OP_ASYNC_CANCEL})
        if (auto missing = lacks_op(probe, op)) return *missing;
    std::string tried = flag_names + " on a cancel of a pending pipe read" + (fixed ? " on fixed file slot 0" : "") +
                        ((flags & IORING_ASYNC_CANCEL_OP) ? " (sqe->len = IORING_OP_READ)" : "");
    constexpr uint64_t kRead = 2, kProbeCancel = 1;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return untried(tried, "pipe2: " + errno_name(errno));
    io_uring ring{};
    std::optional<CapabilityEvidence> evidence;
    uint64_t buf = 0;
    if (int ret = io_uring_queue_init(4, &ring, 0); ret < 0) {
        evidence = untried(tried, "io_uring_queue_init: " + errno_name(ret));
    } else {
        int registered = fixed ? io_uring_register_files(&ring, &fds[0], 1) : 0;
        if (registered < 0) {
            evidence = untried(tried, "io_uring_register_files: " + errno_name(registered));
        } else {
            io_uring_sqe* read = io_uring_get_sqe(&ring);
            io_uring_prep_read(read, fixed ? 0 : fds[0], &buf, sizeof(buf), 0);
            read->flags |= fixed ? IOSQE_FIXED_FILE : 0;
            read->user_data = kRead;
            io_uring_submit(&ring);
            io_uring_sqe* cancel = io_uring_get_sqe(&ring);
            io_uring_prep_cancel64(cancel, kRead, int(flags));
            cancel->fd = fixed ? 0 : fds[0];
            if (flags & IORING_ASYNC_CANCEL_OP) cancel->len = IORING_OP_READ;
            cancel->user_data = kProbeCancel;
            io_uring_submit(&ring);
            // A cancel completes inline; a second is room for a slow (emulated) machine.
            constexpr unsigned kWaitMs = 1000;
            SqeAnswer answer{std::nullopt, kWaitMs};
            __kernel_timespec limit{kWaitMs / 1000, 0};
            io_uring_cqe* cqe = nullptr;
            while (io_uring_wait_cqe_timeout(&ring, &cqe, &limit) == 0) {
                bool ours = cqe->user_data == kProbeCancel;
                if (ours) answer.res = cqe->res;
                io_uring_cqe_seen(&ring, cqe);
                if (ours) break;
            }
            evidence = answered(tried, answer);
        }
        io_uring_queue_exit(&ring);
    }
    close(fds[0]);
    close(fds[1]);
    return *evidence;
}

const CapabilityProbe cancel_all_probe{"cancel_all", [](const Probe& probe) {
    return cancel_of_pending_read(probe, "IORING_ASYNC_CANCEL_ALL", IORING_ASYNC_CANCEL_ALL);
}};
const CapabilityProbe cancel_fd_probe{"cancel_fd", [](const Probe& probe) {
    return cancel_of_pending_read(probe, "IORING_ASYNC_CANCEL_FD", IORING_ASYNC_CANCEL_FD);
}};
const CapabilityProbe cancel_any_probe{"cancel_any", [](const Probe& probe) {
    return cancel_of_pending_read(probe, "IORING_ASYNC_CANCEL_ANY", IORING_ASYNC_CANCEL_ANY);
}};
const CapabilityProbe cancel_op_probe{"cancel_op", [](const Probe& probe) {
    return cancel_of_pending_read(probe, "IORING_ASYNC_CANCEL_OP", IORING_ASYNC_CANCEL_OP);
}};
const CapabilityProbe cancel_fd_fixed_probe{"cancel_fd_fixed", [](const Probe& probe) {
    return cancel_of_pending_read(probe, "IORING_ASYNC_CANCEL_FD|IORING_ASYNC_CANCEL_FD_FIXED",
                                  IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_FD_FIXED, true);
}};

// --- basic results ---

const Register<SetupOnly> pending_read_canceled{{
    .family = cancel,
    .name = "pending-read-canceled",
    .summary = "cancel by user_data of a pending pipe read: cancel CQE 0, read CQE -ECANCELED, once each",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_ASYNC_CANCEL)},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        PendingPipeRead pending(ctx, p.setup, kTarget);
        Ring& ring = pending.ring;
        io_uring_prep_cancel64(ring.sqe(kCancel, "cancel by user_data"), kTarget, 0);
        ring.submit();
        finish(ctx, ring, kTargetRound);
        // io_uring_cancelation(7): "res is 0 on success (request was found
        // and canceled)"; the canceled request's "res is set to -ECANCELED".
        ctx.expect_eq(cqe_res(ring, kCancel), 0, "cancel of a pending request");
        ctx.expect_eq(cqe_res(ring, kTarget), -ECANCELED, "pending request after its cancel");
    }}};

const Register<SetupOnly> unknown_user_data{{
    .family = cancel,
    .name = "unknown-user-data-enoent",
    .summary = "cancel of a user_data never submitted returns -ENOENT and leaves the pending request alone",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_ASYNC_CANCEL)},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        PendingPipeRead pending(ctx, p.setup, kOther);
        Ring& ring = pending.ring;
        Pipe& pipe = pending.pipe;
        io_uring_prep_cancel64(ring.sqe(kCancel, "cancel of an unknown user_data"), 0xdead, 0);
        ring.submit();
        ring.reap_until_final(kCancel);
        ring.settle(kQuietNs);
        // io_uring_cancelation(7): "res is -ENOENT if no matching request was found".
        ctx.expect_eq(cqe_res(ring, kCancel), -ENOENT, "cancel of a user_data never submitted");
        ctx.expect_true(ring.is_outstanding(kOther), "a cancel that matched nothing ended another request");
        complete_pending_read(ctx, ring, kOther, pipe.write.get(), "untouched read once data arrives");
    }}};

// Where an io-wq worker of ours sleeps, if in one of `waits` (kernel
// functions a blocked request sleeps in): "iou-wrk-123 (tid 456) in
// wait_for_partner". An idle worker sleeps in io_wq_worker() and never
// matches. The task's wchan names the function; its kernel stack is the
// fallback where wchan reads "0" (no symbols for this reader).
std::optional<std::string> io_worker_blocked_in(const std::vector<std::string>& waits) {
    DIR* dir = opendir("/proc/self/task");
    if (!dir) return std::nullopt;
    std::optional<std::string> found;
    while (dirent* entry = readdir(dir)) {
        if (entry->d_name[0] == '.' || found) continue;
        std::string task = std::string("/proc/self/task/") + entry->d_name;
        std::string comm, wchan, stack((std::istreambuf_iterator<char>(std::ifstream(task + "/stack").rdbuf())),
                                       std::istreambuf_iterator<char>());
        std::getline(std::ifstream(task + "/comm"), comm);
        std::getline(std::ifstream(task + "/wchan"), wchan);
        if (comm.rfind("iou-wrk-", 0) != 0) continue;
        for (const std::string& wait : waits)
            if (!found && (wchan == wait || stack.find(" " + wait + "+") != std::string::npos))
                found = str(comm, " (tid ", entry->d_name, ") in ", wait);
    }
    closedir(dir);
    return found;
}

std::optional<std::string> wait_for_io_worker_in(const std::vector<std::string>& waits, uint64_t timeout_ns) {
    uint64_t until = now_ns() + timeout_ns;
    while (now_ns() < until) {
        if (auto where = io_worker_blocked_in(waits)) return where;
        usleep(1000);
    }
    return std::nullopt;
}

// A FIFO in a private directory: opening it for reading blocks until a writer comes.
struct TempFifo {
    std::string dir, path;
    explicit TempFifo(Ctx& ctx) {
        char name[] = "/tmp/uring-conform-cancel.XXXXXX";
        if (!mkdtemp(name)) ctx.error("mkdtemp: " + errno_name(errno));
        dir = name;
        path = dir + "/fifo";
        if (mkfifo(path.c_str(), 0600) < 0) ctx.error("mkfifo: " + errno_name(errno));
    }
    ~TempFifo() {
        unlink(path.c_str());
        rmdir(dir.c_str());
    }
};

// The request that blocks in an io-wq worker.
enum class BlockingOp { openat, splice };
struct RunningParams {
    Setup setup;
    BlockingOp op;
};

const Register<RunningParams> running_request{{
    .family = cancel,
    .name = "running-request-ealready",
    .summary = "cancel of a request blocked in io-wq returns -EALREADY or 0; the request still ends once, -EINTR or -ECANCELED",
    .needs = {needs_op(IORING_OP_OPENAT), needs_op(IORING_OP_SPLICE), needs_op(IORING_OP_ASYNC_CANCEL)},
    .variants = grid(setups(&RunningParams::setup, all_setups()),
                     axis("op", &RunningParams::op, {{BlockingOp::openat, "openat"}, {BlockingOp::splice, "splice"}})),
    .body = [](Ctx& ctx, const RunningParams& p) {
        Ring ring(ctx, p.setup);
        TempFifo fifo(ctx);
        Pipe pipe = make_pipe(ctx);
        Fd null_fd(open("/dev/null", O_WRONLY | O_CLOEXEC));
        if (!null_fd) ctx.error("open /dev/null: " + errno_name(errno));
        // Neither completes on its own: nobody opens the FIFO for writing,
        // nobody writes to the pipe. Both block in an io-wq worker.
        bool openat = p.op == BlockingOp::openat;
        io_uring_sqe* sqe = ring.sqe(kTarget, openat ? "openat of a FIFO" : "splice from an empty pipe");
        if (openat)
            io_uring_prep_openat(sqe, AT_FDCWD, fifo.path.c_str(), O_RDONLY | O_CLOEXEC, 0);
        else
            io_uring_prep_splice(sqe, pipe.read.get(), -1, null_fd.get(), -1, 64, 0);
        sqe->flags |= IOSQE_ASYNC;
        ring.submit();
        // Where this request sleeps (fs/pipe.c): a FIFO open waits for a
        // writer in wait_for_partner(), called by fifo_open(); a splice from
        // an empty pipe in pipe_wait_readable() (pipe_wait() before 5.6).
        std::vector<std::string> waits = openat ? std::vector<std::string>{"wait_for_partner", "fifo_open"}
                                                : std::vector<std::string>{"pipe_wait_readable", "pipe_wait"};
        std::optional<std::string> blocked = wait_for_io_worker_in(waits, 2'000'000'000);
        ctx.metric("worker_blocked_in", blocked ? nlohmann::json(*blocked) : nlohmann::json(nullptr));
        if (!blocked)
            ctx.note("no io-wq worker was seen sleeping in " + waits[0] + " within 2 s (wchan/stack of the iou-wrk "
                     "threads); the cancel may have found the request still queued");
        io_uring_prep_cancel64(ring.sqe(kCancel, "cancel by user_data"), kTarget, 0);
        ring.submit();
        finish(ctx, ring, kTargetRound);
        int cancel_res = cqe_res(ring, kCancel);
        ctx.metric("cancel_res", res_text(cancel_res));
        ctx.metric("target_res", res_text(cqe_res(ring, kTarget)));
        // io_uring_prep_cancel(3): -EALREADY "The execution state of the
        // request has progressed far enough that cancelation is no longer
        // possible"; 0 if it was still queued.
        ctx.expect_true(cancel_res == -EALREADY || cancel_res == 0,
                        "cancel of a running request returned " + res_text(cancel_res) + ", expected -EALREADY or 0");
    }}};

// --- what a cancel matches: ALL, FD, ANY, FD_FIXED, OP ---

const Register<SetupOnly> cancel_all{{
    .family = cancel,
    .name = "cancel-all-counts",
    .summary = "IORING_ASYNC_CANCEL_ALL on a user_data shared by 3 reads returns 3; each read ends -ECANCELED once",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_ASYNC_CANCEL), needs_capability("cancel_all")},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        constexpr size_t kReads = 3;
        Ring ring(ctx, p.setup);
        Pipe pipe = make_pipe(ctx), other = make_pipe(ctx);
        uint64_t bufs[kReads + 1] = {};
        for (size_t i = 0; i < kReads; ++i) prep_pipe_read(ring, kTarget, pipe.read.get(), &bufs[i]);
        prep_pipe_read(ring, kOther, other.read.get(), &bufs[kReads]);
        issue(ring);
        io_uring_prep_cancel64(ring.sqe(kCancel, "cancel all by user_data"), kTarget, IORING_ASYNC_CANCEL_ALL);
        ring.submit();
        while (ring.trace().for_request(kTarget).size() < kReads || ring.is_outstanding(kCancel)) ring.wait();
        ring.settle(kQuietNs);
        // io_uring_cancelation(7): ALL cancels "all matching requests ... The
        // cancel CQE's res indicates how many requests were canceled."
        ctx.expect(single_completion(ring.trace().all(), kCancel, {int(kReads)}));
        auto reads = ring.trace().for_request(kTarget);
        ctx.expect_eq(reads.size(), kReads, "CQEs for the reads sharing the canceled user_data");
        for (const Cqe& cqe : reads)
            ctx.expect_true(cqe.res == -ECANCELED && !cqe.more(), "each canceled read ends -ECANCELED: " + cqe.describe());
        ctx.expect_true(ring.is_outstanding(kOther), "CANCEL_ALL by user_data ended a request with another user_data");
        complete_pending_read(ctx, ring, kOther, other.write.get(), "untouched read once data arrives");
    }}};

constexpr uint64_t kReadA1 = 11, kReadA2 = 12, kReadB = 13, kCancelFirst = 21, kCancelRest = 22;

const Register<SetupOnly> cancel_fd{{
    .family = cancel,
    .name = "cancel-fd-matches-fd",
    .summary = "IORING_ASYNC_CANCEL_FD cancels one read on that fd, with ALL the rest; a read on another fd stays pending",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_ASYNC_CANCEL), needs_capability("cancel_fd"),
              needs_capability("cancel_all")},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        Pipe a = make_pipe(ctx), b = make_pipe(ctx);
        uint64_t bufs[3] = {};
        prep_pipe_read(ring, kReadA1, a.read.get(), &bufs[0]);
        prep_pipe_read(ring, kReadA2, a.read.get(), &bufs[1]);
        prep_pipe_read(ring, kReadB, b.read.get(), &bufs[2]);
        issue(ring);
        // io_uring_prep_cancel(3): "By default, the first request matching
        // the criteria given will be canceled."
        io_uring_prep_cancel_fd(ring.sqe(kCancelFirst, "cancel by fd"), a.read.get(), 0);
        ring.submit();
        ring.reap(2);
        ring.settle(kQuietNs);
        size_t a_ended = ring.trace().for_request(kReadA1).size() + ring.trace().for_request(kReadA2).size();
        ctx.expect_eq(a_ended, size_t(1), "reads on the fd ended by one IORING_ASYNC_CANCEL_FD without ALL");
        io_uring_prep_cancel_fd(ring.sqe(kCancelRest, "cancel all by fd"), a.read.get(), IORING_ASYNC_CANCEL_ALL);
        ring.submit();
        const uint64_t on_a[] = {kReadA1, kReadA2};
        const CancelRequest cancels[] = {{kCancelFirst, CancelReport::first_match, on_a},
                                         {kCancelRest, CancelReport::count, on_a}};
        finish(ctx, ring, {.targets = on_a, .cancels = cancels});
        ctx.expect_eq(cqe_res(ring, kCancelFirst), 0, "IORING_ASYNC_CANCEL_FD with a pending read on the fd");
        ctx.expect_eq(cqe_res(ring, kCancelRest), 1, "IORING_ASYNC_CANCEL_FD|ALL count with one read left on the fd");
        ctx.expect_true(ring.is_outstanding(kReadB), "cancel by fd ended a read on another fd");
        complete_pending_read(ctx, ring, kReadB, b.write.get(), "read on the other fd once data arrives");
    }}};

struct AnyParams {
    Setup setup;
    bool with_all;  // IORING_ASYNC_CANCEL_ALL as well
};

const Register<AnyParams> cancel_any{{
    .family = cancel,
    .name = "cancel-any-matches-every-request",
    .summary = "IORING_ASYNC_CANCEL_ANY ignores user_data and fd: its count equals the reads it ended; with ALL, all 3",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_ASYNC_CANCEL), needs_capability("cancel_any"),
              needs_capability("cancel_all")},
    .variants = grid(setups(&AnyParams::setup, all_setups()),
                     axis("flags", &AnyParams::with_all, {{false, "any"}, {true, "any_all"}})),
    .body = [](Ctx& ctx, const AnyParams& p) {
        Ring ring(ctx, p.setup);
        Pipe pipes[3] = {make_pipe(ctx), make_pipe(ctx), make_pipe(ctx)};
        const uint64_t reads[] = {kReadA1, kReadA2, kReadB};
        uint64_t bufs[3] = {};
        for (size_t i = 0; i < 3; ++i) prep_pipe_read(ring, reads[i], pipes[i].read.get(), &bufs[i]);
        issue(ring);
        unsigned flags = IORING_ASYNC_CANCEL_ANY | (p.with_all ? IORING_ASYNC_CANCEL_ALL : 0);
        io_uring_prep_cancel64(ring.sqe(kCancelFirst, "cancel any"), 0, int(flags));
        ring.submit();
        ring.reap_until_final(kCancelFirst);
        ring.settle(kQuietNs);
        int count = cqe_res(ring, kCancelFirst);
        size_t ended = 0;
        for (uint64_t read : reads) ended += ring.trace().for_request(read).size();
        // io_uring_cancelation(7) says ANY cancels "any single request" and,
        // with ALL, drains the ring; io_uring_prep_cancel(3) says a flag that
        // can match several requests returns how many it canceled. So: at
        // least one, as many as ended; all of them with ALL.
        ctx.metric("any_canceled", count);
        ctx.expect_true(count >= 1 && size_t(count) == ended,
                        str("IORING_ASYNC_CANCEL_ANY returned ", res_text(count), " while ", ended, " of 3 reads ended"));
        if (p.with_all) ctx.expect_eq(count, 3, "IORING_ASYNC_CANCEL_ANY|ALL count with 3 pending reads");
        io_uring_prep_cancel64(ring.sqe(kCancelRest, "cancel any, all"), 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
        ring.submit();
        const CancelRequest cancels[] = {{kCancelFirst, CancelReport::count, reads}, {kCancelRest, CancelReport::count, reads}};
        finish(ctx, ring, {.targets = reads, .cancels = cancels, .targets_may_complete = false});
    }}};

const Register<SetupOnly> cancel_fd_fixed{{
    .family = cancel,
    .name = "cancel-fd-fixed-matches-slot",
    .summary = "IORING_ASYNC_CANCEL_FD_FIXED cancels the read on that registered slot; the read on another slot stays",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_ASYNC_CANCEL), needs_capability("cancel_fd_fixed")},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        Pipe a = make_pipe(ctx), b = make_pipe(ctx);
        int files[2] = {a.read.get(), b.read.get()};
        if (int ret = io_uring_register_files(ring.get(), files, 2); ret < 0) ctx.error("io_uring_register_files: " + errno_name(ret));
        uint64_t bufs[2] = {};
        for (int slot = 0; slot < 2; ++slot) {
            io_uring_sqe* sqe = ring.sqe(slot == 0 ? kTarget : kOther, "read of a fixed file");
            io_uring_prep_read(sqe, slot, &bufs[slot], sizeof(bufs[slot]), 0);
            sqe->flags |= IOSQE_FIXED_FILE;
        }
        issue(ring);
        // io_uring_cancelation(7): "The file descriptor is a fixed file
        // (registered file index) rather than a regular fd."
        io_uring_prep_cancel_fd(ring.sqe(kCancel, "cancel by fixed fd"), 0, IORING_ASYNC_CANCEL_FD_FIXED);
        ring.submit();
        finish(ctx, ring, kTargetRound);
        ctx.expect_eq(cqe_res(ring, kCancel), 0, "cancel of the pending read on fixed slot 0");
        ctx.expect_eq(cqe_res(ring, kTarget), -ECANCELED, "read on fixed slot 0 after its cancel");
        ctx.expect_true(ring.is_outstanding(kOther), "cancel of fixed slot 0 ended the read on slot 1");
        complete_pending_read(ctx, ring, kOther, b.write.get(), "read on fixed slot 1 once data arrives");
    }}};

const Register<SetupOnly> cancel_op{{
    .family = cancel,
    .name = "cancel-op-matches-opcode",
    .summary = "IORING_ASYNC_CANCEL_OP with IORING_OP_READ cancels the pending read, not the pending poll",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_POLL_ADD), needs_op(IORING_OP_ASYNC_CANCEL),
              needs_capability("cancel_op")},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        Pipe a = make_pipe(ctx), b = make_pipe(ctx);
        uint64_t buf = 0;
        prep_pipe_read(ring, kTarget, a.read.get(), &buf);
        io_uring_prep_poll_add(ring.sqe(kOther, "poll add"), b.read.get(), POLLIN);
        issue(ring);
        // include/uapi/linux/io_uring.h: IORING_ASYNC_CANCEL_OP "Match
        // request based on opcode" (sqe->len), ignoring user_data (6.6).
        io_uring_sqe* sqe = ring.sqe(kCancel, "cancel by opcode");
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_OP);
        sqe->len = IORING_OP_READ;
        ring.submit();
        Cqe cancel_cqe = ring.reap_until_final(kCancel).back();
        // io_uring_cancelation(7): "res is 0 on success (request was found
        // and canceled)". A kernel that took the flag and found nothing
        // leaves the read pending: stop here rather than wait for it.
        ctx.must(Check{cancel_cqe.res == 0,
                       "cancel by opcode READ with one pending read returned " + res_text(cancel_cqe.res) +
                           ", expected 0; the read is still pending",
                       cancel_cqe});
        finish(ctx, ring, kTargetRound);
        ctx.expect_eq(cqe_res(ring, kTarget), -ECANCELED, "pending read after the cancel by opcode");
        ctx.expect_true(ring.is_outstanding(kOther), "cancel by opcode READ ended a POLL_ADD");
        char byte = 'x';
        send_all(ctx, b.write.get(), &byte, 1);
        ring.reap_until_final(kOther);
        ctx.expect_true(cqe_res(ring, kOther) & POLLIN, "untouched poll reports POLLIN once data arrives");
    }}};

}  // namespace
