// Multishot requests meeting the rest of io_uring: IORING_OP_MSG_RING as a
// CQE source between rings of different setup modes (io_uring_prep_msg_ring(3),
// io_uring_prep_msg_ring_fd(3)), IOSQE_IO_DRAIN, IOSQE_IO_LINK and
// IOSQE_CQE_SKIP_SUCCESS next to a live multishot request
// (io_uring_sqe_set_flags(3), io_uring_enter(2)), and rings with 32-byte
// CQEs (IORING_SETUP_CQE32, io_uring_setup(2)).
//
// Every multishot request is judged by multishot_contract(): all its CQEs
// but the last carry IORING_CQE_F_MORE, exactly one final CQE lacks it, and
// nothing for the request follows it (io_uring_multishot(7)).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "bufring.h"
#include "multishot_common.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;
const Family& multishot = multishots::family;

constexpr uint64_t kTarget = 1;     // the multishot request
constexpr uint64_t kCancel = 2;     // its cancel or poll remove
constexpr uint64_t kAfter = 3;      // the request drained or linked behind it
constexpr uint64_t kFixedWrite = 4;  // a write through a passed fixed file
constexpr uint64_t kSendBase = 100;   // the sender's MSG_RING requests
constexpr uint64_t kMsgBase = 0x6d736700;  // user_data the messages carry to the target ("msg\0")
constexpr uint16_t kGroup = 1;
constexpr uint64_t kQuietNs = 10'000'000;       // "nothing follows" / "not started": 10 ms without the CQE
constexpr uint64_t kAnswerNs = 2'000'000'000;   // bound on a CQE that is due now (generous for TCG guests)

// --- shared pieces ---

// A ring in `setup` mode that the probe accepted: the variant's second
// ring (target, consumer) is a requirement like the first.
template <typename P>
Need<P> other_ring_accepted(Setup P::*member) {
    return Need<P>([member](const Probe& probe, const P& p) { return probe.setup_refused(setup_flags(p.*member)); });
}

const std::initializer_list<std::pair<Setup, std::string>> kRingModes = {
    {Setup::none, "none"}, {Setup::defer_taskrun, "defer_taskrun"}, {Setup::sqpoll, "sqpoll"}};

// The next CQE within `bound_ns`, or a fail naming what was awaited.
Cqe must_wait(Ctx& ctx, Ring& ring, uint64_t bound_ns, const std::string& awaited) {
    if (auto cqe = ring.wait_for(bound_ns)) return *cqe;
    ctx.must(Check::fail(str("no CQE within ", bound_ns / 1'000'000, " ms while waiting for ", awaited)));
    __builtin_unreachable();
}

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

void prep_buffer_select(io_uring_sqe* sqe) {
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kGroup;
}

void arm_recv_multishot(Ring& ring, int fd, uint8_t extra_flags = 0) {
    io_uring_sqe* sqe = ring.sqe(kTarget, "multishot recv");
    io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
    prep_buffer_select(sqe);
    sqe->flags |= extra_flags;
}

// Sends `len` pattern bytes and reaps until the multishot receive delivered
// them all (wakeups coalesce: count bytes, not CQEs), recycling buffers.
void send_and_receive(Ctx& ctx, Ring& ring, BufRing& bufs, int sender, uint64_t* sent, uint64_t* received, size_t len) {
    std::string data = pattern(*sent, len);
    send_all(ctx, sender, data.data(), data.size());
    *sent += len;
    while (*received < *sent) {
        Cqe cqe = must_wait(ctx, ring, kAnswerNs, "the multishot recv to deliver sent bytes");
        if (cqe.user_data != kTarget) continue;
        if (!cqe.more() || cqe.res <= 0) ctx.must(Check::fail("the multishot recv ended while the peer was connected", cqe));
        unsigned bid = cqe.buffer_id();
        ctx.must(take_stream_buffer(bufs, cqe, received));
        bufs.provide(bid);
    }
}

