// IORING_OP_POLL_ADD over every kind of file a ring meets, after
// io_uring_prep_poll_add(3), io_uring_prep_poll_update(3), io_uring_enter(2)
// and poll(2).
//
// The kernel wakes a poll from each file's own wait queue (pipes, sockets,
// eventfd, timerfd, signalfd, the tty layer, epoll, io_uring itself), and a
// ring's own fd and its registered eventfd feed back into the ring, so every
// rule runs over every kind (FileKind). Wakeups coalesce, so rounds are
// judged by units of readiness produced and drained (poll_wakeups()), and
// every request by io_uring_multishot(7)'s F_MORE contract.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <unistd.h>

#include <memory>

#include "net.h"
#include "poll_checks.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;

const Family poll_family{"poll"};

constexpr uint64_t kFirstPoll = 1;     // user_data of the first poll; a re-arm takes the next
constexpr uint64_t kRemove = 100;      // poll removes; a retry takes the next
constexpr unsigned kRemoveAttempts = 50;  // removes answered -EALREADY before the request counts as stuck
constexpr uint64_t kNop = 200;        // NOPs that make a ring readable
constexpr uint64_t kQuietNs = 10'000'000;          // "nothing more comes": 10 ms without a CQE
constexpr uint64_t kHangupQuietNs = 30'000'000;    // the window a held hangup must not re-post in
constexpr uint64_t kIdleNs = 10'000'000;           // an idle file posts nothing in 10 ms
constexpr uint64_t kWakeupBoundNs = 2'000'000'000;  // a produced event must wake the poll within 2 s

enum class FileKind {
    pipe, pipe_write, socketpair, tcp, udp, eventfd, timerfd, signalfd, pty, epoll,
    other_ring, own_ring, cq_eventfd, cq_eventfd_async, other_ring_eventfd,
};

// --- the file under poll ---

// One file of a FileKind: the fd to poll, the events to ask for, how to make
// it ready (produce) and how to take the readiness back (drain), both in
// the kind's units: bytes, eventfd counter values, timer expirations,
// queued signals, or CQEs of the ring whose fd or eventfd is polled.
class Subject {
  public:
    Subject(Ctx& ctx, Ring& ring, FileKind kind) : ctx_(ctx), ring_(ring), kind_(kind) { open(); }
    ~Subject() {
        if (kind_ == FileKind::signalfd) pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
        if (kind_ == FileKind::cq_eventfd || kind_ == FileKind::cq_eventfd_async) io_uring_unregister_eventfd(ring_.get());
    }

    int fd() const { return polled_; }
    unsigned events() const { return kind_ == FileKind::pipe_write ? POLLOUT : POLLIN; }
    PollCounting counting() const {
        // io_uring_register_eventfd(3): "batched completions of CQEs may only
        // trigger a single eventfd notification ... spurious events ... can occur".
        bool hint = kind_ == FileKind::cq_eventfd || kind_ == FileKind::cq_eventfd_async ||
                    kind_ == FileKind::other_ring_eventfd;
        return hint ? PollCounting::at_least_one : PollCounting::exact;
    }
    // Operations per round: a refill of the pipe, a timer re-arm, make one
    // event each (a second would merge into or replace the first).
    unsigned max_burst() const { return kind_ == FileKind::pipe_write || kind_ == FileKind::timerfd ? 1 : 3; }

    // One operation making the file ready; returns the units it produced.
    uint64_t produce(unsigned i) {
        size_t len = 1 + (i * 37) % 200;
        std::string data = pattern(i, len);
        switch (kind_) {
            case FileKind::pipe: case FileKind::socketpair: case FileKind::tcp: case FileKind::udp: case FileKind::pty:
                send_all(ctx_, peer_.get(), data.data(), len);
                return len;
            case FileKind::pipe_write:
                return read_all(peer_.get());  // empties the pipe: space to write again
            case FileKind::eventfd: case FileKind::epoll: {
                uint64_t value = 1 + i % 3;
                if (write(inner_.get(), &value, 8) != 8) ctx_.error("write(eventfd): " + errno_name(errno));
                return value;
            }
            case FileKind::timerfd: {
                itimerspec in_1ms{{0, 0}, {0, 1'000'000}};
                if (timerfd_settime(polled_, 0, &in_1ms, nullptr) < 0) ctx_.error("timerfd_settime: " + errno_name(errno));
                return 1;
            }
            case FileKind::signalfd: {
                // Process-directed: pending for the process, so visible to
                // whichever thread runs the poll's check (the SQPOLL thread).
                sigval value{};
                value.sival_int = int(i);
                if (sigqueue(getpid(), kSignal, value) < 0) ctx_.error("sigqueue: " + errno_name(errno));
                return 1;
            }
            case FileKind::other_ring: case FileKind::other_ring_eventfd:
                io_uring_prep_nop(other_->sqe(kNop, "nop on the polled ring"));
                other_->submit();
                return 1;
            case FileKind::own_ring: case FileKind::cq_eventfd: case FileKind::cq_eventfd_async: {
                io_uring_sqe* sqe = ring_.sqe(kNop, "nop making the ring readable");
                io_uring_prep_nop(sqe);
                // "only events that completed out-of-line will trigger a notification"
                if (kind_ == FileKind::cq_eventfd_async) sqe->flags |= IOSQE_ASYNC;
                ring_.submit();
                return 1;
            }
        }
        return 0;
    }

