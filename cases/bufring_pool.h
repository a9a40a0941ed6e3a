// Pieces shared by the bufring family's files (bufring.cpp, bufring_modes.cpp,
// bufring_edges.cpp):
// a buffer group as the scenarios use it (Pool), the re-arming multishot
// Receiver with the playbook's counters, and a Sender thread.
#pragma once

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

namespace bufring_family {

using namespace uc;

constexpr uint16_t kGroup = 3;             // buffer group id
constexpr uint64_t kFirstRecv = 1;         // user_data of the first multishot recv; each re-arm takes the next
constexpr uint64_t kProvide = 1'000'000;   // user_data of legacy IORING_OP_PROVIDE_BUFFERS SQEs
constexpr unsigned kBufLen = 256;          // bytes per buffer, unless a scenario says otherwise
constexpr unsigned kRoomyCq = 256;         // a CQ that cannot overflow where overflow is not under test

// --- a buffer group as the scenarios use it ---

enum class PoolKind { ring, legacy };

// Kernel-side buffers (a ring, or legacy buffers given by SQEs, each keeping
// the ledger of what the kernel holds), the buffers the application got
// back, and the log byte_conservation() replays.
class Pool {
  public:
    Pool(Ctx& ctx, Ring& ring, PoolKind kind, unsigned entries, BufMode mode, unsigned buf_len = kBufLen,
         uint16_t ring_flags = 0)
        : ctx_(ctx), ring_(ring), kind_(kind), buf_len_(buf_len) {
        if (kind == PoolKind::ring)
            ring_bufs_.emplace(ring, kGroup, entries, buf_len, BufRingSetup{ring_flags, mode});
        else
            legacy_.emplace(ring, kGroup, entries, buf_len, kProvide, mode);
        for (unsigned bid = 0; bid < entries; ++bid) note_provided(bid);
    }

    BufMode mode() const { return ledger().mode(); }
    unsigned available() const { return ledger().held_count(); }
    const std::vector<BufEvent>& log() const { return log_; }
    bool is_provide_cqe(const Cqe& cqe) const { return kind_ == PoolKind::legacy && cqe.user_data == kProvide; }
    // The receive passes recv(2) MSG_TRUNC: res may exceed its buffer (BufferLedger::allow_truncated_res).
    void allow_truncated_res() { ledger().allow_truncated_res(); }
    uint64_t provides() const { return provides_; }

    // Accounts a CQE of the receive: the ledger must accept it; its bytes
    // are copied into the log; the buffers it released wait for recycle().
    // Returns how many buffers it used.
    size_t account(const Cqe& cqe) {
        ctx_.must(ledger().consume(cqe, &spans_));
        std::string bytes;
        for (const BufSpan& span : spans_) {
            bytes.append(reinterpret_cast<const char*>(data(span.bid)) + span.offset, span.len);
            if (span.released) released_.push_back(span.bid);
        }
        log_.push_back(BufEvent::completed(cqe, std::move(bytes)));
        return spans_.size();
    }

    // Gives buffer `bid`, which a CQE released, back to the kernel alone.
    void give_back(unsigned bid) {
        auto it = std::find(released_.begin(), released_.end(), bid);
        if (it == released_.end()) ctx_.error(str("give_back(", bid, "): the application does not hold it"));
        released_.erase(it);
        provide_to_kernel(bid);
        if (legacy_) ring_.submit();
    }

    // Gives every buffer the application holds back to the kernel.
    void recycle() {
        if (released_.empty()) return;
        for (unsigned bid : released_) provide_to_kernel(bid);
        released_.clear();
        if (legacy_) ring_.submit();
    }

  private:
    BufferLedger& ledger() { return ring_bufs_ ? ring_bufs_->ledger() : legacy_->ledger(); }
    const BufferLedger& ledger() const { return ring_bufs_ ? ring_bufs_->ledger() : legacy_->ledger(); }
    const uint8_t* data(unsigned bid) const { return ring_bufs_ ? ring_bufs_->data(bid) : legacy_->data(bid); }
    void provide_to_kernel(unsigned bid) {
        if (ring_bufs_)
            ring_bufs_->provide(bid);
        else
            legacy_->provide(bid);
        note_provided(bid);
    }
    void note_provided(unsigned bid) {
        ++provides_;
        log_.push_back(BufEvent::provided(bid, buf_len_));
    }

