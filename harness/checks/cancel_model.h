// Which requests a cancel must end, as data: the requests in flight, a cancel
// SQE (or io_uring_sync_cancel_reg), and the prediction the kernel's CQEs are
// checked against.
//
// Sources, quoted where each rule is applied (cancel_model.cpp):
// io_uring_prep_cancel(3), io_uring_cancelation(7),
// io_uring_register_sync_cancel(3), include/uapi/linux/io_uring.h and the
// kernel's io_uring/cancel.c and io_uring/io-wq.c. Where the man pages and the
// kernel source disagree, predict() returns one alternative per text and a
// round passes if it fits either; cancel_outcome() says which one it fit, so a
// scenario records it as a metric.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "checks.h"
#include "cqe.h"

namespace uc {

// Where a request is when the cancel looks for it; each is a different search
// in io_uring/cancel.c io_try_cancel().
enum class Placement {
    poll_armed,    // waiting on a file's wait queue (pipe/socket read, POLL_ADD)
    iowq_queued,   // IOSQE_ASYNC, queued behind a busy io-wq worker: never issued
    iowq_running,  // blocked inside an io-wq worker
    iowq_hashed,   // regular-file write punted to io-wq, serialized by inode hash
    timeout,       // IORING_OP_TIMEOUT waiting to expire
    link_head,     // first request of an IOSQE_IO_LINK chain, poll-armed
    link_tail,     // later request of a chain: not issued until its head completes
    multishot,     // multishot poll, armed
};
std::string placement_name(Placement placement);

struct InFlight {
    uint64_t user_data = 0;
    uint8_t opcode = 0;  // IORING_OP_*
    Placement placement = Placement::poll_armed;
    int file = -1;       // which open file it uses (the scenario's numbering); -1: none
    int head = -1;       // link_tail: index of its chain's head in the world
    // Its own result when it completes by itself: the scenario makes it so
    // (writes this many bytes to its pipe); kAnyOwnResult for any res >= 0.
    int own_res = kAnyOwnResult;
    // It may finish on its own before the cancel reaches it (a hashed write
    // racing its worker): then the cancel may find it running or gone.
    bool may_complete = false;
    static constexpr int kAnyOwnResult = -1'000'000;
    // The res cancel_outcome() gives a multishot request still alive at the
    // end (an event with F_MORE, no final CQE): not ended by the cancel.
    static constexpr int kAlive = -1'000'001;
    std::string describe() const;  // "ud=16 READ file=0 poll_armed"
};

// The requests in flight and how the cancel's fd names their files.
struct CancelWorld {
    std::vector<InFlight> requests;
    std::map<int, int> fd_files;    // normal fd -> file
    std::map<int, int> slot_files;  // fixed-file slot -> file
};

// An IORING_OP_ASYNC_CANCEL SQE's fields (sqe->cancel_flags, addr, fd, len as
// the opcode), or the same fields of io_uring_sync_cancel_reg.
struct CancelSqe {
    unsigned flags = 0;
    uint64_t addr = 0;
    int fd = -1;
    uint8_t opcode = 0;
    std::string describe() const;  // "cancel flags=FD|ALL addr=16 fd=5"
};
std::string cancel_flag_names(unsigned flags);  // "FD|ALL", "0" for none

enum class CancelVia { async_sqe, sync_register };

// What one text says the kernel must do.
struct CancelPrediction {
    std::string text;                  // the source this alternative follows
    int refused = 0;                   // non-zero: the cancel's res; nothing ends
    std::vector<size_t> must_end;      // indexes into the world: end by this cancel
    std::vector<size_t> one_of;        // exactly one of these ends (first match)
    std::vector<size_t> collateral;    // end -ECANCELED because their link head did
    std::vector<int> cancel_res;       // allowed res of the cancel
    bool counts = false;               // res is a count (ALL, ANY), not 0/-ENOENT/-EALREADY
    std::map<size_t, std::vector<int>> end_res;  // allowed res of each request that ends
    // The count may be lower than the requests it ended (io-wq answers once
    // for a batch, and not at all once running work matched).
    bool count_may_undercount = false;
    // Sync cancel: a 0 means the matched request had ended when the call returned.
    bool sync_waits = false;
    std::string describe(const CancelWorld& world) const;
};

// One alternative per text where the man pages and the kernel source
// disagree, the kernel source's first; one where they agree.
std::vector<CancelPrediction> predict(const CancelWorld& world, const CancelSqe& cancel,
                                      CancelVia via = CancelVia::async_sqe);

// How a round went, against the model.
struct CancelOutcome {
    Check check;
    std::string fit;  // the text of the alternative that fit ("" if none did)
};

// Checks one round's CQEs against the prediction: `cqes` holds every final
// CQE of the world's requests (the ends the cancel caused and the survivors'
// own completions after it) and, for an async cancel, the cancel's CQE
// (user_data `cancel_ud`); `sync_res` is the register call's return value for
// a sync cancel. Passes when some alternative fits:
// - the cancel's res is one it allows;
// - each request has exactly one final CQE, and the requests that ended by
//   the cancel (a cancel result, not their own) are exactly what it predicts,
//   each with a res it allows; a request it does not predict to end has its
//   own result;
// - cancel_accounting() holds for the round.
// The failure names the cancel, the kernel source's prediction and the CQEs.
CancelOutcome cancel_outcome(const CancelWorld& world, const CancelSqe& cancel, uint64_t cancel_ud,
                             std::span<const Cqe> cqes, std::optional<int> sync_res = std::nullopt,
                             CancelVia via = CancelVia::async_sqe);

}  // namespace uc