    // The ring's own CQEs are what makes the polled fd ready.
    bool readiness_is_own_cq() const { return kind_ == FileKind::own_ring; }

    // The polling ring reaped a CQE that is not the poll's: a NOP of the own-ring kinds.
    void absorb(const Cqe& cqe) {
        if (cqe.user_data == kNop) ++own_nops_;
    }

    // Takes back whatever readiness is there now; returns its units.
    uint64_t drain() {
        switch (kind_) {
            case FileKind::pipe: case FileKind::socketpair: case FileKind::tcp: case FileKind::udp: case FileKind::pty:
                return read_all(polled_);
            case FileKind::pipe_write:
                return peer_ ? fill(polled_) : 0;  // no reader left: a write would raise SIGPIPE
            case FileKind::eventfd: case FileKind::epoll: case FileKind::cq_eventfd: case FileKind::cq_eventfd_async:
                return read_counter(kind_ == FileKind::epoll ? inner_.get() : polled_);
            case FileKind::timerfd:
                return read_counter(polled_);
            case FileKind::signalfd: {
                uint64_t n = 0;
                signalfd_siginfo info{};
                while (read(polled_, &info, sizeof(info)) == ssize_t(sizeof(info))) ++n;
                return n;
            }
            case FileKind::other_ring: return reap_other();
            case FileKind::other_ring_eventfd: reap_other(); return read_counter(polled_);
            case FileKind::own_ring: return std::exchange(own_nops_, 0);
        }
        return 0;
    }

    // Closes the peer. The events poll(2) documents for the hangup, or 0
    // where the kind has no peer to lose.
    unsigned hang_up() {
        switch (kind_) {
            // poll(2): POLLHUP "when reading from a channel such as a pipe ...
            // the peer closed its end of the channel".
            case FileKind::pipe: case FileKind::pty: peer_.reset(); return POLLHUP;
            // poll(2): POLLERR "is also set for a file descriptor referring to
            // the write end of a pipe when the read end has been closed".
            case FileKind::pipe_write: peer_.reset(); return POLLERR;
            // poll(2): POLLRDHUP "Stream socket peer closed connection".
            case FileKind::socketpair: case FileKind::tcp: peer_.reset(); return POLLRDHUP;
            default: return 0;
        }
    }
    // Shuts down the peer's writing half but keeps it open: poll(2)
    // POLLRDHUP "Stream socket peer closed connection, or shut down writing
    // half of connection". 0 where the kind is not a stream socket.
    unsigned shut_down_peer_write() {
        if (kind_ != FileKind::socketpair && kind_ != FileKind::tcp) return 0;
        if (shutdown(peer_.get(), SHUT_WR) < 0) ctx_.error("shutdown(SHUT_WR): " + errno_name(errno));
        return POLLRDHUP;
    }
    // What the hangup scenario asks for: the data event plus POLLRDHUP on stream sockets.
    unsigned hangup_events() const {
        return events() | (kind_ == FileKind::socketpair || kind_ == FileKind::tcp ? POLLRDHUP : 0);
    }

  private:
    static constexpr int kSignal = 40;  // a real-time signal: each one queues (signal(7))

