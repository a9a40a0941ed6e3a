// The suite loop: each selected instance is skipped in the parent when the
// probe says the kernel refuses what it needs, else run in the sandbox
// (sandbox.h) and its outcome turned into a Result, which goes to every
// sink (sinks.h). Around each scenario: the kernel log and taint checks.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "expectations.h"
#include "kmsg.h"
#include "report.h"
#include "result.h"
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
    std::vector<Expectation> expectations;  // --expect entries that apply to this kernel
    bool quiet = false;      // no progress
    bool verbose = false;    // every result, with the evidence of those not passing
    // Sources of the kernel checks (tests point them at files).
    std::string kmsg_path = "/dev/kmsg";
    std::string taint_path = "/proc/sys/kernel/tainted";
};

double default_timeout_s(Profile profile);

// One instance: skipped with the probe's reason, or run in a watched child.
// `tick`, when given, is called about once a second while the child runs.
Result run_instance(const Instance& instance, const Probe& probe, const Settings& settings,
                    const std::function<void()>& tick = {});

// A kernel splat or taint change seen while the scenario ran makes it fail
// (a hang or crash keeps its verdict), with the log lines and the taint words
// as evidence.kernel_log / evidence.taint.
void attach_kernel_findings(Result& result, const KernelFindings& findings);

// The whole run, recorded through `writer` and the other outputs the options
// name; returns the process exit code (0 all good, 1 something
// failed/hung/crashed/errored). With `previous` (--resume), its results are
// carried over and only the rest is run. On SIGINT/SIGTERM it says what was
// kept and how to resume, then dies of the signal. Throws std::runtime_error
// if an output cannot be written.
int run_suite(const RunOptions& options, const Probe& probe, const std::vector<Instance>& instances,
              ReportWriter& writer, const PreviousRun* previous = nullptr);

// The report's tool/kernel/liburing/probe/run header for this run.
Json report_header(const RunOptions& options, const Probe& probe, size_t planned);

}  // namespace uc
