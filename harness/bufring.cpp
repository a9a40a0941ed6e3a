#include "bufring.h"

#include <sys/mman.h>

#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace uc {

BufRing::BufRing(Ring& ring, uint16_t bgid, unsigned entries, unsigned buf_len, uint16_t flags)
    : ring_(ring), bgid_(bgid), entries_(entries), buf_len_(buf_len), storage_size_(size_t(entries) * buf_len),
      held_(entries, false) {
    Ctx& ctx = ring.ctx();
    void* data = mmap(nullptr, storage_size_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_NORESERVE, -1, 0);
    if (data == MAP_FAILED) ctx.error(str("mmap(", storage_size_, " bytes of buffers): ", errno_name(errno)));
    storage_ = static_cast<uint8_t*>(data);
    br_size_ = entries * sizeof(io_uring_buf);
    void* mem = mmap(nullptr, br_size_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) ctx.error("mmap(buffer ring): " + errno_name(errno));
    br_ = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(mem);
    reg.ring_entries = entries;
    reg.bgid = bgid;
    compat::set_buf_reg_flags(reg, flags);
    int ret = io_uring_register_buf_ring(ring.get(), &reg, 0);
    if (ret < 0) {
        munmap(mem, br_size_);
        munmap(storage_, storage_size_);
        br_ = nullptr;
        if (ret == -ENOMEM) ctx.skip("registering a buffer ring: ENOMEM (RLIMIT_MEMLOCK too small)");
        ctx.error(str("IORING_REGISTER_PBUF_RING(entries=", entries, ", flags=", flags, "): ", errno_name(ret),
                      " although the probe accepted buffer rings"));
    }
    io_uring_buf_ring_init(br_);
    for (unsigned bid = 0; bid < entries; ++bid) provide(bid);
}

BufRing::~BufRing() {
    if (!br_) return;
    io_uring_unregister_buf_ring(ring_.get(), bgid_);
    munmap(br_, br_size_);
    munmap(storage_, storage_size_);
}

void BufRing::provide(unsigned bid) {
    io_uring_buf_ring_add(br_, storage_ + size_t(bid) * buf_len_, buf_len_, uint16_t(bid),
                          io_uring_buf_ring_mask(entries_), 0);
    io_uring_buf_ring_advance(br_, 1);
    if (!held_[bid]) ++held_count_;
    held_[bid] = true;
}

bool BufRing::take(unsigned bid) {
    if (!kernel_holds(bid)) return false;
    held_[bid] = false;
    --held_count_;
    return true;
}

Check take_stream_buffer(BufRing& bufs, const Cqe& cqe, uint64_t* stream_offset) {
    if (!cqe.has_buffer()) return Check::fail("data CQE without IORING_CQE_F_BUFFER", cqe);
    unsigned bid = cqe.buffer_id();
    if (!bufs.take(bid))
        return Check::fail(str("CQE names buffer id ", bid, " which the kernel did not hold (never provided, or "
                               "handed out twice before it was recycled)"),
                           cqe);
    if (unsigned(cqe.res) > bufs.buf_len())
        return Check::fail(str("res ", cqe.res, " exceeds the buffer length ", bufs.buf_len()), cqe);
    if (Check bytes = stream_bytes_continue(cqe, bufs.data(bid), size_t(cqe.res), *stream_offset); !bytes)
        return bytes;
    *stream_offset += uint64_t(cqe.res);
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

LegacyBuffers::LegacyBuffers(Ring& ring, uint16_t bgid, unsigned entries, unsigned buf_len, uint64_t provide_user_data)
    : ring_(ring), bgid_(bgid), entries_(entries), buf_len_(buf_len), provide_user_data_(provide_user_data),
      storage_(size_t(entries) * buf_len) {
    io_uring_prep_provide_buffers(ring.sqe(provide_user_data, "provide buffers"), storage_.data(), int(buf_len),
                                  int(entries), bgid, 0);
    ring.submit();
    Cqe cqe = ring.wait();
    if (cqe.user_data != provide_user_data || cqe.res < 0)
        ring.ctx().error(str("IORING_OP_PROVIDE_BUFFERS(", entries, " x ", buf_len, " bytes): ", cqe.describe()));
}

void LegacyBuffers::provide(unsigned bid) {
    io_uring_prep_provide_buffers(ring_.sqe(provide_user_data_, "provide buffer"), storage_.data() + size_t(bid) * buf_len_,
                                  int(buf_len_), 1, bgid_, int(bid));
}

}  // namespace uc
