// IORING_OP_MSG_RING as a CQE source between rings of different setup modes:
// data messages (io_uring_prep_msg_ring(3)), with CQE flags passed through
// (io_uring_prep_msg_ring_cqe_flags(3)), fixed files passed into a chosen or
// an allocated slot (io_uring_prep_msg_ring_fd(3)), and messages landing on a
// ring beside a live multishot poll or recv.
//
// Every multishot request is judged by multishot_contract(): all its CQEs
// but the last carry IORING_CQE_F_MORE, exactly one final CQE lacks it, and
// nothing for the request follows it (io_uring_multishot(7)).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <iterator>
#include <set>

#include "bufring.h"
#include "multishot_common.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;
using namespace uc::multishots;
const Family& multishot = multishots::family;

constexpr uint64_t kFixedWrite = 4;        // writes through a passed fixed file (kFixedWrite + slot)
constexpr uint64_t kSendBase = 100;        // the sender's MSG_RING requests
constexpr uint64_t kMsgBase = 0x6d736700;  // user_data the messages carry to the target ("msg\0")

// --- messages prepared by hand (liburing 2.3 lacks these helpers) ---

// io_uring_prep_msg_ring_fd(3) (liburing 2.4+): IORING_MSG_SEND_FD in addr,
// the sender's fixed-file slot in addr3, the target slot in file_index.
void prep_msg_ring_fd(io_uring_sqe* sqe, int target_ring_fd, unsigned source_slot, unsigned target_slot, uint64_t data) {
    io_uring_prep_rw(IORING_OP_MSG_RING, sqe, target_ring_fd, reinterpret_cast<void*>(uintptr_t(IORING_MSG_SEND_FD)), 0, data);
    sqe->addr3 = source_slot;
    __io_uring_set_target_fixed_file(sqe, target_slot);
    sqe->msg_ring_flags = 0;
}

// io_uring_prep_msg_ring_fd_alloc(3) (liburing 2.4+): file_index is
// IORING_FILE_INDEX_ALLOC itself, not a slot + 1 (__io_fixed_fd_install()
// in io_uring/filetable.c tests for it before undoing the + 1).
void prep_msg_ring_fd_alloc(io_uring_sqe* sqe, int target_ring_fd, unsigned source_slot, uint64_t data) {
    prep_msg_ring_fd(sqe, target_ring_fd, source_slot, 0, data);
    sqe->file_index = IORING_FILE_INDEX_ALLOC;
}

// io_uring_prep_msg_ring_cqe_flags(3) (liburing 2.4+):
// IORING_MSG_RING_FLAGS_PASS in msg_ring_flags, the target CQE's flags in file_index.
void prep_msg_ring_cqe_flags(io_uring_sqe* sqe, int target_ring_fd, uint32_t len, uint64_t data, uint32_t cqe_flags) {
    io_uring_prep_rw(IORING_OP_MSG_RING, sqe, target_ring_fd, nullptr, len, data);
    sqe->msg_ring_flags = IORING_MSG_RING_FLAGS_PASS;
    sqe->file_index = cqe_flags;
}

// --- capability probes ---

// A second ring for a probe to send to, torn down with the probe.
struct ProbeTarget {
    io_uring ring{};
    int init = io_uring_queue_init(4, &ring, 0);
    ~ProbeTarget() {
        if (init == 0) io_uring_queue_exit(&ring);
    }
};

// msg_ring refuses an unknown command, flag or field with -EINVAL
// (io_msg_ring_prep(), io_msg_ring_data() in io_uring/msg_ring.c): that
// answer alone is absence.
CapabilityEvidence present_unless_einval(std::string tried, const SqeAnswer& answer) {
    return {std::move(tried), answer.text(), answer.res != -EINVAL};
}

