#include "result.h"

#include <stdexcept>

namespace uc {

const std::vector<Verdict>& all_verdicts() {
    static const std::vector<Verdict> verdicts{Verdict::pass, Verdict::fail,  Verdict::skip,
                                               Verdict::hang, Verdict::crash, Verdict::error};
    return verdicts;
}

std::string verdict_name(Verdict verdict) {
    switch (verdict) {
        case Verdict::pass: return "pass";
        case Verdict::fail: return "fail";
        case Verdict::skip: return "skip";
        case Verdict::hang: return "hang";
        case Verdict::crash: return "crash";
        case Verdict::error: return "error";
    }
    return "error";
}

std::optional<Verdict> parse_verdict(const std::string& name) {
    for (Verdict v : all_verdicts())
        if (verdict_name(v) == name) return v;
    return std::nullopt;
}

Json Result::to_json() const {
    Json j;
    j["id"] = id;
    j["family"] = family;
    j["scenario"] = scenario;
    j["params"] = params;
    j["verdict"] = verdict_name(verdict);
    j["reason"] = reason;
    j["duration_ms"] = duration_ms;
    j["iterations"] = iterations;
    if (timing_dependent) j["timing_dependent"] = true;
    j["metrics"] = metrics;
    j["evidence"] = evidence;
    if (!expectation.is_null()) j["expectation"] = expectation;
    if (resumed) j["resumed"] = true;
    return j;
}

Result Result::from_json(const Json& line) {
    auto text = [&](const char* key) -> std::string {
        if (!line.contains(key) || !line[key].is_string()) throw std::runtime_error(std::string("result without ") + key);
        return line[key];
    };
    Result r;
    r.id = text("id");
    r.family = line.value("family", "");
    r.scenario = line.value("scenario", "");
    r.params = line.value("params", Json::object());
    auto verdict = parse_verdict(text("verdict"));
    if (!verdict) throw std::runtime_error("result " + r.id + ": unknown verdict '" + text("verdict") + "'");
    r.verdict = *verdict;
    r.reason = line.value("reason", "");
    if (!line.contains("duration_ms") || !line["duration_ms"].is_number())
        throw std::runtime_error("result " + r.id + " without duration_ms");
    r.duration_ms = line["duration_ms"];
    r.iterations = line.value("iterations", uint64_t(0));
    r.timing_dependent = line.value("timing_dependent", false);
    r.metrics = line.value("metrics", Json::object());
    r.evidence = line.value("evidence", Json::object());
    r.resumed = line.value("resumed", false);
    r.expectation = line.value("expectation", Json());
    return r;
}

Json summarize(const std::vector<Result>& results) {
    Json summary = {{"total", results.size()}};
    for (Verdict v : all_verdicts()) {
        size_t count = 0;
        for (const Result& r : results) count += r.verdict == v;
        summary[verdict_name(v)] = count;
    }
    return summary;
}

}  // namespace uc
