// Zero-copy sends (IORING_OP_SEND_ZC, IORING_OP_SENDMSG_ZC) and sends from
// provided buffers (IOSQE_BUFFER_SELECT, IORING_RECVSEND_BUNDLE), after
// io_uring_enter(2), io_uring_prep_send_zc(3), io_uring_prep_send(3) and the
// networking playbook (seed 003, §6 and §8).
//
// Every zero-copy scenario checks the two-CQE lifecycle with zc_notif_order():
// the result first; exactly one IORING_CQE_F_NOTIF CQE with the same user_data
// if and only if the result carried IORING_CQE_F_MORE; nothing after it.
// Senders write a pattern() stream, so receivers check content, order and
// loss byte by byte (counting bytes, not CQEs) without keeping copies.
#include <sys/socket.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "net.h"
#include "ring.h"
#include "scenario.h"
#include "sendzc_common.h"
#include "zc_checks.h"

namespace {

using namespace uc;
using namespace sendzc_family;

// Payload sizes. TCP: 1 B (smallest), 4 KiB (one page), 64 KiB (many pages,
// more than one loopback segment), 1 MiB (far past the socket buffers: the
// send completes only while the receiver drains). UDP: one send is one
// datagram, so at most 65,507 bytes over IPv4 (65,535 - 20 IP - 8 UDP header;
// one byte more is -EMSGSIZE, which failed-send-notif-iff-more uses): 1 B,
// 4 KiB, and that maximum.
constexpr size_t kMaxUdpPayload = 65507;
// TCP payloads up to this size fit in the loopback socket buffers, so they can
// wait unread until after the buffer was overwritten; bigger ones are drained
// while in flight.
constexpr size_t kWaitsInSocket = 16 * 1024;

enum class ZcOp { send_zc, sendmsg_zc };
enum class Transport { tcp, udp };

template <typename P>
auto op_axis() {
    return axis("op", &P::op, {{ZcOp::send_zc, "send_zc"}, {ZcOp::sendmsg_zc, "sendmsg_zc"}});
}

struct PayloadParams {
    Setup setup;
    ZcOp op;
    Transport transport;
    size_t bytes;
    bool fixed;  // from a registered buffer (IORING_RECVSEND_FIXED_BUF)
};

std::vector<Variant<PayloadParams>> payload_variants(std::initializer_list<Setup> modes,
                                                     std::initializer_list<std::pair<bool, std::string>> bufs) {
    using P = PayloadParams;
    auto setup_axis = setups(&P::setup, modes);
    auto buf_axis = axis("buf", &P::fixed, bufs);
    return join(grid(setup_axis, op_axis<P>(), axis("transport", &P::transport, {{Transport::tcp, "tcp"}}),
                     axis("size", &P::bytes, {{1, "1B"}, {4096, "4KiB"}, {65536, "64KiB"}, {1u << 20, "1MiB"}}), buf_axis),
                grid(setup_axis, op_axis<P>(), axis("transport", &P::transport, {{Transport::udp, "udp"}}),
                     axis("size", &P::bytes, {{1, "1B"}, {4096, "4KiB"}, {kMaxUdpPayload, "65507B"}}), buf_axis));
}

// --- capability probes ---

// IORING_SEND_ZC_REPORT_USAGE (6.2): io_send_zc_prep() refuses an unknown
// zc flag with -EINVAL (io_uring/net.c).
const CapabilityProbe report_usage_probe{"send_zc_report_usage", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_SEND_ZC)) return *missing;
    return probe_send("IORING_OP_SEND_ZC with IORING_SEND_ZC_REPORT_USAGE of 1 byte over UDP",
                      [](io_uring*, io_uring_sqe* sqe, int fd, uint8_t* byte) {
                          io_uring_prep_send_zc(sqe, fd, byte, 1, 0, IORING_SEND_ZC_REPORT_USAGE);
                      });
}};

// SENDMSG_ZC with IORING_RECVSEND_FIXED_BUF (io_uring_prep_sendmsg_zc_fixed(3),
// liburing 2.10): older kernels refuse the flag on sendmsg with -EINVAL.
const CapabilityProbe sendmsg_fixed_probe{"sendmsg_zc_fixed_buf", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_SENDMSG_ZC)) return *missing;
    iovec iov{};
    msghdr msg{};
    int registered = 0;
    CapabilityEvidence evidence = probe_send(
        "IORING_OP_SENDMSG_ZC with IORING_RECVSEND_FIXED_BUF from registered buffer 0, 1 byte over UDP",
        [&](io_uring* ring, io_uring_sqe* sqe, int fd, uint8_t* byte) {
            iov = {byte, 1};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            iovec whole{byte, 1};
            registered = io_uring_register_buffers(ring, &whole, 1);
            io_uring_prep_sendmsg_zc(sqe, fd, &msg, 0);
            sqe->ioprio |= IORING_RECVSEND_FIXED_BUF;
            sqe->buf_index = 0;
        });
    if (registered < 0) return untried(evidence.tried, "io_uring_register_buffers: " + errno_name(registered));
    return evidence;
}};

