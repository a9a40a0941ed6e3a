// CQE accounting for cancelation, after io_uring_cancelation(7) and
// io_uring_prep_cancel(3): every request of a round yields exactly one CQE,
// whatever order the cancel's and the target's CQEs arrive in, and the cancel
// results agree with how the targets ended.
#pragma once

#include <cstdint>
#include <span>

#include "checks.h"
#include "cqe.h"

namespace uc {

// How a cancel request reports what it did (io_uring_prep_cancel(3) ERRORS).
enum class CancelReport {
    // The first matching request: 0 found and canceled, -ENOENT not found,
    // -EALREADY found but already running.
    first_match,
    // IORING_ASYNC_CANCEL_ALL or _ANY: "a positive value is returned
    // indicating how many requests were found and canceled" (0: none).
    count,
};

struct CancelRequest {
    uint64_t user_data = 0;
    CancelReport report = CancelReport::first_match;
    std::span<const uint64_t> targets;  // the round's requests it can match
    // A count that may be lower than the requests it ended (io_uring/io-wq.c
    // io_wq_cancel_cb() answers once for every queued match, and running
    // work is not counted): only "no more than it ended" is checked, and a
    // count of 0 does not show that it found nothing.
    bool count_may_undercount = false;
};

// One round: requests subject to cancelation, the cancels aimed at them and
// any other one-shot requests, each expected to yield exactly one CQE. A
// user_data listed k times stands for k requests sharing it: k CQEs.
struct CancelRound {
    std::span<const uint64_t> targets;
    std::span<const CancelRequest> cancels;
    std::span<const uint64_t> others = {};
    // False when nothing can satisfy a target (e.g. an eventfd only ever
    // written with 0): then every target must end by its cancelation.
    bool targets_may_complete = true;
};

// io_uring_cancelation(7): the canceled request's CQE carries -ECANCELED (or
// -EINTR if it was running), the cancel's CQE 0, -ENOENT or -EALREADY (a
// count with ALL/ANY), in either order. Checked over `cqes` (one round's CQEs,
// no others):
// - each request of the round has exactly one CQE, without IORING_CQE_F_MORE,
//   and no CQE names a request outside the round;
// - a target ends with its own result (res >= 0, when it may complete),
//   -ECANCELED or -EINTR;
// - a target whose cancels all found nothing (-ENOENT, or a count of 0)
//   completed on its own: it does not end -ECANCELED or -EINTR;
// - a cancel that reports 0 (first match) or a count n canceled that many of
//   its targets.
// Allocates only to describe a failure.
Check cancel_accounting(std::span<const Cqe> cqes, const CancelRound& round);

}  // namespace uc
