// Multishot termination and IORING_CQE_F_MORE, after io_uring_multishot(7).
//
// Every scenario checks the page's contract through multishot_contract():
// "When a multishot operation completes, the CQE has the IORING_CQE_F_MORE
// flag set ... The final CQE for a multishot operation will not have
// IORING_CQE_F_MORE set", and nothing for the request follows that CQE;
// then the terminal cause each trigger documents.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bufring.h"
#include "multishot_common.h"
#include "net.h"
#include "probe_helpers.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;
const Family& multishot = multishots::family;

constexpr uint64_t kTarget = 1;  // user_data of the multishot request
constexpr uint64_t kCancel = 2;  // user_data of the cancel / remove request
constexpr uint16_t kGroup = 1;   // buffer group id
constexpr uint64_t kQuietNs = 20'000'000;  // "nothing follows the final CQE": 20 ms of silence

// Every scenario runs under each setup mode with a tiny and a roomy CQ.
struct Params {
    Setup setup;
    unsigned cq;
};
const auto kVariants = grid(setups(&Params::setup, all_setups()), axis("cq", &Params::cq, {8u, 256u}));

// --- capability probes: tried on a scratch ring. An unknown ioprio or
// timeout flag is -EINVAL; anything else (a CQE, or a request left pending)
// means the kernel took the flag. ---

CapabilityEvidence probe_multishot_receive(bool recvmsg) {
    std::string tried = str(recvmsg ? "IORING_OP_RECVMSG" : "IORING_OP_RECV",
                            " with IORING_RECV_MULTISHOT from a buffer ring on an empty AF_UNIX datagram socket");
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds) < 0) return untried(tried, "socketpair: " + errno_name(errno));
    ProbeBufRing bufs(4, 64);
    msghdr msg{};
    SqeAnswer answer = probe_one_sqe([&](io_uring* ring, io_uring_sqe* sqe) {
        bufs.register_on(ring, kGroup);
        if (recvmsg)
            io_uring_prep_recvmsg_multishot(sqe, fds[1], &msg, 0);
        else
            io_uring_prep_recv_multishot(sqe, fds[1], nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = kGroup;
    });
    close(fds[0]);
    close(fds[1]);
    return answered(tried, answer);
}

const CapabilityProbe recv_multishot_probe{"recv_multishot", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_RECV)) return *missing;
    return probe_multishot_receive(false);
}};
const CapabilityProbe recvmsg_multishot_probe{"recvmsg_multishot", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_RECVMSG)) return *missing;
    return probe_multishot_receive(true);
}};

const CapabilityProbe accept_multishot_probe{"accept_multishot", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_ACCEPT)) return *missing;
    const char* tried = "IORING_OP_ACCEPT with IORING_ACCEPT_MULTISHOT on a listening loopback TCP socket";
    Fd fd = listening_loopback_socket();
    if (!fd) return untried(tried, "listening socket: " + errno_name(errno));
    SqeAnswer answer = probe_one_sqe(
        [&](io_uring*, io_uring_sqe* sqe) { io_uring_prep_multishot_accept(sqe, fd.get(), nullptr, nullptr, 0); });
    return answered(tried, answer);
}};

const CapabilityProbe timeout_multishot_probe{"timeout_multishot", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_TIMEOUT)) return *missing;
    __kernel_timespec ts{0, 1'000'000};
    return answered("IORING_OP_TIMEOUT with IORING_TIMEOUT_MULTISHOT, 1 ms", probe_one_sqe([&](io_uring*, io_uring_sqe* sqe) {
                        io_uring_prep_timeout(sqe, &ts, 1, IORING_TIMEOUT_MULTISHOT);
                    }));
}};

// --- shared pieces ---

void prep_buffer_select(io_uring_sqe* sqe) {
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kGroup;
}

// Sends `len` pattern bytes and reaps the multishot receive's CQEs until all
// of them are accounted for (counting bytes, not CQEs: wakeups coalesce).
// Stops the scenario as a fail, naming `while_what`, if the request ends
// before the bytes arrived.
void send_and_receive(Ctx& ctx, Ring& ring, BufRing& bufs, int sender, uint64_t* sent, uint64_t* received,
                      size_t len, bool recycle, const char* while_what) {
    std::string data = pattern(*sent, len);
    send_all(ctx, sender, data.data(), data.size());
    *sent += len;
    while (*received < *sent) {
        Cqe cqe = ring.wait();
        if (cqe.user_data != kTarget) continue;
        if (!cqe.more() || cqe.res <= 0)
            ctx.must(Check::fail(str("multishot request ended ", while_what), cqe));
        unsigned bid = cqe.buffer_id();
        ctx.must(take_stream_buffer(bufs, cqe, received));
        if (recycle) bufs.provide(bid);
    }
}

