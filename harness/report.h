// Results on disk. Each finished scenario is appended to REPORT.jsonl and
// fsync'd at once (and copied to an optional stream such as a guest's serial
// port), so a kill or kernel panic loses at most the scenario in flight. When
// the run ends the lines are assembled into REPORT (schema:
// reports/report.schema.json) and the .jsonl goes away. An interrupted run's
// .jsonl can be continued (--resume): its results are carried over, new ones
// are appended to the same file.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "output_path.h"
#include "result.h"
#include "util.h"

namespace uc {

using Json = nlohmann::ordered_json;

// One JSON line, never throwing on text that is not UTF-8 (a scenario's
// output may be anything): invalid bytes become U+FFFD.
std::string dump_line(const Json& value, int indent = -1);
// The text with every invalid UTF-8 sequence replaced by U+FFFD.
std::string to_valid_utf8(std::string_view text);

// What an interrupted run left in its REPORT.jsonl.
struct PreviousRun {
    std::string jsonl_path;
    Json header;                // without "type"
    std::vector<Result> results;  // in file order, the last word on each id
    bool ended = false;         // an "end" line was written
    size_t complete_bytes = 0;  // up to the end of the last complete line
};
// Reads FILE.jsonl; a truncated last line is ignored. Throws
// std::runtime_error with a one-line message for a missing/unreadable file,
// a missing header, or a broken line that is not the last.
PreviousRun read_previous_run(const std::string& jsonl_path);

class ReportWriter {
  public:
    // Opens (truncates) REPORT.jsonl beside the checked report target;
    // throws std::runtime_error with a one-line message if it cannot be
    // written or another run is writing it.
    ReportWriter(OutputTarget report, std::string stream_path);
    // The same for a path checked here (tests, bench): a regular file or absent.
    ReportWriter(const std::string& report_path, std::string stream_path)
        : ReportWriter(check_output("--report", report_path, {.allow_device = false}), std::move(stream_path)) {}
    // Continues previous.jsonl_path: cuts a truncated last line, appends
    // after it; the final report goes to `report`.
    ReportWriter(OutputTarget report, std::string stream_path, const PreviousRun& previous);
    ReportWriter(const std::string& report_path, std::string stream_path, const PreviousRun& previous)
        : ReportWriter(check_output("--report", report_path, {.allow_device = false}), std::move(stream_path), previous) {}

    // {"type":"header", ...}; when resuming it goes to the stream only
    // (REPORT.jsonl has it already).
    void header(const Json& header);
    // {"type":"start"} before a scenario's child is forked: after a panic or
    // kill, the last start without a result names the scenario in flight.
    void started(const std::string& id, size_t index, size_t planned);
    void result(const Result& result);  // one finished scenario
    // A result of the interrupted run: marked "resumed", copied to the
    // stream (whose reader may have missed it), not to REPORT.jsonl again.
    void carried_over(const Result& result);
    // Writes the "end" line and the final report; returns its path.
    std::string finish(double duration_s);

    const std::vector<Result>& results() const { return results_; }
    const std::string& report_path() const { return report_.path; }
    const Json& final_report() const { return final_; }
    const std::string& jsonl_path() const { return jsonl_path_; }

  private:
    void append(const Json& line, bool to_jsonl = true);

    OutputTarget report_;
    std::string jsonl_path_;
    Fd jsonl_, stream_;
    bool resuming_ = false;
    Json header_, final_;
    std::vector<Result> results_;
};

// REPORT.jsonl: the results of a run in progress, beside its report.
std::string jsonl_path_for(const std::string& report_path);

// A result's evidence as lines for people (KTAP diagnostics, JUnit failure
// text, --verbose): "failure: ...", "cqe: ...", "kernel: ...", the last
// max_output_lines lines of the output tail.
std::vector<std::string> evidence_lines(const Json& evidence, size_t max_output_lines = 20);

// The end-of-run table: verdict counts per family, the five slowest
// scenarios, every result that did not pass, and where the report is.
void print_summary(std::FILE* out, const std::vector<Result>& results, const std::string& report_path);

}  // namespace uc
