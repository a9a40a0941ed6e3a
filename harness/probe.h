// What the running kernel supports, found by trying things (never by reading
// the version: distribution kernels backport). Probed once in the parent;
// the result goes into the report and decides skips.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compat/uapi.h"

namespace uc {

struct Probe {
    std::string kernel_release, kernel_version, machine;
    std::string liburing_compile, liburing_runtime;

    bool usable = false;        // io_uring_setup works at all
    std::string unusable_reason;

    uint32_t features = 0;                            // io_uring_params.features
    std::vector<bool> opcodes;                        // indexed by IORING_OP_*
    std::map<std::string, std::string> setup_flags;  // IORING_SETUP_ name -> "ok" or errno name
    bool buf_ring = false;
    bool buf_ring_inc = false;  // IOU_PBUF_RING_INC
    std::map<std::string, bool> capabilities;

    std::optional<int> io_uring_disabled, io_uring_group;  // sysctls; nullopt = not present
    std::optional<uint64_t> memlock_kib;                    // nullopt = unlimited
    uint32_t uid = 0;

    bool has_op(int opcode) const;
    bool has_feature(uint32_t feature) const { return features & feature; }
    bool setup_accepted(const std::string& flag_name) const;
    bool capability(const std::string& name) const;

    nlohmann::ordered_json to_json() const;
};

Probe run_probe();

std::string opcode_name(int opcode);  // "RECV", or "OP_<n>" past what we know

// A capability found by trying a behaviour (e.g. "recv_multishot"), registered
// next to the scenarios that need it. The function returns whether the kernel
// supports it; it runs after the rest of the probe, so it may consult it.
struct CapabilityProbe {
    CapabilityProbe(std::string name, std::function<bool(const Probe&)> fn);
};

// Submit one prepared SQE on a fresh 8-entry ring and return its first CQE's
// res (or -ETIME if nothing completes within `timeout_ms`); for capability
// probes. `prep` fills the SQE; extra requests it leaves are canceled.
int probe_one_sqe(const std::function<void(io_uring*, io_uring_sqe*)>& prep, unsigned timeout_ms = 100);

}  // namespace uc
