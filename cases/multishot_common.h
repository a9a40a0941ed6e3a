// Shared by the multishot family's files (cases/multishot*.cpp): the family
// itself, so every file's ids share the "multishot/" prefix, and the helpers
// more than one of them needs (the user_data of the request under test, its
// buffer group, bounded waits, the contract check once the ring is quiet).
#pragma once

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>

#include "bufring.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace uc::multishots {

inline const Family family{"multishot"};

inline constexpr uint64_t kTarget = 1;  // user_data of the multishot (or waitid) request under test
inline constexpr uint64_t kCancel = 2;  // its cancel or poll remove
inline constexpr uint16_t kGroup = 1;   // the provided-buffer group it selects from
inline constexpr uint64_t kQuietNs = 10'000'000;      // "nothing follows" / "not started": 10 ms of silence
inline constexpr uint64_t kAnswerNs = 2'000'000'000;  // bound on a CQE that is due now (generous for TCG guests)

// Ring modes a second ring (MSG_RING target, consumer, sender) runs in.
inline const std::initializer_list<std::pair<Setup, std::string>> kRingModes = {
    {Setup::none, "none"}, {Setup::defer_taskrun, "defer_taskrun"}, {Setup::sqpoll, "sqpoll"}};

// A ring in `setup` mode that the probe accepted: the variant's second
// ring (target, consumer) is a requirement like the first.
template <typename P>
Need<P> other_ring_accepted(Setup P::*member) {
    return Need<P>([member](const Probe& probe, const P& p) { return probe.setup_refused(setup_flags(p.*member)); });
}

inline void prep_buffer_select(io_uring_sqe* sqe) {
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kGroup;
}

// Queues a multishot recv of `fd` as kTarget, selecting from kGroup.
inline void arm_recv_multishot(Ring& ring, int fd, uint8_t extra_flags = 0) {
    io_uring_sqe* sqe = ring.sqe(kTarget, "multishot recv");
    io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
    prep_buffer_select(sqe);
    sqe->flags |= extra_flags;
}

// The next CQE within `bound_ns`, or a fail naming what was awaited.
inline Cqe must_wait(Ctx& ctx, Ring& ring, uint64_t bound_ns, const std::string& awaited) {
    if (auto cqe = ring.wait_for(bound_ns)) return *cqe;
    ctx.must(Check::fail(str("no CQE within ", bound_ns / 1'000'000, " ms while waiting for ", awaited)));
    __builtin_unreachable();
}

// The next CQE of `user_data` within `bound_ns`, other requests' CQEs recorded on the way.
inline std::optional<Cqe> wait_cqe_of(Ring& ring, uint64_t user_data, uint64_t bound_ns) {
    uint64_t until = now_ns() + bound_ns;
    for (uint64_t now = now_ns(); now < until; now = now_ns())
        if (auto cqe = ring.wait_for(until - now); cqe && cqe->user_data == user_data) return cqe;
    return std::nullopt;
}

// kTarget's CQEs obey io_uring_multishot(7) once kQuietNs passed without more.
inline void check_contract_settled(Ctx& ctx, Ring& ring, const MultishotExpect& expect) {
    ring.settle(kQuietNs);
    ctx.expect(multishot_contract(ring.trace().all(), kTarget, expect));
}

// Cancels kTarget and checks it ended with -ECANCELED.
inline void cancel_and_settle(Ctx& ctx, Ring& ring) {
    io_uring_prep_cancel64(ring.sqe(kCancel, "async cancel"), kTarget, 0);
    ring.submit();
    ring.reap_until_final(kTarget);
    check_contract_settled(ctx, ring, {.final_res = {-ECANCELED}});
}

// Sends `len` pattern bytes and reaps until the multishot receive kTarget
// delivered them all (wakeups coalesce: count bytes, not CQEs), recycling
// buffers. Other requests' CQEs are recorded on the way.
inline void send_and_receive(Ctx& ctx, Ring& ring, BufRing& bufs, int sender, uint64_t* sent, uint64_t* received,
                             size_t len) {
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

// One byte into the pipe, then the multishot poll kTarget's POLLIN CQE, then the byte back.
inline void poll_round(Ctx& ctx, Ring& ring, const Pipe& pipe) {
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

}  // namespace uc::multishots
