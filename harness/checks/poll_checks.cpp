#include "poll_checks.h"

#include <poll.h>

#include <utility>

#include "util.h"

namespace uc {

unsigned poll_always_reported() {
    // poll(2): POLLERR, POLLHUP and POLLNVAL are returned in revents whether
    // or not they were asked for ("ignored in events").
    return POLLERR | POLLHUP | POLLNVAL;
}

std::string poll_mask_names(unsigned mask) {
    static const std::pair<unsigned, const char*> kNames[] = {
        {POLLIN, "POLLIN"},         {POLLPRI, "POLLPRI"},       {POLLOUT, "POLLOUT"},
        {POLLERR, "POLLERR"},       {POLLHUP, "POLLHUP"},       {POLLNVAL, "POLLNVAL"},
        {POLLRDNORM, "POLLRDNORM"}, {POLLRDBAND, "POLLRDBAND"}, {POLLWRNORM, "POLLWRNORM"},
        {POLLWRBAND, "POLLWRBAND"}, {POLLMSG, "POLLMSG"},       {POLLRDHUP, "POLLRDHUP"},
    };
    std::string out;
    for (const auto& [bit, name] : kNames)
        if (mask & bit) {
            out += (out.empty() ? "" : "|") + std::string(name);
            mask &= ~bit;
        }
    if (mask) out += str(out.empty() ? "" : "|", "0x", std::hex, mask);
    return out.empty() ? "0" : out;
}

Check poll_wakeups(const std::vector<PollRound>& rounds, const PollExpect& expect) {
    const unsigned allowed = expect.requested | poll_always_reported();
    uint64_t produced = 0, consumed = 0, ops = 0, cqes = 0;
    for (size_t k = 0; k < rounds.size(); ++k) {
        const PollRound& round = rounds[k];
        bool requested_seen = false;
        for (const Cqe& cqe : round.cqes) {
            // io_uring_prep_poll_add(3): res "is a bitmask of the events
            // notified. See the poll(2) man page" - the requested events plus
            // those poll(2) always reports, and a wakeup reports at least one.
            unsigned res = unsigned(cqe.res);
            if (cqe.res <= 0 || (res & ~allowed))
                return Check::fail(str("poll CQE res ", poll_mask_names(res), " in round ", k + 1, ": a poll reports ",
                                       "only the requested ", poll_mask_names(expect.requested), " or ",
                                       poll_mask_names(poll_always_reported()), ", and at least one event"),
                                   cqe);
            requested_seen |= (res & expect.requested) != 0;
        }
        // io_uring_enter(2): IORING_OP_POLL_ADD triggers when "the requested
        // event becomes true"; readiness produced must wake the poll.
        if (round.produced > 0 && !requested_seen)
            return Check::fail(str("round ", k + 1, ": ", round.produce_ops, " operation(s) made ", round.produced,
                                   " unit(s) ready but no poll CQE reported ", poll_mask_names(expect.requested),
                                   " (lost wakeup)"),
                               round.cqes.empty() ? std::nullopt : std::optional<Cqe>(round.cqes.back()));
        if (expect.counting == PollCounting::exact && round.consumed != round.produced)
            return Check::fail(str("round ", k + 1, ": the drain after the wakeup found ", round.consumed,
                                   " unit(s), the round produced ", round.produced,
                                   " (readiness lost, duplicated or reported on the wrong file)"));
        if (expect.counting == PollCounting::at_least_one && round.produced > 0 && round.consumed == 0)
            return Check::fail(str("round ", k + 1, ": the poll woke for ", round.produced,
                                   " produced unit(s) but the drain found none"));
        produced += round.produced;
        consumed += round.consumed;
        ops += round.produce_ops;
        cqes += round.cqes.size();
    }
    // Completions beyond the first are edge triggered (io_uring_enter(2)):
    // each needs a new event, so CQEs cannot outnumber the operations that
    // made the file ready (plus one late wakeup still in flight at the end
    // of the previous round). More means the poll re-posts a held state.
    if (cqes > ops + 1)
        return Check::fail(str(cqes, " poll CQEs for ", ops, " operations that made the file ready: ",
                               "edge-triggered completions need a new event each (the poll loops)"));
    if (expect.counting == PollCounting::exact && consumed != produced)
        return Check::fail(str("drained ", consumed, " units in all, produced ", produced));
    return Check::pass();
}

}  // namespace uc
