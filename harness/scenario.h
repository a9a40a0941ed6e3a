// Declarative scenario registry and the context a scenario body runs in.
//
//   const Family multishot{"multishot"};
//   struct Params { Setup setup; unsigned cq; };
//   const Register<Params> recv_peer_close{{
//       .family = multishot, .name = "recv-peer-close",
//       .summary = "peer shutdown ends multishot recv with res 0",
//       .needs = {needs_op(IORING_OP_RECV), needs_buf_ring()},
//       .variants = grid(setups(&Params::setup, all_setups()), axis("cq", &Params::cq, {8u, 256u})),
//       .body = [](Ctx& ctx, const Params& p) { ... }}};
//
// Everything the parent can know decides before the fork: the variant's
// setup flag against the probe, then each requirement, which may look at the
// variant (`when(&Params::pool, Pool::legacy, needs_op(...))`). A body reads
// as setup -> act -> check: it creates rings through the Ctx, records
// failures with expect()/must(), and leaves with error() only for host
// trouble outside the behaviour under test.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "checks.h"
#include "params.h"
#include "probe.h"
#include "result.h"
#include "util.h"

namespace uc {

class Ring;

// Returns why the kernel cannot run the scenario, or nullopt when it can.
using Requirement = std::function<std::optional<std::string>(const Probe&)>;
Requirement needs_op(int opcode);
Requirement needs_feature(uint32_t feature, const std::string& name);
Requirement needs_capability(const std::string& name);
Requirement needs_buf_ring();
Requirement needs_buf_ring_inc();
Requirement needs_root();

// A family: one cases/ file (or a few split by sub-topic) sharing an id prefix.
struct Family {
    std::string name;
};

// A requirement that may depend on the variant: a probe-only Requirement
// converts to it, and so does any callable (const Probe&, const P&).
template <typename P>
class Need {
  public:
    Need(Requirement probe_only)
        : fn_([need = std::move(probe_only)](const Probe& probe, const P&) { return need(probe); }) {}
    template <typename F>
        requires std::is_invocable_r_v<std::optional<std::string>, F, const Probe&, const P&>
    Need(F fn) : fn_(std::move(fn)) {}
    std::optional<std::string> operator()(const Probe& probe, const P& params) const { return fn_(probe, params); }

  private:
    std::function<std::optional<std::string>(const Probe&, const P&)> fn_;
};

// `need` applies only to the variants whose `member` equals `value`.
template <typename P, typename T>
Need<P> when(T P::*member, T value, Requirement need) {
    return Need<P>([=](const Probe& probe, const P& p) -> std::optional<std::string> {
        if (p.*member != value) return std::nullopt;
        return need(probe);
    });
}

// How one family's scenario is declared; Register<P> files it.
template <typename P>
struct Spec {
    const Family& family;
    std::string name;
    std::string summary;  // one line: trigger -> expected outcome
    std::vector<Need<P>> needs;
    std::vector<Variant<P>> variants = {Variant<P>{}};
    std::function<void(class Ctx&, const P&)> body;
    // The least watchdog limit under which a run of the body means anything
    // (its own bounded waits need this much): a smaller --timeout is refused,
    // and a smaller profile default is raised to it for this scenario.
    double min_timeout_s = 2.0;
};

// The registry's view of one variant, with the types erased.
struct VariantEntry {
    std::string suffix;
    nlohmann::ordered_json params;
    std::optional<Setup> setup;
    std::function<std::optional<std::string>(const Probe&)> unmet;  // first unmet requirement
    std::function<void(class Ctx&)> run;
};

struct ScenarioEntry {
    std::string family;
    std::string name;
    std::string summary;
    std::vector<VariantEntry> variants;
    double min_timeout_s;
};

void add_to_registry(ScenarioEntry entry);
const std::vector<ScenarioEntry>& registry();

// The registry's view of one spec: each variant with its requirements and
// body bound to its typed parameters.
template <typename P>
ScenarioEntry make_entry(Spec<P> spec) {
    ScenarioEntry entry{spec.family.name, spec.name, spec.summary, {}, spec.min_timeout_s};
    auto needs = std::make_shared<const std::vector<Need<P>>>(std::move(spec.needs));
    auto body = std::make_shared<const std::function<void(Ctx&, const P&)>>(std::move(spec.body));
    for (const Variant<P>& v : spec.variants) {
        P params = v.params;
        entry.variants.push_back({v.suffix(), v.json, v.setup,
                                  [needs, params](const Probe& probe) -> std::optional<std::string> {
                                      for (const Need<P>& need : *needs)
                                          if (auto why = need(probe, params)) return why;
                                      return std::nullopt;
                                  },
                                  [body, params](Ctx& ctx) { (*body)(ctx, params); }});
    }
    return entry;
}

template <typename P>
struct Register {
    explicit Register(Spec<P> spec) { add_to_registry(make_entry(std::move(spec))); }
};

// One runnable unit: a scenario with one variant.
struct Instance {
    const ScenarioEntry* scenario;
    const VariantEntry* variant;
    std::string id;  // family/name[variant]
};
// Every instance whose id matches the glob (`*` and `?` are wildcards, brackets
// match themselves, so an exact id matches itself),
// in registration order.
std::vector<Instance> select_instances(const std::string& glob);
// The same matching for one id (known-issue entries use it too).
bool id_matches(const std::string& glob, const std::string& id);
// Why this instance cannot run on this kernel (refused setup flag or unmet
// requirement), or nullopt; decided in the parent, before any fork.
std::optional<std::string> unmet_requirement(const Instance& instance, const Probe& probe);

enum class Profile { quick, full, stress };
std::string profile_name(Profile profile);
std::optional<Profile> parse_profile(const std::string& text);

struct Settings {
    Profile profile = Profile::quick;
    uint64_t seed = 0;
    double timeout_s = 0;                 // the watchdog's limit for this instance
    std::optional<double> duration_s;     // --duration: time budget for long-running scenarios
    // timeout_s is the profile's default (no --timeout): a scenario whose
    // min_timeout_s is larger gets that instead.
    bool timeout_is_default = false;
};

// How a scenario ended when it did not run to its end: thrown by skip(),
// error(), hang() and must(); caught by the runner in the child.
struct Stop {
    Verdict verdict;
    std::string reason;
};

class Ctx {
  public:
    Ctx(const Probe& probe, const Settings& settings);
    Ctx(const Ctx&) = delete;
    Ctx& operator=(const Ctx&) = delete;

