// Provided buffers at their edges (issue #19): the 16-bit ring head and tail
// wrapping, a pickup that empties the ring then a refill, datagrams longer
// than their buffer (recv(2) truncation, MSG_TRUNC) and buffers longer than
// one read or receive may transfer (MAX_RW_COUNT), each on plain and
// incremental (IOU_PBUF_RING_INC) rings. Like the rest of the bufring family
// (bufring.cpp says how), every buffer a CQE names goes through the Pool's
// BufferLedger: it must be one the kernel held.
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "bufring_pool.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;
using namespace bufring_family;

enum class RingKind { plain, incremental };

BufMode buf_mode(RingKind kind) { return kind == RingKind::plain ? BufMode::plain : BufMode::incremental; }
uint16_t ring_flags(RingKind kind) { return kind == RingKind::plain ? 0 : uint16_t(IOU_PBUF_RING_INC); }

struct EdgeParams {
    Setup setup;
    MultishotOp op = MultishotOp::recv;
    RingKind ring = RingKind::plain;
};

template <typename P>
auto ring_kinds() {
    return axis("ring", &P::ring, {{RingKind::plain, "plain"}, {RingKind::incremental, "inc"}});
}
auto op_axis() { return axis("op", &EdgeParams::op, {{MultishotOp::recv, "recv"}, {MultishotOp::read, "read"}}); }

// The variant's ring kind and multishot opcode: an incremental ring needs
// IOU_PBUF_RING_INC accepted by registration, a read IORING_OP_READ_MULTISHOT.
template <typename P>
Need<P> edge_needs() {
    return Need<P>([](const Probe& probe, const P& p) -> std::optional<std::string> {
        if (auto why = needs_buf_ring()(probe)) return why;
        if (p.ring == RingKind::incremental)
            if (auto why = needs_buf_ring_inc()(probe)) return why;
        if constexpr (requires { p.op; })
            if (p.op == MultishotOp::read) return needs_op(compat::op_read_multishot)(probe);
        if (auto why = needs_op(IORING_OP_RECV)(probe)) return why;
        return needs_capability("recv_multishot")(probe);
    });
}

// The byte source a receive reads: a TCP loopback pair for recv, a pipe for read.
class Source {
  public:
    Source(Ctx& ctx, MultishotOp op) {
        if (op == MultishotOp::recv) {
            SocketPair s = tcp_loopback(ctx);
            write_ = std::move(s.client);
            read_ = std::move(s.server);
        } else {
            Pipe p = make_pipe(ctx);
            write_ = std::move(p.write);
            read_ = std::move(p.read);
        }
    }
    int reader() const { return read_.get(); }
    int writer() const { return write_.get(); }
    // The peer is done: the receive sees end of file (res 0).
    void close_writer() { write_.reset(); }

  private:
    Fd read_, write_;
};

const Register<EdgeParams> head_wrap{{
    .family = bufring,
    .name = "head-wrap-ids-unique",
    .summary = "more than 2^16 buffers through a 4096-entry ring (its 16-bit head and tail wrap): every buffer id a CQE "
               "names was provided and not handed out twice, and every byte arrives once, in order",
    .needs = {edge_needs<EdgeParams>()},
    // 2^16 CQEs cost about 0.3 s per variant on the host and seconds in a TCG
    // guest. The head arithmetic differs by opcode (buffer selection in
    // net.c and rw.c) and ring kind (incremental commit), not by setup mode,
    // so one mode carries the four. The counters wrap by count, whatever the
    // ring's size: 4096 entries (16 laps per wrap) keep the write/reap round
    // trips to a few dozen, which is what a TCG guest pays for.
    .variants = grid(setups(&EdgeParams::setup, {Setup::none}), op_axis(), ring_kinds<EdgeParams>()),
    .body = [](Ctx& ctx, const EdgeParams& p) {
        constexpr unsigned kEntries = 4096, kSmallBuf = 16;
        Ring ring(ctx, p.setup, kEntries);  // a batch (half the ring) fits the CQ: no overflow ends the request
        Source source(ctx, p.op);
        Pool pool(ctx, ring, PoolKind::ring, kEntries, buf_mode(p.ring), kSmallBuf, ring_flags(p.ring));
        Receiver rx(ctx, ring, pool, source.reader(), 0, p.op);
        rx.arm();

        // Half the ring per batch, so it never runs dry; an incremental ring
        // also gets half a buffer more, which the next batch continues.
        const size_t batch = kEntries / 2 * kSmallBuf + (p.ring == RingKind::incremental ? kSmallBuf / 2 : 0);
        // At the last batch up to a ring's worth is still unconsumed, so two
        // rings past 2^16 provided is at least one full lap consumed past the wrap.
        const uint64_t target = (uint64_t(1) << 16) * ctx.pick(1u, 2u, 8u) + 2 * kEntries;
        uint64_t sent = 0;
        while (pool.provides() < target) {
            std::string data = pattern(sent, batch);
            send_all(ctx, source.writer(), data.data(), data.size());
            sent += batch;
            receive_bytes(ctx, rx, pool, sent);
        }
        source.close_writer();
        receive_to_eof(ctx, rx, pool);

        ctx.metric("buffers_provided", pool.provides());
        check_requests(ctx, rx);
        // io_uring_provided_buffers(7): "Each buffer has a unique buffer ID
        // (bid) within its buffer group"; the ring's head and tail are __u16
        // (io_uring_register_buf_ring(3): "__u16 tail") and wrap past 65535
        // many times here: a stale or skipped entry shows as a buffer the
        // kernel did not hold, or as bytes out of place.
        check_bytes(ctx, pool, sent);
        rx.report_metrics();
    },
    // Each CQE costs ~90 us under TCG: the 2^16+ of a wrap take 6-9 s in a
    // guest, past the quick profile's 10 s watchdog on a busy host.
    .min_timeout_s = 30}};

