// Results on disk. Each finished scenario is appended to REPORT.jsonl and
// fsync'd at once (and copied to an optional stream such as a guest's serial
// port), so a kill or kernel panic loses at most the scenario in flight. When
// the run ends the lines are assembled into REPORT (schema:
// reports/report.schema.json) and the .jsonl goes away.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util.h"

namespace uc {

using Json = nlohmann::ordered_json;

class ReportWriter {
  public:
    // Opens (truncates) REPORT.jsonl; throws std::runtime_error with a
    // one-line message if it cannot be written.
    ReportWriter(std::string report_path, std::string stream_path);

    void header(const Json& header);  // {"type":"header", ...}
    void result(const Json& result);  // one finished scenario
    // Writes the "end" line and the final report; returns its path.
    std::string finish(double duration_s);

    const std::vector<Json>& results() const { return results_; }

  private:
    void append(const Json& line);

    std::string report_path_, jsonl_path_;
    Fd jsonl_, stream_;
    Json header_;
    std::vector<Json> results_;
};

// Count of each verdict plus total, as the report's "summary".
Json summarize(const std::vector<Json>& results);

}  // namespace uc
