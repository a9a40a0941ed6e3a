// Timeout requests and their modifiers, after io_uring_prep_timeout(3),
// io_uring_prep_timeout_update(3) / _remove(3) and io_uring_enter(2)
// (IORING_OP_TIMEOUT, IORING_OP_TIMEOUT_REMOVE): completion counts,
// IORING_TIMEOUT_ETIME_SUCCESS, IORING_TIMEOUT_MULTISHOT, update and remove.
// All on CLOCK_MONOTONIC, the clock Ring stamps CQEs with.
#include "timeout_common.h"

namespace {

using namespace uc;
using namespace uc::timeouts;

const std::vector<Need<SetupOnly>> kTimeoutOps = {needs_op(IORING_OP_TIMEOUT), needs_op(IORING_OP_TIMEOUT_REMOVE)};
const auto kSetups = grid(setups(&SetupOnly::setup, all_setups()));

const CapabilityProbe etime_success_probe{"timeout_etime_success", [](const Probe& probe) {
    return timeout_flag_answer(probe, IORING_OP_TIMEOUT, IORING_TIMEOUT_ETIME_SUCCESS,
                               "IORING_OP_TIMEOUT with IORING_TIMEOUT_ETIME_SUCCESS, 1 ms");
}};
const CapabilityProbe update_probe{"timeout_update", [](const Probe& probe) {
    return timeout_flag_answer(probe, IORING_OP_TIMEOUT_REMOVE, IORING_TIMEOUT_UPDATE,
                               "IORING_OP_TIMEOUT_REMOVE with IORING_TIMEOUT_UPDATE of an unknown user_data");
}};

// A timeout of `rel_ns` armed now; what the checker needs to judge it.
TimeoutExpect arm(Ring& ring, int64_t rel_ns, unsigned count, std::vector<int> allowed, unsigned sqe_flags = 0,
                  unsigned timeout_flags = 0) {
    static __kernel_timespec ts;  // stable until submit, as the page asks
    ts = timespec_of(rel_ns);
    int64_t armed = int64_t(now_ns());
    io_uring_sqe* sqe = ring.sqe(kTimeout, "timeout");
    io_uring_prep_timeout(sqe, &ts, count, timeout_flags);
    sqe->flags |= sqe_flags;
    return {.user_data = kTimeout, .armed_ns = armed, .deadline_ns = armed + rel_ns, .late_bound_ns = kLateBoundNs,
            .allowed_res = std::move(allowed)};
}

// Reaps the timeout within its window (a never-expiring one is removed and
// failed) and checks its single final CQE; records its latency.
void judge(Ctx& ctx, Ring& ring, const TimeoutExpect& expect, const std::string& kind) {
    uint64_t until = uint64_t(std::max(expect.deadline_ns, expect.armed_ns) + kLateBoundNs);
    if (!reap_final_by(ring, expect.user_data, until)) {
        ctx.expect(never_expired(ring, expect, (kind + " timeout").c_str()));
        return;
    }
    ring.settle(kQuietNs);
    std::vector<Cqe> all = ring.trace().all();
    ctx.expect(timeout_completion(all, expect));
    auto mine = ring.trace().for_request(expect.user_data);
    if (!mine.empty() && mine.front().res == -ETIME)
        record_latency(ctx, kind, {int64_t(mine.front().t_ns) - expect.deadline_ns});
}

void submit_nops(Ring& ring, unsigned n) {
    for (unsigned i = 0; i < n; ++i) io_uring_prep_nop(ring.sqe(kNopBase + i, "nop"));
}

// --- completion counts ---

constexpr unsigned kCount = 4;

const Register<SetupOnly> count_reached{{
    .family = family,
    .name = "count-reached-zero",
    .summary = "a timeout with count 4 completes with 0, not -ETIME, once 4 other requests complete after it",
    .needs = kTimeoutOps,
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        // Far enough out that only the count can complete it within the window.
        TimeoutExpect expect = arm(ring, 5'000 * kMs, kCount, {0});
        submit_nops(ring, kCount);
        ring.submit();
        // io_uring_enter(2) IORING_OP_TIMEOUT: "A timeout condition is met when
        // either the specified timeout expires, or the specified number of
        // events have completed ... or 0 if the timeout got completed through
        // requests completing on their own."
        if (!reap_final_by(ring, kTimeout, now_ns() + uint64_t(kLateBoundNs))) {
            ctx.expect(never_expired(ring, expect, "timeout with count 4 after 4 completions"));
            return;
        }
        ring.settle(kQuietNs);
        ctx.expect(timeout_completion(ring.trace().all(), expect));
        for (unsigned i = 0; i < kCount; ++i) ctx.expect(single_completion(ring.trace().all(), kNopBase + i, {0}));
    }}};

const Register<SetupOnly> count_short{{
    .family = family,
    .name = "count-short-etime",
    .summary = "a 10 ms timeout with count 4 and only 3 completions expires with -ETIME, not before 10 ms",
    .needs = kTimeoutOps,
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        TimeoutExpect expect = arm(ring, 10 * kMs, kCount, {-ETIME});
        submit_nops(ring, kCount - 1);
        ring.submit();
        // io_uring_enter(2): "The request will complete with -ETIME if the
        // timeout got completed through expiration of the timer".
        judge(ctx, ring, expect, "count_short");
    }}};

