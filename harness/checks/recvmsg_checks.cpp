#include "recvmsg_checks.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "util.h"

namespace uc {

namespace {

constexpr size_t kOutSize = 4 * sizeof(uint32_t);  // struct io_uring_recvmsg_out: four __u32

// Where the first difference between `got` and `want` lies, for the rule text.
std::string first_difference(const uint8_t* got, const std::string& want) {
    for (size_t i = 0; i < want.size(); ++i)
        if (got[i] != uint8_t(want[i]))
            return str("byte ", i, " is ", unsigned(got[i]), ", sent ", unsigned(uint8_t(want[i])));
    return "equal";
}

Check check_control(const Cqe& cqe, const uint8_t* control, const RecvmsgOut& out, const RecvmsgLayout& layout,
                    const SentDatagram& sent) {
    // io_uring_recvmsg_out(3): controllen is the "Control byte count" written
    // into the control area, which io_uring_recvmsg_cmsg_firsthdr() finds
    // msg_namelen bytes after the name: it cannot exceed what was reserved.
    if (out.controllen > layout.controllen)
        return Check::fail(str("io_uring_recvmsg_out.controllen ", out.controllen, " exceeds the msg_controllen ",
                               layout.controllen, " the request reserved"),
                           cqe);
    bool ctrunc = out.flags & MSG_CTRUNC;
    if (!sent.cmsg) {
        if (out.controllen != 0 || ctrunc)
            return Check::fail(str("control data (controllen ", out.controllen, ", MSG_CTRUNC ", ctrunc,
                                   ") on a socket that asked for none"),
                               cqe);
        return Check::pass();
    }
    const ExpectedCmsg& want = *sent.cmsg;
    size_t need = CMSG_LEN(want.data.size()), space = CMSG_SPACE(want.data.size());
    if (layout.controllen < need) {
        // recvmsg(2): "MSG_CTRUNC indicates that some control data was
        // discarded due to lack of space in the buffer for ancillary data."
        if (!ctrunc)
            return Check::fail(str("no MSG_CTRUNC although the ", need, "-byte control message did not fit in msg_controllen ",
                                   layout.controllen),
                               cqe);
        return Check::pass();
    }
    if (layout.controllen < space) return Check::pass();  // fits without its padding: either answer is recvmsg(2)'s
    if (ctrunc)
        return Check::fail(str("MSG_CTRUNC although msg_controllen ", layout.controllen, " holds the ", space,
                               "-byte control message"),
                           cqe);
    if (out.controllen < need)
        return Check::fail(str("io_uring_recvmsg_out.controllen ", out.controllen, " is shorter than the expected ", need,
                               "-byte control message"),
                           cqe);
    cmsghdr header{};
    std::memcpy(&header, control, sizeof(header));
    if (header.cmsg_len != need || header.cmsg_level != want.level || header.cmsg_type != want.type)
        return Check::fail(str("first cmsg is len ", header.cmsg_len, " level ", header.cmsg_level, " type ",
                               header.cmsg_type, ", expected len ", need, " level ", want.level, " type ", want.type),
                           cqe);
    const uint8_t* data = control + (CMSG_LEN(0));
    if (std::memcmp(data, want.data.data(), want.data.size()) != 0)
        return Check::fail("cmsg data differs from what the datagram carried: " + first_difference(data, want.data), cqe);
    return Check::pass();
}

}  // namespace

std::optional<RecvmsgOut> read_recvmsg_out(const uint8_t* buf, size_t len) {
    if (len < kOutSize) return std::nullopt;
    RecvmsgOut out;
    std::memcpy(&out.namelen, buf, 4);
    std::memcpy(&out.controllen, buf + 4, 4);
    std::memcpy(&out.payloadlen, buf + 8, 4);
    std::memcpy(&out.flags, buf + 12, 4);
    return out;
}

Check recvmsg_out_matches(const Cqe& cqe, const uint8_t* buf, const RecvmsgLayout& layout, const SentDatagram& sent) {
    size_t header = kOutSize + layout.namelen + layout.controllen;
    if (layout.buf_len < header)
        return Check::fail(str("buffer of ", layout.buf_len, " bytes cannot hold the ", header,
                               "-byte header, name and control areas"));
    // io_uring_recvmsg_out(3): io_uring_recvmsg_validate() rejects a buffer
    // shorter than the header plus both areas; res is the buffer's used length.
    if (cqe.res < 0 || size_t(cqe.res) < header)
        return Check::fail(str("res ", res_text(cqe.res), " does not cover the io_uring_recvmsg_out header and the ",
                               layout.namelen, "-byte name and ", layout.controllen, "-byte control areas (", header,
                               " bytes)"),
                           cqe);
    if (size_t(cqe.res) > layout.buf_len)
        return Check::fail(str("res ", cqe.res, " exceeds the provided buffer's ", layout.buf_len, " bytes"), cqe);
    RecvmsgOut out = *read_recvmsg_out(buf, layout.buf_len);

    // io_uring_recvmsg_out(3): namelen is the "Name byte count as would have
    // been populated by recvmsg(2)", and recvfrom(2): when the buffer is too
    // small "the returned address is truncated; in this case, addrlen will
    // return a value greater than was supplied to the call".
    if (out.namelen != sent.name.size())
        return Check::fail(str("io_uring_recvmsg_out.namelen ", out.namelen, ", the sender's address is ",
                               sent.name.size(), " bytes"),
                           cqe);
    const uint8_t* name = buf + kOutSize;
    std::string name_prefix = sent.name.substr(0, std::min<size_t>(layout.namelen, sent.name.size()));
    if (std::memcmp(name, name_prefix.data(), name_prefix.size()) != 0)
        return Check::fail("name area differs from the sender's address: " + first_difference(name, name_prefix), cqe);

    // recvmsg(2): "MSG_TRUNC indicates that the trailing portion of a datagram
    // was discarded because the datagram was larger than the buffer supplied";
    // payloadlen is the "Payload byte count as would have been returned by
    // recvmsg(2)", which without MSG_TRUNC in the call is what was copied.
    size_t room = layout.buf_len - header;
    size_t fits = std::min(room, sent.payload.size());
    bool truncated = sent.payload.size() > room;
    if (bool(out.flags & MSG_TRUNC) != truncated)
        return Check::fail(str(truncated ? "no MSG_TRUNC although the " : "MSG_TRUNC although the ", sent.payload.size(),
                               "-byte datagram ", truncated ? "exceeded" : "fit in", " the ", room,
                               "-byte payload area (flags ", out.flags, ")"),
                           cqe);
    if (out.payloadlen != fits)
        return Check::fail(str("io_uring_recvmsg_out.payloadlen ", out.payloadlen, ", expected ", fits, " (datagram ",
                               sent.payload.size(), " bytes, room ", room, ")"),
                           cqe);
    // io_uring_recvmsg_payload_length() "Calculates the usable payload
    // length": res less the header and both areas.
    if (size_t(cqe.res) - header != fits)
        return Check::fail(str("res ", cqe.res, " leaves ", size_t(cqe.res) - header, " payload bytes after the ", header,
                               "-byte header and areas, expected ", fits),
                           cqe);
    const uint8_t* payload = buf + header;
    std::string payload_prefix = sent.payload.substr(0, fits);
    if (std::memcmp(payload, payload_prefix.data(), fits) != 0)
        return Check::fail("payload differs from the datagram sent: " + first_difference(payload, payload_prefix), cqe);

    return check_control(cqe, buf + kOutSize + layout.namelen, out, layout, sent);
}

}  // namespace uc
