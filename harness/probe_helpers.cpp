#include "probe_helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace uc {

void ProbeBufRing::register_on(io_uring* ring, uint16_t bgid) {
    if (core_.register_on(ring, bgid, 0) != 0) return;
    for (unsigned bid = 0; bid < core_.entries(); ++bid) core_.provide(bid, core_.buf_len());
}

Fd listening_loopback_socket() {
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!fd || bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 || listen(fd.get(), 1) < 0) {
        int err = errno;
        fd.reset();
        errno = err;
    }
    return fd;
}

}  // namespace uc