// Sends the write end of a fresh pipe, registered as the probing ring's slot
// 0, to a second ring with a one-slot sparse table; `prep` fills the MSG_RING
// SQE for the second ring's fd, `judge` reads the answer.
CapabilityEvidence probe_fd_message(const std::string& tried, const std::function<void(io_uring_sqe*, int)>& prep,
                                    const std::function<CapabilityEvidence(std::string, const SqeAnswer&)>& judge) {
    ProbeTarget target;
    if (target.init < 0) return untried(tried, "io_uring_queue_init: " + errno_name(target.init));
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return untried(tried, "pipe2: " + errno_name(errno));
    CapabilityEvidence evidence;
    if (int ret = io_uring_register_files_sparse(&target.ring, 1); ret < 0) {
        evidence = absent(tried, "sparse file table refused: " + errno_name(ret));
    } else {
        evidence = judge(tried, probe_one_sqe([&](io_uring* ring, io_uring_sqe* sqe) {
                             io_uring_register_files(ring, &fds[1], 1);
                             prep(sqe, target.ring.ring_fd);
                         }));
    }
    close(fds[0]);
    close(fds[1]);
    return evidence;
}

// IORING_MSG_SEND_FD arrived in 6.0, after MSG_RING itself (5.18); a kernel
// without it answers -EINVAL for the unknown command in addr.
const CapabilityProbe msg_ring_fd_probe{"msg_ring_fd", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_MSG_RING)) return *missing;
    return probe_fd_message(
        "IORING_OP_MSG_RING with IORING_MSG_SEND_FD of a registered pipe into slot 0 of another ring",
        [](io_uring_sqe* sqe, int target_fd) { prep_msg_ring_fd(sqe, target_fd, 0, 0, 0x5eed); },
        [](std::string tried, const SqeAnswer& answer) { return answered(std::move(tried), answer); });
}};

// IORING_FILE_INDEX_ALLOC as the target of IORING_MSG_SEND_FD: since
// e6130eba8a84 (6.0) io_msg_send_fd() installs through
// __io_fixed_fd_install(), which allocates for that index (io_uring/msg_ring.c,
// io_uring/filetable.c), so 6.1 is expected to have it; whether this kernel
// does is asked, and only -EINVAL is absence.
const CapabilityProbe msg_ring_fd_alloc_probe{"msg_ring_fd_alloc", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_MSG_RING)) return *missing;
    return probe_fd_message(
        "IORING_OP_MSG_RING with IORING_MSG_SEND_FD of a registered pipe into IORING_FILE_INDEX_ALLOC of another "
        "ring's one-slot sparse table",
        [](io_uring_sqe* sqe, int target_fd) { prep_msg_ring_fd_alloc(sqe, target_fd, 0, 0x5eed); }, present_unless_einval);
}};

// IORING_MSG_RING_FLAGS_PASS arrived in 6.3 ("io_uring/msg_ring: Pass custom
// flags to the cqe"); before it io_msg_ring_prep() answers -EINVAL to any
// msg_ring_flags bit but IORING_MSG_RING_CQE_SKIP (6.1 io_uring/msg_ring.c).
const CapabilityProbe msg_ring_flags_pass_probe{"msg_ring_flags_pass", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_MSG_RING)) return *missing;
    std::string tried = "IORING_OP_MSG_RING data message with IORING_MSG_RING_FLAGS_PASS and CQE flags 0x100 to another ring";
    ProbeTarget target;
    if (target.init < 0) return untried(tried, "io_uring_queue_init: " + errno_name(target.init));
    return present_unless_einval(tried, probe_one_sqe([&](io_uring*, io_uring_sqe* sqe) {
                                     prep_msg_ring_cqe_flags(sqe, target.ring.ring_fd, 0, 0x5eed, 0x100);
                                 }));
}};

// --- grids and checks shared by the scenarios ---

struct MsgParams {
    Setup setup;   // the sender
    Setup target;  // the ring the messages land on
};
const auto kSenderTarget = grid(setups(&MsgParams::setup, {Setup::none, Setup::defer_taskrun, Setup::sqpoll}),
                                axis("target", &MsgParams::target, kRingModes));
// Passing a file runs the same sender-to-target paths as data, so a sender
// that issues from its own thread (SQPOLL) or not (none) covers it.
const auto kFdSenderTarget = grid(setups(&MsgParams::setup, {Setup::none, Setup::sqpoll}),
                                  axis("target", &MsgParams::target, kRingModes));

struct ConsumerParams {
    Setup setup;   // the target ring, where the multishot request runs
    Setup sender;
};
const auto kConsumerSender = grid(setups(&ConsumerParams::setup, {Setup::none, Setup::defer_taskrun, Setup::sqpoll}),
                                  axis("sender", &ConsumerParams::sender, {{Setup::none, "none"}, {Setup::sqpoll, "sqpoll"}}));

