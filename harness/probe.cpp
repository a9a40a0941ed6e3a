#include "probe.h"

#include <fstream>
#include <link.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "compat/uapi.h"
#include "util.h"

#ifndef UC_LIBURING_VERSION
#define UC_LIBURING_VERSION "unknown"
#endif

namespace uc {
namespace {

// Opcode names in uapi enum order (include/uapi/linux/io_uring.h).
const char* const kOpcodeNames[] = {
    "NOP", "READV", "WRITEV", "FSYNC", "READ_FIXED", "WRITE_FIXED", "POLL_ADD", "POLL_REMOVE",
    "SYNC_FILE_RANGE", "SENDMSG", "RECVMSG", "TIMEOUT", "TIMEOUT_REMOVE", "ACCEPT", "ASYNC_CANCEL",
    "LINK_TIMEOUT", "CONNECT", "FALLOCATE", "OPENAT", "CLOSE", "FILES_UPDATE", "STATX", "READ", "WRITE",
    "FADVISE", "MADVISE", "SEND", "RECV", "OPENAT2", "EPOLL_CTL", "SPLICE", "PROVIDE_BUFFERS",
    "REMOVE_BUFFERS", "TEE", "SHUTDOWN", "RENAMEAT", "UNLINKAT", "MKDIRAT", "SYMLINKAT", "LINKAT",
    "MSG_RING", "FSETXATTR", "SETXATTR", "FGETXATTR", "GETXATTR", "SOCKET", "URING_CMD", "SEND_ZC",
    "SENDMSG_ZC", "READ_MULTISHOT", "WAITID", "FUTEX_WAIT", "FUTEX_WAKE", "FUTEX_WAITV",
    "FIXED_FD_INSTALL", "FTRUNCATE", "BIND", "LISTEN", "RECV_ZC", "EPOLL_WAIT", "READV_FIXED",
    "WRITEV_FIXED", "PIPE", "NOP128", "URING_CMD128",
};
constexpr int kKnownOpcodes = int(sizeof(kOpcodeNames) / sizeof(kOpcodeNames[0]));

// IORING_FEAT_* bit -> name (bit n = 1 << n).
const char* const kFeatureNames[] = {
    "SINGLE_MMAP", "NODROP", "SUBMIT_STABLE", "RW_CUR_POS", "CUR_PERSONALITY", "FAST_POLL",
    "POLL_32BITS", "SQPOLL_NONFIXED", "EXT_ARG", "NATIVE_WORKERS", "RSRC_TAGS", "CQE_SKIP",
    "LINKED_FILE", "REG_REG_RING", "RECVSEND_BUNDLE", "MIN_TIMEOUT", "RW_ATTR", "NO_IOWAIT",
};

struct SetupTrial {
    const char* name;
    unsigned flags;  // tried together with what they depend on
};
// Flags that need a partner are tried with it (TASKRUN_FLAG needs a task-run
// mode, DEFER_TASKRUN needs SINGLE_ISSUER, SQ_AFF needs SQPOLL, ...).
const SetupTrial kSetupTrials[] = {
    {"IOPOLL", IORING_SETUP_IOPOLL},
    {"SQPOLL", IORING_SETUP_SQPOLL},
    {"SQ_AFF", IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF},
    {"CQSIZE", IORING_SETUP_CQSIZE},
    {"CLAMP", IORING_SETUP_CLAMP},
    {"R_DISABLED", IORING_SETUP_R_DISABLED},
    {"SUBMIT_ALL", IORING_SETUP_SUBMIT_ALL},
    {"COOP_TASKRUN", IORING_SETUP_COOP_TASKRUN},
    {"TASKRUN_FLAG", IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG},
    {"SQE128", IORING_SETUP_SQE128},
    {"CQE32", IORING_SETUP_CQE32},
    {"SINGLE_ISSUER", IORING_SETUP_SINGLE_ISSUER},
    {"DEFER_TASKRUN", IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN},
    {"NO_SQARRAY", IORING_SETUP_NO_SQARRAY},
    {"HYBRID_IOPOLL", IORING_SETUP_IOPOLL | IORING_SETUP_HYBRID_IOPOLL},
};

std::vector<std::pair<std::string, std::function<CapabilityEvidence(const Probe&)>>>& capability_probes() {
    static std::vector<std::pair<std::string, std::function<CapabilityEvidence(const Probe&)>>> probes;
    return probes;
}

constexpr const char* kUntried = "not tried: ";

std::string try_setup(unsigned flags) {
    io_uring ring{};
    io_uring_params params{};
    params.flags = flags;
    params.cq_entries = 16;  // used only with CQSIZE
    int ret = io_uring_queue_init_params(4, &ring, &params);
    if (ret < 0) return errno_name(ret);
    io_uring_queue_exit(&ring);
    return "ok";
}

std::optional<int> read_sysctl(const char* path) {
    std::ifstream in(path);
    int value = 0;
    if (!(in >> value)) return std::nullopt;
    return value;
}

// The runtime liburing is the shared object we were loaded with; its file
// name carries the version (liburing.so.2.3). Static builds link the
// compile-time version.
std::string runtime_liburing_version() {
    std::string found;
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* out) {
            const char* name = info->dlpi_name;
            if (name && std::strstr(name, "liburing.so")) {
                char resolved[PATH_MAX];
                std::string path = realpath(name, resolved) ? resolved : name;
                auto pos = path.rfind(".so.");
                *static_cast<std::string*>(out) = pos == std::string::npos ? path : path.substr(pos + 4);
                return 1;
            }
            return 0;
        },
        &found);
    return found.empty() ? std::string(UC_LIBURING_VERSION) + " (static)" : found;
}