// Which zero-copy send a variant makes: its op and, when it has a buf axis, the buffer.
struct ZcKind {
    bool sendmsg = false;
    bool fixed = false;
};

template <typename P>
ZcKind zc_kind(const P& p) {
    ZcKind kind{.sendmsg = p.op == ZcOp::sendmsg_zc};
    if constexpr (requires { p.fixed; }) kind.fixed = p.fixed;
    return kind;
}

// The variant's opcode, and for SENDMSG_ZC from a registered buffer the flag.
template <typename P>
Need<P> zc_needs() {
    return Need<P>([](const Probe& probe, const P& p) -> std::optional<std::string> {
        ZcKind kind = zc_kind(p);
        if (auto why = needs_op(kind.sendmsg ? IORING_OP_SENDMSG_ZC : IORING_OP_SEND_ZC)(probe)) return why;
        if (kind.sendmsg && kind.fixed) return needs_capability("sendmsg_zc_fixed_buf")(probe);
        return std::nullopt;
    });
}

// --- senders and receivers ---

// Zero-copy sends of one kind (op, plain or registered buffer) from `arena` on one socket.
class ZcSender {
  public:
    ZcSender(Ctx& ctx, Ring& ring, int fd, ZcKind kind, Mapping& arena, unsigned zc_flags, int msg_flags)
        : ring_(ring), fd_(fd), zc_flags_(zc_flags), msg_flags_(msg_flags | MSG_NOSIGNAL), sendmsg_(kind.sendmsg),
          fixed_(kind.fixed) {
        if (!fixed_) return;
        iovec whole{arena.data(), arena.size()};
        int ret = io_uring_register_buffers(ring.get(), &whole, 1);
        if (ret == -ENOMEM) ctx.skip("io_uring_register_buffers: ENOMEM (RLIMIT_MEMLOCK too small for the arena)");
        if (ret < 0) ctx.error("io_uring_register_buffers: " + errno_name(ret));
    }

    // Queues a send of `len` bytes at `data` (inside the arena); submits unless `submit` is false.
    void queue(uint64_t user_data, const uint8_t* data, size_t len, unsigned sqe_flags = 0, bool submit = true) {
        io_uring_sqe* sqe = ring_.sqe(user_data, sendmsg_ ? "sendmsg_zc" : "send_zc");
        if (sendmsg_) {
            // Kept until the scenario ends: under SQPOLL the kernel reads the msghdr after submit returns.
            auto& [iov, msg] = msgs_.emplace_back();
            iov = {const_cast<uint8_t*>(data), len};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            io_uring_prep_sendmsg_zc(sqe, fd_, &msg, msg_flags_);
            sqe->ioprio = zc_flags_;
        } else {
            io_uring_prep_send_zc(sqe, fd_, data, len, msg_flags_, zc_flags_);
        }
        if (fixed_) {
            sqe->ioprio |= IORING_RECVSEND_FIXED_BUF;
            sqe->buf_index = 0;
        }
        sqe->flags |= sqe_flags;
        if (submit) ring_.submit();
    }

  private:
    Ring& ring_;
    int fd_;
    unsigned zc_flags_;
    int msg_flags_;
    bool sendmsg_, fixed_;
    std::deque<std::pair<iovec, msghdr>> msgs_;
};

// Reaps until every request in `pending` has said all it will say;
// `on_cqe` sees each CQE (to submit the next send).
void reap_zc(Ring& ring, ZcPending& pending, const std::function<void(const Cqe&)>& on_cqe = {}) {
    while (!pending.done()) {
        Cqe cqe = ring.wait();
        pending.on_cqe(cqe);
        if (on_cqe) on_cqe(cqe);
    }
}

// Notification lag (playbook §8) of each request, in microseconds: from
// reaping its result CQE to reaping its notification.
std::vector<double> notif_lags_us(const Ring& ring, const std::vector<uint64_t>& ids) {
    std::vector<double> lags;
    for (uint64_t id : ids) {
        ZcLifecycle life = zc_lifecycle(ring.trace().all(), id);
        if (life.result && life.notif) lags.push_back(double(life.notif->t_ns - life.result->t_ns) / 1e3);
    }
    std::sort(lags.begin(), lags.end());
    return lags;
}

