#include "bufring_checks.h"

#include <algorithm>
#include <stdexcept>
#include <unordered_set>

#include "compat/uapi.h"
#include "net.h"
#include "util.h"

namespace uc {

std::string buf_mode_name(BufMode mode) {
    switch (mode) {
        case BufMode::plain: return "plain";
        case BufMode::incremental: return "incremental";
        case BufMode::bundle: return "bundle";
    }
    return "?";
}

std::deque<BufferLedger::Held>::iterator BufferLedger::find(unsigned bid) {
    if (!holds(bid)) return ring_order_.end();
    // The kernel takes buffers from the ring's head: the search ends at once.
    return std::find_if(ring_order_.begin(), ring_order_.end(), [bid](const Held& h) { return h.bid == bid; });
}

bool BufferLedger::holds(unsigned bid) const { return bid < held_.size() && held_[bid]; }

void BufferLedger::mark(unsigned bid, bool held) {
    if (bid >= held_.size()) held_.resize(bid + 1, false);
    held_[bid] = held;
}

unsigned BufferLedger::room(unsigned bid) const {
    for (const Held& h : ring_order_)
        if (h.bid == bid) return h.len - h.used;
    return 0;
}

std::optional<unsigned> BufferLedger::next_in_ring() const {
    if (ring_order_.empty()) return std::nullopt;
    return ring_order_.front().bid;
}

bool BufferLedger::hand_out(unsigned bid) {
    auto held = find(bid);
    if (held == ring_order_.end()) return false;
    ring_order_.erase(held);
    mark(bid, false);
    return true;
}

Check BufferLedger::provide(unsigned bid, unsigned len) {
    if (holds(bid)) return Check::fail(str("buffer id ", bid, " provided again while the kernel still holds it"));
    ring_order_.push_back({bid, len, 0});
    mark(bid, true);
    return Check::pass();
}

static Check not_held(unsigned bid, const Cqe& cqe) {
    // io_uring_provided_buffers(7): "Each buffer has a unique buffer ID (bid)
    // within its buffer group"; a CQE hands its buffer back to the application,
    // which must return it before the kernel may select it again.
    return Check::fail(str("CQE names buffer id ", bid, " which the kernel did not hold (never provided, or handed "
                           "out twice before it was provided again)"),
                       cqe);
}

Check BufferLedger::consume(const Cqe& cqe, std::vector<BufSpan>* spans) {
    spans->clear();
    if (!cqe.has_buffer()) {
        // io_uring_provided_buffers(7): "When an operation using provided
        // buffers completes ... IORING_CQE_F_BUFFER is set in cqe->flags".
        if (cqe.res > 0) return Check::fail("data CQE without IORING_CQE_F_BUFFER", cqe);
        return Check::pass();
    }
    bool buf_more = cqe.flags & IORING_CQE_F_BUF_MORE;
    if (buf_more && mode_ != BufMode::incremental)
        return Check::fail("IORING_CQE_F_BUF_MORE from a buffer group not registered with IOU_PBUF_RING_INC", cqe);
    if (mode_ == BufMode::bundle) return consume_bundle(cqe, spans);

    unsigned bid = cqe.buffer_id();
    auto held = find(bid);
    if (held == ring_order_.end()) return not_held(bid, cqe);
    unsigned room = held->len - held->used;
    unsigned res = cqe.res > 0 ? unsigned(cqe.res) : 0;
    if (res > room && !truncated_res_ok_)
        return Check::fail(str("res ", res, " exceeds the ", room, " bytes left in buffer id ", bid), cqe);
    res = std::min(res, room);  // a truncated datagram's real length: its buffer holds what fitted
    // io_uring_register_buf_ring(3), IOU_PBUF_RING_INC: "each completion of a
    // given buffer ID will continue where the previous one left off ... When
    // more completions should be expected for a given buffer ID, the CQE will
    // have IORING_CQE_F_BUF_MORE set". A buffer with no byte left can have none.
    if (buf_more && res == room)
        return Check::fail(str("IORING_CQE_F_BUF_MORE on a CQE that used the last byte of buffer id ", bid), cqe);
    // io_uring_provided_buffers(7), incremental consumption: "The buffer is
    // only returned when consumed completely or on error".
    if (mode_ == BufMode::incremental && !buf_more && cqe.res > 0 && res < room)
        return Check::fail(str("buffer id ", bid, " returned with ", room - res,
                               " bytes unused (no IORING_CQE_F_BUF_MORE) by a CQE that is not an error"),
                           cqe);
    spans->push_back({bid, held->used, res, !buf_more});
    if (buf_more) {
        held->used += res;
    } else {
        ring_order_.erase(held);
        mark(bid, false);
    }
    return Check::pass();
}

Check BufferLedger::consume_bundle(const Cqe& cqe, std::vector<BufSpan>* spans) {
    // io_uring_prep_recv(3), IORING_RECVSEND_BUNDLE: "the CQE res field
    // indicates the total number of bytes received, and the buffer ID returned
    // in the CQE flags field indicates the first buffer ... The buffers
    // consumed will be contiguous from the initial buffer, in the order in
    // which they appear in the buffer ring."
    unsigned bid = cqe.buffer_id();
    if (!holds(bid)) return not_held(bid, cqe);
    if (ring_order_.front().bid != bid)
        return Check::fail(str("bundle starts at buffer id ", bid, " but the next buffer in ring order is id ",
                               ring_order_.front().bid),
                           cqe);
    unsigned left = cqe.res > 0 ? unsigned(cqe.res) : 0;
    size_t used = 0;
    do {
        if (used == ring_order_.size()) {
            spans->clear();
            return Check::fail(str("bundle res ", cqe.res, " needs more buffers than the kernel held (", left,
                                   " bytes left over)"),
                               cqe);
        }
        const Held& head = ring_order_[used++];
        unsigned take = std::min(left, head.len);
        spans->push_back({head.bid, 0, take, true});
        left -= take;
    } while (left > 0);
    for (const BufSpan& span : *spans) mark(span.bid, false);
    ring_order_.erase(ring_order_.begin(), ring_order_.begin() + long(used));
    return Check::pass();
}

Check stream_bytes_continue(const Cqe& cqe, const uint8_t* data, size_t len, uint64_t stream_offset) {
    for (size_t i = 0; i < len; ++i)
        if (data[i] != pattern_byte(stream_offset + i))
            return Check::fail(str("stream byte ", stream_offset + i,
                                   " differs from what was sent (data lost, duplicated or reordered)"),
                               cqe);
    return Check::pass();
}

BufEvent BufEvent::provided(unsigned bid, unsigned len) {
    BufEvent e;
    e.kind = Kind::provide;
    e.bid = bid;
    e.len = len;
    return e;
}

BufEvent BufEvent::completed(const Cqe& cqe, std::string bytes) {
    BufEvent e;
    e.kind = Kind::completion;
    e.cqe = cqe;
    e.bytes = std::move(bytes);
    return e;
}

Check byte_conservation(const std::vector<BufEvent>& log, BufMode mode, uint64_t bytes_sent) {
    BufferLedger ledger(mode);
    std::vector<BufSpan> spans;
    uint64_t offset = 0;
    for (const BufEvent& event : log) {
        if (event.kind == BufEvent::Kind::provide) {
            if (Check c = ledger.provide(event.bid, event.len); !c) return c;
            continue;
        }
        if (Check c = ledger.consume(event.cqe, &spans); !c) return c;
        if (event.cqe.res <= 0) continue;
        if (event.bytes.size() != size_t(event.cqe.res))
            return Check::fail(str("log holds ", event.bytes.size(), " bytes for a CQE with res ", event.cqe.res),
                               event.cqe);
        auto* data = reinterpret_cast<const uint8_t*>(event.bytes.data());
        if (Check c = stream_bytes_continue(event.cqe, data, event.bytes.size(), offset); !c) return c;
        offset += event.bytes.size();
    }
    if (offset != bytes_sent)
        return Check::fail(str("bytes received over all CQEs: ", offset, ", bytes sent: ", bytes_sent,
                               offset < bytes_sent ? " (data lost)" : " (more received than sent)"));
    return Check::pass();
}

namespace {

// A partial interleaving: how many chunks of each request are placed, 16 bits each.
uint64_t interleaving_key(const std::vector<size_t>& placed) {
    uint64_t key = 0;
    for (size_t n : placed) key = key << 16 | n;
    return key;
}

bool chunk_continues_stream(const ReceivedChunk& chunk, uint64_t offset) {
    auto* data = reinterpret_cast<const uint8_t*>(chunk.bytes.data());
    return stream_bytes_continue(chunk.cqe, data, chunk.bytes.size(), offset).ok;
}

}  // namespace

Check streams_interleave(const std::vector<std::vector<ReceivedChunk>>& per_request, uint64_t bytes_sent) {
    if (per_request.size() > 4) throw std::invalid_argument("streams_interleave: more than 4 requests");
    // prefix[r][i]: bytes in request r's first i chunks.
    std::vector<std::vector<uint64_t>> prefix;
    uint64_t received = 0;
    for (const auto& chunks : per_request) {
        if (chunks.size() > 0xffff) throw std::invalid_argument("streams_interleave: more than 65535 chunks");
        prefix.push_back({0});
        for (const ReceivedChunk& chunk : chunks) prefix.back().push_back(prefix.back().back() + chunk.bytes.size());
        received += prefix.back().back();
    }
    if (received != bytes_sent)
        return Check::fail(str("bytes received over all requests: ", received, ", bytes sent: ", bytes_sent,
                               received < bytes_sent ? " (data lost)" : " (more received than sent)"));

    // Depth-first over partial interleavings. Which chunks are placed fixes
    // the stream offset reached, so each state is explored once; with a
    // pattern() stream two requests' next chunks rarely both fit, so this
    // is nearly a straight walk.
    std::vector<size_t> start(per_request.size(), 0);
    std::vector<std::vector<size_t>> stack{start};
    std::unordered_set<uint64_t> seen{interleaving_key(start)};
    std::vector<size_t> deepest = start;
    uint64_t deepest_offset = 0;
    while (!stack.empty()) {
        std::vector<size_t> placed = std::move(stack.back());
        stack.pop_back();
        uint64_t offset = 0;
        for (size_t r = 0; r < placed.size(); ++r) offset += prefix[r][placed[r]];
        if (offset == bytes_sent) return Check::pass();
        if (offset > deepest_offset) {
            deepest = placed;
            deepest_offset = offset;
        }
        for (size_t r = 0; r < placed.size(); ++r) {
            if (placed[r] == per_request[r].size() || !chunk_continues_stream(per_request[r][placed[r]], offset))
                continue;
            std::vector<size_t> next = placed;
            ++next[r];
            if (seen.insert(interleaving_key(next)).second) stack.push_back(std::move(next));
        }
    }
    std::optional<Cqe> stuck;
    for (size_t r = 0; r < deepest.size() && !stuck; ++r)
        if (deepest[r] < per_request[r].size()) stuck = per_request[r][deepest[r]].cqe;
    return Check::fail(str("no receive's next CQE continues the stream at byte ", deepest_offset, " of ", bytes_sent,
                           ": bytes lost, duplicated or out of order within one request"),
                       stuck);
}

}  // namespace uc
