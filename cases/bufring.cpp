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

#include <algorithm>
#include <map>
#include <optional>
#include <thread>

#include "bufring.h"
#include "bufring_checks.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;

constexpr uint16_t kGroup = 3;             // buffer group id
constexpr uint64_t kFirstRecv = 1;         // user_data of the first multishot recv; each re-arm takes the next
constexpr uint64_t kProvide = 1'000'000;   // user_data of legacy IORING_OP_PROVIDE_BUFFERS SQEs
constexpr unsigned kBufLen = 256;          // bytes per buffer, unless a scenario says otherwise
constexpr unsigned kRoomyCq = 256;         // a CQ that cannot overflow where overflow is not under test

// --- capability probes: tried on a scratch ring; -EINVAL means "not understood" ---

// Multishot recv drawing from legacy provided buffers (IORING_OP_PROVIDE_BUFFERS):
// provide four buffers, queue data, and see whether the recv is refused.
bool probe_legacy_multishot(const Probe& probe) {
    int fds[2];
    if (!probe.has_op(IORING_OP_PROVIDE_BUFFERS) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        return false;
    io_uring ring{};
    std::vector<char> memory(4 * 64);
    int res = -EINVAL;
    if (io_uring_queue_init(8, &ring, 0) == 0) {
        io_uring_prep_provide_buffers(io_uring_get_sqe(&ring), memory.data(), 64, 4, kGroup, 0);
        io_uring_cqe* cqe = nullptr;
        if (io_uring_submit_and_wait(&ring, 1) == 1 && io_uring_peek_cqe(&ring, &cqe) == 0 && cqe->res >= 0) {
            io_uring_cqe_seen(&ring, cqe);
            (void)!write(fds[0], "probe", 5);
            io_uring_sqe* sqe = io_uring_get_sqe(&ring);
            io_uring_prep_recv_multishot(sqe, fds[1], nullptr, 0, 0);
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = kGroup;
            __kernel_timespec ts{0, 100'000'000};
            if (io_uring_submit(&ring) == 1 && io_uring_wait_cqe_timeout(&ring, &cqe, &ts) == 0) res = cqe->res;
        }
        io_uring_queue_exit(&ring);
    }
    close(fds[0]);
    close(fds[1]);
    return res != -EINVAL;
}
const CapabilityProbe legacy_multishot_probe{"recv_multishot_legacy_buffers", probe_legacy_multishot};

// IORING_RECVSEND_BUNDLE on a multishot recv with a buffer ring, data already queued.
const CapabilityProbe recv_bundle_probe{"recv_bundle", [](const Probe& probe) {
    if (!probe.buf_ring || !probe.has_feature(IORING_FEAT_RECVSEND_BUNDLE)) return false;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) return false;
    void* mem = nullptr;
    std::vector<char> data(4 * 64);
    if (posix_memalign(&mem, 4096, 4096) != 0) return false;
    int res = probe_one_sqe([&](io_uring* ring, io_uring_sqe* sqe) {
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<uint64_t>(mem);
        reg.ring_entries = 4;
        reg.bgid = kGroup;
        auto* br = static_cast<io_uring_buf_ring*>(mem);
        if (io_uring_register_buf_ring(ring, &reg, 0) == 0) {
            io_uring_buf_ring_init(br);
            for (int i = 0; i < 4; ++i)
                io_uring_buf_ring_add(br, data.data() + i * 64, 64, uint16_t(i), io_uring_buf_ring_mask(4), i);
            io_uring_buf_ring_advance(br, 4);
        }
        (void)!write(fds[0], data.data(), 200);
        io_uring_prep_recv_multishot(sqe, fds[1], nullptr, 0, 0);
        sqe->ioprio |= IORING_RECVSEND_BUNDLE;
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = kGroup;
    });
    close(fds[0]);
    close(fds[1]);
    free(mem);
    return res != -EINVAL;
}};

// --- a buffer group as the scenarios use it ---

enum class PoolKind { ring, legacy };

// Kernel-side buffers (a ring, or legacy buffers given by SQEs), the ledger
// of what the kernel holds, and the log byte_conservation() replays.
class Pool {
  public:
    Pool(Ctx& ctx, Ring& ring, PoolKind kind, unsigned entries, BufMode mode, unsigned buf_len = kBufLen,
         uint16_t ring_flags = 0)
        : ctx_(ctx), ring_(ring), kind_(kind), buf_len_(buf_len), ledger_(mode) {
        if (kind == PoolKind::ring)
            ring_bufs_.emplace(ring, kGroup, entries, buf_len, ring_flags);
        else
            legacy_.emplace(ring, kGroup, entries, buf_len, kProvide);
        for (unsigned bid = 0; bid < entries; ++bid) note_provided(bid);
    }

