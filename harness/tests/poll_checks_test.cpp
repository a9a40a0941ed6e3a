// The poll wakeup checker fed synthetic rounds: coalesced wakeups pass,
// lost wakeups, wrong events, unit mismatches and looping polls are caught.
#include <gtest/gtest.h>
#include <poll.h>

#include "compat/uapi.h"
#include "poll_checks.h"

namespace {

using uc::Cqe;
using uc::PollCounting;
using uc::PollRound;

constexpr uint64_t kPoll = 3;

Cqe wake(unsigned events) { return {kPoll, int32_t(events), IORING_CQE_F_MORE, 0, 0}; }

PollRound round_of(unsigned ops, uint64_t produced, uint64_t consumed, std::vector<Cqe> cqes) {
    return {ops, produced, consumed, std::move(cqes)};
}

const uc::PollExpect kIn{POLLIN, PollCounting::exact};

TEST(PollWakeups, AcceptsOneWakeupPerRound) {
    std::vector<PollRound> rounds{round_of(1, 10, 10, {wake(POLLIN)}), round_of(1, 3, 3, {wake(POLLIN)})};
    EXPECT_TRUE(uc::poll_wakeups(rounds, kIn).ok);
}

TEST(PollWakeups, AcceptsCoalescedWakeups) {
    // Three writes, one CQE: wakeups coalesce, the bytes still add up.
    std::vector<PollRound> rounds{round_of(3, 30, 30, {wake(POLLIN)}), round_of(2, 5, 5, {wake(POLLIN), wake(POLLIN)})};
    EXPECT_TRUE(uc::poll_wakeups(rounds, kIn).ok);
}

TEST(PollWakeups, AcceptsAlwaysReportedEvents) {
    EXPECT_TRUE(uc::poll_wakeups({round_of(1, 1, 1, {wake(POLLIN | POLLHUP)})}, kIn).ok);
}

TEST(PollWakeups, CatchesLostWakeup) {
    auto check = uc::poll_wakeups({round_of(1, 8, 8, {wake(POLLIN)}), round_of(2, 8, 8, {})}, kIn);
    EXPECT_FALSE(check.ok);
    EXPECT_NE(check.rule.find("round 2"), std::string::npos) << check.rule;
    EXPECT_NE(check.rule.find("lost wakeup"), std::string::npos) << check.rule;
}

TEST(PollWakeups, CatchesWakeupWithoutRequestedEvent) {
    // Only POLLHUP: allowed in res, but the produced data never woke the poll with POLLIN.
    auto check = uc::poll_wakeups({round_of(1, 8, 8, {wake(POLLHUP)})}, kIn);
    EXPECT_FALSE(check.ok);
    EXPECT_NE(check.rule.find("lost wakeup"), std::string::npos) << check.rule;
}

TEST(PollWakeups, CatchesUnrequestedEvent) {
    auto check = uc::poll_wakeups({round_of(1, 8, 8, {wake(POLLIN | POLLOUT)})}, kIn);
    EXPECT_FALSE(check.ok);
    EXPECT_NE(check.rule.find("POLLIN|POLLOUT"), std::string::npos) << check.rule;
    ASSERT_TRUE(check.offending.has_value());
}

TEST(PollWakeups, CatchesEmptyOrErrorMask) {
    EXPECT_FALSE(uc::poll_wakeups({round_of(1, 8, 8, {wake(0)})}, kIn).ok);
    Cqe error{kPoll, -EINVAL, 0, 0, 0};
    EXPECT_FALSE(uc::poll_wakeups({round_of(1, 8, 8, {error})}, kIn).ok);
}

TEST(PollWakeups, CatchesDrainMismatchWhenExact) {
    auto short_drain = uc::poll_wakeups({round_of(1, 8, 7, {wake(POLLIN)})}, kIn);
    EXPECT_FALSE(short_drain.ok);
    EXPECT_NE(short_drain.rule.find("found 7"), std::string::npos) << short_drain.rule;
    EXPECT_FALSE(uc::poll_wakeups({round_of(1, 8, 9, {wake(POLLIN)})}, kIn).ok);
}

TEST(PollWakeups, AtLeastOneToleratesCoalescedCounters) {
    uc::PollExpect hint{POLLIN, PollCounting::at_least_one};
    EXPECT_TRUE(uc::poll_wakeups({round_of(3, 3, 1, {wake(POLLIN)}), round_of(1, 1, 2, {wake(POLLIN)})}, hint).ok);
    auto check = uc::poll_wakeups({round_of(1, 1, 0, {wake(POLLIN)})}, hint);
    EXPECT_FALSE(check.ok);
    EXPECT_NE(check.rule.find("found none"), std::string::npos) << check.rule;
}

TEST(PollWakeups, CatchesLoopingPoll) {
    // One late wakeup is allowed; a poll re-posting a held state is not.
    std::vector<PollRound> one_late{round_of(1, 1, 1, {wake(POLLIN), wake(POLLIN)})};
    EXPECT_TRUE(uc::poll_wakeups(one_late, kIn).ok);
    std::vector<Cqe> storm(50, wake(POLLIN));
    auto check = uc::poll_wakeups({round_of(1, 1, 1, storm)}, kIn);
    EXPECT_FALSE(check.ok);
    EXPECT_NE(check.rule.find("loops"), std::string::npos) << check.rule;
}

TEST(PollMaskNames, NamesBitsAndRest) {
    EXPECT_EQ(uc::poll_mask_names(POLLIN | POLLRDHUP), "POLLIN|POLLRDHUP");
    EXPECT_EQ(uc::poll_mask_names(0), "0");
    EXPECT_EQ(uc::poll_mask_names(0x100000), "0x100000");
}

}  // namespace