struct RingOnly {
    Setup setup;
    RingKind ring = RingKind::plain;
};

const Register<RingOnly> refill_after_empty{{
    .family = bufring,
    .name = "refill-after-empty-next-cqe-new-buffer",
    .summary = "multishot recv takes every buffer of a 4-entry ring; one buffer given back is the one the next CQE "
               "names; with the ring empty again the request ends with -ENOBUFS and no data lost",
    .needs = {edge_needs<RingOnly>()},
    .variants = grid(setups(&RingOnly::setup, all_setups()), ring_kinds<RingOnly>()),
    .body = [](Ctx& ctx, const RingOnly& p) {
        Ring ring(ctx, p.setup, kRoomyCq);
        SocketPair sockets = tcp_loopback(ctx);
        constexpr unsigned kEntries = 4, kBuf = 64, kRefill = 2;
        Pool pool(ctx, ring, PoolKind::ring, kEntries, buf_mode(p.ring), kBuf, ring_flags(p.ring));
        Receiver rx(ctx, ring, pool, sockets.server.get());
        constexpr uint64_t kQuietNs = 20'000'000;
        auto send_next = [&, sent = uint64_t(0)](size_t len) mutable {
            std::string data = pattern(sent, len);
            send_all(ctx, sockets.client.get(), data.data(), data.size());
            return sent += len;
        };
        auto receive_until = [&](uint64_t bytes) {
            while (rx.received() < bytes && rx.live()) rx.reap();
        };

        rx.arm();
        receive_until(send_next(kEntries * kBuf));  // the pickups that empty the ring
        // Whether the request ends at once with the ring empty (6.1) or stays
        // armed until data finds no buffer (6.18) differs between kernels.
        while (rx.live() && rx.reap_within(kQuietNs)) {}
        ctx.metric("ends_when_pickup_empties_ring", !rx.live());
        if (!rx.live()) ctx.expect_eq(rx.last_final_res(), -ENOBUFS, "res of the request that emptied the ring");

        pool.give_back(kRefill);
        if (!rx.live()) rx.arm();
        uint64_t sent = send_next(kBuf);
        receive_until(sent);
        // io_uring_register_buf_ring(3): "tail is the index at which the
        // application can insert new buffers for consumption by requests": the
        // one buffer past the old tail is the only one the kernel can take.
        const Cqe& next = rx.cqes().back();
        ctx.expect_true(next.has_buffer() && next.buffer_id() == kRefill && next.res == int(kBuf),
                        str("the CQE after refilling buffer id ", kRefill, " into an empty ring: ", next.describe()));

        // io_uring_multishot(7): "If the buffer ring becomes empty, the
        // multishot operation terminates with -ENOBUFS."
        sent = send_next(kBuf);
        while (rx.live()) rx.reap();
        ctx.expect_eq(rx.last_final_res(), -ENOBUFS, "res of the request once data found the ring empty");
        ctx.expect_eq(pool.available(), 0u, "buffers the kernel held, by the ledger, when it reported -ENOBUFS");

        pool.recycle();
        rx.arm();
        shutdown(sockets.client.get(), SHUT_WR);
        receive_to_eof(ctx, rx, pool);
        check_requests(ctx, rx);
        check_bytes(ctx, pool, sent);
        rx.report_metrics();
    }}};

