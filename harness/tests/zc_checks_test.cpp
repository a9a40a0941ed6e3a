// The zero-copy send checkers fed synthetic CQE streams: valid lifecycles and
// interleavings pass; each way of breaking io_uring_enter(2)'s two-CQE rule
// is caught and named.
#include <gtest/gtest.h>

#include "compat/uapi.h"
#include "zc_checks.h"

namespace {

using uc::Cqe;

constexpr uint64_t kA = 1, kB = 2, kC = 3;
constexpr int32_t kCopied = int32_t(IORING_NOTIF_USAGE_ZC_COPIED);

Cqe result(uint64_t ud, int res = 100) { return {ud, res, IORING_CQE_F_MORE, 0, 0}; }
Cqe result_final(uint64_t ud, int res) { return {ud, res, 0, 0, 0}; }
Cqe notif(uint64_t ud, int res = 0) { return {ud, res, IORING_CQE_F_NOTIF, 0, 0}; }

void expect_rejected(const uc::Check& check, const std::string& words, int32_t offending_flags) {
    EXPECT_FALSE(check.ok);
    EXPECT_NE(check.rule.find(words), std::string::npos) << check.rule;
    ASSERT_TRUE(check.offending.has_value()) << check.rule;
    EXPECT_EQ(check.offending->flags, uint32_t(offending_flags)) << check.describe();
}

TEST(ZcNotifOrder, AcceptsResultThenNotification) {
    EXPECT_TRUE(uc::zc_notif_order({result(kA), notif(kA)}, kA).ok);
}

TEST(ZcNotifOrder, AcceptsFailureWithoutMoreAndWithoutNotification) {
    EXPECT_TRUE(uc::zc_notif_order({result_final(kA, -EINVAL)}, kA).ok);
}

TEST(ZcNotifOrder, AcceptsFailureWithMoreFollowedByNotification) {
    EXPECT_TRUE(uc::zc_notif_order({result(kA, -EPIPE), notif(kA)}, kA).ok);
}

TEST(ZcNotifOrder, AcceptsInterleavingsOfSeveralRequests) {
    // Results in submission order, notifications in any order, other CQEs between.
    std::vector<Cqe> trace{result(kA), result(kB), result_final(9, 0), notif(kB), result(kC), notif(kA), notif(kC)};
    EXPECT_TRUE(uc::zc_notif_order(trace, {kA, kB, kC}).ok);
    // A notification may arrive before a later request's result.
    std::vector<Cqe> eager{result(kA), notif(kA), result(kB), result_final(kC, -EBADF), notif(kB)};
    EXPECT_TRUE(uc::zc_notif_order(eager, {kA, kB, kC}).ok);
}

TEST(ZcNotifOrder, RejectsNotificationBeforeItsResult) {
    auto check = uc::zc_notif_order({result(kB), notif(kA), result(kA), notif(kB)}, {kA, kB});
    expect_rejected(check, "before its result", IORING_CQE_F_NOTIF);
}

TEST(ZcNotifOrder, RejectsMissingNotification) {
    auto check = uc::zc_notif_order({result(kA), result(kB), notif(kB)}, {kA, kB});
    expect_rejected(check, "no notification", IORING_CQE_F_MORE);
    EXPECT_EQ(check.offending->user_data, kA);
}

TEST(ZcNotifOrder, RejectsDuplicateNotification) {
    auto check = uc::zc_notif_order({result(kA), notif(kA), result(kB), notif(kA), notif(kB)}, {kA, kB});
    expect_rejected(check, "second notification", IORING_CQE_F_NOTIF);
}

TEST(ZcNotifOrder, RejectsNotificationAfterResultWithoutMore) {
    auto check = uc::zc_notif_order({result_final(kA, -EPIPE), notif(kA)}, kA);
    expect_rejected(check, "without IORING_CQE_F_MORE", IORING_CQE_F_NOTIF);
}

TEST(ZcNotifOrder, RejectsAnythingAfterTheNotification) {
    auto check = uc::zc_notif_order({result(kA), notif(kA), result_final(kA, 5)}, kA);
    expect_rejected(check, "after its notification", 0);
}

TEST(ZcNotifOrder, RejectsSecondResult) {
    auto check = uc::zc_notif_order({result(kA), result(kA), notif(kA)}, kA);
    expect_rejected(check, "second result", IORING_CQE_F_MORE);
}

TEST(ZcNotifOrder, RejectsNotificationWithMore) {
    Cqe bad = notif(kA);
    bad.flags |= IORING_CQE_F_MORE;
    expect_rejected(uc::zc_notif_order({result(kA), bad}, kA), "carries IORING_CQE_F_MORE",
                    IORING_CQE_F_NOTIF | IORING_CQE_F_MORE);
}

TEST(ZcNotifOrder, NotificationResDependsOnReportUsage) {
    std::vector<Cqe> copied{result(kA), notif(kA, kCopied)};
    EXPECT_FALSE(uc::zc_notif_order(copied, kA).ok);
    EXPECT_TRUE(uc::zc_notif_order(copied, kA, {.report_usage = true}).ok);
    EXPECT_TRUE(uc::zc_notif_order({result(kA), notif(kA, 0)}, kA, {.report_usage = true}).ok);
    auto check = uc::zc_notif_order({result(kA), notif(kA, 1)}, kA, {.report_usage = true});
    expect_rejected(check, "neither 0 nor", IORING_CQE_F_NOTIF);
}

TEST(ZcNotifOrder, RejectsNoCqeAtAll) {
    EXPECT_FALSE(uc::zc_notif_order({result(kB), notif(kB)}, kA).ok);
}

TEST(ZcLifecycle, PicksResultAndNotification) {
    Cqe r = result(kA), n = notif(kA);
    r.t_ns = 10;
    n.t_ns = 25;
    auto life = uc::zc_lifecycle({result(kB), r, notif(kB), n}, kA);
    ASSERT_TRUE(life.result && life.notif);
    EXPECT_EQ(life.notif->t_ns - life.result->t_ns, 15u);
}

TEST(ZcPending, TracksResultsAndNotifications) {
    uc::ZcPending pending;
    pending.add(kA);
    pending.add(kB);
    EXPECT_EQ(pending.owing(), 2u);
    EXPECT_FALSE(pending.on_cqe(result(9)));
    pending.on_cqe(result(kA));
    EXPECT_EQ(pending.buffers_held(), 1u);
    pending.on_cqe(result_final(kB, -EINVAL));  // no F_MORE: complete without a notification
    EXPECT_EQ(pending.owing(), 1u);
    pending.on_cqe(notif(kA));
    EXPECT_EQ(pending.buffers_held(), 0u);
    EXPECT_TRUE(pending.done());
}

TEST(ZcPending, NotificationFirstStillCompletes) {
    // A broken order must not hang the reaper; zc_notif_order reports it.
    uc::ZcPending pending;
    pending.add(kA);
    pending.on_cqe(notif(kA));
    EXPECT_FALSE(pending.done());
    pending.on_cqe(result(kA));
    EXPECT_TRUE(pending.done());
    EXPECT_EQ(pending.buffers_held(), 0u);
}

Cqe buffer_cqe(int res, unsigned bid, bool more = false) {
    return {7, res, IORING_CQE_F_BUFFER | (bid << IORING_CQE_BUFFER_SHIFT) | (more ? IORING_CQE_F_MORE : 0u), 0, 0};
}

// Buffers 4, 5, 6 and 0 provided in that order, as a send ring holds them.
uc::BufferLedger ring_of_four() {
    uc::BufferLedger ledger(uc::BufMode::bundle);
    for (auto [bid, len] : {std::pair{4u, 100u}, {5u, 100u}, {6u, 50u}, {0u, 100u}}) EXPECT_TRUE(ledger.provide(bid, len).ok);
    return ledger;
}

TEST(SendBuffersAccounting, BundleConsumesContiguousBuffers) {
    uc::BufferLedger ring = ring_of_four();
    uint64_t bytes = 0;
    EXPECT_TRUE(uc::send_buffers_accounting(buffer_cqe(150, 4, true), ring, &bytes).ok);
    EXPECT_EQ(ring.held_count(), 2u);  // the partly sent buffer 5 is consumed too
    EXPECT_TRUE(uc::send_buffers_accounting(buffer_cqe(150, 6), ring, &bytes).ok);
    EXPECT_EQ(ring.held_count(), 0u);
    EXPECT_EQ(bytes, 300u);
}

TEST(SendBuffersAccounting, RejectsWrongStartBufferAndOverrun) {
    uc::BufferLedger ring = ring_of_four();
    uint64_t bytes = 0;
    auto wrong = uc::send_buffers_accounting(buffer_cqe(100, 5), ring, &bytes);
    EXPECT_FALSE(wrong.ok);
    EXPECT_NE(wrong.rule.find("next buffer is id 4"), std::string::npos) << wrong.rule;
    EXPECT_FALSE(uc::send_buffers_accounting(buffer_cqe(351, 4), ring, &bytes).ok);
    EXPECT_FALSE(uc::send_buffers_accounting({7, 100, 0, 0, 0}, ring, &bytes).ok);  // no F_BUFFER
    EXPECT_FALSE(uc::send_buffers_accounting(buffer_cqe(-ENOBUFS, 0), ring, &bytes).ok);
    EXPECT_EQ(ring.held_count(), 4u);
    EXPECT_EQ(bytes, 0u);
}

}  // namespace
