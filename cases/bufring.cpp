// Provided buffers under pressure: starvation (-ENOBUFS), recovery by refill
// and re-arm, legacy provided buffers, incremental consumption, receive
// bundles and CQ overflow under a multishot producer, after
// io_uring_multishot(7), io_uring_provided_buffers(7) and the networking
// playbook (seed 003, §5 and §9: "Multishot silently stopped",
// "Provided-buffer starvation").
//
// Every scenario records what it received through a Pool (kernel buffers +
// BufferLedger + event log) and ends with byte_conservation() over that log:
// each data CQE named a buffer the kernel held, and the bytes of all CQEs, in
// order, are exactly the bytes sent. Metrics are the playbook's observability
// list (§8): buffers available at each starvation, repost count, CQ overflow
// count, max CQ depth used.
#include <sys/socket.h>
#include <unistd.h>

#include "bufring_pool.h"
#include "net.h"
#include "probe_helpers.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;

using namespace bufring_family;

// --- capability probes: tried on a scratch ring. -EINVAL / -EOPNOTSUPP
// mean "not understood"; any other answer means the kernel took the request. ---

// Multishot recv drawing from legacy provided buffers (IORING_OP_PROVIDE_BUFFERS):
// provide four buffers, queue data, and see whether the recv is refused.
CapabilityEvidence probe_legacy_multishot(const Probe& probe) {
    for (int op : {IORING_OP_PROVIDE_BUFFERS, IORING_OP_RECV})
        if (auto missing = lacks_op(probe, op)) return *missing;
    const char* tried = "IORING_OP_RECV with IORING_RECV_MULTISHOT from IORING_OP_PROVIDE_BUFFERS buffers, data queued";
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) return untried(tried, "socketpair: " + errno_name(errno));
    std::vector<char> memory(4 * 64);
    std::optional<CapabilityEvidence> evidence;
    io_uring ring{};
    if (int ret = io_uring_queue_init(8, &ring, 0); ret < 0) {
        evidence = untried(tried, "io_uring_queue_init: " + errno_name(ret));
    } else {
        io_uring_prep_provide_buffers(io_uring_get_sqe(&ring), memory.data(), 64, 4, kGroup, 0);
        io_uring_cqe* cqe = nullptr;
        int provided = io_uring_submit_and_wait(&ring, 1) == 1 && io_uring_peek_cqe(&ring, &cqe) == 0 ? cqe->res : -EIO;
        if (cqe) io_uring_cqe_seen(&ring, cqe);
        if (provided < 0) {
            // Without the buffers the recv cannot be tried: absent only if the kernel refused the provide itself.
            evidence = SqeAnswer{provided}.refused()
                           ? answered("IORING_OP_PROVIDE_BUFFERS of 4 buffers", provided)
                           : untried(tried, "IORING_OP_PROVIDE_BUFFERS: -" + errno_name(provided));
        } else {
            (void)!write(fds[0], "probe", 5);
            io_uring_sqe* sqe = io_uring_get_sqe(&ring);
            io_uring_prep_recv_multishot(sqe, fds[1], nullptr, 0, 0);
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = kGroup;
            constexpr unsigned kWaitMs = 100;
            SqeAnswer answer{std::nullopt, kWaitMs};
            __kernel_timespec ts{0, kWaitMs * 1'000'000};
            if (int submitted = io_uring_submit(&ring); submitted != 1)
                answer.res = submitted < 0 ? submitted : -EAGAIN;
            else if (io_uring_wait_cqe_timeout(&ring, &cqe, &ts) == 0)
                answer.res = cqe->res;
            evidence = answered(tried, answer);
        }
        io_uring_queue_exit(&ring);
    }
    close(fds[0]);
    close(fds[1]);
    return *evidence;
}
const CapabilityProbe legacy_multishot_probe{"recv_multishot_legacy_buffers", probe_legacy_multishot};

// IORING_RECVSEND_BUNDLE on a multishot recv with a buffer ring, data already
// queued. The feature bit is the documented sign (IORING_FEAT_RECVSEND_BUNDLE,
// 6.10); the SQE shows the kernel takes the flag on a recv as well.
const CapabilityProbe recv_bundle_probe{"recv_bundle", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_RECV)) return *missing;
    if (!probe.has_feature(IORING_FEAT_RECVSEND_BUNDLE))
        return absent("io_uring_params.features", "IORING_FEAT_RECVSEND_BUNDLE not set");
    if (!probe.buf_ring) return absent("IORING_REGISTER_PBUF_RING", "refused (probe buf_ring)");
    const char* tried = "IORING_OP_RECV with IORING_RECV_MULTISHOT|IORING_RECVSEND_BUNDLE from a buffer ring, data queued";
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) return untried(tried, "socketpair: " + errno_name(errno));
    ProbeBufRing bufs(4, 64);
    SqeAnswer answer = probe_one_sqe([&](io_uring* ring, io_uring_sqe* sqe) {
        bufs.register_on(ring, kGroup);
        (void)!write(fds[0], bufs.data(), 200);
        io_uring_prep_recv_multishot(sqe, fds[1], nullptr, 0, 0);
        sqe->ioprio |= IORING_RECVSEND_BUNDLE;
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = kGroup;
    });
    close(fds[0]);
    close(fds[1]);
    return answered(tried, answer);
}};