    BufMode mode() const { return ledger_.mode(); }
    unsigned available() const { return ledger_.held_count(); }
    const std::vector<BufEvent>& log() const { return log_; }
    bool is_provide_cqe(const Cqe& cqe) const { return kind_ == PoolKind::legacy && cqe.user_data == kProvide; }

    // Accounts a CQE of the receive: the ledger must accept it; its bytes
    // are copied into the log; the buffers it released wait for recycle().
    // Returns how many buffers it used.
    size_t account(const Cqe& cqe) {
        ctx_.must(ledger_.consume(cqe, &spans_));
        std::string bytes;
        for (const BufSpan& span : spans_) {
            bytes.append(reinterpret_cast<const char*>(data(span.bid)) + span.offset, span.len);
            if (span.released) released_.push_back(span.bid);
            if (span.released && ring_bufs_) ring_bufs_->take(span.bid);
        }
        log_.push_back(BufEvent::completed(cqe, std::move(bytes)));
        return spans_.size();
    }

    // Gives every buffer the application holds back to the kernel.
    void recycle() {
        if (released_.empty()) return;
        for (unsigned bid : released_) {
            if (ring_bufs_)
                ring_bufs_->provide(bid);
            else
                legacy_->provide(bid);
            note_provided(bid);
        }
        released_.clear();
        if (legacy_) ring_.submit();
    }

  private:
    const uint8_t* data(unsigned bid) const { return ring_bufs_ ? ring_bufs_->data(bid) : legacy_->data(bid); }
    void note_provided(unsigned bid) {
        ctx_.must(ledger_.provide(bid, buf_len_));
        log_.push_back(BufEvent::provided(bid, buf_len_));
    }

    Ctx& ctx_;
    Ring& ring_;
    PoolKind kind_;
    unsigned buf_len_;
    std::optional<BufRing> ring_bufs_;
    std::optional<LegacyBuffers> legacy_;
    BufferLedger ledger_;
    std::vector<BufEvent> log_;
    std::vector<BufSpan> spans_;
    std::vector<unsigned> released_;
};

// A multishot recv on one socket, re-armed with a fresh user_data whenever
// the previous request ended, with the playbook's counters.
class Receiver {
  public:
    Receiver(Ctx& ctx, Ring& ring, Pool& pool, int fd, unsigned recv_flags = 0)
        : ctx_(ctx), ring_(ring), pool_(pool), fd_(fd), recv_flags_(recv_flags) {}

    // Arms a new request (the first, or a repost after the last one ended).
    void arm() {
        if (live_) ctx_.error("arming a second multishot recv while one is live");
        uint64_t user_data = kFirstRecv + requests_.size();
        io_uring_sqe* sqe = ring_.sqe(user_data, "multishot recv");
        io_uring_prep_recv_multishot(sqe, fd_, nullptr, 0, 0);
        sqe->ioprio |= recv_flags_;
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = kGroup;
        ring_.submit();
        if (!requests_.empty()) ++reposts_;
        requests_.push_back(user_data);
        live_ = true;
        available_at_arm_ = pool_.available();
        data_since_arm_ = 0;
    }

    // Reaps one CQE and accounts it if it is the receive's; a legacy
    // provide CQE is checked and returned as it is.
    Cqe reap() {
        max_cq_depth_ = std::max(max_cq_depth_, io_uring_cq_ready(ring_.get()));
        Cqe cqe = ring_.wait();
        if (pool_.is_provide_cqe(cqe)) {
            ctx_.must(Check{cqe.res >= 0, "IORING_OP_PROVIDE_BUFFERS failed", cqe});
            return cqe;
        }
        cqes_.push_back(cqe);
        max_buffers_per_cqe_ = std::max(max_buffers_per_cqe_, pool_.account(cqe));
        if (cqe.res > 0) received_ += uint64_t(cqe.res), ++data_cqes_, ++data_since_arm_;
        if (cqe.flags & IORING_CQE_F_BUF_MORE) ++buf_more_cqes_;
        if (cqe.user_data == current() && !cqe.more()) end_request(cqe);
        return cqe;
    }

