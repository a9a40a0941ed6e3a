#include "cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <liburing.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>

#include "child.h"
#include "emit_c.h"
#include "executor.h"
#include "explore_oracle.h"
#include "shrink.h"
#include "util.h"
#include "version.h"

namespace uc::explore {
namespace {

constexpr int kExitFound = 1, kExitUsage = 2, kExitNoIoUring = 4;
// Generous: a loaded 2-core host can starve an SQPOLL thread for a while.
constexpr uint32_t kDrainMs = 5000;
// A round's steps take well under a second; its drain at most kDrainMs.
constexpr int kRoundTimeoutMs = 30000;

int usage_error(const std::string& message) {
    std::fprintf(stderr, "uring-conform: error: %s\n", message.c_str());
    return kExitUsage;
}

std::string kernel_release() {
    utsname u{};
    uname(&u);
    return u.release;
}

// An output named on the command line: a regular file (or a new one) is
// replaced whole through PATH.tmp + rename, a character device or FIFO is
// written in place; anything else is refused before the run starts.
struct Output {
    std::string path;
    bool in_place = false;
};

Output check_output(const std::string& what, const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) {
        if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) return {path, true};
        if (!S_ISREG(st.st_mode)) throw std::runtime_error(what + " " + path + ": not a regular file");
    }
    int fd = open((path + ".tmp").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error(str(what, " ", path, ": cannot write: ", std::strerror(errno)));
    close(fd);
    unlink((path + ".tmp").c_str());
    return {path, false};
}

void write_output(const Output& out, const std::string& text) {
    std::string target = out.in_place ? out.path : out.path + ".tmp";
    FILE* f = std::fopen(target.c_str(), "w");
    if (!f) throw std::runtime_error(str("cannot write ", target, ": ", std::strerror(errno)));
    bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    ok = std::fclose(f) == 0 && ok;
    if (!ok) throw std::runtime_error("cannot write " + target);
    if (!out.in_place && std::rename(target.c_str(), out.path.c_str()) != 0)
        throw std::runtime_error(str("cannot rename ", target, ": ", std::strerror(errno)));
}

struct Finding {
    std::string rule;
    std::string check;
    uint64_t round = 0;
    Program original;
    nlohmann::json evidence;
    nlohmann::json shrunk;       // filled after shrinking
    std::string reproducer;      // path, when emitted
    std::string reproduced;
    size_t occurrences = 1;
};

struct Totals {
    uint64_t rounds = 0, requests = 0, cqes = 0, errors = 0;
    uint64_t exec_ns = 0;  // the rounds' own submit/complete time (executor.h)
    std::array<uint64_t, XOP_COUNT> ops{};
    std::array<uint64_t, XSETUP_COUNT> setups{};
    std::map<std::string, uint64_t> violations;
    std::string last_error;
};

// NOP round trips (one SQE submitted, its CQE waited for) per second, on a
// fresh default ring: the context for the explore rate.
double nop_roundtrip_rate(double seconds) {
    Child child([&](int out) {
        io_uring ring;
        if (io_uring_queue_init(8, &ring, 0) != 0) return write_line(out, "0");
        uint64_t n = 0, start = now_ns(), end = start + uint64_t(seconds * 1e9), now = start;
        for (; now < end; now = (n % 256 == 0) ? now_ns() : now) {
            io_uring_prep_nop(io_uring_get_sqe(&ring));
            io_uring_cqe* cqe;
            io_uring_submit_and_wait(&ring, 1);
            if (io_uring_peek_cqe(&ring, &cqe) == 0) io_uring_cqe_seen(&ring, cqe);
            ++n;
        }
        io_uring_queue_exit(&ring);
        write_line(out, std::to_string(double(n) / (double(now - start) / 1e9)));
    });
    std::string line;
    if (child.next(line, int(seconds * 1000) + kRoundTimeoutMs) != Child::Next::line) return 0;
    return std::stod(line);
}

// The same mix run back to back without the oracle, the per-round JSON or
// the watchdog: what the explorer's own overhead is measured against.
std::pair<double, double> raw_mix_rate(uint64_t seed, const GenOptions& gen, double seconds) {
    Child child([&](int out) {
        Executor executor(kDrainMs);
        uint64_t rounds = 0, requests = 0, start = now_ns(), end = start + uint64_t(seconds * 1e9), now = start;
        for (; now < end; now = now_ns()) requests += executor.run(generate(seed, rounds++, gen), false).requests;
        double s = double(now - start) / 1e9;
        write_line(out, nlohmann::json{double(rounds) / s, double(requests) / s}.dump());
    });
    std::string line;
    if (child.next(line, int(seconds * 1000) + kRoundTimeoutMs) != Child::Next::line) return {0, 0};
    auto j = nlohmann::json::parse(line);
    return {j[0].get<double>(), j[1].get<double>()};
}

nlohmann::json counts_by_name(const std::array<uint64_t, XOP_COUNT>& ops) {
    nlohmann::json j = nlohmann::json::object();
    for (unsigned op = 0; op < XOP_COUNT; ++op)
        if (ops[op]) j[xop_name(op)] = ops[op];
    return j;
}

class Explorer {
  public:
    Explorer(const ExploreOptions& options, GenOptions gen, uint64_t seed, unsigned caps)
        : options_(options), gen_(std::move(gen)), seed_(seed), caps_(caps) {}

