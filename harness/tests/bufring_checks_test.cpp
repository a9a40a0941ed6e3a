// The provided-buffer ledger and byte-conservation checker fed synthetic
// receives: correct ones pass; a dropped, duplicated or reordered buffer, a
// buffer the kernel did not hold and a broken bundle or incremental buffer
// are each caught and named.
#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>

#include "bufring_checks.h"
#include "compat/uapi.h"
#include "net.h"

namespace {

using uc::BufEvent;
using uc::BufMode;
using uc::Cqe;

constexpr unsigned kLen = 16;  // bytes per synthetic buffer

uint32_t buffer_flags(unsigned bid, uint32_t extra = IORING_CQE_F_MORE) {
    return IORING_CQE_F_BUFFER | (bid << IORING_CQE_BUFFER_SHIFT) | extra;
}

// A receive as the harness records it: provides, then CQEs whose bytes are
// cut from the pattern() stream in order.
class Stream {
  public:
    Stream& provide(unsigned bid, unsigned len = kLen) {
        log.push_back(BufEvent::provided(bid, len));
        return *this;
    }
    // A CQE delivering the next `res` stream bytes in buffer `bid`.
    Stream& cqe(unsigned bid, int res, uint32_t extra = IORING_CQE_F_MORE) {
        log.push_back(BufEvent::completed(Cqe{1, res, buffer_flags(bid, extra), 0, 0}, uc::pattern(sent, size_t(res))));
        sent += uint64_t(res);
        return *this;
    }
    Stream& final_cqe(int res) {
        log.push_back(BufEvent::completed(Cqe{1, res, 0, 0, 0}, ""));
        return *this;
    }
    uc::Check check(BufMode mode = BufMode::plain) const { return uc::byte_conservation(log, mode, sent); }

