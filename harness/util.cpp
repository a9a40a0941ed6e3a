#include "util.h"

#include <cstdio>
#include <cstring>
#include <ctime>
#include <unistd.h>

#include "compat/uapi.h"

namespace uc {

std::string errno_name(int err) {
    if (err < 0) err = -err;
    // strerrorname_np (glibc 2.32+) gives the symbolic name.
    if (const char* name = strerrorname_np(err)) return name;
    return "E" + std::to_string(err);
}

std::string res_text(int res) {
    return res < 0 ? "-" + errno_name(res) : std::to_string(res);
}

std::string cqe_flag_names(uint32_t flags) {
    std::string out;
    auto add = [&](const std::string& name) {
        if (!out.empty()) out += '|';
        out += name;
    };
    if (flags & IORING_CQE_F_BUFFER) add("BUFFER(id=" + std::to_string(flags >> IORING_CQE_BUFFER_SHIFT) + ")");
    if (flags & IORING_CQE_F_MORE) add("MORE");
    if (flags & IORING_CQE_F_SOCK_NONEMPTY) add("SOCK_NONEMPTY");
    if (flags & IORING_CQE_F_NOTIF) add("NOTIF");
    if (flags & IORING_CQE_F_BUF_MORE) add("BUF_MORE");
    // Bits without a name (a MSG_RING flags pass-through, a newer uapi) are
    // evidence too: shown in hex, not dropped.
    uint32_t named = IORING_CQE_F_BUFFER | IORING_CQE_F_MORE | IORING_CQE_F_SOCK_NONEMPTY | IORING_CQE_F_NOTIF |
                     IORING_CQE_F_BUF_MORE;
    if (flags & IORING_CQE_F_BUFFER) named |= ~0u << IORING_CQE_BUFFER_SHIFT;
    if (uint32_t rest = flags & ~named) {
        char hex[16];
        snprintf(hex, sizeof hex, "0x%x", rest);
        add(hex);
    }
    return out.empty() ? "0" : out;
}

uint64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

Fd& Fd::operator=(Fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
}

void Fd::reset(int fd) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
}

}  // namespace uc
