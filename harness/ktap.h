// KTAP version 1 output (Documentation/dev-tools/ktap.rst), written as the
// run goes so a CI log shows results before the run ends:
//
//   KTAP version 1
//   # uring-conform 0.1.0, kernel 6.12.0 x86_64, profile quick, seed 7
//   1..2                                    one test per family
//     KTAP version 1
//     # Subtest: multishot
//     1..16                                 its scenario variants
//     ok 1 multishot/recv-peer-close[none,cq=8]
//     # failure: final CQE res -ECANCELED, expected 0    evidence before the result
//     not ok 2 multishot/recv-peer-close[sqpoll,cq=8]
//     ok 3 multishot/read-eof[none,cq=8] # SKIP kernel lacks ...
//     not ok 4 multishot/timeout-count[none,cq=8] # TIMEOUT watchdog: ...
//     ...
//   not ok 1 multishot
//
// "# Subtest: <name>" between version and plan is how KUnit names a subtest
// block; for KTAP v1 parsers it is a diagnostic line.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "report.h"
#include "util.h"

namespace uc {

struct KtapFamily {
    std::string name;
    size_t planned = 0;  // its scenario variants in this run
};

// A one-line, directive-safe rendering of free text: no newline or control
// character can start a line of its own.
std::string ktap_safe(const std::string& text);

class KtapWriter {
  public:
    // path "-" is stdout. Throws std::runtime_error (one line) when the file
    // cannot be opened.
    explicit KtapWriter(const std::string& path);

    // Version, header diagnostics and the plan (one test per family).
    void begin(const std::vector<std::string>& diagnostics, const std::vector<KtapFamily>& families);
    // One scenario variant; results must arrive grouped by family, in the
    // order of begin()'s families. A family's block is closed with its own
    // result line when its last variant arrives.
    void result(const Json& result);

    const std::string& path() const { return path_; }

  private:
    void emit(const std::string& text);

    std::string path_;
    Fd owned_;
    int fd_ = -1;
    bool broken_ = false;  // a write failed (reader gone): warned once, no more KTAP
    std::vector<KtapFamily> families_;
    size_t family_ = 0, in_family_ = 0;
    bool family_failed_ = false;
    size_t family_skipped_ = 0;
};

// The KTAP lines of one result at the given indentation (evidence
// diagnostics first, then the result line), without a trailing newline.
std::vector<std::string> ktap_result_lines(size_t number, const Json& result, const std::string& indent);

}  // namespace uc
