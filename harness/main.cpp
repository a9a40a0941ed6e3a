// uring-conform: io_uring conformance scenarios against the running kernel.
#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <cstring>
#include <iostream>

#include "runner.h"
#include "version.h"

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNoIoUring = 4;

int usage_error(const std::string& message) {
    std::fprintf(stderr, "uring-conform: error: %s\n", message.c_str());
    return kExitUsage;
}

void print_probe(const uc::Probe& probe) {
    uc::Json j = probe.to_json();
    std::printf("kernel      %s %s\n", probe.kernel_release.c_str(), probe.machine.c_str());
    std::printf("liburing    compile %s, runtime %s\n", probe.liburing_compile.c_str(), probe.liburing_runtime.c_str());
    std::printf("io_uring    %s\n", probe.usable ? "usable" : ("NOT usable: " + probe.unusable_reason).c_str());
    auto join = [](const uc::Json& list) {
        std::string out;
        for (const auto& item : list) out += (out.empty() ? "" : " ") + item.get<std::string>();
        return out;
    };
    std::printf("opcodes     %zu: %s\n", j["opcodes"].size(), join(j["opcodes"]).c_str());
    std::printf("features    %s\n", join(j["features"]).c_str());
    std::printf("setup flags");
    for (auto& [name, result] : probe.setup_flags) std::printf(" %s=%s", name.c_str(), result.c_str());
    std::printf("\nbuf ring    ring=%s incremental=%s\n", probe.buf_ring ? "yes" : "no", probe.buf_ring_inc ? "yes" : "no");
    std::printf("capability ");
    for (auto& [name, ok] : probe.capabilities) std::printf(" %s=%s", name.c_str(), ok ? "yes" : "no");
    std::printf("\nsysctl      io_uring_disabled=%s io_uring_group=%s\n",
                probe.io_uring_disabled ? std::to_string(*probe.io_uring_disabled).c_str() : "absent",
                probe.io_uring_group ? std::to_string(*probe.io_uring_group).c_str() : "absent");
    std::printf("memlock     %s\nuid         %u\n",
                probe.memlock_kib ? (std::to_string(*probe.memlock_kib) + " KiB").c_str() : "unlimited", probe.uid);
}

std::string kernel_release() {
    utsname uts{};
    uname(&uts);
    return uts.release;
}

std::string default_report_path() { return "reports/local/" + kernel_release() + ".json"; }

// An output named on the command line must be writable before the run
// starts, not after it (nothing existing is truncated here).
std::optional<std::string> unwritable(const std::string& path) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return "cannot write " + path + ": " + std::strerror(errno);
    close(fd);
    return std::nullopt;
}

