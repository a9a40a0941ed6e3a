// Cancel matching checked against a model (harness/checks/cancel_model.h):
// every valid combination of match keys over requests that share some keys
// and differ in others, the places a request can be when the cancel looks
// for it, synchronous cancelation over both, and seeded random rounds for the
// stress profile. Each round: the requests go in flight, the cancel runs, the
// requests it did not end are made to complete on their own (a write to
// their pipe), and cancel_outcome() compares every CQE with the model.
// The per-flag scenarios with one target each stay in cancel.cpp.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>

#include "cancel_model.h"
#include "cancel_rounds.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;
using namespace cancel_family;

// --- capability probes ---

// IORING_ASYNC_CANCEL_USERDATA: io_async_cancel_prep() refuses a flag it does
// not know with -EINVAL; any other answer (here -ENOENT) means it took it.
const CapabilityProbe cancel_userdata_probe{"cancel_userdata", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_ASYNC_CANCEL)) return *missing;
    SqeAnswer answer = probe_one_sqe([](io_uring*, io_uring_sqe* sqe) {
        io_uring_prep_cancel64(sqe, 0x5eed, IORING_ASYNC_CANCEL_USERDATA);
    });
    return answered("IORING_ASYNC_CANCEL_USERDATA on a cancel of an unknown user_data", answer);
}};

// io_uring_register_iowq_max_workers(3), which queues work behind a busy
// worker here: refused with -EINVAL by kernels without IORING_REGISTER_IOWQ_MAX_WORKERS.
const CapabilityProbe iowq_max_workers_probe{"iowq_max_workers", [](const Probe&) {
    io_uring ring{};
    if (int ret = io_uring_queue_init(4, &ring, 0); ret < 0)
        return untried("io_uring_register_iowq_max_workers", "io_uring_queue_init: " + errno_name(ret));
    unsigned counts[2] = {0, 0};  // 0: only read the limits
    int res = io_uring_register_iowq_max_workers(&ring, counts);
    io_uring_queue_exit(&ring);
    return answered("io_uring_register_iowq_max_workers reading the limits", res);
}};

// --- match keys ---

enum class Key {
    user_data, userdata, fd, fd_fixed, op, fd_userdata, fd_fixed_userdata, op_userdata,
    fd_op, fd_fixed_op, fd_op_userdata, any, any_userdata, fd_any, op_any
};

constexpr unsigned kFdFlag = IORING_ASYNC_CANCEL_FD, kFixedFlag = IORING_ASYNC_CANCEL_FD_FIXED,
                   kOpFlag = IORING_ASYNC_CANCEL_OP, kUdFlag = IORING_ASYNC_CANCEL_USERDATA,
                   kAnyFlag = IORING_ASYNC_CANCEL_ANY, kAllFlag = IORING_ASYNC_CANCEL_ALL;

unsigned key_flags(Key key) {
    switch (key) {
        case Key::user_data: return 0;
        case Key::userdata: return kUdFlag;
        case Key::fd: return kFdFlag;
        case Key::fd_fixed: return kFdFlag | kFixedFlag;
        case Key::op: return kOpFlag;
        case Key::fd_userdata: return kFdFlag | kUdFlag;
        case Key::fd_fixed_userdata: return kFdFlag | kFixedFlag | kUdFlag;
        case Key::op_userdata: return kOpFlag | kUdFlag;
        case Key::fd_op: return kFdFlag | kOpFlag;
        case Key::fd_fixed_op: return kFdFlag | kFixedFlag | kOpFlag;
        case Key::fd_op_userdata: return kFdFlag | kOpFlag | kUdFlag;
        case Key::any: return kAnyFlag;
        case Key::any_userdata: return kAnyFlag | kUdFlag;
        case Key::fd_any: return kFdFlag | kAnyFlag;
        case Key::op_any: return kOpFlag | kAnyFlag;
    }
    return 0;
}

const std::initializer_list<std::pair<Key, std::string>> kValidKeys = {
    {Key::user_data, "user_data"}, {Key::userdata, "userdata"}, {Key::fd, "fd"}, {Key::fd_fixed, "fd_fixed"},
    {Key::op, "op"}, {Key::fd_userdata, "fd_userdata"}, {Key::fd_fixed_userdata, "fd_fixed_userdata"},
    {Key::op_userdata, "op_userdata"}, {Key::fd_op, "fd_op"}, {Key::fd_fixed_op, "fd_fixed_op"},
    {Key::fd_op_userdata, "fd_op_userdata"}, {Key::any, "any"}, {Key::any_userdata, "any_userdata"}};
