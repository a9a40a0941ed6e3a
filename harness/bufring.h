// A provided-buffer ring (IORING_REGISTER_PBUF_RING) with its buffers, and a
// ledger of which buffer ids the kernel currently holds, so scenarios can
// check that a CQE names a buffer that was really provided.
#pragma once

#include <cstdint>
#include <vector>

#include "checks.h"
#include "compat/uapi.h"

namespace uc {

class Ring;

class BufRing {
  public:
    // `entries` (a power of two) buffers of `buf_len` bytes in group `bgid`,
    // all handed to the kernel. `flags`: IOU_PBUF_RING_INC etc. The buffers
    // are mapped MAP_NORESERVE, so a pool larger than memory costs only the
    // pages the kernel writes.
    BufRing(Ring& ring, uint16_t bgid, unsigned entries, unsigned buf_len, uint16_t flags = 0);
    ~BufRing();
    BufRing(const BufRing&) = delete;
    BufRing& operator=(const BufRing&) = delete;

    uint16_t bgid() const { return bgid_; }
    unsigned entries() const { return entries_; }
    unsigned buf_len() const { return buf_len_; }
    const uint8_t* data(unsigned bid) const { return storage_ + size_t(bid) * buf_len_; }

    // Returns buffer `bid` to the kernel (it must not hold it already).
    void provide(unsigned bid);
    // The kernel reported it used `bid` (a CQE with IORING_CQE_F_BUFFER).
    // False if the kernel did not hold that buffer: handed out twice, or never provided.
    bool take(unsigned bid);
    bool kernel_holds(unsigned bid) const { return bid < entries_ && held_[bid]; }
    unsigned held_count() const { return held_count_; }

  private:
    Ring& ring_;
    uint16_t bgid_;
    unsigned entries_, buf_len_;
    io_uring_buf_ring* br_ = nullptr;
    size_t br_size_ = 0;
    uint8_t* storage_ = nullptr;
    size_t storage_size_ = 0;
    std::vector<bool> held_;
    unsigned held_count_ = 0;
};

// Legacy provided buffers (IORING_OP_PROVIDE_BUFFERS, 5.7+): `entries`
// buffers of `buf_len` bytes in group `bgid`, handed to the kernel by SQEs
// rather than through a shared ring. Keeps no ledger: the caller accounts
// (BufferLedger in bufring_checks.h).
class LegacyBuffers {
  public:
    // Provides every buffer with one SQE and waits for its CQE (so create it
    // before arming requests on `ring`); a refusal is a setup error.
    // `provide_user_data` tags the SQEs of later provide() calls.
    LegacyBuffers(Ring& ring, uint16_t bgid, unsigned entries, unsigned buf_len, uint64_t provide_user_data);
    LegacyBuffers(const LegacyBuffers&) = delete;
    LegacyBuffers& operator=(const LegacyBuffers&) = delete;

    uint16_t bgid() const { return bgid_; }
    unsigned entries() const { return entries_; }
    unsigned buf_len() const { return buf_len_; }
    uint64_t provide_user_data() const { return provide_user_data_; }
    const uint8_t* data(unsigned bid) const { return storage_.data() + size_t(bid) * buf_len_; }

    // Queues an SQE giving buffer `bid` back to the kernel; the caller
    // submits it and reaps its CQE (user_data provide_user_data(), res >= 0).
    void provide(unsigned bid);

  private:
    Ring& ring_;
    uint16_t bgid_;
    unsigned entries_, buf_len_;
    uint64_t provide_user_data_;
    std::vector<uint8_t> storage_;
};

// The byte rule of take_stream_buffer(), on its own: the `len` bytes at
// `data`, which `cqe` delivered, continue the pattern() stream at
// `stream_offset` (nothing lost, duplicated or reordered before them).
Check stream_bytes_continue(const Cqe& cqe, const uint8_t* data, size_t len, uint64_t stream_offset);

// Accounts one data CQE of a buffer-select receive on a pattern() stream:
// the CQE must name a buffer the kernel held (io_uring_provided_buffers(7)),
// and its bytes must continue the stream at `*stream_offset` (nothing lost,
// duplicated or reordered). Advances the offset and takes the buffer back
// from the kernel's ledger; the caller decides when to provide() it again.
Check take_stream_buffer(BufRing& bufs, const Cqe& cqe, uint64_t* stream_offset);

}  // namespace uc
