#include "explore_oracle.h"

#include <algorithm>
#include <cerrno>
#include <unordered_map>

#include "bufring_checks.h"
#include "cancel_checks.h"
#include "util.h"

namespace uc {
namespace {

using CqeIndex = std::unordered_map<uint64_t, std::vector<size_t>>;  // user_data -> CQE positions

bool ended_by_cancel(int res) { return res == -ECANCELED || res == -EINTR; }

ExploreViolation violation(std::string rule_id, Check check) { return {std::move(rule_id), std::move(check)}; }

bool reads_stream(ExploreKind kind) {
    return kind == ExploreKind::read || kind == ExploreKind::linked_read || kind == ExploreKind::recv_multishot;
}

// The result a request's CQE may carry, from its man page.
bool result_allowed(const ExploreRequest& q, int res, bool final_cqe) {
    // close(2) before the SQE was prepared: the descriptor is no longer valid.
    if (q.fd_closed && res == -EBADF) return true;
    switch (q.kind) {
        // io_uring_prep_nop(3): ERRORS "None".
        case ExploreKind::nop: return res == 0;
        // write(2)/send(2): the number of bytes written, at most the count
        // asked for; io_uring_cancelation(7): -ECANCELED, or -EINTR if it
        // was already running.
        case ExploreKind::write: return (res > 0 && unsigned(res) <= q.len) || ended_by_cancel(res);
        // read(2)/recv(2): at most the count asked for; 0 only at end of file
        // (checked as eof-before-close).
        case ExploreKind::read:
        case ExploreKind::linked_read: return (res >= 0 && unsigned(res) <= q.len) || ended_by_cancel(res);
        // eventfd(2): "each successful read(2) returns an 8-byte integer".
        case ExploreKind::eventfd_read: return res == 8 || ended_by_cancel(res);
        // io_uring_prep_poll_add(3): a multishot CQE with IORING_CQE_F_MORE
        // reports events (a non-zero mask); "if the multishot poll request
        // gets terminated or experiences an error, this flag will not be set".
        case ExploreKind::poll_multishot: return final_cqe || res > 0;
        // io_uring_prep_recv(3): CQEs with IORING_CQE_F_MORE carry data; the
        // one without it ends the request "regardless of its result".
        case ExploreKind::recv_multishot: return final_cqe || res > 0;
        // io_uring_prep_timeout(3): -ETIME on expiry, 0 when `count`
        // completions satisfied it, -ECANCELED when removed.
        case ExploreKind::timeout: return res == -ETIME || (res == 0 && q.count > 0) || res == -ECANCELED;
        // IORING_TIMEOUT_MULTISHOT: each expiry posts -ETIME, more flagged
        // with IORING_CQE_F_MORE; removal ends it -ECANCELED.
        case ExploreKind::timeout_multishot: return res == -ETIME || (final_cqe && res == -ECANCELED);
        // io_uring_prep_link_timeout(3) ERRORS: -ETIME, -ECANCELED, -ENOENT.
        // io_uring/timeout.c reports what canceling the linked request
        // returned, so -EALREADY (it was running, io_uring_prep_cancel(3)) too.
        case ExploreKind::link_timeout:
            return res == -ETIME || res == -ECANCELED || res == -ENOENT || res == -EALREADY;
        // io_uring_prep_cancel(3): 0 found and canceled, -ENOENT not found,
        // -EALREADY already running; with ALL or ANY "a positive value ...
        // how many requests were found and canceled". ANY is ANY|ALL in
        // io_uring/cancel.c (reproducers/README.md, eventfd-cancel-race).
        case ExploreKind::cancel:
            if (q.key == ExploreCancelKey::user_data || q.key == ExploreCancelKey::fd)
                return res == 0 || res == -ENOENT || res == -EALREADY;
            return res >= 0;
    }
    return false;
}

Check check_known(const ExploreRound& round, const CqeIndex& index) {
    for (const Cqe& cqe : round.cqes)
        if (!index.count(cqe.user_data))
            return Check::fail("CQE for a user_data no request of the round carried", cqe);
    return Check::pass();
}

const std::vector<size_t>& positions(const CqeIndex& index, uint64_t user_data) {
    static const std::vector<size_t> none;
    auto it = index.find(user_data);
    return it == index.end() ? none : it->second;
}

std::vector<Cqe> cqes_of(const ExploreRound& round, const CqeIndex& index, uint64_t user_data) {
    std::vector<Cqe> out;
    for (size_t i : positions(index, user_data)) out.push_back(round.cqes[i]);
    return out;
}

// The final CQE's position, if any.
std::optional<size_t> final_of(const ExploreRound& round, const CqeIndex& index, uint64_t user_data) {
    for (size_t i : positions(index, user_data))
        if (!round.cqes[i].more()) return i;
    return std::nullopt;
}

Check check_drained(const ExploreRound& round, const CqeIndex& index) {
    std::vector<const ExploreRequest*> open;
    for (const ExploreRequest& q : round.requests)
        if (!final_of(round, index, q.user_data)) open.push_back(&q);
    if (open.empty()) return Check::pass();
    const ExploreRequest& q = *open.front();
    const auto& seen = positions(index, q.user_data);
    std::string all;
    for (size_t i = 0; i < open.size() && i < 8; ++i)
        all += str(i ? ", " : "", explore_kind_name(open[i]->kind), " ", open[i]->user_data);
    return Check::fail(str(explore_kind_name(q.kind), " user_data ", q.user_data, " has no final CQE after the drain "
                           "(every outstanding request canceled, writers closed, deadline passed; ",
                           seen.size(), " CQEs with IORING_CQE_F_MORE); ", open.size(), " outstanding: ", all,
                           open.size() > 8 ? ", ..." : ""),
                       seen.empty() ? std::nullopt : std::optional<Cqe>(round.cqes[seen.back()]));
}

Check check_contracts(const ExploreRound& round, const CqeIndex& index) {
    for (const ExploreRequest& q : round.requests) {
        std::vector<Cqe> mine = cqes_of(round, index, q.user_data);
        Check c = Check::pass();
        if (explore_multishot(q.kind)) {
            // io_uring_multishot(7); a multishot timeout's expiries are -ETIME with F_MORE.
            MultishotExpect expect;
            expect.error_ends_request = q.kind != ExploreKind::timeout_multishot;
            c = multishot_contract(mine, q.user_data, expect);
        } else {
            c = single_completion(mine, q.user_data);
        }
        if (!c) return c;
    }
    return Check::pass();
}

std::optional<ExploreViolation> check_results(const ExploreRound& round, const std::unordered_map<uint64_t, size_t>& req_of) {
    for (size_t i = 0; i < round.cqes.size(); ++i) {
        const Cqe& cqe = round.cqes[i];
        const ExploreRequest& q = round.requests[req_of.at(cqe.user_data)];
        bool closed = q.stream >= 0 && size_t(q.stream) < round.streams.size() &&
                      round.streams[q.stream].closed_at && i >= *round.streams[q.stream].closed_at;
        if (!result_allowed(q, cqe.res, !cqe.more()))
            return violation("result-allowed", Check::fail(str(explore_kind_name(q.kind), " ended with a result its "
                                                               "man page does not list for it"),
                                                           cqe));
        // pipe(7): "If all file descriptors referring to the write end of a
        // pipe have been closed, then an attempt to read(2) from the pipe will
        // see end-of-file"; recv(2): 0 "when the peer has performed an orderly
        // shutdown". Before that, 0 bytes is not a read's result.
        if (reads_stream(q.kind) && cqe.res == 0 && !closed)
            return violation("eof-before-close",
                             Check::fail(str(explore_kind_name(q.kind), " returned 0 (end of file) before the writer of "
                                             "its stream was closed"),
                                         cqe));
    }
    return std::nullopt;
}

bool can_match(const ExploreRequest& cancel, const ExploreRequest& other) {
    if (other.kind == ExploreKind::cancel) return false;
    switch (cancel.key) {
        case ExploreCancelKey::user_data: return other.user_data == cancel.target;
        case ExploreCancelKey::any: return true;
        default: return other.file >= 0 && other.file == cancel.file;
    }
}

// One-shot requests the cancel family's model covers: they end with their own
// non-negative result or by cancelation (no link, no -ETIME, no -EBADF).
bool cancel_model_target(const ExploreRequest& q) {
    return !q.fd_closed && (q.kind == ExploreKind::nop || q.kind == ExploreKind::write ||
                            q.kind == ExploreKind::read || q.kind == ExploreKind::eventfd_read);
}

// cancel_accounting (io_uring_cancelation(7)) over the largest part of the
// round it models: cancels whose every possible match is a model target, and
// those targets, provided no other cancel can reach them.
Check check_cancel_model(const ExploreRound& round) {
    const auto& reqs = round.requests;
    std::vector<std::vector<size_t>> matches(reqs.size());
    std::vector<bool> tainted(reqs.size(), false);
    for (size_t c = 0; c < reqs.size(); ++c) {
        if (reqs[c].kind != ExploreKind::cancel) continue;
        for (size_t t = 0; t < c; ++t)
            if (can_match(reqs[c], reqs[t])) matches[c].push_back(t);
        // Outside the cancel family's model too: -EBADF for a closed fd, and
        // counts (ALL/ANY), which io-wq may report low (io_wq_cancel_cb()
        // answers once for all queued matches), so a count of 0 does not show
        // that nothing was found; check_cancel_counts() keeps their upper bound.
        bool counts = reqs[c].key == ExploreCancelKey::fd_all || reqs[c].key == ExploreCancelKey::any;
        tainted[c] = reqs[c].fd_closed || counts ||
                     std::any_of(matches[c].begin(), matches[c].end(), [&](size_t t) { return !cancel_model_target(reqs[t]); });
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t c = 0; c < reqs.size(); ++c) {
            if (reqs[c].kind != ExploreKind::cancel) continue;
            for (size_t t : matches[c]) {
                if (tainted[c] && !tainted[t]) tainted[t] = changed = true;
                if (tainted[t] && !tainted[c]) tainted[c] = changed = true;
            }
        }
    }
    std::vector<uint64_t> targets;
    std::vector<CancelRequest> cancels;
    std::vector<std::vector<uint64_t>> cancel_targets;
    for (size_t c = 0; c < reqs.size(); ++c) {
        if (reqs[c].kind != ExploreKind::cancel || tainted[c]) continue;
        std::vector<uint64_t> mine;
        for (size_t t : matches[c]) {
            mine.push_back(reqs[t].user_data);
            if (std::find(targets.begin(), targets.end(), reqs[t].user_data) == targets.end())
                targets.push_back(reqs[t].user_data);
        }
        cancel_targets.push_back(std::move(mine));
        bool counts = reqs[c].key == ExploreCancelKey::fd_all || reqs[c].key == ExploreCancelKey::any;
        cancels.push_back({reqs[c].user_data, counts ? CancelReport::count : CancelReport::first_match, {}});
    }
    if (cancels.empty()) return Check::pass();
    for (size_t i = 0; i < cancels.size(); ++i) cancels[i].targets = cancel_targets[i];
    std::vector<Cqe> cqes;
    for (const Cqe& cqe : round.cqes) {
        bool in = std::find(targets.begin(), targets.end(), cqe.user_data) != targets.end() ||
                  std::any_of(cancels.begin(), cancels.end(), [&](const CancelRequest& c) { return c.user_data == cqe.user_data; });
        if (in) cqes.push_back(cqe);
    }
    return cancel_accounting(cqes, CancelRound{targets, cancels});
}

// For every cancel, whatever it can match: "res is 0 on success (request was
// found and canceled)" (io_uring_prep_cancel(3)) needs a match that ended
// -ECANCELED or -EINTR; a count cannot exceed the matches that did.
Check check_cancel_counts(const ExploreRound& round, const CqeIndex& index) {
    const auto& reqs = round.requests;
    for (size_t c = 0; c < reqs.size(); ++c) {
        if (reqs[c].kind != ExploreKind::cancel) continue;
        const Cqe& mine = round.cqes[*final_of(round, index, reqs[c].user_data)];
        size_t canceled = 0;
        for (size_t t = 0; t < c; ++t)
            if (can_match(reqs[c], reqs[t]) && ended_by_cancel(round.cqes[*final_of(round, index, reqs[t].user_data)].res))
                ++canceled;
        bool counts = reqs[c].key == ExploreCancelKey::fd_all || reqs[c].key == ExploreCancelKey::any;
        if (!counts && mine.res == 0 && canceled == 0)
            return Check::fail("cancel returned 0 (found and canceled) but nothing it can match ended -ECANCELED or -EINTR",
                               mine);
        if (counts && mine.res > 0 && size_t(mine.res) > canceled)
            return Check::fail(str("cancel reports ", mine.res, " requests canceled but ", canceled,
                                   " of those it can match ended -ECANCELED or -EINTR"),
                               mine);
    }
    return Check::pass();
}

// io_uring_provided_buffers(7): a CQE names a buffer the kernel held; the
// ledger is the bufring family's.
Check check_buffers(const ExploreRound& round, const std::unordered_map<uint64_t, size_t>& req_of) {
    BufferLedger ledger(BufMode::plain);
    std::vector<BufSpan> spans;
    size_t next = 0;
    for (size_t i = 0; i < round.cqes.size(); ++i) {
        for (; next < round.provides.size() && round.provides[next].at_cqe <= i; ++next)
            if (Check c = ledger.provide(round.provides[next].bid, round.provides[next].len); !c) return c;
        const Cqe& cqe = round.cqes[i];
        if (round.requests[req_of.at(cqe.user_data)].kind != ExploreKind::recv_multishot) continue;
        if (Check c = ledger.consume(cqe, &spans); !c) return c;
    }
    return Check::pass();
}

// What is written to a stream is read from it: by the round's reads, or by
// hand after the drain. Nothing lost, nothing made up.
Check check_bytes(const ExploreRound& round, const std::unordered_map<uint64_t, size_t>& req_of) {
    std::vector<uint64_t> written(round.streams.size()), read(round.streams.size());
    for (const Cqe& cqe : round.cqes) {
        const ExploreRequest& q = round.requests[req_of.at(cqe.user_data)];
        if (cqe.res <= 0 || q.stream < 0 || size_t(q.stream) >= round.streams.size()) continue;
        if (q.kind == ExploreKind::write) written[q.stream] += uint64_t(cqe.res);
        if (reads_stream(q.kind)) read[q.stream] += uint64_t(cqe.res);
    }
    for (size_t s = 0; s < round.streams.size(); ++s)
        if (written[s] != read[s] + round.streams[s].leftover)
            return Check::fail(str("stream ", s, ": ", written[s], " bytes written (sum of write CQEs), but ", read[s],
                                   " read by CQEs and ", round.streams[s].leftover, " left in it after the drain"));
    return Check::pass();
}

}  // namespace

