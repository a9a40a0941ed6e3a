// Cancelation by time, by file and ring lifetime, synchronously, and of
// multishot requests: the second half of the cancel family (rules of
// io_uring_cancelation(7)); cancel.cpp has the basic results and the
// match flags, cancel_race.cpp the eventfd race. Each round settles through
// cancel_accounting() as described in cancel.cpp.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <fstream>
#include "cancel_checks.h"
#include "cancel_rounds.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;
using namespace cancel_family;

// --- capability probes ---

// io_uring_register(2) refuses an opcode it does not know with -EINVAL; a
// known IORING_REGISTER_SYNC_CANCEL answers the cancel (-ENOENT here).
const CapabilityProbe sync_cancel_probe{"sync_cancel", [](const Probe&) {
    const char* tried = "IORING_REGISTER_SYNC_CANCEL of a user_data never submitted";
    io_uring ring{};
    if (int ret = io_uring_queue_init(4, &ring, 0); ret < 0) return untried(tried, "io_uring_queue_init: " + errno_name(ret));
    io_uring_sync_cancel_reg reg{};
    reg.addr = 0x5eed;
    reg.timeout.tv_sec = -1;
    reg.timeout.tv_nsec = -1;
    int res = io_uring_register_sync_cancel(&ring, &reg);
    io_uring_queue_exit(&ring);
    return answered(tried, res);
}};

// --- linked timeouts ---

constexpr uint64_t kLinkTimeout = 5;

void prep_read_with_link_timeout(Ring& ring, int fd, uint64_t* buf, __kernel_timespec* ts) {
    io_uring_sqe* sqe = ring.sqe(kTarget, "pipe read, linked");
    io_uring_prep_read(sqe, fd, buf, sizeof(*buf), 0);
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_prep_link_timeout(ring.sqe(kLinkTimeout, "link timeout"), ts, 0);
}

const Register<SetupOnly> link_timeout_expires{{
    .family = cancel,
    .name = "link-timeout-expiry-cancels-read",
    .summary = "a linked timeout that expires cancels the read (-ECANCELED) and completes with -ETIME",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_LINK_TIMEOUT)},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        Pipe pipe = make_pipe(ctx);
        uint64_t buf = 0;
        __kernel_timespec ten_ms{0, 10'000'000};
        prep_read_with_link_timeout(ring, pipe.read.get(), &buf, &ten_ms);
        ring.submit();
        while (ring.is_outstanding(kTarget) || ring.is_outstanding(kLinkTimeout)) ring.wait();
        ring.settle(kQuietNs);
        // io_uring_cancelation(7): "The kernel handles the cancelation
        // automatically if the timeout expires"; io_uring_prep_link_timeout(3):
        // the timeout completes with -ETIME, the request with -ECANCELED.
        ctx.expect(single_completion(ring.trace().all(), kTarget, {-ECANCELED}));
        ctx.expect(single_completion(ring.trace().all(), kLinkTimeout, {-ETIME}));
    }}};

const Register<SetupOnly> read_first{{
    .family = cancel,
    .name = "read-first-cancels-link-timeout",
    .summary = "a read that completes before its linked timeout returns its data; the timeout ends -ECANCELED",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_LINK_TIMEOUT)},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        Pipe pipe = make_pipe(ctx);
        uint64_t buf = 0;
        __kernel_timespec five_s{5, 0};
        prep_read_with_link_timeout(ring, pipe.read.get(), &buf, &five_s);
        issue(ring);
        const uint64_t value = 42;
        send_all(ctx, pipe.write.get(), &value, sizeof(value));
        while (ring.is_outstanding(kTarget) || ring.is_outstanding(kLinkTimeout)) ring.wait();
        ring.settle(kQuietNs);
        // io_uring_prep_link_timeout(3): if the linked request completes
        // first, the timeout is canceled and completes with -ECANCELED.
        ctx.expect(single_completion(ring.trace().all(), kTarget, {int(sizeof(value))}));
        ctx.expect(single_completion(ring.trace().all(), kLinkTimeout, {-ECANCELED}));
        ctx.expect_eq(buf, value, "data read before the timeout");
    }}};

// --- what does not cancel, and what does: close(), ring exit ---

constexpr uint64_t kClose = 6;

