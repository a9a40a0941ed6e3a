// The explore oracle: one round of a random request mix, described as data
// (its requests, every CQE in reap order, the streams and provided buffers),
// checked against documented invariants only; no timing is assumed. It
// applies the family checkers (multishot_contract, single_completion,
// cancel_accounting, BufferLedger) to the parts of the round they model and
// adds the rules that span requests (bytes per stream, unknown user_data).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "checks.h"
#include "cqe.h"

namespace uc {

enum class ExploreKind {
    nop, write, read, eventfd_read, poll_multishot, recv_multishot, timeout, timeout_multishot,
    linked_read,   // the head of a read -> link timeout chain
    link_timeout,  // its IORING_OP_LINK_TIMEOUT
    cancel,
};
enum class ExploreCancelKey { user_data, fd, fd_all, any };

struct ExploreRequest {
    uint64_t user_data = 0;
    ExploreKind kind = ExploreKind::nop;
    int stream = -1;          // byte stream it writes or reads, -1 none
    int file = -1;            // file slot it names (a cancel by fd: the one it keys on), -1 none
    unsigned len = 0;         // bytes asked for (write, read)
    unsigned count = 0;       // timeout completion count
    ExploreCancelKey key = ExploreCancelKey::user_data;
    uint64_t target = 0;      // cancel by user_data
    bool fd_closed = false;   // its file was closed before the SQE was prepared
};

struct ExploreStream {
    std::optional<size_t> closed_at;  // number of CQEs reaped when the writer was closed
    uint64_t leftover = 0;            // bytes read from it by hand after the drain
};

struct ExploreProvide {
    size_t at_cqe = 0;  // provided before CQE number at_cqe was reaped
    unsigned bid = 0;
    unsigned len = 0;
};

struct ExploreRound {
    std::vector<ExploreRequest> requests;  // in the order their SQEs were prepared
    std::vector<Cqe> cqes;                 // every CQE, in reap order
    std::vector<ExploreStream> streams;
    std::vector<ExploreProvide> provides;  // buffer group of the recv-multishot requests
};

struct ExploreViolation {
    std::string rule_id;  // stable key: "completion-contract", "bytes-conserved", ...
    Check check;
};

// The first violated rule, or nullopt when the round behaved. Rule ids:
// unknown-user-data, outstanding-after-drain, completion-contract,
// result-allowed, eof-before-close, cancel-consistent, buffer-ownership,
// bytes-conserved.
std::optional<ExploreViolation> explore_oracle(const ExploreRound& round);

// Every rule id the oracle can return, in the order it checks them.
const std::vector<std::string>& explore_rule_ids();

bool explore_multishot(ExploreKind kind);
std::string explore_kind_name(ExploreKind kind);

}  // namespace uc
