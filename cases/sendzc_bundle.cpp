// Sends from provided buffers (IOSQE_BUFFER_SELECT, IORING_RECVSEND_BUNDLE,
// 6.10+), after io_uring_prep_send(3) and the networking playbook (seed 003):
// the second half of the sendzc family; sendzc.cpp has the zero-copy sends.
// Buffers hold a pattern() stream, so receivers check content, order and
// loss byte by byte against the ring order the kernel must consume.
#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "bufring.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"
#include "sendzc_common.h"
#include "zc_checks.h"

namespace {

using namespace uc;
using namespace sendzc_family;

// --- capability probes ---

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

// Send from a provided buffer (6.10). The uapi has no IORING_FEAT_SEND_BUF_SELECT
// (the playbook and io_uring_prep_send(3) name one; io_uring.h defines only
// IORING_FEAT_RECVSEND_BUNDLE), so this is found by trying: older kernels
// refuse IOSQE_BUFFER_SELECT on an opcode without buffer_select with
// -EOPNOTSUPP (io_init_req(), io_uring/io_uring.c).
const CapabilityProbe send_buf_select_probe{"send_buf_select", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_SEND)) return *missing;
    if (!probe.buf_ring) return absent("IORING_REGISTER_PBUF_RING", "refused (probe buf_ring)");
    return probe_send("IORING_OP_SEND with IOSQE_BUFFER_SELECT of a 1-byte provided buffer over UDP",
                      [](io_uring* ring, io_uring_sqe* sqe, int fd, uint8_t* byte) {
                          probe_provide_byte(ring, byte);
                          io_uring_prep_send(sqe, fd, nullptr, 0, 0);
                          sqe->flags |= IOSQE_BUFFER_SELECT;
                          sqe->buf_group = kGroup;
                      });
}};

// A send bundle: the feature bit is the documented sign
// (IORING_FEAT_RECVSEND_BUNDLE, 6.10); an unknown send flag is -EINVAL
// (io_sendmsg_prep(), io_uring/net.c).
const CapabilityProbe send_bundle_probe{"send_bundle", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_SEND)) return *missing;
    if (!probe.has_feature(IORING_FEAT_RECVSEND_BUNDLE))
        return absent("io_uring_params.features", "IORING_FEAT_RECVSEND_BUNDLE not set");
    if (!probe.buf_ring) return absent("IORING_REGISTER_PBUF_RING", "refused (probe buf_ring)");
    return probe_send("IORING_OP_SEND with IORING_RECVSEND_BUNDLE|IOSQE_BUFFER_SELECT of a 1-byte provided buffer over UDP",
                      [](io_uring* ring, io_uring_sqe* sqe, int fd, uint8_t* byte) {
                          probe_provide_byte(ring, byte);
                          io_uring_prep_send(sqe, fd, nullptr, 0, 0);
                          sqe->ioprio |= IORING_RECVSEND_BUNDLE;
                          sqe->flags |= IOSQE_BUFFER_SELECT;
                          sqe->buf_group = kGroup;
                      });
}};
// --- sends from provided buffers (6.10+) ---

// A provided-buffer ring for sends: the scenario writes a buffer's bytes, then
// hands it to the kernel; the ring's ledger (bundle mode: a CQE consumes
// buffers in ring order from the one it names) is what the kernel must consume.
class SendBuffers {
  public:
    SendBuffers(Ring& ring, unsigned entries, uint32_t max_len)
        : bufs_(ring, kGroup, entries, max_len, BufRingSetup{.mode = BufMode::bundle, .provide_all = false}) {}

    // Fills buffers 0..n-1 with lens[bid] bytes each, continuing the pattern()
    // stream at *offset, and adds them to the ring in that order.
    void provide_stream(const std::vector<uint32_t>& lens, uint64_t* offset) {
        for (uint16_t bid = 0; bid < lens.size(); ++bid) {
            fill_pattern(bufs_.writable(bid), lens[bid], *offset);
            *offset += lens[bid];
            bufs_.provide(bid, lens[bid]);
        }
    }
    BufferLedger& ledger() { return bufs_.ledger(); }

