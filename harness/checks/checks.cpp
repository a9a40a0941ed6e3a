#include "checks.h"

#include <algorithm>

#include "util.h"

namespace uc {

std::string Check::describe() const {
    if (ok) return "ok";
    return offending ? rule + " [" + offending->describe() + "]" : rule;
}

static std::string res_list(const std::vector<int>& values) {
    std::string out;
    for (int v : values) out += (out.empty() ? "" : " or ") + res_text(v);
    return out;
}

static bool allowed_res(const std::vector<int>& allowed, int res) {
    return allowed.empty() || std::find(allowed.begin(), allowed.end(), res) != allowed.end();
}

Check multishot_contract(const std::vector<Cqe>& cqes, uint64_t user_data, const MultishotExpect& expect) {
    const Cqe* final_cqe = nullptr;
    size_t seen = 0;
    for (const Cqe& cqe : cqes) {
        if (cqe.user_data != user_data) continue;
        ++seen;
        if (final_cqe)
            return Check::fail(str("CQE for user_data ", user_data, " after its final CQE (", final_cqe->describe(),
                                   "): nothing may follow the CQE without IORING_CQE_F_MORE"),
                               cqe);
        if (!cqe.more()) {
            final_cqe = &cqe;
            continue;
        }
        if (expect.error_ends_request && cqe.res < 0)
            return Check::fail("error CQE carries IORING_CQE_F_MORE: error completions end the request", cqe);
    }
    if (seen == 0) return Check::fail(str("no CQE at all for multishot request user_data ", user_data));
    if (!final_cqe)
        return Check::fail(str("multishot request user_data ", user_data, " has no final CQE without IORING_CQE_F_MORE (",
                               seen, " CQEs, all with F_MORE)"));
    if (!allowed_res(expect.final_res, final_cqe->res))
        return Check::fail(str("final CQE res is ", res_text(final_cqe->res), ", expected ", res_list(expect.final_res)),
                           *final_cqe);
    return Check::pass();
}

Check single_completion(const std::vector<Cqe>& cqes, uint64_t user_data, const std::vector<int>& allowed) {
    const Cqe* first = nullptr;
    for (const Cqe& cqe : cqes) {
        if (cqe.user_data != user_data) continue;
        if (first) return Check::fail(str("second CQE for one-shot request user_data ", user_data), cqe);
        first = &cqe;
    }
    if (!first) return Check::fail(str("no CQE for request user_data ", user_data));
    if (first->more()) return Check::fail("one-shot request's CQE carries IORING_CQE_F_MORE", *first);
    if (!allowed_res(allowed, first->res))
        return Check::fail(str("res is ", res_text(first->res), ", expected ", res_list(allowed)), *first);
    return Check::pass();
}

}  // namespace uc
