// Provided buffers as scenarios and probes hold them: a buffer ring
// (IORING_REGISTER_PBUF_RING) or legacy buffers (IORING_OP_PROVIDE_BUFFERS),
// each keeping which buffer ids the kernel holds in a BufferLedger
// (checks/bufring_checks.h), the one model of that, so a CQE naming a buffer
// the kernel did not hold is caught wherever it is read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "bufring_checks.h"
#include "checks.h"
#include "compat/uapi.h"

namespace uc {

class Ring;

// A buffer ring's memory, its buffers and its ledger, without a Ctx:
// capability probes use it as it is, scenarios through BufRing. The ring and
// the buffers are mapped MAP_NORESERVE (the ring page-aligned, as
// IORING_REGISTER_PBUF_RING wants), so a pool larger than memory costs only
// the pages the kernel writes.
class BufRingCore {
  public:
    // `entries` (a power of two) slots and as many buffers of `buf_len` bytes.
    BufRingCore(unsigned entries, unsigned buf_len, BufMode mode);
    ~BufRingCore();
    BufRingCore(const BufRingCore&) = delete;
    BufRingCore& operator=(const BufRingCore&) = delete;

    // 0, or the errno of the mmap() that failed (nothing else then works).
    int map_error() const { return map_error_; }
    // Registers the ring as group `bgid` on `ring` with `flags`
    // (IOU_PBUF_RING_INC etc.) and initialises it: 0 or -errno. The caller
    // unregisters it while `ring` lives.
    int register_on(io_uring* ring, uint16_t bgid, uint16_t flags);
    // Adds the first `len` bytes of buffer `bid` at the ring's tail; fails
    // (the application's bug) if the kernel holds it already.
    Check provide(unsigned bid, unsigned len);

    unsigned entries() const { return entries_; }
    unsigned buf_len() const { return buf_len_; }
    uint8_t* data(unsigned bid) const { return storage_ + size_t(bid) * buf_len_; }
    BufferLedger& ledger() { return ledger_; }
    const BufferLedger& ledger() const { return ledger_; }

  private:
    unsigned entries_, buf_len_;
    io_uring_buf_ring* br_ = nullptr;
    size_t br_size_ = 0;
    uint8_t* storage_ = nullptr;
    size_t storage_size_ = 0;
    int map_error_ = 0;
    BufferLedger ledger_;
};

// How a BufRing starts.
struct BufRingSetup {
    uint16_t flags = 0;             // IOU_PBUF_RING_INC etc.
    BufMode mode = BufMode::plain;  // how CQEs use buffers: bundle for IORING_RECVSEND_BUNDLE
    bool provide_all = true;        // hand every buffer to the kernel at once
};

class BufRing {
  public:
    // `entries` (a power of two) buffers of `buf_len` bytes in group `bgid`,
    // all handed to the kernel. `flags`: IOU_PBUF_RING_INC (read as
    // incremental consumption) etc.
    BufRing(Ring& ring, uint16_t bgid, unsigned entries, unsigned buf_len, uint16_t flags = 0);
    BufRing(Ring& ring, uint16_t bgid, unsigned entries, unsigned buf_len, const BufRingSetup& setup);
    ~BufRing();
    BufRing(const BufRing&) = delete;
    BufRing& operator=(const BufRing&) = delete;

    uint16_t bgid() const { return bgid_; }
    unsigned entries() const { return core_.entries(); }
    unsigned buf_len() const { return core_.buf_len(); }
    const uint8_t* data(unsigned bid) const { return core_.data(bid); }
    // Buffer `bid` to fill before provide() (a send's payload).
    uint8_t* writable(unsigned bid) { return core_.data(bid); }

    // Returns buffer `bid` (all of it, or its first `len` bytes) to the
    // kernel; it must not hold it already.
    void provide(unsigned bid);
    void provide(unsigned bid, unsigned len);
    // The kernel reported it used `bid` whole (a CQE with IORING_CQE_F_BUFFER).
    // False if the kernel did not hold that buffer: handed out twice, or never provided.
    bool take(unsigned bid) { return core_.ledger().hand_out(bid); }
    // Accounts a CQE against the ledger (BufferLedger::consume).
    Check consume(const Cqe& cqe, std::vector<BufSpan>* spans) { return core_.ledger().consume(cqe, spans); }
    bool kernel_holds(unsigned bid) const { return core_.ledger().holds(bid); }
    unsigned held_count() const { return core_.ledger().held_count(); }
    BufferLedger& ledger() { return core_.ledger(); }
    const BufferLedger& ledger() const { return core_.ledger(); }

  private:
    Ring& ring_;
    uint16_t bgid_;
    BufRingCore core_;
    bool registered_ = false;
};

// Legacy provided buffers (IORING_OP_PROVIDE_BUFFERS, 5.7+): `entries`
// buffers of `buf_len` bytes in group `bgid`, handed to the kernel by SQEs
// rather than through a shared ring.
class LegacyBuffers {
  public:
    // Provides every buffer with one SQE and waits for its CQE (so create it
    // before arming requests on `ring`); a refusal is a setup error.
    // `provide_user_data` tags the SQEs of later provide() calls.
    LegacyBuffers(Ring& ring, uint16_t bgid, unsigned entries, unsigned buf_len, uint64_t provide_user_data,
                  BufMode mode = BufMode::plain);
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
    Check consume(const Cqe& cqe, std::vector<BufSpan>* spans) { return ledger_.consume(cqe, spans); }
    BufferLedger& ledger() { return ledger_; }
    const BufferLedger& ledger() const { return ledger_; }

  private:
    Ring& ring_;
    uint16_t bgid_;
    unsigned entries_, buf_len_;
    uint64_t provide_user_data_;
    std::vector<uint8_t> storage_;
    BufferLedger ledger_;
};

// Accounts one data CQE of a buffer-select receive on a pattern() stream:
// the CQE must name a buffer the kernel held (io_uring_provided_buffers(7)),
// and its bytes must continue the stream at `*stream_offset` (nothing lost,
// duplicated or reordered). Advances the offset and takes the buffer back
// from the kernel's ledger; the caller decides when to provide() it again.
Check take_stream_buffer(BufRing& bufs, const Cqe& cqe, uint64_t* stream_offset);

}  // namespace uc