// Ends of the receive's requests but the live last one: io_uring_multishot(7),
// one final CQE without IORING_CQE_F_MORE each, nothing after it.
void check_ended_requests(Ctx& ctx, const Receiver& rx) {
    std::map<uint64_t, std::vector<Cqe>> by_request;
    for (const Cqe& cqe : rx.cqes()) by_request[cqe.user_data].push_back(cqe);
    for (uint64_t user_data : rx.requests())
        if (user_data != rx.current() || !rx.live())
            if (!ctx.expect(multishot_contract(by_request[user_data], user_data))) return;
}

struct TruncParams {
    Setup setup;
    RingKind ring = RingKind::plain;
    bool msg_trunc = false;
};

const Register<TruncParams> udp_truncated{{
    .family = bufring,
    .name = "udp-datagram-over-buffer-truncated",
    .summary = "UDP datagrams longer than the room in their provided buffer: res is what fitted (with MSG_TRUNC the "
               "datagram's real length), the buffer holds the datagram's first bytes, the rest is dropped and no "
               "buffer is used up without data",
    .needs = {edge_needs<TruncParams>()},
    .variants = grid(setups(&TruncParams::setup, all_setups()), ring_kinds<TruncParams>(),
                     axis("flags", &TruncParams::msg_trunc, {{false, "none"}, {true, "msg_trunc"}})),
    .body = [](Ctx& ctx, const TruncParams& p) {
        Ring ring(ctx, p.setup, kRoomyCq);
        SocketPair sockets = udp_loopback(ctx);
        constexpr unsigned kEntries = 8, kBuf = 64;
        Pool pool(ctx, ring, PoolKind::ring, kEntries, buf_mode(p.ring), kBuf, ring_flags(p.ring));
        // With MSG_TRUNC an incremental ring is known to commit the real
        // length rather than the bytes copied, using up buffers no byte
        // reached (axboe/liburing#1619, open, seen on 6.18.26 with recvmsg);
        // the ledger shows it as IORING_CQE_F_BUF_MORE on a full buffer.
        if (p.msg_trunc) pool.allow_truncated_res();
        Receiver rx(ctx, ring, pool, sockets.server.get(), 0, MultishotOp::recv, p.msg_trunc ? MSG_TRUNC : 0);

        // Longer, shorter and exactly as long as a buffer; each datagram's
        // bytes start at its own stream offset, so a spilled tail shows.
        const std::vector<size_t> lens{200, 40, 64, 100, 1, 63, 65};
        const size_t datagrams = 4 * kEntries;
        auto offset_of = [](size_t k) { return uint64_t(k) << 12; };
        for (size_t k = 0; k < datagrams; ++k) {
            std::string data = pattern(offset_of(k), lens[k % lens.size()]);
            send_all(ctx, sockets.client.get(), data.data(), data.size());
        }
        rx.arm();
        auto data_cqes = [&] {
            return size_t(std::count_if(rx.cqes().begin(), rx.cqes().end(), [](const Cqe& c) { return c.res > 0; }));
        };
        while (data_cqes() < datagrams) {
            if (!rx.live()) {
                if (rx.last_final_res() != -ENOBUFS)
                    ctx.must(Check::fail(str("multishot recv ended after ", data_cqes(), " of ", datagrams,
                                             " datagrams, other than by -ENOBUFS: res ", rx.last_final_res())));
                // io_uring_provided_buffers(7): "If no buffer was available when
                // the operation completed, the operation fails with -ENOBUFS."
                // Buffers the ledger says the kernel still holds were used up
                // without data reaching them.
                ctx.expect_eq(pool.available(), 0u, "buffers the kernel held, by the ledger, at -ENOBUFS");
                pool.recycle();
                rx.arm();
            }
            rx.reap();
        }
        while (std::optional<Cqe> extra = rx.reap_within(20'000'000))
            if (extra->res > 0) ctx.expect(Check::fail(str("a data CQE beyond the ", datagrams, " datagrams sent"), *extra));

        // The datagrams in order against the CQEs that carry them; `room` is
        // what the buffer under the ring's head has left (an incremental ring
        // goes on in a buffer until it is used up).
        unsigned room = kBuf;
        size_t k = 0;
        for (const BufEvent& event : pool.log()) {
            if (event.kind != BufEvent::Kind::completion || event.cqe.res <= 0) continue;
            size_t len = lens[k % lens.size()];
            size_t fitted = std::min<size_t>(len, room);
            // recv(2): "If a message is too long to fit in the supplied buffer,
            // excess bytes may be discarded depending on the type of socket";
            // MSG_TRUNC: "return the real length of the packet or datagram,
            // even when it was longer than the passed buffer".
            size_t want = p.msg_trunc ? len : fitted;
            if (!ctx.expect_true(size_t(event.cqe.res) == want && event.bytes == pattern(offset_of(k), fitted),
                                 str("datagram ", k, " of ", len, " bytes into ", room, " bytes of room: want res ",
                                     want, " and its first ", fitted, " bytes; got ", event.cqe.describe(), " holding ",
                                     event.bytes.size(), " bytes", event.bytes == pattern(offset_of(k), event.bytes.size())
                                                                        ? " (its own)" : " (not its own)")))
                break;
            if (p.ring == RingKind::incremental && fitted < room)
                room -= unsigned(fitted);
            else
                room = kBuf;
            ++k;
        }
        check_ended_requests(ctx, rx);
        ctx.metric("starvations", rx.starvations());
        ctx.add_iterations(datagrams);
    }}};

