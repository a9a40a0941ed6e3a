// The one result type: how a scenario variant ended, built in one place and
// handed to every output (report, KTAP, JUnit, progress, summary). On disk
// it is the report schema's $defs/result (reports/report.schema.json), whose
// verdict enum is the list Verdict mirrors (a unit test checks they agree).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace uc {

using Json = nlohmann::ordered_json;

enum class Verdict { pass, fail, skip, hang, crash, error };

const std::vector<Verdict>& all_verdicts();  // in the schema's order
std::string verdict_name(Verdict verdict);   // "pass"
std::optional<Verdict> parse_verdict(const std::string& name);
// fail, hang, crash, error: something is wrong (the exit status is 1).
inline bool is_bad(Verdict v) { return v != Verdict::pass && v != Verdict::skip; }

struct Result {
    std::string id, family, scenario;
    Json params = Json::object();
    Verdict verdict = Verdict::pass;
    std::string reason;
    double duration_ms = 0;
    uint64_t iterations = 0;
    bool timing_dependent = false;
    Json metrics = Json::object();
    Json evidence = Json::object();
    bool resumed = false;       // carried over from an interrupted run (--resume)
    Json expectation = nullptr;  // set by --expect: {status, expected, reason, link, source}

    Json to_json() const;
    // A result line of the report or the stream; throws std::runtime_error
    // naming what is missing.
    static Result from_json(const Json& line);
};

// The report's "summary": each verdict's count plus total.
Json summarize(const std::vector<Result>& results);

}  // namespace uc