void lag_metrics(Ctx& ctx, const Ring& ring, const std::vector<uint64_t>& ids) {
    std::vector<double> lags = notif_lags_us(ring, ids);
    if (lags.empty()) return;
    auto rounded = [](double us) { return double(int64_t(us * 10)) / 10; };
    ctx.metric("notif_lag_us", rounded(lags[lags.size() / 2]));
    ctx.metric("notif_lag_us_max", rounded(lags.back()));
}

// Every request's result reports all of `len` bytes sent (MSG_WAITALL).
bool expect_full_results(Ctx& ctx, const Ring& ring, const std::vector<uint64_t>& ids, size_t len) {
    for (uint64_t id : ids)
        if (auto result = zc_lifecycle(ring.trace().all(), id).result; result && result->res != int32_t(len))
            return ctx.expect(Check::fail(str("send result: expected all ", len, " bytes"), result));
    return true;
}

// --- zero-copy payload rounds ---

struct RoundsOutcome {
    uint64_t bytes_read_after_overwrite = 0;
    unsigned notifications = 0, copied = 0;
};

// Sends `rounds` payloads one at a time. After each notification the buffer
// is overwritten at once, then the receiver reads what it has not read yet:
// io_uring_prep_send_zc(3) says the notification means "the memory region from
// which the send was done is now safe to reuse. The kernel will no longer touch
// it", so the wire must still carry exactly the bytes present at submit.
RoundsOutcome run_payload_rounds(Ctx& ctx, const PayloadParams& p, unsigned zc_flags, int rounds) {
    ZcKind kind = zc_kind(p);
    bool tcp = p.transport == Transport::tcp;
    size_t len = p.bytes;
    Ring ring(ctx, p.setup);
    SocketPair sockets = tcp ? tcp_loopback(ctx) : udp_loopback(ctx);
    Mapping arena(len);
    ZcSender sender(ctx, ring, sockets.client.get(), kind, checked(ctx, arena), zc_flags, tcp ? MSG_WAITALL : 0);
    std::optional<StreamReader> reader;
    if (tcp) reader.emplace(sockets.server.get());

    RoundsOutcome out;
    std::vector<uint64_t> ids;
    uint64_t offset = 0;
    for (int round = 0; round < rounds; ++round) {
        uint64_t id = uint64_t(round) + 1;
        ids.push_back(id);
        fill_pattern(arena.data(), len, offset);
        if (reader && len > kWaitsInSocket) reader->allow(offset + len);
        sender.queue(id, arena.data(), len);
        ZcPending pending;
        pending.add(id);
        std::optional<Cqe> result;
        reap_zc(ring, pending, [&](const Cqe& cqe) {
            if (cqe.user_data == id && !cqe.notif()) result = cqe;
        });
        if (result->res != int32_t(len))
            ctx.must(Check::fail(str("send result: expected all ", len, " bytes"), result));
        overwrite(arena.data(), len);
        if (reader) {
            out.bytes_read_after_overwrite += offset + len - reader->received();
            reader->wait_for(ctx, offset + len);
        } else {
            out.bytes_read_after_overwrite += len;
            ctx.must(receive_datagram(sockets.server.get(), offset, len));
        }
        offset += len;
    }
    ring.settle(kQuietNs);
    ZcExpect expect{.report_usage = (zc_flags & IORING_SEND_ZC_REPORT_USAGE) != 0};
    ctx.expect(zc_notif_order(ring.trace().all(), ids, expect));
    if (reader) ctx.expect(reader->stream_intact(offset));
    for (uint64_t id : ids)
        if (auto notif = zc_lifecycle(ring.trace().all(), id).notif) {
            ++out.notifications;
            out.copied += uint32_t(notif->res) == IORING_NOTIF_USAGE_ZC_COPIED;
        }
    lag_metrics(ctx, ring, ids);
    ctx.metric("notifications", out.notifications);
    ctx.metric("bytes_read_after_overwrite", out.bytes_read_after_overwrite);
    ctx.add_iterations(uint64_t(rounds));
    return out;
}

