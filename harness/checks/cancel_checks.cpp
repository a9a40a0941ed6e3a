#include "cancel_checks.h"

#include <algorithm>
#include <cerrno>
#include <vector>

#include "util.h"

namespace uc {
namespace {

bool ended_by_cancel(int res) { return res == -ECANCELED || res == -EINTR; }

bool contains(std::span<const uint64_t> list, uint64_t user_data) {
    return std::find(list.begin(), list.end(), user_data) != list.end();
}

// How many requests of the round carry `user_data`: one CQE each.
size_t expected_cqes(const CancelRound& round, uint64_t user_data) {
    size_t n = size_t(std::count(round.targets.begin(), round.targets.end(), user_data)) +
               size_t(std::count(round.others.begin(), round.others.end(), user_data));
    for (const CancelRequest& c : round.cancels) n += c.user_data == user_data;
    return n;
}

size_t cqes_of(std::span<const Cqe> cqes, uint64_t user_data) {
    return size_t(std::count_if(cqes.begin(), cqes.end(), [&](const Cqe& c) { return c.user_data == user_data; }));
}

// The targets' user_data, each once.
std::vector<uint64_t> distinct(std::span<const uint64_t> list) {
    std::vector<uint64_t> out;
    for (uint64_t ud : list)
        if (!contains(out, ud)) out.push_back(ud);
    return out;
}

bool known(const CancelRound& round, uint64_t user_data) { return expected_cqes(round, user_data) != 0; }

const Cqe* cqe_of(std::span<const Cqe> cqes, uint64_t user_data) {
    for (const Cqe& cqe : cqes)
        if (cqe.user_data == user_data) return &cqe;
    return nullptr;
}

// include/linux/errno.h: 512 and up "should never be seen by user programs".
std::string res_name(int res) {
    if (res <= -512 && res >= -530) return str(res_text(res), " (kernel-internal errno, ERESTARTSYS is 512)");
    return res_text(res);
}

// "cancel user_data=5 returned -ENOENT; cancel user_data=6: no CQE"
std::string cancels_of(std::span<const Cqe> cqes, const CancelRound& round, uint64_t target) {
    std::string out;
    for (const CancelRequest& cancel : round.cancels) {
        if (!contains(cancel.targets, target)) continue;
        const Cqe* cqe = cqe_of(cqes, cancel.user_data);
        out += str(out.empty() ? "" : "; ", "cancel user_data=", cancel.user_data,
                   cqe ? " returned " + res_text(cqe->res) : std::string(": no CQE"));
    }
    return out.empty() ? "no cancel aimed at it" : out;
}

// A cancel found something: 0 for a first-match cancel (or -EALREADY: found
// but running), a count of at least one otherwise (any count when it may
// undercount: then 0 says nothing).
bool cancel_found(const CancelRequest& cancel, int res) {
    if (cancel.report == CancelReport::count) return res > 0 || (res == 0 && cancel.count_may_undercount);
    return res != -ENOENT;
}

Check check_each_once(std::span<const Cqe> cqes, const CancelRound& round) {
    for (size_t i = 0; i < cqes.size(); ++i) {
        const Cqe& cqe = cqes[i];
        if (!known(round, cqe.user_data))
            return Check::fail("CQE for a user_data this round never submitted", cqe);
        if (cqe.more()) return Check::fail("one-shot request's CQE carries IORING_CQE_F_MORE", cqe);
        size_t expected = expected_cqes(round, cqe.user_data);
        if (cqes_of(cqes.first(i + 1), cqe.user_data) <= expected) continue;
        const Cqe* first = cqe_of(cqes, cqe.user_data);
        if (expected == 1)
            return Check::fail(str("second CQE for user_data ", cqe.user_data, " (first: ", first->describe(),
                                   "): every request yields exactly one CQE"),
                               cqe);
        return Check::fail(str("CQE ", expected + 1, " for user_data ", cqe.user_data, ", shared by ", expected,
                               " requests: every request yields exactly one CQE"),
                           cqe);
    }
    for (uint64_t target : distinct(round.targets))
        if (size_t seen = cqes_of(cqes, target), expected = expected_cqes(round, target); seen < expected)
            return Check::fail(str(expected == 1 ? str("no CQE") : str(seen, " CQEs (", expected, " requests)"),
                                   " for canceled request user_data ", target,
                                   ": every canceled request yields exactly one CQE (", cancels_of(cqes, round, target),
                                   ")"));
    for (const CancelRequest& cancel : round.cancels)
        if (!cqe_of(cqes, cancel.user_data))
            return Check::fail(str("no CQE for cancel request user_data ", cancel.user_data));
    for (uint64_t other : distinct(round.others))
        if (cqes_of(cqes, other) < expected_cqes(round, other))
            return Check::fail(str("no CQE for request user_data ", other));
    return Check::pass();
}

Check check_cancel_results(std::span<const Cqe> cqes, const CancelRound& round) {
    for (const CancelRequest& cancel : round.cancels) {
        const Cqe& cqe = *cqe_of(cqes, cancel.user_data);
        size_t canceled = 0;
        for (uint64_t t : distinct(cancel.targets))
            for (const Cqe& c : cqes) canceled += c.user_data == t && ended_by_cancel(c.res);
        if (cancel.report == CancelReport::first_match) {
            if (cqe.res != 0 && cqe.res != -ENOENT && cqe.res != -EALREADY)
                return Check::fail("cancel res is " + res_name(cqe.res) + ", expected 0, -ENOENT or -EALREADY", cqe);
            // "res is 0 on success (request was found and canceled)".
            if (cqe.res == 0 && canceled == 0)
                return Check::fail("cancel returned 0 (found and canceled) but its target did not end -ECANCELED or -EINTR",
                                   cqe);
            continue;
        }
        if (cqe.res < 0 || size_t(cqe.res) > cancel.targets.size())
            return Check::fail(str("cancel count is ", res_name(cqe.res), ", expected 0 to ", cancel.targets.size(),
                                   " (the requests it can match)"),
                               cqe);
        // "The cancel CQE's res indicates how many requests were canceled."
        if (size_t(cqe.res) > canceled)
            return Check::fail(str("cancel reports ", cqe.res, " requests canceled but only ", canceled,
                                   " of its targets ended -ECANCELED or -EINTR"),
                               cqe);
    }
    return Check::pass();
}

Check check_target_results(std::span<const Cqe> cqes, const CancelRound& round) {
    for (const Cqe& cqe : cqes) {
        if (!contains(round.targets, cqe.user_data)) continue;
        bool own_result = round.targets_may_complete && cqe.res >= 0;
        if (!own_result && !ended_by_cancel(cqe.res))
            return Check::fail(str("canceled request ended with res ", res_name(cqe.res), ", expected ",
                                   round.targets_may_complete ? "its own result, " : "", "-ECANCELED or -EINTR"),
                               cqe);
    }
    return Check::pass();
}

// -ENOENT: "no matching request was found", i.e. the target completes on its own.
Check check_not_found_completes(std::span<const Cqe> cqes, const CancelRound& round) {
    for (const Cqe& cqe : cqes) {
        uint64_t target = cqe.user_data;
        if (!contains(round.targets, target)) continue;
        bool found = std::any_of(round.cancels.begin(), round.cancels.end(), [&](const CancelRequest& c) {
            return contains(c.targets, target) && cancel_found(c, cqe_of(cqes, c.user_data)->res);
        });
        if (!found && ended_by_cancel(cqe.res))
            return Check::fail(str("request ended ", res_text(cqe.res), " though no cancel found it (",
                                   cancels_of(cqes, round, target), "): -ENOENT means it completes on its own"),
                               cqe);
    }
    return Check::pass();
}

}  // namespace

Check cancel_accounting(std::span<const Cqe> cqes, const CancelRound& round) {
    if (Check each = check_each_once(cqes, round); !each) return each;
    if (Check targets = check_target_results(cqes, round); !targets) return targets;
    if (Check cancels = check_cancel_results(cqes, round); !cancels) return cancels;
    return check_not_found_completes(cqes, round);
}

}  // namespace uc
