#include "net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "scenario.h"

namespace uc {
namespace {

sockaddr_in loopback(uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

Fd checked_socket(Ctx& ctx, int domain, int type) {
    int fd = socket(domain, type | SOCK_CLOEXEC, 0);
    if (fd < 0) ctx.error("socket(): " + errno_name(errno));
    return Fd(fd);
}

uint16_t bound_port(Ctx& ctx, int fd) {
    sockaddr_in addr{};
    socklen_t len = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0) ctx.error("getsockname(): " + errno_name(errno));
    return ntohs(addr.sin_port);
}

}  // namespace

Listener tcp_listener(Ctx& ctx, int backlog) {
    Fd fd = checked_socket(ctx, AF_INET, SOCK_STREAM);
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr = loopback(0);
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0)
        ctx.error("bind(127.0.0.1:0): " + errno_name(errno));
    if (listen(fd.get(), backlog) < 0) ctx.error("listen(): " + errno_name(errno));
    uint16_t port = bound_port(ctx, fd.get());
    return {std::move(fd), port};
}

Fd tcp_connect(Ctx& ctx, uint16_t port) {
    Fd fd = checked_socket(ctx, AF_INET, SOCK_STREAM);
    sockaddr_in addr = loopback(port);
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0)
        ctx.error("connect(127.0.0.1): " + errno_name(errno));
    int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

SocketPair tcp_loopback(Ctx& ctx) {
    Listener listener = tcp_listener(ctx, 1);
    Fd client = tcp_connect(ctx, listener.port);
    int server = accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (server < 0) ctx.error("accept(): " + errno_name(errno));
    int one = 1;
    setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return {std::move(client), Fd(server)};
}

SocketPair unix_pair(Ctx& ctx, int type) {
    int fds[2];
    if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) < 0) ctx.error("socketpair(): " + errno_name(errno));
    return {Fd(fds[0]), Fd(fds[1])};
}

SocketPair udp_loopback(Ctx& ctx) {
    Fd a = checked_socket(ctx, AF_INET, SOCK_DGRAM);
    Fd b = checked_socket(ctx, AF_INET, SOCK_DGRAM);
    sockaddr_in any = loopback(0);
    if (bind(a.get(), reinterpret_cast<sockaddr*>(&any), sizeof(any)) < 0 ||
        bind(b.get(), reinterpret_cast<sockaddr*>(&any), sizeof(any)) < 0)
        ctx.error("bind(udp 127.0.0.1:0): " + errno_name(errno));
    sockaddr_in to_b = loopback(bound_port(ctx, b.get())), to_a = loopback(bound_port(ctx, a.get()));
    if (connect(a.get(), reinterpret_cast<sockaddr*>(&to_b), sizeof(to_b)) < 0 ||
        connect(b.get(), reinterpret_cast<sockaddr*>(&to_a), sizeof(to_a)) < 0)
        ctx.error("connect(udp): " + errno_name(errno));
    return {std::move(a), std::move(b)};
}

Pipe make_pipe(Ctx& ctx) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) ctx.error("pipe2(): " + errno_name(errno));
    return {Fd(fds[0]), Fd(fds[1])};
}

void send_all(Ctx& ctx, int fd, const void* data, size_t len) {
    const char* p = static_cast<const char*>(data);
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) ctx.error("write(): " + errno_name(errno));
        p += n;
        len -= size_t(n);
    }
}

std::string pattern(uint64_t offset, size_t len) {
    std::string out(len, '\0');
    for (size_t i = 0; i < len; ++i) out[i] = char(pattern_byte(offset + i));
    return out;
}

}  // namespace uc
