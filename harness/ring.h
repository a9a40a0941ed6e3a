// A scenario's io_uring instance: liburing underneath, plus the CQE recorder
// and the list of requests still outstanding (the evidence for a hang).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compat/uapi.h"
#include "cqe.h"
#include "params.h"

namespace uc {

class Ctx;

class Ring {
  public:
    // A ring in `setup` mode with `cq_entries` CQEs (0: the kernel's default,
    // twice the SQ). A flag the probe saw refused is a skip quoting it;
    // running out of locked memory is a skip naming RLIMIT_MEMLOCK; any other
    // refusal is an error (the probe accepted the flags).
    Ring(Ctx& ctx, Setup setup, unsigned cq_entries = 0, unsigned sq_entries = 32, unsigned extra_flags = 0);
    ~Ring();
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;

    io_uring* get() { return &ring_; }
    Ctx& ctx() { return ctx_; }
    uint32_t id() const { return id_; }

    // The next SQE with `user_data` set; `what` (a string literal) names the
    // request in hang evidence. Submits first if the SQ is full. liburing's
    // io_uring_prep_*() leave user_data alone, so prep the returned SQE as usual.
    io_uring_sqe* sqe(uint64_t user_data, const char* what);
    // Submits everything queued; a refusal is a setup error, not a verdict.
    int submit();

    // The next CQE, recorded; a hang once the scenario deadline passes.
    Cqe wait();
    // The next CQE within `timeout_ns`, or nullopt if none arrives.
    std::optional<Cqe> wait_for(uint64_t timeout_ns);
    // Reaps CQEs (of any request) until the one without IORING_CQE_F_MORE for
    // `user_data`; returns them all.
    std::vector<Cqe> reap_until_final(uint64_t user_data);
    // Reaps until `count` CQEs arrived.
    std::vector<Cqe> reap(size_t count);
    // Reaps until no CQE arrives for `quiet_ns`: for "nothing more comes".
    std::vector<Cqe> settle(uint64_t quiet_ns);

    const CqeTrace& trace() const { return trace_; }
    bool is_outstanding(uint64_t user_data) const { return outstanding_.count(user_data) != 0; }
    std::vector<std::string> outstanding() const;  // "user_data=7 (multishot recv)"
    unsigned cq_overflow() const;                  // *cq.koverflow
    unsigned sq_flags() const;                     // *sq.kflags

  private:
    Cqe record(const io_uring_cqe* cqe);

    Ctx& ctx_;
    io_uring ring_{};
    uint32_t id_;
    CqeTrace trace_;
    std::map<uint64_t, const char*> outstanding_;
};

}  // namespace uc
