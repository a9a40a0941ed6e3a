// An explore program: the steps one round runs (exec_core.h's vocabulary),
// generated deterministically from a seed by our own PRNG (splitmix64), so a
// seed names the same program with any compiler and standard library.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "exec_core.h"

namespace uc::explore {

// splitmix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number
// generators", OOPSLA 2014): one 64-bit state, full period.
class SplitMix64 {
  public:
    explicit SplitMix64(uint64_t seed) : state_(seed) {}
    uint64_t next();
    // Uniform in [0, bound) (bound > 0), by rejection: no modulo bias.
    uint64_t below(uint64_t bound);
    uint32_t between(uint32_t lo, uint32_t hi) { return lo + uint32_t(below(uint64_t(hi) - lo + 1)); }
    bool chance(unsigned percent) { return below(100) < percent; }

  private:
    uint64_t state_;
};

struct Program {
    unsigned setup = XSETUP_NONE;
    std::vector<xstep> steps;

    xprogram view(uint32_t drain_ms) const { return {uint8_t(setup), uint32_t(steps.size()), steps.data(), drain_ms}; }
};

struct GenOptions {
    std::vector<unsigned> ops;       // xop values allowed; empty = the default mix
    std::optional<unsigned> setup;   // fixed setup mode, else drawn per round
    unsigned caps = 0;               // xprobe() bits: steps and setups needing more are not drawn
    bool selftest_ghost = false;     // draw XOP_SELFTEST_GHOST (self-test of the whole pipeline)
};

// The round's program: a function of (seed, round) only.
Program generate(uint64_t seed, uint64_t round, const GenOptions& options);
// The seed of round `round` of a run seeded `seed`.
uint64_t round_seed(uint64_t seed, uint64_t round);

// "write pipe0 len=17", "cancel key=fd file=pipe0.r"
std::string describe(const xstep& step);
nlohmann::json program_to_json(const Program& program);
// The default mix's op names (for --ops and --help), selftest excluded.
std::vector<std::string> op_names();
// xop from its name; nullopt when unknown.
std::optional<unsigned> op_from_name(const std::string& name);
std::string file_name(unsigned slot);

}  // namespace uc::explore