    void open() {
        switch (kind_) {
            case FileKind::pipe: case FileKind::pipe_write: {
                Pipe p = make_pipe(ctx_);
                nonblock(p.read.get()), nonblock(p.write.get());
                if (kind_ == FileKind::pipe) {
                    own(std::move(p.read)), peer_ = std::move(p.write);
                } else {
                    // One page: a refill is one event and the pipe stays small.
                    fcntl(p.write.get(), F_SETPIPE_SZ, 4096);
                    own(std::move(p.write)), peer_ = std::move(p.read);
                    fill(polled_);
                }
                break;
            }
            case FileKind::socketpair: case FileKind::tcp: case FileKind::udp: {
                SocketPair s = kind_ == FileKind::tcp ? tcp_loopback(ctx_)
                               : kind_ == FileKind::udp ? udp_loopback(ctx_) : unix_pair(ctx_, SOCK_STREAM);
                nonblock(s.server.get());
                own(std::move(s.server)), peer_ = std::move(s.client);
                break;
            }
            case FileKind::eventfd: case FileKind::cq_eventfd: case FileKind::cq_eventfd_async:
            case FileKind::other_ring_eventfd: {
                own(checked(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd"));
                if (kind_ == FileKind::eventfd) inner_.reset(dup(polled_));
                if (kind_ == FileKind::other_ring_eventfd) {
                    other_ = std::make_unique<Ring>(ctx_, Setup::none, 64);
                    register_eventfd(*other_, io_uring_register_eventfd);
                } else if (kind_ != FileKind::eventfd) {
                    register_eventfd(ring_, kind_ == FileKind::cq_eventfd ? io_uring_register_eventfd
                                                                          : io_uring_register_eventfd_async);
                }
                break;
            }
            case FileKind::timerfd: own(checked(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC), "timerfd_create")); break;
            case FileKind::signalfd: {
                sigset_t set;
                sigemptyset(&set);
                sigaddset(&set, kSignal);
                pthread_sigmask(SIG_BLOCK, &set, &old_mask_);
                own(checked(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC), "signalfd"));
                break;
            }
            case FileKind::pty: {
                own(checked(posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC), "posix_openpt"));
                if (grantpt(polled_) < 0 || unlockpt(polled_) < 0) ctx_.error("grantpt/unlockpt: " + errno_name(errno));
                peer_ = checked(::open(ptsname(polled_), O_RDWR | O_NOCTTY | O_CLOEXEC), "open(pty slave)");
                termios raw{};
                tcgetattr(peer_.get(), &raw);
                cfmakeraw(&raw);  // bytes pass unchanged: no echo, no line editing, no output processing
                tcsetattr(peer_.get(), TCSANOW, &raw);
                break;
            }
            case FileKind::epoll: {
                own(checked(epoll_create1(EPOLL_CLOEXEC), "epoll_create1"));
                inner_ = checked(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd");
                epoll_event ev{};
                ev.events = EPOLLIN;
                if (epoll_ctl(polled_, EPOLL_CTL_ADD, inner_.get(), &ev) < 0) ctx_.error("epoll_ctl: " + errno_name(errno));
                break;
            }
            // A ring's fd polls POLLIN while its CQ holds CQEs (io_uring_poll()
            // in io_uring/io_uring.c): its units are the CQEs reaped.
            case FileKind::other_ring:
                other_ = std::make_unique<Ring>(ctx_, Setup::none, 64);
                polled_ = other_->get()->ring_fd;
                break;
            case FileKind::own_ring: polled_ = ring_.get()->ring_fd; break;
        }
    }

    Fd checked(int fd, const char* what) {
        if (fd < 0) ctx_.error(str(what, ": ", errno_name(errno)));
        return Fd(fd);
    }
    void own(Fd fd) {
        polled_ = fd.get();
        owned_ = std::move(fd);
    }
    void nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }
    void register_eventfd(Ring& ring, int (*reg)(io_uring*, int)) {
        if (int ret = reg(ring.get(), polled_); ret < 0) ctx_.error("io_uring_register_eventfd: " + errno_name(ret));
    }
    uint64_t read_all(int fd) {
        char buf[4096];
        uint64_t n = 0;
        for (ssize_t got; (got = read(fd, buf, sizeof(buf))) > 0;) n += uint64_t(got);
        return n;
    }
    uint64_t fill(int fd) {
        static const std::string kPage(4096, 'f');
        uint64_t n = 0;
        for (ssize_t put; (put = write(fd, kPage.data(), kPage.size())) > 0;) n += uint64_t(put);
        return n;
    }
    uint64_t read_counter(int fd) {
        uint64_t value = 0;
        return read(fd, &value, 8) == 8 ? value : 0;
    }
    uint64_t reap_other() {
        uint64_t n = 0;
        while (other_->wait_for(0)) ++n;
        return n;
    }

    Ctx& ctx_;
    Ring& ring_;
    FileKind kind_;
    int polled_ = -1;
    Fd owned_, peer_, inner_;  // the polled fd (when a kind owns it), its peer, an eventfd behind it
    std::unique_ptr<Ring> other_;
    sigset_t old_mask_{};
    uint64_t own_nops_ = 0;
};

// --- a poll request, re-armed when it ends on its own, and its rounds ---

class Poller {
  public:
    Poller(Ctx& ctx, Ring& ring, Subject& subject, unsigned events, bool multishot)
        : ctx_(ctx), ring_(ring), subject_(subject), events_(events), multishot_(multishot) {}

