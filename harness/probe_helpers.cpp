#include "probe_helpers.h"

#include <cstdlib>

namespace uc {

ProbeBufRing::ProbeBufRing(unsigned entries, unsigned buf_len)
    : entries_(entries), buf_len_(buf_len), data_(size_t(entries) * buf_len) {
    if (posix_memalign(&ring_mem_, 4096, 4096) != 0) ring_mem_ = nullptr;
}

ProbeBufRing::~ProbeBufRing() { free(ring_mem_); }

void ProbeBufRing::register_on(io_uring* ring, uint16_t bgid) {
    if (!ring_mem_) return;
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(ring_mem_);
    reg.ring_entries = entries_;
    reg.bgid = bgid;
    if (io_uring_register_buf_ring(ring, &reg, 0) != 0) return;
    auto* br = static_cast<io_uring_buf_ring*>(ring_mem_);
    io_uring_buf_ring_init(br);
    for (unsigned i = 0; i < entries_; ++i)
        io_uring_buf_ring_add(br, data_.data() + size_t(i) * buf_len_, buf_len_, uint16_t(i),
                              io_uring_buf_ring_mask(entries_), int(i));
    io_uring_buf_ring_advance(br, int(entries_));
}

}  // namespace uc