// Registers a 2-entry buffer ring with `flags`; returns the register result.
int try_buf_ring(io_uring* ring, unsigned short flags) {
    size_t size = 2 * sizeof(io_uring_buf);
    void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) return -errno;
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(mem);
    reg.ring_entries = 2;
    reg.bgid = 7;
    compat::set_buf_reg_flags(reg, flags);
    int ret = io_uring_register_buf_ring(ring, &reg, 0);
    if (ret == 0) io_uring_unregister_buf_ring(ring, 7);
    munmap(mem, size);
    return ret;
}

}  // namespace

std::string opcode_name(int opcode) {
    if (opcode >= 0 && opcode < kKnownOpcodes) return kOpcodeNames[opcode];
    return "OP_" + std::to_string(opcode);
}

bool Probe::has_op(int opcode) const {
    return opcode >= 0 && size_t(opcode) < opcodes.size() && opcodes[size_t(opcode)];
}

bool Probe::setup_accepted(const std::string& flag_name) const {
    auto it = setup_flags.find(flag_name);
    return it != setup_flags.end() && it->second == "ok";
}

bool Probe::capability(const std::string& name) const {
    auto it = capabilities.find(name);
    return it != capabilities.end() && it->second;
}

std::optional<std::string> Probe::capability_missing(const std::string& name) const {
    if (capability(name)) return std::nullopt;
    auto it = capability_evidence.find(name);
    if (it == capability_evidence.end()) return "kernel lacks " + name + ": not probed";
    const CapabilityEvidence& e = it->second;
    if (e.answer.rfind(kUntried, 0) == 0)
        return "cannot tell whether the kernel has " + name + ": " + e.tried + " " + e.answer + " (probe)";
    return "kernel lacks " + name + ": " + e.tried + " -> " + e.answer + " (probe)";
}

