// Wakeup conservation for poll requests: a poll's CQEs are hints that a
// file became ready, and wakeups coalesce, so they are judged by the units
// of readiness (bytes, eventfd counter values, timer expirations, queued
// signals, CQEs of a polled ring) produced and drained, never by counting
// CQEs against writes.
//
// Rules enforced (quoted where they are checked, in poll_checks.cpp):
// poll(2) for the events a poll may report, io_uring_enter(2) for
// IORING_OP_POLL_ADD's level-then-edge triggering.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checks.h"
#include "cqe.h"

namespace uc {

// One round of a poll scenario: some operations made the file ready, the
// scenario waited for the poll's wakeup, then drained the file.
struct PollRound {
    unsigned produce_ops = 0;  // operations that each made the file ready
    uint64_t produced = 0;     // units they made available
    uint64_t consumed = 0;     // units the drain after the wakeup found
    std::vector<Cqe> cqes;     // the poll's CQEs (res >= 0) reaped during the round
};

// How exactly drained units must match produced ones.
enum class PollCounting {
    exact,         // the file counts what was produced (bytes, counters, expirations)
    at_least_one,  // notifications coalesce and may be spurious (a ring's registered eventfd)
};

struct PollExpect {
    unsigned requested = 0;  // the poll mask of the request (POLLIN, POLLOUT, ...)
    PollCounting counting = PollCounting::exact;
};

// The events any poll may report beside the requested ones (poll(2)).
unsigned poll_always_reported();

// Checks, over all rounds: every CQE reports only requested or always-reported
// events, and at least one of them; every round that produced readiness saw a
// wakeup carrying a requested event; drained units match produced ones (per
// round, by `counting`); and the CQEs do not outnumber the producing
// operations by more than one (a poll that re-posts without new events loops).
Check poll_wakeups(const std::vector<PollRound>& rounds, const PollExpect& expect);

// "POLLIN|POLLHUP" for a poll mask.
std::string poll_mask_names(unsigned mask);

}  // namespace uc