// --- IORING_TIMEOUT_ETIME_SUCCESS ---

struct EtimeParams {
    Setup setup = Setup::none;
    bool etime_success = false;
};

const Register<EtimeParams> etime_success_link{{
    .family = family,
    .name = "etime-success-link",
    .summary = "an expired linked timeout severs its link (next -ECANCELED) unless IORING_TIMEOUT_ETIME_SUCCESS (next runs)",
    .needs = {needs_op(IORING_OP_TIMEOUT), needs_op(IORING_OP_TIMEOUT_REMOVE),
              when(&EtimeParams::etime_success, true, needs_capability("timeout_etime_success"))},
    .variants = grid(setups(&EtimeParams::setup, all_setups()),
                     axis("flag", &EtimeParams::etime_success, {{false, "none"}, {true, "etime_success"}})),
    .body = [](Ctx& ctx, const EtimeParams& p) {
        Ring ring(ctx, p.setup);
        TimeoutExpect expect =
            arm(ring, 5 * kMs, 0, {-ETIME}, IOSQE_IO_LINK, p.etime_success ? IORING_TIMEOUT_ETIME_SUCCESS : 0);
        io_uring_prep_nop(ring.sqe(kNext, "nop linked after the timeout"));
        ring.submit();
        judge(ctx, ring, expect, "linked");
        reap_final_by(ring, kNext, now_ns() + 200 * kMs);
        // io_uring_prep_timeout(3): "IORING_TIMEOUT_ETIME_SUCCESS Consider an
        // expired timeout a success ... it will not sever dependent links, as a
        // failed request normally would. The posted CQE result code will still
        // contain -ETIME"; io_uring_linked_requests(7): after a failure "all
        // subsequent requests in the chain are canceled with -ECANCELED".
        ctx.expect(single_completion(ring.trace().all(), kNext, {p.etime_success ? 0 : -ECANCELED}));
    }}};

// --- IORING_TIMEOUT_MULTISHOT ---

constexpr int64_t kPeriodNs = 5 * kMs;

const Register<SetupOnly> multishot_count{{
    .family = family,
    .name = "multishot-count",
    .summary = "a multishot 5 ms timeout with count 3 expires 3 times, F_MORE on all but the last, each period apart",
    .needs = {needs_op(IORING_OP_TIMEOUT), needs_capability("timeout_multishot")},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        constexpr unsigned kRepeats = 3;
        __kernel_timespec ts = timespec_of(kPeriodNs);
        int64_t armed = int64_t(now_ns());
        io_uring_prep_timeout(ring.sqe(kTimeout, "multishot timeout"), &ts, kRepeats, IORING_TIMEOUT_MULTISHOT);
        ring.submit();
        reap_final_by(ring, kTimeout, uint64_t(armed + kRepeats * kPeriodNs + kLateBoundNs));
        bool ended = !ring.is_outstanding(kTimeout);
        if (!ended) {
            io_uring_prep_timeout_remove(ring.sqe(kCleanup, "timeout remove (cleanup)"), kTimeout, 0);
            ring.submit();
            reap_final_by(ring, kTimeout, now_ns() + 200 * kMs);
        }
        ring.settle(kQuietNs);
        // io_uring_prep_timeout(3): "IORING_TIMEOUT_MULTISHOT The request will
        // return multiple timeout completions. The completion flag
        // IORING_CQE_F_MORE is set if more timeouts are expected. The value
        // specified in count is the number of repeats."
        ctx.expect_true(ended, str("multishot timeout with count ", kRepeats, " still pending ",
                                   (kRepeats * kPeriodNs + kLateBoundNs) / kMs, " ms after arming (late bound included)"));
        ctx.expect(multishot_timeout_expiries(ring.trace().all(), {.user_data = kTimeout, .armed_ns = armed, .period_ns = kPeriodNs,
                                                                   .late_bound_ns = kLateBoundNs, .count = kRepeats}));
    }}};