// The request's CQEs obey the contract and, after `quiet` of silence, no
// further CQE for it has appeared.
void check_contract_settled(Ctx& ctx, Ring& ring, const MultishotExpect& expect) {
    ring.settle(kQuietNs);
    ctx.expect(multishot_contract(ring.trace().all(), kTarget, expect));
}

void cancel_target(Ring& ring) {
    io_uring_prep_cancel64(ring.sqe(kCancel, "async cancel"), kTarget, 0);
    ring.submit();
}

// --- scenarios ---

const Register<Params> recv_peer_close{{
    .family = multishot,
    .name = "recv-peer-close",
    .summary = "multishot recv on TCP ends with res 0 without F_MORE after the peer shuts down",
    .needs = {needs_op(IORING_OP_RECV), needs_buf_ring(), needs_capability("recv_multishot")},
    .variants = kVariants,
    .body = [](Ctx& ctx, const Params& p) {
        Ring ring(ctx, p.setup, p.cq);
        SocketPair sockets = tcp_loopback(ctx);
        BufRing bufs(ring, kGroup, 16, 256);
        io_uring_sqe* sqe = ring.sqe(kTarget, "multishot recv");
        io_uring_prep_recv_multishot(sqe, sockets.server.get(), nullptr, 0, 0);
        prep_buffer_select(sqe);
        ring.submit();

        uint64_t sent = 0, received = 0;
        int messages = ctx.pick(8, 64, 512);
        for (int i = 0; i < messages; ++i)
            send_and_receive(ctx, ring, bufs, sockets.client.get(), &sent, &received, 100 + size_t(i % 7) * 20, true, "while the peer was still connected");
        shutdown(sockets.client.get(), SHUT_WR);
        ring.reap_until_final(kTarget);

        // recv(2): an orderly peer shutdown reads as 0 bytes, which ends the request.
        check_contract_settled(ctx, ring, {.final_res = {0}});
        ctx.expect_eq(received, sent, "bytes received over all CQEs vs bytes sent");
        ctx.add_iterations(uint64_t(messages));
    }}};

const Register<Params> recv_enobufs{{
    .family = multishot,
    .name = "recv-enobufs",
    .summary = "multishot recv ends with -ENOBUFS without F_MORE once the buffer ring is empty; no data lost",
    .needs = {needs_op(IORING_OP_RECV), needs_buf_ring(), needs_capability("recv_multishot")},
    .variants = kVariants,
    .body = [](Ctx& ctx, const Params& p) {
        Ring ring(ctx, p.setup, p.cq);
        SocketPair sockets = tcp_loopback(ctx);
        constexpr unsigned kBuffers = 2;
        BufRing bufs(ring, kGroup, kBuffers, 256);
        io_uring_sqe* sqe = ring.sqe(kTarget, "multishot recv");
        io_uring_prep_recv_multishot(sqe, sockets.server.get(), nullptr, 0, 0);
        prep_buffer_select(sqe);
        ring.submit();

        // Use up every buffer without giving any back.
        uint64_t sent = 0, received = 0;
        for (unsigned i = 0; i < kBuffers; ++i)
            send_and_receive(ctx, ring, bufs, sockets.client.get(), &sent, &received, 64, false, "while buffers were still provided");
        ctx.metric("buffers_available_at_starvation", bufs.held_count());

        // io_uring_multishot(7): "If the buffer ring becomes empty, the
        // multishot operation terminates with -ENOBUFS."
        std::string last = pattern(sent, 64);
        send_all(ctx, sockets.client.get(), last.data(), last.size());
        ring.reap_until_final(kTarget);
        check_contract_settled(ctx, ring, {.final_res = {-ENOBUFS}});
        ctx.expect_eq(received, sent, "bytes received before starvation vs bytes sent");

        // The bytes that found no buffer are still in the socket, in order.
        std::string rest(64, '\0');
        ssize_t n = recv(sockets.server.get(), rest.data(), rest.size(), MSG_DONTWAIT);
        ctx.expect_true(n == 64 && rest == last, "data that met -ENOBUFS must stay queued in the socket");
    }}};

const Register<Params> recv_cancel{{
    .family = multishot,
    .name = "recv-cancel",
    .summary = "async cancel ends multishot recv with one final -ECANCELED CQE without F_MORE",
    .needs = {needs_op(IORING_OP_RECV), needs_op(IORING_OP_ASYNC_CANCEL), needs_buf_ring(),
              needs_capability("recv_multishot")},
    .variants = kVariants,
    .body = [](Ctx& ctx, const Params& p) {
        Ring ring(ctx, p.setup, p.cq);
        SocketPair sockets = tcp_loopback(ctx);
        BufRing bufs(ring, kGroup, 8, 256);
        io_uring_sqe* sqe = ring.sqe(kTarget, "multishot recv");
        io_uring_prep_recv_multishot(sqe, sockets.server.get(), nullptr, 0, 0);
        prep_buffer_select(sqe);
        ring.submit();
        uint64_t sent = 0, received = 0;
        send_and_receive(ctx, ring, bufs, sockets.client.get(), &sent, &received, 128, true, "before it was canceled");

        cancel_target(ring);
        ring.reap_until_final(kTarget);
        // io_uring_multishot(7): "the multishot operation generates a final CQE
        // (typically with -ECANCELED) without IORING_CQE_F_MORE set."
        check_contract_settled(ctx, ring, {.final_res = {-ECANCELED}});
        ctx.expect(single_completion(ring.trace().all(), kCancel, {0}));
    }}};

