// Receives that overlap on one stream socket, and one receive reposted over
// and over: the networking playbook's "never overlap multiple receives on
// the same socket unless using a safe multishot design" (§2) and "multishot
// silently stopped: always check F_MORE, repost immediately" (§9), checked
// where the kernel does promise something: the bytes.
//
// io_uring orders nothing between two requests, so two receives on one
// socket may split its stream any way. What holds regardless: a stream
// socket delivers every byte once and in order (tcp(7) "reliable,
// stream-oriented"; unix(7) SOCK_STREAM), and each request is a series of
// recv(2) calls (io_uring_prep_recv(3): the multishot form "repeatedly posts
// a CQE when data is available"), each after the one before. So every
// request's chunks, in its own CQE order, must interleave with the other's
// into exactly the stream sent: streams_interleave().
#include <sys/socket.h>

#include <random>

#include "bufring.h"
#include "multishot_common.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;
using namespace uc::multishots;
const Family& multishot = multishots::family;

constexpr uint64_t kRecvBase = 0x1000;   // user_data: kRecvBase + request * kGenStride + generation
constexpr uint64_t kGenStride = 0x10000;  // a request is armed anew (a generation) after each final CQE

enum class StreamKind { tcp, unix_stream };
const auto kStreamKinds = {std::pair{StreamKind::tcp, std::string("tcp")},
                           std::pair{StreamKind::unix_stream, std::string("unix")}};

SocketPair stream_pair(Ctx& ctx, StreamKind kind) {
    return kind == StreamKind::tcp ? tcp_loopback(ctx) : unix_pair(ctx, SOCK_STREAM);
}

// One receive request on the socket, re-armed after each final CQE; all
// its generations' data in CQE order.
struct Receiver {
    bool multishot = true;
    unsigned index = 0;      // which request: its user_data range
    unsigned generation = 0;
    bool armed = false;
    std::vector<ReceivedChunk> chunks;

    uint64_t user_data() const { return kRecvBase + index * kGenStride + generation; }
    bool owns(uint64_t ud) const { return ud >= kRecvBase + index * kGenStride && ud < kRecvBase + (index + 1) * kGenStride; }
};

void arm(Ring& ring, int fd, const BufRing& bufs, Receiver& r) {
    // Bounds the reposts too: a kernel that keeps ending the request without data stops here.
    ring.ctx().must(Check{r.generation < kGenStride, str("the receive was armed anew ", kGenStride, " times")});
    io_uring_sqe* sqe = ring.sqe(r.user_data(), r.multishot ? "multishot recv" : "recv");
    if (r.multishot)
        io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
    else
        io_uring_prep_recv(sqe, fd, nullptr, bufs.buf_len(), 0);
    prep_buffer_select(sqe);
    r.armed = true;
}

// Accounts `cqe` of `r`: its buffer against the ledger (a buffer the kernel
// did not hold is a fail), its bytes onto `r`'s chunks; the buffer goes back
// to the ring at once when `recycle`. Returns the bytes it delivered.
uint64_t take(Ctx& ctx, BufRing& bufs, Receiver& r, const Cqe& cqe, bool recycle) {
    std::vector<BufSpan> spans;
    ctx.must(bufs.consume(cqe, &spans));
    std::string bytes;
    for (const BufSpan& span : spans) {
        bytes.append(reinterpret_cast<const char*>(bufs.data(span.bid)) + span.offset, span.len);
        if (recycle && span.released) bufs.provide(span.bid);
    }
    uint64_t delivered = bytes.size();
    if (delivered > 0) r.chunks.push_back({cqe, std::move(bytes)});
    return delivered;
}

// ===== two receives on one socket =====

enum class Second { multishot, oneshot };

struct OverlapParams {
    Setup setup;
    StreamKind stream;
    Second second;  // the request beside a multishot recv
};

