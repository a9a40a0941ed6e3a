// CQ overflow under a multishot producer, incremental buffer consumption
// (IOU_PBUF_RING_INC) and receive bundles (IORING_RECVSEND_BUNDLE): the second
// half of the bufring family; bufring.cpp has starvation and recovery and says
// what every scenario checks (byte_conservation() over a Pool's log).
#include <unistd.h>

#include <algorithm>

#include "bufring_pool.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;
using namespace bufring_family;


// Waits without reaping until the kernel flags CQ overflow or `budget_ns`
// passes, entering the kernel meanwhile so that task work runs
// (COOP_TASKRUN and DEFER_TASKRUN complete receives only then).
bool stall_until_overflow(Ring& ring, uint64_t budget_ns) {
    uint64_t end = now_ns() + budget_ns;
    while (!(ring.sq_flags() & IORING_SQ_CQ_OVERFLOW) && now_ns() < end) {
        io_uring_get_events(ring.get());
        usleep(1000);
    }
    return ring.sq_flags() & IORING_SQ_CQ_OVERFLOW;
}

struct OverflowParams {
    Setup setup;
    unsigned cq;
};

const Register<OverflowParams> recv_cq_overflow{{
    .family = bufring,
    .name = "recv-cq-overflow",
    .summary = "a multishot recv flooding a tiny CQ while the consumer stalls raises IORING_SQ_CQ_OVERFLOW; no CQE "
               "is lost, the overflow is flushed in order and each request ends exactly once",
    .needs = {needs_op(IORING_OP_RECV), needs_buf_ring(), needs_capability("recv_multishot"),
              needs_feature(IORING_FEAT_NODROP, "NODROP")},
    .variants = grid(setups(&OverflowParams::setup, all_setups()), axis("cq", &OverflowParams::cq, {4u, 16u})),
    .body = [](Ctx& ctx, const OverflowParams& p) {
        unsigned cq = p.cq;
        Ring ring(ctx, p.setup, cq);
        SocketPair sockets = tcp_loopback(ctx);
        constexpr unsigned kBuffers = 128;  // four times what is sent: only the CQ can run out
        Pool pool(ctx, ring, PoolKind::ring, kBuffers, BufMode::plain);
        Receiver rx(ctx, ring, pool, sockets.server.get());
        rx.arm();

        uint64_t sent = 32ull * kBufLen;  // at least 32 CQEs, twice the largest CQ
        std::string data = pattern(0, sent);
        send_all(ctx, sockets.client.get(), data.data(), data.size());
        shutdown(sockets.client.get(), SHUT_WR);
        bool flagged = stall_until_overflow(ring, 1'000'000'000);
        ctx.metric("cq_ready_after_stall", io_uring_cq_ready(ring.get()));
        // io_uring_queue_init(3): "If the CQ ring overflows ... then if the
        // kernel supports IORING_FEAT_NODROP the ring enters a CQ ring overflow
        // state ... indicated by IORING_SQ_CQ_OVERFLOW being set in the SQ ring
        // flags. Unless the kernel runs out of available memory, entries are not dropped".
        ctx.expect_true(flagged, str(sent / kBufLen, "+ CQEs due into a CQ of ", cq, " entries (",
                                     io_uring_cq_ready(ring.get()), " ready) while the consumer stalled for 1 s, yet "
                                     "IORING_SQ_CQ_OVERFLOW never appeared in the SQ ring flags"));
        receive_to_eof(ctx, rx, pool);

        // Whether a multishot request ends when its CQE does not fit differs
        // between kernels: a behaviour to compare, not a verdict.
        auto first_ended = std::find_if(rx.cqes().begin(), rx.cqes().end(),
                                        [](const Cqe& cqe) { return cqe.user_data == kFirstRecv && !cqe.more(); });
        Cqe first_final = *first_ended;  // receive_to_eof() returns only after every request ended
        ctx.metric("multishot_terminates_on_overflow", flagged && first_final.res != 0);
        ctx.metric("overflow_final_res", first_final.res);
        check_requests(ctx, rx);
        check_bytes(ctx, pool, sent);
        ctx.expect_eq(ring.cq_overflow(), 0u, "CQEs dropped (cq.koverflow) with IORING_FEAT_NODROP and memory to spare");
        rx.report_metrics();
    }}};

const Register<SetupOnly> recv_incremental{{
    .family = bufring,
    .name = "recv-incremental-partial",
    .summary = "with IOU_PBUF_RING_INC receives smaller than a buffer use it piece by piece: IORING_CQE_F_BUF_MORE "
               "until it is used up, each CQE continuing where the last left off",
    .needs = {needs_op(IORING_OP_RECV), needs_buf_ring_inc(), needs_capability("recv_multishot")},
    .variants = grid(setups(&SetupOnly::setup, all_setups())),
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup, kRoomyCq);
        SocketPair sockets = tcp_loopback(ctx);
        constexpr unsigned kBuffers = 4, kLargeBuf = 4096;
        Pool pool(ctx, ring, PoolKind::ring, kBuffers, BufMode::incremental, kLargeBuf, IOU_PBUF_RING_INC);
        Receiver rx(ctx, ring, pool, sockets.server.get());

        int chunks = ctx.pick(48, 256, 2048);
        uint64_t sent = stream_chunks_to_eof(ctx, sockets.client.get(), rx, pool, chunks,
                                             [](int i) { return 1 + size_t(i * 97) % 700; });  // less than a buffer

        check_requests(ctx, rx);
        // byte_conservation() in incremental mode holds each CQE to
        // io_uring_register_buf_ring(3): "each completion of a given buffer ID
        // will continue where the previous one left off".
        check_bytes(ctx, pool, sent);
        ctx.metric("buf_more_cqes", rx.buf_more_cqes());
        ctx.expect_true(rx.buf_more_cqes() > 0, str("no CQE carried IORING_CQE_F_BUF_MORE although each of ", chunks,
                                                    " receives was smaller than a ", kLargeBuf, "-byte buffer"));
        rx.report_metrics();
    }}};

