// Multishot requests meeting the rest of io_uring: IOSQE_IO_DRAIN,
// IOSQE_IO_LINK and IOSQE_CQE_SKIP_SUCCESS next to a live multishot request
// (io_uring_sqe_set_flags(3), io_uring_enter(2)), and rings with 32-byte
// CQEs (IORING_SETUP_CQE32, io_uring_setup(2)). IORING_OP_MSG_RING as a CQE
// source beside multishot requests is in multishot_msg_ring.cpp.
//
// Every multishot request is judged by multishot_contract(): all its CQEs
// but the last carry IORING_CQE_F_MORE, exactly one final CQE lacks it, and
// nothing for the request follows it (io_uring_multishot(7)).
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>

#include "bufring.h"
#include "multishot_common.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;
using namespace uc::multishots;
const Family& multishot = multishots::family;

constexpr uint64_t kAfter = 3;  // the request drained or linked behind the multishot one

// --- shared pieces ---

// Reaps until `user_data` has a CQE without F_MORE, within `bound_ns`.
bool reap_final_within(Ring& ring, uint64_t user_data, uint64_t bound_ns) {
    for (uint64_t until = now_ns() + bound_ns; now_ns() < until;)
        if (auto cqe = ring.wait_for(10'000'000); cqe && cqe->user_data == user_data && !cqe->more()) return true;
    return false;
}

size_t index_of_final(const std::vector<Cqe>& trace, uint64_t user_data) {
    for (size_t i = 0; i < trace.size(); ++i)
        if (trace[i].user_data == user_data && !trace[i].more()) return i;
    return trace.size();
}

// --- drain, link, skip ---

const Register<SetupOnly> drain_after_multishot{{
    .family = multishot,
    .name = "drain-waits-for-multishot-end",
    .summary = "an IOSQE_IO_DRAIN NOP after a live multishot recv starts only once the recv's final CQE is posted",
    .needs = {needs_op(IORING_OP_RECV), needs_op(IORING_OP_NOP), needs_buf_ring(), needs_capability("recv_multishot")},
    .variants = grid(setups(&SetupOnly::setup, all_setups())),
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup, 64);
        SocketPair sockets = unix_pair(ctx, SOCK_STREAM);
        BufRing bufs(ring, kGroup, 8, 256);
        arm_recv_multishot(ring, sockets.server.get());
        ring.submit();
        uint64_t sent = 0, received = 0;
        send_and_receive(ctx, ring, bufs, sockets.client.get(), &sent, &received, 64);

        io_uring_sqe* sqe = ring.sqe(kAfter, "drained nop");
        io_uring_prep_nop(sqe);
        sqe->flags |= IOSQE_IO_DRAIN;
        ring.submit();
        // The recv was started before the drain: it keeps receiving.
        for (unsigned i = 0; i < 3; ++i) send_and_receive(ctx, ring, bufs, sockets.client.get(), &sent, &received, 64 + i);
        ring.settle(kQuietNs);
        bool started_early = !ring.trace().for_request(kAfter).empty();

        shutdown(sockets.client.get(), SHUT_WR);
        ring.reap_until_final(kTarget);
        bool after_started = reap_final_within(ring, kAfter, kAnswerNs) || !ring.trace().for_request(kAfter).empty();
        ring.settle(kQuietNs);

        const std::vector<Cqe>& trace = ring.trace().all();
        ctx.expect(multishot_contract(trace, kTarget, {.final_res = {0}}));
        // io_uring_sqe_set_flags(3) IOSQE_IO_DRAIN: "the SQE will not be
        // started before previously submitted SQEs have completed" - a
        // multishot request completes with its final CQE.
        ctx.expect_true(!started_early, "the drained NOP completed while the earlier multishot recv was still live");
        ctx.expect_true(after_started, "the drained NOP never completed after the multishot recv ended");
        if (after_started && !started_early)
            ctx.expect_true(index_of_final(trace, kAfter) > index_of_final(trace, kTarget),
                            "the drained NOP's CQE precedes the multishot recv's final CQE");
        ctx.expect(single_completion(trace, kAfter, {0}));
        ctx.expect_eq(received, sent, "bytes received over all CQEs vs bytes sent");
    }}};