bool explore_multishot(ExploreKind kind) {
    return kind == ExploreKind::poll_multishot || kind == ExploreKind::recv_multishot ||
           kind == ExploreKind::timeout_multishot;
}

std::string explore_kind_name(ExploreKind kind) {
    static const char* const names[] = {"nop", "write", "read", "eventfd-read", "poll-multishot", "recv-multishot",
                                        "timeout", "timeout-multishot", "linked-read", "link-timeout", "cancel"};
    return names[size_t(kind)];
}

const std::vector<std::string>& explore_rule_ids() {
    static const std::vector<std::string> ids{"unknown-user-data", "outstanding-after-drain", "completion-contract",
                                              "result-allowed",    "eof-before-close",        "cancel-consistent",
                                              "buffer-ownership",  "bytes-conserved"};
    return ids;
}

std::optional<ExploreViolation> explore_oracle(const ExploreRound& round) {
    CqeIndex index;
    std::unordered_map<uint64_t, size_t> req_of;
    for (size_t r = 0; r < round.requests.size(); ++r) {
        req_of.emplace(round.requests[r].user_data, r);
        index[round.requests[r].user_data];
    }
    for (size_t i = 0; i < round.cqes.size(); ++i) {
        auto it = index.find(round.cqes[i].user_data);
        if (it != index.end()) it->second.push_back(i);
    }
    // io_uring_enter(2): user_data "is copied from the field of the same
    // name in the submission queue entry": no request, no CQE.
    if (Check c = check_known(round, index); !c) return violation("unknown-user-data", c);
    // io_uring_cancelation(7): a canceled request still posts its CQE; after
    // the drain nothing may be pending.
    if (Check c = check_drained(round, index); !c) return violation("outstanding-after-drain", c);
    // io_uring_multishot(7), and one CQE per one-shot request.
    if (Check c = check_contracts(round, index); !c) return violation("completion-contract", c);
    if (auto v = check_results(round, req_of)) return v;
    if (Check c = check_cancel_counts(round, index); !c) return violation("cancel-consistent", c);
    if (Check c = check_cancel_model(round); !c) return violation("cancel-consistent", c);
    if (Check c = check_buffers(round, req_of); !c) return violation("buffer-ownership", c);
    if (Check c = check_bytes(round, req_of); !c) return violation("bytes-conserved", c);
    return std::nullopt;
}

}  // namespace uc
