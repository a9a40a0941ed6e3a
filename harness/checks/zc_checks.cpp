#include "zc_checks.h"

#include <algorithm>

#include "compat/uapi.h"
#include "util.h"

namespace uc {

static bool notif_res_allowed(int32_t res, const ZcExpect& expect) {
    if (res == 0) return true;
    return expect.report_usage && uint32_t(res) == IORING_NOTIF_USAGE_ZC_COPIED;
}

Check zc_notif_order(const std::vector<Cqe>& cqes, uint64_t user_data, const ZcExpect& expect) {
    const Cqe* result = nullptr;
    const Cqe* notif = nullptr;
    for (const Cqe& cqe : cqes) {
        if (cqe.user_data != user_data) continue;
        if (cqe.notif()) {
            if (!result)
                return Check::fail("notification (IORING_CQE_F_NOTIF) before its result CQE: the result comes first",
                                   cqe);
            if (!result->more())
                return Check::fail(str("notification after a result without IORING_CQE_F_MORE (", result->describe(),
                                       "): only F_MORE promises a notification"),
                                   cqe);
            if (notif)
                return Check::fail(str("second notification for user_data ", user_data, " (first: ", notif->describe(),
                                       "): exactly one follows the result"),
                                   cqe);
            if (cqe.more())
                return Check::fail("notification carries IORING_CQE_F_MORE: it is the request's last CQE", cqe);
            if (!notif_res_allowed(cqe.res, expect))
                return Check::fail(expect.report_usage
                                       ? "notification res is neither 0 nor IORING_NOTIF_USAGE_ZC_COPIED"
                                       : "notification res is not 0 (IORING_SEND_ZC_REPORT_USAGE was not set)",
                                   cqe);
            notif = &cqe;
            continue;
        }
        if (notif)
            return Check::fail(str("CQE for user_data ", user_data, " after its notification (", notif->describe(),
                                   "): nothing follows the notification"),
                               cqe);
        if (result)
            return Check::fail(result->more() ? str("second result CQE for user_data ", user_data,
                                                    " where its notification was due")
                                              : str("CQE for user_data ", user_data, " after a result without "
                                                    "IORING_CQE_F_MORE (", result->describe(), ")"),
                               cqe);
        result = &cqe;
    }
    if (!result) return Check::fail(str("no result CQE for zero-copy send user_data ", user_data));
    if (result->more() && !notif)
        return Check::fail(str("result carries IORING_CQE_F_MORE but no notification (IORING_CQE_F_NOTIF) followed "
                               "for user_data ", user_data),
                           *result);
    return Check::pass();
}

Check zc_notif_order(const std::vector<Cqe>& cqes, const std::vector<uint64_t>& user_datas, const ZcExpect& expect) {
    for (uint64_t user_data : user_datas)
        if (Check check = zc_notif_order(cqes, user_data, expect); !check.ok) return check;
    return Check::pass();
}

ZcLifecycle zc_lifecycle(const std::vector<Cqe>& cqes, uint64_t user_data) {
    ZcLifecycle out;
    for (const Cqe& cqe : cqes) {
        if (cqe.user_data != user_data) continue;
        if (cqe.notif() && !out.notif) out.notif = cqe;
        if (!cqe.notif() && !out.result) out.result = cqe;
    }
    return out;
}

void ZcPending::add(uint64_t user_data) {
    if (requests_.emplace(user_data, State{}).second) ++owing_;
}

bool ZcPending::on_cqe(const Cqe& cqe) {
    auto it = requests_.find(cqe.user_data);
    if (it == requests_.end()) return false;
    State& state = it->second;
    auto holds = [](const State& s) { return s.result && s.more && s.notifs == 0; };
    bool was_complete = complete(state), was_holding = holds(state);
    if (cqe.notif())
        ++state.notifs;
    else if (!state.result)
        state = {true, cqe.more(), state.notifs};
    if (!was_complete && complete(state)) --owing_;
    if (holds(state) != was_holding) holds(state) ? ++held_ : --held_;
    return true;
}

Check send_buffers_accounting(const Cqe& cqe, BufferLedger& ledger, uint64_t* bytes) {
    if (cqe.res <= 0) return Check::fail("send from provided buffers did not send: res " + res_text(cqe.res), cqe);
    if (!cqe.has_buffer()) return Check::fail("CQE of a send from provided buffers lacks IORING_CQE_F_BUFFER", cqe);
    std::optional<unsigned> next = ledger.next_in_ring();
    if (!next) return Check::fail("CQE names a buffer although every provided buffer was already consumed", cqe);
    if (cqe.buffer_id() != *next)
        return Check::fail(str("CQE names buffer id ", cqe.buffer_id(), " but the ring's next buffer is id ", *next,
                               ": buffers are consumed in ring order"),
                           cqe);
    std::vector<BufSpan> spans;
    if (Check consumed = ledger.consume(cqe, &spans); !consumed) return consumed;
    *bytes += uint64_t(cqe.res);
    return Check::pass();
}

}  // namespace uc