const Register<OverlapParams> overlapping_recvs{{
    .family = multishot,
    .name = "overlapping-recvs-conserve-bytes",
    .summary = "two receives on one stream socket sharing a buffer ring: their chunks interleave into exactly the bytes sent",
    .needs = {needs_op(IORING_OP_RECV), needs_buf_ring(), needs_capability("recv_multishot")},
    .variants = grid(setups(&OverlapParams::setup, all_setups()), axis("stream", &OverlapParams::stream, kStreamKinds),
                     axis("second", &OverlapParams::second, {{Second::multishot, "multishot"}, {Second::oneshot, "oneshot"}})),
    .body = [](Ctx& ctx, const OverlapParams& p) {
        Ring ring(ctx, p.setup, 256);
        SocketPair sockets = stream_pair(ctx, p.stream);
        BufRing bufs(ring, kGroup, 64, 512);
        Receiver receivers[2] = {{.multishot = true, .index = 0}, {.multishot = p.second == Second::multishot, .index = 1}};
        int fd = sockets.server.get();
        for (Receiver& r : receivers) arm(ring, fd, bufs, r);
        ring.submit();

        // A CQE for either request: its bytes taken and the buffer given
        // back; a request that ended is armed anew, unless the stream did.
        uint64_t received = 0, reposts = 0;
        auto handle = [&](const Cqe& cqe, bool connected) {
            for (Receiver& r : receivers) {
                if (!r.owns(cqe.user_data)) continue;
                received += take(ctx, bufs, r, cqe, true);
                if (cqe.more()) return;
                r.armed = false;
                if (!connected && cqe.res == 0) return;
                // io_uring_prep_recv(3): without IORING_CQE_F_MORE "the
                // multishot receive is done and the application must issue
                // a new request"; a one-shot recv is done anyway. Before the
                // peer's shutdown, a request ends only with data or for want
                // of a buffer (io_uring_multishot(7): -ENOBUFS).
                ctx.must(Check{cqe.res > 0 || cqe.res == -ENOBUFS,
                               str("a receive ended with res ", cqe.res, connected ? " while the peer was connected" :
                                   " (neither data, -ENOBUFS nor the shutdown's 0)"), cqe});
                reposts += r.multishot;
                ++r.generation;
                arm(ring, fd, bufs, r);
                ring.submit();
                return;
            }
        };

        // Rounds of a few writes of random sizes, each round reaped before
        // the next, so both requests are armed whenever data arrives.
        std::mt19937_64 rng(ctx.seed());
        const uint64_t total = ctx.pick(32u << 10, 256u << 10, 1u << 20);
        uint64_t sent = 0;
        while (sent < total) {
            for (int w = 0; w < 8 && sent < total; ++w) {
                size_t len = std::min<uint64_t>(total - sent, 1 + rng() % 3000);
                std::string data = pattern(sent, len);
                send_all(ctx, sockets.client.get(), data.data(), data.size());
                sent += len;
            }
            while (received < sent) handle(must_wait(ctx, ring, kAnswerNs, "the receives to deliver the bytes sent"), true);
        }
        // recv(2): an orderly shutdown reads as 0 bytes; each request sees it.
        shutdown(sockets.client.get(), SHUT_WR);
        while (receivers[0].armed || receivers[1].armed)
            handle(must_wait(ctx, ring, kAnswerNs, "each receive to end with the peer's shutdown"), false);
        ring.settle(kQuietNs);

        const std::vector<Cqe>& trace = ring.trace().all();
        for (Receiver& r : receivers)
            for (unsigned gen = 0; gen <= r.generation; ++gen) {
                uint64_t ud = kRecvBase + r.index * kGenStride + gen;
                bool last = gen == r.generation;
                std::vector<int> final_res = last ? std::vector<int>{0} : std::vector<int>{};
                // io_uring_multishot(7): every CQE but the last carries
                // IORING_CQE_F_MORE, and nothing follows the last.
                if (r.multishot && !ctx.expect(multishot_contract(trace, ud, {.final_res = final_res}))) break;
                if (!r.multishot && last && !ctx.expect(single_completion(trace, ud, final_res))) break;
            }
        ctx.expect(streams_interleave({receivers[0].chunks, receivers[1].chunks}, sent));
        ctx.metric("chunks_first", uint64_t(receivers[0].chunks.size()));
        ctx.metric("chunks_second", uint64_t(receivers[1].chunks.size()));
        ctx.metric("multishot_reposts", reposts);
        ctx.add_iterations(sent);
    }}};

