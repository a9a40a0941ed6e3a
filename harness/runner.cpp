#include "runner.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <memory>
#include <unordered_map>

#include "sandbox.h"
#include "sinks.h"
#include "version.h"

namespace uc {
namespace {

uint64_t instance_seed(uint64_t seed, const std::string& id) {
    uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a over the id
    for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
    return h;
}

// In the sandboxed child: the body under its Ctx, its verdict document
// (verdict, reason, iterations, metrics, evidence) written to `result_fd`.
void run_body(const Instance& instance, const Probe& probe, const Settings& settings, int result_fd) {
    Json verdict;
    {
        Ctx ctx(probe, settings);
        std::optional<Stop> stop;
        try {
            instance.variant->run(ctx);
        } catch (const Stop& s) {
            stop = s;
        } catch (const std::exception& e) {
            stop = Stop{Verdict::error, std::string("unexpected exception: ") + e.what()};
        }
        verdict = ctx.result(stop);
    }
    std::string text = dump_line(verdict);
    for (size_t done = 0; done < text.size();) {
        ssize_t n = write(result_fd, text.data() + done, text.size() - done);
        if (n <= 0) _exit(125);
        done += size_t(n);
    }
}

// The one place a Result is built: the instance's identity plus how it ended.
Result result_for(const Instance& instance, Verdict verdict, std::string reason, Json evidence = Json::object()) {
    Result r;
    r.id = instance.id;
    r.family = instance.scenario->family;
    r.scenario = instance.scenario->name;
    r.params = instance.variant->params;
    r.verdict = verdict;
    r.reason = std::move(reason);
    r.evidence = std::move(evidence);
    return r;
}

// How the sandboxed child ended, as a verdict.
Result judge(const Instance& instance, const ChildEnd& end, double timeout_s) {
    Json evidence = Json::object();
    if (!end.output.empty()) {
        evidence["output_tail"] = to_valid_utf8(end.output);
        if (end.output_bytes > end.output.size()) evidence["output_bytes"] = end.output_bytes;
    }
    if (!end.host_refused.empty()) return result_for(instance, Verdict::error, "runner: " + end.host_refused);
    Json doc = Json::parse(end.result_text, nullptr, false);
    std::optional<Verdict> reported;
    if (!doc.is_discarded() && doc.is_object()) reported = parse_verdict(doc.value("verdict", ""));
    if (reported) {
        Result r = result_for(instance, *reported, doc.value("reason", ""), doc.value("evidence", Json::object()));
        r.iterations = doc.value("iterations", uint64_t(0));
        r.timing_dependent = doc.value("timing_dependent", false);
        r.metrics = doc.value("metrics", Json::object());
        for (const auto& [key, value] : evidence.items()) r.evidence[key] = value;
        if (end.timed_out) {
            // The body finished, then the child never exited: stuck tearing
            // down its rings (the seed-001 failure mode). Keep what it found.
            r.reason = str("scenario ended (", verdict_name(r.verdict), r.reason.empty() ? "" : ": " + r.reason,
                           ") but its process did not exit within ", timeout_s, " s: stuck releasing its rings or requests");
            r.verdict = Verdict::hang;
        }
        return r;
    }
    if (end.timed_out)
        return result_for(instance, Verdict::hang,
                          str("watchdog: no verdict within ", timeout_s, " s; child process group killed",
                              end.unkillable ? str("; the child was still there ", kKillGraceMs / 1000,
                                                   " s after SIGKILL (held in the kernel)")
                                             : ""),
                          evidence);
    if (WIFSIGNALED(end.status)) {
        evidence["signal"] = signal_name(WTERMSIG(end.status));
        return result_for(instance, Verdict::crash, "scenario child killed by " + signal_name(WTERMSIG(end.status)),
                          evidence);
    }
    if (end.setup_failed)
        return result_for(instance, Verdict::error,
                          "runner: could not set up the scenario child's descriptors (RLIMIT_NOFILE?)", evidence);
    return result_for(instance, Verdict::error,
                      str("scenario child exited with status ", WEXITSTATUS(end.status), " without a verdict"), evidence);
}

std::string iso8601_now() {
    time_t t = time(nullptr);
    tm utc{};
    gmtime_r(&t, &utc);
    char buf[32];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &utc);
    return buf;
}

// Families in order of first appearance, each family's variants together:
// KTAP nests variants under their family and needs them contiguous.
std::vector<Instance> grouped_by_family(const std::vector<Instance>& instances) {
    std::vector<std::string> order;
    for (const Instance& inst : instances)
        if (std::find(order.begin(), order.end(), inst.scenario->family) == order.end())
            order.push_back(inst.scenario->family);
    std::vector<Instance> grouped;
    for (const std::string& family : order)
        for (const Instance& inst : instances)
            if (inst.scenario->family == family) grouped.push_back(inst);
    return grouped;
}

// The header of a new run, or the interrupted run's with resumed = true;
// either way with this session's notes (checks it could not do).
Json header_for_run(const RunOptions& options, const Probe& probe, size_t planned, const PreviousRun* previous,
                    const std::vector<std::string>& notes) {
    Json header = previous ? previous->header : report_header(options, probe, planned);
    Json& run = header["run"];
    for (const std::string& note : notes) {
        if (!run.contains("notes")) run["notes"] = Json::array();
        if (std::find(run["notes"].begin(), run["notes"].end(), note) == run["notes"].end()) run["notes"].push_back(note);
    }
    if (previous) run["resumed"] = true;
    return header;
}

// The outputs the options name, in the order they must hear of the end:
// the report is written before JUnit reads it and the summary names it.
std::vector<std::unique_ptr<ResultSink>> sinks_for(const RunOptions& options, ReportWriter& writer,
                                                   ProgressSink*& progress) {
    std::vector<std::unique_ptr<ResultSink>> sinks;
    auto live = std::make_unique<ProgressSink>(options);
    progress = live.get();
    sinks.push_back(std::move(live));
    if (!options.ktap_path.empty()) sinks.push_back(std::make_unique<KtapSink>(options.ktap_path));
    sinks.push_back(std::make_unique<ReportSink>(writer));
    if (!options.junit_path.empty()) sinks.push_back(std::make_unique<JunitSink>(options.junit_path, writer));
    sinks.push_back(std::make_unique<SummarySink>(options.ktap_path == "-" ? stderr : stdout, writer));
    return sinks;
}

[[noreturn]] void stop_interrupted(const ReportWriter& writer, ProgressSink& progress) {
    progress.end(0);
    std::fprintf(stderr, "\nuring-conform: interrupted: %zu results kept in %s; continue with: uring-conform run --resume %s\n",
                 writer.results().size(), writer.jsonl_path().c_str(), writer.jsonl_path().c_str());
    die_of_interrupt();
}

}  // namespace