// MAX_RW_COUNT (include/linux/fs.h): INT_MAX & PAGE_MASK, the most one read(2)
// or recv(2) transfers ("read() (and similar system calls) will transfer at
// most 0x7ffff000 (2,147,479,552) bytes", read(2)).
constexpr int64_t kMaxRwCount = 0x7ffff000;
constexpr unsigned kHugeBuf = 3u << 30;  // over MAX_RW_COUNT, under the u32 len of io_uring_buf
constexpr unsigned kHugeEntries = 2;

// The buffers are mapped MAP_NORESERVE (BufRing): only pages written cost
// memory, but the address space must be there. Tried in the parent.
std::optional<std::string> huge_mapping_refused(const Probe&, const EdgeParams&) {
    size_t len = size_t(kHugeEntries) * kHugeBuf;
    void* mem = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) return str("host refused a ", len >> 30, " GiB MAP_NORESERVE mapping for the buffers: ",
                                      errno_name(errno));
    munmap(mem, len);
    return std::nullopt;
}

const Register<EdgeParams> huge_buffers{{
    .family = bufring,
    .name = "buffer-over-max-rw-count-len-bounded",
    .summary = "provided buffers of 3 GiB (over MAX_RW_COUNT) under multishot recv and read: every res is positive and "
               "at most MAX_RW_COUNT, and the bytes are exactly those sent, in order",
    .needs = {edge_needs<EdgeParams>(), Need<EdgeParams>(huge_mapping_refused)},
    .variants = grid(setups(&EdgeParams::setup, all_setups()), op_axis(), ring_kinds<EdgeParams>()),
    .body = [](Ctx& ctx, const EdgeParams& p) {
        Ring ring(ctx, p.setup, kRoomyCq);
        Source source(ctx, p.op);
        Pool pool(ctx, ring, PoolKind::ring, kHugeEntries, buf_mode(p.ring), kHugeBuf, ring_flags(p.ring));
        Receiver rx(ctx, ring, pool, source.reader(), 0, p.op);
        rx.arm();

        // Chunks a pipe (64 KiB) and a loopback socket take without a reader,
        // so a send never waits on task work this thread has to run.
        const std::vector<size_t> chunks{1, 4095, 4096, 32768, 12345};
        uint64_t sent = 0;
        int rounds = ctx.pick(10, 40, 200);
        for (int i = 0; i < rounds; ++i) {
            std::string data = pattern(sent, chunks[size_t(i) % chunks.size()]);
            send_all(ctx, source.writer(), data.data(), data.size());
            sent += data.size();
            receive_bytes(ctx, rx, pool, sent);
        }
        source.close_writer();
        receive_to_eof(ctx, rx, pool);

        // recv(2)/read(2): a transfer returns the bytes it moved, at most
        // MAX_RW_COUNT, whatever the buffer's length.
        int32_t largest = 0;
        for (const Cqe& cqe : rx.cqes()) {
            largest = std::max(largest, cqe.res);
            if (cqe.res > 0 && !ctx.expect_true(int64_t(cqe.res) <= kMaxRwCount,
                                                str("res over MAX_RW_COUNT (", kMaxRwCount, "): ", cqe.describe())))
                break;
        }
        ctx.metric("largest_res", largest);
        check_requests(ctx, rx);
        check_bytes(ctx, pool, sent);
        rx.report_metrics();
    }}};

}  // namespace
