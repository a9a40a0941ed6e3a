#include "ring.h"

#include <algorithm>

#include "scenario.h"
#include "util.h"

namespace uc {

Ring::Ring(Ctx& ctx, Setup setup, unsigned cq_entries, unsigned sq_entries, unsigned extra_flags)
    : ctx_(ctx), id_(0) {
    io_uring_params params{};
    params.flags = setup_flags(setup) | extra_flags;
    if (cq_entries) {
        // The kernel wants at least as many CQ as SQ entries.
        sq_entries = std::min(sq_entries, cq_entries);
        params.flags |= IORING_SETUP_CQSIZE;
        params.cq_entries = cq_entries;
    }
    if (setup == Setup::sqpoll) params.sq_thread_idle = 50;  // ms
    // A flag the probe saw refused is a skip. The parent already skipped the
    // variants whose setup mode it refused; this catches extra_flags and
    // CQSIZE, which no variant names.
    if (auto refused = ctx.probe().setup_refused(params.flags)) ctx.skip(*refused);
    int ret = io_uring_queue_init_params(sq_entries, &ring_, &params);
    if (ret == -ENOMEM)
        ctx.skip(str("io_uring_setup: ENOMEM; RLIMIT_MEMLOCK is ",
                     ctx.probe().memlock_kib ? std::to_string(*ctx.probe().memlock_kib) + " KiB" : "unlimited"));
    // The probe accepted every flag asked for, so a refusal now is not the
    // kernel lacking a feature: the sizes, or the host (as BufRing says).
    if (ret < 0)
        ctx.error(str("io_uring_setup(", sq_entries, " entries, flags 0x", std::hex, params.flags, std::dec, " (",
                      setup_name(setup), ")): ", errno_name(ret), " although the probe accepted these flags"));
    id_ = ctx.attach(this);
}

Ring::~Ring() {
    ctx_.detach(this);
    io_uring_queue_exit(&ring_);
}

io_uring_sqe* Ring::sqe(uint64_t user_data, const char* what) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {
        submit();
        // Under SQPOLL entries free up only as the kernel thread consumes them.
        if (ring_.flags & IORING_SETUP_SQPOLL) io_uring_sqring_wait(&ring_);
        sqe = io_uring_get_sqe(&ring_);
        if (!sqe) ctx_.error("no SQE free after submitting the queue");
    }
    io_uring_prep_nop(sqe);  // start from a clean SQE: callers overwrite it with their prep
    sqe->user_data = user_data;
    outstanding_[user_data] = what;
    return sqe;
}

int Ring::submit() {
    int ret = io_uring_submit(&ring_);
    if (ret < 0) ctx_.error("io_uring_submit: " + errno_name(ret));
    return ret;
}

Cqe Ring::record(const io_uring_cqe* raw) {
    Cqe cqe{raw->user_data, raw->res, raw->flags, now_ns(), id_};
    trace_.add(cqe);
    if (!(raw->flags & IORING_CQE_F_MORE)) outstanding_.erase(raw->user_data);
    return cqe;
}

std::optional<Cqe> Ring::wait_for(uint64_t timeout_ns) {
    __kernel_timespec ts{int64_t(timeout_ns / 1'000'000'000u), int64_t(timeout_ns % 1'000'000'000u)};
    io_uring_cqe* raw = nullptr;
    for (;;) {
        int ret = io_uring_wait_cqe_timeout(&ring_, &raw, &ts);
        if (ret == 0) break;
        if (ret == -ETIME) return std::nullopt;
        if (ret == -EINTR) continue;
        ctx_.error("io_uring_wait_cqe_timeout: " + errno_name(ret));
    }
    Cqe cqe = record(raw);
    io_uring_cqe_seen(&ring_, raw);
    return cqe;
}

Cqe Ring::wait() {
    for (;;) {
        uint64_t now = now_ns();
        if (now >= ctx_.deadline_ns()) break;
        // Wake at least every 100 ms so the deadline is honoured precisely.
        if (auto cqe = wait_for(std::min<uint64_t>(ctx_.deadline_ns() - now, 100'000'000u))) return *cqe;
    }
    ctx_.hang(str("no CQE before the scenario deadline; ", outstanding_.size(), " request(s) outstanding"));
}

std::vector<Cqe> Ring::reap_until_final(uint64_t user_data) {
    std::vector<Cqe> out;
    for (;;) {
        Cqe cqe = wait();
        out.push_back(cqe);
        if (cqe.user_data == user_data && !cqe.more()) return out;
    }
}

std::vector<Cqe> Ring::reap(size_t count) {
    std::vector<Cqe> out;
    while (out.size() < count) out.push_back(wait());
    return out;
}

std::vector<Cqe> Ring::settle(uint64_t quiet_ns) {
    std::vector<Cqe> out;
    while (auto cqe = wait_for(quiet_ns)) {
        out.push_back(*cqe);
        if (now_ns() >= ctx_.deadline_ns()) ctx_.hang("CQEs kept arriving until the scenario deadline");
    }
    return out;
}

std::vector<std::string> Ring::outstanding() const {
    std::vector<std::string> out;
    for (const auto& [user_data, what] : outstanding_)
        out.push_back(str("ring ", id_, ": user_data=", user_data, " (", what, ")"));
    return out;
}

unsigned Ring::cq_overflow() const { return IO_URING_READ_ONCE(*ring_.cq.koverflow); }

unsigned Ring::sq_flags() const { return IO_URING_READ_ONCE(*ring_.sq.kflags); }

}  // namespace uc