    // Reaps one CQE, waiting for it, then every CQE already in the CQ.
    std::vector<Cqe> reap_batch() {
        std::vector<Cqe> batch{reap()};
        while (io_uring_cq_ready(ring_.get()) > 0) batch.push_back(reap());
        return batch;
    }

    bool live() const { return live_; }
    uint64_t current() const { return requests_.empty() ? 0 : requests_.back(); }
    const std::vector<uint64_t>& requests() const { return requests_; }
    // Every CQE of the receive, kept whole (the ring's trace keeps only the newest).
    const std::vector<Cqe>& cqes() const { return cqes_; }
    uint64_t received() const { return received_; }
    int last_final_res() const { return last_final_res_; }
    unsigned starvations() const { return starvations_; }
    size_t max_buffers_per_cqe() const { return max_buffers_per_cqe_; }
    uint64_t buf_more_cqes() const { return buf_more_cqes_; }

    // The playbook's observability metrics (§8) for this receive.
    void report_metrics() const {
        // Metrics are scalars: the counts at each starvation as "0,0,1", their maximum apart.
        std::string each;
        for (unsigned n : available_at_starvation_) each += (each.empty() ? "" : ",") + std::to_string(n);
        if (starvations_ > available_at_starvation_.size()) each += ",...";
        ctx_.metric("buffers_available_at_starvation", each);
        ctx_.metric("buffers_available_at_starvation_max",
                    available_at_starvation_.empty()
                        ? 0u
                        : *std::max_element(available_at_starvation_.begin(), available_at_starvation_.end()));
        ctx_.metric("starvations", starvations_);
        ctx_.metric("repost_count", reposts_);
        ctx_.metric("cq_overflow", ring_.cq_overflow());
        ctx_.metric("max_cq_depth", max_cq_depth_);
        ctx_.add_iterations(data_cqes_);
    }

  private:
    void end_request(const Cqe& cqe) {
        live_ = false;
        last_final_res_ = cqe.res;
        if (cqe.res != -ENOBUFS) return;
        ++starvations_;
        if (available_at_starvation_.size() < 64) available_at_starvation_.push_back(pool_.available());
        // io_uring_provided_buffers(7): "If no buffer was available when the
        // operation completed, the operation fails with -ENOBUFS." This request
        // was armed with buffers in the group and used none of them.
        if (data_since_arm_ == 0 && available_at_arm_ > 0)
            ctx_.must(Check::fail(str("request armed while the group held ", available_at_arm_,
                                      " buffers ended with -ENOBUFS before using any"),
                                  cqe));
    }

    Ctx& ctx_;
    Ring& ring_;
    Pool& pool_;
    int fd_;
    unsigned recv_flags_;
    std::vector<uint64_t> requests_;
    std::vector<Cqe> cqes_;
    bool live_ = false;
    int last_final_res_ = 0;
    uint64_t received_ = 0, data_cqes_ = 0, data_since_arm_ = 0, buf_more_cqes_ = 0;
    unsigned reposts_ = 0, max_cq_depth_ = 0, starvations_ = 0, available_at_arm_ = 0;
    size_t max_buffers_per_cqe_ = 0;
    std::vector<unsigned> available_at_starvation_;
};

// Reaps until `done()`, giving buffers back after each batch of CQEs (as an
// application draining its CQ would) and re-arming whenever a request ends
// early: with -ENOBUFS, or with data where the kernel ends multishot on CQ
// overflow. Any other end is a fail.
template <typename Done>
void pump(Ctx& ctx, Receiver& rx, Pool& pool, Done done) {
    while (!done()) {
        if (!rx.live()) {
            if (!rx.requests().empty() && rx.last_final_res() == 0)
                ctx.must(Check::fail(str("multishot recv ended with res 0 (end of stream) after ", rx.received(),
                                         " bytes, before the data it waited for")));
            pool.recycle();
            rx.arm();
        }
        for (const Cqe& cqe : rx.reap_batch())
            if (cqe.user_data == rx.current() && !cqe.more() && cqe.res < 0 && cqe.res != -ENOBUFS)
                ctx.must(Check::fail("multishot recv ended with an error other than -ENOBUFS", cqe));
        pool.recycle();
    }
}

// Receives until the stream holds `bytes` bytes.
void receive_bytes(Ctx& ctx, Receiver& rx, Pool& pool, uint64_t bytes) {
    pump(ctx, rx, pool, [&] { return rx.received() >= bytes; });
}