    std::vector<BufEvent> log;
    uint64_t sent = 0;
};

bool names(const uc::Check& check, const std::string& words) { return check.rule.find(words) != std::string::npos; }

TEST(ByteConservation, AcceptsStreamWithRecycling) {
    Stream s;
    s.provide(0).provide(1).cqe(0, 16).cqe(1, 7).provide(0).cqe(0, 3).final_cqe(-ENOBUFS);
    EXPECT_TRUE(s.check().ok) << s.check().describe();
}

TEST(ByteConservation, CatchesDroppedBuffer) {
    Stream s;
    s.provide(0).provide(1).provide(2).cqe(0, 16).cqe(1, 16).cqe(2, 5);
    s.log.erase(s.log.begin() + 4);  // the CQE of buffer 1 never reached the application
    auto check = s.check();
    EXPECT_FALSE(check.ok);
    EXPECT_TRUE(names(check, "stream byte 16 differs")) << check.describe();
    ASSERT_TRUE(check.offending.has_value());
    EXPECT_EQ(check.offending->buffer_id(), 2u);
}

TEST(ByteConservation, CatchesDroppedLastBufferByTotal) {
    Stream s;
    s.provide(0).provide(1).cqe(0, 16).cqe(1, 4);
    s.log.pop_back();
    auto check = s.check();
    EXPECT_FALSE(check.ok);
    EXPECT_TRUE(names(check, "bytes received over all CQEs: 16, bytes sent: 20 (data lost)")) << check.describe();
}

TEST(ByteConservation, CatchesBufferHandedOutTwice) {
    Stream s;
    s.provide(0).provide(1).cqe(0, 16).cqe(0, 16);  // no provide of 0 in between
    auto check = s.check();
    EXPECT_FALSE(check.ok);
    EXPECT_TRUE(names(check, "buffer id 0 which the kernel did not hold")) << check.describe();
}

TEST(ByteConservation, CatchesDuplicatedCompletion) {
    Stream s;
    s.provide(0).provide(1).cqe(0, 16).cqe(1, 16);
    s.log.insert(s.log.begin() + 3, s.log[2]);  // the CQE of buffer 0 delivered twice
    auto check = s.check();
    EXPECT_FALSE(check.ok);
    EXPECT_TRUE(names(check, "did not hold")) << check.describe();
}

TEST(ByteConservation, CatchesDuplicatedBytesInRecycledBuffer) {
    // Ids add up (buffer 0 was provided again) but the same bytes come twice.
    Stream s;
    s.provide(0).provide(1).cqe(0, 16).provide(0);
    s.log.push_back(s.log[2]);
    auto check = s.check();
    EXPECT_FALSE(check.ok);
    EXPECT_TRUE(names(check, "stream byte 16 differs")) << check.describe();
}

TEST(ByteConservation, CatchesReorderedCompletions) {
    Stream s;
    s.provide(0).provide(1).cqe(0, 16).cqe(1, 16);
    std::swap(s.log[2], s.log[3]);
    auto check = s.check();
    EXPECT_FALSE(check.ok);
    EXPECT_TRUE(names(check, "stream byte 0 differs")) << check.describe();
}

TEST(ByteConservation, CatchesNeverProvidedAndMissingBufferFlag) {
    Stream never;
    never.provide(0).cqe(3, 4);
    EXPECT_TRUE(names(never.check(), "buffer id 3 which the kernel did not hold"));

    Stream flagless;
    flagless.provide(0);
    flagless.log.push_back(BufEvent::completed(Cqe{1, 4, IORING_CQE_F_MORE, 0, 0}, uc::pattern(0, 4)));
    flagless.sent = 4;
    EXPECT_TRUE(names(flagless.check(), "data CQE without IORING_CQE_F_BUFFER"));
}

TEST(ByteConservation, CatchesOverlongResAndCorruptedBytes) {
    Stream overlong;
    overlong.provide(0).cqe(0, 17);
    EXPECT_TRUE(names(overlong.check(), "res 17 exceeds the 16 bytes left in buffer id 0"));

    Stream corrupt;
    corrupt.provide(0).cqe(0, 8);
    corrupt.log.back().bytes[5] ^= 0x55;
    EXPECT_TRUE(names(corrupt.check(), "stream byte 5 differs"));
}

TEST(ByteConservation, IncrementalBufferContinuesUntilUsedUp) {
    Stream s;
    s.provide(0).provide(1);
    s.cqe(0, 5, IORING_CQE_F_MORE | IORING_CQE_F_BUF_MORE).cqe(0, 6, IORING_CQE_F_MORE | IORING_CQE_F_BUF_MORE);
    s.cqe(0, 5).cqe(1, 3, IORING_CQE_F_MORE | IORING_CQE_F_BUF_MORE).provide(0).cqe(1, 13);
    EXPECT_TRUE(s.check(BufMode::incremental).ok) << s.check(BufMode::incremental).describe();
    // Without IOU_PBUF_RING_INC, IORING_CQE_F_BUF_MORE itself is out of place.
    EXPECT_FALSE(s.check(BufMode::plain).ok);
}

TEST(ByteConservation, IncrementalCatchesBufMoreOnUsedUpBufferAndReuseAfterRelease) {
    Stream used_up;
    used_up.provide(0).cqe(0, 10, IORING_CQE_F_BUF_MORE).cqe(0, 6, IORING_CQE_F_BUF_MORE);
    EXPECT_TRUE(names(used_up.check(BufMode::incremental), "IORING_CQE_F_BUF_MORE on a CQE that used the last byte"));

    Stream reused;
    reused.provide(0).cqe(0, 16).cqe(0, 4);  // used up and so released by the first CQE
    EXPECT_TRUE(names(reused.check(BufMode::incremental), "did not hold"));

    Stream returned_early;
    returned_early.provide(0).cqe(0, 4);  // 12 bytes left, yet no BUF_MORE
    EXPECT_TRUE(names(returned_early.check(BufMode::incremental), "returned with 12 bytes unused"));
}

TEST(ByteConservation, BufMoreOutsideIncrementalRingIsCaught) {
    Stream s;
    s.provide(0).cqe(0, 4, IORING_CQE_F_BUF_MORE);
    EXPECT_TRUE(names(s.check(BufMode::plain), "not registered with IOU_PBUF_RING_INC"));
}

TEST(ByteConservation, BundleSpansBuffersInRingOrder) {
    Stream s;
    s.provide(4).provide(2).provide(7).provide(1);
    s.cqe(4, 40);  // buffers 4, 2 and 8 bytes of 7
    s.cqe(1, 16).provide(4).provide(2).cqe(4, 20);
    EXPECT_TRUE(s.check(BufMode::bundle).ok) << s.check(BufMode::bundle).describe();
}

TEST(ByteConservation, BundleCatchesWrongStartAndOverrun) {
    Stream wrong_start;
    wrong_start.provide(0).provide(1).cqe(1, 4);
    EXPECT_TRUE(names(wrong_start.check(BufMode::bundle), "next buffer in ring order is id 0"));

    Stream overrun;
    overrun.provide(0).provide(1).cqe(0, 33);
    EXPECT_TRUE(names(overrun.check(BufMode::bundle), "needs more buffers than the kernel held"));

    Stream dropped;
    dropped.provide(0).provide(1).provide(2).cqe(0, 20).cqe(2, 16);
    dropped.log.erase(dropped.log.begin() + 3);  // the first bundle CQE lost
    EXPECT_FALSE(dropped.check(BufMode::bundle).ok);
}

TEST(BufferLedger, SpansSayWhereBytesAreAndWhenBuffersReturn) {
    uc::BufferLedger ledger(BufMode::incremental);
    ASSERT_TRUE(ledger.provide(3, 100).ok);
    EXPECT_FALSE(ledger.provide(3, 100).ok);  // still held
    std::vector<uc::BufSpan> spans;
    ASSERT_TRUE(ledger.consume(Cqe{1, 30, buffer_flags(3, IORING_CQE_F_BUF_MORE), 0, 0}, &spans).ok);
    ASSERT_EQ(spans.size(), 1u);
    EXPECT_EQ(spans[0].offset, 0u);
    EXPECT_FALSE(spans[0].released);
    ASSERT_TRUE(ledger.consume(Cqe{1, 70, buffer_flags(3), 0, 0}, &spans).ok);
    EXPECT_EQ(spans[0].offset, 30u);
    EXPECT_TRUE(spans[0].released);
    EXPECT_EQ(ledger.held_count(), 0u);
}

TEST(BufferLedger, TruncatedResFillsTheBufferOnlyWhenAllowed) {
    std::vector<uc::BufSpan> spans;
    uc::BufferLedger strict(BufMode::plain);
    ASSERT_TRUE(strict.provide(0, 64).ok);
    EXPECT_FALSE(strict.consume(Cqe{1, 200, buffer_flags(0), 0, 0}, &spans).ok);  // res past the buffer

    uc::BufferLedger trunc(BufMode::plain);
    trunc.allow_truncated_res();
    ASSERT_TRUE(trunc.provide(0, 64).ok);
    ASSERT_TRUE(trunc.consume(Cqe{1, 200, buffer_flags(0), 0, 0}, &spans).ok);  // MSG_TRUNC: the real length
    ASSERT_EQ(spans.size(), 1u);
    EXPECT_EQ(spans[0].len, 64u);
    EXPECT_TRUE(spans[0].released);
    EXPECT_FALSE(trunc.consume(Cqe{1, 200, buffer_flags(0), 0, 0}, &spans).ok);  // buffer 0 already handed out
}

TEST(BufferLedger, TruncatedResInIncrementalRingUsesUpTheBuffer) {
    std::vector<uc::BufSpan> spans;
    uc::BufferLedger ledger(BufMode::incremental);
    ledger.allow_truncated_res();
    ASSERT_TRUE(ledger.provide(5, 64).ok);
    ASSERT_TRUE(ledger.consume(Cqe{1, 40, buffer_flags(5, IORING_CQE_F_BUF_MORE), 0, 0}, &spans).ok);
    EXPECT_EQ(ledger.room(5), 24u);
    // A 100-byte datagram into the 24 bytes left: the buffer is used up, so
    // IORING_CQE_F_BUF_MORE on it is a broken rule.
    uc::BufferLedger copy = ledger;
    EXPECT_FALSE(copy.consume(Cqe{1, 100, buffer_flags(5, IORING_CQE_F_BUF_MORE), 0, 0}, &spans).ok);
    ASSERT_TRUE(ledger.consume(Cqe{1, 100, buffer_flags(5), 0, 0}, &spans).ok);
    EXPECT_EQ(spans[0].offset, 40u);
    EXPECT_EQ(spans[0].len, 24u);
    EXPECT_EQ(ledger.room(5), 0u);
    EXPECT_EQ(ledger.held_count(), 0u);
}

TEST(BufferLedger, HandOutTakesOnlyHeldBuffersInAnyOrder) {
    uc::BufferLedger ledger(BufMode::plain);
    ASSERT_TRUE(ledger.provide(1, 16).ok);
    ASSERT_TRUE(ledger.provide(2, 16).ok);
    EXPECT_EQ(ledger.next_in_ring(), std::optional<unsigned>(1));
    EXPECT_TRUE(ledger.hand_out(2));
    EXPECT_FALSE(ledger.hand_out(2));  // handed out twice
    EXPECT_FALSE(ledger.hand_out(7));  // never provided
    EXPECT_TRUE(ledger.hand_out(1));
    EXPECT_EQ(ledger.next_in_ring(), std::nullopt);
    ASSERT_TRUE(ledger.provide(1, 16).ok);
    ledger.clear();  // registered anew: the kernel holds nothing
    EXPECT_FALSE(ledger.holds(1));
}

TEST(BufferLedger, BrokenBundleLeavesTheLedgerAsItWas) {
    uc::BufferLedger ledger(BufMode::bundle);
    ASSERT_TRUE(ledger.provide(0, kLen).ok);
    ASSERT_TRUE(ledger.provide(1, kLen).ok);
    std::vector<uc::BufSpan> spans;
    EXPECT_FALSE(ledger.consume(Cqe{1, 3 * int(kLen), buffer_flags(0), 0, 0}, &spans).ok);  // more than both hold
    EXPECT_TRUE(spans.empty());
    EXPECT_EQ(ledger.held_count(), 2u);
    EXPECT_TRUE(ledger.consume(Cqe{1, 2 * int(kLen), buffer_flags(0), 0, 0}, &spans).ok);
    EXPECT_EQ(spans.size(), 2u);
    EXPECT_EQ(ledger.held_count(), 0u);
}


// --- streams_interleave: several receives sharing one stream socket ---

// A request's chunks cut from the pattern() stream at the given [offset, end) stretches.
std::vector<uc::ReceivedChunk> chunks_at(uint64_t user_data, std::initializer_list<std::pair<uint64_t, uint64_t>> stretches) {
    std::vector<uc::ReceivedChunk> out;
    for (auto [begin, end] : stretches)
        out.push_back({Cqe{user_data, int(end - begin), IORING_CQE_F_MORE, 0, 0}, uc::pattern(begin, size_t(end - begin))});
    return out;
}

TEST(StreamsInterleave, AcceptsTwoRequestsTakingTurnsInAnyPattern) {
    auto a = chunks_at(1, {{0, 100}, {130, 200}, {200, 4096}});
    auto b = chunks_at(2, {{100, 130}, {4096, 5000}});
    EXPECT_TRUE(uc::streams_interleave({a, b}, 5000).ok);
    EXPECT_TRUE(uc::streams_interleave({b, a}, 5000).ok);
    EXPECT_TRUE(uc::streams_interleave({chunks_at(1, {{0, 5000}}), {}}, 5000).ok);
    EXPECT_TRUE(uc::streams_interleave({{}, {}}, 0).ok);
}

TEST(StreamsInterleave, AcceptsOneByteChunksThatFitSeveralPlaces) {
    // Single bytes match the pattern at many offsets; the search must not
    // settle on the first fit.
    std::vector<uc::ReceivedChunk> a, b;
    for (uint64_t off = 0; off < 600; ++off) (off % 3 ? a : b).push_back(chunks_at(off % 3 ? 1 : 2, {{off, off + 1}})[0]);
    EXPECT_TRUE(uc::streams_interleave({a, b}, 600).ok);
}

TEST(StreamsInterleave, CatchesLostAndDuplicatedBytesByTotal) {
    auto a = chunks_at(1, {{0, 100}, {130, 200}});
    auto lost = uc::streams_interleave({a, chunks_at(2, {{100, 120}})}, 200);
    EXPECT_FALSE(lost.ok);
    EXPECT_NE(lost.rule.find("data lost"), std::string::npos) << lost.rule;
    auto duplicated = uc::streams_interleave({a, chunks_at(2, {{100, 130}, {130, 200}})}, 200);
    EXPECT_FALSE(duplicated.ok);
    EXPECT_NE(duplicated.rule.find("more received than sent"), std::string::npos) << duplicated.rule;
}

TEST(StreamsInterleave, CatchesOneRequestsChunksOutOfOrder) {
    // Byte totals agree, but request 2 delivered a later stretch before an earlier one.
    auto a = chunks_at(1, {{0, 100}, {300, 400}});
    auto b = chunks_at(2, {{200, 300}, {100, 200}});
    auto c = uc::streams_interleave({a, b}, 400);
    EXPECT_FALSE(c.ok);
    EXPECT_NE(c.rule.find("at byte 100 of 400"), std::string::npos) << c.rule;
    ASSERT_TRUE(c.offending.has_value());
    EXPECT_EQ(c.offending->user_data, 1u);  // the first request still waiting to be placed there
}

TEST(StreamsInterleave, CatchesACorruptedByteAndNamesWhereTheStreamStops) {
    auto a = chunks_at(1, {{0, 100}, {150, 300}});
    auto b = chunks_at(2, {{100, 150}});
    b[0].bytes[7] ^= 0x5a;
    auto c = uc::streams_interleave({a, b}, 300);
    EXPECT_FALSE(c.ok);
    EXPECT_NE(c.rule.find("at byte 100 of 300"), std::string::npos) << c.rule;
}

TEST(StreamsInterleave, RefusesMoreRequestsThanItTracks) {
    EXPECT_THROW(uc::streams_interleave(std::vector<std::vector<uc::ReceivedChunk>>(5), 0), std::invalid_argument);
}

}  // namespace