// "any 32-bit value": one with the top bit set reads back as a negative res.
uint32_t message_len(unsigned i) { return i % 4 == 3 ? 0xfffffff0u - i : 1000u * i + 7u; }

// io_uring_prep_msg_ring(3): errors "are reported in the CQE res field"; the
// page gives no success value, so any res >= 0 passes. The res, or nullopt
// once a failure is recorded.
std::optional<int> expect_sent(Ctx& ctx, const Ring& sender, uint64_t user_data) {
    if (!ctx.expect(single_completion(sender.trace().all(), user_data))) return std::nullopt;
    Cqe own = sender.trace().for_request(user_data).at(0);
    if (!ctx.expect(Check{own.res >= 0, "the sender's MSG_RING CQE reports an error", own})) return std::nullopt;
    return own.res;
}

// Metrics are scalars (reports/stream.schema.json): several values as "1,2,3".
template <typename Values>
std::string comma_list(const Values& values) {
    std::string out;
    for (const auto& v : values) out += (out.empty() ? "" : ",") + std::to_string(v);
    return out;
}

bool is_message(uint64_t user_data, unsigned count) { return user_data >= kMsgBase && user_data < kMsgBase + count; }

// Reaps the target until `count` messages' CQEs are there, within kAnswerNs.
void await_messages(Ring& target, unsigned count) {
    auto arrived = [&] {
        const std::vector<Cqe>& all = target.trace().all();
        return size_t(std::count_if(all.begin(), all.end(), [&](const Cqe& c) { return is_message(c.user_data, count); }));
    };
    for (uint64_t until = now_ns() + kAnswerNs; arrived() < count && now_ns() < until;) target.wait_for(10'000'000);
}

// io_uring_enter(2) IORING_OP_MSG_RING: "On the target ring, a CQE will be
// posted with the res field matching the len set, and a user_data field
// matching the off value being passed in": one per message, and no CQE on
// the target that neither a message nor one of the target's `own` requests has.
void check_messages(Ctx& ctx, const std::vector<Cqe>& trace, unsigned count, const std::set<uint64_t>& own) {
    for (unsigned i = 0; i < count; ++i)
        if (!ctx.expect(single_completion(trace, kMsgBase + i, {int32_t(message_len(i))}))) break;
    for (const Cqe& cqe : trace)
        if (!ctx.expect(Check{is_message(cqe.user_data, count) || own.count(cqe.user_data) != 0,
                              "a CQE on the target that no message and no request of its own has", cqe}))
            break;
}

// io_uring_sqe_set_flags(3) IOSQE_FIXED_FILE: the fd "refers to the index of
// a previously registered file or direct file descriptor": a write through
// `slot` must come out of the pipe whose read end is `read_fd`.
void expect_slot_writes_pipe(Ctx& ctx, Ring& ring, unsigned slot, int read_fd) {
    std::string data = pattern(slot * 64, 64);
    io_uring_sqe* sqe = ring.sqe(kFixedWrite + slot, "write through a passed fixed file");
    io_uring_prep_write(sqe, int(slot), data.data(), unsigned(data.size()), 0);
    sqe->flags |= IOSQE_FIXED_FILE;
    ring.submit();
    std::optional<Cqe> done = wait_cqe_of(ring, kFixedWrite + slot, kAnswerNs);
    if (!ctx.expect(Check{done && done->res == int(data.size()),
                          str("a write of ", data.size(), " bytes through fixed slot ", slot, done ? "" : ": no CQE within 2 s"), done}))
        return;  // nothing is in the pipe: reading would block
    std::string got(data.size(), '\0');
    ssize_t n = read(read_fd, got.data(), got.size());
    ctx.expect_true(n == ssize_t(data.size()) && got == data,
                    str("the pipe's read end got ", n, " bytes of the ", data.size(), " written through slot ", slot));
}

// Registers `fd` as `ring`'s only fixed file (slot 0).
void register_one_file(Ctx& ctx, Ring& ring, int fd) {
    if (int ret = io_uring_register_files(ring.get(), &fd, 1); ret < 0)
        ctx.error("io_uring_register_files on the sender: " + errno_name(ret));
}