// --resume continues the recorded run: its selection and settings come from
// the header of FILE.jsonl; options that would change them are refused.
std::optional<std::string> adopt_previous_run(const uc::PreviousRun& previous, CLI::App& run_cmd, uc::RunOptions& run) {
    const uc::Json& recorded = previous.header["run"];
    std::string release = previous.header["kernel"]["release"];
    if (release != kernel_release())
        return "--resume " + previous.jsonl_path + ": recorded on kernel " + release + ", this is " + kernel_release();
    auto profile = uc::parse_profile(recorded.value("profile", ""));
    if (!recorded.value("filter", uc::Json()).is_string() || !profile ||
        !recorded.value("seed", uc::Json()).is_number_unsigned())
        return "--resume " + previous.jsonl_path + ": header lacks run.filter, run.profile or run.seed";
    for (const char* changed : {"--filter", "--profile", "--seed", "--timeout", "--environment"})
        if (run_cmd.count(changed)) return std::string(changed) + " cannot be combined with --resume (the recorded run's is used)";
    run.filter = recorded["filter"];
    run.profile = *profile;
    run.seed = recorded["seed"];
    if (recorded.value("timeout_s", uc::Json()).is_number()) run.timeout_s = recorded["timeout_s"].get<double>();
    run.environment = recorded.value("environment", run.environment);
    return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"uring-conform: io_uring conformance and regression scenarios against the running kernel.\n"
                 "Exit: 0 nothing failed, 1 something failed/hung/crashed, 2 bad usage, 4 io_uring unusable."};
    app.set_version_flag("--version", std::string("uring-conform ") + UC_TOOL_VERSION);
    app.require_subcommand(1);

    bool probe_json = false;
    auto* probe_cmd = app.add_subcommand("probe", "Show what the running kernel supports (found by trying it)");
    probe_cmd->add_flag("--json", probe_json, "Print the probe as JSON");

    std::string list_filter = "*";
    bool list_json = false, list_long = false;
    auto* list_cmd = app.add_subcommand("list", "List scenario ids (family/scenario[variant])");
    list_cmd->add_option("--filter", list_filter, "Glob over scenario ids: * and ? are wildcards, [ ] match themselves");
    auto* list_json_flag = list_cmd->add_flag("--json", list_json, "Print id, family, scenario, params and summary as JSON");
    list_cmd->add_flag("--long,-l", list_long, "Print each id with its one-line summary")->excludes(list_json_flag);

    uc::RunOptions run;
    std::optional<uc::PreviousRun> previous;
    std::string profile = "quick";
    double timeout_s = 0, duration_s = 0;
    auto* run_cmd = app.add_subcommand("run", "Run scenarios and write a JSON report");
    run_cmd->add_option("--filter", run.filter, "Glob over scenario ids: * and ? are wildcards, [ ] match themselves");
    run_cmd->add_option("--profile", profile, "quick | full | stress (iterations, time budgets, watchdog)")
        ->check(CLI::IsMember({"quick", "full", "stress"}));
    run_cmd->add_option("--seed", run.seed, "Seed for randomised scenarios (default: from the clock)");
    auto* timeout_opt = run_cmd->add_option("--timeout", timeout_s, "Watchdog limit per scenario, seconds (0 < T <= 3600)");
    auto* duration_opt =
        run_cmd->add_option("--duration", duration_s, "Time budget for long-running scenarios, seconds (0 < D <= 3600)");
    run_cmd->add_option("--report", run.report_path, "Report file (default reports/local/<uname -r>.json)");
    run_cmd->add_option("--stream", run.stream_path, "Also write every JSONL result line here (e.g. /dev/ttyS1)");
    run_cmd->add_option("--environment", run.environment, "Where this runs, recorded in the report (default host)");
    auto* quiet_flag = run_cmd->add_flag("--quiet,-q", run.quiet, "No progress output");
    run_cmd->add_flag("--verbose,-v", run.verbose, "Every result, with the evidence of those not passing")
        ->excludes(quiet_flag);
    run_cmd->add_option("--ktap", run.ktap_path, "Also write KTAP (kselftest format) to FILE, or - for stdout");
    run_cmd->add_option("--junit", run.junit_path, "Also write JUnit XML to FILE when the run ends");
    std::string resume_path;
    run_cmd->add_option("--resume", resume_path,
                        "Continue the interrupted run recorded in FILE.jsonl (same kernel): run what it lacks, "
                        "append to it, then write the report (default: FILE without .jsonl)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        return usage_error(std::string(e.what()) + " (see --help)");
    }

    if (*list_cmd) {
        auto instances = uc::select_instances(list_filter);
        if (instances.empty()) return usage_error("no scenario matches --filter '" + list_filter + "'");
        uc::Json out = uc::Json::array();
        size_t id_width = 0;
        for (const auto& inst : instances) id_width = std::max(id_width, inst.id.size());
        for (const auto& inst : instances) {
            if (!list_json) {
                if (list_long)
                    std::printf("%-*s  %s\n", int(id_width), inst.id.c_str(), inst.scenario->summary.c_str());
                else
                    std::printf("%s\n", inst.id.c_str());
                continue;
            }
            out.push_back({{"id", inst.id}, {"family", inst.scenario->family}, {"scenario", inst.scenario->name},
                           {"params", inst.variant->params}, {"summary", inst.scenario->summary}});
        }
        if (list_json) std::printf("%s\n", out.dump(2).c_str());
        return 0;
    }

    if (*run_cmd) {
        if (*timeout_opt) {
            if (!(timeout_s > 0 && timeout_s <= 3600)) return usage_error("--timeout must be > 0 and <= 3600 seconds");
            run.timeout_s = timeout_s;
        }
        if (*duration_opt) {
            if (!(duration_s > 0 && duration_s <= 3600)) return usage_error("--duration must be > 0 and <= 3600 seconds");
            run.duration_s = duration_s;
        }
        run.profile = *uc::parse_profile(profile);
        if (run_cmd->count("--seed") == 0) run.seed = uint64_t(time(nullptr));
        if (!resume_path.empty()) {
            try {
                previous.emplace(uc::read_previous_run(resume_path));
            } catch (const std::exception& e) {
                return usage_error(e.what());
            }
            if (auto problem = adopt_previous_run(*previous, *run_cmd, run)) return usage_error(*problem);
            const std::string suffix = ".jsonl";
            if (run.report_path.empty()) {
                if (resume_path.size() <= suffix.size() ||
                    resume_path.compare(resume_path.size() - suffix.size(), suffix.size(), suffix) != 0)
                    return usage_error("--resume " + resume_path + ": name the report with --report (FILE does not end in .jsonl)");
                run.report_path = resume_path.substr(0, resume_path.size() - suffix.size());
            }
        }
        if (run.report_path.empty()) run.report_path = default_report_path();
        if (run.ktap_path == run.report_path || run.junit_path == run.report_path ||
            (!run.ktap_path.empty() && run.ktap_path == run.junit_path))
            return usage_error("--report, --ktap and --junit must name different files");
        auto instances = uc::select_instances(run.filter);
        if (instances.empty()) return usage_error("no scenario matches --filter '" + run.filter + "'");
        for (const std::string* output : {&run.ktap_path, &run.junit_path})
            if (!output->empty() && *output != "-")
                if (auto problem = unwritable(*output)) return usage_error(*problem);
        if (run.junit_path == "-") return usage_error("--junit needs a file name (KTAP can go to stdout with --ktap -)");
    }

    uc::Probe probe = uc::run_probe();
    if (*probe_cmd) {
        if (probe_json)
            std::printf("%s\n", probe.to_json().dump(2).c_str());
        else
            print_probe(probe);
        return probe.usable ? 0 : kExitNoIoUring;
    }
    if (!probe.usable) {
        std::string hint;
        // Without CAP_IPC_LOCK the kernel charges ring memory to RLIMIT_MEMLOCK.
        if (probe.unusable_reason.find("ENOMEM") != std::string::npos && probe.memlock_kib)
            hint = " (RLIMIT_MEMLOCK is " + std::to_string(*probe.memlock_kib) +
                   " KiB and ring memory is charged to it: raise ulimit -l)";
        std::fprintf(stderr, "uring-conform: io_uring cannot be used here: %s%s\n", probe.unusable_reason.c_str(),
                     hint.c_str());
        return kExitNoIoUring;
    }
    std::optional<uc::ReportWriter> writer;
    try {
        if (previous)
            writer.emplace(run.report_path, run.stream_path, *previous);
        else
            writer.emplace(run.report_path, run.stream_path);
    } catch (const std::exception& e) {
        return usage_error(e.what());
    }
    try {
        return uc::run_suite(run, probe, uc::select_instances(run.filter), *writer, previous ? &*previous : nullptr);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "uring-conform: error: %s\n", e.what());
        return kExitFailed;
    }
}