// io_async_cancel_prep() refuses these with -EINVAL.
const std::initializer_list<std::pair<Key, std::string>> kRefusedKeys = {{Key::fd_any, "fd_any"}, {Key::op_any, "op_any"}};

// The capability of each flag the cancel uses, decided by refusal in the probe.
std::optional<std::string> flags_missing(const Probe& probe, unsigned flags) {
    static const std::pair<unsigned, const char*> caps[] = {
        {kFdFlag, "cancel_fd"},   {kFixedFlag, "cancel_fd_fixed"}, {kOpFlag, "cancel_op"},
        {kUdFlag, "cancel_userdata"}, {kAnyFlag, "cancel_any"}, {kAllFlag, "cancel_all"}};
    for (auto [bit, name] : caps)
        if (flags & bit)
            if (auto why = needs_capability(name)(probe)) return why;
    return std::nullopt;
}

// --- a round: requests in flight, their model, and how each completes on its own ---

constexpr uint64_t kMatrixCancel = 0xca;

// One request the scenario put in flight.
struct Live {
    InFlight model;
    int kick_fd = -1;  // a write of `tag` bytes here lets it complete by itself
    size_t tag = 0;
};

// The ring, the files and the requests of one round; the fds and buffers
// live as long as the ring.
struct Bench {
    Ring ring;
    std::vector<Live> live;
    std::vector<std::pair<Fd, Fd>> files;  // world file -> (the fd requests use, the fd that feeds it)
    CancelWorld world;
    std::vector<std::unique_ptr<char[]>> buffers;
    uint64_t quiet_until_ns = 0;  // a timeout in flight: its own end comes no sooner

    Bench(Ctx& ctx, Setup setup) : ring(ctx, setup, 0, 64) {}

    char* buffer(size_t len) {
        buffers.push_back(std::make_unique<char[]>(len));
        return buffers.back().get();
    }
    // A file of the world; `feed` (a pipe's or socket's other end) makes reads of it complete.
    int add_file(Fd fd, Fd feed = Fd()) {
        world.fd_files[fd.get()] = int(files.size());
        files.emplace_back(std::move(fd), std::move(feed));
        return int(files.size() - 1);
    }
    int add_pipe(Ctx& ctx) {
        Pipe pipe = make_pipe(ctx);
        return add_file(std::move(pipe.read), std::move(pipe.write));
    }
    int add_socket(Ctx& ctx) {
        SocketPair pair = unix_pair(ctx, SOCK_STREAM);
        return add_file(std::move(pair.server), std::move(pair.client));
    }
    int add_devnull(Ctx& ctx) {
        Fd null_fd(open("/dev/null", O_WRONLY | O_CLOEXEC));
        if (!null_fd) ctx.error("open /dev/null: " + errno_name(errno));
        return add_file(std::move(null_fd));
    }
    // Distinct per file, so a read's own result (the tag) says which file it read.
    size_t tag_of(int file) const { return 10 + size_t(file); }
    int fd_of(int file) const { return files[size_t(file)].first.get(); }
    int feed_of(int file) const { return files[size_t(file)].second.get(); }
    void register_slots(Ctx& ctx, const std::vector<int>& slot_to_file) {
        std::vector<int> fds;
        for (size_t slot = 0; slot < slot_to_file.size(); ++slot) {
            fds.push_back(fd_of(slot_to_file[slot]));
            world.slot_files[int(slot)] = slot_to_file[slot];
        }
        if (int ret = io_uring_register_files(ring.get(), fds.data(), unsigned(fds.size())); ret < 0)
            ctx.error("io_uring_register_files: " + errno_name(ret));
    }
    io_uring_sqe* add(const InFlight& model, const char* what, int kick = -1, size_t tag = 0) {
        live.push_back({model, kick, tag});
        world.requests.push_back(model);
        return ring.sqe(model.user_data, what);
    }
    // A read of exactly its pipe's tag: poll-armed until the tag is written.
    io_uring_sqe* read(uint64_t ud, int file, std::optional<int> slot = std::nullopt,
                       Placement at = Placement::poll_armed) {
        size_t tag = tag_of(file);
        io_uring_sqe* sqe = add({.user_data = ud, .opcode = IORING_OP_READ, .placement = at, .file = file,
                                 .own_res = int(tag)},
                                "read", feed_of(file), tag);
        io_uring_prep_read(sqe, slot ? *slot : fd_of(file), buffer(tag), unsigned(tag), 0);
        if (slot) sqe->flags |= IOSQE_FIXED_FILE;
        return sqe;
    }
    // POLL_ADD for POLLIN; multishot stays armed after each event.
    io_uring_sqe* poll(uint64_t ud, int file, std::optional<int> slot = std::nullopt, bool multishot = false) {
        io_uring_sqe* sqe = add({.user_data = ud, .opcode = IORING_OP_POLL_ADD,
                                 .placement = multishot ? Placement::multishot : Placement::poll_armed, .file = file,
                                 .own_res = multishot ? InFlight::kAlive : int(POLLIN)},
                                multishot ? "multishot poll" : "poll add", feed_of(file), tag_of(file));
        if (multishot)
            io_uring_prep_poll_multishot(sqe, slot ? *slot : fd_of(file), POLLIN);
        else
            io_uring_prep_poll_add(sqe, slot ? *slot : fd_of(file), POLLIN);
        if (slot) sqe->flags |= IOSQE_FIXED_FILE;
        return sqe;
    }
};