// One byte into the pipe, then the multishot poll's POLLIN CQE, then the byte back.
void poll_round(Ctx& ctx, Ring& ring, const Pipe& pipe) {
    char byte = 'x';
    send_all(ctx, pipe.write.get(), &byte, 1);
    for (;;) {
        Cqe cqe = must_wait(ctx, ring, kAnswerNs, "the multishot poll to report POLLIN");
        if (cqe.user_data != kTarget) continue;
        ctx.must(Check{cqe.more() && (cqe.res & POLLIN), "readiness yields a poll CQE with POLLIN and IORING_CQE_F_MORE", cqe});
        break;
    }
    if (read(pipe.read.get(), &byte, 1) != 1) ctx.error("read(pipe) after POLLIN: " + errno_name(errno));
}

// --- msg_ring ---

// io_uring_prep_msg_ring_fd(3) (liburing 2.4+): IORING_MSG_SEND_FD in addr,
// the sender's fixed-file slot in addr3, the target slot in file_index.
void prep_msg_ring_fd(io_uring_sqe* sqe, int target_ring_fd, unsigned source_slot, unsigned target_slot, uint64_t data) {
    io_uring_prep_rw(IORING_OP_MSG_RING, sqe, target_ring_fd, reinterpret_cast<void*>(uintptr_t(IORING_MSG_SEND_FD)), 0, data);
    sqe->addr3 = source_slot;
    __io_uring_set_target_fixed_file(sqe, target_slot);
    sqe->msg_ring_flags = 0;
}

// IORING_MSG_SEND_FD arrived in 6.0, after MSG_RING itself (5.18); a kernel
// without it answers -EINVAL for the unknown command in addr.
const CapabilityProbe msg_ring_fd_probe{"msg_ring_fd", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_MSG_RING)) return *missing;
    const char* tried = "IORING_OP_MSG_RING with IORING_MSG_SEND_FD of a registered pipe into slot 0 of another ring";
    io_uring target{};
    if (int ret = io_uring_queue_init(4, &target, 0); ret < 0) return untried(tried, "io_uring_queue_init: " + errno_name(ret));
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        io_uring_queue_exit(&target);
        return untried(tried, "pipe2: " + errno_name(errno));
    }
    CapabilityEvidence evidence;
    if (int ret = io_uring_register_files_sparse(&target, 1); ret < 0) {
        evidence = absent(tried, "sparse file table refused: " + errno_name(ret));
    } else {
        evidence = answered(tried, probe_one_sqe([&](io_uring* ring, io_uring_sqe* sqe) {
                                io_uring_register_files(ring, &fds[1], 1);
                                prep_msg_ring_fd(sqe, target.ring_fd, 0, 0, 0x5eed);
                            }));
    }
    close(fds[0]);
    close(fds[1]);
    io_uring_queue_exit(&target);
    return evidence;
}};

struct MsgParams {
    Setup setup;   // the sender
    Setup target;  // the ring the messages land on
};
const auto kSenderTarget = grid(setups(&MsgParams::setup, {Setup::none, Setup::defer_taskrun, Setup::sqpoll}),
                                axis("target", &MsgParams::target, kRingModes));
// Passing a file runs the same sender-to-target paths as data, so a sender
// that issues from its own thread (SQPOLL) or not (none) covers it.
const auto kFdSenderTarget = grid(setups(&MsgParams::setup, {Setup::none, Setup::sqpoll}),
                                  axis("target", &MsgParams::target, kRingModes));

// "any 32-bit value": one with the top bit set reads back as a negative res.
uint32_t message_len(unsigned i) { return i % 4 == 3 ? 0xfffffff0u - i : 1000u * i + 7u; }

