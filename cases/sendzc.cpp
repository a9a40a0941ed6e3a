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
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "net.h"
#include "ring.h"
#include "scenario.h"
#include "zc_checks.h"

namespace {

using namespace uc;

constexpr uint16_t kGroup = 1;             // provided-buffer group of the send-from-buffers scenarios
constexpr uint64_t kQuietNs = 20'000'000;  // "nothing more comes": 20 ms without a CQE
constexpr uint64_t kDatagramWaitNs = 2'000'000'000;

// Payload sizes. TCP: 1 B (smallest), 4 KiB (one page), 64 KiB (many pages,
// more than one loopback segment), 1 MiB (far past the socket buffers: the
// send completes only while the receiver drains). UDP: one send is one
// datagram, so at most 65,507 bytes over IPv4 (65,535 - 20 IP - 8 UDP header;
// one byte more is -EMSGSIZE, which failed-send-notif-iff-more uses): 1 B,
// 4 KiB, and that maximum.
struct PayloadSize {
    const char* name;
    size_t bytes;
};
constexpr PayloadSize kSizes[] = {{"1B", 1}, {"4KiB", 4096}, {"64KiB", 65536}, {"1MiB", 1u << 20}, {"65507B", 65507}};
constexpr size_t kMaxUdpPayload = 65507;
// TCP payloads up to this size fit in the loopback socket buffers, so they can
// wait unread until after the buffer was overwritten; bigger ones are drained
// while in flight.
constexpr size_t kWaitsInSocket = 16 * 1024;

size_t payload_bytes(const Params& params) {
    std::string name = params.text("size");
    for (const PayloadSize& size : kSizes)
        if (name == size.name) return size.bytes;
    throw std::out_of_range("unknown payload size " + name);
}

const std::vector<ParamValue> kOps{"send_zc", "sendmsg_zc"};

std::vector<Params> payload_variants(const std::vector<Setup>& setups, const std::vector<ParamValue>& bufs) {
    std::vector<Params> out = grid(setups, {{"op", kOps}, {"transport", {"tcp"}},
                                            {"size", {"1B", "4KiB", "64KiB", "1MiB"}}, {"buf", bufs}});
    std::vector<Params> udp = grid(setups, {{"op", kOps}, {"transport", {"udp"}},
                                            {"size", {"1B", "4KiB", "65507B"}}, {"buf", bufs}});
    out.insert(out.end(), udp.begin(), udp.end());
    return out;
}

// --- memory, sockets, probes ---

// Anonymous page-aligned memory: registered buffers and buffer rings pin whole pages.
class Mapping {
  public:
    explicit Mapping(size_t len) : len_((len + 4095) & ~size_t(4095)) {
        void* mem = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        data_ = mem == MAP_FAILED ? nullptr : static_cast<uint8_t*>(mem);
        error_ = data_ ? 0 : errno;
    }
    ~Mapping() {
        if (data_) munmap(data_, len_);
    }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    uint8_t* data() const { return data_; }
    size_t size() const { return len_; }
    int error() const { return error_; }

