// Pieces for capability probes (CapabilityProbe functions), which run in the
// parent before any scenario and have no Ctx: failures here only make the
// probed SQE answer differently, they are never verdicts.
#pragma once

#include <cstdint>

#include "bufring.h"
#include "util.h"

namespace uc {

// A small provided-buffer ring that outlives one probe_one_sqe() call: a
// BufRingCore (the scenarios' buffer ring, ledger included) of `entries`
// (a power of two) buffers of `buf_len` bytes.
class ProbeBufRing {
  public:
    ProbeBufRing(unsigned entries, unsigned buf_len) : core_(entries, buf_len, BufMode::plain) {}

    // Registers the ring as group `bgid` on `ring` and hands it every buffer;
    // a refusal is left for the probed SQE to show. The ring is torn down
    // with `ring`, so nothing unregisters it.
    void register_on(io_uring* ring, uint16_t bgid);
    char* data() { return reinterpret_cast<char*>(core_.data(0)); }

  private:
    BufRingCore core_;
};

// A loopback TCP socket listening on a kernel-chosen port, for accept probes;
// an empty Fd (errno set) when the host cannot listen.
Fd listening_loopback_socket();

}  // namespace uc