const Register<SetupOnly> link_after_multishot{{
    .family = multishot,
    .name = "link-head-multishot-holds-next",
    .summary = "a NOP linked behind a multishot poll waits while the poll is live; the poll's -ECANCELED end cancels it",
    .needs = {needs_op(IORING_OP_POLL_ADD), needs_op(IORING_OP_POLL_REMOVE), needs_op(IORING_OP_NOP)},
    .variants = grid(setups(&SetupOnly::setup, all_setups())),
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup, 64);
        Pipe pipe = make_pipe(ctx);
        io_uring_sqe* sqe = ring.sqe(kTarget, "linked multishot poll");
        io_uring_prep_poll_multishot(sqe, pipe.read.get(), POLLIN);
        sqe->flags |= IOSQE_IO_LINK;
        io_uring_prep_nop(ring.sqe(kAfter, "nop linked behind the poll"));
        ring.submit();

        for (unsigned i = 0; i < 3; ++i) poll_round(ctx, ring, pipe);
        ring.settle(kQuietNs);
        bool started_early = !ring.trace().for_request(kAfter).empty();
        io_uring_prep_poll_remove(ring.sqe(kCancel, "poll remove"), kTarget);
        ring.submit();
        ring.reap_until_final(kTarget);
        bool after_done = reap_final_within(ring, kAfter, kAnswerNs) || !ring.trace().for_request(kAfter).empty();
        ring.settle(kQuietNs);

        const std::vector<Cqe>& trace = ring.trace().all();
        ctx.expect(multishot_contract(trace, kTarget, {.final_res = {-ECANCELED}}));
        ctx.expect(single_completion(trace, kCancel, {0}));
        // io_uring_sqe_set_flags(3) IOSQE_IO_LINK: "That next SQE will not
        // be started before the previous request completes."
        ctx.expect_true(!started_early, "the NOP linked behind a live multishot poll completed before the poll ended");
        // io_uring_enter(2): "If a chain of SQE links is broken, the remaining
        // unstarted part of the chain will be terminated and completed with
        // -ECANCELED"; the poll ended in error (-ECANCELED).
        ctx.expect_true(after_done, "the linked NOP never completed after the poll ended");
        ctx.expect(single_completion(trace, kAfter, {-ECANCELED}));
        if (after_done && !started_early)
            ctx.expect_true(index_of_final(trace, kAfter) > index_of_final(trace, kTarget),
                            "the linked NOP's CQE precedes the poll's final CQE");
    }}};

enum class SkipOp { poll, recv };
struct SkipParams {
    Setup setup;
    SkipOp op;
};

const Register<SkipParams> skip_success{{
    .family = multishot,
    .name = "cqe-skip-success-error-still-posted",
    .summary = "a multishot request with IOSQE_CQE_SKIP_SUCCESS still posts its failing end (refused at once or -ECANCELED)",
    .needs = {needs_feature(IORING_FEAT_CQE_SKIP, "CQE_SKIP"), needs_op(IORING_OP_ASYNC_CANCEL),
              when(&SkipParams::op, SkipOp::poll, needs_op(IORING_OP_POLL_ADD)),
              when(&SkipParams::op, SkipOp::recv, needs_op(IORING_OP_RECV)),
              when(&SkipParams::op, SkipOp::recv, needs_buf_ring()),
              when(&SkipParams::op, SkipOp::recv, needs_capability("recv_multishot"))},
    .variants = grid(setups(&SkipParams::setup, all_setups()),
                     axis("op", &SkipParams::op, {{SkipOp::poll, "poll"}, {SkipOp::recv, "recv"}})),
    .body = [](Ctx& ctx, const SkipParams& p) {
        Ring ring(ctx, p.setup, 64);
        SocketPair sockets = unix_pair(ctx, SOCK_STREAM);
        std::optional<BufRing> bufs;
        if (p.op == SkipOp::recv) {
            bufs.emplace(ring, kGroup, 8, 256);
            arm_recv_multishot(ring, sockets.server.get(), IOSQE_CQE_SKIP_SUCCESS);
        } else {
            io_uring_sqe* sqe = ring.sqe(kTarget, "multishot poll");
            io_uring_prep_poll_multishot(sqe, sockets.server.get(), POLLIN);
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        }
        ring.submit();
        std::string data = pattern(0, 64);
        send_all(ctx, sockets.client.get(), data.data(), data.size());
        ring.settle(kQuietNs);
        bool refused = !ring.is_outstanding(kTarget);
        if (!refused) {
            io_uring_prep_cancel64(ring.sqe(kCancel, "async cancel"), kTarget, 0);
            ring.submit();
            reap_final_within(ring, kTarget, kAnswerNs);
            ring.settle(kQuietNs);
        }

        const std::vector<Cqe>& trace = ring.trace().all();
        size_t final = index_of_final(trace, kTarget);
        // io_uring_sqe_set_flags(3) IOSQE_CQE_SKIP_SUCCESS: "no CQE be
        // generated for this request, if it completes successfully"; and
        // io_uring_enter(2): "If the request fails, an appropriate CQE will be
        // posted as usual". Refused or canceled, the request fails.
        if (ctx.expect_true(final < trace.size(), "the multishot request with IOSQE_CQE_SKIP_SUCCESS posted no final CQE "
                                                  "although it was refused or canceled")) {
            ctx.expect(Check{trace[final].res < 0, "the final CQE of a refused or canceled request must carry the error", trace[final]});
            ctx.expect(multishot_contract(trace, kTarget));
        }
        if (!refused) ctx.expect(single_completion(trace, kCancel, {0}));
        size_t events = 0;
        for (const Cqe& cqe : trace) events += cqe.user_data == kTarget && cqe.more();
        // Whether an event CQE is a "success" the flag suppresses the page
        // does not say: what the kernel did is recorded, not judged.
        ctx.metric("accepted", !refused);
        ctx.metric("event_cqes", events);
        if (final < trace.size()) ctx.metric("final_res", res_text(trace[final].res));
    }}};