    // Arms a new request (the first, or after the last one ended).
    void arm() {
        uint64_t user_data = kFirstPoll + requests_.size();
        io_uring_sqe* sqe = ring_.sqe(user_data, multishot_ ? "multishot poll" : "poll");
        if (multishot_)
            io_uring_prep_poll_multishot(sqe, subject_.fd(), events_);
        else
            io_uring_prep_poll_add(sqe, subject_.fd(), events_);
        ring_.submit();
        requests_.push_back(user_data);
        live_ = true;
    }

    // Routes one reaped CQE: the poll's go to the current round.
    void route(const Cqe& cqe) {
        if (cqe.user_data < kFirstPoll || cqe.user_data >= kFirstPoll + requests_.size()) {
            subject_.absorb(cqe);
            return;
        }
        if (cqe.res >= 0 && !rounds_.empty()) rounds_.back().cqes.push_back(cqe);
        if (cqe.user_data == current() && !cqe.more()) live_ = false;
    }

    // One round: `ops` operations make the file ready; waits for the wakeup,
    // drains until the produced units are back. False if no wakeup came.
    bool round(unsigned ops, unsigned first_op) {
        rounds_.push_back({});
        PollRound& r = rounds_.back();
        for (unsigned i = 0; i < ops; ++i) r.produced += subject_.produce(first_op + i), ++r.produce_ops;
        uint64_t until = now_ns() + kWakeupBoundNs;
        if (subject_.readiness_is_own_cq()) {
            // The NOP CQEs are the readiness: leave them in the CQ until the
            // poll's CQE joins them, or reaping them would take the readiness
            // back before a deferred poll check (DEFER_TASKRUN) looks.
            __kernel_timespec bound{2, 0};
            io_uring_cqe* unused = nullptr;
            io_uring_wait_cqes(ring_.get(), &unused, ops + 1, &bound, nullptr);
        }
        auto woke = [&] {
            for (const Cqe& cqe : r.cqes)
                if (unsigned(cqe.res) & events_) return true;
            return false;
        };
        auto drained = [&] { return subject_.counting() == PollCounting::exact ? r.consumed >= r.produced : r.consumed > 0; };
        // Drain only once the wakeup is in: draining earlier would take the
        // readiness back before a slow poll check (SQPOLL's thread, deferred
        // task_work) looked, and the poll would rightly stay silent.
        while (now_ns() < until && !(woke() && drained())) {
            while (auto cqe = ring_.wait_for(woke() ? 0 : 10'000'000)) route(*cqe);
            if (woke()) r.consumed += subject_.drain();
        }
        if (woke()) r.consumed += subject_.drain();
        return woke();
    }

    // Ends the request if it is still live, then lets late CQEs arrive (they
    // count in the last round) so that nothing after the final one goes unseen.
    // io_uring_prep_poll_update(3): -EALREADY means "the execution state of
    // the request has progressed far enough that cancelation is no longer
    // possible"; a multishot poll caught mid-wakeup stays armed, so the remove
    // is retried (bounded) until it finds the request or the request is gone.
    void finish() {
        for (unsigned attempt = 0; live_ && attempt < kRemoveAttempts; ++attempt) {
            uint64_t remove = kRemove + attempt;
            io_uring_prep_poll_remove(ring_.sqe(remove, "poll remove"), current());
            ring_.submit();
            removes_.push_back(remove);
            std::optional<int> answer;
            while (!answer) {
                Cqe cqe = ring_.wait();
                if (cqe.user_data == remove)
                    answer = cqe.res;
                else
                    route(cqe);
            }
            if (*answer != -EALREADY) {
                removed_ = *answer == 0;
                break;
            }
            for (const Cqe& cqe : ring_.settle(1'000'000)) route(cqe);
        }
        // The removed request's final CQE may come before or after the remove's own.
        if (removed_ && live_)
            for (const Cqe& cqe : ring_.reap_until_final(current())) route(cqe);
        for (const Cqe& cqe : ring_.settle(kQuietNs)) route(cqe);
    }

    // Takes over a request armed some other way (a poll update renamed it).
    void adopt(uint64_t user_data) {
        requests_ = {user_data};
        live_ = true;
    }

    bool live() const { return live_; }
    uint64_t current() const { return requests_.back(); }
    const std::vector<uint64_t>& requests() const { return requests_; }
    const std::vector<PollRound>& rounds() const { return rounds_; }
    std::vector<PollRound>& rounds() { return rounds_; }
    bool removed() const { return removed_; }
    const std::vector<uint64_t>& removes() const { return removes_; }

