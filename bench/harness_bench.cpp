// What the harness itself costs, apart from any scenario: the runner's fork +
// watchdog + result document + report line per scenario variant (measured
// with scenarios that do nothing), the probe, and the kernel's NOP
// io_uring_enter round trip that every scenario's syscalls stand on.
// Prints one JSON object; bench/run interleaves calls and takes medians.
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <liburing.h>

#include "report.h"
#include "ring.h"
#include "runner.h"
#include "scenario.h"

namespace {

const uc::Family bench{"bench"};

// A body that does nothing: what is left is the runner's own cost.
const uc::Register<uc::NoParams> empty_scenario{{
    .family = bench,
    .name = "empty",
    .summary = "does nothing: measures fork + watchdog + result per variant",
    .body = [](uc::Ctx&, const uc::NoParams&) {}}};

// The least a real scenario does: one ring set up and torn down.
const uc::Register<uc::SetupOnly> one_ring_scenario{{
    .family = bench,
    .name = "one-ring",
    .summary = "creates one 32-entry ring: adds io_uring_setup + teardown to the runner's cost",
    .variants = uc::grid(uc::setups(&uc::SetupOnly::setup, {uc::Setup::none})),
    .body = [](uc::Ctx& ctx, const uc::SetupOnly& p) { uc::Ring ring(ctx, p.setup); }}};

struct Samples {
    std::vector<double> values;
    uc::Json summary() const {
        std::vector<double> v = values;
        std::sort(v.begin(), v.end());
        auto at = [&](double q) { return v.empty() ? 0.0 : v[size_t(q * double(v.size() - 1) + 0.5)]; };
        return {{"n", v.size()}, {"median", at(0.5)}, {"p10", at(0.1)}, {"p90", at(0.9)}, {"min", at(0.0)},
                {"values", values}};
    }
};

double ms_since(uint64_t start_ns) { return double(uc::now_ns() - start_ns) / 1e6; }

// CPU time (user + system) of this process and of its reaped children, ms.
// Unlike wall time it leaves out waiting: for the disk in fsync, for a CPU
// that a neighbour holds, for an idle vCPU to be woken.
double cpu_ms() {
    double total = 0;
    for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
        rusage usage{};
        getrusage(who, &usage);
        for (const timeval& tv : {usage.ru_utime, usage.ru_stime}) total += double(tv.tv_sec) * 1e3 + double(tv.tv_usec) / 1e3;
    }
    return total;
}

// Each round runs every instance once (interleaved, so load drift hits all
// alike) through uc::run_instance and appends its result to a real report,
// fsync included, as run_suite does.
uc::Json measure_overhead(int rounds, const std::string& report_dir) {
    uint64_t probe_start = uc::now_ns();
    uc::Probe probe = uc::run_probe();
    double probe_ms = ms_since(probe_start);
    if (!probe.usable) throw std::runtime_error("io_uring unusable: " + probe.unusable_reason);

    std::filesystem::create_directories(report_dir);
    std::string report_path = report_dir + "/overhead-" + std::to_string(getpid()) + ".json";
    uc::ReportWriter writer(report_path, "");
    uc::RunOptions options;
    options.filter = "bench/*";
    auto instances = uc::select_instances("bench/*");
    writer.header(uc::report_header(options, probe, instances.size() * size_t(rounds)));

    uc::Settings settings{uc::Profile::quick, 1, uc::default_timeout_s(uc::Profile::quick), std::nullopt};
    std::map<std::string, Samples> instance_ms, report_ms, total_ms;
    std::map<std::string, double> cpu_total_ms;
    for (int round = 0; round < rounds; ++round)
        for (const auto& instance : instances) {
            double cpu_start = cpu_ms();
            uint64_t start = uc::now_ns();
            uc::Result result = uc::run_instance(instance, probe, settings);
            double run_ms = ms_since(start);
            uint64_t write_start = uc::now_ns();
            writer.result(result);
            if (result.verdict != uc::Verdict::pass)
                throw std::runtime_error(instance.id + " did not pass: " + result.reason);
            instance_ms[instance.id].values.push_back(run_ms);
            report_ms[instance.id].values.push_back(ms_since(write_start));
            total_ms[instance.id].values.push_back(ms_since(start));
            cpu_total_ms[instance.id] += cpu_ms() - cpu_start;
        }
    writer.finish(0);
    std::filesystem::remove(report_path);

    uc::Json out{{"probe_ms", probe_ms}, {"rounds", rounds}, {"scenarios", uc::Json::object()}};
    for (const auto& instance : instances)
        out["scenarios"][instance.id] = {{"run_instance_ms", instance_ms[instance.id].summary()},
                                         {"report_line_ms", report_ms[instance.id].summary()},
                                         {"total_ms", total_ms[instance.id].summary()},
                                         // A mean: rusage may advance in scheduler ticks.
                                         {"cpu_ms_mean", cpu_total_ms[instance.id] / rounds}};
    return out;
}

// One NOP per io_uring_enter (submit + wait for its CQE): the syscall path's
// round trip, without any harness code in the loop.
uc::Json measure_nop_rate(double seconds) {
    io_uring ring;
    int ret = io_uring_queue_init(8, &ring, 0);
    if (ret < 0) throw std::runtime_error("io_uring_queue_init: " + uc::errno_name(ret));
    uint64_t start = uc::now_ns(), stop = start + uint64_t(seconds * 1e9), round_trips = 0;
    while (uc::now_ns() < stop) {
        for (int i = 0; i < 256; ++i) {
            io_uring_prep_nop(io_uring_get_sqe(&ring));
            ret = io_uring_submit_and_wait(&ring, 1);
            io_uring_cqe* cqe = nullptr;
            if (ret != 1 || io_uring_peek_cqe(&ring, &cqe) != 0 || cqe->res != 0)
                throw std::runtime_error("NOP round trip failed: submit returned " + std::to_string(ret));
            io_uring_cqe_seen(&ring, cqe);
        }
        round_trips += 256;
    }
    double elapsed_s = double(uc::now_ns() - start) / 1e9;
    io_uring_queue_exit(&ring);
    return {{"nop_round_trips", round_trips}, {"seconds", elapsed_s},
            {"nop_round_trips_per_s", double(round_trips) / elapsed_s}};
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"harness-bench: the harness's own costs, as one JSON object on stdout (used by bench/run)"};
    app.require_subcommand(1);
    int rounds = 200;
    std::string report_dir = "bench-tmp";
    auto* overhead = app.add_subcommand("overhead", "Runner cost per scenario variant, with no-op scenarios");
    overhead->add_option("--rounds", rounds, "Runs of each no-op scenario, interleaved")->check(CLI::Range(1, 100000));
    overhead->add_option("--report-dir", report_dir, "Where the throw-away report is written (use the real disk: it fsyncs)");
    double seconds = 1;
    auto* nop = app.add_subcommand("nop-rate", "NOP io_uring_enter round trips per second, one ring, one thread");
    nop->add_option("--seconds", seconds, "How long to measure")->check(CLI::Range(0.01, 600.0));
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;  // --help is a ParseError too
    }
    try {
        uc::Json out = *overhead ? measure_overhead(rounds, report_dir) : measure_nop_rate(seconds);
        std::printf("%s\n", out.dump().c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "harness-bench: error: %s\n", e.what());
        return 1;
    }
}
