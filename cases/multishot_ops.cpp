// Multishot operations beyond the termination triggers of multishot.cpp:
// the constraints io_uring_prep_recv(3) and io_uring_prep_recvmsg(3) put on
// the multishot forms, the io_uring_recvmsg_out(3) layout byte for byte, and
// multishot read of pipes and eventfds (io_uring_prep_read_multishot(3)).
// waitid and multishot accept direct are in multishot_accept_waitid.cpp.
//
// Every multishot request is judged by multishot_contract(): "The final CQE
// for a multishot operation will not have IORING_CQE_F_MORE set", and
// nothing for the request follows it (io_uring_multishot(7)).
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "bufring.h"
#include "multishot_common.h"
#include "net.h"
#include "probe_helpers.h"
#include "recvmsg_checks.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;
using namespace uc::multishots;
const Family& multishot = multishots::family;

// --- capability probes ---

// io_uring_prep_recv(3): "Length can either be set to 0 ... or it can be set
// to a positive value" is newer than multishot recv itself (6.0 answered
// -EINVAL to a non-zero len), so the cap is probed: multishot recv with len
// 16 on an empty socket; -EINVAL is a refusal, anything else takes it.
const CapabilityProbe recv_multishot_len_probe{"recv_multishot_len_cap", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_RECV)) return *missing;
    std::string tried = "IORING_OP_RECV with IORING_RECV_MULTISHOT and len 16 from a buffer ring on an empty AF_UNIX "
                        "datagram socket";
    if (!probe.buf_ring) return absent(tried, "no buffer rings");
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds) < 0) return untried(tried, "socketpair: " + errno_name(errno));
    ProbeBufRing bufs(4, 64);
    SqeAnswer answer = probe_one_sqe([&](io_uring* ring, io_uring_sqe* sqe) {
        bufs.register_on(ring, kGroup);
        io_uring_prep_recv_multishot(sqe, fds[1], nullptr, 16, 0);
        prep_buffer_select(sqe);
    });
    close(fds[0]);
    close(fds[1]);
    return answered(tried, answer);
}};

// ===== 1. recv / recvmsg multishot constraints =====

enum class RecvOp { recv, recvmsg };
enum class Misuse { waitall, no_buffer_select };
struct MisuseParams {
    Setup setup;
    RecvOp op;
    Misuse misuse;
};

const Register<MisuseParams> recv_misuse_refused{{
    .family = multishot,
    .name = "recv-misuse-refused",
    .summary = "multishot recv/recvmsg with MSG_WAITALL or without IOSQE_BUFFER_SELECT ends at once with an error CQE",
    .needs = {needs_buf_ring(), when(&MisuseParams::op, RecvOp::recv, needs_capability("recv_multishot")),
              when(&MisuseParams::op, RecvOp::recvmsg, needs_capability("recvmsg_multishot"))},
    .variants = grid(setups(&MisuseParams::setup, all_setups()),
                     axis("op", &MisuseParams::op, {{RecvOp::recv, "recv"}, {RecvOp::recvmsg, "recvmsg"}}),
                     axis("misuse", &MisuseParams::misuse,
                          {{Misuse::waitall, "waitall"}, {Misuse::no_buffer_select, "no_buffer_select"}})),
    .body = [](Ctx& ctx, const MisuseParams& p) {
        Ring ring(ctx, p.setup, 8);
        SocketPair sockets = udp_loopback(ctx);
        BufRing bufs(ring, kGroup, 4, 256);  // the group exists: only the misuse is wrong
        // A datagram waits already, so a kernel that took the request would complete it at once.
        send_all(ctx, sockets.client.get(), "queued", 6);

        int flags = p.misuse == Misuse::waitall ? MSG_WAITALL : 0;
        msghdr msg{};
        msg.msg_namelen = sizeof(sockaddr_in);
        io_uring_sqe* sqe = ring.sqe(kTarget, "misused multishot receive");
        if (p.op == RecvOp::recv)
            io_uring_prep_recv_multishot(sqe, sockets.server.get(), nullptr, 0, flags);
        else
            io_uring_prep_recvmsg_multishot(sqe, sockets.server.get(), &msg, unsigned(flags));
        if (p.misuse != Misuse::no_buffer_select) prep_buffer_select(sqe);
        ring.submit();

        std::optional<Cqe> first = wait_cqe_of(ring, kTarget, kAnswerNs);
        if (!first) {
            io_uring_prep_cancel64(ring.sqe(kCancel, "cancel of the misused receive"), kTarget, 0);
            ring.submit();
            ring.settle(kQuietNs);
            ctx.must(Check::fail("the kernel took the misused multishot receive and left it pending"));
        }
        ring.settle(kQuietNs);
        // io_uring_prep_recv(3) / io_uring_prep_recvmsg(3): the multishot
        // version "requires the IOSQE_BUFFER_SELECT flag to be set and no
        // MSG_WAITALL flag to be set". No page names the error; the kernel
        // answers -EINVAL from io_recvmsg_prep() (io_uring/net.c), recorded
        // as a metric, while the check asks only for a refusal: one CQE, an
        // error, no IORING_CQE_F_MORE.
        ctx.metric("refused_with", res_text(first->res));
        ctx.expect(single_completion(ring.trace().all(), kTarget));
        ctx.expect_true(first->res < 0, "a multishot receive breaking its documented constraint must fail, got " +
                                            first->describe());
    }}};

