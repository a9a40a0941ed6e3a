// A scenario's parameter space, typed: each family declares a struct of its
// parameters and a grid of the values they take, e.g.
//
//   struct Params { Setup setup; unsigned cq; };
//   const auto kVariants = grid(setups(&Params::setup, all_setups()),
//                               axis("cq", &Params::cq, {8u, 256u}));
//
// A misspelt member is a compile error. The id suffix ("[defer_taskrun,cq=8]")
// and the report's params object are generated from the axes in declaration
// order; the suffix is part of the stable result id that joins reports across
// kernels, so axis keys and value names must never change casually.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace uc {

// Ring setup modes scenarios run under.
enum class Setup { none, coop_taskrun, defer_taskrun, sqpoll };

const std::vector<Setup>& all_setups();
std::string setup_name(Setup setup);       // "defer_taskrun"
unsigned setup_flags(Setup setup);         // IORING_SETUP_* bits
std::string setup_probe_key(Setup setup);  // the probe's setup_flags key that decides it

// One point of a grid: the typed parameters, plus what the id and report show.
template <typename P>
struct Variant {
    P params{};
    std::optional<Setup> setup;  // set when the grid has a setup axis: the parent checks the flag
    std::vector<std::string> suffix_parts;
    nlohmann::ordered_json json = nlohmann::ordered_json::object();

    std::string suffix() const {  // "" or "[none,cq=8]"
        std::string out;
        for (const std::string& part : suffix_parts) out += (out.empty() ? "" : ",") + part;
        return out.empty() ? out : "[" + out + "]";
    }
};

// One axis: which member it sets and, per value, how the id spells it.
template <typename P, typename T>
struct Axis {
    std::string key;  // the setup axis shows the mode's name alone, without its key
    T P::*member;
    std::vector<std::pair<T, std::string>> values;
    bool numeric = false;  // the report's params show the value itself, else its name
};

// The setup-mode axis; by convention the first, so ids start with the mode.
template <typename P>
Axis<P, Setup> setups(Setup P::*member, const std::vector<Setup>& modes) {
    Axis<P, Setup> axis{"setup", member, {}};
    for (Setup s : modes) axis.values.emplace_back(s, setup_name(s));
    return axis;
}

// A numeric axis: the id shows "key=value".
template <typename P, typename T>
    requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
Axis<P, T> axis(std::string key, T P::*member, std::initializer_list<std::type_identity_t<T>> values) {
    Axis<P, T> out{std::move(key), member, {}, true};
    for (T v : values) out.values.emplace_back(v, std::to_string(v));
    return out;
}

// A named axis (an enum, a bool): the id shows "key=name".
template <typename P, typename T>
Axis<P, T> axis(std::string key, T P::*member,
               std::initializer_list<std::pair<std::type_identity_t<T>, std::string>> values) {
    return Axis<P, T>{std::move(key), member, {values.begin(), values.end()}};
}

namespace detail {
template <typename P, typename T>
nlohmann::ordered_json report_value(const Axis<P, T>& axis, const T& value, const std::string& name) {
    if constexpr (std::is_arithmetic_v<T>)
        if (axis.numeric) return value;
    return name;
}

template <typename P, typename T>
std::vector<Variant<P>> extend(const std::vector<Variant<P>>& base, const Axis<P, T>& axis) {
    std::vector<Variant<P>> out;
    for (const Variant<P>& v : base)
        for (const auto& [value, name] : axis.values) {
            Variant<P> next = v;
            next.params.*axis.member = value;
            if constexpr (std::is_same_v<T, Setup>) {
                next.setup = value;
                next.suffix_parts.push_back(name);
            } else {
                next.suffix_parts.push_back(axis.key + "=" + name);
            }
            next.json[axis.key] = report_value(axis, value, name);
            out.push_back(std::move(next));
        }
    return out;
}
}  // namespace detail

// Every combination of the axes' values; the first axis varies slowest.
template <typename P, typename... Ts>
std::vector<Variant<P>> grid(const Axis<P, Ts>&... axes) {
    std::vector<Variant<P>> out(1);
    ((out = detail::extend(out, axes)), ...);
    return out;
}

// Grids side by side, for a space that is not one product (UDP takes smaller payloads than TCP).
template <typename P>
std::vector<Variant<P>> join(std::vector<Variant<P>> a, const std::vector<Variant<P>>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// Parameters of a scenario without variants (its id has no suffix).
struct NoParams {};

// Parameters of a scenario that has only the setup axis.
struct SetupOnly {
    Setup setup = Setup::none;
};

}  // namespace uc
