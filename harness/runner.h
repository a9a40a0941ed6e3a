// Runs scenario instances, each in a forked child (own process group) under a
// watchdog, and turns how the child ended into a verdict. Around the run:
// kernel log and taint checks, progress, and the JSONL/JSON, KTAP and JUnit
// outputs.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "kmsg.h"
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
    std::string ktap_path;   // "" none, "-" stdout
    std::string junit_path;  // "" none
    bool quiet = false;      // no progress
    bool verbose = false;    // every result, with the evidence of those not passing
    // Sources of the kernel checks (tests point them at files).
    std::string kmsg_path = "/dev/kmsg";
    std::string taint_path = "/proc/sys/kernel/tainted";
};

double default_timeout_s(Profile profile);

// One instance in a watched child: the result document for the report
// (id, family, scenario, params, verdict, reason, duration_ms, iterations,
// metrics, evidence). `tick`, when given, is called about once a second
// while the child runs (a live progress line).
Json run_instance(const Instance& instance, const Probe& probe, const Settings& settings,
                  const std::function<void()>& tick = {});

// A kernel splat or taint change seen while the scenario ran makes it fail
// (a hang or crash keeps its verdict), with the log lines and the taint words
// as evidence.kernel_log / evidence.taint.
void attach_kernel_findings(Json& result, const KernelFindings& findings);

// The whole run, recorded through `writer`; returns the process exit code
// (0 all good, 1 something failed/hung/crashed/errored). With `previous`
// (--resume), its results are carried over and only the rest is run.
// Throws std::runtime_error if an output cannot be written.
int run_suite(const RunOptions& options, const Probe& probe, const std::vector<Instance>& instances,
              ReportWriter& writer, const PreviousRun* previous = nullptr);

// The report's tool/kernel/liburing/probe/run header for this run.
Json report_header(const RunOptions& options, const Probe& probe, size_t planned);

}  // namespace uc