const Register<PayloadParams> send_result_then_notif{{
    .family = sendzc,
    .name = "send-result-then-notif",
    .summary = "each zero-copy send posts its result, then one F_NOTIF CQE if the result had F_MORE; a buffer "
               "overwritten right after the notification leaves the received bytes unchanged",
    .needs = {needs_op(IORING_OP_SEND_ZC), zc_needs<PayloadParams>()},
    .variants = payload_variants({Setup::none, Setup::defer_taskrun}, {{false, "plain"}, {true, "fixed"}}),
    .body = [](Ctx& ctx, const PayloadParams& p) { run_payload_rounds(ctx, p, 0, ctx.pick(3, 16, 64)); }}};

const Register<PayloadParams> report_usage{{
    .family = sendzc,
    .name = "report-usage-copied-flag",
    .summary = "with IORING_SEND_ZC_REPORT_USAGE each notification's res is 0 or IORING_NOTIF_USAGE_ZC_COPIED; "
               "the copied ratio per payload size is recorded",
    .needs = {needs_op(IORING_OP_SEND_ZC), needs_capability("send_zc_report_usage"), zc_needs<PayloadParams>()},
    .variants = payload_variants({Setup::none}, {{false, "plain"}}),
    .body = [](Ctx& ctx, const PayloadParams& p) {
        RoundsOutcome out = run_payload_rounds(ctx, p, IORING_SEND_ZC_REPORT_USAGE, ctx.pick(3, 32, 128));
        // A behaviour, not a verdict: delivery to a local socket copies
        // zero-copy pages (skb_orphan_frags_rx() in net/core/dev.c), so
        // loopback sends are expected to report IORING_NOTIF_USAGE_ZC_COPIED.
        if (out.notifications > 0) ctx.metric("zc_copied_ratio", double(out.copied) / out.notifications);
    }}};

// --- failed sends ---

// How a send is made to fail, and the res it must fail with (empty: any error).
// send(2) documents EPIPE ("The local end has been shut down on a connection
// oriented socket"), EMSGSIZE ("the size of the message to be sent made this
// impossible") and EBADF; the rest are io_uring's own refusals: an unknown zc
// flag in ioprio, IOSQE_CQE_SKIP_SUCCESS (io_send_zc_prep(): "we don't support
// IOSQE_CQE_SKIP_SUCCESS just yet") and IOSQE_BUFFER_SELECT, which zero-copy
// sends do not take.
struct FailureTrigger {
    const char* name;
    bool udp = false;        // a datagram socket (else TCP)
    bool shut_down = false;  // shutdown(SHUT_WR) before the send
    bool bad_fd = false;     // send on fd -1
    unsigned zc_flags = 0;
    unsigned sqe_flags = 0;
    std::vector<int> allowed;
};
const FailureTrigger kTriggers[] = {
    {.name = "shut-down-socket", .shut_down = true, .allowed = {-EPIPE}},
    {.name = "oversize-datagram", .udp = true, .allowed = {-EMSGSIZE}},
    {.name = "bad-fd", .bad_fd = true, .allowed = {-EBADF}},
    {.name = "unknown-zc-flag", .zc_flags = 1u << 15, .allowed = {-EINVAL}},
    {.name = "cqe-skip-success", .sqe_flags = IOSQE_CQE_SKIP_SUCCESS},
    {.name = "buffer-select", .sqe_flags = IOSQE_BUFFER_SELECT},
};

struct FailureParams {
    Setup setup;
    ZcOp op;
    const FailureTrigger* trigger;
};

Axis<FailureParams, const FailureTrigger*> trigger_axis() {
    Axis<FailureParams, const FailureTrigger*> out{"trigger", &FailureParams::trigger, {}};
    for (const FailureTrigger& trigger : kTriggers) out.values.emplace_back(&trigger, trigger.name);
    return out;
}

