// Checkers: each enforces one documented contract over recorded CQEs and
// returns a Check naming the broken rule and the offending CQE.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cqe.h"

namespace uc {

struct Check {
    bool ok = true;
    std::string rule;             // the rule that broke, in words
    std::optional<Cqe> offending;  // the CQE that broke it, when there is one

    static Check pass() { return {}; }
    static Check fail(std::string rule, std::optional<Cqe> cqe = std::nullopt) {
        return {false, std::move(rule), cqe};
    }
    explicit operator bool() const { return ok; }
    std::string describe() const;  // rule + offending CQE
};

// What a multishot request's final CQE may say.
struct MultishotExpect {
    // Allowed res values of the final CQE; empty = any.
    std::vector<int> final_res;
    // io_uring_multishot(7): "Error completions from multishot operations do
    // not have IORING_CQE_F_MORE set". False only where a negative res is the
    // operation's normal event (multishot timeouts post -ETIME with F_MORE).
    bool error_ends_request = true;
};

// io_uring_multishot(7): every CQE of the request but the last carries
// IORING_CQE_F_MORE; exactly one final CQE lacks it; nothing follows it.
// `cqes` is the whole trace (other requests' CQEs are ignored).
Check multishot_contract(const std::vector<Cqe>& cqes, uint64_t user_data, const MultishotExpect& expect = {});

// Exactly one CQE for a one-shot request, optionally with a res from `allowed`.
Check single_completion(const std::vector<Cqe>& cqes, uint64_t user_data, const std::vector<int>& allowed = {});

}  // namespace uc