std::optional<std::string> Probe::setup_refused(unsigned flags) const {
    for (const SetupTrial& trial : kSetupTrials) {
        // A trial made with a partner flag (SQ_AFF with SQPOLL) decides only
        // for rings that ask for the partner too.
        if ((flags & trial.flags) != trial.flags) continue;
        auto it = setup_flags.find(trial.name);
        if (it != setup_flags.end() && it->second != "ok")
            return "io_uring_setup refused IORING_SETUP_" + std::string(trial.name) + ": " + it->second + " (probe)";
    }
    return std::nullopt;
}

CapabilityProbe::CapabilityProbe(std::string name, std::function<CapabilityEvidence(const Probe&)> fn) {
    capability_probes().emplace_back(std::move(name), std::move(fn));
}

std::string SqeAnswer::text() const {
    if (!res) return str("pending after ", waited_ms, " ms");
    return *res < 0 ? "-" + errno_name(*res) : str("res ", *res);
}

bool SqeAnswer::refused() const { return res && (*res == -EINVAL || *res == -EOPNOTSUPP); }

CapabilityEvidence answered(std::string tried, const SqeAnswer& answer) {
    return {std::move(tried), answer.text(), !answer.refused()};
}

CapabilityEvidence answered(std::string tried, int res) { return answered(std::move(tried), SqeAnswer{res}); }

CapabilityEvidence absent(std::string tried, std::string answer) { return {std::move(tried), std::move(answer), false}; }

CapabilityEvidence untried(std::string tried, std::string host_failure) {
    return {std::move(tried), kUntried + std::move(host_failure), false};
}

std::optional<CapabilityEvidence> lacks_op(const Probe& probe, int opcode) {
    if (probe.has_op(opcode)) return std::nullopt;
    return absent("IORING_REGISTER_PROBE", "IORING_OP_" + opcode_name(opcode) + " not supported");
}

SqeAnswer probe_one_sqe(const std::function<void(io_uring*, io_uring_sqe*)>& prep, unsigned timeout_ms) {
    io_uring ring{};
    if (int ret = io_uring_queue_init(8, &ring, 0); ret < 0) return {ret};
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    prep(&ring, sqe);
    sqe->user_data = 1;
    SqeAnswer answer{std::nullopt, timeout_ms};
    if (int submitted = io_uring_submit(&ring); submitted < 1) {
        answer.res = submitted < 0 ? submitted : -EAGAIN;
    } else {
        __kernel_timespec ts{0, (long long)timeout_ms * 1'000'000};
        io_uring_cqe* cqe = nullptr;
        // Skip CQEs of helper requests the prep may have queued (user_data != 1).
        while (io_uring_wait_cqe_timeout(&ring, &cqe, &ts) == 0) {
            bool ours = cqe->user_data == 1;
            if (ours) answer.res = cqe->res;
            io_uring_cqe_seen(&ring, cqe);
            if (ours) break;
        }
    }
    io_uring_queue_exit(&ring);  // ring exit cancels whatever is still pending
    return answer;
}

