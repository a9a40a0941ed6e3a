// Runs scenario instances, each in a forked child (own process group) under a
// watchdog, and turns how the child ended into a verdict.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "report.h"
#include "scenario.h"

namespace uc {

struct RunOptions {
    std::string filter = "*";
    Profile profile = Profile::quick;
    uint64_t seed = 0;
    std::optional<double> timeout_s;   // overrides the profile's watchdog limit
    std::optional<double> duration_s;  // time budget for long-running scenarios
    std::string report_path;
    std::string stream_path;
    std::string environment = "host";
    bool quiet = false;
};

double default_timeout_s(Profile profile);

// One instance in a watched child: the result document for the report
// (id, family, scenario, params, verdict, reason, duration_ms, iterations,
// metrics, evidence).
Json run_instance(const Instance& instance, const Probe& probe, const Settings& settings);

// The whole run, recorded through `writer`; returns the process exit code
// (0 all good, 1 something failed/hung/crashed/errored). Throws
// std::runtime_error if the report cannot be written.
int run_suite(const RunOptions& options, const Probe& probe, const std::vector<Instance>& instances,
              ReportWriter& writer);

// The report's tool/kernel/liburing/probe/run header for this run.
Json report_header(const RunOptions& options, const Probe& probe, size_t planned);

}  // namespace uc