// Queues `messages` MSG_RING SQEs, filled by `prep(sqe, i)`, from `sender`
// and reaps both rings until the sender answered each and the target got
// as many CQEs, then until both are quiet. DEFER_TASKRUN work runs only
// "until an io_uring_enter(2) call with the IORING_ENTER_GETEVENTS flag"
// (io_uring_setup(2)): the target's waits are those calls.
template <typename Prep>
void exchange_messages(Ring& sender, Ring& target, unsigned messages, const char* what, Prep prep) {
    for (unsigned i = 0; i < messages; ++i) prep(sender.sqe(kSendBase + i, what), i);
    sender.submit();
    sender.reap(messages);
    target.reap(messages);
    sender.settle(kQuietNs);
    target.settle(kQuietNs);
}

// --- data ---

const Register<MsgParams> msg_ring_data{{
    .family = multishot,
    .name = "msg-ring-data-one-cqe",
    .summary = "MSG_RING data messages post exactly one CQE each on the target (res = len, user_data = data); sender res 0",
    .needs = {needs_op(IORING_OP_MSG_RING), other_ring_accepted(&MsgParams::target)},
    .variants = kSenderTarget,
    .body = [](Ctx& ctx, const MsgParams& p) {
        Ring sender(ctx, p.setup, 64);
        Ring target(ctx, p.target, 64);
        unsigned messages = ctx.pick(8u, 32u, 128u);
        exchange_messages(sender, target, messages, "msg_ring data", [&](io_uring_sqe* sqe, unsigned i) {
            io_uring_prep_msg_ring(sqe, target.get()->ring_fd, message_len(i), kMsgBase + i, 0);
        });

        check_messages(ctx, target.trace().all(), messages, {});
        std::set<int> sender_res;  // the values seen are a metric
        for (unsigned i = 0; i < messages; ++i)
            if (std::optional<int> res = expect_sent(ctx, sender, kSendBase + i)) sender_res.insert(*res);
            else break;
        ctx.expect_eq(target.trace().all().size(), size_t(messages), "CQEs on the target ring vs messages sent");
        ctx.metric("sender_res", comma_list(sender_res));
        ctx.add_iterations(messages);
    }}};

// CQE flag bits no uapi header defines (IORING_CQE_F_* take bits 0-5 and 15,
// the buffer id and timestamp bits 16 and up; include/uapi/linux/io_uring.h),
// so no bit the kernel sets of its own can pass for a passed one.
constexpr uint32_t kPassedFlags[] = {0x0100, 0x0400, 0x1000, 0x2d00};

const Register<MsgParams> msg_ring_flags_pass{{
    .family = multishot,
    .name = "msg-ring-flags-pass-sets-cqe-flags",
    .summary = "MSG_RING data with IORING_MSG_RING_FLAGS_PASS: one target CQE each with res = len, user_data = data and "
               "the passed bits set in its flags",
    .needs = {needs_op(IORING_OP_MSG_RING), needs_capability("msg_ring_flags_pass"), other_ring_accepted(&MsgParams::target)},
    .variants = kSenderTarget,
    .body = [](Ctx& ctx, const MsgParams& p) {
        Ring sender(ctx, p.setup, 64);
        Ring target(ctx, p.target, 64);
        unsigned messages = ctx.pick(8u, 32u, 128u);
        auto passed = [](unsigned i) { return kPassedFlags[i % std::size(kPassedFlags)]; };
        exchange_messages(sender, target, messages, "msg_ring data with CQE flags", [&](io_uring_sqe* sqe, unsigned i) {
            prep_msg_ring_cqe_flags(sqe, target.get()->ring_fd, message_len(i), kMsgBase + i, passed(i));
        });

        // io_uring_prep_msg_ring(3): the target CQE's res "will contain the
        // content of len" and its user_data is data, as without the flags.
        check_messages(ctx, target.trace().all(), messages, {});
        uint32_t extra_bits = 0;
        for (unsigned i = 0; i < messages; ++i) {
            std::vector<Cqe> arrived = target.trace().for_request(kMsgBase + i);
            if (!expect_sent(ctx, sender, kSendBase + i) || arrived.empty()) break;  // check_messages() said so
            // io_uring_prep_msg_ring_cqe_flags(3): cqe_flags "is used to set
            // flags field on CQE side ... Be aware that io_uring could
            // potentially set additional bits into this field": the passed
            // bits must all be there, others may be.
            if (!ctx.expect(Check{(arrived[0].flags & passed(i)) == passed(i),
                                  str("the target CQE lacks CQE flag bits passed with IORING_MSG_RING_FLAGS_PASS (passed 0x",
                                      std::hex, passed(i), ", flags 0x", arrived[0].flags, ")"),
                                  arrived[0]}))
                break;
            extra_bits |= arrived[0].flags & ~passed(i);
        }
        ctx.metric("extra_flag_bits", extra_bits);
        ctx.add_iterations(messages);
    }}};

