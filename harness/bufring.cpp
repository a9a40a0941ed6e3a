#include "bufring.h"

#include <sys/mman.h>

#include <cerrno>

#include "ring.h"
#include "scenario.h"

namespace uc {

static void* map_noreserve(size_t len) {
    return mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_NORESERVE, -1, 0);
}

BufRingCore::BufRingCore(unsigned entries, unsigned buf_len, BufMode mode)
    : entries_(entries), buf_len_(buf_len), br_size_(entries * sizeof(io_uring_buf)),
      storage_size_(size_t(entries) * buf_len), ledger_(mode) {
    void* ring_mem = map_noreserve(br_size_);
    void* data = ring_mem == MAP_FAILED ? MAP_FAILED : map_noreserve(storage_size_);
    if (data == MAP_FAILED) {
        map_error_ = errno;
        if (ring_mem != MAP_FAILED) munmap(ring_mem, br_size_);
        return;
    }
    br_ = static_cast<io_uring_buf_ring*>(ring_mem);
    storage_ = static_cast<uint8_t*>(data);
}

BufRingCore::~BufRingCore() {
    if (map_error_) return;
    munmap(br_, br_size_);
    munmap(storage_, storage_size_);
}

int BufRingCore::register_on(io_uring* ring, uint16_t bgid, uint16_t flags) {
    if (map_error_) return -map_error_;
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(br_);
    reg.ring_entries = entries_;
    reg.bgid = bgid;
    compat::set_buf_reg_flags(reg, flags);
    if (int ret = io_uring_register_buf_ring(ring, &reg, 0); ret < 0) return ret;
    io_uring_buf_ring_init(br_);
    ledger_.clear();
    return 0;
}

Check BufRingCore::provide(unsigned bid, unsigned len) {
    if (Check held = ledger_.provide(bid, len); !held) return held;
    io_uring_buf_ring_add(br_, data(bid), len, uint16_t(bid), io_uring_buf_ring_mask(entries_), 0);
    io_uring_buf_ring_advance(br_, 1);
    return Check::pass();
}

BufRing::BufRing(Ring& ring, uint16_t bgid, unsigned entries, unsigned buf_len, uint16_t flags)
    : BufRing(ring, bgid, entries, buf_len,
              BufRingSetup{flags, (flags & IOU_PBUF_RING_INC) ? BufMode::incremental : BufMode::plain, true}) {}

BufRing::BufRing(Ring& ring, uint16_t bgid, unsigned entries, unsigned buf_len, const BufRingSetup& setup)
    : ring_(ring), bgid_(bgid), core_(entries, buf_len, setup.mode) {
    Ctx& ctx = ring.ctx();
    if (core_.map_error())
        ctx.error(str("mmap(buffer ring of ", entries, " x ", buf_len, " bytes): ", errno_name(core_.map_error())));
    int ret = core_.register_on(ring.get(), bgid, setup.flags);
    if (ret == -ENOMEM) ctx.skip("registering a buffer ring: ENOMEM (RLIMIT_MEMLOCK too small)");
    if (ret < 0)
        ctx.error(str("IORING_REGISTER_PBUF_RING(entries=", entries, ", flags=", setup.flags, "): ", errno_name(ret),
                      " although the probe accepted buffer rings"));
    registered_ = true;
    if (setup.provide_all)
        for (unsigned bid = 0; bid < entries; ++bid) provide(bid);
}

BufRing::~BufRing() {
    if (registered_) io_uring_unregister_buf_ring(ring_.get(), bgid_);
}

void BufRing::provide(unsigned bid) { provide(bid, buf_len()); }

void BufRing::provide(unsigned bid, unsigned len) {
    // Providing a buffer the kernel holds is the harness's bug, not the kernel's.
    if (Check c = core_.provide(bid, len); !c) ring_.ctx().error("BufRing::provide: " + c.rule);
}

Check take_stream_buffer(BufRing& bufs, const Cqe& cqe, uint64_t* stream_offset) {
    if (!cqe.has_buffer()) return Check::fail("data CQE without IORING_CQE_F_BUFFER", cqe);
    std::vector<BufSpan> spans;
    if (Check held = bufs.consume(cqe, &spans); !held) return held;
    for (const BufSpan& span : spans) {
        if (Check bytes = stream_bytes_continue(cqe, bufs.data(span.bid) + span.offset, span.len, *stream_offset);
            !bytes)
            return bytes;
        *stream_offset += span.len;
    }
    return Check::pass();
}

LegacyBuffers::LegacyBuffers(Ring& ring, uint16_t bgid, unsigned entries, unsigned buf_len, uint64_t provide_user_data,
                             BufMode mode)
    : ring_(ring), bgid_(bgid), entries_(entries), buf_len_(buf_len), provide_user_data_(provide_user_data),
      storage_(size_t(entries) * buf_len), ledger_(mode) {
    io_uring_prep_provide_buffers(ring.sqe(provide_user_data, "provide buffers"), storage_.data(), int(buf_len),
                                  int(entries), bgid, 0);
    ring.submit();
    Cqe cqe = ring.wait();
    if (cqe.user_data != provide_user_data || cqe.res < 0)
        ring.ctx().error(str("IORING_OP_PROVIDE_BUFFERS(", entries, " x ", buf_len, " bytes): ", cqe.describe()));
    for (unsigned bid = 0; bid < entries; ++bid) ledger_.provide(bid, buf_len);
}

void LegacyBuffers::provide(unsigned bid) {
    if (Check c = ledger_.provide(bid, buf_len_); !c) ring_.ctx().error("LegacyBuffers::provide: " + c.rule);
    io_uring_prep_provide_buffers(ring_.sqe(provide_user_data_, "provide buffer"), storage_.data() + size_t(bid) * buf_len_,
                                  int(buf_len_), 1, bgid_, int(bid));
}

}  // namespace uc
