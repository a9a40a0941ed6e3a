// Timeout and wait contracts, after io_uring_prep_timeout(3),
// io_uring_prep_link_timeout(3), io_uring_enter(2) and
// io_uring_submit_and_wait_min_timeout(3). Times are nanoseconds on one named
// clock: the deadline and every CQE's t_ns must be read on the clock the
// timeout runs on, or "never earlier than asked" compares apples with pears.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "checks.h"
#include "cqe.h"

namespace uc {

// One one-shot timeout request as the scenario armed it.
struct TimeoutExpect {
    uint64_t user_data = 0;
    std::string clock = "CLOCK_MONOTONIC";  // what `armed_ns`, `deadline_ns` and CQE t_ns are read on
    int64_t armed_ns = 0;     // the clock just before the request was submitted
    int64_t deadline_ns = 0;  // when it is due to expire (may lie before armed_ns: an absolute deadline in the past)
    // How late an expiry may come after max(armed, deadline). No page promises
    // an upper bound: this only tells "late" from "never" and is stated in
    // every failure; scenarios set it generously (TCG guests are slow).
    int64_t late_bound_ns = 0;
    std::vector<int> allowed_res;  // the final res values the scenario allows (empty: any)
};

// io_uring_prep_timeout(3): the request posts exactly one CQE (no
// IORING_CQE_F_MORE, nothing after it) whose res is allowed; when res is
// -ETIME it came no earlier than the deadline and within the late bound.
Check timeout_completion(std::span<const Cqe> cqes, const TimeoutExpect& expect);

// A IORING_TIMEOUT_MULTISHOT request with period `period_ns` and `count`
// repeats (0: indefinite, ended by a removal).
struct MultishotTimeoutExpect {
    uint64_t user_data = 0;
    std::string clock = "CLOCK_MONOTONIC";
    int64_t armed_ns = 0;
    int64_t period_ns = 0;
    int64_t late_bound_ns = 0;  // allowance for the first expiry past armed + period
    unsigned count = 0;
};

// io_uring_prep_timeout(3) IORING_TIMEOUT_MULTISHOT: every expiry posts
// -ETIME, IORING_CQE_F_MORE while more are expected; the final CQE lacks it
// and nothing follows (io_uring_multishot(7)); `count` expiries in all, or,
// for count 0, expiries until a removal ends it with -ECANCELED. The k-th
// expiry comes no earlier than armed + k * period.
Check multishot_timeout_expiries(std::span<const Cqe> cqes, const MultishotTimeoutExpect& expect);

// Which side of a request/link-timeout pair the scenario arranged to win.
enum class LinkRace { timeout_fires, request_first };

struct LinkTimeoutExpect {
    uint64_t timeout_user_data = 0;
    uint64_t target_user_data = 0;
    LinkRace race = LinkRace::timeout_fires;
};

// io_uring_prep_link_timeout(3) and io_uring_linked_requests(7): the link
// timeout's res is one of the documented values (-ETIME, -ECANCELED,
// -ENOENT; never 0, 1 or any count); each side posts exactly one CQE; when
// the timeout fires the request ends -ECANCELED (or -EINTR if it was in
// progress) and the timeout -ETIME; when the request completes first the
// timeout ends -ECANCELED and the request keeps its own result.
Check link_timeout_outcome(std::span<const Cqe> cqes, const LinkTimeoutExpect& expect);

// One io_uring_enter(2) wait (or a liburing wrapper) as observed.
struct WaitObservation {
    int ret = 0;             // 0 or -errno
    int64_t started_ns = 0;  // CLOCK_MONOTONIC around the call
    int64_t returned_ns = 0;
    unsigned cqes_ready = 0;  // CQEs in the CQ ring right after it returned
};

struct WaitExpect {
    std::string what;  // "io_uring_wait_cqe_timeout(10 ms), nothing pending"
    int ret = 0;
    int64_t not_before_ns = 0;  // relative to started_ns; 0: no lower bound
    int64_t not_after_ns = 0;   // relative to started_ns (the stated late bound included)
    unsigned min_cqes = 0;      // CQEs that must be ready when it returns
};

// io_uring_enter(2) / io_uring_wait_cqe_timeout(3): the wait returned what
// the page promises for its situation, within the stated time window.
Check wait_outcome(const WaitObservation& observed, const WaitExpect& expect);

// The middle value of `values` (the lower middle for an even count); 0 when empty.
int64_t p50(std::vector<int64_t> values);

}  // namespace uc
