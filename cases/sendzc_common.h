// Pieces shared by the sendzc family's files (sendzc.cpp, sendzc_bundle.cpp):
// page-aligned memory, the pattern() stream receivers that check what the
// sender wrote byte by byte, and the send probe on a self-connected UDP socket.
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace sendzc_family {

inline const uc::Family sendzc{"sendzc"};

using namespace uc;

constexpr uint16_t kGroup = 1;             // provided-buffer group of the send-from-buffers scenarios
constexpr uint64_t kQuietNs = 20'000'000;  // "nothing more comes": 20 ms without a CQE
constexpr uint64_t kDatagramWaitNs = 2'000'000'000;

// Anonymous page-aligned memory: registered buffers and buffer rings pin whole pages.
class Mapping {
  public:
    explicit Mapping(size_t len) : len_((len + 4095) & ~size_t(4095)) {
        void* mem = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        data_ = mem == MAP_FAILED ? nullptr : static_cast<uint8_t*>(mem);
        error_ = data_ ? 0 : errno;
    }
    ~Mapping() {
        if (data_) munmap(data_, len_);
    }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    uint8_t* data() const { return data_; }
    size_t size() const { return len_; }
    int error() const { return error_; }

  private:
    size_t len_;
    uint8_t* data_;
    int error_;
};

inline Mapping& checked(Ctx& ctx, Mapping& mapping) {
    if (!mapping.data()) ctx.error(str("mmap(", mapping.size(), " bytes): ", errno_name(mapping.error())));
    return mapping;
}

inline void fill_pattern(uint8_t* dst, size_t len, uint64_t offset) {
    for (size_t i = 0; i < len; ++i) dst[i] = pattern_byte(offset + i);
}

// Changes every byte: a kernel still reading the buffer would put other bytes on the wire.
inline void overwrite(uint8_t* dst, size_t len) {
    for (size_t i = 0; i < len; ++i) dst[i] ^= 0xff;
}

// A UDP socket on 127.0.0.1 connected to itself: what a probe sends lands in its own queue.
inline int self_connected_udp() {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0 ||
        connect(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

// Tries one send SQE on a scratch ring against a self-connected UDP socket;
// `prep` may register buffers on that ring. -EINVAL / -EOPNOTSUPP for the
// probed flag mean the kernel does not know it; any other answer (the byte
// sent, or an error of the send itself) means it took the flag.
inline CapabilityEvidence probe_send(const std::string& tried,
                                     const std::function<void(io_uring*, io_uring_sqe*, int fd, uint8_t* byte)>& prep) {
    int fd = self_connected_udp();
    if (fd < 0) return untried(tried, "self-connected UDP socket: " + errno_name(errno));
    Mapping page(4096);
    if (!page.data()) {
        close(fd);
        return untried(tried, "mmap: " + errno_name(page.error()));
    }
    // The byte sits mid-page so that a buffer ring can use the page's start.
    SqeAnswer answer = probe_one_sqe([&](io_uring* ring, io_uring_sqe* sqe) { prep(ring, sqe, fd, page.data() + 2048); });
    close(fd);
    return answered(tried, answer);
}

// Reads a TCP pattern() stream on its own thread, never past the byte budget
// the scenario allows: bytes past it wait in the socket (to be read after the
// sender overwrote its buffer), bytes within it are drained at once (a send
// bigger than the socket buffers completes only while the peer reads).
class StreamReader {
  public:
    explicit StreamReader(int fd) : fd_(fd), thread_([this](std::stop_token stop) { run(stop); }) {}

    void allow(uint64_t total) { allowed_.store(total); }
    uint64_t received() const { return received_.load(); }

    // Waits until `total` bytes arrived: a fail if the stream ends first, a
    // hang once the scenario deadline passes.
    void wait_for(Ctx& ctx, uint64_t total) {
        allow(std::max(total, allowed_.load()));
        while (received_.load() < total) {
            if (ended_.load())
                ctx.must(Check::fail(str("the stream ended after ", received_.load(), " of ", total, " bytes")));
            if (now_ns() >= ctx.deadline_ns())
                ctx.hang(str("receiver got ", received_.load(), " of ", total, " stream bytes"));
            std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
    }

    // The stream so far is exactly the `total` bytes the buffers held at submit.
    Check stream_intact(uint64_t total) const {
        if (int64_t bad = mismatch_.load(); bad >= 0)
            return Check::fail(str("received stream byte ", bad, " differs from the buffer's content at submit "
                                   "(changed after the notification, reordered or lost)"));
        if (received_.load() != total)
            return Check::fail(str("receiver got ", received_.load(), " bytes, ", total, " were sent"));
        char extra;
        if (recv(fd_, &extra, 1, MSG_PEEK | MSG_DONTWAIT) > 0)
            return Check::fail(str("more than the ", total, " bytes sent are waiting in the receiving socket"));
        return Check::pass();
    }

  private:
    void run(const std::stop_token& stop) {
        std::vector<uint8_t> buf(256 * 1024);
        while (!stop.stop_requested()) {
            uint64_t budget = allowed_.load() - received_.load();
            pollfd pfd{fd_, POLLIN, 0};
            if (budget == 0 || poll(&pfd, 1, 5) <= 0) {
                if (budget == 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
                continue;
            }
            ssize_t n = recv(fd_, buf.data(), std::min<uint64_t>(budget, buf.size()), MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (n <= 0) break;
            uint64_t at = received_.load();
            for (ssize_t i = 0; i < n && mismatch_.load() < 0; ++i)
                if (buf[size_t(i)] != pattern_byte(at + uint64_t(i))) mismatch_.store(int64_t(at) + i);
            received_.store(at + uint64_t(n));
        }
        ended_.store(!stop.stop_requested());
    }

    int fd_;
    std::atomic<uint64_t> allowed_{0}, received_{0};
    std::atomic<int64_t> mismatch_{-1};
    std::atomic<bool> ended_{false};  // EOF or a socket error before the scenario was done
    std::jthread thread_;  // last: starts once the members it uses exist
};

// Receives one datagram and checks it is the `len` pattern() bytes at `offset`.
inline Check receive_datagram(int fd, uint64_t offset, size_t len) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, int(kDatagramWaitNs / 1'000'000)) <= 0)
        return Check::fail(str("sent datagram of ", len, " bytes did not arrive within 2 s"));
    std::vector<uint8_t> buf(len + 1);
    ssize_t n = recv(fd, buf.data(), buf.size(), MSG_TRUNC | MSG_DONTWAIT);
    if (n != ssize_t(len)) return Check::fail(str("datagram of ", n, " bytes, sent ", len));
    for (size_t i = 0; i < len; ++i)
        if (buf[i] != pattern_byte(offset + i))
            return Check::fail(str("datagram byte ", i, " of ", len, " differs from the buffer's content at submit "
                                   "(changed after the notification?)"));
    return Check::pass();
}

}  // namespace sendzc_family