  private:
    Ctx& ctx_;
    Ring& ring_;
    Subject& subject_;
    unsigned events_;
    bool multishot_;
    std::vector<uint64_t> requests_;
    std::vector<PollRound> rounds_;
    std::vector<uint64_t> removes_;
    bool live_ = false, removed_ = false;
};

// io_uring_prep_poll_add(3): each request's CQEs but the last carry
// IORING_CQE_F_MORE, exactly one final CQE ends it and nothing follows. One
// that ended on its own reported events ("terminated ... this flag will not
// be set"); the last one, removed, ends with -ECANCELED.
void check_requests(Ctx& ctx, const Ring& ring, const Poller& poller) {
    const std::vector<Cqe>& trace = ring.trace().all();
    for (uint64_t user_data : poller.requests()) {
        bool removed = poller.removed() && user_data == poller.current();
        MultishotExpect expect{.final_res = {}};
        if (removed) expect.final_res = {-ECANCELED};
        if (!ctx.expect(multishot_contract(trace, user_data, expect))) return;
        if (removed) continue;
        for (const Cqe& cqe : trace)
            if (cqe.user_data == user_data && !cqe.more() && cqe.res <= 0)
                ctx.expect(Check::fail("a poll that ended on its own must end with its events, not an error", cqe));
    }
    // io_uring_enter(2) POLL_REMOVE: "If found, the res field ... will
    // contain 0. If not found, res will contain -ENOENT, or -EALREADY".
    for (uint64_t remove : poller.removes())
        if (!ctx.expect(single_completion(trace, remove, {0, -ENOENT, -EALREADY}))) return;
    if (!poller.removes().empty())
        ctx.expect_true(!poller.live(), str("the poll is still armed after ", poller.removes().size(),
                                            " removes answered -EALREADY ('will complete shortly')"));
    ctx.metric("remove_attempts", poller.removes().size());
}

// --- scenarios ---

struct KindParams {
    Setup setup;
    FileKind file;
};

// The pty kind needs a working /dev/ptmx, which a minimal guest without a
// devpts mount lacks (opening it answers ENOENT): the environment's absence,
// tried before the fork.
template <typename P>
Need<P> pty_needs() {
    return Need<P>([](const Probe&, const P& p) -> std::optional<std::string> {
        if (p.file != FileKind::pty) return std::nullopt;
        int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            return std::nullopt;
        }
        return "this environment cannot open a pty (posix_openpt: " + errno_name(errno) + "; devpts not mounted?)";
    });
}

const std::initializer_list<std::pair<FileKind, std::string>> kFileKinds = {{FileKind::pipe, "pipe"},
            {FileKind::pipe_write, "pipe_write"},
            {FileKind::socketpair, "socketpair"},
            {FileKind::tcp, "tcp"},
            {FileKind::udp, "udp"},
            {FileKind::eventfd, "eventfd"},
            {FileKind::timerfd, "timerfd"},
            {FileKind::signalfd, "signalfd"},
            {FileKind::pty, "pty"},
            {FileKind::epoll, "epoll"},
            {FileKind::other_ring, "other_ring"},
            {FileKind::own_ring, "own_ring"},
            {FileKind::cq_eventfd, "cq_eventfd"},
            {FileKind::cq_eventfd_async, "cq_eventfd_async"},
            {FileKind::other_ring_eventfd, "other_ring_eventfd"}};
const auto kEveryKind = grid(setups(&KindParams::setup, all_setups()), axis("file", &KindParams::file, kFileKinds));

void report_rounds(Ctx& ctx, const Poller& poller) {
    uint64_t cqes = 0;
    for (const PollRound& r : poller.rounds()) cqes += r.cqes.size();
    ctx.metric("rounds", poller.rounds().size());
    ctx.metric("poll_cqes", cqes);
    ctx.metric("requests", poller.requests().size());
    ctx.add_iterations(poller.rounds().size());
}

const Register<KindParams> multishot_wakeups{{
    .family = poll_family,
    .name = "multishot-wakeups-conserved",
    .summary = "multishot poll: every produced event wakes it, drained units match produced ones, one final CQE",
    .needs = {needs_op(IORING_OP_POLL_ADD), needs_op(IORING_OP_POLL_REMOVE), needs_op(IORING_OP_NOP),
              pty_needs<KindParams>()},
    .variants = kEveryKind,
    .body = [](Ctx& ctx, const KindParams& p) {
        Ring ring(ctx, p.setup, 64);
        Subject subject(ctx, ring, p.file);
        Poller poller(ctx, ring, subject, subject.events(), true);
        poller.arm();

        unsigned rounds = ctx.pick(12u, 64u, 512u), op = 0;
        for (unsigned k = 0; k < rounds; ++k) {
            // A poll that ended on its own is re-armed, as the page tells applications to do.
            if (!poller.live()) poller.arm();
            unsigned ops = 1 + k % subject.max_burst();
            bool woke = poller.round(ops, op);
            op += ops;
            if (!woke) break;  // a lost wakeup: the checker names the round
        }
        poller.finish();

        check_requests(ctx, ring, poller);
        ctx.expect(poll_wakeups(poller.rounds(), {subject.events(), subject.counting()}));
        report_rounds(ctx, poller);
    }}};