  private:
    size_t len_;
    uint8_t* data_;
    int error_;
};

Mapping& checked(Ctx& ctx, Mapping& mapping) {
    if (!mapping.data()) ctx.error(str("mmap(", mapping.size(), " bytes): ", errno_name(mapping.error())));
    return mapping;
}

void fill_pattern(uint8_t* dst, size_t len, uint64_t offset) {
    for (size_t i = 0; i < len; ++i) dst[i] = pattern_byte(offset + i);
}

// Changes every byte: a kernel still reading the buffer would put other bytes on the wire.
void overwrite(uint8_t* dst, size_t len) {
    for (size_t i = 0; i < len; ++i) dst[i] ^= 0xff;
}

// A UDP socket on 127.0.0.1 connected to itself: what a probe sends lands in its own queue.
int self_connected_udp() {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0 ||
        connect(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

// Tries one send SQE on a scratch ring against a self-connected UDP socket;
// `prep` may register buffers on that ring. Supported = the byte went out.
bool probe_send(const std::function<void(io_uring*, io_uring_sqe*, int fd, uint8_t* byte)>& prep) {
    int fd = self_connected_udp();
    Mapping page(4096);
    if (fd < 0 || !page.data()) return false;
    // The byte sits mid-page so that a buffer ring can use the page's start.
    int res = probe_one_sqe([&](io_uring* ring, io_uring_sqe* sqe) { prep(ring, sqe, fd, page.data() + 2048); });
    close(fd);
    return res == 1;
}

// A one-entry provided-buffer ring of group kGroup holding the one-byte buffer
// `byte`; the ring itself lives at the start of byte's page.
void probe_provide_byte(io_uring* ring, uint8_t* byte) {
    auto* br = reinterpret_cast<io_uring_buf_ring*>(uintptr_t(byte) & ~uintptr_t(4095));
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(br);
    reg.ring_entries = 1;
    reg.bgid = kGroup;
    if (io_uring_register_buf_ring(ring, &reg, 0) != 0) return;
    io_uring_buf_ring_init(br);
    io_uring_buf_ring_add(br, byte, 1, 0, io_uring_buf_ring_mask(1), 0);
    io_uring_buf_ring_advance(br, 1);
}

// IORING_SEND_ZC_REPORT_USAGE (6.2): an unknown zc flag is -EINVAL.
const CapabilityProbe report_usage_probe{"send_zc_report_usage", [](const Probe& probe) {
    return probe.has_op(IORING_OP_SEND_ZC) && probe_send([](io_uring*, io_uring_sqe* sqe, int fd, uint8_t* byte) {
        io_uring_prep_send_zc(sqe, fd, byte, 1, 0, IORING_SEND_ZC_REPORT_USAGE);
    });
}};

// SENDMSG_ZC with IORING_RECVSEND_FIXED_BUF (io_uring_prep_sendmsg_zc_fixed(3),
// liburing 2.10): older kernels refuse the flag on sendmsg.
const CapabilityProbe sendmsg_fixed_probe{"sendmsg_zc_fixed_buf", [](const Probe& probe) {
    iovec iov{};
    msghdr msg{};
    if (!probe.has_op(IORING_OP_SENDMSG_ZC)) return false;
    return probe_send([&](io_uring* ring, io_uring_sqe* sqe, int fd, uint8_t* byte) {
        iov = {byte, 1};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        iovec whole{byte, 1};
        if (io_uring_register_buffers(ring, &whole, 1) != 0) return;
        io_uring_prep_sendmsg_zc(sqe, fd, &msg, 0);
        sqe->ioprio |= IORING_RECVSEND_FIXED_BUF;
        sqe->buf_index = 0;
    });
}};

// Send from a provided buffer (6.10). The uapi has no IORING_FEAT_SEND_BUF_SELECT
// (the playbook and io_uring_prep_send(3) name one; io_uring.h defines only
// IORING_FEAT_RECVSEND_BUNDLE), so this is found by trying: older kernels
// refuse IOSQE_BUFFER_SELECT on IORING_OP_SEND.
const CapabilityProbe send_buf_select_probe{"send_buf_select", [](const Probe& probe) {
    return probe.buf_ring && probe_send([](io_uring* ring, io_uring_sqe* sqe, int fd, uint8_t* byte) {
        probe_provide_byte(ring, byte);
        io_uring_prep_send(sqe, fd, nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = kGroup;
    });
}};

const CapabilityProbe send_bundle_probe{"send_bundle", [](const Probe& probe) {
    return probe.buf_ring && probe_send([](io_uring* ring, io_uring_sqe* sqe, int fd, uint8_t* byte) {
        probe_provide_byte(ring, byte);
        io_uring_prep_send(sqe, fd, nullptr, 0, 0);
        sqe->ioprio |= IORING_RECVSEND_BUNDLE;
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = kGroup;
    });
}};

// Requirements that depend on the variant rather than the scenario.
void require(Ctx& ctx, const Requirement& need) {
    if (auto why = need(ctx.probe())) ctx.skip(*why);
}

// Which zero-copy send a variant makes: its "op" and, when it has one, its "buf" axis.
struct ZcKind {
    bool sendmsg = false;
    bool fixed = false;
};

ZcKind zc_kind(const Params& params) {
    ZcKind kind;
    for (const auto& [key, value] : params.values) {
        if (key == "op") kind.sendmsg = std::get<std::string>(value) == "sendmsg_zc";
        if (key == "buf") kind.fixed = std::get<std::string>(value) == "fixed";
    }
    return kind;
}

ZcKind require_variant(Ctx& ctx) {
    ZcKind kind = zc_kind(ctx.params());
    require(ctx, needs_op(kind.sendmsg ? IORING_OP_SENDMSG_ZC : IORING_OP_SEND_ZC));
    if (kind.sendmsg && kind.fixed) require(ctx, needs_capability("sendmsg_zc_fixed_buf"));
    return kind;
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

// Reads a TCP pattern() stream on its own thread, never past the byte budget
// the scenario allows: bytes past it wait in the socket (to be read after the
// sender overwrote its buffer), bytes within it are drained at once (a send
// bigger than the socket buffers completes only while the peer reads).
class StreamReader {
  public:
    explicit StreamReader(int fd) : fd_(fd), thread_([this](std::stop_token stop) { run(stop); }) {}

    void allow(uint64_t total) { allowed_.store(total); }
    uint64_t received() const { return received_.load(); }

    // Waits until `total` bytes arrived: a fail if the stream ends first, a
    // hang once the scenario deadline passes.
    void wait_for(Ctx& ctx, uint64_t total) {
        allow(std::max(total, allowed_.load()));
        while (received_.load() < total) {
            if (ended_.load())
                ctx.must(Check::fail(str("the stream ended after ", received_.load(), " of ", total, " bytes")));
            if (now_ns() >= ctx.deadline_ns())
                ctx.hang(str("receiver got ", received_.load(), " of ", total, " stream bytes"));
            std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
    }

    // The stream so far is exactly the `total` bytes the buffers held at submit.
    Check stream_intact(uint64_t total) const {
        if (int64_t bad = mismatch_.load(); bad >= 0)
            return Check::fail(str("received stream byte ", bad, " differs from the buffer's content at submit "
                                   "(changed after the notification, reordered or lost)"));
        if (received_.load() != total)
            return Check::fail(str("receiver got ", received_.load(), " bytes, ", total, " were sent"));
        char extra;
        if (recv(fd_, &extra, 1, MSG_PEEK | MSG_DONTWAIT) > 0)
            return Check::fail(str("more than the ", total, " bytes sent are waiting in the receiving socket"));
        return Check::pass();
    }

  private:
    void run(const std::stop_token& stop) {
        std::vector<uint8_t> buf(256 * 1024);
        while (!stop.stop_requested()) {
            uint64_t budget = allowed_.load() - received_.load();
            pollfd pfd{fd_, POLLIN, 0};
            if (budget == 0 || poll(&pfd, 1, 5) <= 0) {
                if (budget == 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
                continue;
            }
            ssize_t n = recv(fd_, buf.data(), std::min<uint64_t>(budget, buf.size()), MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (n <= 0) break;
            uint64_t at = received_.load();
            for (ssize_t i = 0; i < n && mismatch_.load() < 0; ++i)
                if (buf[size_t(i)] != pattern_byte(at + uint64_t(i))) mismatch_.store(int64_t(at) + i);
            received_.store(at + uint64_t(n));
        }
        ended_.store(!stop.stop_requested());
    }

    int fd_;
    std::atomic<uint64_t> allowed_{0}, received_{0};
    std::atomic<int64_t> mismatch_{-1};
    std::atomic<bool> ended_{false};  // EOF or a socket error before the scenario was done
    std::jthread thread_;  // last: starts once the members it uses exist
};

// Receives one datagram and checks it is the `len` pattern() bytes at `offset`.
Check receive_datagram(int fd, uint64_t offset, size_t len) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, int(kDatagramWaitNs / 1'000'000)) <= 0)
        return Check::fail(str("sent datagram of ", len, " bytes did not arrive within 2 s"));
    std::vector<uint8_t> buf(len + 1);
    ssize_t n = recv(fd, buf.data(), buf.size(), MSG_TRUNC | MSG_DONTWAIT);
    if (n != ssize_t(len)) return Check::fail(str("datagram of ", n, " bytes, sent ", len));
    for (size_t i = 0; i < len; ++i)
        if (buf[i] != pattern_byte(offset + i))
            return Check::fail(str("datagram byte ", i, " of ", len, " differs from the buffer's content at submit "
                                   "(changed after the notification?)"));
    return Check::pass();
}

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
RoundsOutcome run_payload_rounds(Ctx& ctx, unsigned zc_flags, int rounds) {
    ZcKind kind = require_variant(ctx);
    const Params& p = ctx.params();
    bool tcp = p.text("transport") == "tcp";
    size_t len = payload_bytes(p);
    Ring ring(ctx, p.setup_or_none());
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

const Register send_result_then_notif{{
    .family = "sendzc",
    .name = "send-result-then-notif",
    .summary = "each zero-copy send posts its result, then one F_NOTIF CQE if the result had F_MORE; a buffer "
               "overwritten right after the notification leaves the received bytes unchanged",
    .needs = {needs_op(IORING_OP_SEND_ZC)},
    .variants = payload_variants({Setup::none, Setup::defer_taskrun}, {"plain", "fixed"}),
    .body = [](Ctx& ctx) { run_payload_rounds(ctx, 0, ctx.pick(3, 16, 64)); }}};

const Register report_usage{{
    .family = "sendzc",
    .name = "report-usage-copied-flag",
    .summary = "with IORING_SEND_ZC_REPORT_USAGE each notification's res is 0 or IORING_NOTIF_USAGE_ZC_COPIED; "
               "the copied ratio per payload size is recorded",
    .needs = {needs_op(IORING_OP_SEND_ZC), needs_capability("send_zc_report_usage")},
    .variants = payload_variants({Setup::none}, {"plain"}),
    .body = [](Ctx& ctx) {
        RoundsOutcome out = run_payload_rounds(ctx, IORING_SEND_ZC_REPORT_USAGE, ctx.pick(8, 32, 128));
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

const FailureTrigger& failure_trigger(const Params& params) {
    std::string name = params.text("trigger");
    for (const FailureTrigger& trigger : kTriggers)
        if (name == trigger.name) return trigger;
    throw std::out_of_range("unknown failure trigger " + name);
}

std::vector<ParamValue> trigger_names() {
    std::vector<ParamValue> names;
    for (const FailureTrigger& trigger : kTriggers) names.emplace_back(std::string(trigger.name));
    return names;
}

const Register failed_send{{
    .family = "sendzc",
    .name = "failed-send-notif-iff-more",
    .summary = "a zero-copy send that fails is followed by one notification if its result carries F_MORE, "
               "and by nothing if it does not",
    .needs = {needs_op(IORING_OP_SEND_ZC)},
    .variants = grid({Setup::none}, {{"op", kOps}, {"trigger", trigger_names()}}),
    .body = [](Ctx& ctx) {
        ZcKind kind = require_variant(ctx);
        const FailureTrigger& trigger = failure_trigger(ctx.params());
        Ring ring(ctx, Setup::none);
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

const Register inflight_order{{
    .family = "sendzc",
    .name = "inflight-sends-keep-stream-order",
    .summary = "many zero-copy sends in flight on one TCP socket, linked or each submitted after the previous "
               "result, reach the stream in submission order, and each gets one notification",
    .needs = {needs_op(IORING_OP_SEND_ZC)},
    .variants = grid({Setup::none, Setup::defer_taskrun, Setup::sqpoll},
                     {{"op", kOps}, {"order", {"linked", "after-result"}}}),
    .body = [](Ctx& ctx) {
        ZcKind kind = require_variant(ctx);
        bool linked = ctx.params().text("order") == "linked";
        const int count = ctx.pick(32, 128, 512);
        constexpr size_t kChunk = 16 * 1024;
        const uint64_t total = uint64_t(count) * kChunk;
        Ring ring(ctx, ctx.params().setup_or_none(), unsigned(4 * count), unsigned(count));
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

// --- sends from provided buffers (6.10+) ---

// A provided-buffer ring for sends: the scenario writes a buffer's bytes, then
// hands it to the kernel; ring_order() is what the kernel must consume, in order.
class SendBuffers {
  public:
    SendBuffers(Ctx& ctx, Ring& ring, unsigned entries, uint32_t max_len)
        : ring_(ring), entries_(entries), max_len_(max_len), ring_mem_(entries * sizeof(io_uring_buf)),
          data_(size_t(entries) * max_len) {
        checked(ctx, ring_mem_);
        checked(ctx, data_);
        br_ = reinterpret_cast<io_uring_buf_ring*>(ring_mem_.data());
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<uint64_t>(br_);
        reg.ring_entries = entries;
        reg.bgid = kGroup;
        int ret = io_uring_register_buf_ring(ring.get(), &reg, 0);
        if (ret == -ENOMEM) ctx.skip("registering a buffer ring: ENOMEM (RLIMIT_MEMLOCK too small)");
        if (ret < 0) ctx.error("IORING_REGISTER_PBUF_RING: " + errno_name(ret) + " although the probe accepted it");
        io_uring_buf_ring_init(br_);
    }
    ~SendBuffers() { io_uring_unregister_buf_ring(ring_.get(), kGroup); }
    SendBuffers(const SendBuffers&) = delete;
    SendBuffers& operator=(const SendBuffers&) = delete;

    // Fills buffers 0..n-1 with lens[bid] bytes each, continuing the pattern()
    // stream at *offset, and adds them to the ring in that order.
    void provide_stream(const std::vector<uint32_t>& lens, uint64_t* offset) {
        for (uint16_t bid = 0; bid < lens.size(); ++bid) {
            uint8_t* buf = data_.data() + size_t(bid) * max_len_;
            fill_pattern(buf, lens[bid], *offset);
            *offset += lens[bid];
            io_uring_buf_ring_add(br_, buf, lens[bid], bid, io_uring_buf_ring_mask(entries_), 0);
            io_uring_buf_ring_advance(br_, 1);
            order_.push_back({bid, lens[bid]});
        }
    }
    const std::vector<ProvidedBuf>& ring_order() const { return order_; }

  private:
    Ring& ring_;
    unsigned entries_;
    uint32_t max_len_;
    Mapping ring_mem_, data_;
    io_uring_buf_ring* br_ = nullptr;
    std::vector<ProvidedBuf> order_;
};

// Different lengths, so a CQE naming the wrong buffer shows in the byte count.
const std::vector<uint32_t> kBufferLens{100, 161, 222, 283, 344, 405, 466, 527};
constexpr uint32_t kBufferMax = 528;

void queue_send_from_buffers(Ring& ring, uint64_t id, int fd, uint32_t len, bool bundle) {
    io_uring_sqe* sqe = ring.sqe(id, bundle ? "send bundle" : "send from a provided buffer");
    io_uring_prep_send(sqe, fd, nullptr, len, MSG_WAITALL | MSG_NOSIGNAL);
    if (bundle) sqe->ioprio |= IORING_RECVSEND_BUNDLE;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kGroup;
}

// Accounts every CQE of request `id` (io_uring_prep_send(3): res bytes from
// contiguous buffers starting at the id in flags); returns how many there were.
size_t account_request(Ctx& ctx, const Ring& ring, uint64_t id, const SendBuffers& bufs, size_t* next, uint64_t* sent) {
    std::vector<Cqe> cqes = ring.trace().for_request(id);
    for (const Cqe& cqe : cqes) ctx.must(send_buffers_accounting(cqe, bufs.ring_order(), next, sent));
    return cqes.size();
}

const Register bundle_in_order{{
    .family = "sendzc",
    .name = "bundle-sends-buffers-in-order",
    .summary = "a send bundle with len 0 posts one CQE: res = every provided byte, buffer id = the first buffer; "
               "the receiver gets the buffers' bytes in ring order",
    .needs = {needs_op(IORING_OP_SEND), needs_buf_ring(), needs_feature(IORING_FEAT_RECVSEND_BUNDLE, "RECVSEND_BUNDLE"),
              needs_capability("send_bundle")},
    .variants = grid({Setup::none}, {{"transport", {"tcp", "udp"}}}),
    .body = [](Ctx& ctx) {
        bool tcp = ctx.params().text("transport") == "tcp";
        Ring ring(ctx, Setup::none);
        SocketPair sockets = tcp ? tcp_loopback(ctx) : udp_loopback(ctx);
        SendBuffers bufs(ctx, ring, unsigned(kBufferLens.size()), kBufferMax);
        std::optional<StreamReader> reader;
        if (tcp) reader.emplace(sockets.server.get());
        size_t next = 0;
        uint64_t offset = 0, sent = 0;
        const int rounds = ctx.pick(4, 16, 64);
        for (int round = 0; round < rounds; ++round) {
            uint64_t id = uint64_t(round) + 1, start = offset, sent_before = sent;
            bufs.provide_stream(kBufferLens, &offset);
            if (reader) reader->allow(offset);
            queue_send_from_buffers(ring, id, sockets.client.get(), 0, true);
            ring.submit();
            ring.reap_until_final(id);
            size_t cqes = account_request(ctx, ring, id, bufs, &next, &sent);
            // io_uring_prep_send(3): "A single CQE is posted for the send, with
            // the result being how many bytes were sent"; a bundle "keeps sending
            // from that buffer group until it runs out of buffers".
            ctx.expect_eq(cqes, size_t(1), "CQEs of one bundle send");
            ctx.expect_eq(sent - sent_before, offset - start, "bytes of one bundle send vs bytes provided");
            if (!tcp) ctx.must(receive_datagram(sockets.server.get(), start, offset - start));
        }
        if (reader) {
            reader->wait_for(ctx, offset);
            ctx.expect(reader->stream_intact(offset));
        }
        ring.settle(kQuietNs);
        ctx.expect_eq(ring.trace().all().size(), size_t(rounds), "CQEs of all bundle sends");
        ctx.add_iterations(uint64_t(rounds));
    }}};

const Register bundle_nonzero_len{{
    .family = "sendzc",
    .name = "bundle-nonzero-len-refused-or-capped",
    .summary = "a send bundle with len != 0 fails with -EINVAL (io_uring_prep_send(3)), or where the kernel takes "
               "len as a cap, its first CQE sends at most len bytes; the wire matches the CQEs",
    .needs = {needs_op(IORING_OP_SEND), needs_buf_ring(), needs_feature(IORING_FEAT_RECVSEND_BUNDLE, "RECVSEND_BUNDLE"),
              needs_capability("send_bundle")},
    .variants = grid({Setup::none}, {{"transport", {"tcp"}}}),
    .body = [](Ctx& ctx) {
        Ring ring(ctx, Setup::none);
        SocketPair sockets = tcp_loopback(ctx);
        const std::vector<uint32_t> lens(4, 512);
        SendBuffers bufs(ctx, ring, unsigned(lens.size()), 512);
        StreamReader reader(sockets.server.get());
        uint64_t offset = 0, sent = 0;
        size_t next = 0;
        bufs.provide_stream(lens, &offset);
        reader.allow(offset);
        queue_send_from_buffers(ring, 1, sockets.client.get(), lens[0], true);
        ring.submit();
        Cqe first = ring.reap_until_final(1).front();
        ring.settle(kQuietNs);
        // io_uring_prep_send(3): "Currently len must be given as 0 otherwise the
        // request will be errored with -EINVAL". That rule came with 6.10
        // (79996b45f7b2 "io_uring: Require zeroed sqe->len on provided-buffers
        // send") and went in 6.12 (641a6816795b, its revert: len limits the
        // send), so either answer passes and the metric says which one came.
        if (first.res == -EINVAL) {
            ctx.metric("bundle_nonzero_len", "EINVAL");
            ctx.expect(single_completion(ring.trace().all(), 1, {-EINVAL}));
            // The refused request consumed no buffer: a len 0 bundle sends them all from the first.
            queue_send_from_buffers(ring, 2, sockets.client.get(), 0, true);
            ring.submit();
            ring.reap_until_final(2);
            account_request(ctx, ring, 2, bufs, &next, &sent);
        } else {
            ctx.metric("bundle_nonzero_len", "capped");
            ctx.expect_true(first.res <= int32_t(lens[0]),
                            str("first CQE of a bundle with len ", lens[0], " sends at most len bytes: ",
                                first.describe()));
            ctx.expect(multishot_contract(ring.trace().all(), 1));
            ctx.metric("bundle_nonzero_len_cqes", account_request(ctx, ring, 1, bufs, &next, &sent));
            ctx.metric("bundle_nonzero_len_bytes", sent);
        }
        reader.wait_for(ctx, sent);
        ctx.expect(reader.stream_intact(sent));
    }}};

const Register buffer_select_order{{
    .family = "sendzc",
    .name = "buffer-select-sends-in-ring-order",
    .summary = "several sends from provided buffers in flight on one TCP socket each send one whole buffer, and "
               "the stream carries the buffers in ring order",
    .needs = {needs_op(IORING_OP_SEND), needs_buf_ring(), needs_capability("send_buf_select")},
    .variants = grid({Setup::none, Setup::defer_taskrun, Setup::sqpoll}),
    .body = [](Ctx& ctx) {
        Ring ring(ctx, ctx.params().setup_or_none());
        SocketPair sockets = tcp_loopback(ctx);
        SendBuffers bufs(ctx, ring, unsigned(kBufferLens.size()), kBufferMax);
        StreamReader reader(sockets.server.get());
        size_t next = 0;
        uint64_t offset = 0, sent = 0, id = 0;
        const int rounds = ctx.pick(4, 16, 64);
        for (int round = 0; round < rounds; ++round) {
            bufs.provide_stream(kBufferLens, &offset);
            reader.allow(offset);
            for (size_t i = 0; i < kBufferLens.size(); ++i)
                queue_send_from_buffers(ring, ++id, sockets.client.get(), 0, false);
            ring.submit();
            // CQEs may come in any order; the buffers they name must cover the
            // ring's next buffers, each once and whole.
            std::vector<Cqe> cqes = ring.reap(kBufferLens.size());
            std::ranges::sort(cqes, {}, &Cqe::buffer_id);
            for (const Cqe& cqe : cqes) {
                ctx.must(send_buffers_accounting(cqe, bufs.ring_order(), &next, &sent));
                ctx.expect_eq(uint32_t(cqe.res), kBufferLens[cqe.buffer_id()],
                              "bytes of a len 0 send vs its whole buffer");
            }
        }
        // io_uring_prep_send(3): "By using provided buffers with send requests,
        // the application can prevent any kind of reordering of the outgoing
        // data which can otherwise occur if the application has more than one
        // send request inflight for a single socket."
        reader.wait_for(ctx, offset);
        ctx.expect(reader.stream_intact(offset));
        ctx.expect_eq(sent, offset, "bytes sent over all CQEs vs bytes provided");
        ctx.add_iterations(uint64_t(rounds));
    }}};

}  // namespace