double default_timeout_s(Profile profile) {
    switch (profile) {
        case Profile::quick: return 10;
        case Profile::full: return 30;
        case Profile::stress: return 300;
    }
    return 10;
}

Result run_instance(const Instance& instance, const Probe& probe, const Settings& settings,
                    const std::function<void()>& tick) {
    if (auto reason = unmet_requirement(instance, probe)) return result_for(instance, Verdict::skip, *reason);
    Settings child = settings;
    child.seed = instance_seed(settings.seed, instance.id);
    // A scenario that needs more than the profile's watchdog to mean anything
    // gets it (a smaller --timeout was refused up front).
    if (settings.timeout_is_default) child.timeout_s = std::max(settings.timeout_s, instance.scenario->min_timeout_s);
    uint64_t started = now_ns();
    ChildEnd end = run_sandboxed([&](int result_fd) { run_body(instance, probe, child, result_fd); }, child.timeout_s,
                                 tick);
    Result r = judge(instance, end, child.timeout_s);
    r.duration_ms = double(now_ns() - started) / 1e6;
    return r;
}

void attach_kernel_findings(Result& result, const KernelFindings& findings) {
    Json& evidence = result.evidence;
    if (findings.lost_records)
        evidence["notes"].push_back("the kernel log overran while this scenario ran: some records were lost");
    if (!findings.splat() && !findings.taint_changed()) return;
    if (!findings.log.empty()) evidence["kernel_log"] = findings.log;
    std::string what;
    if (findings.taint_changed()) {
        uint64_t before = *findings.taint_before, after = *findings.taint_after;
        evidence["taint"] = {{"before", before}, {"after", after}, {"added", taint_letters(after & ~before)}};
        what = str("kernel taint changed ", before, " -> ", after, " (", taint_letters(after & ~before), ")");
    }
    if (findings.splat()) what = "kernel log: " + findings.first_splat + (what.empty() ? "" : "; " + what);
    if (result.verdict == Verdict::hang || result.verdict == Verdict::crash) {
        evidence["notes"].push_back(what);
        return;
    }
    if (result.verdict == Verdict::fail) {
        evidence["failures"].push_back(what);
        return;
    }
    // A splat means the kernel broke while this scenario drove it, whatever its CQEs said.
    if (!result.reason.empty())
        evidence["notes"].push_back("before the kernel check: " + verdict_name(result.verdict) + ": " + result.reason);
    result.verdict = Verdict::fail;
    result.reason = what;
    evidence["failures"].push_back(what);
}