// poll(2) with no events still reports POLLERR: on a pipe's write end, once
// no read end is left anywhere, including in a pending io_uring request.
bool readers_gone(int write_fd, int timeout_ms) {
    pollfd pfd{write_fd, 0, 0};
    return poll(&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLERR);
}

enum class CloseBy { syscall, io_uring };
struct CloseParams {
    Setup setup;
    CloseBy close;
};

const Register<CloseParams> close_keeps_pending{{
    .family = cancel,
    .name = "close-keeps-request-pending",
    .summary = "closing the fd of a pending read (close(2) or IORING_OP_CLOSE) does not cancel it; data still completes it",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_CLOSE)},
    .variants = grid(setups(&CloseParams::setup, all_setups()),
                     axis("close", &CloseParams::close, {{CloseBy::syscall, "syscall"}, {CloseBy::io_uring, "io_uring"}})),
    .body = [](Ctx& ctx, const CloseParams& p) {
        PendingPipeRead pending(ctx, p.setup, kTarget);
        Ring& ring = pending.ring;
        Pipe& pipe = pending.pipe;
        int fd = pipe.read.release();
        if (p.close == CloseBy::syscall) {
            if (close(fd) < 0) ctx.error("close: " + errno_name(errno));
        } else {
            io_uring_prep_close(ring.sqe(kClose, "IORING_OP_CLOSE"), fd);
            ring.submit();
            ring.reap_until_final(kClose);
            ctx.expect_eq(cqe_res(ring, kClose), 0, "IORING_OP_CLOSE of the read end");
        }
        ring.settle(kQuietNs);
        // io_uring_cancelation(7): "pending requests operating on that fd are
        // not automatically canceled ... will not automatically complete or fail".
        ctx.expect_true(ring.is_outstanding(kTarget), "closing the fd ended the pending read");
        ctx.expect_true(!readers_gone(pipe.write.get(), 0), "the pending read holds no reference to the closed read end");
        complete_pending_read(ctx, ring, kTarget, pipe.write.get(), "read on the closed fd once data arrives");
    }}};

// The child of ring-exit-cancels-pending: a ring with one pending read on
// `read_fd`, whose own descriptor it then closes, so that the request holds
// the last reference to the read end. Reports on `report_fd`, waits for `go`
// on `control_fd`, then exits the ring or the whole process.
[[noreturn]] void ring_exit_child(Setup setup, bool process_exit, int read_fd, int report_fd, int control_fd) {
    io_uring ring{};
    io_uring_params params{};
    params.flags = setup_flags(setup);
    if (setup == Setup::sqpoll) params.sq_thread_idle = 50;
    static uint64_t buf;
    io_uring_cqe* cqe = nullptr;
    if (io_uring_queue_init_params(8, &ring, &params) < 0) _exit(2);
    io_uring_prep_read(io_uring_get_sqe(&ring), read_fd, &buf, sizeof(buf), 0);
    io_uring_prep_nop(io_uring_get_sqe(&ring));
    io_uring_sqe_set_data64(&ring.sq.sqes[1], kBarrier);
    if (io_uring_submit(&ring) != 2 || io_uring_wait_cqe(&ring, &cqe) < 0 || cqe->user_data != kBarrier) _exit(3);
    close(read_fd);
    char go = 0;
    if (write(report_fd, "s", 1) != 1 || read(control_fd, &go, 1) != 1) _exit(4);
    if (process_exit) _exit(0);
    io_uring_queue_exit(&ring);
    if (write(report_fd, "x", 1) != 1 || read(control_fd, &go, 1) != 1) _exit(5);
    _exit(0);
}

bool read_byte(int fd, int timeout_ms) {
    pollfd pfd{fd, POLLIN, 0};
    char byte = 0;
    return poll(&pfd, 1, timeout_ms) == 1 && read(fd, &byte, 1) == 1;
}

struct ExitParams {
    Setup setup;
    bool process_exit;  // the process exits instead of calling io_uring_queue_exit()
};

