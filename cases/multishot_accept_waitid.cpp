// Multishot operations on processes and on the fixed-file table: one-shot
// waitid for a child stopping, continuing and exiting
// (io_uring_prep_waitid(3)), the multishot waitid io_uring_multishot(7)
// describes, and multishot accept into the fixed-file table with
// IORING_FILE_INDEX_ALLOC (io_uring_prep_accept(3)).
//
// Every multishot request is judged by multishot_contract(): "The final CQE
// for a multishot operation will not have IORING_CQE_F_MORE set", and
// nothing for the request follows it (io_uring_multishot(7)).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <set>

#include "multishot_common.h"
#include "net.h"
#include "probe_helpers.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;
using namespace uc::multishots;
const Family& multishot = multishots::family;

constexpr uint64_t kSendBase = 100;  // sends through accepted fixed files

// --- capability probes ---

// Multishot accept straight into a sparse fixed-file table with
// IORING_FILE_INDEX_ALLOC: a refused sparse registration or an -EINVAL
// answer is absence; a request left pending (no connection comes) takes it.
const CapabilityProbe accept_multishot_direct_probe{"accept_multishot_direct", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_ACCEPT)) return *missing;
    std::string tried = "io_uring_register_files_sparse(2), then IORING_OP_ACCEPT with IORING_ACCEPT_MULTISHOT and "
                        "IORING_FILE_INDEX_ALLOC on a listening loopback TCP socket";
    Fd fd = listening_loopback_socket();
    if (!fd) return untried(tried, "listening socket: " + errno_name(errno));
    int registered = 0;
    SqeAnswer answer = probe_one_sqe([&](io_uring* ring, io_uring_sqe* sqe) {
        registered = io_uring_register_files_sparse(ring, 2);
        io_uring_prep_multishot_accept_direct(sqe, fd.get(), nullptr, nullptr, 0);
    });
    fd.reset();
    if (registered < 0) return answered("io_uring_register_files_sparse(2) for " + tried, registered);
    return answered(tried, answer);
}};

// ===== 1. waitid =====

// A forked child that stops and exits on cue (a byte on `go` each time); killed and reaped if the scenario stops early.
class CuedChild {
  public:
    CuedChild(Ctx& ctx, int exit_code, bool stops) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) < 0) ctx.error("pipe2(): " + errno_name(errno));
        pid_ = fork();
        if (pid_ < 0) ctx.error("fork(): " + errno_name(errno));
        if (pid_ == 0) {  // only async-signal-safe calls from here on
            close(fds[1]);
            char byte;
            if (stops) {
                if (read(fds[0], &byte, 1) != 1) _exit(120);
                raise(SIGSTOP);
            }
            if (read(fds[0], &byte, 1) < 0) _exit(121);  // EOF releases it as well as a byte
            _exit(exit_code);
        }
        close(fds[0]);
        go_.reset(fds[1]);
    }
    ~CuedChild() {
        if (pid_ > 0 && !reaped_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    CuedChild(const CuedChild&) = delete;
    CuedChild& operator=(const CuedChild&) = delete;
    pid_t pid() const { return pid_; }
    void cue(Ctx& ctx) { send_all(ctx, go_.get(), "g", 1); }
    void release() { go_.reset(); }  // EOF on its pipe: it exits
    void mark_reaped() { reaped_ = true; }

  private:
    pid_t pid_ = -1;
    Fd go_;
    bool reaped_ = false;
};

// io_uring_prep_waitid(3) is liburing 2.5+: the same SQE by hand
// (io_waitid_prep() in io_uring/waitid.c reads idtype from len, the id from
// fd, options from file_index, infop from addr2, flags from waitid_flags).
void prep_waitid(io_uring_sqe* sqe, idtype_t idtype, id_t id, siginfo_t* info, int options, unsigned flags) {
    io_uring_prep_rw(compat::op_waitid, sqe, int(id), nullptr, unsigned(idtype), 0);
    sqe->rw_flags = int(flags);  // waitid_flags shares the union
    sqe->file_index = unsigned(options);
    sqe->addr2 = reinterpret_cast<uint64_t>(info);
}

// Submits waitid(P_PID, pid, options), makes the change happen, and checks the answer.
void waitid_for(Ctx& ctx, Ring& ring, pid_t pid, int options, const std::function<void()>& trigger, int code,
                int status, const char* what) {
    siginfo_t info;
    std::memset(&info, 0xa5, sizeof(info));  // so fields the kernel leaves alone show
    prep_waitid(ring.sqe(kTarget, "waitid"), P_PID, id_t(pid), &info, options, 0);
    ring.submit();
    trigger();
    std::optional<Cqe> cqe = wait_cqe_of(ring, kTarget, kAnswerNs);
    if (!cqe) ctx.must(Check::fail(str("no waitid CQE within 2 s of the child being ", what)));
    // io_uring_prep_waitid(3): "Upon successful return, it fills infop with
    // information of the child process"; waitid(2) returns 0 on success and
    // sets si_pid, si_uid, si_signo "always set to SIGCHLD", si_status and
    // si_code (CLD_EXITED, CLD_STOPPED, CLD_CONTINUED, ...).
    if (!ctx.expect_true(cqe->res == 0 && !cqe->more(), str("waitid for a child ", what, " completes once with res 0: ", cqe->describe())))
        return;
    ctx.expect_eq(info.si_signo, SIGCHLD, str(what, ": si_signo"));
    ctx.expect_eq(info.si_code, code, str(what, ": si_code"));
    ctx.expect_eq(info.si_pid, pid, str(what, ": si_pid"));
    ctx.expect_eq(info.si_uid, getuid(), str(what, ": si_uid"));
    ctx.expect_eq(info.si_status, status, str(what, ": si_status"));
}

const Register<SetupOnly> waitid_states{{
    .family = multishot,
    .name = "waitid-child-stop-continue-exit",
    .summary = "one-shot waitid reports a child stopping (WSTOPPED), continuing (WCONTINUED) and exiting (WEXITED) "
               "with the siginfo waitid(2) describes, and reaps it",
    .needs = {needs_op(compat::op_waitid)},
    .variants = grid(setups(&SetupOnly::setup, all_setups())),
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup, 8);
        CuedChild child(ctx, 42, true);
        pid_t pid = child.pid();
        waitid_for(ctx, ring, pid, WSTOPPED, [&] { child.cue(ctx); }, CLD_STOPPED, SIGSTOP, "stopped");
        waitid_for(ctx, ring, pid, WCONTINUED, [&] { kill(pid, SIGCONT); }, CLD_CONTINUED, SIGCONT, "continued");
        waitid_for(ctx, ring, pid, WEXITED, [&] { child.cue(ctx); }, CLD_EXITED, 42, "exited");
        // waitid(2): without WNOWAIT the child is no longer waitable once reported exited.
        siginfo_t again{};
        int rc = waitid(P_PID, id_t(pid), &again, WEXITED | WNOHANG);
        if (rc < 0 && errno == ECHILD) child.mark_reaped();
        ctx.expect_true(rc < 0 && errno == ECHILD, str("the exited child was reaped by the io_uring waitid (waitid(2) again: ",
                                                       rc < 0 ? errno_name(errno) : "still waitable", ")"));
    }}};