const Register<SetupOnly> multishot_indefinite{{
    .family = family,
    .name = "multishot-indefinite-remove",
    .summary = "a multishot timeout with count 0 keeps expiring with F_MORE until TIMEOUT_REMOVE ends it with -ECANCELED",
    .needs = {needs_op(IORING_OP_TIMEOUT), needs_op(IORING_OP_TIMEOUT_REMOVE), needs_capability("timeout_multishot")},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        constexpr unsigned kSeen = 3;
        __kernel_timespec ts = timespec_of(kPeriodNs);
        int64_t armed = int64_t(now_ns());
        io_uring_prep_timeout(ring.sqe(kTimeout, "indefinite multishot timeout"), &ts, 0, IORING_TIMEOUT_MULTISHOT);
        ring.submit();
        uint64_t until = uint64_t(armed + kSeen * kPeriodNs + kLateBoundNs);
        while (ring.trace().for_request(kTimeout).size() < kSeen && ring.is_outstanding(kTimeout) && now_ns() < until)
            ring.wait_for(until - now_ns());
        // "A value of 0 means the timeout is indefinite and can only be stopped
        // by a removal request"; ERRORS: "-ECANCELED The timeout was canceled
        // by a removal request." A removal that meets an expiry in progress
        // answers -ENOENT ("triggered before the ... removal request was
        // processed") and the timeout lives on: try again, a bounded number of times.
        unsigned attempts = 0;
        int last_res = 1;
        for (uint64_t stop = now_ns() + uint64_t(kLateBoundNs); ring.is_outstanding(kTimeout) && now_ns() < stop;) {
            uint64_t ud = kControl + 100 * attempts++;
            io_uring_prep_timeout_remove(ring.sqe(ud, "timeout remove"), kTimeout, 0);
            ring.submit();
            reap_final_by(ring, ud, now_ns() + 200 * kMs);
            auto answer = ring.trace().for_request(ud);
            last_res = answer.empty() ? 1 : answer.front().res;
            if (last_res == 0) reap_final_by(ring, kTimeout, now_ns() + 200 * kMs);
            else if (last_res != -ENOENT) break;
        }
        ring.settle(kQuietNs);
        ctx.metric("removal_attempts", attempts);
        ctx.expect(multishot_timeout_expiries(ring.trace().all(), {.user_data = kTimeout, .armed_ns = armed, .period_ns = kPeriodNs,
                                                                   .late_bound_ns = kLateBoundNs, .count = 0}));
        // io_uring_prep_timeout_remove(3): "On success, 0 is returned"; a
        // removal is refused only as the ERRORS list says.
        ctx.expect_true(last_res == 0, str("TIMEOUT_REMOVE of a live indefinite multishot timeout: last of ", attempts,
                                           " attempt(s) answered ", res_text(last_res), ", expected 0 (-ENOENT only while it fires)"));
    }}};

// --- update and remove ---

// Submits an update of kTimeout to `rel_ns` from now; returns the expectation for it.
TimeoutExpect update_to(Ring& ring, int64_t rel_ns, std::vector<int> allowed) {
    static __kernel_timespec ts;
    ts = timespec_of(rel_ns);
    int64_t at = int64_t(now_ns());
    io_uring_prep_timeout_update(ring.sqe(kControl, "timeout update"), &ts, kTimeout, 0);
    ring.submit();
    return {.user_data = kTimeout, .armed_ns = at, .deadline_ns = at + rel_ns, .late_bound_ns = kLateBoundNs,
            .allowed_res = std::move(allowed)};
}

const Register<SetupOnly> update_shorten{{
    .family = family,
    .name = "update-shorten",
    .summary = "TIMEOUT_UPDATE of a pending 5 s timeout to 10 ms: update 0, the timeout -ETIME 10 ms after the update",
    .needs = {needs_op(IORING_OP_TIMEOUT), needs_op(IORING_OP_TIMEOUT_REMOVE), needs_capability("timeout_update")},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        arm(ring, 5'000 * kMs, 0, {-ETIME});
        ring.submit();
        TimeoutExpect expect = update_to(ring, 10 * kMs, {-ETIME});
        // io_uring_prep_timeout_update(3): the update "includes a ts structure,
        // which contains new timeout information"; "On success, 0 is returned."
        judge(ctx, ring, expect, "updated");
        reap_final_by(ring, kControl, now_ns() + 200 * kMs);
        ctx.expect(single_completion(ring.trace().all(), kControl, {0}));
    }}};

