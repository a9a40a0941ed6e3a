#include "cancel_model.h"

#include <algorithm>
#include <cerrno>
#include <functional>

#include "cancel_checks.h"
#include "compat/uapi.h"
#include "probe.h"
#include "util.h"

namespace uc {
namespace {

constexpr unsigned kAll = IORING_ASYNC_CANCEL_ALL, kFd = IORING_ASYNC_CANCEL_FD, kAny = IORING_ASYNC_CANCEL_ANY,
                   kFdFixed = IORING_ASYNC_CANCEL_FD_FIXED, kUserData = IORING_ASYNC_CANCEL_USERDATA,
                   kOp = IORING_ASYNC_CANCEL_OP;
// io_uring/cancel.c CANCEL_FLAGS: the flags io_async_cancel_prep() and
// io_sync_cancel() accept; any other bit is -EINVAL.
constexpr unsigned kKnownFlags = kAll | kFd | kAny | kFdFixed | kUserData | kOp;

enum class Text { kernel, man_pages };

bool pending_in_iowq(Placement p) { return p == Placement::iowq_queued || p == Placement::iowq_hashed; }
// io_poll_cancel(): a read waiting on its file is armed on poll, as are a
// chain's issued head and a multishot poll.
bool armed_on_poll(Placement p) {
    return p == Placement::poll_armed || p == Placement::link_head || p == Placement::multishot;
}

bool has(const std::vector<size_t>& list, size_t i) { return std::find(list.begin(), list.end(), i) != list.end(); }

// io_uring/cancel.c io_cancel_req_match(), for the requests the cancel's
// search can reach.
bool matches(const InFlight& r, const CancelSqe& c, int file, Text text) {
    // io_try_cancel() searches io-wq, the poll table and the timeout list; a
    // link tail waits in its head's link list and is in none of them.
    if (r.placement == Placement::link_tail) return false;
    // "Match any request in the ring, regardless of user_data or file
    // descriptor" (io_uring_prep_cancel(3)); the kernel checks ANY first and
    // ignores USERDATA beside it.
    if (c.flags & kAny) return true;
    if (c.flags & kFd) {
        // "Match based on the file descriptor used in the original request"
        // (io_uring_prep_cancel(3)). The kernel compares req->file, which a
        // request only has once issued: IOSQE_ASYNC work still queued in
        // io-wq (io_queue_sqe_fallback() -> io_queue_iowq(), no
        // io_assign_file()) matches no FD cancel. Timeouts have no file, and
        // io_try_cancel() skips the timeout list for FD.
        if (r.file < 0 || r.file != file) return false;
        if (text == Text::kernel && r.placement == Placement::iowq_queued) return false;
    }
    // IORING_ASYNC_CANCEL_OP: "Use the original request opcode as the matching key".
    if ((c.flags & kOp) && r.opcode != c.opcode) return false;
    // IORING_ASYNC_CANCEL_USERDATA: "This is the default lookup key, if no
    // other key matching has been specified" (io_uring_prep_cancel(3)).
    bool by_user_data = (c.flags & kUserData) || !(c.flags & (kFd | kOp));
    return !by_user_data || r.user_data == c.addr;
}

std::vector<int> end_res_of(Placement p) {
    // io_uring_cancelation(7): "res is set to -ECANCELED (or occasionally
    // -EINTR if the operation was already in progress)"; io-wq signals a
    // running worker (io_wq_worker_cancel()).
    if (p == Placement::iowq_running || p == Placement::iowq_hashed) return {-ECANCELED, -EINTR};
    return {-ECANCELED};
}

// An error the cancel fails with before it looks at any request, or 0.
int refusal(const CancelWorld& world, const CancelSqe& c, CancelVia via, Text text, int* file) {
    // "-EINVAL One of the fields set in the SQE was invalid"; cancel.c: a flag
    // outside CANCEL_FLAGS.
    if (c.flags & ~kKnownFlags) return -EINVAL;
    // io_async_cancel_prep(): FD or OP beside ANY is -EINVAL (ANY ignores
    // both). io_sync_cancel() does not check it; io_uring_register_sync_cancel(3)
    // says its arguments "largely mirror what the async prep functions support".
    bool async_rules = via == CancelVia::async_sqe || text == Text::man_pages;
    if (async_rules && (c.flags & kAny) && (c.flags & (kFd | kOp))) return -EINVAL;
    if (c.flags & kFd) {
        // io_async_cancel(): the fd (or, with FD_FIXED, the slot) must name a
        // file, else -EBADF.
        const auto& table = (c.flags & kFdFixed) ? world.slot_files : world.fd_files;
        auto it = table.find(c.fd);
        if (it == table.end()) return -EBADF;
        *file = it->second;
    }
    return 0;
}

void add_collateral(const CancelWorld& world, CancelPrediction& p) {
    // io_uring_linked_requests(7): when a request of a chain fails, the rest
    // "are canceled with -ECANCELED"; a canceled head fails its tail.
    for (size_t i = 0; i < world.requests.size(); ++i) {
        int head = world.requests[i].head;
        if (head >= 0 && (has(p.must_end, size_t(head)) || has(p.one_of, size_t(head)))) {
            p.collateral.push_back(i);
            p.end_res[i] = {-ECANCELED};
        }
    }
}

CancelPrediction predict_one(const CancelWorld& world, const CancelSqe& c, CancelVia via, Text text) {
    CancelPrediction p;
    p.text = text == Text::kernel ? "kernel source (io_uring/cancel.c, io-wq.c)"
                                  : "man pages (io_uring_prep_cancel(3), io_uring_cancelation(7))";
    int file = -1;
    if (int refused = refusal(world, c, via, text, &file)) {
        p.refused = refused;
        p.cancel_res = {refused};
        return p;
    }
    std::vector<size_t> matched, pending, running, polled, timed;
    for (size_t i = 0; i < world.requests.size(); ++i) {
        const InFlight& r = world.requests[i];
        if (!matches(r, c, file, text)) continue;
        matched.push_back(i);
        p.end_res[i] = end_res_of(r.placement);
        if (pending_in_iowq(r.placement)) pending.push_back(i);
        if (r.placement == Placement::iowq_running) running.push_back(i);
        if (armed_on_poll(r.placement)) polled.push_back(i);
        if (r.placement == Placement::timeout) timed.push_back(i);
    }
    bool may_race = std::any_of(matched.begin(), matched.end(), [&](size_t i) { return world.requests[i].may_complete; });
    // cancel.c __io_async_cancel(): `all` is ALL or ANY. io_uring_cancelation(7):
    // ANY cancels "any single request", all of them only "combined with
    // IORING_ASYNC_CANCEL_ALL".
    // io_uring_prep_cancel(3): "If flags are used to match multiple requests,
    // then a positive value is returned".
    p.counts = (c.flags & (kAll | kAny)) != 0;
    bool every_match = text == Text::kernel ? p.counts : (c.flags & kAll) != 0;
    if (every_match) {
        p.must_end = matched;
        // io_uring_prep_cancel(3): "a positive value is returned indicating how
        // many requests were found and canceled". The kernel adds one per
        // successful io_try_cancel() call: one per poll or timeout, one for
        // every queued io-wq match together (io_wq_cancel_cb() cancels them
        // all and answers once), none when running work matched as well
        // (-EALREADY falls through to the other searches).
        int count = int(matched.size());
        if (text == Text::kernel)
            count = int(polled.size() + timed.size()) + (!pending.empty() && running.empty() ? 1 : 0);
        p.count_may_undercount = count < int(matched.size());
        p.cancel_res = {count};
        if (may_race)  // a racing write may have been running or done: any count up to the matches
            for (int n = 0; n <= int(matched.size()); ++n)
                if (n != count) p.cancel_res.push_back(n);
    } else if (matched.empty()) {
        // "-ENOENT The request identified by user_data could not be located";
        // the man pages' ANY alone counts: 0.
        p.cancel_res = {p.counts ? 0 : -ENOENT};
    } else if (text == Text::man_pages) {
        // "By default, the first request matching the criteria given will be
        // canceled"; which one is first is not said. ANY: "any single request".
        p.one_of = matched;
        p.cancel_res = {p.counts ? 1 : 0};
        if (!running.empty() && !p.counts) p.cancel_res.push_back(-EALREADY);
    } else {
        // io_try_cancel() order: io-wq's queued work, then its running work
        // (signaled, -EALREADY, and the search goes on "as we may have poll
        // armed that need unarming"), then poll, then timeouts.
        if (!pending.empty()) {
            p.one_of = pending;
            p.cancel_res = {0};
        } else {
            if (!running.empty()) p.must_end.push_back(running.front());
            const std::vector<size_t>& next = !polled.empty() ? polled : timed;
            p.one_of = next;
            p.cancel_res = {next.empty() ? -EALREADY : 0};
        }
        if (may_race) {
            p.cancel_res.push_back(-ENOENT);
            p.cancel_res.push_back(-EALREADY);
        }
    }
    auto already = std::find(p.cancel_res.begin(), p.cancel_res.end(), -EALREADY);
    if (via == CancelVia::sync_register && !p.counts && already != p.cancel_res.end()) {
        // io_sync_cancel(): on -EALREADY it waits until the request is gone
        // (then 0) or the timeout passes: "This blocks until the matching
        // request is canceled or the timeout expires", and "-ETIME will be
        // returned if exceeded" (io_uring_register_sync_cancel(3)).
        p.cancel_res.erase(already);
        for (int res : {0, -ETIME})
            if (std::find(p.cancel_res.begin(), p.cancel_res.end(), res) == p.cancel_res.end()) p.cancel_res.push_back(res);
        p.sync_waits = true;
    }
    add_collateral(world, p);
    return p;
}

std::string indexes(const CancelWorld& world, const std::vector<size_t>& list) {
    std::string out;
    for (size_t i : list) out += str(out.empty() ? "" : ", ", "#", i, " ", world.requests[i].describe());
    return "{" + out + "}";
}

std::string res_list(const std::vector<int>& list) {
    std::string out;
    for (int r : list) out += (out.empty() ? "" : "/") + res_text(r);
    return out;
}

bool own_result(const InFlight& r, int res) {
    if (res == InFlight::kAlive) return true;
    return r.own_res == InFlight::kAnyOwnResult ? res >= 0 : res == r.own_res;
}

// Why the ends in `assigned` (world index -> its final CQE) break `p`, or "".
std::string violation(const CancelWorld& world, const CancelPrediction& p, const std::vector<const Cqe*>& assigned) {
    std::vector<size_t> ended;
    for (size_t i = 0; i < assigned.size(); ++i) {
        const InFlight& r = world.requests[i];
        const Cqe& cqe = *assigned[i];
        if (own_result(r, cqe.res)) {
            bool must = has(p.must_end, i) && !r.may_complete;
            if (must) return str("#", i, " ", r.describe(), " completed with its own result ", cqe.res, ", but the cancel must end it");
            continue;
        }
        bool predicted = has(p.must_end, i) || has(p.one_of, i) || has(p.collateral, i);
        if (!predicted)
            return str("#", i, " ", r.describe(), " ended ", res_text(cqe.res),
                       ", but the cancel does not match it (it should complete with its own result)");
        const std::vector<int>& allowed = p.end_res.at(i);
        if (std::find(allowed.begin(), allowed.end(), cqe.res) == allowed.end())
            return str("#", i, " ", r.describe(), " ended ", res_text(cqe.res), ", expected ", res_list(allowed),
                       r.may_complete ? " or its own result" : "");
        ended.push_back(i);
    }
    size_t of_one = size_t(std::count_if(ended.begin(), ended.end(), [&](size_t i) { return has(p.one_of, i); }));
    bool racing = std::all_of(p.one_of.begin(), p.one_of.end(), [&](size_t i) { return world.requests[i].may_complete; });
    if (!p.one_of.empty() && of_one != 1 && !(of_one == 0 && racing))
        return str(of_one, " of ", indexes(world, p.one_of), " ended by the cancel; the first match alone must");
    for (size_t tail : p.collateral) {
        bool head_ended = has(ended, size_t(world.requests[tail].head));
        if (head_ended != has(ended, tail))
            return str("link tail #", tail, (head_ended ? " did not end with its canceled head" : " ended though its head was not canceled"));
    }
    return "";
}

// Tries every way of giving the CQEs of each user_data to the requests that
// share it (a handful at most); "" when one fits.
std::string best_fit(const CancelWorld& world, const CancelPrediction& p, std::span<const Cqe> ends) {
    std::map<uint64_t, std::vector<size_t>> requests_of;
    std::map<uint64_t, std::vector<const Cqe*>> cqes_of;
    for (size_t i = 0; i < world.requests.size(); ++i) requests_of[world.requests[i].user_data].push_back(i);
    for (const Cqe& c : ends) cqes_of[c.user_data].push_back(&c);
    for (const auto& [ud, cqes] : cqes_of)
        if (!requests_of.count(ud)) return str("a CQE for user_data ", ud, ", which no request in flight has: ", cqes[0]->describe());
    for (const auto& [ud, reqs] : requests_of)
        if (cqes_of[ud].size() != reqs.size())
            return str(cqes_of[ud].size(), " final CQEs for user_data ", ud, ", carried by ", reqs.size(),
                       " request(s): each ends exactly once");
    std::vector<uint64_t> groups;
    for (auto& [ud, cqes] : cqes_of) {
        std::sort(cqes.begin(), cqes.end());
        groups.push_back(ud);
    }
    std::vector<const Cqe*> assigned(world.requests.size());
    std::string first_reason;
    std::function<bool(size_t)> assign = [&](size_t g) {
        if (g == groups.size()) {
            std::string why = violation(world, p, assigned);
            if (why.empty()) return true;
            if (first_reason.empty()) first_reason = why;
            return false;
        }
        std::vector<const Cqe*>& cqes = cqes_of[groups[g]];
        const std::vector<size_t>& reqs = requests_of[groups[g]];
        do {
            for (size_t k = 0; k < reqs.size(); ++k) assigned[reqs[k]] = cqes[k];
            if (assign(g + 1)) return true;
        } while (std::next_permutation(cqes.begin(), cqes.end()));
        return false;
    };
    return assign(0) ? "" : first_reason;
}

Check accounting(const CancelWorld& world, const CancelPrediction& p, uint64_t cancel_ud, const Cqe& cancel_cqe,
                 std::span<const Cqe> ends) {
    if (p.refused) return Check::pass();  // best_fit() saw every request complete on its own
    std::vector<uint64_t> targets, others;
    for (size_t i = 0; i < world.requests.size(); ++i)
        (has(p.must_end, i) || has(p.one_of, i) ? targets : others).push_back(world.requests[i].user_data);
    const CancelRequest cancels[] = {{cancel_ud, p.counts ? CancelReport::count : CancelReport::first_match, targets,
                                      p.count_may_undercount}};
    std::vector<Cqe> round(ends.begin(), ends.end());
    for (Cqe& c : round)
        if (c.res == InFlight::kAlive) c.res = 0;  // alive reads as "not canceled"
    round.push_back(cancel_cqe);
    return cancel_accounting(round, {.targets = targets, .cancels = cancels, .others = others});
}

}  // namespace

std::string placement_name(Placement placement) {
    switch (placement) {
        case Placement::poll_armed: return "poll_armed";
        case Placement::iowq_queued: return "iowq_queued";
        case Placement::iowq_running: return "iowq_running";
        case Placement::iowq_hashed: return "iowq_hashed";
        case Placement::timeout: return "timeout";
        case Placement::link_head: return "link_head";
        case Placement::link_tail: return "link_tail";
        case Placement::multishot: return "multishot";
    }
    return "?";
}

std::string cancel_flag_names(unsigned flags) {
    static const std::pair<unsigned, const char*> names[] = {{kFd, "FD"},       {kFdFixed, "FD_FIXED"}, {kOp, "OP"},
                                                             {kUserData, "USERDATA"}, {kAny, "ANY"}, {kAll, "ALL"}};
    std::string out;
    for (auto [bit, name] : names)
        if (flags & bit) out += (out.empty() ? "" : "|") + std::string(name);
    if (unsigned rest = flags & ~kKnownFlags) out += str(out.empty() ? "" : "|", "0x", std::hex, rest);
    return out.empty() ? "0" : out;
}

std::string InFlight::describe() const {
    std::string out = str("ud=", user_data, " ", opcode_name(opcode));
    if (file >= 0) out += str(" file=", file);
    return out + " " + placement_name(placement);
}

std::string CancelSqe::describe() const {
    std::string out = str("cancel flags=", cancel_flag_names(flags), " addr=", addr);
    if (flags & kFd) out += str((flags & kFdFixed) ? " slot=" : " fd=", fd);
    if (flags & kOp) out += " op=" + opcode_name(opcode);
    return out;
}

std::string CancelPrediction::describe(const CancelWorld& world) const {
    if (refused) return "refused with " + res_text(refused) + ", nothing ends";
    std::string out = "res " + res_list(cancel_res);
    if (!must_end.empty()) out += "; ends " + indexes(world, must_end);
    if (!one_of.empty()) out += "; ends exactly one of " + indexes(world, one_of);
    if (!collateral.empty()) out += "; with its head, link tail " + indexes(world, collateral);
    if (must_end.empty() && one_of.empty()) out += "; ends nothing";
    return out;
}

std::vector<CancelPrediction> predict(const CancelWorld& world, const CancelSqe& cancel, CancelVia via) {
    CancelPrediction kernel = predict_one(world, cancel, via, Text::kernel);
    CancelPrediction man = predict_one(world, cancel, via, Text::man_pages);
    bool same = kernel.refused == man.refused && kernel.cancel_res == man.cancel_res && kernel.must_end == man.must_end &&
                kernel.one_of == man.one_of && kernel.collateral == man.collateral;
    if (same) return {kernel};
    return {kernel, man};
}

CancelOutcome cancel_outcome(const CancelWorld& world, const CancelSqe& cancel, uint64_t cancel_ud,
                             std::span<const Cqe> cqes, std::optional<int> sync_res, CancelVia via) {
    std::vector<Cqe> ends;
    std::vector<const Cqe*> cancel_cqes;
    for (const Cqe& c : cqes) {
        if (c.user_data == cancel_ud && !sync_res) {
            cancel_cqes.push_back(&c);
            continue;
        }
        bool live_multishot = c.more() && std::any_of(world.requests.begin(), world.requests.end(), [&](const InFlight& r) {
                                  return r.user_data == c.user_data && r.placement == Placement::multishot;
                              });
        if (!live_multishot) ends.push_back(c);
    }
    // A multishot request that posted an event (F_MORE) after the cancel and
    // no final CQE is alive: it ended neither by the cancel nor by itself.
    for (const InFlight& r : world.requests) {
        if (r.placement != Placement::multishot) continue;
        bool live = std::any_of(cqes.begin(), cqes.end(), [&](const Cqe& c) { return c.user_data == r.user_data && c.more(); });
        bool ended = std::any_of(ends.begin(), ends.end(), [&](const Cqe& c) { return c.user_data == r.user_data; });
        if (live && !ended) ends.push_back(Cqe{r.user_data, InFlight::kAlive, 0, 0, 0});
    }
    std::vector<CancelPrediction> preds = predict(world, cancel, via);
    std::string kernel_said = cancel.describe() + ": the model (" + preds[0].text + ") predicts " + preds[0].describe(world);
    std::string cqe_list;
    for (const Cqe& c : cqes) cqe_list += (cqe_list.empty() ? "" : ", ") + c.describe();
    auto fail = [&](const std::string& why, std::optional<Cqe> offending = std::nullopt) {
        return CancelOutcome{Check::fail(kernel_said + "; the kernel: " + why + " [CQEs: " + cqe_list + "]", offending), ""};
    };
    if (!sync_res && cancel_cqes.size() != 1)
        return fail(str(cancel_cqes.size(), " CQEs for the cancel (user_data ", cancel_ud, "), expected one"));
    Cqe cancel_cqe = sync_res ? Cqe{cancel_ud, *sync_res, 0, 0, 0} : *cancel_cqes[0];
    std::string why;
    for (const CancelPrediction& p : preds) {
        std::string reason;
        if (std::find(p.cancel_res.begin(), p.cancel_res.end(), cancel_cqe.res) == p.cancel_res.end())
            reason = str("the cancel returned ", res_text(cancel_cqe.res), ", expected ", res_list(p.cancel_res));
        if (reason.empty()) reason = best_fit(world, p, ends);
        if (reason.empty()) {
            // The sync call's -ETIME reads as the async -EALREADY (found, still
            // running), and so does a 0 after waiting for running work: the
            // kernel turns the -ENOENT it sees once the work is gone into 0,
            // whether the work ended canceled or with its own result.
            Cqe as_async = cancel_cqe;
            if (sync_res && (as_async.res == -ETIME || (as_async.res == 0 && p.sync_waits))) as_async.res = -EALREADY;
            Check acc = accounting(world, p, cancel_ud, as_async, ends);
            if (acc) return {Check::pass(), p.text};
            reason = acc.rule;
        }
        if (why.empty()) why = reason;
        else why += "; against the " + p.text + " (" + p.describe(world) + "): " + reason;
    }
    return fail(why, sync_res ? std::nullopt : std::optional<Cqe>(cancel_cqe));
}

}  // namespace uc