// io_uring_multishot(7): "io_uring_prep_waitid(3) can operate in multishot
// mode by setting IORING_ACCEPT_MULTISHOT in the flags. This allows waiting
// for multiple child process state changes with a single SQE." The flags are
// io_uring_prep_waitid(3)'s `flags`, which that page calls "currently unused,
// and hence 0 should be passed"; io_waitid_prep() (io_uring/waitid.c) answers
// -EINVAL to any. The pages disagree: this scenario holds the kernel to the
// multishot page and fails, naming the discrepancy, when it refuses.
const Register<NoParams> waitid_multishot{{
    .family = multishot,
    .name = "waitid-multishot-flag",
    .summary = "waitid with IORING_ACCEPT_MULTISHOT (io_uring_multishot(7)) reports two children's exits from one SQE",
    .needs = {needs_op(compat::op_waitid), needs_op(IORING_OP_ASYNC_CANCEL)},
    .body = [](Ctx& ctx, const NoParams&) {
        Ring ring(ctx, Setup::none, 8);
        CuedChild first(ctx, 1, false), second(ctx, 2, false);
        siginfo_t info{};
        prep_waitid(ring.sqe(kTarget, "multishot waitid"), P_ALL, 0, &info, WEXITED, IORING_ACCEPT_MULTISHOT);
        ring.submit();
        first.release();
        second.release();
        std::optional<Cqe> cqe = wait_cqe_of(ring, kTarget, kAnswerNs);
        if (!cqe) ctx.must(Check::fail("no CQE within 2 s of two children exiting under a multishot waitid"));
        ctx.metric("multishot_flag_answer", res_text(cqe->res));
        if (cqe->res == -EINVAL && !cqe->more())
            ctx.must(Check::fail("documentation/kernel discrepancy: io_uring_multishot(7) says waitid \"can operate in "
                                 "multishot mode by setting IORING_ACCEPT_MULTISHOT in the flags\"; the kernel answered "
                                 "-EINVAL to that SQE (io_uring_prep_waitid(3) calls the flags unused)",
                                 *cqe));
        // The kernel took the flag: both exits must come from this one request, each with F_MORE
        // while the other child is still to be reported.
        ctx.expect_true(cqe->res == 0 && cqe->more(), "the first exit of two is a res 0 CQE with IORING_CQE_F_MORE: " +
                                                          cqe->describe());
        std::optional<Cqe> next = cqe->more() ? wait_cqe_of(ring, kTarget, kAnswerNs) : std::nullopt;
        ctx.expect_true(next && next->res == 0, "the second exit is reported by the same request");
        if (ring.is_outstanding(kTarget)) cancel_and_settle(ctx, ring);
        else check_contract_settled(ctx, ring, {});
        for (CuedChild* child : {&first, &second}) {
            siginfo_t left{};
            if (waitid(P_PID, id_t(child->pid()), &left, WEXITED | WNOHANG) < 0 && errno == ECHILD) child->mark_reaped();
        }
    }}};