Json report_header(const RunOptions& options, const Probe& probe, size_t planned) {
    Json h;
    h["schema_version"] = 1;
    h["tool"] = {{"name", "uring-conform"}, {"version", UC_TOOL_VERSION}};
    h["kernel"] = {{"release", probe.kernel_release}, {"version", probe.kernel_version}, {"machine", probe.machine}};
    h["liburing"] = {{"compile", probe.liburing_compile}, {"runtime", probe.liburing_runtime}};
    h["probe"] = probe.to_json();
    h["run"] = {{"profile", profile_name(options.profile)},
                {"seed", options.seed},
                {"filter", options.filter},
                {"started", iso8601_now()},
                {"timeout_s", options.timeout_s ? Json(*options.timeout_s) : Json(nullptr)},
                {"environment", options.environment}};
    h["planned"] = planned;
    return h;
}

int run_suite(const RunOptions& options, const Probe& probe, const std::vector<Instance>& selected,
              ReportWriter& writer, const PreviousRun* previous) {
    install_interrupt_handlers();
    std::vector<Instance> plan = grouped_by_family(selected);
    std::optional<KernelWatch> kernel_watch(std::in_place, options.kmsg_path, options.taint_path);
    KernelWatch& kernel = *kernel_watch;
    Json header = header_for_run(options, probe, plan.size(), previous, kernel.notes());

    std::unordered_map<std::string, const Result*> carried;
    if (previous)
        for (const Result& r : previous->results) carried[r.id] = &r;
    std::vector<std::string> notes;
    for (const std::string& note : kernel.notes()) notes.push_back("note: " + note);
    if (previous) {
        size_t done = 0;
        for (const Instance& inst : plan) done += carried.count(inst.id);
        notes.push_back(str("resuming ", previous->jsonl_path, ": ", previous->results.size(), " results carried over, ",
                            plan.size() - done, " to run"));
    }

    ProgressSink* progress = nullptr;
    auto sinks = sinks_for(options, writer, progress);
    auto each = [&](auto&& call) {
        for (auto& sink : sinks) call(*sink);
    };
    each([&](ResultSink& s) { s.begin({header, plan, notes}); });

    Settings settings{options.profile, options.seed, options.timeout_s.value_or(default_timeout_s(options.profile)),
                      options.duration_s, !options.timeout_s.has_value()};
    uint64_t started = now_ns();
    double carried_ms = 0;
    std::function<void()> tick = [progress] { progress->tick(); };
    auto carry = [&](const Result& r) {
        Result again = r;
        again.resumed = true;
        carried_ms += again.duration_ms;
        each([&](ResultSink& s) { s.result(again); });
    };
    for (size_t i = 0; i < plan.size(); ++i) {
        const Instance& inst = plan[i];
        if (auto it = carried.find(inst.id); it != carried.end()) {
            carry(*it->second);
            carried.erase(it);
            continue;
        }
        if (interrupted()) stop_interrupted(writer, *progress);
        Result r;
        if (auto reason = unmet_requirement(inst, probe)) {
            progress->started(i, inst);
            r = result_for(inst, Verdict::skip, *reason);
        } else {
            each([&](ResultSink& s) { s.started(i, inst); });
            r = run_instance(inst, probe, settings, tick);
            // The scenario in flight was killed by us, not by the kernel: no result.
            if (interrupted()) stop_interrupted(writer, *progress);
            attach_kernel_findings(r, kernel.collect());
        }
        apply_expectations(r, options.expectations);
        each([&](ResultSink& s) { s.result(r); });
    }
    // Results of the interrupted run for ids no longer selected (a renamed
    // scenario): still real results, kept at the end.
    if (previous)
        for (const Result& r : previous->results)
            if (carried.count(r.id)) carry(r);
    // Under a tiny ulimit -n the final report needs the descriptors this holds.
    kernel_watch.reset();
    double duration_s = carried_ms / 1000 + double(now_ns() - started) / 1e9;
    each([&](ResultSink& s) { s.end(duration_s); });
    bool bad = std::any_of(writer.results().begin(), writer.results().end(), counts_as_failure);
    return bad ? 1 : 0;
}

}  // namespace uc
