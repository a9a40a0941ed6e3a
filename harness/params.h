// A scenario's parameter space: setup flags x named axes, as a Cartesian grid.
// A variant's suffix ("[defer_taskrun,cq=8]") is part of the stable result id.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace uc {

// Ring setup modes scenarios run under.
enum class Setup { none, coop_taskrun, defer_taskrun, sqpoll };

const std::vector<Setup>& all_setups();
std::string setup_name(Setup setup);       // "defer_taskrun"
unsigned setup_flags(Setup setup);         // IORING_SETUP_* bits
std::string setup_probe_key(Setup setup);  // the probe's setup_flags key that decides it

using ParamValue = std::variant<int64_t, std::string>;

struct Axis {
    std::string key;
    std::vector<ParamValue> values;
};

class Params {
  public:
    std::optional<Setup> setup;
    std::vector<std::pair<std::string, ParamValue>> values;  // axis order

    int64_t num(const std::string& key) const;   // throws std::out_of_range if absent
    std::string text(const std::string& key) const;
    Setup setup_or_none() const { return setup.value_or(Setup::none); }
    std::string suffix() const;  // "" or "[none,cq=8]"
    nlohmann::ordered_json to_json() const;
};

// Every combination of `setups` (may be empty: no setup axis) and `axes`,
// setups varying slowest.
std::vector<Params> grid(const std::vector<Setup>& setups, const std::vector<Axis>& axes = {});

}  // namespace uc