// --- scenarios ---

const Register<PoolParams> recv_starvation{{
    .family = bufring,
    .name = "recv-starvation-enobufs",
    .summary = "a sender outpacing a consumer that returns no buffer ends multishot recv with -ENOBUFS once the "
               "group is empty; after re-arming, every byte arrives once, in order",
    .needs = {needs_op(IORING_OP_RECV), needs_capability("recv_multishot"), pool_needs<PoolParams>()},
    .variants = grid(setups(&PoolParams::setup, all_setups()), pool_axis(), axis("bufs", &PoolParams::bufs, {1u, 2u, 8u, 64u})),
    .body = [](Ctx& ctx, const PoolParams& p) {
        PoolKind kind = p.pool;
        unsigned buffers = p.bufs;
        Ring ring(ctx, p.setup, kRoomyCq);
        SocketPair sockets = tcp_loopback(ctx);
        Pool pool(ctx, ring, kind, buffers, BufMode::plain);
        Receiver rx(ctx, ring, pool, sockets.server.get());
        rx.arm();

        // Four times what the buffers hold, in one write, then the peer is done.
        uint64_t sent = 4ull * buffers * kBufLen;
        std::string data = pattern(0, sent);
        send_all(ctx, sockets.client.get(), data.data(), data.size());
        shutdown(sockets.client.get(), SHUT_WR);
        while (rx.live()) rx.reap();

        // io_uring_multishot(7): "If the buffer ring becomes empty, the
        // multishot operation terminates with -ENOBUFS."
        ctx.expect(multishot_contract(rx.cqes(), kFirstRecv, {.final_res = {-ENOBUFS}}));
        // io_uring_provided_buffers(7): "If no buffer was available when the
        // operation completed, the operation fails with -ENOBUFS." Nothing was
        // returned yet, so the ledger is exact: the group must be empty.
        if (rx.last_final_res() == -ENOBUFS)
            ctx.expect_eq(pool.available(), 0u, "buffers the kernel still held when it reported -ENOBUFS");

        receive_to_eof(ctx, rx, pool);
        check_requests(ctx, rx);
        check_bytes(ctx, pool, sent);
        rx.report_metrics();
    }}};

const Register<PoolParams> recv_rearm{{
    .family = bufring,
    .name = "recv-enobufs-refill-rearm",
    .summary = "a consumer that refills only after -ENOBUFS and re-arms keeps a continuous stream whole: each "
               "request ends with -ENOBUFS on an empty group, the next continues at the next byte",
    .needs = {needs_op(IORING_OP_RECV), needs_capability("recv_multishot"), pool_needs<PoolParams>()},
    .variants = grid(setups(&PoolParams::setup, all_setups()), pool_axis()),
    .body = [](Ctx& ctx, const PoolParams& p) {
        PoolKind kind = p.pool;
        Ring ring(ctx, p.setup, kRoomyCq);
        SocketPair sockets = tcp_loopback(ctx);
        constexpr unsigned kBuffers = 8;
        Pool pool(ctx, ring, kind, kBuffers, BufMode::plain);
        Receiver rx(ctx, ring, pool, sockets.server.get());
        uint64_t total = ctx.pick<uint64_t>(256 << 10, 4 << 20, 32 << 20);
        Sender sender(sockets.client.get(), total, ctx.seed());

        // Buffers go back only when a request has ended: the playbook's
        // "refill + re-arm" recovery (§9), so the ledger is exact at each
        // -ENOBUFS and every starvation must find the group empty.
        rx.arm();
        for (;;) {
            Cqe cqe = rx.reap();
            if (rx.live() || cqe.user_data != rx.current()) continue;
            if (cqe.res == 0) break;
            if (cqe.res != -ENOBUFS) ctx.must(Check::fail("multishot recv ended other than by -ENOBUFS or EOF", cqe));
            // io_uring_provided_buffers(7): -ENOBUFS means "no buffer was available".
            ctx.expect_eq(pool.available(), 0u, "buffers the kernel still held when it reported -ENOBUFS");
            pool.recycle();
            rx.arm();
        }
        sender.join_and_check(ctx);
        check_requests(ctx, rx);
        check_bytes(ctx, pool, total);
        ctx.expect_true(rx.starvations() > 0,
                        str("a stream of ", total, " bytes into ", kBuffers, " buffers of ", kBufLen,
                            " bytes never starved: the recovery path was not exercised"));
        rx.report_metrics();
    }}};
}  // namespace