const Register<MsgParams> msg_ring_data{{
    .family = multishot,
    .name = "msg-ring-data-one-cqe",
    .summary = "MSG_RING data messages post exactly one CQE each on the target (res = len, user_data = data); sender res 0",
    .needs = {needs_op(IORING_OP_MSG_RING), other_ring_accepted(&MsgParams::target)},
    .variants = kSenderTarget,
    .body = [](Ctx& ctx, const MsgParams& p) {
        Ring sender(ctx, p.setup, 64);
        Ring target(ctx, p.target, 64);
        unsigned messages = ctx.pick(8u, 32u, 128u);
        for (unsigned i = 0; i < messages; ++i)
            io_uring_prep_msg_ring(sender.sqe(kSendBase + i, "msg_ring data"), target.get()->ring_fd, message_len(i), kMsgBase + i, 0);
        sender.submit();
        sender.reap(messages);
        // DEFER_TASKRUN work runs only "until an io_uring_enter(2) call with
        // the IORING_ENTER_GETEVENTS flag" (io_uring_setup(2)): the target's waits are those calls.
        target.reap(messages);
        sender.settle(kQuietNs);
        target.settle(kQuietNs);

        std::set<int> sender_res;
        for (unsigned i = 0; i < messages; ++i) {
            // io_uring_enter(2) IORING_OP_MSG_RING: "On the target ring, a CQE
            // will be posted with the res field matching the len set, and a
            // user_data field matching the off value being passed in."
            if (!ctx.expect(single_completion(target.trace().all(), kMsgBase + i, {int32_t(message_len(i))}))) break;
            // io_uring_prep_msg_ring(3): errors "are reported in the CQE res
            // field"; the page gives no success value, so any res >= 0 passes
            // and the values seen are a metric.
            auto own = sender.trace().for_request(kSendBase + i);
            if (!ctx.expect(single_completion(sender.trace().all(), kSendBase + i))) break;
            ctx.expect(Check{own.at(0).res >= 0, "the sender's MSG_RING CQE reports an error", own.at(0)});
            sender_res.insert(own.at(0).res);
        }
        ctx.expect_eq(target.trace().all().size(), size_t(messages), "CQEs on the target ring vs messages sent");
        std::string distinct;  // metrics are scalars (reports/stream.schema.json): the values seen, comma-separated
        for (int res : sender_res) distinct += (distinct.empty() ? "" : ",") + std::to_string(res);
        ctx.metric("sender_res", distinct);
        ctx.add_iterations(messages);
    }}};

const Register<MsgParams> msg_ring_fd{{
    .family = multishot,
    .name = "msg-ring-fd-slot-holds-file",
    .summary = "MSG_RING_FD puts the sender's fixed file into the target's slot: the target writes through it; self-target -EINVAL",
    .needs = {needs_op(IORING_OP_MSG_RING), needs_op(IORING_OP_WRITE), needs_capability("msg_ring_fd"),
              other_ring_accepted(&MsgParams::target)},
    .variants = kFdSenderTarget,
    .body = [](Ctx& ctx, const MsgParams& p) {
        Ring sender(ctx, p.setup, 64);
        Ring target(ctx, p.target, 64);
        Pipe pipe = make_pipe(ctx);
        int write_end = pipe.write.get();
        if (int ret = io_uring_register_files(sender.get(), &write_end, 1); ret < 0)
            ctx.error("io_uring_register_files on the sender: " + errno_name(ret));
        constexpr unsigned kSlot = 2;
        if (int ret = io_uring_register_files_sparse(target.get(), 4); ret < 0)
            ctx.error("io_uring_register_files_sparse on the target: " + errno_name(ret));

        prep_msg_ring_fd(sender.sqe(kSendBase, "msg_ring fd"), target.get()->ring_fd, 0, kSlot, kMsgBase);
        // io_uring_prep_msg_ring_fd(3) ERRORS: "-EINVAL Target ring is identical to the source ring."
        prep_msg_ring_fd(sender.sqe(kSendBase + 1, "msg_ring fd to itself"), sender.get()->ring_fd, 0, 0, kMsgBase + 1);
        sender.submit();
        sender.reap(2);
        Cqe arrived = must_wait(ctx, target, kAnswerNs, "the target's CQE for the passed file");
        // Only the passed slot and the sender's table refer to the pipe now.
        pipe.write.reset();

        std::string data = pattern(0, 64);
        io_uring_sqe* sqe = target.sqe(kFixedWrite, "write through the passed fixed file");
        io_uring_prep_write(sqe, int(kSlot), data.data(), unsigned(data.size()), 0);
        sqe->flags |= IOSQE_FIXED_FILE;
        target.submit();
        target.reap_until_final(kFixedWrite);
        sender.settle(kQuietNs);
        target.settle(kQuietNs);

        // io_uring_prep_msg_ring_fd(3): the file goes "into index target_fd
        // and passing data as the user data in the target CQE".
        ctx.expect(Check{arrived.user_data == kMsgBase && arrived.res >= 0,
                         "the target's CQE carries the message's data as user_data and no error", arrived});
        ctx.expect(single_completion(target.trace().all(), kMsgBase));
        ctx.expect(single_completion(sender.trace().all(), kSendBase));
        ctx.expect(Check{sender.trace().for_request(kSendBase).at(0).res >= 0, "sending the fixed file failed",
                         sender.trace().for_request(kSendBase).at(0)});
        ctx.expect(single_completion(sender.trace().all(), kSendBase + 1, {-EINVAL}));
        // io_uring_sqe_set_flags(3) IOSQE_FIXED_FILE: the fd "refers to the
        // index of a previously registered file or direct file descriptor".
        ctx.expect(single_completion(target.trace().all(), kFixedWrite, {int(data.size())}));
        std::string got(data.size(), '\0');
        ssize_t n = read(pipe.read.get(), got.data(), got.size());
        ctx.expect_true(n == ssize_t(data.size()) && got == data,
                        str("the pipe's read end got ", n, " bytes of the ", data.size(), " written through the passed slot"));
        ctx.metric("target_res", arrived.res);
    }}};