// --- fixed files ---

const Register<MsgParams> msg_ring_fd{{
    .family = multishot,
    .name = "msg-ring-fd-slot-holds-file",
    .summary = "MSG_RING_FD puts the sender's fixed file into the target's slot: the target writes through it; self-target -EINVAL",
    .needs = {needs_op(IORING_OP_MSG_RING), needs_op(IORING_OP_WRITE), needs_capability("msg_ring_fd"),
              other_ring_accepted(&MsgParams::target)},
    .variants = kFdSenderTarget,
    .body = [](Ctx& ctx, const MsgParams& p) {
        Ring sender(ctx, p.setup, 64);
        Ring target(ctx, p.target, 64);
        Pipe pipe = make_pipe(ctx);
        register_one_file(ctx, sender, pipe.write.get());
        constexpr unsigned kSlot = 2;
        if (int ret = io_uring_register_files_sparse(target.get(), 4); ret < 0)
            ctx.error("io_uring_register_files_sparse on the target: " + errno_name(ret));

        prep_msg_ring_fd(sender.sqe(kSendBase, "msg_ring fd"), target.get()->ring_fd, 0, kSlot, kMsgBase);
        // io_uring_prep_msg_ring_fd(3) ERRORS: "-EINVAL Target ring is identical to the source ring."
        prep_msg_ring_fd(sender.sqe(kSendBase + 1, "msg_ring fd to itself"), sender.get()->ring_fd, 0, 0, kMsgBase + 1);
        sender.submit();
        sender.reap(2);
        Cqe arrived = must_wait(ctx, target, kAnswerNs, "the target's CQE for the passed file");
        // Only the passed slot and the sender's table refer to the pipe now.
        pipe.write.reset();
        expect_slot_writes_pipe(ctx, target, kSlot, pipe.read.get());
        sender.settle(kQuietNs);
        target.settle(kQuietNs);

        // io_uring_prep_msg_ring_fd(3): the file goes "into index target_fd
        // and passing data as the user data in the target CQE".
        ctx.expect(Check{arrived.user_data == kMsgBase && arrived.res >= 0,
                         "the target's CQE carries the message's data as user_data and no error", arrived});
        ctx.expect(single_completion(target.trace().all(), kMsgBase));
        expect_sent(ctx, sender, kSendBase);
        ctx.expect(single_completion(sender.trace().all(), kSendBase + 1, {-EINVAL}));
        ctx.metric("target_res", arrived.res);
    }}};

constexpr unsigned kAllocSlots = 4;        // the target's sparse table
constexpr unsigned kPrefilled[] = {0, 2};  // filled beforehand: the allocator must pass them over
constexpr unsigned kFreeSlots = kAllocSlots - std::size(kPrefilled);

