// The cancel model on hand-written cases from io_uring_prep_cancel(3),
// io_uring_cancelation(7) and io_uring/cancel.c, and cancel_outcome() (with
// cancel_accounting() under it) fed good and broken rounds.
#include <gtest/gtest.h>

#include <cerrno>

#include "cancel_checks.h"
#include "cancel_model.h"
#include "compat/uapi.h"

namespace {

using namespace uc;

constexpr unsigned kAll = IORING_ASYNC_CANCEL_ALL, kFd = IORING_ASYNC_CANCEL_FD, kAny = IORING_ASYNC_CANCEL_ANY,
                   kFixed = IORING_ASYNC_CANCEL_FD_FIXED, kUd = IORING_ASYNC_CANCEL_USERDATA,
                   kOp = IORING_ASYNC_CANCEL_OP;
constexpr uint64_t kA = 16, kB = 17, kCancel = 99;
constexpr int kFd0 = 5, kFd1 = 6;  // normal fds of files 0 and 1; fixed slot 0 holds file 0

InFlight read_of(uint64_t ud, int file, int own_res, Placement at = Placement::poll_armed) {
    return {.user_data = ud, .opcode = IORING_OP_READ, .placement = at, .file = file, .own_res = own_res};
}

// Two reads on file 0 (A, B), one on file 1 (A again), as the man page's
// "two requests on one fd" and "the same user_data on two fds".
CancelWorld three_reads() {
    return {{read_of(kA, 0, 10), read_of(kB, 0, 11), read_of(kA, 1, 12)}, {{kFd0, 0}, {kFd1, 1}}, {{0, 0}}};
}

Cqe cqe(uint64_t ud, int res, uint32_t flags = 0) { return {ud, res, flags, 0, 0}; }

std::vector<size_t> sorted(std::vector<size_t> v) {
    std::sort(v.begin(), v.end());
    return v;
}

// --- the model ---

TEST(CancelModel, DefaultKeyIsUserDataAndEndsTheFirstMatch) {
    // "By default, the first request matching the criteria given will be canceled."
    auto p = predict(three_reads(), {.addr = kA});
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(sorted(p[0].one_of), (std::vector<size_t>{0, 2}));
    EXPECT_TRUE(p[0].must_end.empty());
    EXPECT_EQ(p[0].cancel_res, std::vector<int>{0});
}

TEST(CancelModel, AllEndsEveryMatchAndCountsThem) {
    auto p = predict(three_reads(), {.flags = kAll, .addr = kA});
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(sorted(p[0].must_end), (std::vector<size_t>{0, 2}));
    EXPECT_EQ(p[0].cancel_res, std::vector<int>{2});
}

TEST(CancelModel, FdIgnoresUserDataUnlessUserDataIsAsked) {
    auto fd = predict(three_reads(), {.flags = kFd | kAll, .addr = kA, .fd = kFd0});
    EXPECT_EQ(sorted(fd[0].must_end), (std::vector<size_t>{0, 1}));
    auto both = predict(three_reads(), {.flags = kFd | kUd | kAll, .addr = kA, .fd = kFd0});
    EXPECT_EQ(both[0].must_end, std::vector<size_t>{0});
    EXPECT_EQ(both[0].cancel_res, std::vector<int>{1});
}

TEST(CancelModel, FixedSlotNamesTheFileWhicheverWayTheRequestOpenedIt) {
    // Slot 0 holds file 0: both reads on file 0 match, the read via fd 5 too.
    auto p = predict(three_reads(), {.flags = kFd | kFixed | kAll, .fd = 0});
    EXPECT_EQ(sorted(p[0].must_end), (std::vector<size_t>{0, 1}));
}

TEST(CancelModel, UnknownFdOrSlotIsEbadf) {
    EXPECT_EQ(predict(three_reads(), {.flags = kFd, .fd = 42})[0].refused, -EBADF);
    EXPECT_EQ(predict(three_reads(), {.flags = kFd | kFixed, .fd = 3})[0].refused, -EBADF);
}

TEST(CancelModel, OpMatchesOpcode) {
    CancelWorld w = three_reads();
    w.requests.push_back({.user_data = kB, .opcode = IORING_OP_POLL_ADD, .file = 1, .own_res = 1});
    auto p = predict(w, {.flags = kOp | kAll, .opcode = IORING_OP_POLL_ADD});
    EXPECT_EQ(p[0].must_end, std::vector<size_t>{3});
    auto op_ud = predict(w, {.flags = kOp | kUd | kAll, .addr = kA, .opcode = IORING_OP_READ});
    EXPECT_EQ(sorted(op_ud[0].must_end), (std::vector<size_t>{0, 2}));
}

TEST(CancelModel, ForbiddenCombinationsAreEinval) {
    // io_async_cancel_prep(): FD or OP with ANY, and unknown flags.
    for (unsigned flags : {kFd | kAny, kOp | kAny, 1u << 7}) {
        auto p = predict(three_reads(), {.flags = flags, .fd = kFd0});
        ASSERT_EQ(p.size(), 1u) << flags;
        EXPECT_EQ(p[0].refused, -EINVAL) << cancel_flag_names(flags);
        EXPECT_EQ(p[0].cancel_res, std::vector<int>{-EINVAL});
    }
}

TEST(CancelModel, SyncCancelDoesNotRefuseFdWithAnyButTheManPagesMirrorAsync) {
    auto p = predict(three_reads(), {.flags = kFd | kAny, .fd = kFd0}, CancelVia::sync_register);
    ASSERT_EQ(p.size(), 2u);
    EXPECT_EQ(p[0].refused, 0);
    EXPECT_EQ(p[0].must_end.size(), 3u);
    EXPECT_EQ(p[1].refused, -EINVAL);
}

TEST(CancelModel, AnyAloneIsEveryRequestInTheKernelAndOneInTheManPage) {
    // io_uring_cancelation(7): "Cancel any single request"; cancel.c treats ANY as ALL.
    auto p = predict(three_reads(), {.flags = kAny});
    ASSERT_EQ(p.size(), 2u);
    EXPECT_EQ(p[0].must_end.size(), 3u);
    EXPECT_EQ(p[0].cancel_res, std::vector<int>{3});
    EXPECT_EQ(p[1].one_of.size(), 3u);
    EXPECT_EQ(p[1].cancel_res, std::vector<int>{1});
}

TEST(CancelModel, NothingMatchedIsEnoentOrACountOfZero) {
    EXPECT_EQ(predict(three_reads(), {.addr = 1234})[0].cancel_res, std::vector<int>{-ENOENT});
    EXPECT_EQ(predict(three_reads(), {.flags = kAll, .addr = 1234})[0].cancel_res, std::vector<int>{0});
}

TEST(CancelModel, TimeoutsAreFoundByUserDataAndOpButNeverByFd) {
    CancelWorld w{{{.user_data = kA, .opcode = IORING_OP_TIMEOUT, .placement = Placement::timeout, .own_res = -ETIME}}, {{kFd0, 0}}, {}};
    EXPECT_EQ(predict(w, {.addr = kA})[0].one_of, std::vector<size_t>{0});
    EXPECT_EQ(predict(w, {.flags = kOp, .opcode = IORING_OP_TIMEOUT})[0].one_of, std::vector<size_t>{0});
    EXPECT_EQ(predict(w, {.flags = kFd, .fd = kFd0})[0].cancel_res, std::vector<int>{-ENOENT});
}

TEST(CancelModel, RunningWorkIsEalreadyAndStillEnds) {
    CancelWorld w{{read_of(kA, 0, 10, Placement::iowq_running)}, {{kFd0, 0}}, {}};
    auto p = predict(w, {.addr = kA});
    EXPECT_EQ(p[0].cancel_res, std::vector<int>{-EALREADY});
    EXPECT_EQ(p[0].must_end, std::vector<size_t>{0});
    EXPECT_EQ(p[0].end_res.at(0), (std::vector<int>{-ECANCELED, -EINTR}));
    // Sync cancel waits for it: 0, or -ETIME when the timeout passes first.
    auto sync = predict(w, {.addr = kA}, CancelVia::sync_register);
    EXPECT_EQ(sync[0].cancel_res, (std::vector<int>{0, -ETIME}));
    EXPECT_TRUE(sync[0].sync_waits);
}

TEST(CancelModel, AllCountsIoWqOncePerBatchAndRunningWorkNotAtAll) {
    CancelWorld w{{read_of(kA, 0, 10, Placement::iowq_queued), read_of(kA, 1, 11, Placement::iowq_queued),
                   read_of(kA, 2, 12, Placement::iowq_running)},
                  {},
                  {}};
    auto queued = predict({{w.requests[0], w.requests[1]}, {}, {}}, {.flags = kAll, .addr = kA});
    ASSERT_EQ(queued.size(), 2u);
    EXPECT_EQ(queued[0].cancel_res, std::vector<int>{1});
    EXPECT_TRUE(queued[0].count_may_undercount);
    EXPECT_EQ(queued[1].cancel_res, std::vector<int>{2});
    auto with_running = predict(w, {.flags = kAll, .addr = kA});
    EXPECT_EQ(with_running[0].cancel_res, std::vector<int>{0});
    EXPECT_EQ(with_running[0].must_end.size(), 3u);
}

TEST(CancelModel, FdDoesNotFindQueuedIoWqWorkInTheKernel) {
    CancelWorld w{{read_of(kA, 0, 10, Placement::iowq_queued)}, {{kFd0, 0}}, {}};
    auto p = predict(w, {.flags = kFd, .fd = kFd0});
    ASSERT_EQ(p.size(), 2u);
    EXPECT_EQ(p[0].cancel_res, std::vector<int>{-ENOENT});
    EXPECT_EQ(p[1].one_of, std::vector<size_t>{0});
}

TEST(CancelModel, CanceledLinkHeadTakesItsTailAndTheTailIsNotFound) {
    CancelWorld w{{read_of(kA, 0, 8, Placement::link_head), read_of(kB, 1, 8, Placement::link_tail)}, {}, {}};
    w.requests[1].head = 0;
    auto head = predict(w, {.addr = kA});
    EXPECT_EQ(head[0].collateral, std::vector<size_t>{1});
    auto tail = predict(w, {.addr = kB});
    EXPECT_EQ(tail[0].cancel_res, std::vector<int>{-ENOENT});
    EXPECT_TRUE(tail[0].collateral.empty());
}

// --- the checker ---

testing::AssertionResult fits(const CancelWorld& w, const CancelSqe& c, const std::vector<Cqe>& cqes) {
    CancelOutcome out = cancel_outcome(w, c, kCancel, cqes);
    if (out.check.ok) return testing::AssertionSuccess() << out.fit;
    return testing::AssertionFailure() << out.check.describe();
}

TEST(CancelOutcome, AcceptsTheNamedRequestCanceledInEitherOrder) {
    CancelSqe c{.flags = kFd | kUd, .addr = kA, .fd = kFd0};
    EXPECT_TRUE(fits(three_reads(), c, {cqe(kCancel, 0), cqe(kA, -ECANCELED), cqe(kB, 11), cqe(kA, 12)}));
    EXPECT_TRUE(fits(three_reads(), c, {cqe(kA, 12), cqe(kA, -ECANCELED), cqe(kCancel, 0), cqe(kB, 11)}));
}

TEST(CancelOutcome, CatchesAnotherRequestOnTheSameFdCanceledInsteadOfTheNamedOne) {
    CancelSqe c{.flags = kFd | kUd, .addr = kA, .fd = kFd0};
    CancelOutcome out = cancel_outcome(three_reads(), c, kCancel, std::vector<Cqe>{cqe(kCancel, 0), cqe(kB, -ECANCELED), cqe(kA, 10), cqe(kA, 12)});
    ASSERT_FALSE(out.check.ok);
    std::string rule = out.check.describe();
    EXPECT_NE(rule.find("ud=17 READ file=0 poll_armed ended -ECANCELED, but the cancel does not match it"), std::string::npos) << rule;
    EXPECT_NE(rule.find("cancel flags=FD|USERDATA addr=16 fd=5"), std::string::npos) << rule;
    EXPECT_NE(rule.find("CQEs: user_data=99 res=0"), std::string::npos) << rule;
}

TEST(CancelOutcome, CatchesTheSameUserDataCanceledOnTheWrongFd) {
    CancelSqe c{.flags = kFd | kUd, .addr = kA, .fd = kFd0};
    // The read of A on file 0 completed with file 0's bytes (10): the A that ended was file 1's.
    EXPECT_FALSE(fits(three_reads(), c, {cqe(kCancel, 0), cqe(kA, -ECANCELED), cqe(kB, 11), cqe(kA, 10)}));
}

TEST(CancelOutcome, CatchesAMissingTargetCqe) {
    CancelSqe c{.flags = kAll, .addr = kA};
    CancelOutcome out = cancel_outcome(three_reads(), c, kCancel, std::vector<Cqe>{cqe(kCancel, 2), cqe(kA, -ECANCELED), cqe(kB, 11)});
    ASSERT_FALSE(out.check.ok);
    EXPECT_NE(out.check.rule.find("1 final CQEs for user_data 16, carried by 2 request(s)"), std::string::npos) << out.check.rule;
}

TEST(CancelOutcome, CatchesACountThatDisagreesWithTheCqes) {
    CancelSqe c{.flags = kAll, .addr = kA};
    EXPECT_TRUE(fits(three_reads(), c, {cqe(kCancel, 2), cqe(kA, -ECANCELED), cqe(kA, -ECANCELED), cqe(kB, 11)}));
    CancelOutcome out = cancel_outcome(three_reads(), c, kCancel,
                                       std::vector<Cqe>{cqe(kCancel, 3), cqe(kA, -ECANCELED), cqe(kA, -ECANCELED), cqe(kB, 11)});
    ASSERT_FALSE(out.check.ok);
    EXPECT_NE(out.check.rule.find("the cancel returned 3, expected 2"), std::string::npos) << out.check.rule;
}

TEST(CancelOutcome, CatchesTwoEndedByAFirstMatchCancel) {
    EXPECT_FALSE(fits(three_reads(), {.addr = kA}, {cqe(kCancel, 0), cqe(kA, -ECANCELED), cqe(kA, -ECANCELED), cqe(kB, 11)}));
    EXPECT_TRUE(fits(three_reads(), {.addr = kA}, {cqe(kCancel, 0), cqe(kA, -ECANCELED), cqe(kA, 10), cqe(kB, 11)}));
}

TEST(CancelOutcome, CatchesAResultOutsideTheDocumentedOnes) {
    CancelWorld w{{read_of(kA, 0, 10, Placement::iowq_running)}, {}, {}};
    EXPECT_TRUE(fits(w, {.addr = kA}, {cqe(kCancel, -EALREADY), cqe(kA, -EINTR)}));
    // -ERESTARTSYS (512) "should never be seen by user programs" (include/linux/errno.h).
    EXPECT_FALSE(fits(w, {.addr = kA}, {cqe(kCancel, -EALREADY), cqe(kA, -512)}));
}

TEST(CancelOutcome, AcceptsTheKernelsAnyAndTheManPagesAndSaysWhich) {
    CancelOutcome all = cancel_outcome(three_reads(), {.flags = kAny}, kCancel,
                                       std::vector<Cqe>{cqe(kCancel, 3), cqe(kA, -ECANCELED), cqe(kA, -ECANCELED), cqe(kB, -ECANCELED)});
    EXPECT_TRUE(all.check.ok) << all.check.describe();
    EXPECT_NE(all.fit.find("kernel"), std::string::npos);
    CancelOutcome one = cancel_outcome(three_reads(), {.flags = kAny}, kCancel,
                                       std::vector<Cqe>{cqe(kCancel, 1), cqe(kB, -ECANCELED), cqe(kA, 10), cqe(kA, 12)});
    EXPECT_TRUE(one.check.ok) << one.check.describe();
    EXPECT_NE(one.fit.find("man pages"), std::string::npos);
}

TEST(CancelOutcome, AcceptsTheIoWqUndercountOnlyAsTheKernelDoesIt) {
    CancelWorld w{{read_of(kA, 0, 10, Placement::iowq_queued), read_of(kA, 1, 11, Placement::iowq_queued)}, {}, {}};
    EXPECT_TRUE(fits(w, {.flags = kAll, .addr = kA}, {cqe(kCancel, 1), cqe(kA, -ECANCELED), cqe(kA, -ECANCELED)}));
    EXPECT_TRUE(fits(w, {.flags = kAll, .addr = kA}, {cqe(kCancel, 2), cqe(kA, -ECANCELED), cqe(kA, -ECANCELED)}));
    EXPECT_FALSE(fits(w, {.flags = kAll, .addr = kA}, {cqe(kCancel, 0), cqe(kA, -ECANCELED), cqe(kA, -ECANCELED)}));
}

TEST(CancelOutcome, CatchesALinkTailLeftBehindByItsCanceledHead) {
    CancelWorld w{{read_of(kA, 0, 8, Placement::link_head), read_of(kB, 1, 8, Placement::link_tail)}, {}, {}};
    w.requests[1].head = 0;
    EXPECT_TRUE(fits(w, {.addr = kA}, {cqe(kCancel, 0), cqe(kA, -ECANCELED), cqe(kB, -ECANCELED)}));
    EXPECT_FALSE(fits(w, {.addr = kA}, {cqe(kCancel, 0), cqe(kA, -ECANCELED), cqe(kB, 8)}));
}

TEST(CancelOutcome, AliveMultishotSurvivorIsNotEnded) {
    CancelWorld w{{{.user_data = kA, .opcode = IORING_OP_POLL_ADD, .placement = Placement::multishot, .file = 0},
                   read_of(kB, 1, 11)},
                  {},
                  {}};
    EXPECT_TRUE(fits(w, {.addr = kB}, {cqe(kCancel, 0), cqe(kB, -ECANCELED), cqe(kA, 1, IORING_CQE_F_MORE)}));
    EXPECT_FALSE(fits(w, {.addr = kB}, {cqe(kCancel, 0), cqe(kB, -ECANCELED), cqe(kA, -ECANCELED)}));
}

TEST(CancelOutcome, SyncResultIsCheckedLikeTheCancelCqe) {
    CancelWorld w{{read_of(kA, 0, 10)}, {}, {}};
    EXPECT_TRUE(cancel_outcome(w, {.addr = kA}, kCancel, std::vector<Cqe>{cqe(kA, -ECANCELED)}, 0, CancelVia::sync_register).check.ok);
    EXPECT_FALSE(cancel_outcome(w, {.addr = kA}, kCancel, std::vector<Cqe>{cqe(kA, 10)}, 0, CancelVia::sync_register).check.ok);
    EXPECT_FALSE(cancel_outcome(w, {.addr = kA}, kCancel, std::vector<Cqe>{cqe(kA, -ECANCELED)}, -ENOENT, CancelVia::sync_register).check.ok);
}

TEST(CancelOutcome, SyncZeroAfterWaitingForRunningWorkMeansItIsGone) {
    CancelWorld w{{read_of(kA, 0, 10, Placement::iowq_running)}, {}, {}};
    auto sync = [&](const std::vector<Cqe>& cqes, int res) {
        return cancel_outcome(w, {.addr = kA}, kCancel, cqes, res, CancelVia::sync_register).check.ok;
    };
    EXPECT_TRUE(sync({cqe(kA, -EINTR)}, 0));
    EXPECT_TRUE(sync({cqe(kA, -EINTR)}, -ETIME));
    EXPECT_FALSE(sync({cqe(kA, -EINTR)}, -EALREADY));  // the call waits instead
    w.requests[0].may_complete = true;
    EXPECT_TRUE(sync({cqe(kA, 10)}, 0));
}

// --- cancel_accounting with shared user_data and an undercounting cancel ---

TEST(CancelAccountingShared, ExpectsOneCqePerRequestSharingAUserData) {
    const uint64_t targets[] = {kA, kA};
    const CancelRequest cancels[] = {{kCancel, CancelReport::count, targets}};
    CancelRound round{.targets = targets, .cancels = cancels};
    EXPECT_TRUE(cancel_accounting(std::vector<Cqe>{cqe(kA, -ECANCELED), cqe(kA, -ECANCELED), cqe(kCancel, 2)}, round).ok);
    EXPECT_FALSE(cancel_accounting(std::vector<Cqe>{cqe(kA, -ECANCELED), cqe(kCancel, 2)}, round).ok);
    EXPECT_FALSE(cancel_accounting(std::vector<Cqe>{cqe(kA, -ECANCELED), cqe(kA, -ECANCELED), cqe(kA, 1), cqe(kCancel, 2)}, round).ok);
}

TEST(CancelAccountingShared, UndercountingCancelMayReportZeroForWhatItEnded) {
    const uint64_t targets[] = {kA};
    const CancelRequest strict[] = {{kCancel, CancelReport::count, targets}};
    const CancelRequest lax[] = {{kCancel, CancelReport::count, targets, true}};
    std::vector<Cqe> cqes{cqe(kA, -EINTR), cqe(kCancel, 0)};
    EXPECT_FALSE(cancel_accounting(cqes, {.targets = targets, .cancels = strict}).ok);
    EXPECT_TRUE(cancel_accounting(cqes, {.targets = targets, .cancels = lax}).ok);
    // Never more than it ended.
    EXPECT_FALSE(cancel_accounting(std::vector<Cqe>{cqe(kA, 10), cqe(kCancel, 1)}, {.targets = targets, .cancels = lax}).ok);
}

}  // namespace
