#include "probe_helpers.h"

namespace uc {

void ProbeBufRing::register_on(io_uring* ring, uint16_t bgid) {
    if (core_.register_on(ring, bgid, 0) != 0) return;
    for (unsigned bid = 0; bid < core_.entries(); ++bid) core_.provide(bid, core_.buf_len());
}

}  // namespace uc
