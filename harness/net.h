// Sockets for scenarios: loopback and socketpairs only. A failure here is the
// host's problem, so every helper turns it into an `error` verdict.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "util.h"

namespace uc {

class Ctx;

struct SocketPair {
    Fd client;  // the side the scenario writes to
    Fd server;  // the side under io_uring
};

// A connected TCP pair over 127.0.0.1 (ephemeral port), both blocking.
SocketPair tcp_loopback(Ctx& ctx);
// A listening TCP socket on 127.0.0.1 with its port.
struct Listener {
    Fd fd;
    uint16_t port = 0;
};
Listener tcp_listener(Ctx& ctx, int backlog = 64);
// A client connected to 127.0.0.1:port.
Fd tcp_connect(Ctx& ctx, uint16_t port);
// socketpair(AF_UNIX, type).
SocketPair unix_pair(Ctx& ctx, int type);
// Two UDP sockets on 127.0.0.1, each connected to the other.
SocketPair udp_loopback(Ctx& ctx);
// pipe2(); [0] read end, [1] write end.
struct Pipe {
    Fd read, write;
};
Pipe make_pipe(Ctx& ctx);

// Writes all of `len` bytes (blocking); an error verdict if the host refuses.
void send_all(Ctx& ctx, int fd, const void* data, size_t len);
// Deterministic payload byte for stream offset `offset` (so receivers can
// check order and content without keeping a copy).
inline uint8_t pattern_byte(uint64_t offset) { return uint8_t((offset * 131u + (offset >> 8)) & 0xff); }
std::string pattern(uint64_t offset, size_t len);

}  // namespace uc
