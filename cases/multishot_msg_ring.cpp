// IORING_OP_MSG_RING as a CQE source between rings of different setup modes:
// data messages (io_uring_prep_msg_ring(3)), fixed files passed into a slot
// (io_uring_prep_msg_ring_fd(3)), and messages landing on a ring beside a
// live multishot request.
//
// Every multishot request is judged by multishot_contract(): all its CQEs
// but the last carry IORING_CQE_F_MORE, exactly one final CQE lacks it, and
// nothing for the request follows it (io_uring_multishot(7)).
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "multishot_common.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;
using namespace uc::multishots;
const Family& multishot = multishots::family;

constexpr uint64_t kFixedWrite = 4;        // a write through a passed fixed file
constexpr uint64_t kSendBase = 100;        // the sender's MSG_RING requests
constexpr uint64_t kMsgBase = 0x6d736700;  // user_data the messages carry to the target ("msg\0")

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

}  // namespace