// Receives until a request ends with res 0: the peer shut down after sending everything.
void receive_to_eof(Ctx& ctx, Receiver& rx, Pool& pool) {
    pump(ctx, rx, pool, [&] { return !rx.requests().empty() && !rx.live() && rx.last_final_res() == 0; });
}

// io_uring_multishot(7): each request's CQEs carry IORING_CQE_F_MORE but the
// last, exactly one final CQE ends it and nothing follows; the last request
// ended with res 0 at the peer's shutdown.
void check_requests(Ctx& ctx, const Receiver& rx) {
    std::map<uint64_t, std::vector<Cqe>> by_request;
    for (const Cqe& cqe : rx.cqes()) by_request[cqe.user_data].push_back(cqe);
    for (uint64_t user_data : rx.requests()) {
        MultishotExpect expect;
        if (user_data == rx.requests().back()) expect.final_res = {0};
        if (!ctx.expect(multishot_contract(by_request[user_data], user_data, expect))) return;
    }
}

void check_bytes(Ctx& ctx, const Pool& pool, uint64_t sent) {
    ctx.expect(byte_conservation(pool.log(), pool.mode(), sent));
}

PoolKind pool_kind(Ctx& ctx) {
    std::string kind = ctx.params().text("pool");
    if (kind == "legacy") {
        // Legacy provided buffers need their opcode and a multishot recv that takes them.
        if (!ctx.probe().has_op(IORING_OP_PROVIDE_BUFFERS))
            ctx.skip("kernel lacks IORING_OP_PROVIDE_BUFFERS (io_uring_register PROBE)");
        if (!ctx.probe().capability("recv_multishot_legacy_buffers"))
            ctx.skip("kernel lacks recv_multishot_legacy_buffers (probe: tried it and the kernel refused)");
        return PoolKind::legacy;
    }
    if (!ctx.probe().buf_ring)
        ctx.skip("kernel lacks provided buffer rings (IORING_REGISTER_PBUF_RING refused)");
    return PoolKind::ring;
}

// Writes `total` pattern bytes in chunks of varying size from its own
// thread, then shuts the write side: a peer that keeps sending whatever the
// consumer does. Send errors are kept for the scenario to report.
class Sender {
  public:
    Sender(int fd, uint64_t total, uint64_t seed) : fd_(fd), thread_([this, total, seed] { run(total, seed); }) {}
    ~Sender() {
        shutdown(fd_, SHUT_RDWR);  // unblocks a send the consumer will never drain
        if (thread_.joinable()) thread_.join();
    }
    void join_and_check(Ctx& ctx) {
        thread_.join();
        if (error_) ctx.error("sender: send(): " + errno_name(error_));
    }

  private:
    void run(uint64_t total, uint64_t seed) {
        uint64_t sent = 0, state = seed * 6364136223846793005u + 1442695040888963407u;
        while (sent < total) {
            state = state * 6364136223846793005u + 1442695040888963407u;
            size_t len = std::min<uint64_t>(total - sent, 1 + (state >> 33) % 4096);
            std::string chunk = pattern(sent, len);
            for (size_t done = 0; done < len;) {
                ssize_t n = send(fd_, chunk.data() + done, len - done, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) {
                    error_ = errno;
                    return;
                }
                done += size_t(n);
            }
            sent += len;
        }
        shutdown(fd_, SHUT_WR);
    }

    int fd_;
    int error_ = 0;
    std::thread thread_;
};

// --- scenarios ---

const std::vector<Params> kStarvationVariants =
    grid(all_setups(), {{"pool", {"ring", "legacy"}}, {"bufs", {1, 2, 8, 64}}});

