#include "scenario.h"

#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "ring.h"

namespace uc {

Requirement needs_op(int opcode) {
    return [opcode](const Probe& p) -> std::optional<std::string> {
        if (p.has_op(opcode)) return std::nullopt;
        return "kernel lacks IORING_OP_" + opcode_name(opcode) + " (io_uring_register PROBE)";
    };
}

Requirement needs_feature(uint32_t feature, const std::string& name) {
    return [feature, name](const Probe& p) -> std::optional<std::string> {
        if (p.has_feature(feature)) return std::nullopt;
        return "kernel lacks IORING_FEAT_" + name + " (io_uring_params.features)";
    };
}

Requirement needs_capability(const std::string& name) {
    return [name](const Probe& p) -> std::optional<std::string> {
        return p.capability_missing(name);
    };
}

Requirement needs_buf_ring() {
    return [](const Probe& p) -> std::optional<std::string> {
        if (p.buf_ring) return std::nullopt;
        return "kernel lacks provided buffer rings (IORING_REGISTER_PBUF_RING answered " + p.buf_ring_answer + ")";
    };
}

Requirement needs_buf_ring_inc() {
    return [](const Probe& p) -> std::optional<std::string> {
        if (p.buf_ring_inc) return std::nullopt;
        return "kernel lacks incremental buffer rings (IORING_REGISTER_PBUF_RING with IOU_PBUF_RING_INC answered " +
               p.buf_ring_inc_answer + ")";
    };
}

Requirement needs_root() {
    return [](const Probe& p) -> std::optional<std::string> {
        if (p.uid == 0) return std::nullopt;
        return "needs root (running as uid " + std::to_string(p.uid) + ")";
    };
}

static std::vector<ScenarioEntry>& mutable_registry() {
    static std::vector<ScenarioEntry> scenarios;
    return scenarios;
}

void add_to_registry(ScenarioEntry entry) { mutable_registry().push_back(std::move(entry)); }

const std::vector<ScenarioEntry>& registry() { return mutable_registry(); }

// Ids carry their variant in brackets, so `[` and `]` in a filter match
// themselves; only `*` and `?` are wildcards.
static std::string literal_brackets(const std::string& glob) {
    std::string out;
    for (char c : glob) {
        if (c == '[' || c == ']') out += '\\';
        out += c;
    }
    return out;
}

bool id_matches(const std::string& glob, const std::string& id) {
    return fnmatch(literal_brackets(glob).c_str(), id.c_str(), 0) == 0;
}

std::vector<Instance> select_instances(const std::string& glob) {
    std::vector<Instance> out;
    for (const ScenarioEntry& s : registry())
        for (const VariantEntry& v : s.variants) {
            std::string id = s.family + "/" + s.name + v.suffix;
            if (id_matches(glob, id)) out.push_back({&s, &v, id});
        }
    return out;
}

std::optional<std::string> unmet_requirement(const Instance& instance, const Probe& probe) {
    if (instance.variant->setup) {
        std::string key = setup_probe_key(*instance.variant->setup);
        if (!key.empty() && !probe.setup_accepted(key)) {
            auto it = probe.setup_flags.find(key);
            return "io_uring_setup refused IORING_SETUP_" + key + ": " +
                   (it == probe.setup_flags.end() ? std::string("not probed") : it->second) + " (probe)";
        }
    }
    return instance.variant->unmet(probe);
}

std::string profile_name(Profile profile) {
    switch (profile) {
        case Profile::quick: return "quick";
        case Profile::full: return "full";
        case Profile::stress: return "stress";
    }
    return "?";
}

std::optional<Profile> parse_profile(const std::string& text) {
    for (Profile p : {Profile::quick, Profile::full, Profile::stress})
        if (profile_name(p) == text) return p;
    return std::nullopt;
}

Ctx::Ctx(const Probe& probe, const Settings& settings) : probe_(probe), settings_(settings), started_ns_(now_ns()) {
    // Leave the watchdog a margin so a hang is reported by us, with evidence.
    double margin_s = std::clamp(settings.timeout_s * 0.1, 0.2, 2.0);
    double own_s = std::max(settings.timeout_s - margin_s, settings.timeout_s * 0.5);
    deadline_ns_ = started_ns_ + uint64_t(own_s * 1e9);
}

double Ctx::budget_s(double quick, double full, double stress) const {
    double wanted = settings_.duration_s.value_or(pick(quick, full, stress));
    return std::min(wanted, settings_.timeout_s * 0.5);
}

void Ctx::skip(const std::string& reason) { throw Stop{Verdict::skip, reason}; }
void Ctx::error(const std::string& reason) { throw Stop{Verdict::error, reason}; }

void Ctx::hang(const std::string& reason) {
    {
        std::lock_guard lock(mutex_);
        for (Ring* ring : rings_)
            for (const std::string& what : ring->outstanding()) outstanding_.push_back(what);
        snapshot_evidence_locked();
    }
    throw Stop{Verdict::hang, reason};
}

bool Ctx::expect(const Check& check) {
    if (check.ok) return true;
    std::lock_guard lock(mutex_);
    if (failures_.empty()) snapshot_evidence_locked();
    failures_.push_back(check.describe());
    return false;
}

void Ctx::must(const Check& check) {
    if (!expect(check)) throw Stop{Verdict::fail, check.describe()};
}

bool Ctx::expect_true(bool condition, const std::string& rule) {
    return condition || expect(Check::fail(rule));
}

void Ctx::metric(const std::string& key, nlohmann::json value) {
    // reports/report.schema.json: a metric is a number, a boolean, a string or null.
    if (value.is_structured())
        throw std::invalid_argument(str("metric '", key, "' is a JSON ", value.type_name(),
                                        "; metrics are numbers, booleans or strings (put lists in a note)"));
    std::lock_guard lock(mutex_);
    metrics_[key] = std::move(value);
}

void Ctx::note(const std::string& text) {
    std::lock_guard lock(mutex_);
    notes_.push_back(text);
}

void Ctx::add_iterations(uint64_t n) {
    std::lock_guard lock(mutex_);
    iterations_ += n;
}

uint64_t Ctx::rounds_to_catch(double rate) const {
    double confidence = pick(0.99, 0.999, 0.9999);
    return uint64_t(std::ceil(std::log(1 - confidence) / std::log(1 - rate)));
}

void Ctx::timing_dependent(uint64_t rounds, uint64_t violations) {
    std::lock_guard lock(mutex_);
    timing_dependent_ = true;
    metrics_["rounds"] = rounds;
    metrics_["violations"] = violations;
}

bool Ctx::failed() const {
    std::lock_guard lock(mutex_);
    return !failures_.empty();
}

uint32_t Ctx::attach(Ring* ring) {
    std::lock_guard lock(mutex_);
    rings_.push_back(ring);
    return next_ring_id_++;
}

void Ctx::detach(Ring* ring) {
    std::lock_guard lock(mutex_);
    rings_.erase(std::remove(rings_.begin(), rings_.end(), ring), rings_.end());
}

// The newest CQEs of every live ring, merged by time: what the kernel said
// just before things went wrong.
void Ctx::snapshot_evidence_locked() {
    constexpr size_t kTail = 48;
    std::vector<Cqe> merged;
    for (Ring* ring : rings_) {
        auto tail = ring->trace().tail(kTail);
        merged.insert(merged.end(), tail.begin(), tail.end());
    }
    std::sort(merged.begin(), merged.end(), [](const Cqe& a, const Cqe& b) { return a.t_ns < b.t_ns; });
    if (merged.size() > kTail) merged.erase(merged.begin(), merged.end() - long(kTail));
    cqe_tail_ = nlohmann::json::array();
    for (const Cqe& cqe : merged) cqe_tail_.push_back(cqe_to_json(cqe, started_ns_));
}

nlohmann::ordered_json Ctx::result(const std::optional<Stop>& stop) const {
    std::lock_guard lock(mutex_);
    nlohmann::ordered_json out;
    Verdict verdict = Verdict::pass;
    std::string reason;
    // A broken rule stays a fail even if the body later skipped or hit a
    // setup error: a skip must never hide a failure. Only a hang outranks it.
    if (stop && (stop->verdict == Verdict::hang || failures_.empty())) {
        verdict = stop->verdict;
        reason = stop->reason;
    } else if (!failures_.empty()) {
        verdict = Verdict::fail;
        reason = failures_.front();
    }
    out["verdict"] = verdict_name(verdict);
    out["reason"] = reason;
    out["iterations"] = iterations_;
    if (timing_dependent_) out["timing_dependent"] = true;
    out["metrics"] = metrics_;
    nlohmann::ordered_json evidence = nlohmann::ordered_json::object();
    if (!failures_.empty()) evidence["failures"] = failures_;
    if (verdict == Verdict::fail || verdict == Verdict::hang) evidence["cqe_tail"] = cqe_tail_;
    if (!outstanding_.empty()) evidence["outstanding"] = outstanding_;
    if (!notes_.empty()) evidence["notes"] = notes_;
    out["evidence"] = evidence;
    return out;
}

}  // namespace uc