const Register<ExitParams> ring_exit{{
    .family = cancel,
    .name = "ring-exit-cancels-pending",
    .summary = "io_uring_queue_exit() or process exit cancels a pending read: it drops its file reference",
    .needs = {needs_op(IORING_OP_READ)},
    .variants = grid(setups(&ExitParams::setup, all_setups()),
                     axis("exit", &ExitParams::process_exit, {{false, "queue_exit"}, {true, "process_exit"}})),
    .body = [](Ctx& ctx, const ExitParams& p) {
        Pipe data = make_pipe(ctx), report = make_pipe(ctx), control = make_pipe(ctx);
        bool process_exit = p.process_exit;
        pid_t pid = fork();
        if (pid < 0) ctx.error("fork: " + errno_name(errno));
        if (pid == 0)
            ring_exit_child(p.setup, process_exit, data.read.get(), report.write.get(), control.read.get());
        data.read.reset();
        report.write.reset();
        bool submitted = read_byte(report.read.get(), 5000);
        // The request is now the read end's only holder (close(2) does not cancel it).
        bool held = submitted && !readers_gone(data.write.get(), 0);
        int status = 0;
        bool told = write(control.write.get(), "g", 1) == 1;
        bool ring_gone = told && (process_exit ? waitpid(pid, &status, 0) == pid : read_byte(report.read.get(), 5000));
        // io_uring_cancelation(7): "When an io_uring instance is closed ... all
        // pending requests are automatically canceled." The read must not
        // live on: its reference to the pipe's read end goes.
        bool released = ring_gone && readers_gone(data.write.get(), 2000);
        if (!process_exit && (write(control.write.get(), "g", 1) != 1 || waitpid(pid, &status, 0) != pid))
            ctx.error("ring exit child: " + errno_name(errno));
        if (!submitted || !ring_gone || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            ctx.error(str("ring exit child failed (status ", status, ", submitted ", submitted, ", ring gone ", ring_gone, ")"));
        ctx.expect_true(held, "before ring exit the pending read held the pipe's read end");
        ctx.expect_true(released, "2 s after ring exit the canceled read still holds the pipe's read end");
    }}};

// --- synchronous cancelation ---

struct SyncParams {
    Setup setup;
    bool bounded;  // a 1 s timeout instead of none
};

const Register<SyncParams> sync_cancel{{
    .family = cancel,
    .name = "sync-cancel-pending-read",
    .summary = "io_uring_register_sync_cancel() of a pending read returns 0 once it is canceled; unknown user_data: -ENOENT",
    .needs = {needs_op(IORING_OP_READ), needs_capability("sync_cancel")},
    .variants = grid(setups(&SyncParams::setup, all_setups()),
                     axis("timeout", &SyncParams::bounded, {{false, "none"}, {true, "1s"}})),
    .body = [](Ctx& ctx, const SyncParams& p) {
        PendingPipeRead pending(ctx, p.setup, kTarget);
        Ring& ring = pending.ring;
        // io_uring_register_sync_cancel(3): tv_sec and tv_nsec of -1 mean no timeout.
        bool bounded = p.bounded;
        io_uring_sync_cancel_reg reg{};
        reg.addr = kTarget;
        reg.timeout.tv_sec = bounded ? 1 : -1;
        reg.timeout.tv_nsec = bounded ? 0 : -1;
        int res = io_uring_register_sync_cancel(ring.get(), &reg);
        // "This blocks until the matching request is canceled or the timeout
        // expires"; the return value is that of io_uring_prep_cancel(3).
        ctx.expect_eq(res, 0, "sync cancel of a pending read");
        ring.reap_until_final(kTarget);
        ring.settle(kQuietNs);
        ctx.expect(single_completion(ring.trace().all(), kTarget, {-ECANCELED}));
        reg.addr = 0xdead;
        ctx.expect_eq(io_uring_register_sync_cancel(ring.get(), &reg), -ENOENT, "sync cancel of an unknown user_data");
    }}};

// --- multishot ---

// Arms the round's multishot request and reaps its first CQE (with F_MORE).
Cqe arm_multishot(Ctx& ctx, Ring& ring, bool poll_op, int read_fd, int write_fd, uint64_t target,
                  __kernel_timespec* period) {
    if (poll_op)
        io_uring_prep_poll_multishot(ring.sqe(target, "multishot poll"), read_fd, POLLIN);
    else
        io_uring_prep_timeout(ring.sqe(target, "multishot timeout"), period, 0, IORING_TIMEOUT_MULTISHOT);
    issue(ring);
    char byte = 'x';
    if (poll_op) send_all(ctx, write_fd, &byte, 1);
    Cqe first = ring.wait();
    while (first.user_data != target) first = ring.wait();
    if (poll_op && read(read_fd, &byte, 1) != 1) ctx.error("read(pipe) after POLLIN");
    return first;
}

// Reaps CQEs of any request until none of `user_data` is outstanding or
// `limit_ns` passed; true when they all ended.
bool reap_until_ended(Ring& ring, std::initializer_list<uint64_t> user_data, uint64_t limit_ns) {
    uint64_t until = now_ns() + limit_ns;
    auto live = [&] {
        for (uint64_t ud : user_data)
            if (ring.is_outstanding(ud)) return true;
        return false;
    };
    while (live()) {
        uint64_t now = now_ns();
        if (now >= until) return false;
        ring.wait_for(until - now);
    }
    return true;
}

std::vector<Cqe> cqes_of(const Ring& ring, uint64_t a, uint64_t b) {
    std::vector<Cqe> out;
    for (const Cqe& cqe : ring.trace().all())
        if (cqe.user_data == a || cqe.user_data == b) out.push_back(cqe);
    return out;
}

// After a cancel that found the live multishot request not: once the ring
// has run its task_work (the request posted another CQE, so it is re-armed),
// a second cancel. Records what it returned and how the request ended.
void retry_cancel(Ctx& ctx, Ring& ring, uint64_t target, uint64_t retry) {
    uint64_t seen = ring.trace().for_request(target).size();
    uint64_t until = now_ns() + 1'000'000'000;
    while (ring.is_outstanding(target) && ring.trace().for_request(target).size() == seen && now_ns() < until)
        ring.wait_for(until - now_ns());
    io_uring_prep_cancel64(ring.sqe(retry, "second cancel by user_data"), target, 0);
    ring.submit();
    // Evidence, not a verdict: a retry that worked ends the request at once.
    bool ended = reap_until_ended(ring, {target, retry}, 300'000'000);
    ctx.metric("retry_cancel_res", res_text(cqe_res(ring, retry)));
    auto target_cqes = ring.trace().for_request(target);
    ctx.metric("retry_target_final", ended ? res_text(target_cqes.back().res) : "still live 300 ms later");
}

// Reads of /dev/zero queued in the same submission ahead of a cancel. The
// kernel issues one submission's SQEs back to back and runs task_work only
// on the way back to user space (or, with SQPOLL, in the thread's loop
// after its submit pass), and these reads complete inline; a multishot
// timeout that expires during them is off the timeout list until its
// re-arm task_work runs (io_timeout_fn() in io_uring/timeout.c), so the
// cancel behind them meets that window whenever the fill outlasts a period:
// every round, where a cancel at a random moment met it now and then.
class CancelFill {
  public:
    // Sizes the fill to last `span_ns`, from the faster of two timed runs of
    // the same reads done with read(2): timing io_uring's own batches would
    // count the waits for their CQEs (an SQPOLL thread, a sleeping waiter)
    // as reading, and a fill sized from that falls short of a period.
    CancelFill(Ctx& ctx, uint64_t span_ns) : zero_(open("/dev/zero", O_RDONLY | O_CLOEXEC)) {
        if (!zero_) ctx.error("open(/dev/zero): " + errno_name(errno));
        constexpr unsigned kSample = 16;
        uint64_t per_read = UINT64_MAX;
        for (int sample = 0; sample < 2; ++sample) {
            uint64_t start = now_ns();
            for (unsigned i = 0; i < kSample; ++i)
                if (read(zero_.get(), sink_.data(), sink_.size()) != ssize_t(sink_.size()))
                    ctx.error("read(/dev/zero): " + errno_name(errno));
            per_read = std::min<uint64_t>(per_read, std::max<uint64_t>(1, (now_ns() - start) / kSample));
        }
        reads_ = unsigned(std::clamp<uint64_t>(span_ns / per_read + 1, kSample, kMaxReads));
        ctx.metric("fill_reads", reads_);
    }
    // Queues the fill; the caller queues the cancel next and submits both.
    void queue(Ring& ring) {
        for (unsigned i = 0; i < reads_; ++i)
            io_uring_prep_read(ring.sqe(kUserData, "fill read of /dev/zero"), zero_.get(), sink_.data(), unsigned(sink_.size()), 0);
    }
    static constexpr uint64_t kUserData = 50;
    static constexpr unsigned kMaxReads = 200;  // the ring's SQ holds them and the cancel

  private:
    Fd zero_;
    std::vector<char> sink_ = std::vector<char>(64 << 10);
    unsigned reads_ = 0;
};

enum class MultishotOp { poll, timeout };
struct MultishotParams {
    Setup setup;
    MultishotOp op;
};

const Register<MultishotParams> multishot_cancel{{
    .family = cancel,
    .name = "multishot-cancel-ends-without-more",
    .summary = "async cancel of a live multishot poll or timeout: cancel CQE 0, then one final -ECANCELED CQE without F_MORE",
    .needs = {needs_op(IORING_OP_POLL_ADD), needs_op(IORING_OP_TIMEOUT), needs_op(IORING_OP_ASYNC_CANCEL),
              when(&MultishotParams::op, MultishotOp::timeout, needs_capability("timeout_multishot"))},
    .variants = grid(setups(&MultishotParams::setup, all_setups()),
                     axis("op", &MultishotParams::op, {{MultishotOp::poll, "poll"}, {MultishotOp::timeout, "timeout"}})),
    .body = [](Ctx& ctx, const MultishotParams& p) {
        bool poll_op = p.op == MultishotOp::poll;
        Ring ring(ctx, p.setup, 0, 256);
        Pipe pipe = make_pipe(ctx);
        constexpr uint64_t kPeriodNs = 100'000;
        __kernel_timespec period{0, kPeriodNs};
        // The cancel goes behind a fill of three periods: an application's
        // batch, and the window between a timeout's expiry and its re-arm.
        CancelFill fill(ctx, 3 * kPeriodNs);
        // Whether the cancel lands in that window still depends on timing:
        // enough rounds to catch a 5 % violation.
        const uint64_t rounds = ctx.rounds_to_catch();
        for (uint64_t round = 1; round <= rounds; ++round) {
            uint64_t target = 100 + 3 * round, cancel = target + 1, retry = target + 2;
            auto violated = [&](const Check& check) {
                ctx.timing_dependent(round, 1);
                ctx.must(Check::fail(str("violated in round ", round, " of ", rounds, ": ", check.rule), check.offending));
            };
            Cqe first = arm_multishot(ctx, ring, poll_op, pipe.read.get(), pipe.write.get(), target, &period);
            ctx.must(Check{first.more(), "multishot request's first CQE lacks IORING_CQE_F_MORE", first});
            fill.queue(ring);
            io_uring_prep_cancel64(ring.sqe(cancel, "cancel by user_data"), target, 0);
            ring.submit();
            reap_until_ended(ring, {cancel}, 1'000'000'000);
            // io_uring_cancelation(7): "The multishot generates a final CQE
            // with -ECANCELED; the IORING_CQE_F_MORE flag is not set on this
            // final CQE; the cancel CQE indicates success". A live multishot
            // request cannot have "completed before the cancelation" (-ENOENT).
            if (Check found = single_completion(cqes_of(ring, target, cancel), cancel, {0}); !found) {
                bool live = ring.is_outstanding(target);
                if (live) retry_cancel(ctx, ring, target, retry);
                violated(Check::fail(str("cancel of the live multishot request returned ", res_text(cqe_res(ring, cancel)),
                                         live ? " and the request went on (retry_cancel_res: a second cancel after "
                                                "its next CQE)"
                                              : ""),
                                     found.offending));
            }
            if (!reap_until_ended(ring, {target}, 1'000'000'000)) {
                auto after = ring.trace().for_request(target);
                violated(Check::fail(str("the multishot request had not ended 1 s after its cancel returned 0 (",
                                         after.size(), " CQEs for it this round, the newest:)"),
                                     after.back()));
            }
            if (Check ended = multishot_contract(cqes_of(ring, target, cancel), target,
                                                 {.final_res = {-ECANCELED}, .error_ends_request = poll_op});
                !ended)
                violated(ended);
            ctx.add_iterations(1);
        }
        ctx.timing_dependent(rounds, 0);
    }}};

}  // namespace
