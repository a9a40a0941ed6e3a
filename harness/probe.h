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

// What one capability probe tried and what the kernel answered. A capability
// is absent only when the kernel refused it the documented way: an opcode
// missing from IORING_REGISTER_PROBE, a feature bit missing, -EINVAL or
// -EOPNOTSUPP for an unknown flag or field, a setup flag or register opcode
// refused. Whatever the kernel accepts is present, and the scenario's own
// checks judge what it then does.
struct CapabilityEvidence {
    std::string tried;   // "IORING_ASYNC_CANCEL_OP on a cancel of a pending pipe read"
    std::string answer;  // "-EINVAL", "res 0", "pending after 100 ms", "IORING_OP_SEND_ZC not in IORING_REGISTER_PROBE"
    bool present = false;
};

struct Probe {
    std::string kernel_release, kernel_version, machine;
    std::string liburing_compile, liburing_runtime;

    bool usable = false;        // io_uring_setup works at all
    std::string unusable_reason;

    uint32_t features = 0;                            // io_uring_params.features
    std::vector<bool> opcodes;                        // indexed by IORING_OP_*
    std::map<std::string, std::string> setup_flags;  // IORING_SETUP_ name -> "ok" or errno name
    // Absent only when IORING_REGISTER_PBUF_RING refuses (-EINVAL/-EOPNOTSUPP);
    // the answers ("ok" or the errno name) are the evidence a skip quotes.
    bool buf_ring = false;
    bool buf_ring_inc = false;  // IOU_PBUF_RING_INC
    std::string buf_ring_answer = "not tried", buf_ring_inc_answer = "not tried";
    std::map<std::string, bool> capabilities;  // name -> present (what tools/ compare)
    std::map<std::string, CapabilityEvidence> capability_evidence;

    std::optional<int> io_uring_disabled, io_uring_group;  // sysctls; nullopt = not present
    std::optional<uint64_t> memlock_kib;                    // nullopt = unlimited
    uint32_t uid = 0;

    bool has_op(int opcode) const;
    bool has_feature(uint32_t feature) const { return features & feature; }
    bool setup_accepted(const std::string& flag_name) const;
    bool capability(const std::string& name) const;
    // Why a scenario needing capability `name` cannot run, quoting the
    // evidence ("kernel lacks cancel_op: IORING_ASYNC_CANCEL_OP on ... ->
    // -EINVAL (probe)"), or nullopt when it is present.
    std::optional<std::string> capability_missing(const std::string& name) const;
    // Why a ring with these IORING_SETUP_* flags cannot be set up here: the
    // first flag the probe saw io_uring_setup refuse, or nullopt.
    std::optional<std::string> setup_refused(unsigned flags) const;

    nlohmann::ordered_json to_json() const;
};

Probe run_probe();

std::string opcode_name(int opcode);  // "RECV", or "OP_<n>" past what we know

// A capability found by trying a behaviour (e.g. "recv_multishot"), registered
// next to the scenarios that need it. The function says what it tried and
// what the kernel answered; it runs after the rest of the probe, so it may
// consult it (an opcode the kernel lacks: absent(), no SQE needed).
struct CapabilityProbe {
    CapabilityProbe(std::string name, std::function<CapabilityEvidence(const Probe&)> fn);
};

// The kernel's answer to one SQE: its first CQE's res, or none within the wait
// (a request the kernel took and left pending).
struct SqeAnswer {
    std::optional<int> res;
    unsigned waited_ms = 0;
    // "-EINVAL", "res 1", "pending after 100 ms"
    std::string text() const;
    // -EINVAL / -EOPNOTSUPP: how the kernel refuses an unknown flag or field.
    bool refused() const;
};

// Evidence from an SQE (or register call) answer: present unless refused.
CapabilityEvidence answered(std::string tried, const SqeAnswer& answer);
CapabilityEvidence answered(std::string tried, int res);
// A prerequisite the probe already found missing (an opcode, a feature bit,
// buffer rings): absent, with that as the answer.
CapabilityEvidence absent(std::string tried, std::string answer);
// The probe could not try at all (a socket or pipe refused by the host): not
// the kernel's refusal, reported as what it is.
CapabilityEvidence untried(std::string tried, std::string host_failure);
// absent() for an opcode missing from IORING_REGISTER_PROBE, else nullopt.
std::optional<CapabilityEvidence> lacks_op(const Probe& probe, int opcode);

// Submit one prepared SQE on a fresh 8-entry ring and return the answer of its
// first CQE, waiting at most `timeout_ms`; for capability probes. `prep` fills
// the SQE; extra requests it leaves are canceled with the ring. A ring that
// cannot be set up, or a refused submit, is the answer's res.
SqeAnswer probe_one_sqe(const std::function<void(io_uring*, io_uring_sqe*)>& prep, unsigned timeout_ms = 100);

}  // namespace uc
