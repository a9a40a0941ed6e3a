#include "expectations.h"

#include <fnmatch.h>

#include <set>
#include <stdexcept>

#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include "scenario.h"

namespace uc {
namespace {

std::string where(const std::string& path, const toml::node& node) {
    return path + ":" + std::to_string(node.source().begin.line);
}

std::string required_text(const toml::table& entry, const char* key, const std::string& at) {
    auto value = entry[key].value<std::string>();
    if (!value || value->empty()) throw std::runtime_error(at + ": entry needs " + key + " = \"...\"");
    return *value;
}

Expectation parse_entry(const toml::table& entry, const std::string& at) {
    static const std::set<std::string> kKeys{"ids", "kernels", "probe", "verdict", "reason", "link", "intermittent"};
    for (const auto& [key, value] : entry)
        if (!kKeys.count(std::string(key.str())))
            throw std::runtime_error(at + ": unknown key '" + std::string(key.str()) +
                                     "' (ids, kernels, probe, verdict, reason, link, intermittent)");
    Expectation e;
    e.ids = required_text(entry, "ids", at);
    std::string verdict = required_text(entry, "verdict", at);
    auto parsed = parse_verdict(verdict);
    if (!parsed) throw std::runtime_error(at + ": verdict '" + verdict + "' is not pass, fail, skip, hang, crash or error");
    e.verdict = *parsed;
    e.reason = required_text(entry, "reason", at);
    e.link = entry["link"].value_or(std::string());
    if (entry.contains("intermittent")) {
        auto flag = entry["intermittent"].value<bool>();
        if (!flag) throw std::runtime_error(at + ": intermittent must be true or false");
        e.intermittent = *flag;
    }
    if (const toml::array* kernels = entry["kernels"].as_array()) {
        for (const toml::node& k : *kernels) {
            auto text = k.value<std::string>();
            if (!text) throw std::runtime_error(at + ": kernels must be a list of uname -r globs");
            e.kernels.push_back(*text);
        }
    } else if (auto one = entry["kernels"].value<std::string>()) {
        e.kernels.push_back(*one);
    }
    if (auto fact = entry["probe"].value<std::string>()) {
        size_t eq = fact->find('=');
        if (eq == std::string::npos || eq == 0)
            throw std::runtime_error(at + ": probe must read PATH=VALUE, e.g. setup_flags.SQPOLL=ok");
        e.probe_path = fact->substr(0, eq);
        e.probe_value = fact->substr(eq + 1);
    }
    e.source = at;
    return e;
}

// The probe JSON's value at a dotted path, as text ("ok", "true", "3").
std::optional<std::string> probe_fact(const Json& probe, const std::string& path) {
    const Json* node = &probe;
    for (size_t start = 0; start <= path.size();) {
        size_t dot = path.find('.', start);
        if (dot == std::string::npos) dot = path.size();
        std::string key = path.substr(start, dot - start);
        if (!node->is_object() || !node->contains(key)) return std::nullopt;
        node = &(*node)[key];
        start = dot + 1;
    }
    return node->is_string() ? node->get<std::string>() : node->dump();
}

}  // namespace

std::vector<Expectation> load_expectations(const std::vector<std::string>& paths) {
    std::vector<Expectation> out;
    for (const std::string& path : paths) {
        toml::table doc;
        try {
            doc = toml::parse_file(path);
        } catch (const toml::parse_error& e) {
            throw std::runtime_error(path + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
        }
        for (const auto& [key, value] : doc)
            if (key.str() != "expect") throw std::runtime_error(where(path, value) + ": only [[expect]] entries belong here");
        const toml::array* entries = doc["expect"].as_array();
        if (!entries) throw std::runtime_error(path + ": no [[expect]] entries");
        for (const toml::node& node : *entries) {
            const toml::table* entry = node.as_table();
            if (!entry) throw std::runtime_error(where(path, node) + ": expect must be a table");
            out.push_back(parse_entry(*entry, where(path, node)));
        }
    }
    return out;
}

bool applies_to(const Expectation& entry, const Probe& probe) {
    if (!entry.kernels.empty()) {
        bool any = false;
        for (const std::string& glob : entry.kernels) any |= fnmatch(glob.c_str(), probe.kernel_release.c_str(), 0) == 0;
        if (!any) return false;
    }
    if (entry.probe_path.empty()) return true;
    return probe_fact(probe.to_json(), entry.probe_path) == entry.probe_value;
}

void apply_expectations(Result& result, const std::vector<Expectation>& entries) {
    for (const Expectation& e : entries) {
        if (!id_matches(e.ids, result.id)) continue;
        // A known race that did not show in this run's rounds: a plain pass, not news.
        if (e.intermittent && result.verdict == Verdict::pass) return;
        result.expectation = {{"status", result.verdict == e.verdict ? "xfail" : "xpass"},
                              {"expected", verdict_name(e.verdict)},
                              {"reason", e.reason},
                              {"link", e.link},
                              {"source", e.source}};
        return;
    }
}

bool counts_as_failure(const Result& result) {
    if (!is_bad(result.verdict)) return false;
    return !(result.expectation.is_object() && result.expectation.value("status", "") == "xfail");
}

}  // namespace uc
