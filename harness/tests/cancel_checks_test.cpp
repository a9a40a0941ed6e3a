// The cancel accounting checker fed synthetic rounds: valid ones pass in any
// CQE order; each way of breaking io_uring_cancelation(7) is caught and named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>

#include "cancel_checks.h"
#include "compat/uapi.h"

namespace {

using uc::CancelReport;
using uc::CancelRequest;
using uc::CancelRound;
using uc::Cqe;

constexpr uint64_t kRead = 1, kCancel = 2;
const uint64_t kTargets[] = {kRead};
const CancelRequest kCancels[] = {{kCancel, CancelReport::first_match, kTargets}};
const CancelRound kSingle{.targets = kTargets, .cancels = kCancels};

Cqe cqe(uint64_t user_data, int res, uint32_t flags = 0) { return {user_data, res, flags, 0, 0}; }

testing::AssertionResult passes(const std::vector<Cqe>& cqes, const CancelRound& round = kSingle) {
    auto check = uc::cancel_accounting(cqes, round);
    if (check.ok) return testing::AssertionSuccess();
    return testing::AssertionFailure() << check.describe();
}

// The rule text of the failure, or "" if the round passed.
std::string failure(const std::vector<Cqe>& cqes, const CancelRound& round = kSingle) {
    return uc::cancel_accounting(cqes, round).describe();
}

TEST(CancelAccounting, AcceptsCancelCqeBeforeTargetCqe) {
    EXPECT_TRUE(passes({cqe(kCancel, 0), cqe(kRead, -ECANCELED)}));
}

TEST(CancelAccounting, AcceptsTargetCqeBeforeCancelCqe) {
    EXPECT_TRUE(passes({cqe(kRead, -ECANCELED), cqe(kCancel, 0)}));
}

TEST(CancelAccounting, AcceptsNotFoundWhenTargetCompletedOnItsOwn) {
    EXPECT_TRUE(passes({cqe(kRead, 8), cqe(kCancel, -ENOENT)}));
    EXPECT_TRUE(passes({cqe(kCancel, -ENOENT), cqe(kRead, 8)}));
}

TEST(CancelAccounting, AcceptsAlreadyRunningEndingInterruptedOrDone) {
    EXPECT_TRUE(passes({cqe(kCancel, -EALREADY), cqe(kRead, -EINTR)}));
    EXPECT_TRUE(passes({cqe(kRead, 8), cqe(kCancel, -EALREADY)}));
}

TEST(CancelAccounting, CatchesMissingTargetCqeAndNamesTheCancelResult) {
    std::string rule = failure({cqe(kCancel, -ENOENT)});
    EXPECT_NE(rule.find("no CQE for canceled request user_data 1"), std::string::npos) << rule;
    EXPECT_NE(rule.find("cancel user_data=2 returned -ENOENT"), std::string::npos) << rule;
}

TEST(CancelAccounting, CatchesDuplicatedTargetCqe) {
    auto check = uc::cancel_accounting(std::vector<Cqe>{cqe(kRead, -ECANCELED), cqe(kCancel, 0), cqe(kRead, -ECANCELED)},
                                       kSingle);
    ASSERT_FALSE(check.ok);
    EXPECT_NE(check.rule.find("second CQE for user_data 1"), std::string::npos) << check.rule;
    ASSERT_TRUE(check.offending.has_value());
    EXPECT_EQ(check.offending->user_data, kRead);
}

TEST(CancelAccounting, CatchesDuplicatedCancelCqe) {
    std::string rule = failure({cqe(kCancel, 0), cqe(kRead, -ECANCELED), cqe(kCancel, 0)});
    EXPECT_NE(rule.find("second CQE for user_data 2"), std::string::npos) << rule;
}

TEST(CancelAccounting, CatchesMissingCancelCqe) {
    EXPECT_NE(failure({cqe(kRead, -ECANCELED)}).find("no CQE for cancel request user_data 2"), std::string::npos);
}

TEST(CancelAccounting, CatchesCqeOfAnotherRoundOrRequest) {
    EXPECT_NE(failure({cqe(kCancel, 0), cqe(kRead, -ECANCELED), cqe(99, 0)}).find("never submitted"), std::string::npos);
}

TEST(CancelAccounting, CatchesFMoreOnOneShotRequest) {
    EXPECT_NE(failure({cqe(kCancel, 0), cqe(kRead, -ECANCELED, IORING_CQE_F_MORE)}).find("IORING_CQE_F_MORE"),
              std::string::npos);
}

TEST(CancelAccounting, CatchesCanceledTargetWhoseCancelFoundNothing) {
    std::string rule = failure({cqe(kCancel, -ENOENT), cqe(kRead, -ECANCELED)});
    EXPECT_NE(rule.find("-ENOENT means it completes on its own"), std::string::npos) << rule;
}

TEST(CancelAccounting, CatchesSuccessfulCancelWhoseTargetCompletedNormally) {
    std::string rule = failure({cqe(kCancel, 0), cqe(kRead, 8)});
    EXPECT_NE(rule.find("cancel returned 0"), std::string::npos) << rule;
}

TEST(CancelAccounting, CatchesCancelResultOutsideTheDocumentedSet) {
    EXPECT_NE(failure({cqe(kCancel, -EINVAL), cqe(kRead, 8)}).find("expected 0, -ENOENT or -EALREADY"), std::string::npos);
}

TEST(CancelAccounting, NamesKernelInternalErrnoOfATarget) {
    std::string rule = failure({cqe(kCancel, -EALREADY), cqe(kRead, -512)});
    EXPECT_NE(rule.find("kernel-internal errno"), std::string::npos) << rule;
}

TEST(CancelAccounting, TargetsThatCannotCompleteMustEndByCancel) {
    CancelRound never{.targets = kTargets, .cancels = kCancels, .targets_may_complete = false};
    EXPECT_TRUE(passes({cqe(kCancel, 0), cqe(kRead, -ECANCELED)}, never));
    EXPECT_NE(failure({cqe(kCancel, -ENOENT), cqe(kRead, 8)}, never).find("expected -ECANCELED or -EINTR"),
              std::string::npos);
}

// The race's round: two reads, a write, two CANCEL_ANY requests (counts).
constexpr uint64_t kReadA = 1, kReadB = 2, kWrite = 3, kCancelA = 4, kCancelB = 5;
const uint64_t kBothReads[] = {kReadA, kReadB};
const uint64_t kWrites[] = {kWrite};
const CancelRequest kAnyCancels[] = {{kCancelA, CancelReport::count, kBothReads},
                                     {kCancelB, CancelReport::count, kBothReads}};
const CancelRound kAnyRound{.targets = kBothReads, .cancels = kAnyCancels, .others = kWrites};

TEST(CancelAccounting, CountsMayNameRequestsAnEarlierCancelAlreadyCanceled) {
    // Two ANY cancels in one submission both count the reads (seen on 6.18).
    EXPECT_TRUE(passes({cqe(kWrite, 8), cqe(kReadA, -ECANCELED), cqe(kReadB, -ECANCELED), cqe(kCancelA, 2),
                        cqe(kCancelB, 2)},
                       kAnyRound));
}

TEST(CancelAccounting, CatchesCountLargerThanTheRequestsCanceled) {
    std::string rule = failure({cqe(kWrite, 8), cqe(kReadA, 8), cqe(kReadB, -ECANCELED), cqe(kCancelA, 2), cqe(kCancelB, 0)},
                               kAnyRound);
    EXPECT_NE(rule.find("reports 2 requests canceled but only 1"), std::string::npos) << rule;
    EXPECT_NE(failure({cqe(kWrite, 8), cqe(kReadA, -ECANCELED), cqe(kReadB, -ECANCELED), cqe(kCancelA, 3),
                       cqe(kCancelB, 0)},
                      kAnyRound)
                  .find("expected 0 to 2"),
              std::string::npos);
}

TEST(CancelAccounting, AcceptsEveryCompletionOrderOfAFullRound) {
    const uint64_t a[] = {kReadA}, b[] = {kReadB};
    const CancelRequest by_user_data[] = {{kCancelA, CancelReport::first_match, a},
                                          {kCancelB, CancelReport::first_match, b}};
    CancelRound round{.targets = kBothReads, .cancels = by_user_data, .others = kWrites};
    std::vector<Cqe> cqes{cqe(kCancelA, 0), cqe(kCancelB, -ENOENT), cqe(kReadA, -ECANCELED), cqe(kReadB, 8),
                          cqe(kWrite, 8)};
    std::sort(cqes.begin(), cqes.end(), [](const Cqe& x, const Cqe& y) { return x.user_data < y.user_data; });
    int orders = 0;
    do {
        ASSERT_TRUE(passes(cqes, round)) << "order " << orders;
        ++orders;
    } while (std::next_permutation(cqes.begin(), cqes.end(),
                                   [](const Cqe& x, const Cqe& y) { return x.user_data < y.user_data; }));
    EXPECT_EQ(orders, 120);
}

TEST(CancelAccounting, CatchesTheReportedRaceLostRead) {
    // Seed 001: read B's cancel returned -ENOENT, and read B never completed.
    const uint64_t a[] = {kReadA}, b[] = {kReadB};
    const CancelRequest by_user_data[] = {{kCancelA, CancelReport::first_match, a},
                                          {kCancelB, CancelReport::first_match, b}};
    CancelRound round{.targets = kBothReads, .cancels = by_user_data, .others = kWrites};
    std::string rule = failure({cqe(kWrite, 8), cqe(kReadA, -ECANCELED), cqe(kCancelA, 0), cqe(kCancelB, -ENOENT)}, round);
    EXPECT_NE(rule.find("no CQE for canceled request user_data 2"), std::string::npos) << rule;
    EXPECT_NE(rule.find("cancel user_data=5 returned -ENOENT"), std::string::npos) << rule;
}

}  // namespace