    int run();

  private:
    void explore();
    void on_round(const nlohmann::json& j);
    void record(const std::string& rule, const std::string& check, uint64_t round, nlohmann::json evidence);
    void shrink_and_emit(Finding& finding);
    void progress(bool final_line);
    void write_report(bool complete);

    const ExploreOptions& options_;
    GenOptions gen_;
    uint64_t seed_;
    unsigned caps_;
    Totals totals_;
    std::vector<Finding> findings_;
    uint64_t start_ns_ = 0, end_ns_ = 0, last_progress_ns_ = 0;
    double elapsed_s_ = 0, nop_rate_ = 0, raw_rounds_ = 0, raw_requests_ = 0;
    std::optional<Output> report_;
};

void Explorer::record(const std::string& rule, const std::string& check, uint64_t round, nlohmann::json evidence) {
    ++totals_.violations[rule];
    for (Finding& f : findings_)
        if (f.rule == rule) {
            ++f.occurrences;
            return;
        }
    Finding f{rule, check, round, generate(seed_, round, gen_), std::move(evidence)};
    findings_.push_back(std::move(f));
    if (!options_.quiet)
        std::fprintf(stderr, "\nexplore: round %llu broke %s: %s\n", (unsigned long long)round, rule.c_str(), check.c_str());
    write_report(false);
}

void Explorer::on_round(const nlohmann::json& j) {
    RoundResult r = round_result_from_json(j);
    uint64_t round = j.at("round");
    ++totals_.rounds;
    ++totals_.setups[j.at("setup").get<unsigned>()];
    totals_.requests += r.requests;
    totals_.cqes += r.cqes;
    totals_.exec_ns += r.exec_ns;
    for (unsigned op = 0; op < XOP_COUNT; ++op) totals_.ops[op] += r.ops[op];
    if (r.error) {
        ++totals_.errors;
        totals_.last_error = *r.error;
    }
    if (r.violation) record(r.violation->rule_id, r.violation->check.describe(), round, r.evidence);
}

void Explorer::progress(bool final_line) {
    if (options_.quiet) return;
    uint64_t now = now_ns();
    if (!final_line && now - last_progress_ns_ < 1000000000ULL) return;
    last_progress_ns_ = now;
    double s = double(now - start_ns_) / 1e9;
    uint64_t violations = 0;
    for (auto& [rule, n] : totals_.violations) violations += n;
    std::fprintf(stderr, "\rexplore: %.1f s  %llu rounds (%.0f/s)  %llu requests (%.0f/s)  violations %llu  errors %llu ",
                 s, (unsigned long long)totals_.rounds, double(totals_.rounds) / s, (unsigned long long)totals_.requests,
                 double(totals_.requests) / s, (unsigned long long)violations, (unsigned long long)totals_.errors);
    if (final_line) std::fputc('\n', stderr);
}

void Explorer::explore() {
    uint64_t next_round = 0;
    auto finished = [&](uint64_t round) {
        return (options_.rounds && round >= *options_.rounds) || now_ns() >= end_ns_;
    };
    while (!finished(next_round)) {
        uint64_t first = next_round;
        Child worker([&](int out) {
            Executor executor(kDrainMs);
            for (uint64_t round = first; !finished(round); ++round) {
                Program program = generate(seed_, round, gen_);
                nlohmann::json j = round_result_to_json(executor.run(program));
                j["round"] = round;
                j["setup"] = program.setup;
                write_line(out, j.dump());
            }
        });
        std::string line;
        for (;;) {
            Child::Next next = worker.next(line, kRoundTimeoutMs);
            if (next == Child::Next::line) {
                nlohmann::json j = nlohmann::json::parse(line);
                on_round(j);
                next_round = j["round"].get<uint64_t>() + 1;
                progress(false);
                continue;
            }
            if (next == Child::Next::timeout) {
                // The round's own waits are bounded; silence means the kernel kept it.
                record("round-watchdog",
                       str("round ", next_round, " gave no result within ", kRoundTimeoutMs / 1000,
                           " s (its waits are bounded and its drain ends after ", kDrainMs / 1000, " s)"),
                       next_round, nlohmann::json{{"program", program_to_json(generate(seed_, next_round, gen_))}});
                ++totals_.rounds;
                ++next_round;
                break;
            }
            std::string status = worker.wait_status();
            if (status != "exit 0") {
                record("round-crash", str("the round's process ended with ", status), next_round,
                       nlohmann::json{{"program", program_to_json(generate(seed_, next_round, gen_))}});
                ++totals_.rounds;
                ++next_round;
            }
            break;
        }
    }
}

void Explorer::shrink_and_emit(Finding& f) {
    ReplayOptions replay;
    replay.drain_ms = kDrainMs;
    replay.round_timeout_ms = kRoundTimeoutMs;
    if (!options_.quiet) std::fprintf(stderr, "explore: shrinking round %llu (%s), %zu steps...\n",
                                      (unsigned long long)f.round, f.rule.c_str(), f.original.steps.size());
    unsigned hits = reproductions(f.original, f.rule, replay);
    Program shrunk = f.original;
    ShrinkResult sr{f.original};
    if (hits >= replay.k) {
        sr = shrink(f.original, f.rule, replay, options_.shrink_budget_s);
        shrunk = sr.program;
        ReplayOptions confirm = replay;
        confirm.k = confirm.n = 5;
        hits = reproductions(shrunk, f.rule, confirm);
        f.reproduced = str(hits, " of ", hits == 5 ? 5 : 5, " replays");
    } else {
        f.reproduced = str(hits, " of ", replay.n, " replays (not shrunk: below ", replay.k, " of ", replay.n, ")");
    }
    f.shrunk = program_to_json(shrunk);
    f.shrunk["candidates_tried"] = sr.candidates;
    f.shrunk["out_of_time"] = sr.out_of_time;
    if (!options_.quiet)
        std::fprintf(stderr, "explore: %s: %zu -> %zu steps, reproduced in %s\n", f.rule.c_str(), f.original.steps.size(),
                     shrunk.steps.size(), f.reproduced.c_str());
    if (options_.emit_dir.empty() || f.rule == "round-crash") return;
    explore::Finding out{seed_, f.round, f.rule, f.check, kernel_release(), f.original.steps.size(), shrunk, f.reproduced};
    std::string path = options_.emit_dir + "/" + reproducer_name(out);
    try {
        write_output(check_output("--emit-reproducer", path), reproducer_source(out));
        f.reproducer = path;
        if (!options_.quiet) std::fprintf(stderr, "explore: wrote %s\n", path.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "uring-conform: error: %s\n", e.what());
    }
}

void Explorer::write_report(bool complete) {
    if (!report_) return;
    double s = complete ? elapsed_s_ : double(now_ns() - start_ns_) / 1e9;
    double requests_per_s = s > 0 ? double(totals_.requests) / s : 0;
    double exec_s = double(totals_.exec_ns) / 1e9;
    nlohmann::json findings = nlohmann::json::array();
    for (const Finding& f : findings_) {
        nlohmann::json j{{"rule", f.rule},         {"check", f.check},     {"round", f.round},
                         {"occurrences", f.occurrences}, {"original", program_to_json(f.original)},
                         {"evidence", f.evidence}};
        if (!f.shrunk.is_null()) j["shrunk"] = f.shrunk;
        if (!f.reproduced.empty()) j["reproduced"] = f.reproduced;
        if (!f.reproducer.empty()) j["reproducer"] = f.reproducer;
        findings.push_back(j);
    }
    nlohmann::json setups = nlohmann::json::object();
    for (unsigned i = 0; i < XSETUP_COUNT; ++i)
        if (totals_.setups[i]) setups[xsetup_name(i)] = totals_.setups[i];
    nlohmann::json violations(totals_.violations);
    nlohmann::json report{
        {"schema", "uring-conform/explore/1"},
        {"tool", std::string("uring-conform ") + UC_TOOL_VERSION},
        {"complete", complete},
        {"kernel", {{"release", kernel_release()}}},
        {"options",
         {{"seed", seed_}, {"rounds", options_.rounds ? nlohmann::json(*options_.rounds) : nlohmann::json()},
          {"duration_s", options_.duration_s ? nlohmann::json(*options_.duration_s) : nlohmann::json()},
          {"setup", options_.setup.empty() ? "random" : options_.setup}, {"ops", options_.ops}}},
        {"metrics",
         {{"elapsed_s", s},
          {"rounds", totals_.rounds},
          {"rounds_per_s", s > 0 ? double(totals_.rounds) / s : 0},
          {"requests", totals_.requests},
          {"requests_per_s", requests_per_s},
          {"cqes", totals_.cqes},
          {"errors", totals_.errors},
          {"nop_roundtrip_per_s", nop_rate_},
          {"raw_mix_rounds_per_s", raw_rounds_},
          {"raw_mix_requests_per_s", raw_requests_},
          {"percent_of_nop_roundtrip", nop_rate_ > 0 ? 100 * requests_per_s / nop_rate_ : 0},
          {"percent_of_raw_mix", raw_requests_ > 0 ? 100 * requests_per_s / raw_requests_ : 0},
          // The same rounds' requests over the time they spent in submit/complete
          // alone: unlike the 1 s raw-mix sample (the first rounds only), this
          // compares like with like, and the rest is the explorer's own cost.
          {"exec_s", exec_s},
          {"raw_same_rounds_requests_per_s", exec_s > 0 ? double(totals_.requests) / exec_s : 0},
          {"percent_of_raw_same_rounds", s > 0 ? 100 * exec_s / s : 0}}},
        {"ops", counts_by_name(totals_.ops)},
        {"setups", setups},
        {"violations_by_rule", violations},
        {"findings", findings}};
    if (!totals_.last_error.empty()) report["last_error"] = totals_.last_error;
    try {
        write_output(*report_, report.dump(2) + "\n");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "uring-conform: error: %s\n", e.what());
    }
}

