// Link timeouts, after io_uring_prep_link_timeout(3), io_uring_enter(2)
// (IORING_OP_LINK_TIMEOUT, IOSQE_IO_LINK, IOSQE_IO_HARDLINK) and
// io_uring_linked_requests(7): which side wins decides both results, a link
// timeout reports only documented values, soft and hard chains continue as
// documented after it fires, and IORING_LINK_TIMEOUT_UPDATE moves it.
#include <unistd.h>

#include "net.h"
#include "timeout_common.h"

namespace {

using namespace uc;
using namespace uc::timeouts;

const auto kSetups = grid(setups(&SetupOnly::setup, all_setups()));

// uapi io_uring.h: IORING_LINK_TIMEOUT_UPDATE in TIMEOUT_REMOVE's
// timeout_flags updates a linked timeout (5.15, "io_uring: allow updating
// linked timeouts"); a kernel without it answers -EINVAL.
const CapabilityProbe link_update_probe{"link_timeout_update", [](const Probe& probe) {
    return timeout_flag_answer(probe, IORING_OP_TIMEOUT_REMOVE, IORING_TIMEOUT_UPDATE | IORING_LINK_TIMEOUT_UPDATE,
                               "IORING_OP_TIMEOUT_REMOVE with IORING_TIMEOUT_UPDATE|IORING_LINK_TIMEOUT_UPDATE of an unknown user_data");
}};

// A pipe read (kTarget) guarded by a link timeout (kTimeout) of `rel_ns`;
// `chain` (IOSQE_IO_LINK or _HARDLINK) on both when a request follows the pair.
TimeoutExpect read_with_link_timeout(Ring& ring, int fd, uint64_t* buf, int64_t rel_ns, unsigned chain = 0) {
    static __kernel_timespec ts;
    ts = timespec_of(rel_ns);
    io_uring_sqe* read = ring.sqe(kTarget, "pipe read, linked");
    io_uring_prep_read(read, fd, buf, sizeof(*buf), 0);
    read->flags |= chain ? chain : IOSQE_IO_LINK;
    int64_t armed = int64_t(now_ns());
    io_uring_sqe* timeout = ring.sqe(kTimeout, "link timeout");
    io_uring_prep_link_timeout(timeout, &ts, 0);
    timeout->flags |= chain;
    return {.user_data = kTimeout, .armed_ns = armed, .deadline_ns = armed + rel_ns, .late_bound_ns = kLateBoundNs,
            .allowed_res = {-ETIME}};
}

// Waits for both sides within the window; if the timeout never fired, cancels
// the read so the scenario ends clean, and says so.
bool reap_pair(Ctx& ctx, Ring& ring, const TimeoutExpect& expect) {
    uint64_t until = uint64_t(expect.deadline_ns + kLateBoundNs);
    bool done = reap_final_by(ring, kTimeout, until) && reap_final_by(ring, kTarget, now_ns() + 200 * kMs);
    if (!done) {
        io_uring_prep_cancel64(ring.sqe(kCleanup, "cancel of the read (cleanup)"), kTarget, 0);
        ring.submit();
        reap_final_by(ring, kTarget, now_ns() + 200 * kMs);
        ctx.expect(Check::fail(str("link timeout of ", (expect.deadline_ns - expect.armed_ns) / kMs,
                                   " ms: the pair had not completed ", kLateBoundNs / kMs,
                                   " ms (the stated late bound) after it was due")));
    }
    ring.settle(kQuietNs);
    return done;
}

const Register<SetupOnly> link_fires{{
    .family = family,
    .name = "link-expires-cancels-request",
    .summary = "a 10 ms link timeout on a read that cannot complete: read -ECANCELED/-EINTR, timeout -ETIME after 10 ms",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_LINK_TIMEOUT), needs_op(IORING_OP_ASYNC_CANCEL)},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        Pipe pipe = make_pipe(ctx);
        uint64_t buf = 0;
        TimeoutExpect expect = read_with_link_timeout(ring, pipe.read.get(), &buf, 10 * kMs);
        ring.submit();
        if (!reap_pair(ctx, ring, expect)) return;
        // io_uring_linked_requests(7): "If the timeout expires first: The read
        // CQE has -ECANCELED (or -EINTR if it was in progress); The timeout CQE
        // has -ETIME"; io_uring_prep_link_timeout(3) lists only -ETIME,
        // -EINVAL, -EFAULT, -ECANCELED and -ENOENT as its results.
        ctx.expect(link_timeout_outcome(ring.trace().all(), {kTimeout, kTarget, LinkRace::timeout_fires}));
        ctx.expect(timeout_completion(ring.trace().all(), expect));
        auto mine = ring.trace().for_request(kTimeout);
        record_latency(ctx, "link", {int64_t(mine.front().t_ns) - expect.deadline_ns});
    }}};