const Register<SetupOnly> recv_bundle{{
    .family = bufring,
    .name = "recv-bundle-spans-buffers",
    .summary = "with IORING_RECVSEND_BUNDLE one CQE fills several buffers, contiguous in ring order from the id it "
               "names; bytes and buffer ids add up",
    .needs = {needs_op(IORING_OP_RECV), needs_buf_ring(), needs_feature(IORING_FEAT_RECVSEND_BUNDLE, "RECVSEND_BUNDLE"),
              needs_capability("recv_multishot"), needs_capability("recv_bundle")},
    .variants = grid(setups(&SetupOnly::setup, all_setups())),
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup, kRoomyCq);
        SocketPair sockets = tcp_loopback(ctx);
        constexpr unsigned kBuffers = 32, kSmallBuf = 64;
        Pool pool(ctx, ring, PoolKind::ring, kBuffers, BufMode::bundle, kSmallBuf);
        Receiver rx(ctx, ring, pool, sockets.server.get(), IORING_RECVSEND_BUNDLE);

        // Each chunk is queued before the receive runs (the first one before it
        // is even armed) and fills 2 to 16 of the group's 32 buffers.
        int chunks = ctx.pick(32, 256, 2048);
        uint64_t sent = stream_chunks_to_eof(ctx, sockets.client.get(), rx, pool, chunks,
                                             [](int i) { return 100 + size_t(i * 211) % 900; });

        check_requests(ctx, rx);
        check_bytes(ctx, pool, sent);
        ctx.metric("max_buffers_per_cqe", rx.max_buffers_per_cqe());
        // io_uring_prep_recv(3): with IORING_RECVSEND_BUNDLE "the receive
        // operation will attempt to fill multiple buffers ... the initial
        // receive may contain less buffers than what is available, with the
        // followup receive(s) containing more buffers."
        ctx.expect_true(rx.max_buffers_per_cqe() > 1,
                        str("no CQE spanned more than one ", kSmallBuf, "-byte buffer over ", chunks,
                            " chunks of 100 to 999 bytes"));
        rx.report_metrics();
    }}};

}  // namespace