// ===== one multishot recv, reposted whenever it runs dry =====

struct RepostParams {
    Setup setup;
    StreamKind stream;
};

const Register<RepostParams> reposts_keep_order{{
    .family = multishot,
    .name = "recv-reposts-keep-stream-order",
    .summary = "a multishot recv that runs out of buffers ends -ENOBUFS with the ring empty; reposts continue the stream exactly",
    .needs = {needs_op(IORING_OP_RECV), needs_buf_ring(), needs_capability("recv_multishot")},
    .variants = grid(setups(&RepostParams::setup, all_setups()), axis("stream", &RepostParams::stream, kStreamKinds)),
    .body = [](Ctx& ctx, const RepostParams& p) {
        Ring ring(ctx, p.setup, 256);
        SocketPair sockets = stream_pair(ctx, p.stream);
        constexpr unsigned kBuffers = 4;
        BufRing bufs(ring, kGroup, kBuffers, 256);
        Receiver r{.multishot = true};
        int fd = sockets.server.get();
        arm(ring, fd, bufs, r);
        ring.submit();

        // All of it at once (it fits the socket's buffer): the receive must
        // run dry many times over, since the ring holds 1 KiB.
        const uint64_t total = ctx.pick(16u << 10, 64u << 10, 256u << 10);
        std::string data = pattern(0, total);
        send_all(ctx, sockets.client.get(), data.data(), data.size());
        uint64_t received = 0;
        while (received < total) {
            Cqe cqe = must_wait(ctx, ring, kAnswerNs, "the multishot recv to deliver data or end with -ENOBUFS");
            received += take(ctx, bufs, r, cqe, false);
            if (cqe.more()) continue;
            // io_uring_multishot(7): "If the buffer ring becomes empty, the
            // multishot operation terminates with -ENOBUFS", so it ends that
            // way only once it used every buffer provided.
            ctx.must(Check{cqe.res == -ENOBUFS && bufs.held_count() == 0,
                           str("the multishot recv ended with res ", cqe.res, " while sent bytes were queued and the ring held ",
                               bufs.held_count(), " of ", kBuffers, " buffers; only an empty ring ends it (-ENOBUFS)"),
                           cqe});
            // §9: repost immediately, once the buffers are back.
            for (unsigned bid = 0; bid < kBuffers; ++bid) bufs.provide(bid);
            ++r.generation;
            arm(ring, fd, bufs, r);
            ring.submit();
        }
        // The last generation may have run dry too: give it buffers (or a
        // new request) for the end of the stream.
        for (unsigned bid = 0; bid < kBuffers; ++bid)
            if (!bufs.kernel_holds(bid)) bufs.provide(bid);
        shutdown(sockets.client.get(), SHUT_WR);
        for (;;) {
            Cqe cqe = must_wait(ctx, ring, kAnswerNs, "the multishot recv to see the peer's shutdown");
            take(ctx, bufs, r, cqe, false);
            if (cqe.user_data == r.user_data() && !cqe.more() && cqe.res == -ENOBUFS) {
                ++r.generation;
                arm(ring, fd, bufs, r);
                ring.submit();
            } else if (cqe.user_data == r.user_data() && !cqe.more()) {
                break;
            }
        }
        ring.settle(kQuietNs);

        const std::vector<Cqe>& trace = ring.trace().all();
        for (unsigned gen = 0; gen <= r.generation; ++gen) {
            bool last = gen == r.generation;
            // io_uring_multishot(7) for each generation; recv(2): the
            // peer's orderly shutdown reads as 0, which ends the last one.
            if (!ctx.expect(multishot_contract(trace, kRecvBase + gen,
                                               {.final_res = last ? std::vector<int>{0} : std::vector<int>{-ENOBUFS}})))
                break;
        }
        // One request at a time: the chunks, in CQE order over all
        // generations, are exactly the stream.
        ctx.expect(streams_interleave({r.chunks}, total));
        ctx.metric("reposts", uint64_t(r.generation));
        ctx.add_iterations(total);
    }}};

}  // namespace