int Explorer::run() {
    if (!options_.report_path.empty()) report_ = check_output("--report", options_.report_path);
    double duration = options_.duration_s.value_or(options_.rounds ? 3600 : 20);
    if (!options_.quiet)
        std::fprintf(stderr, "explore: seed %llu, %s, measuring the NOP round trip and the raw mix...\n",
                     (unsigned long long)seed_, options_.rounds ? str(*options_.rounds, " rounds").c_str()
                                                                : str(duration, " s").c_str());
    nop_rate_ = nop_roundtrip_rate(0.5);
    std::tie(raw_rounds_, raw_requests_) = raw_mix_rate(seed_, gen_, 1.0);
    start_ns_ = last_progress_ns_ = now_ns();
    end_ns_ = start_ns_ + uint64_t(duration * 1e9);
    explore();
    elapsed_s_ = double(now_ns() - start_ns_) / 1e9;
    progress(true);
    if (!options_.quiet)
        std::fprintf(stderr, "explore: NOP round trip %.0f/s, raw mix %.0f requests/s; explore %.0f requests/s = %.0f %% of raw, "
                             "%.0f %% of the same rounds' own submit/complete rate, %.1f %% of NOP\n",
                     nop_rate_, raw_requests_, double(totals_.requests) / elapsed_s_,
                     raw_requests_ > 0 ? 100 * double(totals_.requests) / elapsed_s_ / raw_requests_ : 0,
                     100 * double(totals_.exec_ns) / 1e9 / elapsed_s_,
                     nop_rate_ > 0 ? 100 * double(totals_.requests) / elapsed_s_ / nop_rate_ : 0);
    if (totals_.errors && !options_.quiet)
        std::fprintf(stderr, "explore: %llu rounds could not run (last: %s)\n", (unsigned long long)totals_.errors,
                     totals_.last_error.c_str());
    write_report(false);
    for (size_t i = 0; i < findings_.size() && i < options_.max_findings; ++i) {
        shrink_and_emit(findings_[i]);
        write_report(false);
    }
    write_report(true);
    return findings_.empty() ? 0 : kExitFound;
}

}  // namespace

