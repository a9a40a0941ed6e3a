#include "params.h"

#include <stdexcept>

#include "compat/uapi.h"

namespace uc {

const std::vector<Setup>& all_setups() {
    static const std::vector<Setup> setups{Setup::none, Setup::coop_taskrun, Setup::defer_taskrun, Setup::sqpoll};
    return setups;
}

std::string setup_name(Setup setup) {
    switch (setup) {
        case Setup::none: return "none";
        case Setup::coop_taskrun: return "coop_taskrun";
        case Setup::defer_taskrun: return "defer_taskrun";
        case Setup::sqpoll: return "sqpoll";
    }
    return "?";
}

unsigned setup_flags(Setup setup) {
    switch (setup) {
        case Setup::none: return 0;
        case Setup::coop_taskrun: return IORING_SETUP_COOP_TASKRUN;
        case Setup::defer_taskrun: return IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
        case Setup::sqpoll: return IORING_SETUP_SQPOLL;
    }
    return 0;
}

std::string setup_probe_key(Setup setup) {
    switch (setup) {
        case Setup::none: return "";
        case Setup::coop_taskrun: return "COOP_TASKRUN";
        case Setup::defer_taskrun: return "DEFER_TASKRUN";
        case Setup::sqpoll: return "SQPOLL";
    }
    return "";
}

static const ParamValue& find_value(const Params& p, const std::string& key) {
    for (const auto& [k, v] : p.values)
        if (k == key) return v;
    throw std::out_of_range("scenario parameter '" + key + "' not in variant" + p.suffix());
}

int64_t Params::num(const std::string& key) const { return std::get<int64_t>(find_value(*this, key)); }

std::string Params::text(const std::string& key) const { return std::get<std::string>(find_value(*this, key)); }

static std::string value_text(const ParamValue& v) {
    return std::holds_alternative<int64_t>(v) ? std::to_string(std::get<int64_t>(v)) : std::get<std::string>(v);
}

std::string Params::suffix() const {
    std::string out;
    if (setup) out = setup_name(*setup);
    for (const auto& [key, value] : values) out += (out.empty() ? "" : ",") + key + "=" + value_text(value);
    return out.empty() ? out : "[" + out + "]";
}

nlohmann::ordered_json Params::to_json() const {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    if (setup) j["setup"] = setup_name(*setup);
    for (const auto& [key, value] : values) {
        if (std::holds_alternative<int64_t>(value))
            j[key] = std::get<int64_t>(value);
        else
            j[key] = std::get<std::string>(value);
    }
    return j;
}

std::vector<Params> grid(const std::vector<Setup>& setups, const std::vector<Axis>& axes) {
    std::vector<Params> out;
    if (setups.empty())
        out.push_back(Params{});
    else
        for (Setup s : setups) out.push_back(Params{s, {}});
    for (const Axis& axis : axes) {
        std::vector<Params> next;
        for (const Params& base : out)
            for (const ParamValue& value : axis.values) {
                Params p = base;
                p.values.emplace_back(axis.key, value);
                next.push_back(std::move(p));
            }
        out = std::move(next);
    }
    return out;
}

}  // namespace uc
