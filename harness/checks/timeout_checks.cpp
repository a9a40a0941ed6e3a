#include "timeout_checks.h"

#include <algorithm>
#include <cerrno>

#include "util.h"

namespace uc {

namespace {

std::string ms(int64_t ns) { return str(double(ns) / 1e6, " ms"); }

std::string res_list(const std::vector<int>& values) {
    std::string out;
    for (int v : values) out += (out.empty() ? "" : " or ") + res_text(v);
    return out;
}

bool allowed(const std::vector<int>& values, int res) {
    return values.empty() || std::find(values.begin(), values.end(), res) != values.end();
}

// Exactly one CQE for a one-shot request and nothing after it; `*final` is set when found.
Check one_final(std::span<const Cqe> cqes, uint64_t user_data, const char* what, const Cqe** final) {
    *final = nullptr;
    for (const Cqe& cqe : cqes) {
        if (cqe.user_data != user_data) continue;
        if (*final) {
            if (!cqe.more())
                return Check::fail(str("two final CQEs for ", what, " user_data ", user_data, " (first: ",
                                       (*final)->describe(), "): a request completes once"),
                                   cqe);
            return Check::fail(str("CQE after the final one for ", what, " user_data ", user_data, " (final: ",
                                   (*final)->describe(), "): nothing may follow it"),
                               cqe);
        }
        if (cqe.more())
            return Check::fail(str(what, " CQE carries IORING_CQE_F_MORE: a one-shot request posts one final CQE"), cqe);
        *final = &cqe;
    }
    if (!*final) return Check::fail(str("no CQE for ", what, " user_data ", user_data));
    return Check::pass();
}

}  // namespace

Check timeout_completion(std::span<const Cqe> cqes, const TimeoutExpect& e) {
    const Cqe* final = nullptr;
    if (Check c = one_final(cqes, e.user_data, "timeout", &final); !c) return c;
    if (!allowed(e.allowed_res, final->res))
        return Check::fail(str("timeout res ", res_text(final->res), ", expected ", res_list(e.allowed_res)), *final);
    if (final->res != -ETIME) return Check::pass();
    int64_t at = int64_t(final->t_ns);
    // io_uring_prep_timeout(3): "-ETIME The specified timeout occurred": not before it was due.
    if (at < e.deadline_ns)
        return Check::fail(str("timeout expired early: -ETIME seen at ", at, " ns on ", e.clock, ", ",
                               ms(e.deadline_ns - at), " before its deadline ", e.deadline_ns, " ns (armed at ",
                               e.armed_ns, " ns)"),
                           *final);
    int64_t due = std::max(e.armed_ns, e.deadline_ns);
    if (at > due + e.late_bound_ns)
        return Check::fail(str("timeout expired late: -ETIME seen at ", at, " ns on ", e.clock, ", ", ms(at - due),
                               " after it was due at ", due, " ns; stated late bound ", ms(e.late_bound_ns)),
                           *final);
    return Check::pass();
}

Check multishot_timeout_expiries(std::span<const Cqe> cqes, const MultishotTimeoutExpect& e) {
    std::vector<Cqe> all(cqes.begin(), cqes.end());
    std::vector<int> final_res = {e.count ? -ETIME : -ECANCELED};
    if (Check c = multishot_contract(all, e.user_data, {.final_res = final_res, .error_ends_request = false}); !c)
        return c;
    unsigned expiries = 0;
    for (const Cqe& cqe : cqes) {
        if (cqe.user_data != e.user_data || cqe.res != -ETIME) continue;
        ++expiries;
        if (e.count && expiries > e.count)
            return Check::fail(str("multishot timeout with count ", e.count, " expired a ", expiries, "th time"), cqe);
        bool last = e.count && expiries == e.count;
        if (last == cqe.more())
            return Check::fail(str("multishot timeout expiry ", expiries, " of ", e.count,
                                   last ? " (the last) carries" : " lacks", " IORING_CQE_F_MORE"),
                               cqe);
        // Each expiry re-arms the period, so the k-th comes no earlier than armed + k * period.
        int64_t due = e.armed_ns + int64_t(expiries) * e.period_ns;
        if (int64_t(cqe.t_ns) < due)
            return Check::fail(str("multishot timeout expiry ", expiries, " early: seen at ", cqe.t_ns, " ns on ",
                                   e.clock, ", ", ms(due - int64_t(cqe.t_ns)), " before armed + ", expiries,
                                   " x period (", due, " ns)"),
                               cqe);
        if (expiries == 1 && int64_t(cqe.t_ns) > due + e.late_bound_ns)
            return Check::fail(str("multishot timeout first expiry late: ", ms(int64_t(cqe.t_ns) - due),
                                   " after it was due; stated late bound ", ms(e.late_bound_ns)),
                               cqe);
    }
    if (e.count && expiries != e.count)
        return Check::fail(str("multishot timeout with count ", e.count, " expired ", expiries, " times"));
    if (!e.count && expiries == 0) return Check::fail("indefinite multishot timeout never expired before its removal");
    return Check::pass();
}

Check link_timeout_outcome(std::span<const Cqe> cqes, const LinkTimeoutExpect& e) {
    const Cqe* timeout = nullptr;
    const Cqe* target = nullptr;
    if (Check c = one_final(cqes, e.timeout_user_data, "link timeout", &timeout); !c) return c;
    // io_uring_prep_link_timeout(3) ERRORS: -ETIME, -EINVAL, -EFAULT, -ECANCELED, -ENOENT; success is not
    // listed for a link timeout, and no count is.
    if (timeout->res >= 0 || !allowed({-ETIME, -ECANCELED, -ENOENT}, timeout->res))
        return Check::fail(str("link timeout res ", res_text(timeout->res),
                               " is not a documented result (-ETIME, -ECANCELED or -ENOENT)"),
                           *timeout);
    if (Check c = one_final(cqes, e.target_user_data, "linked request", &target); !c) return c;
    if (e.race == LinkRace::timeout_fires) {
        // "If the timeout expires first: The read CQE has -ECANCELED (or -EINTR if it was in progress);
        // The timeout CQE has -ETIME" (io_uring_linked_requests(7)).
        if (timeout->res != -ETIME)
            return Check::fail(str("link timeout res ", res_text(timeout->res), " although its request could not complete: expected -ETIME"),
                               *timeout);
        if (target->res != -ECANCELED && target->res != -EINTR)
            return Check::fail(str("request behind an expired link timeout ended ", res_text(target->res),
                                   ", expected -ECANCELED or -EINTR"),
                               *target);
        return Check::pass();
    }
    // "If the read completes before the timeout: The read CQE has the actual result; The timeout CQE has -ECANCELED".
    if (timeout->res != -ECANCELED)
        return Check::fail(str("link timeout res ", res_text(timeout->res), " after its request completed first: expected -ECANCELED"),
                           *timeout);
    if (target->res == -ECANCELED || target->res == -EINTR)
        return Check::fail("request that completed before its link timeout reports being canceled", *target);
    return Check::pass();
}

Check wait_outcome(const WaitObservation& o, const WaitExpect& e) {
    int64_t took = o.returned_ns - o.started_ns;
    std::string when = str(" after ", ms(took), " on CLOCK_MONOTONIC");
    if (o.ret != e.ret)
        return Check::fail(str(e.what, ": returned ", res_text(o.ret), ", expected ", res_text(e.ret), when, " with ",
                               o.cqes_ready, " CQE(s) ready"));
    if (o.cqes_ready < e.min_cqes)
        return Check::fail(str(e.what, ": returned ", res_text(o.ret), " with ", o.cqes_ready, " CQE(s) ready, expected at least ",
                               e.min_cqes, when));
    if (e.not_before_ns && took < e.not_before_ns)
        return Check::fail(str(e.what, ": returned ", res_text(o.ret), when, ", earlier than the ", ms(e.not_before_ns),
                               " it had to wait"));
    if (e.not_after_ns && took > e.not_after_ns)
        return Check::fail(str(e.what, ": returned ", res_text(o.ret), when, ", later than the ", ms(e.not_after_ns),
                               " allowed (late bound included)"));
    return Check::pass();
}

int64_t p50(std::vector<int64_t> values) {
    if (values.empty()) return 0;
    auto mid = values.begin() + (values.size() - 1) / 2;
    std::nth_element(values.begin(), mid, values.end());
    return *mid;
}

}  // namespace uc