// io_uring_prep_recv(3): with a positive len "each trigger invocation of the
// receive multishot will transfer at most length bytes".
const Register<SetupOnly> recv_len_cap{{
    .family = multishot,
    .name = "recv-len-caps-each-cqe",
    .summary = "multishot recv with len 100: every CQE carries at most 100 bytes, all bytes arrive in order",
    .needs = {needs_buf_ring(), needs_capability("recv_multishot"), needs_capability("recv_multishot_len_cap")},
    .variants = grid(setups(&SetupOnly::setup, all_setups())),
    .body = [](Ctx& ctx, const SetupOnly& p) {
        constexpr unsigned kCap = 100;
        Ring ring(ctx, p.setup, 64);
        SocketPair sockets = tcp_loopback(ctx);
        BufRing bufs(ring, kGroup, 32, 256);
        io_uring_sqe* sqe = ring.sqe(kTarget, "multishot recv with len cap");
        io_uring_prep_recv_multishot(sqe, sockets.server.get(), nullptr, kCap, 0);
        prep_buffer_select(sqe);
        ring.submit();

        uint64_t sent = 0, received = 0, data_cqes = 0;
        int bursts = ctx.pick(4, 16, 64);
        for (int i = 0; i < bursts; ++i) {
            std::string data = pattern(sent, 1000);  // ten caps' worth in one write
            send_all(ctx, sockets.client.get(), data.data(), data.size());
            sent += data.size();
            while (received < sent) {
                Cqe cqe = ring.wait();
                if (cqe.user_data != kTarget) continue;
                if (!cqe.more() || cqe.res <= 0) ctx.must(Check::fail("multishot recv ended while the peer was connected", cqe));
                if (!ctx.expect_true(unsigned(cqe.res) <= kCap, str("CQE res exceeds the len cap of ", kCap, ": ", cqe.describe())))
                    break;
                unsigned bid = cqe.buffer_id();
                ctx.must(take_stream_buffer(bufs, cqe, &received));
                bufs.provide(bid);
                ++data_cqes;
            }
        }
        shutdown(sockets.client.get(), SHUT_WR);
        ring.reap_until_final(kTarget);
        check_contract_settled(ctx, ring, {.final_res = {0}});
        ctx.expect_eq(received, sent, "bytes received vs bytes sent");
        ctx.metric("data_cqes", data_cqes);
        ctx.add_iterations(uint64_t(bursts));
    }}};

// ===== 2. recvmsg multishot header, byte for byte =====

// Which part of the buffer is too small, if any.
enum class Shape { fits, payload_trunc, name_trunc, control_trunc };
struct LayoutParams {
    Setup setup;
    Shape shape;
};

RecvmsgLayout layout_for(Shape shape) {
    switch (shape) {
        case Shape::fits: return {sizeof(sockaddr_in), 64, 512};
        case Shape::payload_trunc: return {sizeof(sockaddr_in), 64, 256};  // 160 payload bytes of room
        case Shape::name_trunc: return {4, 64, 512};
        case Shape::control_trunc: return {sizeof(sockaddr_in), 16, 512};  // < CMSG_LEN(sizeof(in_pktinfo))
    }
    return {};
}

std::string bytes_of(const void* p, size_t n) { return std::string(static_cast<const char*>(p), n); }

