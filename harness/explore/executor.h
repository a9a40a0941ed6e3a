// Runs an explore program on a real ring (exec_core.c) and judges the round
// with the oracle; in the caller's process (callers fork: see child.h).
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "exec_core.h"
#include "explore_oracle.h"
#include "program.h"

namespace uc::explore {

struct RoundResult {
    std::optional<std::string> error;  // the round could not run (host trouble): not a verdict
    std::optional<ExploreViolation> violation;
    size_t requests = 0;  // submitted, the drain's cancels included
    size_t cqes = 0;
    uint64_t exec_ns = 0;  // inside xrun(): ring setup, steps, drain, ring exit (not the oracle)
    std::array<unsigned, XOP_COUNT> ops{};  // steps run, by op
    nlohmann::json evidence;  // on a violation: requests and the CQE trace
};

class Executor {
  public:
    explicit Executor(uint32_t drain_ms) : drain_ms_(drain_ms), round_(std::make_unique<xround>()) {}
    // One round: fresh ring, the program's steps, the final drain, ring exit, the oracle.
    RoundResult run(const Program& program, bool judge = true);

  private:
    uint32_t drain_ms_;
    std::unique_ptr<xround> round_;
};

// The executor's record as the oracle's input.
ExploreRound oracle_round(const xround& round);

nlohmann::json round_result_to_json(const RoundResult& result);
RoundResult round_result_from_json(const nlohmann::json& j);

}  // namespace uc::explore