// ===== 2. multishot accept into the fixed-file table =====

constexpr unsigned kSlots = 4;
constexpr unsigned kOccupied = 1;  // a slot filled beforehand: the allocator must skip it

const Register<SetupOnly> accept_direct_alloc{{
    .family = multishot,
    .name = "accept-direct-alloc-enfile",
    .summary = "multishot accept with IORING_FILE_INDEX_ALLOC puts each connection in a free fixed-file slot (res), "
               "which really holds it; a full table ends the request with -ENFILE",
    .needs = {needs_op(IORING_OP_SEND), needs_capability("accept_multishot"), needs_capability("accept_multishot_direct")},
    .variants = grid(setups(&SetupOnly::setup, all_setups())),
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup, 16);
        int registered = io_uring_register_files_sparse(ring.get(), kSlots);
        if (registered < 0) ctx.error("io_uring_register_files_sparse: " + errno_name(registered));
        Pipe filler = make_pipe(ctx);
        int filler_fd = filler.read.get();
        if (int rc = io_uring_register_files_update(ring.get(), kOccupied, &filler_fd, 1); rc != 1)
            ctx.error("io_uring_register_files_update: " + res_text(rc));
        Listener listener = tcp_listener(ctx);
        io_uring_prep_multishot_accept_direct(ring.sqe(kTarget, "multishot accept direct"), listener.fd.get(), nullptr,
                                              nullptr, 0);
        ring.submit();

        std::vector<Fd> clients;
        std::set<int> slots;
        for (unsigned i = 0; i + 1 < kSlots; ++i) {
            clients.push_back(tcp_connect(ctx, listener.port));
            std::optional<Cqe> cqe = wait_cqe_of(ring, kTarget, kAnswerNs);
            if (!cqe) ctx.must(Check::fail(str("no accept CQE within 2 s of connection ", i)));
            // io_uring_prep_accept(3): the multishot direct variant "generates
            // the dynamically chosen direct descriptor in each result", "an
            // unused table index".
            if (!ctx.expect_true(cqe->more() && cqe->res >= 0 && unsigned(cqe->res) < kSlots && cqe->res != int(kOccupied) &&
                                     !slots.count(cqe->res),
                                 str("connection ", i, " must get a free slot of the ", kSlots, "-slot table (slot ",
                                     kOccupied, " taken) with IORING_CQE_F_MORE: ", cqe->describe())))
                break;
            int slot = cqe->res;
            slots.insert(slot);
            // "they can be used by setting IOSQE_FIXED_FILE in the SQE flags
            // member, and setting the SQE fd field to the direct descriptor
            // value": a send through the slot must reach this client.
            std::string hello = str("slot ", slot, " for client ", i);
            io_uring_sqe* send = ring.sqe(kSendBase + i, "send through an accepted fixed file");
            io_uring_prep_send(send, slot, hello.data(), hello.size(), 0);
            send->flags |= IOSQE_FIXED_FILE;
            ring.submit();
            std::optional<Cqe> sent = wait_cqe_of(ring, kSendBase + i, kAnswerNs);
            ctx.expect_true(sent && sent->res == int(hello.size()), str("send through fixed slot ", slot, ": ",
                                                                        sent ? sent->describe() : "no CQE within 2 s"));
            pollfd pfd{clients.back().get(), POLLIN, 0};
            std::string got(hello.size(), '\0');
            ssize_t n = poll(&pfd, 1, 2000) == 1 ? recv(pfd.fd, got.data(), got.size(), MSG_DONTWAIT) : -1;
            ctx.expect_true(n == ssize_t(hello.size()) && got == hello,
                            str("client ", i, " must read what was sent through slot ", slot, " (read ", n, " bytes)"));
        }
        // "When a direct descriptor accept request asks for a table slot to be
        // dynamically chosen but there are no free entries, -ENFILE is
        // returned"; io_uring_multishot(7): an error ends the request.
        clients.push_back(tcp_connect(ctx, listener.port));
        if (!wait_cqe_of(ring, kTarget, kAnswerNs)) {
            io_uring_prep_cancel64(ring.sqe(kCancel, "cancel of the accept"), kTarget, 0);
            ring.submit();
            ring.settle(kQuietNs);
            ctx.must(Check::fail("no CQE within 2 s of a connection arriving with the fixed-file table full"));
        }
        check_contract_settled(ctx, ring, {.final_res = {-ENFILE}});
        ctx.metric("slots_allocated", slots.size());
    }}};

}  // namespace
