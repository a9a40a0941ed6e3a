// The timeout checkers fed synthetic CQE streams: what the pages promise
// passes; early and late expiry, two final CQEs, a CQE after the final one,
// undocumented link-timeout results and wrong waits are caught and named.
#include <gtest/gtest.h>

#include "compat/uapi.h"
#include "timeout_checks.h"

namespace {

using uc::Cqe;

constexpr uint64_t kTimeout = 3;
constexpr uint64_t kTarget = 4;
constexpr uint64_t kOther = 9;
constexpr int64_t kMs = 1'000'000;

Cqe at(int64_t t_ns, int res, uint64_t ud = kTimeout, uint32_t flags = 0) { return {ud, res, flags, uint64_t(t_ns), 0}; }
Cqe more_at(int64_t t_ns, int res, uint64_t ud = kTimeout) { return at(t_ns, res, ud, IORING_CQE_F_MORE); }

uc::TimeoutExpect relative_10ms() {
    return {.user_data = kTimeout, .armed_ns = 100 * kMs, .deadline_ns = 110 * kMs, .late_bound_ns = 200 * kMs,
            .allowed_res = {-ETIME}};
}

void expect_rule(const uc::Check& check, const std::string& words) {
    EXPECT_FALSE(check.ok);
    EXPECT_NE(check.rule.find(words), std::string::npos) << check.rule;
}

TEST(TimeoutCompletion, AcceptsExpiryInsideTheWindow) {
    EXPECT_TRUE(uc::timeout_completion(std::vector{at(111 * kMs, -ETIME)}, relative_10ms()).ok);
    EXPECT_TRUE(uc::timeout_completion(std::vector{at(110 * kMs, -ETIME)}, relative_10ms()).ok) << "exactly on time";
}

TEST(TimeoutCompletion, IgnoresOtherRequests) {
    std::vector trace{at(101 * kMs, 0, kOther), at(112 * kMs, -ETIME), more_at(113 * kMs, 5, kOther)};
    EXPECT_TRUE(uc::timeout_completion(trace, relative_10ms()).ok);
}

TEST(TimeoutCompletion, CatchesEarlyExpiry) {
    auto check = uc::timeout_completion(std::vector{at(109 * kMs, -ETIME)}, relative_10ms());
    expect_rule(check, "expired early");
    EXPECT_NE(check.rule.find("CLOCK_MONOTONIC"), std::string::npos) << "names the clock: " << check.rule;
    ASSERT_TRUE(check.offending.has_value());
    EXPECT_EQ(check.offending->res, -ETIME);
}

TEST(TimeoutCompletion, CatchesExpiryPastTheStatedLateBound) {
    auto check = uc::timeout_completion(std::vector{at(311 * kMs, -ETIME)}, relative_10ms());
    expect_rule(check, "expired late");
    EXPECT_NE(check.rule.find("late bound 200 ms"), std::string::npos) << check.rule;
}

TEST(TimeoutCompletion, PastDeadlineIsDueAtArming) {
    uc::TimeoutExpect past = relative_10ms();
    past.deadline_ns = 50 * kMs;  // before armed_ns: fires at once
    EXPECT_TRUE(uc::timeout_completion(std::vector{at(101 * kMs, -ETIME)}, past).ok);
    expect_rule(uc::timeout_completion(std::vector{at(400 * kMs, -ETIME)}, past), "expired late");
}

TEST(TimeoutCompletion, CatchesTwoFinalCqes) {
    auto check = uc::timeout_completion(std::vector{at(111 * kMs, -ETIME), at(112 * kMs, -ETIME)}, relative_10ms());
    expect_rule(check, "two final CQEs");
    EXPECT_EQ(check.offending->t_ns, uint64_t(112 * kMs));
}

TEST(TimeoutCompletion, CatchesCqeAfterTheFinalOne) {
    auto check = uc::timeout_completion(std::vector{at(111 * kMs, -ETIME), more_at(112 * kMs, -ETIME)}, relative_10ms());
    expect_rule(check, "CQE after the final one");
}

TEST(TimeoutCompletion, CatchesMoreFlagOnOneShotAndMissingCqe) {
    expect_rule(uc::timeout_completion(std::vector{more_at(111 * kMs, -ETIME)}, relative_10ms()), "IORING_CQE_F_MORE");
    expect_rule(uc::timeout_completion(std::vector{at(111 * kMs, 0, kOther)}, relative_10ms()), "no CQE");
}

TEST(TimeoutCompletion, CatchesWrongResult) {
    auto check = uc::timeout_completion(std::vector{at(105 * kMs, 0)}, relative_10ms());
    expect_rule(check, "expected -ETIME");
    uc::TimeoutExpect count = relative_10ms();
    count.allowed_res = {0};
    EXPECT_TRUE(uc::timeout_completion(std::vector{at(105 * kMs, 0)}, count).ok) << "a count completion has no time bound";
}

uc::MultishotTimeoutExpect every_5ms(unsigned count) {
    return {.user_data = kTimeout, .armed_ns = 100 * kMs, .period_ns = 5 * kMs, .late_bound_ns = 200 * kMs, .count = count};
}

TEST(MultishotTimeoutExpiries, AcceptsCountExpiriesLastWithoutMore) {
    std::vector trace{more_at(106 * kMs, -ETIME), more_at(111 * kMs, -ETIME), at(116 * kMs, -ETIME)};
    EXPECT_TRUE(uc::multishot_timeout_expiries(trace, every_5ms(3)).ok);
}

TEST(MultishotTimeoutExpiries, AcceptsIndefiniteEndedByRemoval) {
    std::vector trace{more_at(106 * kMs, -ETIME), more_at(111 * kMs, -ETIME), at(113 * kMs, -ECANCELED)};
    EXPECT_TRUE(uc::multishot_timeout_expiries(trace, every_5ms(0)).ok);
}

TEST(MultishotTimeoutExpiries, CatchesEarlyRepeat) {
    // The second expiry came 8 ms after arming: sooner than two periods.
    std::vector trace{more_at(106 * kMs, -ETIME), more_at(108 * kMs, -ETIME), at(116 * kMs, -ETIME)};
    expect_rule(uc::multishot_timeout_expiries(trace, every_5ms(3)), "expiry 2 early");
}

TEST(MultishotTimeoutExpiries, CatchesWrongCountAndCqeAfterFinal) {
    std::vector short_trace{more_at(106 * kMs, -ETIME), at(111 * kMs, -ETIME)};
    expect_rule(uc::multishot_timeout_expiries(short_trace, every_5ms(3)), "lacks IORING_CQE_F_MORE");
    std::vector after{more_at(106 * kMs, -ETIME), at(111 * kMs, -ETIME), more_at(116 * kMs, -ETIME)};
    expect_rule(uc::multishot_timeout_expiries(after, every_5ms(2)), "after its final CQE");
    std::vector last_with_more{more_at(106 * kMs, -ETIME), more_at(111 * kMs, -ETIME), at(116 * kMs, -ECANCELED)};
    expect_rule(uc::multishot_timeout_expiries(last_with_more, every_5ms(2)), "final CQE res");
}

TEST(LinkTimeoutOutcome, AcceptsBothDocumentedRaces) {
    uc::LinkTimeoutExpect fires{kTimeout, kTarget, uc::LinkRace::timeout_fires};
    EXPECT_TRUE(uc::link_timeout_outcome(std::vector{at(1, -ECANCELED, kTarget), at(2, -ETIME)}, fires).ok);
    EXPECT_TRUE(uc::link_timeout_outcome(std::vector{at(1, -ETIME), at(2, -EINTR, kTarget)}, fires).ok);
    uc::LinkTimeoutExpect first{kTimeout, kTarget, uc::LinkRace::request_first};
    EXPECT_TRUE(uc::link_timeout_outcome(std::vector{at(1, 8, kTarget), at(2, -ECANCELED)}, first).ok);
}

TEST(LinkTimeoutOutcome, CatchesResultOfOne) {
    uc::LinkTimeoutExpect first{kTimeout, kTarget, uc::LinkRace::request_first};
    auto check = uc::link_timeout_outcome(std::vector{at(1, 8, kTarget), at(2, 1)}, first);
    expect_rule(check, "not a documented result");
    EXPECT_EQ(check.offending->res, 1);
    expect_rule(uc::link_timeout_outcome(std::vector{at(1, 8, kTarget), at(2, 0)}, first), "not a documented result");
}

TEST(LinkTimeoutOutcome, CatchesWrongPairing) {
    uc::LinkTimeoutExpect fires{kTimeout, kTarget, uc::LinkRace::timeout_fires};
    expect_rule(uc::link_timeout_outcome(std::vector{at(1, 8, kTarget), at(2, -ETIME)}, fires), "expected -ECANCELED or -EINTR");
    expect_rule(uc::link_timeout_outcome(std::vector{at(1, -ECANCELED, kTarget), at(2, -ECANCELED)}, fires), "expected -ETIME");
    uc::LinkTimeoutExpect first{kTimeout, kTarget, uc::LinkRace::request_first};
    expect_rule(uc::link_timeout_outcome(std::vector{at(1, 8, kTarget), at(2, -ETIME)}, first), "expected -ECANCELED");
    expect_rule(uc::link_timeout_outcome(std::vector{at(1, -ECANCELED, kTarget), at(2, -ECANCELED)}, first),
                "reports being canceled");
}

TEST(LinkTimeoutOutcome, CatchesTwoFinalsOnEitherSide) {
    uc::LinkTimeoutExpect fires{kTimeout, kTarget, uc::LinkRace::timeout_fires};
    expect_rule(uc::link_timeout_outcome(std::vector{at(1, -ECANCELED, kTarget), at(2, -ETIME), at(3, -ETIME)}, fires),
                "two final CQEs for link timeout");
    expect_rule(uc::link_timeout_outcome(std::vector{at(1, -ECANCELED, kTarget), at(2, -ETIME), at(3, 0, kTarget)}, fires),
                "two final CQEs for linked request");
}

TEST(WaitOutcome, AcceptsAndCatches) {
    uc::WaitExpect etime{"wait 10 ms, nothing pending", -ETIME, 10 * kMs, 210 * kMs, 0};
    EXPECT_TRUE(uc::wait_outcome({-ETIME, 0, 11 * kMs, 0}, etime).ok);
    expect_rule(uc::wait_outcome({-ETIME, 0, 9 * kMs, 0}, etime), "earlier than");
    expect_rule(uc::wait_outcome({-ETIME, 0, 300 * kMs, 0}, etime), "later than");
    expect_rule(uc::wait_outcome({0, 0, 11 * kMs, 1}, etime), "expected -ETIME");
    uc::WaitExpect work{"min wait with one CQE posted", 0, 0, 210 * kMs, 1};
    expect_rule(uc::wait_outcome({-ETIME, 0, 30 * kMs, 1}, work), "expected 0");
    expect_rule(uc::wait_outcome({0, 0, 30 * kMs, 0}, work), "at least 1");
}

TEST(P50, MiddleValue) {
    EXPECT_EQ(uc::p50({}), 0);
    EXPECT_EQ(uc::p50({5}), 5);
    EXPECT_EQ(uc::p50({9, 1, 5}), 5);
    EXPECT_EQ(uc::p50({4, 1, 3, 2}), 2);
}

}  // namespace