// Completions of the round's requests (not the barrier's) since `from`.
size_t resolved(const Bench& b, size_t from) {
    size_t n = 0;
    const auto& all = b.ring.trace().all();
    for (size_t i = from; i < all.size(); ++i) {
        const Cqe& c = all[i];
        bool ours = std::any_of(b.live.begin(), b.live.end(), [&](const Live& l) { return l.model.user_data == c.user_data; });
        bool multishot = std::any_of(b.live.begin(), b.live.end(), [&](const Live& l) {
            return l.model.user_data == c.user_data && l.model.placement == Placement::multishot;
        });
        n += ours && (!c.more() || multishot);
    }
    return n;
}

// Lets every request the cancel left complete on its own: a pass writes each
// pipe's tag once (a read takes exactly its tag, so two reads on one pipe
// take two passes), then waits for the CQEs it causes; writes and timeouts
// end by themselves. Bounded: a request that never completes costs the
// deadline once, and the model then names it.
void drain(Ctx& ctx, Bench& b, size_t from) {
    const size_t want = b.live.size();
    const uint64_t deadline = std::max(now_ns() + ctx.pick<uint64_t>(5, 10, 10) * 1'000'000'000, b.quiet_until_ns);
    while (resolved(b, from) < want && now_ns() < deadline) {
        std::vector<int> kicked;
        for (const Live& l : b.live)
            if (l.kick_fd >= 0 && std::find(kicked.begin(), kicked.end(), l.kick_fd) == kicked.end()) {
                std::string bytes(l.tag, 'k');
                send_all(ctx, l.kick_fd, bytes.data(), bytes.size());
                kicked.push_back(l.kick_fd);
            }
        size_t before = resolved(b, from);
        uint64_t until = std::min(deadline, now_ns() + 500'000'000);
        while (resolved(b, from) == before && now_ns() < until) b.ring.wait_for(until - now_ns());
        // The rest of what this pass woke comes at once.
        while (resolved(b, from) < want && b.ring.wait_for(5'000'000)) {}
    }
    b.ring.settle(kQuietNs);
}

// The round's CQEs since `from`, the barrier's left out.
std::vector<Cqe> round_since(const Ring& ring, size_t from) {
    const auto& all = ring.trace().all();
    std::vector<Cqe> out;
    for (size_t i = from; i < all.size(); ++i)
        if (all[i].user_data != kBarrier) out.push_back(all[i]);
    return out;
}

void prep_cancel(io_uring_sqe* sqe, const CancelSqe& c) {
    io_uring_prep_cancel64(sqe, c.addr, int(c.flags));
    sqe->fd = c.fd;
    sqe->len = c.opcode;
}

// Submits the cancel, waits for its CQE, lets the rest complete and checks
// everything against the model. Returns the alternative that fit ("" = fail).
std::string async_round(Ctx& ctx, Bench& b, const CancelSqe& cancel, const std::string& round_name = "") {
    // Each round has its own ring: all of its trace is the round (a write may
    // complete before the barrier that issued it).
    const size_t from = 0;
    prep_cancel(b.ring.sqe(kMatrixCancel, "cancel"), cancel);
    b.ring.submit();
    b.ring.reap_until_final(kMatrixCancel);
    // Interrupted io-wq work ends a little after the cancel's CQE
    // (io_uring_prep_cancel(3) NOTES): let it before its pipe is written.
    bool iowq = std::any_of(b.live.begin(), b.live.end(), [](const Live& l) {
        return l.model.placement == Placement::iowq_running || l.model.placement == Placement::iowq_queued;
    });
    if (iowq) b.ring.settle(kQuietNs);
    drain(ctx, b, from);
    CancelOutcome out = cancel_outcome(b.world, cancel, kMatrixCancel, round_since(b.ring, from));
    if (!out.check.ok && !round_name.empty()) out.check.rule = round_name + ": " + out.check.rule;
    ctx.expect(out.check);
    return out.fit;
}

// The model follows the kernel source where the man pages disagree; which
// text the kernel matched goes into the report.
void record_fit(Ctx& ctx, const std::string& fit) {
    if (!fit.empty()) ctx.metric("model_fit", fit.find("kernel") != std::string::npos ? "kernel_source" : "man_pages");
}

// --- the key matrix ---

constexpr uint64_t kA = 0x10, kB = 0x11, kC = 0x12;

// Six pending requests on three pipes: two on pipe 0 (A, B), the same A on
// pipe 1 beside a poll (C), and on pipe 2, reached only through fixed slot 0,
// a read (B) and a poll (A).
void matrix_world(Ctx& ctx, Bench& b) {
    for (int i = 0; i < 3; ++i) b.add_pipe(ctx);
    b.register_slots(ctx, {2});
    b.read(kA, 0);
    b.read(kB, 0);
    b.read(kA, 1);
    b.poll(kC, 1);
    b.read(kB, 2, 0);
    b.poll(kA, 2, 0);
    issue(b.ring);
}

CancelSqe matrix_cancel(const Bench& b, Key key, bool all) {
    CancelSqe c{.flags = key_flags(key) | (all ? kAllFlag : 0), .addr = kA};
    bool fixed = c.flags & kFixedFlag;
    // FD keys: pipe 0 by fd; fixed: slot 0 (pipe 2); with OP, pipe 1's READ
    // (one read there) or slot 0's READ.
    if (c.flags & kFdFlag) c.fd = fixed ? 0 : b.fd_of(key == Key::fd_op ? 1 : 0);
    if (c.flags & kOpFlag) c.opcode = key == Key::op ? IORING_OP_POLL_ADD : IORING_OP_READ;
    return c;
}

struct MatrixParams {
    Setup setup = Setup::none;
    Key key = Key::user_data;
    bool all = false;
};

Need<MatrixParams> matrix_needs() {
    return Need<MatrixParams>([](const Probe& probe, const MatrixParams& p) {
        return flags_missing(probe, key_flags(p.key) | (p.all ? kAllFlag : 0));
    });
}

const Register<MatrixParams> key_matrix{{
    .family = cancel,
    .name = "key-matrix-matches-model",
    .summary = "each valid combination of match keys, with and without ALL, over 6 requests sharing some keys: "
               "exactly the model's set ends, with the model's res and count",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_POLL_ADD), needs_op(IORING_OP_ASYNC_CANCEL), matrix_needs()},
    // FD or OP beside ANY is refused before ALL is looked at: once is enough.
    .variants = join(grid(setups(&MatrixParams::setup, {Setup::none}), axis("key", &MatrixParams::key, kValidKeys),
                          axis("all", &MatrixParams::all, {{false, "no"}, {true, "yes"}})),
                     grid(setups(&MatrixParams::setup, {Setup::none}), axis("key", &MatrixParams::key, kRefusedKeys),
                          axis("all", &MatrixParams::all, {{false, "no"}}))),
    .body = [](Ctx& ctx, const MatrixParams& p) {
        Bench b(ctx, p.setup);
        matrix_world(ctx, b);
        CancelSqe cancel = matrix_cancel(b, p.key, p.all);
        record_fit(ctx, async_round(ctx, b, cancel));
    }}};