const Register<Params> accept_cancel{{
    .family = multishot,
    .name = "accept-cancel",
    .summary = "multishot accept posts one F_MORE CQE per connection, then -ECANCELED without F_MORE on cancel",
    .needs = {needs_op(IORING_OP_ACCEPT), needs_op(IORING_OP_ASYNC_CANCEL), needs_capability("accept_multishot")},
    .variants = kVariants,
    .body = [](Ctx& ctx, const Params& p) {
        Ring ring(ctx, p.setup, p.cq);
        Listener listener = tcp_listener(ctx);
        io_uring_prep_multishot_accept(ring.sqe(kTarget, "multishot accept"), listener.fd.get(), nullptr, nullptr, 0);
        ring.submit();

        int connections = ctx.pick(8, 32, 128);
        std::vector<Fd> clients;
        for (int i = 0; i < connections; ++i) {
            clients.push_back(tcp_connect(ctx, listener.port));
            Cqe cqe = ring.wait();
            // "Each incoming connection generates a CQE with the new file descriptor in cqe->res."
            if (!ctx.expect_true(cqe.user_data == kTarget && cqe.res >= 0 && cqe.more(),
                                 "each connection yields a CQE with a new fd and IORING_CQE_F_MORE: " + cqe.describe()))
                break;
            close(cqe.res);
        }
        cancel_target(ring);
        ring.reap_until_final(kTarget);
        check_contract_settled(ctx, ring, {.final_res = {-ECANCELED}});
        ctx.expect(single_completion(ring.trace().all(), kCancel, {0}));
        ctx.add_iterations(uint64_t(connections));
    }}};

const Register<Params> poll_remove{{
    .family = multishot,
    .name = "poll-remove",
    .summary = "multishot poll reports each readiness with F_MORE; poll remove ends it with -ECANCELED",
    .needs = {needs_op(IORING_OP_POLL_ADD), needs_op(IORING_OP_POLL_REMOVE)},
    .variants = kVariants,
    .body = [](Ctx& ctx, const Params& p) {
        Ring ring(ctx, p.setup, p.cq);
        Pipe pipe = make_pipe(ctx);
        io_uring_prep_poll_multishot(ring.sqe(kTarget, "multishot poll"), pipe.read.get(), POLLIN);
        ring.submit();

        int rounds = ctx.pick(16, 128, 1024);
        for (int i = 0; i < rounds; ++i) {
            char byte = 'x';
            send_all(ctx, pipe.write.get(), &byte, 1);
            Cqe cqe = ring.wait();
            if (!ctx.expect_true(cqe.user_data == kTarget && cqe.more() && (cqe.res & POLLIN),
                                 "readiness yields a CQE with POLLIN and IORING_CQE_F_MORE: " + cqe.describe()))
                break;
            if (read(pipe.read.get(), &byte, 1) != 1) ctx.error("read(pipe) after POLLIN");
        }
        io_uring_prep_poll_remove(ring.sqe(kCancel, "poll remove"), kTarget);
        ring.submit();
        ring.reap_until_final(kTarget);
        check_contract_settled(ctx, ring, {.final_res = {-ECANCELED}});
        ctx.expect(single_completion(ring.trace().all(), kCancel, {0}));
        ctx.add_iterations(uint64_t(rounds));
    }}};

const Register<Params> timeout_count{{
    .family = multishot,
    .name = "timeout-count",
    .summary = "multishot timeout with count N posts N -ETIME CQEs, only the last without F_MORE",
    .needs = {needs_op(IORING_OP_TIMEOUT), needs_capability("timeout_multishot")},
    .variants = kVariants,
    .body = [](Ctx& ctx, const Params& p) {
        Ring ring(ctx, p.setup, p.cq);
        // Fewer expirations than the smallest CQ: even an unreaped ring cannot overflow.
        constexpr unsigned kCount = 4;
        __kernel_timespec every_5ms{0, 5'000'000};
        io_uring_prep_timeout(ring.sqe(kTarget, "multishot timeout"), &every_5ms, kCount, IORING_TIMEOUT_MULTISHOT);
        ring.submit();
        ring.reap_until_final(kTarget);
        // Each expiration reports -ETIME; the request ends after `count` of them.
        check_contract_settled(ctx, ring, {.final_res = {-ETIME}, .error_ends_request = false});
        ctx.expect_eq(ring.trace().for_request(kTarget).size(), size_t(kCount), "CQEs of a multishot timeout with count");
    }}};

