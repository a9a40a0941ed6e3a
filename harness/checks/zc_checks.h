// Checkers for zero-copy sends (IORING_OP_SEND_ZC, IORING_OP_SENDMSG_ZC) and
// for sends from provided buffers (IOSQE_BUFFER_SELECT, IORING_RECVSEND_BUNDLE):
// pure functions over recorded CQEs, plus the bookkeeping a reaper needs to
// know when every zero-copy request has said all it will say.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "bufring_checks.h"
#include "checks.h"

namespace uc {

struct ZcExpect {
    // IORING_SEND_ZC_REPORT_USAGE was set: the notification's res may be
    // IORING_NOTIF_USAGE_ZC_COPIED instead of 0.
    bool report_usage = false;
};

// The lifecycle of one zero-copy send, after io_uring_enter(2) (IORING_OP_SEND_ZC)
// and io_uring_prep_send_zc(3):
//  - the first CQE is the result ("The first cqe follows the usual rules");
//  - "IORING_CQE_F_MORE ... means that there will be a second completion
//    event / notification for the request, with the user_data field set to
//    the same value": exactly one CQE with IORING_CQE_F_NOTIF follows a result
//    with F_MORE, none follows a result without it ("the user must check for
//    IORING_CQE_F_MORE rather than relying on the result");
//  - "The notification's res field will be set to zero" (or, with
//    IORING_SEND_ZC_REPORT_USAGE, to IORING_NOTIF_USAGE_ZC_COPIED), and it ends
//    the request: no F_MORE on it, nothing after it.
// `cqes` is a whole trace (other requests interleave freely) reaped until
// quiet, so a missing notification is really missing.
Check zc_notif_order(const std::vector<Cqe>& cqes, uint64_t user_data, const ZcExpect& expect = {});
// The same rule for every request in `user_datas`; the first one broken.
Check zc_notif_order(const std::vector<Cqe>& cqes, const std::vector<uint64_t>& user_datas,
                     const ZcExpect& expect = {});

// The first result and the first notification CQE of one request, as reaped:
// for metrics (notification lag, copied or not) once zc_notif_order passed.
struct ZcLifecycle {
    std::optional<Cqe> result;
    std::optional<Cqe> notif;
};
ZcLifecycle zc_lifecycle(const std::vector<Cqe>& cqes, uint64_t user_data);

// Which zero-copy requests still owe a CQE, fed CQEs as they are reaped. It
// only decides when to stop waiting; the verdict comes from zc_notif_order.
class ZcPending {
  public:
    void add(uint64_t user_data);
    // Notes a CQE; returns true if it belonged to a tracked request.
    bool on_cqe(const Cqe& cqe);
    // Every tracked request has its result and, if that carried F_MORE, a notification.
    bool done() const { return owing_ == 0; }
    size_t owing() const { return owing_; }
    // Requests whose result said F_MORE and whose notification has not come:
    // buffers the kernel may still read.
    size_t buffers_held() const { return held_; }

  private:
    struct State {
        bool result = false, more = false;
        unsigned notifs = 0;
    };
    bool complete(const State& s) const { return s.result && (!s.more || s.notifs > 0); }
    std::map<uint64_t, State> requests_;
    size_t owing_ = 0;
    size_t held_ = 0;
};

// One CQE of a send from provided buffers, after io_uring_prep_send(3): "the
// CQE res field indicates the total number of bytes sent, and the buffer ID
// returned in the CQE flags field indicates the first buffer in the send
// operation ... The buffers consumed will be contiguous from the initial
// buffer, in the order in which they appear in the buffer ring."
// `ledger` (BufMode::bundle) holds the buffers provided and not yet sent, in
// ring order. On success every buffer `res` touched leaves it (a partly sent
// buffer is consumed too: a non-incremental ring hands out whole buffers) and
// *bytes grows by res; a broken rule leaves both as they were.
Check send_buffers_accounting(const Cqe& cqe, BufferLedger& ledger, uint64_t* bytes);

}  // namespace uc