const Register<SetupOnly> link_request_first{{
    .family = family,
    .name = "link-request-first-ecanceled",
    .summary = "a read that completes before its 5 s link timeout keeps its result; the timeout ends -ECANCELED at once",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_LINK_TIMEOUT), needs_op(IORING_OP_ASYNC_CANCEL)},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        Pipe pipe = make_pipe(ctx);
        uint64_t value = 0x0123456789abcdef, buf = 0;
        send_all(ctx, pipe.write.get(), &value, sizeof(value));
        TimeoutExpect expect = read_with_link_timeout(ring, pipe.read.get(), &buf, 5'000 * kMs);
        expect.allowed_res = {-ECANCELED};
        ring.submit();
        // Completion of the read cancels the timeout: it must not wait for its 5 s.
        expect.deadline_ns = expect.armed_ns;
        if (!reap_pair(ctx, ring, expect)) return;
        // io_uring_linked_requests(7): "If the read completes before the
        // timeout: The read CQE has the actual result; The timeout CQE has
        // -ECANCELED".
        ctx.expect(link_timeout_outcome(ring.trace().all(), {kTimeout, kTarget, LinkRace::request_first}));
        ctx.expect(single_completion(ring.trace().all(), kTarget, {int(sizeof(value))}));
        ctx.expect_eq(buf, value, "data read before the link timeout");
    }}};

struct ChainParams {
    Setup setup = Setup::none;
    bool hard = false;
};

const Register<ChainParams> link_chain{{
    .family = family,
    .name = "link-chain-after-expiry",
    .summary = "read -> link timeout -> nop: on expiry a soft link cancels the nop (-ECANCELED), a hard link runs it (0)",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_LINK_TIMEOUT), needs_op(IORING_OP_ASYNC_CANCEL)},
    .variants = grid(setups(&ChainParams::setup, all_setups()), axis("link", &ChainParams::hard, {{false, "soft"}, {true, "hard"}})),
    .body = [](Ctx& ctx, const ChainParams& p) {
        Ring ring(ctx, p.setup);
        Pipe pipe = make_pipe(ctx);
        uint64_t buf = 0;
        TimeoutExpect expect =
            read_with_link_timeout(ring, pipe.read.get(), &buf, 10 * kMs, p.hard ? IOSQE_IO_HARDLINK : IOSQE_IO_LINK);
        io_uring_prep_nop(ring.sqe(kNext, "nop after the pair"));
        ring.submit();
        if (!reap_pair(ctx, ring, expect)) return;
        reap_final_by(ring, kNext, now_ns() + 200 * kMs);
        ctx.expect(link_timeout_outcome(ring.trace().all(), {kTimeout, kTarget, LinkRace::timeout_fires}));
        ctx.expect(timeout_completion(ring.trace().all(), expect));
        // io_uring_linked_requests(7): soft links - "If a request in the chain
        // fails ... all subsequent requests in the chain are canceled with
        // -ECANCELED"; hard links - "The chain continues executing even if a
        // request fails."
        ctx.expect(single_completion(ring.trace().all(), kNext, {p.hard ? 0 : -ECANCELED}));
    }}};

const Register<SetupOnly> link_update{{
    .family = family,
    .name = "link-update",
    .summary = "IORING_LINK_TIMEOUT_UPDATE moves a pending 5 s link timeout to 10 ms: update 0, -ETIME 10 ms later",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_LINK_TIMEOUT), needs_op(IORING_OP_TIMEOUT_REMOVE),
              needs_op(IORING_OP_ASYNC_CANCEL), needs_capability("link_timeout_update")},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        Pipe pipe = make_pipe(ctx);
        uint64_t buf = 0;
        read_with_link_timeout(ring, pipe.read.get(), &buf, 5'000 * kMs);
        ring.submit();
        __kernel_timespec ts = timespec_of(10 * kMs);
        int64_t at = int64_t(now_ns());
        // TIMEOUT_UPDATE (which io_uring_prep_timeout_update sets) plus
        // LINK_TIMEOUT_UPDATE: the link kind of update, as liburing's
        // test/link-timeout.c asks for it.
        io_uring_prep_timeout_update(ring.sqe(kControl, "link timeout update"), &ts, kTimeout, IORING_LINK_TIMEOUT_UPDATE);
        ring.submit();
        TimeoutExpect expect{.user_data = kTimeout, .armed_ns = at, .deadline_ns = at + 10 * kMs,
                             .late_bound_ns = kLateBoundNs, .allowed_res = {-ETIME}};
        if (!reap_pair(ctx, ring, expect)) return;
        reap_final_by(ring, kControl, now_ns() + 200 * kMs);
        // io_uring_enter(2) IORING_OP_TIMEOUT_REMOVE: an update takes the new
        // time from addr2, "addr and return values are same as before" (0 when
        // found); the moved timeout then fires as a link timeout does.
        ctx.expect(single_completion(ring.trace().all(), kControl, {0}));
        ctx.expect(link_timeout_outcome(ring.trace().all(), {kTimeout, kTarget, LinkRace::timeout_fires}));
        ctx.expect(timeout_completion(ring.trace().all(), expect));
        auto mine = ring.trace().for_request(kTimeout);
        record_latency(ctx, "link_updated", {int64_t(mine.front().t_ns) - expect.deadline_ns});
    }}};

}  // namespace