    Ctx& ctx_;
    Ring& ring_;
    PoolKind kind_;
    unsigned buf_len_;
    std::optional<BufRing> ring_bufs_;
    std::optional<LegacyBuffers> legacy_;
    std::vector<BufEvent> log_;
    std::vector<BufSpan> spans_;
    std::vector<unsigned> released_;
    uint64_t provides_ = 0;
};

// Which multishot request a Receiver arms: a recv on a socket
// (io_uring_prep_recv_multishot(3)) or a read (io_uring_prep_read_multishot(3),
// liburing 2.5+: IORING_OP_READ_MULTISHOT with len 0, offset 0).
enum class MultishotOp { recv, read };

// A multishot receive on one fd, re-armed with a fresh user_data whenever
// the previous request ended, with the playbook's counters. `recv_flags`
// go to the SQE's ioprio, `msg_flags` to recv(2)'s flags.
class Receiver {
  public:
    Receiver(Ctx& ctx, Ring& ring, Pool& pool, int fd, unsigned recv_flags = 0, MultishotOp op = MultishotOp::recv,
             int msg_flags = 0)
        : ctx_(ctx), ring_(ring), pool_(pool), fd_(fd), recv_flags_(recv_flags), op_(op), msg_flags_(msg_flags) {}

    // Arms a new request (the first, or a repost after the last one ended).
    void arm() {
        if (live_) ctx_.error("arming a second multishot receive while one is live");
        uint64_t user_data = kFirstRecv + requests_.size();
        io_uring_sqe* sqe = ring_.sqe(user_data, op_ == MultishotOp::recv ? "multishot recv" : "multishot read");
        if (op_ == MultishotOp::recv)
            io_uring_prep_recv_multishot(sqe, fd_, nullptr, 0, msg_flags_);
        else
            io_uring_prep_rw(compat::op_read_multishot, sqe, fd_, nullptr, 0, 0);
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
        return accept(ring_.wait());
    }

    // reap(), but only a CQE that arrives within `timeout_ns`.
    std::optional<Cqe> reap_within(uint64_t timeout_ns) {
        max_cq_depth_ = std::max(max_cq_depth_, io_uring_cq_ready(ring_.get()));
        std::optional<Cqe> cqe = ring_.wait_for(timeout_ns);
        if (cqe) accept(*cqe);
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
    Cqe accept(const Cqe& cqe) {
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
    MultishotOp op_;
    int msg_flags_;
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
inline void pump(Ctx& ctx, Receiver& rx, Pool& pool, Done done) {
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
inline void receive_bytes(Ctx& ctx, Receiver& rx, Pool& pool, uint64_t bytes) {
    pump(ctx, rx, pool, [&] { return rx.received() >= bytes; });
}

// Receives until a request ends with res 0: the peer shut down after sending everything.
inline void receive_to_eof(Ctx& ctx, Receiver& rx, Pool& pool) {
    pump(ctx, rx, pool, [&] { return !rx.requests().empty() && !rx.live() && rx.last_final_res() == 0; });
}

// Sends `chunks` pattern chunks of `chunk_len(i)` bytes, receiving each before
// the next goes out, then shuts the sender down and receives to EOF. Returns
// the bytes sent.
template <typename ChunkLen>
uint64_t stream_chunks_to_eof(Ctx& ctx, int sender, Receiver& rx, Pool& pool, int chunks, ChunkLen chunk_len) {
    uint64_t sent = 0;
    for (int i = 0; i < chunks; ++i) {
        std::string data = pattern(sent, chunk_len(i));
        send_all(ctx, sender, data.data(), data.size());
        sent += data.size();
        receive_bytes(ctx, rx, pool, sent);
    }
    shutdown(sender, SHUT_WR);
    receive_to_eof(ctx, rx, pool);
    return sent;
}

// io_uring_multishot(7): each request's CQEs carry IORING_CQE_F_MORE but the
// last, exactly one final CQE ends it and nothing follows; the last request
// ended with res 0 at the peer's shutdown.
inline void check_requests(Ctx& ctx, const Receiver& rx) {
    std::map<uint64_t, std::vector<Cqe>> by_request;
    for (const Cqe& cqe : rx.cqes()) by_request[cqe.user_data].push_back(cqe);
    for (uint64_t user_data : rx.requests()) {
        MultishotExpect expect;
        if (user_data == rx.requests().back()) expect.final_res = {0};
        if (!ctx.expect(multishot_contract(by_request[user_data], user_data, expect))) return;
    }
}

inline void check_bytes(Ctx& ctx, const Pool& pool, uint64_t sent) {
    ctx.expect(byte_conservation(pool.log(), pool.mode(), sent));
}

// What the variant's pool needs: legacy provided buffers their opcode and a
// multishot recv that takes them, a buffer ring its registration.
template <typename P>
Need<P> pool_needs() {
    return Need<P>([](const Probe& probe, const P& p) -> std::optional<std::string> {
        if (p.pool == PoolKind::ring) return needs_buf_ring()(probe);
        if (auto why = needs_op(IORING_OP_PROVIDE_BUFFERS)(probe)) return why;
        return needs_capability("recv_multishot_legacy_buffers")(probe);
    });
}

inline const Family bufring{"bufring"};

// Parameters of the scenarios that run on either kind of pool.
struct PoolParams {
    Setup setup;
    PoolKind pool;
    unsigned bufs = 8;
};
inline auto pool_axis() { return axis("pool", &PoolParams::pool, {{PoolKind::ring, "ring"}, {PoolKind::legacy, "legacy"}}); }

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

}  // namespace bufring_family