const Register<KindParams> oneshot_level{{
    .family = poll_family,
    .name = "oneshot-level-then-edge",
    .summary = "one-shot poll of a ready file completes at once, of an idle file only once an event comes; one CQE each",
    .needs = {needs_op(IORING_OP_POLL_ADD), needs_op(IORING_OP_NOP), pty_needs<KindParams>()},
    // COOP_TASKRUN differs from none only in when task_work runs, which the
    // multishot scenario covers; three modes keep the quick profile short.
    .variants = grid(setups(&KindParams::setup, {Setup::none, Setup::defer_taskrun, Setup::sqpoll}),
                     axis("file", &KindParams::file, kFileKinds)),
    .body = [](Ctx& ctx, const KindParams& p) {
        Ring ring(ctx, p.setup, 64);
        Subject subject(ctx, ring, p.file);
        Poller poller(ctx, ring, subject, subject.events(), false);

        // io_uring_enter(2): the initial poll "is level triggered, i.e. if
        // there is data ready or events pending etc. at the time of
        // submission a corresponding CQE will be posted."
        poller.rounds().push_back({});
        PollRound& ready = poller.rounds().back();
        ready.produced = subject.produce(0), ready.produce_ops = 1;
        poller.arm();
        uint64_t until = now_ns() + kWakeupBoundNs;
        while (poller.live() && now_ns() < until)
            if (auto cqe = ring.wait_for(10'000'000)) poller.route(*cqe);
        for (uint64_t end = now_ns() + kWakeupBoundNs; ready.consumed < ready.produced && now_ns() < end;)
            ready.consumed += subject.drain(), usleep(ready.consumed ? 0 : 1000);
        if (subject.counting() == PollCounting::at_least_one) ready.consumed += subject.drain();

        // An idle file: no completion until an event makes it ready. (Not
        // for a ring's eventfd: its notifications "can occur" spuriously.)
        poller.arm();
        for (const Cqe& cqe : ring.settle(kIdleNs)) poller.route(cqe);
        if (subject.counting() == PollCounting::exact && !poller.live())
            ctx.expect(Check::fail("a one-shot poll of an idle " + poll_mask_names(subject.events()) +
                                       " file completed before any event", ring.trace().tail(1).at(0)));
        if (poller.live()) poller.round(1, 1);
        for (const Cqe& cqe : ring.settle(kQuietNs)) poller.route(cqe);

        // io_uring_prep_poll_add(3): "When the specified event has triggered,
        // a completion CQE is posted and no more events will be generated."
        for (uint64_t user_data : poller.requests()) ctx.expect(single_completion(ring.trace().all(), user_data));
        ctx.expect(poll_wakeups(poller.rounds(), {subject.events(), subject.counting()}));
        report_rounds(ctx, poller);
    }}};

struct HupParams {
    Setup setup;
    FileKind file;
};

// Data first, so the request is live and working; then the peer closes
// (or shuts down writing): the poll reports the documented event, then ends
// or stays quiet, never re-posting the held state.
void hangup_then_quiet(Ctx& ctx, const HupParams& p, bool shut_write) {
    const char* what = shut_write ? "shutdown(SHUT_WR)" : "close";
    Ring ring(ctx, p.setup, 64);
    Subject subject(ctx, ring, p.file);
    Poller poller(ctx, ring, subject, subject.hangup_events(), true);
    poller.arm();
    poller.round(1, 0);  // data first: the request is live and working

    unsigned expected = shut_write ? subject.shut_down_peer_write() : subject.hang_up();
    poller.rounds().push_back({});  // the hangup's CQEs collect here
    uint64_t until = now_ns() + kWakeupBoundNs;
    auto hup_seen = [&] {
        for (const Cqe& cqe : poller.rounds().back().cqes)
            if (unsigned(cqe.res) & expected) return true;
        return false;
    };
    while (!hup_seen() && poller.live() && now_ns() < until)
        if (auto cqe = ring.wait_for(10'000'000)) poller.route(*cqe);
    // Drain what is left so that only the held hangup state remains.
    subject.drain();
    for (const Cqe& cqe : ring.settle(kHangupQuietNs)) poller.route(cqe);
    std::vector<Cqe> hup_cqes = poller.rounds().back().cqes;
    bool ended = !poller.live();
    poller.finish();

    ctx.expect_true(hup_seen(), str("no poll CQE reported ", poll_mask_names(expected), " within 2 s of the peer's ", what));
    // io_uring_enter(2): completions beyond the first "are edge
    // triggered". The close or shutdown is one event (the peer's side wakes the
    // queue a few times at most); a poll that re-posts the held
    // hangup state would post without bound. Never loops.
    ctx.expect_true(hup_cqes.size() <= 4, str(hup_cqes.size(), " poll CQEs in the 30 ms after the peer's ", what, ": ",
                                              "a held hangup must not re-post (edge triggered)"));
    check_requests(ctx, ring, poller);
    ctx.metric("hangup_cqes", hup_cqes.size());
    ctx.metric("hangup_ended_request", ended);
    if (!hup_cqes.empty()) ctx.metric("hangup_events", poll_mask_names(unsigned(hup_cqes.front().res)));
}

