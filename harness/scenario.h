// Declarative scenario registry and the context a scenario body runs in.
//
//   const uc::Register recv_peer_close{{
//       .family = "multishot", .name = "recv-peer-close",
//       .summary = "peer shutdown ends multishot recv with res 0",
//       .needs = {uc::needs_op(IORING_OP_RECV), uc::needs_buf_ring()},
//       .variants = uc::grid(uc::all_setups(), {{"cq", {8, 256}}}),
//       .body = [](uc::Ctx& ctx) { ... }}};
//
// A body reads as setup -> act -> check: it creates rings through the Ctx,
// records failures with expect()/must(), and leaves with skip()/error() only
// for reasons outside the behaviour under test.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "checks.h"
#include "params.h"
#include "probe.h"
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

struct Scenario {
    std::string family;
    std::string name;
    std::string summary;  // one line: trigger -> expected outcome
    std::vector<Requirement> needs;
    std::vector<Params> variants = {Params{}};
    std::function<void(class Ctx&)> body;
};

struct Register {
    explicit Register(Scenario scenario);
};
const std::vector<Scenario>& registry();

// One runnable unit: a scenario with one variant.
struct Instance {
    const Scenario* scenario;
    Params params;
    std::string id;  // family/name[variant]
};
// Every instance whose id matches the glob (`*` and `?` are wildcards, brackets
// match themselves, so an exact id matches itself),
// in registration order.
std::vector<Instance> select_instances(const std::string& glob);
// Why this instance cannot run on this kernel (unmet requirement or refused
// setup flag), or nullopt.
std::optional<std::string> unmet_requirement(const Instance& instance, const Probe& probe);

enum class Profile { quick, full, stress };
std::string profile_name(Profile profile);
std::optional<Profile> parse_profile(const std::string& text);

struct Settings {
    Profile profile = Profile::quick;
    uint64_t seed = 0;
    double timeout_s = 0;                 // the watchdog's limit for this instance
    std::optional<double> duration_s;     // --duration: time budget for long-running scenarios
};

// How a scenario ended when it did not run to its end: thrown by skip(),
// error(), hang() and must(); caught by the runner in the child.
struct Stop {
    std::string verdict;
    std::string reason;
};

class Ctx {
  public:
    Ctx(const Probe& probe, const Params& params, const Settings& settings);
    Ctx(const Ctx&) = delete;
    Ctx& operator=(const Ctx&) = delete;

    const Probe& probe() const { return probe_; }
    const Params& params() const { return params_; }
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
    bool failed() const;

    // Ring bookkeeping for evidence (called by Ring).
    uint32_t attach(Ring* ring);
    void detach(Ring* ring);

    // The child's verdict document (verdict, reason, iterations, metrics, evidence).
    nlohmann::ordered_json result(const std::optional<Stop>& stop) const;

  private:
    void snapshot_evidence_locked();

    const Probe& probe_;
    const Params& params_;
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
};

}  // namespace uc