// --- placements ---

enum class Place { poll_pipe, poll_socket, iowq_queued, iowq_running, iowq_hashed, timeout, link_head, link_tail, multishot };
const std::initializer_list<std::pair<Place, std::string>> kPlaces = {
    {Place::poll_pipe, "poll_pipe"},       {Place::poll_socket, "poll_socket"}, {Place::iowq_queued, "iowq_queued"},
    {Place::iowq_running, "iowq_running"}, {Place::iowq_hashed, "iowq_hashed"}, {Place::timeout, "timeout"},
    {Place::link_head, "link_head"},       {Place::link_tail, "link_tail"},     {Place::multishot, "multishot"}};

// How the placement rounds cancel: the target's user_data (first match), its
// file with ALL, or everything (ANY|ALL).
enum class PlaceKey { user_data, fd_all, any_all };
unsigned place_key_flags(PlaceKey k) {
    return k == PlaceKey::fd_all ? kFdFlag | kAllFlag : k == PlaceKey::any_all ? kAnyFlag | kAllFlag : 0;
}

constexpr uint64_t kD = 0x13, kE = 0x14;
constexpr size_t kWriteLen = 64 * 1024;

bool needs_iowq_limit(Place p) { return p == Place::iowq_queued; }

// A splice from an empty pipe into /dev/null, forced to io-wq: it blocks in
// the worker until its pipe is fed (splice is never tried inline).
void splice_async(Bench& b, uint64_t ud, Placement at) {
    int in = b.add_pipe(b.ring.ctx()), out = b.add_devnull(b.ring.ctx());
    size_t tag = b.tag_of(in);
    io_uring_sqe* sqe = b.add({.user_data = ud, .opcode = IORING_OP_SPLICE, .placement = at, .file = out,
                               .own_res = int(tag)},
                              "splice from an empty pipe", b.feed_of(in), tag);
    io_uring_prep_splice(sqe, b.fd_of(in), -1, b.fd_of(out), -1, unsigned(tag), 0);
    sqe->flags |= IOSQE_ASYNC;
}