const Register<HupParams> hangup{{
    .family = poll_family,
    .name = "peer-close-hangup-bounded",
    .summary = "multishot poll reports the peer's close with the events poll(2) documents, then ends or stays quiet",
    .needs = {needs_op(IORING_OP_POLL_ADD), needs_op(IORING_OP_POLL_REMOVE), pty_needs<HupParams>()},
    .variants = grid(setups(&HupParams::setup, all_setups()),
                     axis("file", &HupParams::file, {{FileKind::pipe, "pipe"}, {FileKind::pipe_write, "pipe_write"},
                                                     {FileKind::socketpair, "socketpair"}, {FileKind::tcp, "tcp"},
                                                     {FileKind::pty, "pty"}})),
    .body = [](Ctx& ctx, const HupParams& p) { hangup_then_quiet(ctx, p, false); }}};

const Register<HupParams> shutdown_write{{
    .family = poll_family,
    .name = "peer-shutdown-write-rdhup",
    .summary = "multishot poll reports POLLRDHUP once the stream peer shuts down writing (still open), then ends or stays quiet",
    .needs = {needs_op(IORING_OP_POLL_ADD), needs_op(IORING_OP_POLL_REMOVE)},
    .variants = grid(setups(&HupParams::setup, all_setups()),
                     axis("file", &HupParams::file, {{FileKind::socketpair, "socketpair"}, {FileKind::tcp, "tcp"}})),
    .body = [](Ctx& ctx, const HupParams& p) { hangup_then_quiet(ctx, p, true); }}};

// io_uring_prep_poll_update(3) on a kernel without it answers -EINVAL.
const CapabilityProbe poll_update_probe{"poll_update", [](const Probe& probe) {
    if (auto missing = lacks_op(probe, IORING_OP_POLL_REMOVE)) return *missing;
    SqeAnswer answer = probe_one_sqe([](io_uring*, io_uring_sqe* sqe) {
        io_uring_prep_poll_update(sqe, 0x5eed, 0x5eed, POLLIN, IORING_POLL_UPDATE_EVENTS | IORING_POLL_UPDATE_USER_DATA);
    });
    return answered("IORING_POLL_UPDATE_EVENTS|USER_DATA of a user_data never submitted", answer);
}};

const Register<SetupOnly> update{{
    .family = poll_family,
    .name = "update-mask-user-data-multi",
    .summary = "poll update swaps the mask and user_data and turns one-shot multishot; unknown target -ENOENT",
    .needs = {needs_op(IORING_OP_POLL_ADD), needs_capability("poll_update")},
    .variants = grid(setups(&SetupOnly::setup, all_setups())),
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup, 64);
        Subject subject(ctx, ring, FileKind::eventfd);
        constexpr uint64_t kOld = 50, kUpdate = 51, kUnknown = 52;
        // An eventfd never raises POLLPRI: the original request just waits.
        io_uring_prep_poll_add(ring.sqe(kOld, "poll for POLLPRI"), subject.fd(), POLLPRI);
        ring.submit();
        Poller poller(ctx, ring, subject, POLLIN, true);
        // IORING_POLL_UPDATE_EVENTS replaces the mask, _USER_DATA the
        // user_data, and IORING_POLL_ADD_MULTI "will change the poll request
        // from a singleshot to a multishot request".
        io_uring_prep_poll_update(ring.sqe(kUpdate, "poll update"), kOld, kFirstPoll, POLLIN,
                                  IORING_POLL_UPDATE_EVENTS | IORING_POLL_UPDATE_USER_DATA | IORING_POLL_ADD_MULTI);
        io_uring_prep_poll_update(ring.sqe(kUnknown, "poll update of nothing"), 0xdead, 0, POLLIN,
                                  IORING_POLL_UPDATE_EVENTS);
        ring.submit();
        ring.reap(2);
        // The updated request is adopted under its new user_data.
        poller.adopt(kFirstPoll);

        unsigned rounds = ctx.pick(8u, 32u, 256u);
        for (unsigned k = 0; k < rounds && poller.live(); ++k)
            if (!poller.round(1 + k % 3, 3 * k)) break;
        poller.finish();

        const std::vector<Cqe>& trace = ring.trace().all();
        // "On success, 0 is returned"; "-ENOENT: The request identified by user_data could not be located".
        ctx.expect(single_completion(trace, kUpdate, {0}));
        ctx.expect(single_completion(trace, kUnknown, {-ENOENT}));
        ctx.expect_true(ring.trace().for_request(kOld).empty(),
                        "the updated request posted a CQE under its old user_data");
        check_requests(ctx, ring, poller);
        ctx.expect(poll_wakeups(poller.rounds(), {POLLIN, PollCounting::exact}));
        report_rounds(ctx, poller);
    }}};