  private:
    BufRing bufs_;
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
size_t account_request(Ctx& ctx, const Ring& ring, uint64_t id, SendBuffers& bufs, uint64_t* sent) {
    std::vector<Cqe> cqes = ring.trace().for_request(id);
    for (const Cqe& cqe : cqes) ctx.must(send_buffers_accounting(cqe, bufs.ledger(), sent));
    return cqes.size();
}

struct BundleParams {
    Setup setup;
    bool tcp;
};

const Register<BundleParams> bundle_in_order{{
    .family = sendzc,
    .name = "bundle-sends-buffers-in-order",
    .summary = "a send bundle with len 0 posts one CQE: res = every provided byte, buffer id = the first buffer; "
               "the receiver gets the buffers' bytes in ring order",
    .needs = {needs_op(IORING_OP_SEND), needs_buf_ring(), needs_feature(IORING_FEAT_RECVSEND_BUNDLE, "RECVSEND_BUNDLE"),
              needs_capability("send_bundle")},
    .variants = grid(setups(&BundleParams::setup, {Setup::none}),
                     axis("transport", &BundleParams::tcp, {{true, "tcp"}, {false, "udp"}})),
    .body = [](Ctx& ctx, const BundleParams& p) {
        bool tcp = p.tcp;
        Ring ring(ctx, p.setup);
        SocketPair sockets = tcp ? tcp_loopback(ctx) : udp_loopback(ctx);
        SendBuffers bufs(ring, unsigned(kBufferLens.size()), kBufferMax);
        std::optional<StreamReader> reader;
        if (tcp) reader.emplace(sockets.server.get());
        uint64_t offset = 0, sent = 0;
        const int rounds = ctx.pick(4, 16, 64);
        for (int round = 0; round < rounds; ++round) {
            uint64_t id = uint64_t(round) + 1, start = offset, sent_before = sent;
            bufs.provide_stream(kBufferLens, &offset);
            if (reader) reader->allow(offset);
            queue_send_from_buffers(ring, id, sockets.client.get(), 0, true);
            ring.submit();
            ring.reap_until_final(id);
            size_t cqes = account_request(ctx, ring, id, bufs, &sent);
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

const Register<BundleParams> bundle_nonzero_len{{
    .family = sendzc,
    .name = "bundle-nonzero-len-refused-or-capped",
    .summary = "a send bundle with len != 0 fails with -EINVAL (io_uring_prep_send(3)), or where the kernel takes "
               "len as a cap, its first CQE sends at most len bytes; the wire matches the CQEs",
    .needs = {needs_op(IORING_OP_SEND), needs_buf_ring(), needs_feature(IORING_FEAT_RECVSEND_BUNDLE, "RECVSEND_BUNDLE"),
              needs_capability("send_bundle")},
    .variants = grid(setups(&BundleParams::setup, {Setup::none}), axis("transport", &BundleParams::tcp, {{true, "tcp"}})),
    .body = [](Ctx& ctx, const BundleParams& p) {
        Ring ring(ctx, p.setup);
        SocketPair sockets = tcp_loopback(ctx);
        const std::vector<uint32_t> lens(4, 512);
        SendBuffers bufs(ring, unsigned(lens.size()), 512);
        StreamReader reader(sockets.server.get());
        uint64_t offset = 0, sent = 0;
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
            account_request(ctx, ring, 2, bufs, &sent);
        } else {
            ctx.metric("bundle_nonzero_len", "capped");
            ctx.expect_true(first.res <= int32_t(lens[0]),
                            str("first CQE of a bundle with len ", lens[0], " sends at most len bytes: ",
                                first.describe()));
            ctx.expect(multishot_contract(ring.trace().all(), 1));
            ctx.metric("bundle_nonzero_len_cqes", account_request(ctx, ring, 1, bufs, &sent));
            ctx.metric("bundle_nonzero_len_bytes", sent);
        }
        reader.wait_for(ctx, sent);
        ctx.expect(reader.stream_intact(sent));
    }}};

const Register<SetupOnly> buffer_select_order{{
    .family = sendzc,
    .name = "buffer-select-sends-in-ring-order",
    .summary = "several sends from provided buffers in flight on one TCP socket each send one whole buffer, and "
               "the stream carries the buffers in ring order",
    .needs = {needs_op(IORING_OP_SEND), needs_buf_ring(), needs_capability("send_buf_select")},
    .variants = grid(setups(&SetupOnly::setup, {Setup::none, Setup::defer_taskrun, Setup::sqpoll})),
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        SocketPair sockets = tcp_loopback(ctx);
        SendBuffers bufs(ring, unsigned(kBufferLens.size()), kBufferMax);
        StreamReader reader(sockets.server.get());
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
                ctx.must(send_buffers_accounting(cqe, bufs.ledger(), &sent));
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