Probe run_probe() {
    Probe p;
    utsname uts{};
    uname(&uts);
    p.kernel_release = uts.release;
    p.kernel_version = uts.version;
    p.machine = uts.machine;
    p.liburing_compile = UC_LIBURING_VERSION;
    p.liburing_runtime = runtime_liburing_version();
    p.io_uring_disabled = read_sysctl("/proc/sys/kernel/io_uring_disabled");
    p.io_uring_group = read_sysctl("/proc/sys/kernel/io_uring_group");
    p.uid = getuid();
    rlimit lim{};
    if (getrlimit(RLIMIT_MEMLOCK, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) p.memlock_kib = lim.rlim_cur / 1024;

    io_uring ring{};
    io_uring_params params{};
    int ret = io_uring_queue_init_params(8, &ring, &params);
    if (ret < 0) {
        p.unusable_reason = "io_uring_setup failed: " + errno_name(ret);
        if (ret == -ENOSYS) p.unusable_reason += " (kernel built without io_uring)";
        if (p.io_uring_disabled && *p.io_uring_disabled != 0)
            p.unusable_reason += str(" (kernel.io_uring_disabled=", *p.io_uring_disabled, ")");
        return p;
    }
    p.usable = true;
    p.features = params.features;

    // io_uring_register(IORING_REGISTER_PROBE) with room for every possible opcode.
    constexpr unsigned kMaxOps = 256;
    std::unique_ptr<char[]> storage(new char[sizeof(io_uring_probe) + kMaxOps * sizeof(io_uring_probe_op)]());
    auto* probe = reinterpret_cast<io_uring_probe*>(storage.get());
    if (io_uring_register_probe(&ring, probe, kMaxOps) == 0) {
        p.opcodes.assign(probe->ops_len, false);
        for (unsigned i = 0; i < probe->ops_len; ++i)
            p.opcodes[i] = probe->ops[i].flags & IO_URING_OP_SUPPORTED;
    }
    // A register that fails otherwise (-ENOMEM under a small RLIMIT_MEMLOCK)
    // is not a refusal: the scenarios run and their own registration says why.
    auto refused = [](int res) { return res == -EINVAL || res == -EOPNOTSUPP; };
    int ring_res = try_buf_ring(&ring, 0);
    p.buf_ring = !refused(ring_res);
    p.buf_ring_answer = ring_res == 0 ? "ok" : errno_name(-ring_res);
    if (p.buf_ring) {
        int inc_res = try_buf_ring(&ring, IOU_PBUF_RING_INC);
        p.buf_ring_inc = !refused(inc_res);
        p.buf_ring_inc_answer = inc_res == 0 ? "ok" : errno_name(-inc_res);
    }
    io_uring_queue_exit(&ring);

    for (const SetupTrial& trial : kSetupTrials) p.setup_flags[trial.name] = try_setup(trial.flags);
    for (auto& [name, fn] : capability_probes()) {
        CapabilityEvidence evidence = fn(p);
        p.capabilities[name] = evidence.present;
        p.capability_evidence[name] = std::move(evidence);
    }
    return p;
}

nlohmann::ordered_json Probe::to_json() const {
    nlohmann::ordered_json j;
    j["io_uring"] = {{"usable", usable}, {"reason", unusable_reason}};
    auto ops = nlohmann::json::array();
    for (size_t i = 0; i < opcodes.size(); ++i)
        if (opcodes[i]) ops.push_back(opcode_name(int(i)));
    j["opcodes"] = ops;
    auto feats = nlohmann::json::array();
    for (unsigned bit = 0; bit < 32; ++bit)
        if (features & (1u << bit))
            feats.push_back(bit < sizeof(kFeatureNames) / sizeof(kFeatureNames[0]) ? std::string(kFeatureNames[bit])
                                                                                    : "BIT_" + std::to_string(bit));
    j["features"] = feats;
    j["setup_flags"] = setup_flags;
    j["buf_ring"] = {{"ring", buf_ring}, {"incremental", buf_ring_inc},
                     {"ring_answer", buf_ring_answer}, {"incremental_answer", buf_ring_inc_answer}};
    j["capabilities"] = capabilities;
    nlohmann::ordered_json evidence = nlohmann::ordered_json::object();
    for (const auto& [name, e] : capability_evidence)
        evidence[name] = {{"tried", e.tried}, {"answer", e.answer}, {"present", e.present}};
    j["capability_evidence"] = evidence;
    nlohmann::ordered_json sysctl;
    sysctl["io_uring_disabled"] = io_uring_disabled ? nlohmann::json(*io_uring_disabled) : nlohmann::json(nullptr);
    sysctl["io_uring_group"] = io_uring_group ? nlohmann::json(*io_uring_group) : nlohmann::json(nullptr);
    j["sysctl"] = sysctl;
    j["memlock_kib"] = memlock_kib ? nlohmann::json(*memlock_kib) : nlohmann::json(nullptr);
    j["uid"] = uid;
    return j;
}

}  // namespace uc