// The ring's fd while a completion waits in task_work. No man page documents
// polling a ring's fd; io_uring_poll() in io_uring/io_uring.c reports
// EPOLLIN when CQEs are visible "|| io_has_work(ctx)", which is true while
// local task_work is queued (ctx->work_llist, the list DEFER_TASKRUN queues
// completions on since "io_uring: add IORING_SETUP_DEFER_TASKRUN", 6.1); its comment:
// "Users may get EPOLLIN meanwhile seeing nothing in cqring, this pushes them
// to do the flush". Under DEFER_TASKRUN that work runs only in
// io_uring_enter(2) with GETEVENTS (io_uring_setup(2)), which poll(2) and
// another ring's POLL_ADD are not.
constexpr uint64_t kRecv = 300, kWatch = 301;

const Register<SetupOnly> ring_fd_task_work{{
    .family = poll_family,
    .name = "ring-fd-pollin-with-pending-task-work",
    .summary = "a ring whose recv completion waits in task_work reports POLLIN on its fd to poll(2) and to another ring's poll",
    .needs = {needs_op(IORING_OP_RECV), needs_op(IORING_OP_POLL_ADD)},
    .variants = grid(setups(&SetupOnly::setup, all_setups())),
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup, 64);
        Ring watcher(ctx, Setup::none, 64);
        SocketPair sockets = unix_pair(ctx, SOCK_STREAM);
        char buf[64];
        io_uring_prep_recv(ring.sqe(kRecv, "recv"), sockets.server.get(), buf, sizeof(buf), 0);
        ring.submit();
        send_all(ctx, sockets.client.get(), "ping", 4);

        // A level check, no wakeup involved: poll(2) with a zero timeout,
        // repeated (SQPOLL's thread may take a moment) within the bound.
        pollfd pfd{ring.get()->ring_fd, POLLIN, 0};
        unsigned checks = 0;
        unsigned cq_ready_at_pollin = 0;
        for (uint64_t until = now_ns() + kWakeupBoundNs; now_ns() < until; usleep(1000)) {
            ++checks;
            unsigned cq_ready = io_uring_cq_ready(ring.get());
            if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN)) {
                cq_ready_at_pollin = cq_ready;
                break;
            }
        }
        bool pollin = pfd.revents & POLLIN;
        // io_uring_enter(2): the initial poll "is level triggered": armed on
        // a ready fd, it completes at once.
        io_uring_prep_poll_add(watcher.sqe(kWatch, "poll of the other ring's fd"), ring.get()->ring_fd, POLLIN);
        watcher.submit();
        std::optional<Cqe> watched = watcher.wait_for(kWakeupBoundNs);
        // Only now does the polled ring enter with GETEVENTS and run its work.
        ring.reap_until_final(kRecv);

        ctx.expect_true(pollin, str("poll(2) never reported POLLIN on the ring's fd in ", checks,
                                    " checks over 2 s while its recv completion was pending"));
        ctx.expect_true(watched && (unsigned(watched->res) & POLLIN),
                        "another ring's POLL_ADD of the ring's fd did not complete with POLLIN while its completion was pending");
        // recv(2): the 4 bytes sent.
        ctx.expect(single_completion(ring.trace().all(), kRecv, {4}));
        ctx.metric("poll_checks", checks);
        // 0 here means the readiness came from the pending work, not from a CQE.
        ctx.metric("cq_ready_at_pollin", cq_ready_at_pollin);
    }}};

}  // namespace