std::string explore_op_list() {
    std::string out;
    for (const std::string& name : op_names()) out += (out.empty() ? "" : ",") + name;
    return out;
}

int explore_command(const ExploreOptions& options) {
    GenOptions gen;
    for (const std::string& name : options.ops) {
        auto op = op_from_name(name);
        if (!op) return usage_error("--ops: unknown step '" + name + "' (steps: " + explore_op_list() + ")");
        gen.ops.push_back(*op);
    }
    if (!options.setup.empty()) {
        for (unsigned s = 0; s < XSETUP_COUNT; ++s)
            if (options.setup == xsetup_name(s)) gen.setup = s;
        if (!gen.setup) return usage_error("--setup must be none, coop_taskrun, defer_taskrun or sqpoll");
    }
    if (options.duration_s && !(*options.duration_s > 0 && *options.duration_s <= 86400))
        return usage_error("--duration must be > 0 and <= 86400 seconds");
    if (options.rounds && *options.rounds == 0) return usage_error("--rounds must be at least 1");
    if (!options.emit_dir.empty()) {
        struct stat st {};
        if (stat(options.emit_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
            return usage_error("--emit-reproducer " + options.emit_dir + ": not a directory");
    }
    gen.selftest_ghost = options.selftest_ghost;
    char why[200];
    unsigned caps = 0;
    if (xprobe(&caps, why, sizeof(why)) != 0) {
        std::fprintf(stderr, "uring-conform: io_uring cannot be used here: %s\n", why);
        return kExitNoIoUring;
    }
    gen.caps = caps;
    if (gen.setup) {
        static const unsigned need[XSETUP_COUNT] = {0, XCAP_COOP_TASKRUN, XCAP_DEFER_TASKRUN, XCAP_SQPOLL};
        if (need[*gen.setup] & ~caps) {
            std::fprintf(stderr, "uring-conform: --setup %s: the kernel refuses it (io_uring_queue_init)\n",
                         options.setup.c_str());
            return kExitNoIoUring;
        }
    }
    uint64_t seed = options.seed.value_or(uint64_t(time(nullptr)));
    try {
        Explorer explorer(options, gen, seed, caps);
        return explorer.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "uring-conform: error: %s\n", e.what());
        return kExitUsage;
    }
}

}  // namespace uc::explore
