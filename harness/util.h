// Small helpers shared by the harness and the scenarios.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <utility>

namespace uc {

// "ENOBUFS" for 105 or -105; "E<n>" for numbers without a name.
std::string errno_name(int err);
// A CQE res rendered for people: "-ENOBUFS" for negative values, the number otherwise.
std::string res_text(int res);
// "MORE|BUFFER(id=3)" for a CQE flags word.
std::string cqe_flag_names(uint32_t flags);

uint64_t now_ns();  // CLOCK_MONOTONIC

// Owns a file descriptor; closes it once.
class Fd {
  public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd& operator=(Fd&& other) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    void reset(int fd = -1);
    int release() { return std::exchange(fd_, -1); }

  private:
    int fd_ = -1;
};

// Concatenate anything streamable: str("res=", res, " flags=", flags).
template <typename... Args>
std::string str(const Args&... args) {
    std::ostringstream out;
    (out << ... << args);
    return out.str();
}

}  // namespace uc
