// explore: `uring-conform explore` as scenarios, one per fixed seed, so CI
// runs a short exploration that names the same programs on every run and
// every kernel. Each round is a seeded random request mix on a fresh ring
// (harness/explore/), judged by the oracle of documented invariants
// (harness/checks/explore_oracle.h: one final CQE per request, results the
// man page allows, cancel results that agree with their targets, bytes
// conserved per stream, buffers handed out once, nothing outstanding after
// the drain). The first violating round is shrunk while time allows and
// fails the scenario with the rule and the program as evidence.
//
// The budget is the profile's: a glance in quick (the whole quick suite must
// stay within 60 s on the host), longer in full, the real exploration in
// stress. Which steps and setup modes a seed draws depends on what the kernel
// offers (xprobe), so ids are stable while programs may differ by kernel.
#include <liburing.h>

#include <algorithm>

#include "explore/executor.h"
#include "explore/program.h"
#include "explore/shrink.h"
#include "scenario.h"

namespace {

using namespace uc;
using namespace uc::explore;

const Family explore_family{"explore"};

struct Params {
    unsigned seed;
};

// Generous like `uring-conform explore`'s: a loaded 2-core host or a TCG guest
// can starve an SQPOLL thread for a while, and a drain cut short would read
// as a request left outstanding.
constexpr uint32_t kDrainMs = 5000;
// A replay during shrinking: its steps take well under a second, its drain at most kDrainMs.
constexpr uint64_t kReplayNs = 3ULL * (kDrainMs + 1000) * 1000000ULL;

std::string describe_program(const Program& program) {
    std::string out = xsetup_name(program.setup);
    for (const xstep& step : program.steps) out += "; " + describe(step);
    return out;
}

// Shrinks within what is left before the scenario's deadline (each candidate
// replays up to 3 times); nullopt when no replay fits.
std::optional<Program> shrink_in_time(Ctx& ctx, const Program& program, const std::string& rule, double budget_s) {
    uint64_t now = now_ns();
    if (ctx.deadline_ns() < now + 2 * kReplayNs) return std::nullopt;
    double left_s = double(ctx.deadline_ns() - now - kReplayNs) / 1e9;
    ReplayOptions replay;
    replay.drain_ms = kDrainMs;
    replay.round_timeout_ms = int(kReplayNs / 3000000);
    ShrinkResult shrunk = shrink(program, rule, replay, std::min(budget_s, left_s));
    ctx.metric("shrink_candidates", shrunk.candidates);
    if (shrunk.out_of_time) ctx.note("shrinking stopped at its time budget: the program may shrink further");
    return shrunk.program;
}

const Register<Params> fixed_seeds{{
    .family = explore_family,
    .name = "fixed-seeds",
    .summary = "seeded random request mixes break no documented invariant (stress explores; quick glances)",
    .needs = {needs_op(IORING_OP_NOP), needs_op(IORING_OP_READ), needs_op(IORING_OP_WRITE),
              needs_op(IORING_OP_ASYNC_CANCEL)},
    .variants = grid(axis("seed", &Params::seed, {1u, 2u, 3u})),
    .body =
        [](Ctx& ctx, const Params& p) {
            GenOptions gen;
            char why[200];
            if (xprobe(&gen.caps, why, sizeof why) != 0) ctx.error(str("xprobe: ", why));
            double budget_s = ctx.budget_s(0.2, 3, 30);
            Executor executor(kDrainMs);
            uint64_t end = now_ns() + uint64_t(budget_s * 1e9), rounds = 0, requests = 0, errors = 0;
            std::optional<std::pair<Program, RoundResult>> found;
            while (!found && (rounds == 0 || now_ns() < end)) {
                Program program = generate(p.seed, rounds, gen);
                RoundResult r = executor.run(program);
                ++rounds;
                requests += r.requests;
                errors += r.error.has_value();
                if (r.violation) found.emplace(std::move(program), std::move(r));
            }
            ctx.metric("requests", requests);
            ctx.metric("rounds_not_judged", errors);
            ctx.timing_dependent(rounds, found ? 1 : 0);
            if (!found) return;
            const auto& [program, result] = *found;
            const std::string& rule = result.violation->rule_id;
            ctx.note(str("explore round ", rounds - 1, " (0-based) of seed ", p.seed, " (uring-conform explore --seed ",
                         p.seed, " regenerates it): ", describe_program(program)));
            std::optional<Program> shrunk = shrink_in_time(ctx, program, rule, ctx.budget_s(1, 10, 60));
            if (!shrunk)
                ctx.note("not shrunk: the profile's watchdog leaves no time for a replay (run --profile stress)");
            else if (shrunk->steps.size() < program.steps.size())
                ctx.note(str("shrunk to ", shrunk->steps.size(), " of ", program.steps.size(), " steps: ",
                             describe_program(*shrunk)));
            else
                ctx.note("not shrunk: no smaller program broke the rule in 2 of 3 replays");
            // The rule's man-page source is quoted where the oracle checks it
            // (harness/checks/explore_oracle.cpp); the check names it.
            const nlohmann::json& cqes = result.evidence.value("cqes", nlohmann::json::array());
            std::string tail;
            for (size_t i = cqes.size() > 16 ? cqes.size() - 16 : 0; i < cqes.size(); ++i)
                tail += (tail.empty() ? "" : "; ") + cqes[i].get<std::string>();
            ctx.note(str("last ", std::min<size_t>(cqes.size(), 16), " of ", cqes.size(), " CQEs: ", tail));
            ctx.expect(Check::fail(str(rule, ": ", result.violation->check.rule, " (violated in round ", rounds,
                                       " of ", rounds, ")"),
                                   result.violation->check.offending));
        },
    .min_timeout_s = 10,
}};

}  // namespace
