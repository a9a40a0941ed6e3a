#include "shrink.h"

#include <nlohmann/json.hpp>

#include "child.h"
#include "executor.h"
#include "util.h"

namespace uc::explore {

unsigned reproductions(const Program& program, const std::string& rule, const ReplayOptions& options) {
    unsigned hits = 0, done = 0;
    Child child([&](int out) {
        Executor executor(options.drain_ms);
        for (unsigned i = 0; i < options.n; ++i) {
            RoundResult r = executor.run(program);
            write_line(out, r.violation ? r.violation->rule_id : "-");
        }
    });
    std::string line;
    while (done < options.n && hits < options.k && hits + (options.n - done) >= options.k) {
        Child::Next next = child.next(line, options.round_timeout_ms);
        if (next == Child::Next::end) break;
        ++done;
        if (next == Child::Next::timeout) {
            hits += rule == "round-watchdog";
            break;  // the child is stuck: no more replays from it
        }
        hits += line == rule;
    }
    return hits;
}

bool reproduces(const Program& program, const std::string& rule, const ReplayOptions& options) {
    return reproductions(program, rule, options) >= options.k;
}

namespace {

// Simpler versions of one step, most simplifying first.
std::vector<xstep> simpler(const xstep& s) {
    std::vector<xstep> out;
    auto with = [&](auto change) {
        xstep t = s;
        change(t);
        if (std::memcmp(&t, &s, sizeof t) != 0) out.push_back(t);
    };
    if (s.len > 1) with([](xstep& t) { t.len = 1; });
    if (s.usec > 0) with([](xstep& t) { t.usec = 0; });
    if (s.op == XOP_TIMEOUT && s.count > 0) with([](xstep& t) { t.count = 0; });
    if (s.op == XOP_TIMEOUT_MULTISHOT && s.count > 1) with([](xstep& t) { t.count = 1; });
    if (s.op == XOP_CANCEL && s.key != XK_USER_DATA) with([](xstep& t) { t.key = XK_USER_DATA; });
    return out;
}

}  // namespace

ShrinkResult shrink(const Program& original, const std::string& rule, const ReplayOptions& options, double budget_s) {
    ShrinkResult result{original};
    uint64_t deadline = now_ns() + uint64_t(budget_s * 1e9);
    auto try_candidate = [&](const Program& candidate) {
        if (now_ns() >= deadline) {
            result.out_of_time = true;
            return false;
        }
        ++result.candidates;
        if (!reproduces(candidate, rule, options)) return false;
        result.program = candidate;
        return true;
    };
    // Remove chunks of steps, halving the chunk size (delta debugging).
    for (bool changed = true; changed && !result.out_of_time;) {
        changed = false;
        for (size_t chunk = std::max<size_t>(1, result.program.steps.size() / 2); chunk >= 1 && !result.out_of_time;
             chunk /= 2) {
            for (size_t start = 0; start < result.program.steps.size() && !result.out_of_time;) {
                Program candidate = result.program;
                auto first = candidate.steps.begin() + long(start);
                candidate.steps.erase(first, first + long(std::min(chunk, candidate.steps.size() - start)));
                if (!candidate.steps.empty() && try_candidate(candidate))
                    changed = true;
                else
                    start += chunk;
            }
            if (chunk == 1) break;
        }
    }
    // Then simpler arguments and the plainest setup.
    for (size_t i = 0; i < result.program.steps.size() && !result.out_of_time; ++i)
        for (const xstep& s : simpler(result.program.steps[i])) {
            Program candidate = result.program;
            candidate.steps[i] = s;
            if (try_candidate(candidate)) break;
        }
    if (result.program.setup != XSETUP_NONE && !result.out_of_time) {
        Program candidate = result.program;
        candidate.setup = XSETUP_NONE;
        try_candidate(candidate);
    }
    return result;
}

}  // namespace uc::explore
