// The CQE recorder: every CQE a scenario reaps, in order, with a timestamp.
// Checkers read it; a failing or hanging result carries its tail as evidence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace uc {

struct Cqe {
    uint64_t user_data = 0;
    int32_t res = 0;
    uint32_t flags = 0;
    uint64_t t_ns = 0;  // CLOCK_MONOTONIC when reaped
    uint32_t ring = 0;  // which of the scenario's rings, for multi-ring scenarios

    bool more() const;        // IORING_CQE_F_MORE
    bool has_buffer() const;  // IORING_CQE_F_BUFFER
    unsigned buffer_id() const;
    bool notif() const;  // IORING_CQE_F_NOTIF
    std::string describe() const;  // "user_data=7 res=-ENOBUFS flags=0"
};

// Keeps the newest `capacity` CQEs (long races would otherwise grow without
// bound); `dropped()` says how many older ones were let go.
class CqeTrace {
  public:
    explicit CqeTrace(size_t capacity = 1u << 16) : capacity_(capacity) { cqes_.reserve(capacity < 4096 ? capacity : 4096); }

    void add(const Cqe& cqe) {
        if (cqes_.size() == capacity_) shrink();
        cqes_.push_back(cqe);
    }
    const std::vector<Cqe>& all() const { return cqes_; }
    size_t dropped() const { return dropped_; }
    std::vector<Cqe> for_request(uint64_t user_data) const;
    std::vector<Cqe> tail(size_t n) const;
    void clear() { cqes_.clear(); }

  private:
    void shrink();
    size_t capacity_;
    size_t dropped_ = 0;
    std::vector<Cqe> cqes_;
};

// Evidence form of a CQE: times relative to `origin_ns` (the scenario start).
nlohmann::json cqe_to_json(const Cqe& cqe, uint64_t origin_ns);

}  // namespace uc