const Register recv_starvation{{
    .family = "bufring",
    .name = "recv-starvation-enobufs",
    .summary = "a sender outpacing a consumer that returns no buffer ends multishot recv with -ENOBUFS once the "
               "group is empty; after re-arming, every byte arrives once, in order",
    .needs = {needs_op(IORING_OP_RECV), needs_capability("recv_multishot")},
    .variants = kStarvationVariants,
    .body = [](Ctx& ctx) {
        PoolKind kind = pool_kind(ctx);
        unsigned buffers = unsigned(ctx.params().num("bufs"));
        Ring ring(ctx, ctx.params().setup_or_none(), kRoomyCq);
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

const Register recv_rearm{{
    .family = "bufring",
    .name = "recv-enobufs-refill-rearm",
    .summary = "a consumer that refills only after -ENOBUFS and re-arms keeps a continuous stream whole: each "
               "request ends with -ENOBUFS on an empty group, the next continues at the next byte",
    .needs = {needs_op(IORING_OP_RECV), needs_capability("recv_multishot")},
    .variants = grid(all_setups(), {{"pool", {"ring", "legacy"}}}),
    .body = [](Ctx& ctx) {
        PoolKind kind = pool_kind(ctx);
        Ring ring(ctx, ctx.params().setup_or_none(), kRoomyCq);
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

// Waits without reaping until the kernel flags CQ overflow or `budget_ns`
// passes, entering the kernel meanwhile so that task work runs
// (COOP_TASKRUN and DEFER_TASKRUN complete receives only then).
bool stall_until_overflow(Ring& ring, uint64_t budget_ns) {
    uint64_t end = now_ns() + budget_ns;
    while (!(ring.sq_flags() & IORING_SQ_CQ_OVERFLOW) && now_ns() < end) {
        io_uring_get_events(ring.get());
        usleep(1000);
    }
    return ring.sq_flags() & IORING_SQ_CQ_OVERFLOW;
}

const Register recv_cq_overflow{{
    .family = "bufring",
    .name = "recv-cq-overflow",
    .summary = "a multishot recv flooding a tiny CQ while the consumer stalls raises IORING_SQ_CQ_OVERFLOW; no CQE "
               "is lost, the overflow is flushed in order and each request ends exactly once",
    .needs = {needs_op(IORING_OP_RECV), needs_buf_ring(), needs_capability("recv_multishot"),
              needs_feature(IORING_FEAT_NODROP, "NODROP")},
    .variants = grid(all_setups(), {{"cq", {4, 16}}}),
    .body = [](Ctx& ctx) {
        unsigned cq = unsigned(ctx.params().num("cq"));
        Ring ring(ctx, ctx.params().setup_or_none(), cq);
        SocketPair sockets = tcp_loopback(ctx);
        constexpr unsigned kBuffers = 128;  // four times what is sent: only the CQ can run out
        Pool pool(ctx, ring, PoolKind::ring, kBuffers, BufMode::plain);
        Receiver rx(ctx, ring, pool, sockets.server.get());
        rx.arm();

        uint64_t sent = 32ull * kBufLen;  // at least 32 CQEs, twice the largest CQ
        std::string data = pattern(0, sent);
        send_all(ctx, sockets.client.get(), data.data(), data.size());
        shutdown(sockets.client.get(), SHUT_WR);
        bool flagged = stall_until_overflow(ring, 1'000'000'000);
        ctx.metric("cq_ready_after_stall", io_uring_cq_ready(ring.get()));
        // io_uring_queue_init(3): "If the CQ ring overflows ... then if the
        // kernel supports IORING_FEAT_NODROP the ring enters a CQ ring overflow
        // state ... indicated by IORING_SQ_CQ_OVERFLOW being set in the SQ ring
        // flags. Unless the kernel runs out of available memory, entries are not dropped".
        ctx.expect_true(flagged, str(sent / kBufLen, "+ CQEs due into a CQ of ", cq, " entries (",
                                     io_uring_cq_ready(ring.get()), " ready) while the consumer stalled for 1 s, yet "
                                     "IORING_SQ_CQ_OVERFLOW never appeared in the SQ ring flags"));
        receive_to_eof(ctx, rx, pool);

        // Whether a multishot request ends when its CQE does not fit differs
        // between kernels: a behaviour to compare, not a verdict.
        auto first_ended = std::find_if(rx.cqes().begin(), rx.cqes().end(),
                                        [](const Cqe& cqe) { return cqe.user_data == kFirstRecv && !cqe.more(); });
        Cqe first_final = *first_ended;  // receive_to_eof() returns only after every request ended
        ctx.metric("multishot_terminates_on_overflow", flagged && first_final.res != 0);
        ctx.metric("overflow_final_res", first_final.res);
        check_requests(ctx, rx);
        check_bytes(ctx, pool, sent);
        ctx.expect_eq(ring.cq_overflow(), 0u, "CQEs dropped (cq.koverflow) with IORING_FEAT_NODROP and memory to spare");
        rx.report_metrics();
    }}};

const Register recv_incremental{{
    .family = "bufring",
    .name = "recv-incremental-partial",
    .summary = "with IOU_PBUF_RING_INC receives smaller than a buffer use it piece by piece: IORING_CQE_F_BUF_MORE "
               "until it is used up, each CQE continuing where the last left off",
    .needs = {needs_op(IORING_OP_RECV), needs_buf_ring_inc(), needs_capability("recv_multishot")},
    .variants = grid(all_setups()),
    .body = [](Ctx& ctx) {
        Ring ring(ctx, ctx.params().setup_or_none(), kRoomyCq);
        SocketPair sockets = tcp_loopback(ctx);
        constexpr unsigned kBuffers = 4, kLargeBuf = 4096;
        Pool pool(ctx, ring, PoolKind::ring, kBuffers, BufMode::incremental, kLargeBuf, IOU_PBUF_RING_INC);
        Receiver rx(ctx, ring, pool, sockets.server.get());

        uint64_t sent = 0;
        int chunks = ctx.pick(48, 256, 2048);
        for (int i = 0; i < chunks; ++i) {
            size_t len = 1 + size_t(i * 97) % 700;  // always less than a buffer
            std::string data = pattern(sent, len);
            send_all(ctx, sockets.client.get(), data.data(), data.size());
            sent += len;
            receive_bytes(ctx, rx, pool, sent);
        }
        shutdown(sockets.client.get(), SHUT_WR);
        receive_to_eof(ctx, rx, pool);

        check_requests(ctx, rx);
        // byte_conservation() in incremental mode holds each CQE to
        // io_uring_register_buf_ring(3): "each completion of a given buffer ID
        // will continue where the previous one left off".
        check_bytes(ctx, pool, sent);
        ctx.metric("buf_more_cqes", rx.buf_more_cqes());
        ctx.expect_true(rx.buf_more_cqes() > 0, str("no CQE carried IORING_CQE_F_BUF_MORE although each of ", chunks,
                                                    " receives was smaller than a ", kLargeBuf, "-byte buffer"));
        rx.report_metrics();
    }}};

const Register recv_bundle{{
    .family = "bufring",
    .name = "recv-bundle-spans-buffers",
    .summary = "with IORING_RECVSEND_BUNDLE one CQE fills several buffers, contiguous in ring order from the id it "
               "names; bytes and buffer ids add up",
    .needs = {needs_op(IORING_OP_RECV), needs_buf_ring(), needs_feature(IORING_FEAT_RECVSEND_BUNDLE, "RECVSEND_BUNDLE"),
              needs_capability("recv_multishot"), needs_capability("recv_bundle")},
    .variants = grid(all_setups()),
    .body = [](Ctx& ctx) {
        Ring ring(ctx, ctx.params().setup_or_none(), kRoomyCq);
        SocketPair sockets = tcp_loopback(ctx);
        constexpr unsigned kBuffers = 32, kSmallBuf = 64;
        Pool pool(ctx, ring, PoolKind::ring, kBuffers, BufMode::bundle, kSmallBuf);
        Receiver rx(ctx, ring, pool, sockets.server.get(), IORING_RECVSEND_BUNDLE);

        // Each chunk is queued before the receive runs (the first one before it
        // is even armed) and fills 2 to 16 of the group's 32 buffers.
        uint64_t sent = 0;
        int chunks = ctx.pick(32, 256, 2048);
        for (int i = 0; i < chunks; ++i) {
            size_t len = 100 + size_t(i * 211) % 900;
            std::string data = pattern(sent, len);
            send_all(ctx, sockets.client.get(), data.data(), data.size());
            sent += len;
            receive_bytes(ctx, rx, pool, sent);
        }
        shutdown(sockets.client.get(), SHUT_WR);
        receive_to_eof(ctx, rx, pool);

        check_requests(ctx, rx);
        check_bytes(ctx, pool, sent);
        ctx.metric("max_buffers_per_cqe", rx.max_buffers_per_cqe());
        // io_uring_prep_recv(3): with IORING_RECVSEND_BUNDLE "the receive
        // operation will attempt to fill multiple buffers ... the initial
        // receive may contain less buffers than what is available, with the
        // followup receive(s) containing more buffers."
        ctx.expect_true(rx.max_buffers_per_cqe() > 1,
                        str("no CQE spanned more than one ", kSmallBuf, "-byte buffer over ", chunks,
                            " chunks of 100 to 999 bytes"));
        rx.report_metrics();
    }}};

}  // namespace
