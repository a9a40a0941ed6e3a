// The buffer a multishot recvmsg fills (IORING_OP_RECVMSG with
// IORING_RECV_MULTISHOT), checked byte for byte against the datagram sent.
//
// io_uring_prep_recvmsg_multishot(3) prepends "a struct io_uring_recvmsg_out
// which describes the layout of the rest of the buffer in combination with
// the initial struct msghdr submitted with the request"; io_uring_recvmsg_out(3)
// defines its fields and the accessors that find, after the header, a name
// area of msg_namelen bytes, a control area of msg_controllen bytes, then the
// payload up to the CQE's res. The rules quoted in recvmsg_checks.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "checks.h"
#include "cqe.h"

namespace uc {

// What the request's struct msghdr reserved, and the provided buffer's size.
struct RecvmsgLayout {
    uint32_t namelen = 0;     // msg_namelen submitted
    uint32_t controllen = 0;  // msg_controllen submitted
    uint32_t buf_len = 0;     // length of each buffer in the group
};

// One control message the datagram is expected to carry (the first one).
struct ExpectedCmsg {
    int level = 0, type = 0;
    std::string data;  // cmsg payload bytes, CMSG_DATA() .. cmsg_len
};

// What was sent, as recvmsg(2) would report it with unlimited room.
struct SentDatagram {
    std::string name;     // the sender's address bytes (e.g. a sockaddr_in)
    std::string payload;  // the datagram's bytes
    std::optional<ExpectedCmsg> cmsg;  // nullopt: the socket asked for no ancillary data
};

// The io_uring_recvmsg_out header as read from a buffer (host byte order).
struct RecvmsgOut {
    uint32_t namelen = 0, controllen = 0, payloadlen = 0, flags = 0;
};
// The header at the start of `buf`; nullopt when `len` cannot hold it.
std::optional<RecvmsgOut> read_recvmsg_out(const uint8_t* buf, size_t len);

// Checks one multishot recvmsg CQE and the `layout.buf_len` bytes of the
// buffer it names against `sent`: res covers the header and both areas and
// ends where the payload does; namelen is the untruncated name length and the
// name area holds its prefix; payloadlen and the payload bytes are what fit,
// with MSG_TRUNC exactly when the datagram did not; the control area holds the
// expected cmsg when it fits, MSG_CTRUNC when it cannot, never more bytes
// than reserved. The first rule broken, with `cqe` as the offender.
Check recvmsg_out_matches(const Cqe& cqe, const uint8_t* buf, const RecvmsgLayout& layout, const SentDatagram& sent);

}  // namespace uc
