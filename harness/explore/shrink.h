// Shrinking a violating program: replay it with steps removed and arguments
// simplified, keeping a candidate only if the same rule breaks in k of n
// replays (kernel timing varies), until no candidate does or time runs out.
#pragma once

#include <string>

#include "program.h"

namespace uc::explore {

struct ReplayOptions {
    unsigned k = 2, n = 3;          // reproduced = the rule broke in at least k of n replays
    uint32_t drain_ms = 2000;
    int round_timeout_ms = 10000;   // a replay silent this long is a hang (rule "round-watchdog")
};

// How many of up to `options.n` replays (each a fresh ring, in a forked
// child) broke `rule`; stops early once the k-of-n answer is known.
unsigned reproductions(const Program& program, const std::string& rule, const ReplayOptions& options);
bool reproduces(const Program& program, const std::string& rule, const ReplayOptions& options);

struct ShrinkResult {
    Program program;
    unsigned candidates = 0;  // programs tried
    bool out_of_time = false;
};

// Shrinks `original` (which broke `rule`) within `budget_s` seconds.
ShrinkResult shrink(const Program& original, const std::string& rule, const ReplayOptions& options, double budget_s);

}  // namespace uc::explore