const Register<LayoutParams> recvmsg_layout{{
    .family = multishot,
    .name = "recvmsg-out-layout",
    .summary = "multishot recvmsg over UDP: io_uring_recvmsg_out, sender name, IP_PKTINFO cmsg and payload match "
               "what was sent, MSG_TRUNC/MSG_CTRUNC exactly when an area is too small",
    .needs = {needs_op(IORING_OP_ASYNC_CANCEL), needs_buf_ring(), needs_capability("recvmsg_multishot")},
    .variants = grid(setups(&LayoutParams::setup, all_setups()),
                     axis("shape", &LayoutParams::shape,
                          {{Shape::fits, "fits"},
                           {Shape::payload_trunc, "payload_trunc"},
                           {Shape::name_trunc, "name_trunc"},
                           {Shape::control_trunc, "control_trunc"}})),
    .body = [](Ctx& ctx, const LayoutParams& p) {
        RecvmsgLayout layout = layout_for(p.shape);
        Ring ring(ctx, p.setup, 16);
        SocketPair sockets = udp_loopback(ctx);
        int one = 1;
        if (setsockopt(sockets.server.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0)
            ctx.error("setsockopt(IP_PKTINFO): " + errno_name(errno));
        SentDatagram sent;
        sockaddr_in from{};
        socklen_t from_len = sizeof(from);
        if (getsockname(sockets.client.get(), reinterpret_cast<sockaddr*>(&from), &from_len) < 0)
            ctx.error("getsockname(): " + errno_name(errno));
        sent.name = bytes_of(&from, from_len);
        // ip(7) IP_PKTINFO: ipi_ifindex "is the unique index of the interface
        // the packet was received on", ipi_addr "the destination address in
        // the packet header", ipi_spec_dst "the local address of the packet":
        // 127.0.0.1 on lo for a loopback datagram.
        in_pktinfo info{};
        info.ipi_ifindex = int(if_nametoindex("lo"));
        info.ipi_spec_dst.s_addr = htonl(INADDR_LOOPBACK);
        info.ipi_addr.s_addr = htonl(INADDR_LOOPBACK);
        sent.cmsg = ExpectedCmsg{IPPROTO_IP, IP_PKTINFO, bytes_of(&info, sizeof(info))};

        BufRing bufs(ring, kGroup, 8, layout.buf_len);
        msghdr msg{};
        msg.msg_namelen = layout.namelen;
        msg.msg_controllen = layout.controllen;
        io_uring_sqe* sqe = ring.sqe(kTarget, "multishot recvmsg");
        io_uring_prep_recvmsg_multishot(sqe, sockets.server.get(), &msg, 0);
        prep_buffer_select(sqe);
        ring.submit();

        int datagrams = ctx.pick(12, 64, 256), truncated = 0;
        for (int i = 0; i < datagrams; ++i) {
            sent.payload = pattern(uint64_t(i) * 977, 1 + size_t(i * 37) % 300);
            send_all(ctx, sockets.client.get(), sent.payload.data(), sent.payload.size());
            Cqe cqe = ring.wait();
            if (!ctx.expect_true(cqe.user_data == kTarget && cqe.more() && cqe.has_buffer(),
                                 "each datagram yields a buffer CQE with IORING_CQE_F_MORE: " + cqe.describe()))
                break;
            unsigned bid = cqe.buffer_id();
            ctx.must(Check{bufs.take(bid), "CQE names a buffer the kernel did not hold", cqe});
            // io_uring_recvmsg_out(3), recvmsg(2), ip(7): see recvmsg_out_matches().
            if (!ctx.expect(recvmsg_out_matches(cqe, bufs.data(bid), layout, sent))) break;
            truncated += sent.payload.size() > layout.buf_len - 16 - layout.namelen - layout.controllen;
            bufs.provide(bid);
        }
        ctx.metric("datagrams_truncated", truncated);
        cancel_and_settle(ctx, ring);
        ctx.add_iterations(uint64_t(datagrams));
    }}};

// ===== 3. read multishot on a pipe and an eventfd =====

enum class WritesAt { before_arm, after_arm };
struct PipeParams {
    Setup setup;
    WritesAt writes;
};

const Register<PipeParams> read_pipe_drain{{
    .family = multishot,
    .name = "read-pipe-drains-before-eof",
    .summary = "multishot read of a pipe whose writer wrote then closed delivers every byte in order, then res 0 "
               "without F_MORE",
    .needs = {needs_op(compat::op_read_multishot), needs_buf_ring()},
    .variants = grid(setups(&PipeParams::setup, all_setups()),
                     axis("writes", &PipeParams::writes,
                          {{WritesAt::before_arm, "before_arm"}, {WritesAt::after_arm, "after_arm"}})),
    .body = [](Ctx& ctx, const PipeParams& p) {
        Ring ring(ctx, p.setup, 128);
        Pipe pipe = make_pipe(ctx);
        // Room for every chunk even if each write were read on its own, twice over: no recycling needed.
        BufRing bufs(ring, kGroup, 64, 256);
        constexpr size_t kChunk = 200, kChunks = 12;
        auto write_all_and_close = [&] {
            for (size_t i = 0; i < kChunks; ++i) {
                std::string data = pattern(i * kChunk, kChunk);
                send_all(ctx, pipe.write.get(), data.data(), data.size());
            }
            pipe.write.reset();
        };
        if (p.writes == WritesAt::before_arm) write_all_and_close();
        // io_uring_prep_read_multishot(3): "nbytes must be set to zero", offset 0 on a pipe.
        io_uring_sqe* sqe = ring.sqe(kTarget, "multishot read");
        io_uring_prep_rw(compat::op_read_multishot, sqe, pipe.read.get(), nullptr, 0, 0);
        prep_buffer_select(sqe);
        ring.submit();
        if (p.writes == WritesAt::after_arm) write_all_and_close();

        ring.reap_until_final(kTarget);
        check_contract_settled(ctx, ring, {.final_res = {0}});
        // read(2): 0 is end of file, which comes only once the pipe is empty:
        // every byte written precedes it, in order (counted, not the CQEs).
        uint64_t received = 0;
        for (const Cqe& cqe : ring.trace().for_request(kTarget))
            if (cqe.res > 0 && !ctx.expect(take_stream_buffer(bufs, cqe, &received))) break;
        ctx.expect_eq(received, uint64_t(kChunk * kChunks), "bytes read before EOF vs bytes written");
    }}};

const Register<SetupOnly> read_eventfd{{
    .family = multishot,
    .name = "read-eventfd-counter",
    .summary = "multishot read of an eventfd: each CQE is one 8-byte counter read, the values add up to what was "
               "written; cancel ends it",
    .needs = {needs_op(compat::op_read_multishot), needs_op(IORING_OP_ASYNC_CANCEL), needs_buf_ring()},
    .variants = grid(setups(&SetupOnly::setup, all_setups())),
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup, 64);
        Fd efd(eventfd(0, EFD_CLOEXEC));
        if (!efd) ctx.error("eventfd(): " + errno_name(errno));
        BufRing bufs(ring, kGroup, 16, 16);
        io_uring_sqe* sqe = ring.sqe(kTarget, "multishot read of an eventfd");
        io_uring_prep_rw(compat::op_read_multishot, sqe, efd.get(), nullptr, 0, 0);
        prep_buffer_select(sqe);
        ring.submit();

        uint64_t written = 0, read_sum = 0;
        int rounds = ctx.pick(16, 128, 1024);
        for (int r = 0; r < rounds; ++r) {
            // Several writes per round: the wakeups may coalesce, the counter adds them.
            for (int w = 0; w <= r % 3; ++w) {
                uint64_t value = uint64_t(r * 7 + w + 1);
                if (write(efd.get(), &value, sizeof(value)) != sizeof(value)) ctx.error("write(eventfd): " + errno_name(errno));
                written += value;
            }
            while (read_sum < written) {
                Cqe cqe = ring.wait();
                if (cqe.user_data != kTarget) continue;
                // eventfd(2): "each successful read(2) returns an 8-byte integer".
                if (!cqe.more() || cqe.res != 8 || !cqe.has_buffer())
                    ctx.must(Check::fail("a counter read must be an 8-byte buffer CQE with IORING_CQE_F_MORE", cqe));
                unsigned bid = cqe.buffer_id();
                ctx.must(Check{bufs.take(bid), "CQE names a buffer the kernel did not hold", cqe});
                uint64_t value = 0;
                std::memcpy(&value, bufs.data(bid), sizeof(value));
                // eventfd(2): a read "returns 8 bytes containing that value,
                // and the counter's value is reset to zero": never 0, never
                // more than is still unread.
                if (value == 0 || value > written - read_sum)
                    ctx.must(Check::fail(str("counter read ", value, " with ", written - read_sum, " written and unread"), cqe));
                read_sum += value;
                bufs.provide(bid);
            }
        }
        ctx.expect_eq(read_sum, written, "counter values read vs values written");
        cancel_and_settle(ctx, ring);
        ctx.add_iterations(uint64_t(rounds));
    }}};

}  // namespace
