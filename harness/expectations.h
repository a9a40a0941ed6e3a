// Known issues: a kernel with a known bug should not turn CI red forever,
// and a new bug must still turn it red. An expectations file (TOML, see
// expectations/README.md) lists entries:
//
//   [[expect]]
//   ids = "cancel/running-request-ealready[*]"   # glob, brackets literal as in --filter
//   kernels = ["6.18.*"]                           # uname -r globs; omitted: any kernel
//   probe = "setup_flags.SQPOLL=ok"                # optional probe fact (report.probe path = value)
//   verdict = "fail"                               # the raw verdict expected
//   reason = "one line"
//   link = "https://..."
//   intermittent = true                            # a known race: a pass is not an xpass
//
// `run --expect FILE` keeps every result's raw verdict and marks a matching
// one xfail (the expected verdict happened: known, not counted as a
// failure) or xpass (it did not: worth attention, listed).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "probe.h"
#include "result.h"

namespace uc {

struct Expectation {
    std::string ids;
    std::vector<std::string> kernels;  // empty: every kernel
    std::string probe_path, probe_value;  // probe_path empty: no probe condition
    Verdict verdict = Verdict::fail;
    std::string reason, link;
    bool intermittent = false;  // a pass leaves the result unmarked
    std::string source;  // file:line, for the report
};

// Every entry of the files, in order; throws std::runtime_error("FILE:LINE: ...")
// for a file that is missing, not TOML, or has an entry without ids,
// verdict or reason, or with an unknown key or verdict.
std::vector<Expectation> load_expectations(const std::vector<std::string>& paths);

// Whether the entry applies to this kernel (release glob and probe fact).
bool applies_to(const Expectation& entry, const Probe& probe);

// Marks `result` by the first entry whose ids match it; entries must already
// be filtered with applies_to().
void apply_expectations(Result& result, const std::vector<Expectation>& entries);

// A result that does not count as a failure: a pass, a skip, or a known issue (xfail).
bool counts_as_failure(const Result& result);

}  // namespace uc
