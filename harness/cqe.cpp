#include "cqe.h"

#include "compat/uapi.h"
#include "util.h"

namespace uc {

bool Cqe::more() const { return flags & IORING_CQE_F_MORE; }
bool Cqe::has_buffer() const { return flags & IORING_CQE_F_BUFFER; }
unsigned Cqe::buffer_id() const { return flags >> IORING_CQE_BUFFER_SHIFT; }
bool Cqe::notif() const { return flags & IORING_CQE_F_NOTIF; }

std::string Cqe::describe() const {
    return str("user_data=", user_data, " res=", res_text(res), " flags=", cqe_flag_names(flags));
}

std::vector<Cqe> CqeTrace::for_request(uint64_t user_data) const {
    std::vector<Cqe> out;
    for (const Cqe& cqe : cqes_)
        if (cqe.user_data == user_data) out.push_back(cqe);
    return out;
}

std::vector<Cqe> CqeTrace::tail(size_t n) const {
    size_t first = cqes_.size() > n ? cqes_.size() - n : 0;
    return {cqes_.begin() + long(first), cqes_.end()};
}

void CqeTrace::shrink() {
    size_t drop = capacity_ / 2 ? capacity_ / 2 : 1;
    cqes_.erase(cqes_.begin(), cqes_.begin() + long(drop));
    dropped_ += drop;
}

nlohmann::json cqe_to_json(const Cqe& cqe, uint64_t origin_ns) {
    double t_us = cqe.t_ns >= origin_ns ? double(cqe.t_ns - origin_ns) / 1000.0 : 0.0;
    return {{"ring", cqe.ring},         {"user_data", cqe.user_data},
            {"res", cqe.res},           {"flags", cqe.flags},
            {"flag_names", cqe_flag_names(cqe.flags)}, {"t_us", t_us}};
}

}  // namespace uc