const Register<MsgParams> msg_ring_fd_alloc{{
    .family = multishot,
    .name = "msg-ring-fd-alloc-free-slot-enfile",
    .summary = "MSG_RING_FD into IORING_FILE_INDEX_ALLOC: the target CQE's res is a slot that was free and holds the "
               "file; into a full table the sender gets -ENFILE and the target nothing",
    .needs = {needs_op(IORING_OP_MSG_RING), needs_op(IORING_OP_WRITE), needs_capability("msg_ring_fd"),
              needs_capability("msg_ring_fd_alloc"), other_ring_accepted(&MsgParams::target)},
    .variants = kFdSenderTarget,
    .body = [](Ctx& ctx, const MsgParams& p) {
        Ring sender(ctx, p.setup, 64);
        Ring target(ctx, p.target, 64);
        Pipe pipe = make_pipe(ctx), filler = make_pipe(ctx);
        register_one_file(ctx, sender, pipe.write.get());
        if (int ret = io_uring_register_files_sparse(target.get(), kAllocSlots); ret < 0)
            ctx.error("io_uring_register_files_sparse on the target: " + errno_name(ret));
        int filler_fd = filler.read.get();
        for (unsigned slot : kPrefilled)
            if (int ret = io_uring_register_files_update(target.get(), slot, &filler_fd, 1); ret != 1)
                ctx.error("io_uring_register_files_update on the target: " + res_text(ret));

        for (unsigned i = 0; i < kFreeSlots; ++i)
            prep_msg_ring_fd_alloc(sender.sqe(kSendBase + i, "msg_ring fd into an allocated slot"), target.get()->ring_fd, 0, kMsgBase + i);
        sender.submit();
        sender.reap(kFreeSlots);
        for (unsigned i = 0; i < kFreeSlots; ++i) must_wait(ctx, target, kAnswerNs, "the target's CQE for an allocated slot");

        std::set<int> slots;
        for (unsigned i = 0; i < kFreeSlots; ++i) {
            expect_sent(ctx, sender, kSendBase + i);
            if (!ctx.expect(single_completion(target.trace().all(), kMsgBase + i))) continue;
            Cqe arrived = target.trace().for_request(kMsgBase + i).at(0);
            // io_uring_prep_msg_ring_fd(3): with _alloc "this index is
            // allocated in the target ring and returned in the CQE res field":
            // a slot of the table that held nothing, each once. (Kernels before
            // 5da28edd7bd5 "io_uring/msg_ring: let target know allocated
            // index", in 6.3 and 6.0+ stable, posted len there instead.)
            int slot = arrived.res;
            bool was_free = slot >= 0 && unsigned(slot) < kAllocSlots && !slots.count(slot) &&
                            std::find(std::begin(kPrefilled), std::end(kPrefilled), unsigned(slot)) == std::end(kPrefilled);
            if (!ctx.expect(Check{was_free, str("the allocated slot must be one that was free in the ", kAllocSlots,
                                                "-slot table (slots 0 and 2 filled, earlier allocations taken)"),
                                  arrived}))
                continue;
            slots.insert(slot);
            expect_slot_writes_pipe(ctx, target, unsigned(slot), pipe.read.get());
        }

        // The table is full now. io_uring_prep_msg_ring_fd(3) ERRORS, "reported
        // in the CQE res field" (the sender's): "-ENFILE The direct descriptor
        // table in the target ring was full, no new descriptors could be
        // successfully allocated." No index was allocated, so no CQE returns one.
        constexpr uint64_t kFull = kFreeSlots;
        prep_msg_ring_fd_alloc(sender.sqe(kSendBase + kFull, "msg_ring fd into a full table"), target.get()->ring_fd, 0, kMsgBase + kFull);
        sender.submit();
        wait_cqe_of(sender, kSendBase + kFull, kAnswerNs);
        sender.settle(kQuietNs);
        target.settle(kQuietNs);
        ctx.expect(single_completion(sender.trace().all(), kSendBase + kFull, {-ENFILE}));
        std::vector<Cqe> posted = target.trace().for_request(kMsgBase + kFull);
        ctx.expect(Check{posted.empty(), "a file that found no free slot still posted a CQE on the target",
                         posted.empty() ? std::nullopt : std::optional<Cqe>(posted[0])});
        std::vector<int> allocated;  // in allocation order
        for (unsigned i = 0; i < kFreeSlots; ++i)
            for (const Cqe& cqe : target.trace().for_request(kMsgBase + i)) allocated.push_back(cqe.res);
        ctx.metric("slots_allocated", comma_list(allocated));
    }}};

// --- messages beside a live multishot request ---

