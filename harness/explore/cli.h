// `uring-conform explore`: seeded random request mixes run on the kernel,
// checked by the oracle, violations shrunk and emitted as C reproducers.
// main.cpp parses the command line into ExploreOptions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace uc::explore {

struct ExploreOptions {
    std::optional<uint64_t> seed;      // default: from the clock (printed and reported)
    std::optional<double> duration_s;  // run time (default 20 s unless rounds is given)
    std::optional<uint64_t> rounds;    // stop after this many rounds
    std::string setup;                 // "" = drawn per round; none | coop_taskrun | defer_taskrun | sqpoll
    std::vector<std::string> ops;      // step names (see --help); empty = the default mix
    std::string report_path;           // JSON report (reports/explore.schema.json); "" = none
    std::string emit_dir;              // write a reproducer per finding here; "" = none
    double shrink_budget_s = 60;       // per finding
    unsigned max_findings = 3;         // distinct rules shrunk and emitted
    bool quiet = false;
    bool selftest_ghost = false;       // hidden: a step that breaks a rule on purpose
};

// Exit: 0 no rule broken, 1 violations found, 2 bad usage, 4 io_uring unusable.
int explore_command(const ExploreOptions& options);

// The step names --ops accepts, comma-joined (for --help).
std::string explore_op_list();

}  // namespace uc::explore
