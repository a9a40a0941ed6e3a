// Shared pieces of the timeout family (cases/timeout_*.cpp): the family, the
// stated time bounds, clock readings, and bounded reaping for timeouts whose
// whole point is that they may not fire when they should.
#pragma once

#include <time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "probe.h"
#include "ring.h"
#include "scenario.h"
#include "timeout_checks.h"
#include "util.h"

namespace uc::timeouts {

inline const Family family{"timeout"};

constexpr int64_t kMs = 1'000'000;
// How late an expiry or a wait's return may be, past the moment it was due.
// No page promises an upper bound; this only tells "late" from "never". It is
// generous on purpose: under qemu TCG the whole guest is emulated and a timer
// interrupt can be delayed by hundreds of ms with the other core busy.
constexpr int64_t kLateBoundNs = 500 * kMs;
// "Nothing follows the final CQE": this much silence after it.
constexpr uint64_t kQuietNs = 10 * kMs;

constexpr uint64_t kTimeout = 1;  // user_data of the timeout under test
constexpr uint64_t kTarget = 2;   // the request a link timeout guards
constexpr uint64_t kControl = 3;  // update / remove / cancel requests
constexpr uint64_t kNext = 4;     // a request linked after the pair
constexpr uint64_t kCleanup = 5;  // removal of a timeout that never expired
constexpr uint64_t kNopBase = 100;

inline int64_t clock_now(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline __kernel_timespec timespec_of(int64_t ns) { return {ns / 1'000'000'000, ns % 1'000'000'000}; }

// Rounds for a timing rule that might break only sometimes: a few on quick
// (each costs a timeout period), enough to catch a 5 % rate otherwise.
inline uint64_t timing_rounds(const Ctx& ctx) {
    return ctx.profile() == Profile::quick ? 3 : ctx.rounds_to_catch(0.05);
}

// A timeout flag (or TIMEOUT_REMOVE mode) the kernel takes unless it answers
// -EINVAL: tried with IORING_OP_TIMEOUT(_REMOVE) on a scratch ring.
inline CapabilityEvidence timeout_flag_answer(const Probe& probe, int opcode, unsigned flags, const std::string& tried) {
    if (auto missing = lacks_op(probe, opcode)) return *missing;
    __kernel_timespec one_ms{0, 1'000'000};
    return answered(tried, probe_one_sqe([&](io_uring*, io_uring_sqe* sqe) {
                        if (opcode == IORING_OP_TIMEOUT) {
                            io_uring_prep_timeout(sqe, &one_ms, 0, flags);
                        } else {  // an update of a timeout that does not exist: -ENOENT when the mode is known
                            io_uring_prep_timeout_update(sqe, &one_ms, 0xdead, 0);
                            sqe->timeout_flags = flags;
                        }
                    }));
}

// Reaps CQEs of any request until `user_data`'s final one or until
// `until_ns` (CLOCK_MONOTONIC); true when the final one came.
inline bool reap_final_by(Ring& ring, uint64_t user_data, uint64_t until_ns) {
    while (ring.is_outstanding(user_data)) {
        uint64_t now = now_ns();
        if (now >= until_ns) return false;
        ring.wait_for(until_ns - now);
    }
    return true;
}

// A timeout that did not expire within its window is removed, so the
// scenario ends with nothing pending; the removal's answer is evidence.
inline Check never_expired(Ring& ring, const TimeoutExpect& expect, const char* what) {
    io_uring_prep_timeout_remove(ring.sqe(kCleanup, "timeout remove (cleanup)"), expect.user_data, 0);
    ring.submit();
    reap_final_by(ring, kCleanup, now_ns() + 200 * kMs);
    auto removal = ring.trace().for_request(kCleanup);
    return Check::fail(str(what, ": no CQE by ", double(kLateBoundNs) / 1e6, " ms (the stated late bound) after it was due at ",
                           expect.deadline_ns, " ns on ", expect.clock, " (armed at ", expect.armed_ns,
                           " ns); TIMEOUT_REMOVE then answered ",
                           removal.empty() ? std::string("nothing") : res_text(removal.back().res)));
}

// Latency of each -ETIME past its due time, for the p50 metric.
inline void record_latency(Ctx& ctx, const std::string& kind, const std::vector<int64_t>& late_ns) {
    if (late_ns.empty()) return;
    ctx.metric(kind + "_latency_p50_us", p50(late_ns) / 1000);
    ctx.metric("late_bound_ms", kLateBoundNs / kMs);
}

}  // namespace uc::timeouts