const Register<ConsumerParams> msg_ring_consumer{{
    .family = multishot,
    .name = "msg-ring-beside-multishot-poll",
    .summary = "messages landing on a ring with a live multishot poll: one CQE each, the poll keeps F_MORE until removed",
    .needs = {needs_op(IORING_OP_MSG_RING), needs_op(IORING_OP_POLL_ADD), needs_op(IORING_OP_POLL_REMOVE),
              other_ring_accepted(&ConsumerParams::sender)},
    .variants = kConsumerSender,
    .body = [](Ctx& ctx, const ConsumerParams& p) {
        Ring target(ctx, p.setup, 64);
        Ring sender(ctx, p.sender, 64);
        Pipe pipe = make_pipe(ctx);
        io_uring_prep_poll_multishot(target.sqe(kTarget, "multishot poll"), pipe.read.get(), POLLIN);
        target.submit();

        unsigned rounds = ctx.pick(8u, 64u, 256u);
        for (unsigned i = 0; i < rounds; ++i) {
            io_uring_prep_msg_ring(sender.sqe(kSendBase + i, "msg_ring data"), target.get()->ring_fd, message_len(i), kMsgBase + i, 0);
            sender.submit();
            poll_round(ctx, target, pipe);
        }
        sender.reap(rounds);
        io_uring_prep_poll_remove(target.sqe(kCancel, "poll remove"), kTarget);
        target.submit();
        target.reap_until_final(kTarget);
        await_messages(target, rounds);
        target.settle(kQuietNs);

        const std::vector<Cqe>& trace = target.trace().all();
        // io_uring_multishot(7) for the poll; io_uring_enter(2) POLL_REMOVE
        // "If found, the res field ... will contain 0".
        ctx.expect(multishot_contract(trace, kTarget, {.final_res = {-ECANCELED}}));
        ctx.expect(single_completion(trace, kCancel, {0}));
        check_messages(ctx, trace, rounds, {kTarget, kCancel});
        ctx.add_iterations(rounds);
    }}};

const Register<ConsumerParams> msg_ring_recv_consumer{{
    .family = multishot,
    .name = "msg-ring-beside-multishot-recv",
    .summary = "messages interleaved with a TCP stream into a ring's multishot recv: one CQE each, every byte in order, "
               "the recv keeps F_MORE until the peer's shutdown ends it with res 0",
    .needs = {needs_op(IORING_OP_MSG_RING), needs_op(IORING_OP_RECV), needs_buf_ring(), needs_capability("recv_multishot"),
              other_ring_accepted(&ConsumerParams::sender)},
    .variants = kConsumerSender,
    .body = [](Ctx& ctx, const ConsumerParams& p) {
        Ring target(ctx, p.setup, 128);
        Ring sender(ctx, p.sender, 64);
        SocketPair sockets = tcp_loopback(ctx);
        BufRing bufs(target, kGroup, 16, 256);
        arm_recv_multishot(target, sockets.server.get());
        target.submit();

        unsigned rounds = ctx.pick(8u, 64u, 256u);
        uint64_t sent = 0, received = 0;
        for (unsigned i = 0; i < rounds; ++i) {
            io_uring_prep_msg_ring(sender.sqe(kSendBase + i, "msg_ring data"), target.get()->ring_fd, message_len(i), kMsgBase + i, 0);
            sender.submit();
            // Up to 400 bytes: sometimes more than one 256-byte buffer.
            send_and_receive(ctx, target, bufs, sockets.client.get(), &sent, &received, 1 + (i * 97) % 400);
        }
        sender.reap(rounds);
        shutdown(sockets.client.get(), SHUT_WR);
        target.reap_until_final(kTarget);
        await_messages(target, rounds);
        target.settle(kQuietNs);

        const std::vector<Cqe>& trace = target.trace().all();
        // io_uring_multishot(7), and recv(2): "When a stream socket peer has
        // performed an orderly shutdown, the return value will be 0".
        ctx.expect(multishot_contract(trace, kTarget, {.final_res = {0}}));
        // Wakeups coalesce: the bytes are counted, not the CQEs
        // (send_and_receive() checked each CQE continues the stream).
        ctx.expect_eq(received, sent, "bytes received over all CQEs vs bytes sent");
        check_messages(ctx, trace, rounds, {kTarget});
        for (unsigned i = 0; i < rounds; ++i)
            if (!expect_sent(ctx, sender, kSendBase + i)) break;
        ctx.metric("bytes", received);
        auto is_data = [](const Cqe& c) { return c.user_data == kTarget && c.res > 0; };
        ctx.metric("data_cqes", std::count_if(trace.begin(), trace.end(), is_data));
        ctx.add_iterations(rounds);
    }}};

}  // namespace