const Register<SetupOnly> update_lengthen{{
    .family = family,
    .name = "update-lengthen",
    .summary = "TIMEOUT_UPDATE of a 10 ms timeout to 30 ms in the same submit: it expires no earlier than 30 ms",
    .needs = {needs_op(IORING_OP_TIMEOUT), needs_op(IORING_OP_TIMEOUT_REMOVE), needs_capability("timeout_update")},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        TimeoutExpect first = arm(ring, 10 * kMs, 0, {-ETIME});
        // Queued behind the timeout, submitted with it: the new expiry counts from
        // no earlier than the arming time.
        TimeoutExpect expect = update_to(ring, 30 * kMs, {-ETIME});
        expect.armed_ns = first.armed_ns;
        expect.deadline_ns = first.armed_ns + 30 * kMs;
        reap_final_by(ring, kControl, now_ns() + uint64_t(kLateBoundNs));
        auto update = ring.trace().for_request(kControl);
        // ERRORS: "-ENOENT The timeout identified by user_data could not be
        // found. It may be invalid, or triggered before the update ... was
        // processed." Then the old expiry stands.
        if (!update.empty() && update.front().res == -ENOENT) {
            ctx.note("the 10 ms timeout fired before its update was processed (-ENOENT): judged against 10 ms");
            expect = first;
        }
        judge(ctx, ring, expect, "lengthened");
        ctx.expect(single_completion(ring.trace().all(), kControl, {0, -ENOENT}));
    }}};

enum class Absent { unknown, expired };
struct AbsentParams {
    bool update = false;  // TIMEOUT_UPDATE, else remove
    Absent target = Absent::unknown;
};

const Register<AbsentParams> absent_enoent{{
    .family = family,
    .name = "absent-enoent",
    .summary = "TIMEOUT_REMOVE or TIMEOUT_UPDATE of an unknown or already expired timeout answers -ENOENT",
    .needs = {needs_op(IORING_OP_TIMEOUT), needs_op(IORING_OP_TIMEOUT_REMOVE),
              when(&AbsentParams::update, true, needs_capability("timeout_update"))},
    .variants = grid(axis("op", &AbsentParams::update, {{false, "remove"}, {true, "update"}}),
                     axis("target", &AbsentParams::target, {{Absent::unknown, "unknown"}, {Absent::expired, "expired"}})),
    .body = [](Ctx& ctx, const AbsentParams& p) {
        Ring ring(ctx, Setup::none);
        uint64_t target = 0xdead;
        if (p.target == Absent::expired) {
            TimeoutExpect expect = arm(ring, 1 * kMs, 0, {-ETIME});
            ring.submit();
            judge(ctx, ring, expect, "expired");
            target = kTimeout;
        }
        __kernel_timespec ts = timespec_of(10 * kMs);
        if (p.update)
            io_uring_prep_timeout_update(ring.sqe(kControl, "timeout update"), &ts, target, 0);
        else
            io_uring_prep_timeout_remove(ring.sqe(kControl, "timeout remove"), target, 0);
        ring.submit();
        reap_final_by(ring, kControl, now_ns() + uint64_t(kLateBoundNs));
        ring.settle(kQuietNs);
        // io_uring_prep_timeout_update(3) ERRORS: "-ENOENT The timeout
        // identified by user_data could not be found. It may be invalid, or
        // triggered before the update or removal request was processed."
        ctx.expect(single_completion(ring.trace().all(), kControl, {-ENOENT}));
        // Nothing was resurrected by it.
        ctx.expect_eq(ring.trace().for_request(kTimeout).size(), size_t(p.target == Absent::expired ? 1 : 0),
                      "CQEs of the (absent) target timeout");
    }}};

const Register<SetupOnly> remove_pending{{
    .family = family,
    .name = "remove-pending-ecanceled",
    .summary = "TIMEOUT_REMOVE of a pending timeout: removal 0, the timeout's one CQE -ECANCELED",
    .needs = kTimeoutOps,
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        TimeoutExpect expect = arm(ring, 5'000 * kMs, 0, {-ECANCELED});
        ring.submit();
        io_uring_prep_timeout_remove(ring.sqe(kControl, "timeout remove"), kTimeout, 0);
        ring.submit();
        reap_final_by(ring, kTimeout, now_ns() + uint64_t(kLateBoundNs));
        reap_final_by(ring, kControl, now_ns() + 200 * kMs);
        ring.settle(kQuietNs);
        // io_uring_prep_timeout(3) ERRORS: "-ECANCELED The timeout was canceled
        // by a removal request"; io_uring_prep_timeout_remove(3): "On success, 0".
        ctx.expect(timeout_completion(ring.trace().all(), expect));
        ctx.expect(single_completion(ring.trace().all(), kControl, {0}));
    }}};

}  // namespace
