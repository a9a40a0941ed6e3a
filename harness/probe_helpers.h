// Pieces for capability probes (CapabilityProbe functions), which run in the
// parent before any scenario and have no Ctx: failures here only make the
// probed SQE answer differently, they are never verdicts.
#pragma once

#include <cstdint>
#include <vector>

#include "compat/uapi.h"

namespace uc {

// A small provided-buffer ring that outlives one probe_one_sqe() call:
// page-aligned ring memory (IORING_REGISTER_PBUF_RING wants a page-aligned
// ring_addr) and `entries` (a power of two) buffers of `buf_len` bytes.
class ProbeBufRing {
  public:
    ProbeBufRing(unsigned entries, unsigned buf_len);
    ~ProbeBufRing();
    ProbeBufRing(const ProbeBufRing&) = delete;
    ProbeBufRing& operator=(const ProbeBufRing&) = delete;

    // Registers the ring as group `bgid` on `ring` and hands it every buffer;
    // a refusal is left for the probed SQE to show.
    void register_on(io_uring* ring, uint16_t bgid);
    char* data() { return data_.data(); }

  private:
    unsigned entries_, buf_len_;
    void* ring_mem_ = nullptr;
    std::vector<char> data_;
};

}  // namespace uc
