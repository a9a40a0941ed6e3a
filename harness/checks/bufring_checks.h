// Provided-buffer accounting as pure functions: the one model of which
// buffers the kernel holds (BufferLedger: BufRing, LegacyBuffers, the send
// buffers of the sendzc family and the explore oracle all keep theirs in
// one) and the byte-conservation checker that replays a recorded receive
// (provides + CQEs + the bytes each CQE's buffers held) against the
// pattern() stream the sender wrote.
//
// Rules enforced (quoted where they are checked, in bufring_checks.cpp):
// io_uring_provided_buffers(7), io_uring_register_buf_ring(3) for
// IOU_PBUF_RING_INC, io_uring_prep_recv(3) for IORING_RECVSEND_BUNDLE.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "checks.h"
#include "cqe.h"

namespace uc {

// How a buffer group hands buffers to CQEs.
enum class BufMode {
    plain,        // one CQE consumes one whole buffer (rings and legacy provided buffers)
    incremental,  // IOU_PBUF_RING_INC: CQEs consume a buffer piece by piece
    bundle,       // IORING_RECVSEND_BUNDLE: one CQE may consume several buffers
};
std::string buf_mode_name(BufMode mode);

// Where a CQE's bytes lie: `len` bytes at `offset` in buffer `bid`.
// `released`: the kernel gave the buffer back with this CQE, so the
// application owns it again (and may provide it anew).
struct BufSpan {
    unsigned bid = 0;
    unsigned offset = 0;
    unsigned len = 0;
    bool released = false;
};

// The kernel's side of a buffer group as the application can know it:
// which ids it holds, in ring order, and how far incremental buffers are
// used up. Pure: fed provide() and consume() calls, touches no kernel.
class BufferLedger {
  public:
    explicit BufferLedger(BufMode mode) : mode_(mode) {}

    BufMode mode() const { return mode_; }
    // recv(2) with MSG_TRUNC: "return the real length of the packet or
    // datagram, even when it was longer than the passed buffer". With this
    // set, a CQE's res may exceed the room left in its buffer; the buffer
    // then holds the first bytes up to its end and is used up.
    void allow_truncated_res() { truncated_res_ok_ = true; }
    // Buffer `bid` of `len` bytes goes to the kernel, at the ring's tail.
    // Fails if the kernel still holds it (an application bug, not the kernel's).
    Check provide(unsigned bid, unsigned len);
    // Accounts one CQE of a buffer-select request; on success `spans` says
    // where its res bytes are, in stream order. CQEs with res <= 0 and no
    // IORING_CQE_F_BUFFER carry no buffer and pass untouched. A CQE that
    // breaks a rule leaves the ledger as it was.
    Check consume(const Cqe& cqe, std::vector<BufSpan>* spans);
    // The kernel handed out buffer `bid` whole (a plain ring's CQE named it);
    // false if it did not hold it.
    bool hand_out(unsigned bid);
    // The group was registered anew: the kernel holds nothing of it.
    void clear() {
        ring_order_.clear();
        held_.clear();
    }

    bool holds(unsigned bid) const;
    unsigned held_count() const { return unsigned(ring_order_.size()); }
    // Bytes left in held buffer `bid` (its length less what incremental CQEs used); 0 if not held.
    unsigned room(unsigned bid) const;
    // The buffer the kernel takes next: the oldest one it holds (ring order).
    std::optional<unsigned> next_in_ring() const;

  private:
    struct Held {
        unsigned bid;
        unsigned len;
        unsigned used;  // bytes already consumed (incremental mode)
    };
    std::deque<Held>::iterator find(unsigned bid);
    Check consume_bundle(const Cqe& cqe, std::vector<BufSpan>* spans);

    void mark(unsigned bid, bool held);

    BufMode mode_;
    bool truncated_res_ok_ = false;
    std::deque<Held> ring_order_;
    std::vector<bool> held_;  // by bid, so holds() is O(1) on rings of thousands of buffers  // held buffers, oldest provided first
};

// One step of a recorded provided-buffer receive.
struct BufEvent {
    enum class Kind { provide, completion };
    Kind kind = Kind::completion;
    unsigned bid = 0;   // provide: the buffer handed to the kernel
    unsigned len = 0;   // provide: its length
    Cqe cqe;            // completion: the CQE as reaped
    std::string bytes;  // completion: the res bytes its buffer(s) held when reaped, in span order

    static BufEvent provided(unsigned bid, unsigned len);
    static BufEvent completed(const Cqe& cqe, std::string bytes);
};

// The `len` bytes at `data`, which `cqe` delivered, continue the pattern()
// stream at `stream_offset` (nothing lost, duplicated or reordered before them).
Check stream_bytes_continue(const Cqe& cqe, const uint8_t* data, size_t len, uint64_t stream_offset);

// Replays `log` through a fresh BufferLedger in `mode` and checks, in order:
// every data CQE names buffers the kernel held (provided, not handed out
// before without being provided again); the bytes of all data CQEs, in CQE
// order, are exactly the pattern() stream from offset 0 (nothing lost,
// duplicated or reordered); and they add up to `bytes_sent`.
Check byte_conservation(const std::vector<BufEvent>& log, BufMode mode, uint64_t bytes_sent);

// One data CQE of a receive and the bytes its buffer(s) held when reaped.
struct ReceivedChunk {
    Cqe cqe;
    std::string bytes;
};

// Several receives on one stream socket share its byte stream: io_uring
// orders nothing between them, but each request's recv(2) calls run one
// after another, so each takes later stretches of the stream than its
// previous CQE did. Checks that the requests' chunks (`per_request`, each
// in its own CQE order) interleave into exactly the pattern() stream from
// offset 0, `bytes_sent` long: every byte delivered once, none lost, none
// out of order within a request. At most 4 requests of up to 65535 chunks.
Check streams_interleave(const std::vector<std::vector<ReceivedChunk>>& per_request, uint64_t bytes_sent);

}  // namespace uc