struct ConsumerParams {
    Setup setup;   // the target ring, where the multishot poll runs
    Setup sender;
};

const Register<ConsumerParams> msg_ring_consumer{{
    .family = multishot,
    .name = "msg-ring-beside-multishot-poll",
    .summary = "messages landing on a ring with a live multishot poll: one CQE each, the poll keeps F_MORE until removed",
    .needs = {needs_op(IORING_OP_MSG_RING), needs_op(IORING_OP_POLL_ADD), needs_op(IORING_OP_POLL_REMOVE),
              other_ring_accepted(&ConsumerParams::sender)},
    .variants = grid(setups(&ConsumerParams::setup, {Setup::none, Setup::defer_taskrun, Setup::sqpoll}),
                     axis("sender", &ConsumerParams::sender, {{Setup::none, "none"}, {Setup::sqpoll, "sqpoll"}})),
    .body = [](Ctx& ctx, const ConsumerParams& p) {
        Ring target(ctx, p.setup, 64);
        Ring sender(ctx, p.sender, 64);
        Pipe pipe = make_pipe(ctx);
        io_uring_prep_poll_multishot(target.sqe(kTarget, "multishot poll"), pipe.read.get(), POLLIN);
        target.submit();

        unsigned rounds = ctx.pick(8u, 64u, 256u);
        for (unsigned i = 0; i < rounds; ++i) {
            io_uring_prep_msg_ring(sender.sqe(kSendBase + i, "msg_ring data"), target.get()->ring_fd, message_len(i), kMsgBase + i, 0);
            sender.submit();
            poll_round(ctx, target, pipe);
        }
        sender.reap(rounds);
        io_uring_prep_poll_remove(target.sqe(kCancel, "poll remove"), kTarget);
        target.submit();
        target.reap_until_final(kTarget);
        auto messages_in = [&] {
            return std::count_if(target.trace().all().begin(), target.trace().all().end(),
                                 [](const Cqe& c) { return c.user_data >= kMsgBase && c.user_data < kMsgBase + 0x10000; });
        };
        for (uint64_t until = now_ns() + kAnswerNs; messages_in() < rounds && now_ns() < until;) target.wait_for(10'000'000);
        target.settle(kQuietNs);

        const std::vector<Cqe>& trace = target.trace().all();
        // io_uring_multishot(7) for the poll; io_uring_enter(2) POLL_REMOVE
        // "If found, the res field ... will contain 0".
        ctx.expect(multishot_contract(trace, kTarget, {.final_res = {-ECANCELED}}));
        ctx.expect(single_completion(trace, kCancel, {0}));
        // io_uring_enter(2) IORING_OP_MSG_RING: one CQE per message, res = len, user_data = off.
        for (unsigned i = 0; i < rounds; ++i)
            if (!ctx.expect(single_completion(trace, kMsgBase + i, {int32_t(message_len(i))}))) break;
        ctx.add_iterations(rounds);
    }}};

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
