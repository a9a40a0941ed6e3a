// The multishot contract checker fed synthetic CQE streams: valid ones pass,
// each way of breaking io_uring_multishot(7) is caught and named.
#include <gtest/gtest.h>

#include "checks.h"
#include "compat/uapi.h"
#include "util.h"

namespace {

using uc::Cqe;

constexpr uint64_t kReq = 7;
constexpr uint64_t kOther = 9;

Cqe more(int res, uint64_t ud = kReq) { return {ud, res, IORING_CQE_F_MORE, 0, 0}; }
Cqe last(int res, uint64_t ud = kReq) { return {ud, res, 0, 0, 0}; }

TEST(MultishotContract, AcceptsMoreThenOneFinal) {
    std::vector<Cqe> trace{more(10), more(20), last(0)};
    EXPECT_TRUE(uc::multishot_contract(trace, kReq, {.final_res = {0}}).ok);
}

TEST(MultishotContract, IgnoresOtherRequestsInterleaved) {
    std::vector<Cqe> trace{more(10), last(0, kOther), more(5), last(-ECANCELED), more(1, kOther)};
    EXPECT_TRUE(uc::multishot_contract(trace, kReq, {.final_res = {-ECANCELED}}).ok);
}

TEST(MultishotContract, AcceptsFinalOnlyStream) {
    EXPECT_TRUE(uc::multishot_contract({last(-ENOBUFS)}, kReq, {.final_res = {-ENOBUFS}}).ok);
}

TEST(MultishotContract, CatchesMissingFinal) {
    auto check = uc::multishot_contract({more(10), more(20)}, kReq);
    EXPECT_FALSE(check.ok);
    EXPECT_NE(check.rule.find("no final CQE"), std::string::npos) << check.rule;
}

TEST(MultishotContract, CatchesCqeAfterFinal) {
    auto check = uc::multishot_contract({more(10), last(0), more(5)}, kReq);
    EXPECT_FALSE(check.ok);
    EXPECT_NE(check.rule.find("after its final CQE"), std::string::npos) << check.rule;
    ASSERT_TRUE(check.offending.has_value());
    EXPECT_EQ(check.offending->res, 5);
}

TEST(MultishotContract, CatchesDuplicateFinal) {
    auto check = uc::multishot_contract({more(10), last(-ECANCELED), last(-ECANCELED)}, kReq);
    EXPECT_FALSE(check.ok);
    EXPECT_NE(check.rule.find("after its final CQE"), std::string::npos) << check.rule;
}

TEST(MultishotContract, CatchesFMoreOnWhatShouldBeFinal) {
    // The terminal -ECANCELED wrongly keeps F_MORE: an error that claims more to come.
    auto check = uc::multishot_contract({more(10), more(-ECANCELED)}, kReq, {.final_res = {-ECANCELED}});
    EXPECT_FALSE(check.ok);
    EXPECT_NE(check.rule.find("error CQE carries IORING_CQE_F_MORE"), std::string::npos) << check.rule;
}

TEST(MultishotContract, CatchesWrongTerminalCause) {
    auto check = uc::multishot_contract({more(10), last(-ECANCELED)}, kReq, {.final_res = {0}});
    EXPECT_FALSE(check.ok);
    EXPECT_NE(check.rule.find("expected 0"), std::string::npos) << check.rule;
    EXPECT_NE(check.describe().find("ECANCELED"), std::string::npos) << check.describe();
}

TEST(MultishotContract, CatchesNoCqeAtAll) {
    EXPECT_FALSE(uc::multishot_contract({last(0, kOther)}, kReq).ok);
}

TEST(MultishotContract, TimeoutsMayReportEtimeWithMore) {
    std::vector<Cqe> trace{more(-ETIME), more(-ETIME), last(-ETIME)};
    EXPECT_FALSE(uc::multishot_contract(trace, kReq).ok);
    EXPECT_TRUE(uc::multishot_contract(trace, kReq, {.final_res = {-ETIME}, .error_ends_request = false}).ok);
}

TEST(SingleCompletion, AcceptsExactlyOne) {
    EXPECT_TRUE(uc::single_completion({last(0), last(3, kOther)}, kReq, {0}).ok);
}

TEST(SingleCompletion, CatchesMissingDuplicateAndWrongRes) {
    EXPECT_FALSE(uc::single_completion({last(0, kOther)}, kReq).ok);
    EXPECT_FALSE(uc::single_completion({last(0), last(0)}, kReq).ok);
    EXPECT_FALSE(uc::single_completion({last(-ENOENT)}, kReq, {0}).ok);
    EXPECT_FALSE(uc::single_completion({more(0)}, kReq).ok);
}

TEST(CqeTrace, KeepsTheNewestWhenFull) {
    uc::CqeTrace trace(4);
    for (int i = 0; i < 10; ++i) trace.add(last(i));
    EXPECT_LE(trace.all().size(), 4u);
    EXPECT_EQ(trace.all().back().res, 9);
    EXPECT_EQ(trace.dropped() + trace.all().size(), 10u);
    EXPECT_EQ(trace.tail(2).front().res, 8);
}

TEST(CqeFlagNames, NamesKnownBitsAndShowsTheRestInHex) {
    EXPECT_EQ(uc::cqe_flag_names(0), "0");
    EXPECT_EQ(uc::cqe_flag_names(IORING_CQE_F_MORE | IORING_CQE_F_BUFFER | (7u << IORING_CQE_BUFFER_SHIFT)),
              "BUFFER(id=7)|MORE");
    // A MSG_RING flags pass-through may set bits no flag names; the buffer id
    // field is theirs too when IORING_CQE_F_BUFFER is clear.
    EXPECT_EQ(uc::cqe_flag_names(0x2d00), "0x2d00");
    EXPECT_EQ(uc::cqe_flag_names(IORING_CQE_F_MORE | 0x100 | (1u << 20)), "MORE|0x100100");
}

}  // namespace
