// uring-conform: io_uring conformance scenarios against the running kernel.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <cstring>
#include <iostream>

#include "explore/cli.h"
#include "output_path.h"
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
    std::printf("\nbuf ring    ring=%s (%s) incremental=%s (%s)\n", probe.buf_ring ? "yes" : "no",
                probe.buf_ring_answer.c_str(), probe.buf_ring_inc ? "yes" : "no", probe.buf_ring_inc_answer.c_str());
    std::printf("capabilities (what was tried -> what the kernel answered):\n");
    for (auto& [name, ok] : probe.capabilities) {
        auto it = probe.capability_evidence.find(name);
        std::printf("  %-30s %-3s %s\n", name.c_str(), ok ? "yes" : "no",
                    it == probe.capability_evidence.end() ? "" : (it->second.tried + " -> " + it->second.answer).c_str());
    }
    std::printf("sysctl      io_uring_disabled=%s io_uring_group=%s\n",
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

// The filter in a file name: "multishot/*" -> "multishot".
std::string filter_slug(const std::string& filter) {
    std::string slug;
    for (char c : filter) {
        if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_')
            slug += c;
        else if (c != '*' && c != '?' && !slug.empty() && slug.back() != '-')
            slug += '-';
    }
    while (!slug.empty() && slug.back() == '-') slug.pop_back();
    return slug.substr(0, 60);
}

// reports/local/<release>.json for the whole suite; a filtered run is named
// apart, so it never replaces the full report.
std::string default_report_path(const std::string& filter) {
    std::string base = "reports/local/" + kernel_release();
    if (filter == "*") return base + ".json";
    std::string slug = filter_slug(filter);
    return base + ".filter-" + (slug.empty() ? "custom" : slug) + ".json";
}

// "--filter multishot" matches no id: ids are family/scenario[variant].
std::string no_match_message(const std::string& filter) {
    std::string message = "no scenario matches --filter '" + filter + "'";
    if (filter.find('/') == std::string::npos && !uc::select_instances(filter + "/*").empty())
        message += " (ids are family/scenario[variant]: try --filter '" + filter + "/*')";
    else
        message += " (see uring-conform list)";
    return message;
}

// A uint64 seed, refused when negative or not a number (CLI11 would wrap -5).
std::optional<uint64_t> parse_seed(const std::string& text) {
    if (text.empty() || text.size() > 20 || text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    errno = 0;
    unsigned long long value = std::strtoull(text.c_str(), nullptr, 10);
    if (errno == ERANGE) return std::nullopt;
    return uint64_t(value);
}

bool ends_with(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
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
    for (const char* changed : {"--filter", "--profile", "--seed", "--timeout", "--environment", "--force"})
        if (run_cmd.count(changed)) return std::string(changed) + " cannot be combined with --resume (the recorded run's is used)";
    run.filter = recorded["filter"];
    run.profile = *profile;
    run.seed = recorded["seed"];
    if (recorded.value("timeout_s", uc::Json()).is_number()) run.timeout_s = recorded["timeout_s"].get<double>();
    run.environment = recorded.value("environment", run.environment);
    return std::nullopt;
}


// --- probe ---

struct ProbeCommand {
    CLI::App* cmd = nullptr;
    bool json = false;

    void add(CLI::App& app) {
        cmd = app.add_subcommand("probe", "Show what the running kernel supports (found by trying it)");
        cmd->add_flag("--json", json, "Print the probe as JSON");
    }

    int run(const uc::Probe& probe) const {
        if (json)
            std::printf("%s\n", probe.to_json().dump(2).c_str());
        else
            print_probe(probe);
        return probe.usable ? 0 : kExitNoIoUring;
    }
};

// --- list ---

struct ListCommand {
    CLI::App* cmd = nullptr;
    std::string filter = "*";
    bool json = false, long_form = false;

    void add(CLI::App& app) {
        cmd = app.add_subcommand("list", "List scenario ids (family/scenario[variant])");
        cmd->add_option("--filter", filter, "Glob over scenario ids: * and ? are wildcards, [ ] match themselves");
        auto* json_flag = cmd->add_flag("--json", json, "Print id, family, scenario, params and summary as JSON");
        cmd->add_flag("--long,-l", long_form, "Print each id with its one-line summary")->excludes(json_flag);
    }

    int run() const {
        auto instances = uc::select_instances(filter);
        if (instances.empty()) return usage_error(no_match_message(filter));
        uc::Json out = uc::Json::array();
        size_t id_width = 0;
        for (const auto& inst : instances) id_width = std::max(id_width, inst.id.size());
        for (const auto& inst : instances) {
            if (json)
                out.push_back({{"id", inst.id}, {"family", inst.scenario->family}, {"scenario", inst.scenario->name},
                               {"params", inst.variant->params}, {"summary", inst.scenario->summary}});
            else if (long_form)
                std::printf("%-*s  %s\n", int(id_width), inst.id.c_str(), inst.scenario->summary.c_str());
            else
                std::printf("%s\n", inst.id.c_str());
        }
        if (json) std::printf("%s\n", out.dump(2).c_str());
        return 0;
    }
};

// --- run ---

struct RunCommand {
    CLI::App* cmd = nullptr;
    uc::RunOptions run;
    std::optional<uc::PreviousRun> previous;
    std::optional<uc::OutputTarget> report;
    std::string profile = "quick", seed, resume_path;
    std::vector<std::string> expect_paths;
    std::vector<uc::Expectation> expectations;
    double timeout_s = 0, duration_s = 0;
    bool force = false;
    CLI::Option *timeout_opt = nullptr, *duration_opt = nullptr;

    void add(CLI::App& app) {
        cmd = app.add_subcommand("run", "Run scenarios and write a JSON report");
        cmd->add_option("--filter", run.filter, "Glob over scenario ids: * and ? are wildcards, [ ] match themselves");
        cmd->add_option("--profile", profile, "quick | full | stress (iterations, time budgets, watchdog)")
            ->check(CLI::IsMember({"quick", "full", "stress"}));
        cmd->add_option("--seed", seed, "Seed for randomised scenarios, 0..2^64-1 (default: from the clock)");
        timeout_opt = cmd->add_option("--timeout", timeout_s, "Watchdog limit per scenario, seconds (0 < T <= 3600)");
        duration_opt =
            cmd->add_option("--duration", duration_s, "Time budget for long-running scenarios, seconds (0 < D <= 3600)");
        cmd->add_option("--report", run.report_path,
                        "Report file (default reports/local/<uname -r>.json; a filtered run: "
                        "reports/local/<uname -r>.filter-<filter>.json)");
        cmd->add_option("--stream", run.stream_path, "Also write every JSONL line here (e.g. /dev/ttyS1)");
        cmd->add_option("--environment", run.environment, "Where this runs, recorded in the report (default host)");
        auto* quiet_flag = cmd->add_flag("--quiet,-q", run.quiet, "No progress output");
        cmd->add_flag("--verbose,-v", run.verbose, "Every result, with the evidence of those not passing")->excludes(quiet_flag);
        cmd->add_option("--ktap", run.ktap_path, "Also write KTAP (kselftest format) to FILE, or - for stdout");
        cmd->add_option("--junit", run.junit_path, "Also write JUnit XML to FILE when the run ends");
        cmd->add_option("--resume", resume_path,
                        "Continue the interrupted run recorded in FILE.jsonl (same kernel): run what it lacks, "
                        "append to it, then write the report (default: FILE without .jsonl)");
        cmd->add_flag("--force", force, "Start over even though REPORT.jsonl holds an interrupted run");
        cmd->add_option("--expect", expect_paths,
                        "Known issues (TOML, expectations/README.md): matching results are marked xfail (not a "
                        "failure) or xpass; the raw verdict stays in the report")
            ->expected(1, -1);
    }

    // Everything about the command line, checked before the probe and
    // before any scenario: bad usage costs nothing and leaves nothing behind.
    std::optional<std::string> prepare() {
        if (*timeout_opt) {
            if (!(timeout_s > 0 && timeout_s <= 3600)) return "--timeout must be > 0 and <= 3600 seconds";
            run.timeout_s = timeout_s;
        }
        if (*duration_opt) {
            if (!(duration_s > 0 && duration_s <= 3600)) return "--duration must be > 0 and <= 3600 seconds";
            run.duration_s = duration_s;
        }
        run.profile = *uc::parse_profile(profile);
        if (cmd->count("--seed")) {
            auto parsed = parse_seed(seed);
            if (!parsed) return "--seed " + seed + ": not a number from 0 to 18446744073709551615";
            run.seed = *parsed;
        } else {
            run.seed = uint64_t(time(nullptr));
        }
        if (!resume_path.empty())
            if (auto problem = adopt_resume()) return problem;
        try {
            expectations = uc::load_expectations(expect_paths);
        } catch (const std::exception& e) {
            return "--expect " + std::string(e.what());
        }
        bool default_report = run.report_path.empty();
        if (default_report) run.report_path = default_report_path(run.filter);
        if (run.ktap_path == run.report_path || run.junit_path == run.report_path ||
            (!run.ktap_path.empty() && run.ktap_path == run.junit_path))
            return "--report, --ktap and --junit must name different files";
        if (run.junit_path == "-") return "--junit needs a file name (KTAP can go to stdout with --ktap -)";
        auto instances = uc::select_instances(run.filter);
        if (instances.empty()) return no_match_message(run.filter);
        if (run.timeout_s)
            for (const auto& inst : instances)
                if (*run.timeout_s < inst.scenario->min_timeout_s)
                    return uc::str("--timeout ", *run.timeout_s, " s is below what ", inst.id, " needs (",
                                   inst.scenario->min_timeout_s, " s): its own bounded waits would read as hangs");
        return check_outputs(default_report);
    }

    std::optional<std::string> adopt_resume() {
        if (!ends_with(resume_path, ".jsonl")) {
            if (access(uc::jsonl_path_for(resume_path).c_str(), F_OK) == 0)
                return "--resume " + resume_path + ": pass the interrupted run's " + uc::jsonl_path_for(resume_path);
            return "--resume " + resume_path + ": needs the .jsonl an interrupted run left (REPORT.json.jsonl)";
        }
        try {
            previous.emplace(uc::read_previous_run(resume_path));
        } catch (const std::exception& e) {
            return std::string(e.what());
        }
        if (auto problem = adopt_previous_run(*previous, *cmd, run)) return problem;
        if (run.report_path.empty()) run.report_path = resume_path.substr(0, resume_path.size() - 6);
        return std::nullopt;
    }

    std::optional<std::string> check_outputs(bool default_report) {
        try {
            report = uc::check_output("--report", run.report_path, {.allow_device = false, .create_parent = default_report});
            if (!run.ktap_path.empty() && run.ktap_path != "-") uc::check_output("--ktap", run.ktap_path, {});
            if (!run.junit_path.empty()) uc::check_output("--junit", run.junit_path, {});
            if (!run.stream_path.empty()) uc::check_output("--stream", run.stream_path, {});
        } catch (const std::exception& e) {
            return std::string(e.what());
        }
        // An interrupted run's results are not thrown away by a new run.
        std::string jsonl = uc::jsonl_path_for(report->path);
        struct stat st {};
        if (!previous && !force && stat(jsonl.c_str(), &st) == 0 && st.st_size > 0)
            return jsonl + " holds an interrupted run: continue it with --resume " + jsonl +
                   ", or start over with --force";
        return std::nullopt;
    }

    int execute(const uc::Probe& probe) {
        for (const uc::Expectation& e : expectations)
            if (uc::applies_to(e, probe)) run.expectations.push_back(e);
        std::optional<uc::ReportWriter> writer;
        try {
            if (previous)
                writer.emplace(*report, run.stream_path, *previous);
            else
                writer.emplace(*report, run.stream_path);
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
};

// --- explore ---

struct ExploreCommand {
    CLI::App* cmd = nullptr;
    uc::explore::ExploreOptions options;
    std::string seed, ops;

    void add(CLI::App& app) {
        cmd = app.add_subcommand("explore", "Seeded random request mixes checked by the documented invariants; "
                                            "violations shrunk and written as C reproducers");
        cmd->add_option("--seed", seed, "Seed of the first round's program, 0..2^64-1 (default: from the clock)");
        auto* duration = cmd->add_option("--duration", options.duration_s, "Seconds to explore (default 20)")
                             ->check(CLI::Range(0.1, 86400.0));
        cmd->add_option("--rounds", options.rounds, "Stop after this many rounds")->excludes(duration)->check(CLI::PositiveNumber);
        cmd->add_option("--setup", options.setup, "Ring setup mode for every round (default: drawn per round)")
            ->check(CLI::IsMember({"none", "coop_taskrun", "defer_taskrun", "sqpoll"}));
        cmd->add_option("--ops", ops, "Comma-separated steps to draw from: " + uc::explore::explore_op_list());
        cmd->add_option("--report", options.report_path, "Write the exploration report (reports/explore.schema.json)");
        cmd->add_option("--emit-reproducer", options.emit_dir, "Write one C reproducer per finding into DIR");
        cmd->add_option("--shrink-budget", options.shrink_budget_s, "Seconds of shrinking per finding (default 60)")
            ->check(CLI::Range(0.0, 3600.0));
        cmd->add_flag("--quiet,-q", options.quiet, "No progress output");
        cmd->add_flag("--selftest-ghost", options.selftest_ghost)->group("");  // a step that breaks a rule on purpose
    }

    std::optional<std::string> prepare() {
        if (cmd->count("--seed")) {
            auto parsed = parse_seed(seed);
            if (!parsed) return "--seed " + seed + ": not a number from 0 to 18446744073709551615";
            options.seed = *parsed;
        }
        for (size_t start = 0; start < ops.size();) {
            size_t comma = ops.find(',', start);
            if (comma == std::string::npos) comma = ops.size();
            if (comma > start) options.ops.push_back(ops.substr(start, comma - start));
            start = comma + 1;
        }
        return std::nullopt;
    }
};

// io_uring refused as a whole: say why, with the usual cause named.
int io_uring_unusable(const uc::Probe& probe) {
    std::string hint;
    // Without CAP_IPC_LOCK the kernel charges ring memory to RLIMIT_MEMLOCK.
    if (probe.unusable_reason.find("ENOMEM") != std::string::npos && probe.memlock_kib)
        hint = " (RLIMIT_MEMLOCK is " + std::to_string(*probe.memlock_kib) +
               " KiB and ring memory is charged to it: raise ulimit -l)";
    std::fprintf(stderr, "uring-conform: io_uring cannot be used here: %s%s\n", probe.unusable_reason.c_str(), hint.c_str());
    return kExitNoIoUring;
}

// CLI11 answers "A subcommand is required" to a mistyped command or a stray
// option before it; name the word instead.
std::optional<std::string> unknown_first_word(int argc, char** argv, const CLI::App& app) {
    if (argc < 2) return std::nullopt;
    std::string word = argv[1];
    if (word == "-h" || word == "--help" || word == "--version") return std::nullopt;
    if (!word.empty() && word[0] == '-') return "unknown option '" + word + "' (a command comes first: see --help)";
    for (const CLI::App* sub : app.get_subcommands({}))
        if (sub->get_name() == word) return std::nullopt;
    std::string names;
    for (const CLI::App* sub : app.get_subcommands({})) names += (names.empty() ? "" : ", ") + sub->get_name();
    return "unknown command '" + word + "' (commands: " + names + ")";
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"uring-conform: io_uring conformance and regression scenarios against the running kernel.\n"
                 "Exit: 0 nothing failed, 1 something failed/hung/crashed, 2 bad usage, 4 io_uring unusable."};
    app.set_version_flag("--version", std::string("uring-conform ") + UC_TOOL_VERSION);
    app.require_subcommand(1);
    ProbeCommand probe_cmd;
    ListCommand list_cmd;
    RunCommand run_cmd;
    ExploreCommand explore_cmd;
    probe_cmd.add(app);
    list_cmd.add(app);
    run_cmd.add(app);
    explore_cmd.add(app);

    if (auto problem = unknown_first_word(argc, argv, app)) return usage_error(*problem);
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

    if (*list_cmd.cmd) return list_cmd.run();
    if (*explore_cmd.cmd) {
        if (auto problem = explore_cmd.prepare()) return usage_error(*problem);
        return uc::explore::explore_command(explore_cmd.options);
    }
    if (*run_cmd.cmd)
        if (auto problem = run_cmd.prepare()) return usage_error(*problem);
    uc::Probe probe = uc::run_probe();
    if (*probe_cmd.cmd) return probe_cmd.run(probe);
    if (!probe.usable) return io_uring_unusable(probe);
    return run_cmd.execute(probe);
}