// A directory for the hashed writes' file: tmpfs where there is one (writes
// there are punted to io-wq and hashed by inode), else /tmp.
struct ScratchFile {
    std::string path;
    Fd fd;
    explicit ScratchFile(Ctx& ctx) {
        std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        path = dir + "/uring-conform-cancel-XXXXXX";
        int raw = mkstemp(path.data());
        if (raw < 0) ctx.error("mkstemp in " + dir + ": " + errno_name(errno));
        fd = Fd(raw);
    }
    ~ScratchFile() { unlink(path.c_str()); }
};

// Puts the target in `place` (plus what it needs) and a bystander read (B) on
// a pipe of its own; returns the target's index in the world.
size_t place_world(Ctx& ctx, Bench& b, Place place, ScratchFile* scratch) {
    size_t target = 0;
    switch (place) {
        case Place::poll_pipe: b.read(kA, b.add_pipe(ctx)); break;
        case Place::poll_socket: b.read(kA, b.add_socket(ctx)); break;
        case Place::iowq_running:
            splice_async(b, kA, Placement::iowq_running);
            b.ring.submit();
            if (!wait_for_sleeping_io_workers(1, 1'000'000'000)) ctx.note("no io-wq worker was seen asleep within 1 s");
            break;
        case Place::iowq_queued: {
            // io_uring_register_iowq_max_workers(3): one worker of each kind,
            // kept busy by a blocked splice, so the target waits in the queue.
            unsigned limits[2] = {1, 1};
            if (int ret = io_uring_register_iowq_max_workers(b.ring.get(), limits); ret < 0)
                ctx.error("io_uring_register_iowq_max_workers: " + errno_name(ret));
            splice_async(b, kC, Placement::iowq_running);
            b.ring.submit();
            if (!wait_for_sleeping_io_workers(1, 1'000'000'000)) ctx.note("no io-wq worker was seen asleep within 1 s");
            splice_async(b, kA, Placement::iowq_queued);
            target = 1;
            break;
        }
        case Place::iowq_hashed: {
            int file = b.add_file(Fd(dup(scratch->fd.get())));
            for (int i = 0; i < 4; ++i) {
                io_uring_sqe* sqe = b.add({.user_data = i == 3 ? kA : kD, .opcode = IORING_OP_WRITE,
                                           .placement = Placement::iowq_hashed, .file = file, .own_res = int(kWriteLen),
                                           .may_complete = true},
                                          "write to one regular file");
                io_uring_prep_write(sqe, b.fd_of(file), b.buffer(kWriteLen), unsigned(kWriteLen), uint64_t(i) * kWriteLen);
            }
            target = 3;
            break;
        }
        case Place::timeout: {
            static __kernel_timespec wait{0, 150'000'000};
            io_uring_prep_timeout(b.add({.user_data = kA, .opcode = IORING_OP_TIMEOUT, .placement = Placement::timeout,
                                         .own_res = -ETIME},
                                        "timeout"),
                                  &wait, 0, 0);
            b.quiet_until_ns = now_ns() + 250'000'000;
            break;
        }
        case Place::link_head:
        case Place::link_tail: {
            int head = b.add_pipe(ctx), tail = b.add_pipe(ctx);
            b.read(kA, head, std::nullopt, Placement::link_head)->flags |= IOSQE_IO_LINK;
            b.read(kE, tail, std::nullopt, Placement::link_tail);
            b.world.requests.back().head = 0;
            b.live.back().model.head = 0;
            target = place == Place::link_tail ? 1 : 0;
            break;
        }
        case Place::multishot: b.poll(kA, b.add_pipe(ctx), std::nullopt, true); break;
    }
    b.read(kB, b.add_pipe(ctx));
    issue(b.ring);
    return target;
}

CancelSqe place_cancel(const Bench& b, size_t target, PlaceKey key) {
    const InFlight& t = b.world.requests[target];
    CancelSqe c{.flags = place_key_flags(key), .addr = t.user_data};
    // A timeout has no file: FD|ALL then names the bystander's.
    if (c.flags & kFdFlag) c.fd = b.fd_of(t.file >= 0 ? t.file : b.world.requests.back().file);
    return c;
}

struct PlaceParams {
    Setup setup = Setup::none;
    Place place = Place::poll_pipe;
    PlaceKey key = PlaceKey::user_data;
};

std::optional<std::string> place_missing(const Probe& probe, Place place, unsigned flags) {
    static const std::pair<Place, int> ops[] = {{Place::iowq_queued, IORING_OP_SPLICE}, {Place::iowq_running, IORING_OP_SPLICE},
                                                {Place::iowq_hashed, IORING_OP_WRITE}, {Place::timeout, IORING_OP_TIMEOUT},
                                                {Place::multishot, IORING_OP_POLL_ADD}};
    for (auto [p, op] : ops)
        if (p == place)
            if (auto why = needs_op(op)(probe)) return why;
    if (needs_iowq_limit(place))
        if (auto why = needs_capability("iowq_max_workers")(probe)) return why;
    return flags_missing(probe, flags);
}

const std::initializer_list<std::pair<PlaceKey, std::string>> kPlaceKeys = {
    {PlaceKey::user_data, "user_data"}, {PlaceKey::fd_all, "fd_all"}, {PlaceKey::any_all, "any_all"}};

const Register<PlaceParams> placements{{
    .family = cancel,
    .name = "placement-matches-model",
    .summary = "a cancel of a request poll-armed, queued or running in io-wq, hashed, a timeout, a link head or tail, "
               "or multishot: exactly the model's set ends, once each, with the model's res",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_ASYNC_CANCEL),
              Need<PlaceParams>([](const Probe& probe, const PlaceParams& p) {
                  return place_missing(probe, p.place, place_key_flags(p.key));
              })},
    .variants = join(grid(setups(&PlaceParams::setup, {Setup::none}), axis("place", &PlaceParams::place, kPlaces),
                          axis("key", &PlaceParams::key, kPlaceKeys)),
                     // With SQPOLL the SQ thread submits, so io-wq and the link
                     // belong to it; the other placements do not change.
                     grid(setups(&PlaceParams::setup, {Setup::sqpoll}),
                          axis("place", &PlaceParams::place,
                               {{Place::iowq_queued, "iowq_queued"}, {Place::iowq_running, "iowq_running"},
                                {Place::link_head, "link_head"}}),
                          axis("key", &PlaceParams::key, {{PlaceKey::user_data, "user_data"}}))),
    .body = [](Ctx& ctx, const PlaceParams& p) {
        Bench b(ctx, p.setup);
        ScratchFile scratch(ctx);
        size_t target = place_world(ctx, b, p.place, &scratch);
        record_fit(ctx, async_round(ctx, b, place_cancel(b, target, p.key)));
    }}};

// --- synchronous cancelation ---

struct SyncCall {
    int res = 0;
    bool interrupted = false;   // still blocked at the limit: a signal ended the call
    bool target_posted = false;  // the CQ held a CQE by then (peeked, not reaped)
};

void ignore_signal(int) {}

// io_uring_register_sync_cancel() with a limit of our own: a call still
// blocked after `limit_ns` gets SIGUSR1 (no SA_RESTART, so it returns), and
// whether a CQE was already waiting in the CQ is noted as evidence.
SyncCall sync_cancel_bounded(Ring& ring, io_uring_sync_cancel_reg reg, uint64_t limit_ns) {
    struct sigaction action {}, previous{};
    action.sa_handler = ignore_signal;
    sigaction(SIGUSR1, &action, &previous);
    SyncCall call;
    std::atomic<bool> returned{false};
    pthread_t caller = pthread_self();
    std::thread limit([&] {
        uint64_t until = now_ns() + limit_ns;
        while (!returned && now_ns() < until) usleep(1000);
        if (returned) return;
        call.target_posted = io_uring_cq_ready(ring.get()) > 0;
        call.interrupted = true;
        while (!returned) {
            pthread_kill(caller, SIGUSR1);
            usleep(10'000);
        }
    });
    call.res = io_uring_register_sync_cancel(ring.get(), &reg);
    returned = true;
    limit.join();
    sigaction(SIGUSR1, &previous, nullptr);
    return call;
}

struct SyncParams {
    Setup setup = Setup::none;
    Place place = Place::poll_pipe;
    bool bounded = false;  // a 1 s timeout instead of none
};

const Register<SyncParams> sync_matrix{{
    .family = cancel,
    .name = "sync-cancel-matches-model",
    .summary = "io_uring_register_sync_cancel() by user_data of a request in each placement: 0 only once it ended, "
               "-ETIME only while it had not, -ENOENT only when nothing matched",
    .needs = {needs_op(IORING_OP_READ), needs_capability("sync_cancel"),
              Need<SyncParams>([](const Probe& probe, const SyncParams& p) { return place_missing(probe, p.place, 0); })},
    // The timeout matters only where the call waits: for work in io-wq.
    .variants = join(grid(setups(&SyncParams::setup, {Setup::none}), axis("place", &SyncParams::place, kPlaces),
                          axis("timeout", &SyncParams::bounded, {{false, "none"}})),
                     grid(setups(&SyncParams::setup, {Setup::none}),
                          axis("place", &SyncParams::place,
                               {{Place::iowq_queued, "iowq_queued"}, {Place::iowq_running, "iowq_running"},
                                {Place::iowq_hashed, "iowq_hashed"}}),
                          axis("timeout", &SyncParams::bounded, {{true, "1s"}}))),
    .body = [](Ctx& ctx, const SyncParams& p) {
        Bench b(ctx, p.setup);
        ScratchFile scratch(ctx);
        size_t target = place_world(ctx, b, p.place, &scratch);
        CancelSqe cancel = place_cancel(b, target, PlaceKey::user_data);
        const size_t from = 0;  // the ring's whole trace, as in async_round()
        // io_uring_register_sync_cancel(3): tv_sec and tv_nsec of -1 mean no timeout.
        io_uring_sync_cancel_reg reg{};
        reg.addr = cancel.addr;
        reg.timeout.tv_sec = p.bounded ? 1 : -1;
        reg.timeout.tv_nsec = p.bounded ? 0 : -1;
        SyncCall call = sync_cancel_bounded(b.ring, reg, 3'000'000'000);
        int res = call.res;
        ctx.metric("sync_res", res_text(res));
        const InFlight& t = b.world.requests[target];
        if (call.interrupted) {
            // "This blocks until the matching request is canceled or the
            // timeout expires": not past its request's end.
            bool target_ended = !b.ring.trace().for_request(t.user_data).empty() || call.target_posted;
            ctx.expect(Check::fail(str("sync cancel by user_data ", t.user_data, " (", t.describe(), ", timeout ",
                                       p.bounded ? "1 s" : "none", ") had not returned after 3 s; the request ",
                                       target_ended ? "had ended" : "had not ended",
                                       "; interrupted by a signal it returned ", res_text(res))));
            drain(ctx, b, from);
            return;
        }
        // "This blocks until the matching request is canceled or the timeout
        // expires": after 0, a running target's end is already due; after
        // -ETIME it had not ended.
        auto ended = [&] { return resolved(b, from) > 0 && !b.ring.trace().for_request(t.user_data).empty(); };
        if (res == -ETIME) {
            b.ring.wait_for(1'000'000);
            ctx.expect_true(!ended(), "sync cancel returned -ETIME although the request had already ended");
        } else if (res == 0 && t.placement == Placement::iowq_running) {
            uint64_t until = now_ns() + 1'000'000'000;
            while (!ended() && now_ns() < until) b.ring.wait_for(until - now_ns());
            ctx.expect_true(ended(), "sync cancel returned 0 but the running request had not ended 1 s later");
        }
        if (t.placement == Placement::iowq_running || t.placement == Placement::iowq_queued) b.ring.settle(kQuietNs);
        drain(ctx, b, from);
        CancelOutcome out = cancel_outcome(b.world, cancel, kMatrixCancel, round_since(b.ring, from), res,
                                           CancelVia::sync_register);
        ctx.expect(out.check);
        record_fit(ctx, out.fit);
    }}};

// --- seeded rounds (stress) ---

// One random round: a random subset of the matrix world, in random order,
// and a random valid key, with or without ALL.
std::string seeded_round(Ctx& ctx, Setup setup, std::mt19937_64& rng, const Probe& probe, const std::string& round) {
    Bench b(ctx, setup);
    for (int i = 0; i < 3; ++i) b.add_pipe(ctx);
    b.register_slots(ctx, {2});
    std::vector<std::function<void()>> adds = {
        [&] { b.read(kA, 0); }, [&] { b.read(kB, 0); }, [&] { b.read(kA, 1); },
        [&] { b.poll(kC, 1); }, [&] { b.read(kB, 2, 0); }, [&] { b.poll(kA, 2, 0); }};
    std::shuffle(adds.begin(), adds.end(), rng);
    size_t n = 1 + rng() % adds.size();
    for (size_t i = 0; i < n; ++i) adds[i]();
    issue(b.ring);
    std::vector<Key> usable;  // user_data alone always is (needs says cancel_all is there)
    for (const auto& [key, name] : kValidKeys)
        if (!flags_missing(probe, key_flags(key) | kAllFlag)) usable.push_back(key);
    Key key = usable[rng() % usable.size()];
    CancelSqe cancel = matrix_cancel(b, key, rng() % 2);
    std::string name;
    for (const Live& l : b.live) name += (name.empty() ? "" : ", ") + l.model.describe();
    return async_round(ctx, b, cancel, round + ", requests {" + name + "}");
}

const Register<SetupOnly> seeded{{
    .family = cancel,
    .name = "seeded-rounds-match-model",
    .summary = "random worlds and keys from the run's seed, many rounds in the stress profile; each round checked "
               "against the model, a failing round named with its seed",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_POLL_ADD), needs_op(IORING_OP_ASYNC_CANCEL),
              needs_capability("cancel_all")},
    .variants = kSetups,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        std::mt19937_64 rng(ctx.seed());
        int rounds = ctx.pick(2, 40, 400);
        std::map<std::string, int> fits;
        for (int round = 0; round < rounds; ++round) {
            // The instance seed comes from the run's --seed and the id
            // (runner.cpp instance_seed()): the same --seed and --filter rerun it.
            std::string name = str("round ", round + 1, " of ", rounds, " (instance seed ", ctx.seed(),
                                   "; rerun with the run's --seed and this id)");
            std::string fit = seeded_round(ctx, p.setup, rng, ctx.probe(), name);
            ctx.add_iterations(1);
            if (ctx.failed()) break;
            ++fits[fit.find("kernel") != std::string::npos ? "kernel_source" : "man_pages"];  // a pass fit one text
        }
        for (const auto& [text, n] : fits) ctx.metric("rounds_fit_" + text, n);
        ctx.metric("seed", std::to_string(ctx.seed()));
    }}};

}  // namespace
