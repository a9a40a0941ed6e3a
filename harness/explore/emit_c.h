// Writes an explore finding as a standalone C reproducer: the executor core
// (exec_core.c, verbatim), the shrunk program as a table and a main() with
// reproducers/' exit codes (0 behaved, 1 reproduced, 125 cannot test).
#pragma once

#include <cstdint>
#include <string>

#include "program.h"

namespace uc::explore {

struct Finding {
    uint64_t seed = 0;
    uint64_t round = 0;
    std::string rule;          // rule id
    std::string check;         // the broken rule in words, with the offending CQE
    std::string kernel;        // uname -r where it was found
    size_t original_steps = 0;
    Program program;           // the shrunk program
    std::string reproduced;    // "3 of 3 replays"
};

std::string reproducer_source(const Finding& finding);
// "found-<rule>-<seed>-r<round>.c"
std::string reproducer_name(const Finding& finding);

}  // namespace uc::explore