    const Probe& probe() const { return probe_; }
    Profile profile() const { return settings_.profile; }
    uint64_t seed() const { return settings_.seed; }
    template <typename T>
    T pick(T quick, T full, T stress) const {
        return profile() == Profile::quick ? quick : profile() == Profile::full ? full : stress;
    }
    // Time budget for a long-running body: --duration when given, else the
    // profile's value; never more than half the watchdog limit.
    double budget_s(double quick, double full, double stress) const;
    uint64_t started_ns() const { return started_ns_; }
    // Waits past this point are a hang: the ring helpers stop with the
    // outstanding requests as evidence before the watchdog has to kill us.
    uint64_t deadline_ns() const { return deadline_ns_; }

    [[noreturn]] void skip(const std::string& reason);
    [[noreturn]] void error(const std::string& reason);
    [[noreturn]] void hang(const std::string& reason);

    // Records a broken rule and goes on; returns check.ok.
    bool expect(const Check& check);
    // Records a broken rule and stops the scenario.
    void must(const Check& check);
    bool expect_true(bool condition, const std::string& rule);
    template <typename A, typename E>
    bool expect_eq(const A& actual, const E& expected, const std::string& what) {
        if (actual == expected) return true;
        return expect(Check::fail(str(what, ": got ", actual, ", expected ", expected)));
    }

    void metric(const std::string& key, nlohmann::json value);
    void note(const std::string& text);
    void add_iterations(uint64_t n);
    // Rounds that catch a violation occurring in at least `rate` of rounds
    // with the profile's confidence (quick 99 %, full 99.9 %, stress 99.99 %):
    // n = ceil(log(1 - confidence) / log(1 - rate)); 90 for 5 % in quick.
    uint64_t rounds_to_catch(double rate = 0.05) const;
    // The rule under test breaks only under some timings: `rounds` ran and
    // `violations` broke it. Marks the result timing_dependent and records
    // both as metrics, so a pass says how many rounds it survived.
    void timing_dependent(uint64_t rounds, uint64_t violations);
    bool failed() const;

    // Ring bookkeeping for evidence (called by Ring).
    uint32_t attach(Ring* ring);
    void detach(Ring* ring);

    // The child's verdict document (verdict, reason, iterations, metrics, evidence).
    nlohmann::ordered_json result(const std::optional<Stop>& stop) const;

  private:
    void snapshot_evidence_locked();

    const Probe& probe_;
    Settings settings_;
    uint64_t started_ns_;
    uint64_t deadline_ns_;

    mutable std::mutex mutex_;
    std::vector<Ring*> rings_;
    uint32_t next_ring_id_ = 0;
    std::vector<std::string> failures_;
    std::vector<std::string> notes_;
    std::vector<std::string> outstanding_;
    nlohmann::json cqe_tail_ = nlohmann::json::array();
    nlohmann::ordered_json metrics_ = nlohmann::ordered_json::object();
    uint64_t iterations_ = 0;
    bool timing_dependent_ = false;
};

}  // namespace uc
