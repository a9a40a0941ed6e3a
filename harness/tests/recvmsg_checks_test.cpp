// The multishot recvmsg buffer checker fed synthetic buffers: a faithful
// layout passes (whole, truncated payload, truncated name, truncated
// control); each broken field or byte is caught and named.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

#include "compat/uapi.h"
#include "recvmsg_checks.h"

namespace {

using uc::Cqe;
using uc::RecvmsgLayout;
using uc::SentDatagram;

constexpr uint64_t kRecv = 7;

SentDatagram datagram(size_t payload_len, bool with_cmsg = true) {
    SentDatagram sent;
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_port = htons(4242);
    from.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sent.name.assign(reinterpret_cast<const char*>(&from), sizeof(from));
    for (size_t i = 0; i < payload_len; ++i) sent.payload.push_back(char('a' + i % 26));
    if (with_cmsg) sent.cmsg = uc::ExpectedCmsg{IPPROTO_IP, IP_PKTINFO, std::string(12, '\x05')};
    return sent;
}

// What a correct kernel writes: header, name prefix, control (or MSG_CTRUNC), payload prefix.
struct Filled {
    std::vector<uint8_t> buf;
    Cqe cqe;
};
Filled fill(const RecvmsgLayout& layout, const SentDatagram& sent) {
    Filled f{std::vector<uint8_t>(layout.buf_len, 0xee), {kRecv, 0, IORING_CQE_F_MORE | IORING_CQE_F_BUFFER, 0, 0}};
    size_t header = 16 + layout.namelen + layout.controllen;
    size_t room = layout.buf_len - header, fits = std::min(room, sent.payload.size());
    uint32_t flags = sent.payload.size() > room ? MSG_TRUNC : 0, controllen = 0;
    std::memcpy(f.buf.data() + 16, sent.name.data(), std::min<size_t>(layout.namelen, sent.name.size()));
    if (sent.cmsg) {
        size_t need = CMSG_LEN(sent.cmsg->data.size());
        if (layout.controllen < need) {
            flags |= MSG_CTRUNC;
        } else {
            cmsghdr h{};
            h.cmsg_len = need;
            h.cmsg_level = sent.cmsg->level;
            h.cmsg_type = sent.cmsg->type;
            uint8_t* control = f.buf.data() + 16 + layout.namelen;
            std::memcpy(control, &h, sizeof(h));
            std::memcpy(control + CMSG_LEN(0), sent.cmsg->data.data(), sent.cmsg->data.size());
            controllen = uint32_t(std::min<size_t>(CMSG_SPACE(sent.cmsg->data.size()), layout.controllen));
        }
    }
    std::memcpy(f.buf.data() + header, sent.payload.data(), fits);
    uint32_t out[4] = {uint32_t(sent.name.size()), controllen, uint32_t(fits), flags};
    std::memcpy(f.buf.data(), out, sizeof(out));
    f.cqe.res = int32_t(header + fits);
    return f;
}

uc::Check run(const Filled& f, const RecvmsgLayout& layout, const SentDatagram& sent) {
    return uc::recvmsg_out_matches(f.cqe, f.buf.data(), layout, sent);
}

void set_out_field(Filled& f, int index, uint32_t value) { std::memcpy(f.buf.data() + 4 * index, &value, 4); }

void expect_rejected(const uc::Check& check, const std::string& words) {
    EXPECT_FALSE(check.ok);
    EXPECT_NE(check.rule.find(words), std::string::npos) << check.rule;
    EXPECT_TRUE(check.offending.has_value()) << check.rule;
}

const RecvmsgLayout kRoomy{sizeof(sockaddr_in), 64, 512};

TEST(RecvmsgOut, AcceptsFaithfulLayout) {
    SentDatagram sent = datagram(100);
    EXPECT_TRUE(run(fill(kRoomy, sent), kRoomy, sent).ok) << run(fill(kRoomy, sent), kRoomy, sent).describe();
}

TEST(RecvmsgOut, AcceptsTruncatedPayloadWithMsgTrunc) {
    SentDatagram sent = datagram(1000);
    EXPECT_TRUE(run(fill(kRoomy, sent), kRoomy, sent).ok);
}

TEST(RecvmsgOut, AcceptsTruncatedNameWithFullNamelen) {
    RecvmsgLayout layout{4, 64, 512};
    SentDatagram sent = datagram(10);
    EXPECT_TRUE(run(fill(layout, sent), layout, sent).ok);
}

TEST(RecvmsgOut, AcceptsTruncatedControlWithMsgCtrunc) {
    RecvmsgLayout layout{sizeof(sockaddr_in), 16, 512};
    SentDatagram sent = datagram(10);
    EXPECT_TRUE(run(fill(layout, sent), layout, sent).ok);
}

TEST(RecvmsgOut, AcceptsNoControlRequested) {
    RecvmsgLayout layout{sizeof(sockaddr_in), 0, 256};
    SentDatagram sent = datagram(10, false);
    EXPECT_TRUE(run(fill(layout, sent), layout, sent).ok);
}

TEST(RecvmsgOut, CatchesResShorterThanHeader) {
    SentDatagram sent = datagram(10);
    Filled f = fill(kRoomy, sent);
    f.cqe.res = 20;
    expect_rejected(run(f, kRoomy, sent), "does not cover");
}

TEST(RecvmsgOut, CatchesErrorRes) {
    SentDatagram sent = datagram(10);
    Filled f = fill(kRoomy, sent);
    f.cqe.res = -ENOBUFS;
    expect_rejected(run(f, kRoomy, sent), "does not cover");
}

TEST(RecvmsgOut, CatchesResBeyondBuffer) {
    SentDatagram sent = datagram(10);
    Filled f = fill(kRoomy, sent);
    f.cqe.res = int32_t(kRoomy.buf_len + 1);
    expect_rejected(run(f, kRoomy, sent), "exceeds the provided buffer");
}

TEST(RecvmsgOut, CatchesResDisagreeingWithPayload) {
    SentDatagram sent = datagram(10);
    Filled f = fill(kRoomy, sent);
    f.cqe.res -= 1;
    expect_rejected(run(f, kRoomy, sent), "payload bytes after");
}

TEST(RecvmsgOut, CatchesTruncatedNamelen) {
    RecvmsgLayout layout{4, 64, 512};
    SentDatagram sent = datagram(10);
    Filled f = fill(layout, sent);
    set_out_field(f, 0, 4);  // the truncated length instead of the full one
    expect_rejected(run(f, layout, sent), "namelen 4");
}

TEST(RecvmsgOut, CatchesWrongNameBytes) {
    SentDatagram sent = datagram(10);
    Filled f = fill(kRoomy, sent);
    f.buf[16 + 2] ^= 0xff;  // the port
    expect_rejected(run(f, kRoomy, sent), "name area differs");
}

TEST(RecvmsgOut, CatchesMissingMsgTrunc) {
    SentDatagram sent = datagram(1000);
    Filled f = fill(kRoomy, sent);
    set_out_field(f, 3, 0);
    expect_rejected(run(f, kRoomy, sent), "no MSG_TRUNC");
}

TEST(RecvmsgOut, CatchesSpuriousMsgTrunc) {
    SentDatagram sent = datagram(10);
    Filled f = fill(kRoomy, sent);
    set_out_field(f, 3, MSG_TRUNC);
    expect_rejected(run(f, kRoomy, sent), "MSG_TRUNC although");
}

TEST(RecvmsgOut, CatchesWrongPayloadlen) {
    SentDatagram sent = datagram(1000);
    Filled f = fill(kRoomy, sent);
    set_out_field(f, 2, 1000);  // the datagram's length, not what was copied
    expect_rejected(run(f, kRoomy, sent), "payloadlen 1000");
}

TEST(RecvmsgOut, CatchesCorruptPayload) {
    SentDatagram sent = datagram(100);
    Filled f = fill(kRoomy, sent);
    f.buf[16 + kRoomy.namelen + kRoomy.controllen + 50] = '!';
    expect_rejected(run(f, kRoomy, sent), "byte 50");
}

TEST(RecvmsgOut, CatchesMissingMsgCtrunc) {
    RecvmsgLayout layout{sizeof(sockaddr_in), 16, 512};
    SentDatagram sent = datagram(10);
    Filled f = fill(layout, sent);
    set_out_field(f, 3, 0);
    expect_rejected(run(f, layout, sent), "no MSG_CTRUNC");
}

TEST(RecvmsgOut, CatchesSpuriousMsgCtrunc) {
    SentDatagram sent = datagram(10);
    Filled f = fill(kRoomy, sent);
    set_out_field(f, 3, MSG_CTRUNC);
    expect_rejected(run(f, kRoomy, sent), "MSG_CTRUNC although");
}

TEST(RecvmsgOut, CatchesControllenBeyondReserved) {
    SentDatagram sent = datagram(10);
    Filled f = fill(kRoomy, sent);
    set_out_field(f, 1, kRoomy.controllen + 8);
    expect_rejected(run(f, kRoomy, sent), "exceeds the msg_controllen");
}

TEST(RecvmsgOut, CatchesMissingControlMessage) {
    SentDatagram sent = datagram(10);
    Filled f = fill(kRoomy, sent);
    set_out_field(f, 1, 0);
    expect_rejected(run(f, kRoomy, sent), "shorter than the expected");
}

TEST(RecvmsgOut, CatchesWrongCmsgType) {
    SentDatagram sent = datagram(10);
    Filled f = fill(kRoomy, sent);
    cmsghdr h{};
    std::memcpy(&h, f.buf.data() + 16 + kRoomy.namelen, sizeof(h));
    h.cmsg_type = IP_TTL;
    std::memcpy(f.buf.data() + 16 + kRoomy.namelen, &h, sizeof(h));
    expect_rejected(run(f, kRoomy, sent), "first cmsg");
}

TEST(RecvmsgOut, CatchesWrongCmsgData) {
    SentDatagram sent = datagram(10);
    Filled f = fill(kRoomy, sent);
    f.buf[16 + kRoomy.namelen + CMSG_LEN(0) + 3] ^= 1;
    expect_rejected(run(f, kRoomy, sent), "cmsg data differs");
}

TEST(RecvmsgOut, CatchesControlOnSocketThatAskedForNone) {
    RecvmsgLayout layout{sizeof(sockaddr_in), 64, 256};
    SentDatagram with = datagram(10), without = datagram(10, false);
    expect_rejected(run(fill(layout, with), layout, without), "asked for none");
}

TEST(RecvmsgOut, ReadsHeaderOnlyWhenItFits) {
    uint8_t small[15] = {};
    EXPECT_FALSE(uc::read_recvmsg_out(small, sizeof(small)).has_value());
    uint8_t exact[16] = {1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0};
    auto out = uc::read_recvmsg_out(exact, sizeof(exact));
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(out->namelen, 1u);
    EXPECT_EQ(out->flags, 4u);
}

}  // namespace