const Register<FailureParams> failed_send{{
    .family = sendzc,
    .name = "failed-send-notif-iff-more",
    .summary = "a zero-copy send that fails is followed by one notification if its result carries F_MORE, "
               "and by nothing if it does not",
    .needs = {needs_op(IORING_OP_SEND_ZC), zc_needs<FailureParams>()},
    .variants = grid(setups(&FailureParams::setup, {Setup::none}), op_axis<FailureParams>(), trigger_axis()),
    .body = [](Ctx& ctx, const FailureParams& p) {
        ZcKind kind = zc_kind(p);
        const FailureTrigger& trigger = *p.trigger;
        Ring ring(ctx, p.setup);
        SocketPair sockets = trigger.udp ? udp_loopback(ctx) : tcp_loopback(ctx);
        size_t len = trigger.udp ? kMaxUdpPayload + 1 : 64;
        Mapping arena(len);
        fill_pattern(checked(ctx, arena).data(), len, 0);
        int fd = trigger.bad_fd ? -1 : sockets.client.get();
        if (trigger.shut_down && shutdown(fd, SHUT_WR) < 0) ctx.error("shutdown(SHUT_WR): " + errno_name(errno));
        ZcSender sender(ctx, ring, fd, kind, arena, trigger.zc_flags, 0);
        sender.queue(1, arena.data(), len, trigger.sqe_flags);
        ZcPending pending;
        pending.add(1);
        reap_zc(ring, pending);
        ring.settle(kQuietNs);

        // io_uring_enter(2): "Even errored requests may generate a notification,
        // and the user must check for IORING_CQE_F_MORE rather than relying on the result."
        ctx.expect(zc_notif_order(ring.trace().all(), 1));
        std::optional<Cqe> result = zc_lifecycle(ring.trace().all(), 1).result;
        bool as_documented =
            trigger.allowed.empty() ? result->res < 0 : std::ranges::count(trigger.allowed, result->res) > 0;
        ctx.expect(Check{as_documented, "the send must fail, with the errno documented for this cause", result});
        ctx.metric("failure_res", res_text(result->res));
        ctx.metric("failure_notified", result->more());
    }}};

// --- many sends in flight on one socket ---

struct InflightParams {
    Setup setup;
    ZcOp op;
    bool linked;  // one IOSQE_IO_LINK chain, else each send after the previous result
};

const Register<InflightParams> inflight_order{{
    .family = sendzc,
    .name = "inflight-sends-keep-stream-order",
    .summary = "many zero-copy sends in flight on one TCP socket, linked or each submitted after the previous "
               "result, reach the stream in submission order, and each gets one notification",
    .needs = {needs_op(IORING_OP_SEND_ZC), zc_needs<InflightParams>()},
    .variants = grid(setups(&InflightParams::setup, {Setup::none, Setup::defer_taskrun, Setup::sqpoll}),
                     op_axis<InflightParams>(),
                     axis("order", &InflightParams::linked, {{true, "linked"}, {false, "after-result"}})),
    .body = [](Ctx& ctx, const InflightParams& p) {
        ZcKind kind = zc_kind(p);
        bool linked = p.linked;
        const int count = ctx.pick(32, 128, 512);
        constexpr size_t kChunk = 16 * 1024;
        const uint64_t total = uint64_t(count) * kChunk;
        Ring ring(ctx, p.setup, unsigned(4 * count), unsigned(count));
        SocketPair sockets = tcp_loopback(ctx);
        Mapping arena(total);
        fill_pattern(checked(ctx, arena).data(), total, 0);
        // io_uring_prep_send_zc(3): "using IOSQE_IO_LINK with this request type
        // requires the setting of MSG_WAITALL ... as a short send isn't considered an error".
        ZcSender sender(ctx, ring, sockets.client.get(), kind, arena, 0, MSG_WAITALL);
        StreamReader reader(sockets.server.get());
        reader.allow(total);

        ZcPending pending;
        std::vector<uint64_t> ids;
        for (int i = 0; i < count; ++i) pending.add(ids.emplace_back(uint64_t(i) + 1));
        auto send = [&](int i, unsigned flags, bool submit) {
            sender.queue(uint64_t(i) + 1, arena.data() + size_t(i) * kChunk, kChunk, flags, submit);
        };
        // Playbook §2: "Never overlap multiple sends on the same socket unless
        // your design explicitly preserves order": a link chain, or the next
        // send only after the previous result (its buffer still held until its notification).
        int submitted = linked ? count : 1;
        for (int i = 0; i < submitted; ++i) send(i, linked && i + 1 < count ? IOSQE_IO_LINK : 0, false);
        ring.submit();
        size_t max_held = 0;
        reap_zc(ring, pending, [&](const Cqe& cqe) {
            max_held = std::max(max_held, pending.buffers_held());
            if (!linked && !cqe.notif() && cqe.user_data == uint64_t(submitted) && submitted < count)
                send(submitted++, 0, true);
        });
        if (!expect_full_results(ctx, ring, ids, kChunk)) return;
        reader.wait_for(ctx, total);
        ring.settle(kQuietNs);
        ctx.expect(zc_notif_order(ring.trace().all(), ids));
        ctx.expect(reader.stream_intact(total));
        ctx.metric("max_buffers_in_flight", max_held);
        lag_metrics(ctx, ring, ids);
        ctx.add_iterations(uint64_t(count));
    }}};

}  // namespace