const Register<Params> read_eof{{
    .family = multishot,
    .name = "read-eof",
    .summary = "multishot read of a pipe delivers every byte in provided buffers, then ends with res 0 at EOF",
    .needs = {needs_op(compat::op_read_multishot), needs_buf_ring()},
    .variants = kVariants,
    .body = [](Ctx& ctx, const Params& p) {
        Ring ring(ctx, p.setup, p.cq);
        Pipe pipe = make_pipe(ctx);
        BufRing bufs(ring, kGroup, 16, 256);
        // io_uring_prep_read_multishot(3) (liburing 2.5+): len 0, buffer select.
        io_uring_sqe* sqe = ring.sqe(kTarget, "multishot read");
        io_uring_prep_rw(compat::op_read_multishot, sqe, pipe.read.get(), nullptr, 0, 0);
        prep_buffer_select(sqe);
        ring.submit();

        uint64_t sent = 0, received = 0;
        int chunks = ctx.pick(8, 64, 512);
        for (int i = 0; i < chunks; ++i)
            send_and_receive(ctx, ring, bufs, pipe.write.get(), &sent, &received, 50 + size_t(i % 5) * 30, true, "while the pipe was still open");
        pipe.write.reset();
        ring.reap_until_final(kTarget);
        // read(2): 0 means end of file, after which nothing more can be read.
        check_contract_settled(ctx, ring, {.final_res = {0}});
        ctx.expect_eq(received, sent, "bytes read over all CQEs vs bytes written");
        ctx.add_iterations(uint64_t(chunks));
    }}};

const Register<Params> recvmsg_cancel{{
    .family = multishot,
    .name = "recvmsg-cancel",
    .summary = "multishot recvmsg lays out io_uring_recvmsg_out + payload per datagram; cancel ends it",
    .needs = {needs_op(IORING_OP_RECVMSG), needs_op(IORING_OP_ASYNC_CANCEL), needs_buf_ring(),
              needs_capability("recvmsg_multishot")},
    .variants = kVariants,
    .body = [](Ctx& ctx, const Params& p) {
        Ring ring(ctx, p.setup, p.cq);
        SocketPair sockets = udp_loopback(ctx);
        BufRing bufs(ring, kGroup, 16, 512);
        msghdr msg{};
        msg.msg_namelen = sizeof(sockaddr_in);
        io_uring_sqe* sqe = ring.sqe(kTarget, "multishot recvmsg");
        io_uring_prep_recvmsg_multishot(sqe, sockets.server.get(), &msg, 0);
        prep_buffer_select(sqe);
        ring.submit();

        int datagrams = ctx.pick(8, 64, 256);
        for (int i = 0; i < datagrams; ++i) {
            size_t len = 1 + size_t(i * 37) % 300;
            std::string data = pattern(uint64_t(i) * 1000, len);
            send_all(ctx, sockets.client.get(), data.data(), data.size());
            Cqe cqe = ring.wait();
            if (!ctx.expect_true(cqe.user_data == kTarget && cqe.more() && cqe.has_buffer() && cqe.res > 0,
                                 "each datagram yields a buffer CQE with IORING_CQE_F_MORE: " + cqe.describe()))
                break;
            unsigned bid = cqe.buffer_id();
            ctx.must(Check{bufs.take(bid), "CQE names a buffer the kernel did not hold", cqe});
            // io_uring_prep_recvmsg_multishot(3): the buffer starts with a
            // struct io_uring_recvmsg_out, then name, control and payload.
            auto* out = io_uring_recvmsg_validate(const_cast<uint8_t*>(bufs.data(bid)), cqe.res, &msg);
            if (!ctx.expect_true(out != nullptr, "recvmsg buffer too short for io_uring_recvmsg_out: " + cqe.describe()))
                break;
            size_t payload_len = io_uring_recvmsg_payload_length(out, cqe.res, &msg);
            auto* payload = static_cast<const char*>(io_uring_recvmsg_payload(out, &msg));
            ctx.expect_true(payload_len == len && std::string(payload, payload_len) == data,
                            str("datagram ", i, " payload: ", payload_len, " bytes, sent ", len));
            bufs.provide(bid);
        }
        cancel_target(ring);
        ring.reap_until_final(kTarget);
        check_contract_settled(ctx, ring, {.final_res = {-ECANCELED}});
        ctx.expect(single_completion(ring.trace().all(), kCancel, {0}));
        ctx.add_iterations(uint64_t(datagrams));
    }}};

}  // namespace