// --- CQE32 ---

enum class Cqe32Op { poll, recv, timeout };
struct Cqe32Params {
    Setup setup;
    Cqe32Op op;
};

// A CQE of a 32-byte-CQE ring with its second 16 bytes: waited for without
// being consumed, read, then reaped (and recorded) through the Ring.
struct BigCqe {
    Cqe cqe;
    uint64_t extra[2];
};

BigCqe wait_big(Ctx& ctx, Ring& ring, const std::string& awaited) {
    __kernel_timespec step{0, 10'000'000};
    io_uring_cqe* raw = nullptr;
    for (uint64_t until = now_ns() + kAnswerNs; now_ns() < until;) {
        int ret = io_uring_wait_cqe_timeout(ring.get(), &raw, &step);
        if (ret == -ETIME || ret == -EINTR) continue;
        if (ret < 0) ctx.error("io_uring_wait_cqe_timeout: " + errno_name(ret));
        BigCqe big{{}, {raw->big_cqe[0], raw->big_cqe[1]}};
        big.cqe = *ring.wait_for(0);
        return big;
    }
    ctx.must(Check::fail(str("no CQE within ", kAnswerNs / 1'000'000, " ms while waiting for ", awaited)));
    __builtin_unreachable();
}

const Register<Cqe32Params> cqe32_contract{{
    .family = multishot,
    .name = "cqe32-contract",
    .summary = "on an IORING_SETUP_CQE32 ring multishot poll/recv/timeout keep the F_MORE contract and their user_data",
    .needs = {Requirement([](const Probe& probe) { return probe.setup_refused(IORING_SETUP_CQE32); }),
              when(&Cqe32Params::op, Cqe32Op::poll, needs_op(IORING_OP_POLL_ADD)),
              when(&Cqe32Params::op, Cqe32Op::poll, needs_op(IORING_OP_POLL_REMOVE)),
              when(&Cqe32Params::op, Cqe32Op::recv, needs_op(IORING_OP_RECV)),
              when(&Cqe32Params::op, Cqe32Op::recv, needs_buf_ring()),
              when(&Cqe32Params::op, Cqe32Op::recv, needs_capability("recv_multishot")),
              when(&Cqe32Params::op, Cqe32Op::timeout, needs_op(IORING_OP_TIMEOUT)),
              when(&Cqe32Params::op, Cqe32Op::timeout, needs_capability("timeout_multishot"))},
    .variants = grid(setups(&Cqe32Params::setup, all_setups()),
                     axis("op", &Cqe32Params::op, {{Cqe32Op::poll, "poll"}, {Cqe32Op::recv, "recv"}, {Cqe32Op::timeout, "timeout"}})),
    .body = [](Ctx& ctx, const Cqe32Params& p) {
        Ring ring(ctx, p.setup, 64, 32, IORING_SETUP_CQE32);
        SocketPair sockets = unix_pair(ctx, SOCK_STREAM);
        std::optional<BufRing> bufs;
        std::vector<BigCqe> seen;
        constexpr unsigned kTimeouts = 4;
        __kernel_timespec every_2ms{0, 2'000'000};
        unsigned events = ctx.pick(6u, 32u, 128u);
        uint64_t sent = 0, received = 0;
        switch (p.op) {
            case Cqe32Op::poll: io_uring_prep_poll_multishot(ring.sqe(kTarget, "multishot poll"), sockets.server.get(), POLLIN); break;
            case Cqe32Op::recv:
                bufs.emplace(ring, kGroup, 8, 256);
                arm_recv_multishot(ring, sockets.server.get());
                break;
            case Cqe32Op::timeout:
                io_uring_prep_timeout(ring.sqe(kTarget, "multishot timeout"), &every_2ms, kTimeouts, IORING_TIMEOUT_MULTISHOT);
                break;
        }
        ring.submit();
        auto live = [&] { return ring.is_outstanding(kTarget); };
        for (unsigned i = 0; p.op != Cqe32Op::timeout && i < events && live(); ++i) {
            std::string data = pattern(sent, 40 + i);
            send_all(ctx, sockets.client.get(), data.data(), data.size());
            sent += data.size();
            BigCqe big = wait_big(ctx, ring, "the multishot request's event");
            seen.push_back(big);
            if (p.op == Cqe32Op::recv && big.cqe.user_data == kTarget && big.cqe.res > 0) {
                unsigned bid = big.cqe.buffer_id();
                ctx.must(take_stream_buffer(*bufs, big.cqe, &received));
                bufs->provide(bid);
                while (received < sent && live()) {
                    BigCqe more = wait_big(ctx, ring, "the rest of the sent bytes");
                    seen.push_back(more);
                    if (more.cqe.user_data != kTarget || more.cqe.res <= 0) break;
                    unsigned more_bid = more.cqe.buffer_id();
                    ctx.must(take_stream_buffer(*bufs, more.cqe, &received));
                    bufs->provide(more_bid);
                }
            } else if (p.op == Cqe32Op::poll) {
                char buf[256];
                while (recv(sockets.server.get(), buf, sizeof(buf), MSG_DONTWAIT) > 0) {}
            }
        }
        if (p.op == Cqe32Op::timeout)
            while (live()) seen.push_back(wait_big(ctx, ring, "the multishot timeout's expirations"));
        if (live()) {
            io_uring_prep_cancel64(ring.sqe(kCancel, "async cancel"), kTarget, 0);
            ring.submit();
            while (live()) seen.push_back(wait_big(ctx, ring, "the canceled request's final CQE"));
        }
        ring.settle(kQuietNs);

        const std::vector<Cqe>& trace = ring.trace().all();
        // io_uring_multishot(7); a multishot timeout's expirations are -ETIME with F_MORE.
        MultishotExpect expect{.final_res = {-ECANCELED}};
        if (p.op == Cqe32Op::timeout) expect = {.final_res = {-ETIME}, .error_ends_request = false};
        ctx.expect(multishot_contract(trace, kTarget, expect));
        if (p.op == Cqe32Op::timeout)
            ctx.expect_eq(ring.trace().for_request(kTarget).size(), size_t(kTimeouts), "CQEs of a multishot timeout with count");
        if (p.op == Cqe32Op::recv) ctx.expect_eq(received, sent, "bytes received over all CQEs vs bytes sent");
        // io_uring_enter(2): "user_data is copied from the field of the same
        // name in the submission queue entry": with 32-byte CQEs read at the
        // wrong stride, other values would appear.
        for (const Cqe& cqe : trace)
            if (!ctx.expect(Check{cqe.user_data == kTarget || cqe.user_data == kCancel,
                                  "a CQE on the CQE32 ring carries a user_data no SQE had", cqe}))
                break;
        // The uapi calls the second 16 bytes "padding" (io_uring_cqe.big_cqe in
        // include/uapi/linux/io_uring.h); no page says what an op without
        // extra data leaves there, so non-zero extras are counted, not judged.
        size_t nonzero = std::count_if(seen.begin(), seen.end(), [](const BigCqe& b) { return b.extra[0] || b.extra[1]; });
        ctx.metric("cqes_read_with_extra", seen.size());
        ctx.metric("nonzero_big_cqe", nonzero);
        ctx.add_iterations(seen.size());
    }}};

}  // namespace
