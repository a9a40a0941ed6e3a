// The eventfd cancel race (seed 001; reproducers/eventfd-cancel-race.c is the
// same race as a standalone program): N threads, each with its own ring,
// share N blocking eventfds. Per iteration thread n reads eventfd n (read A)
// and eventfd (n+1)%N (read B), writes eventfd (n+2)%N, reaps until the
// write's CQE, cancels both reads whatever their state, and waits for all.
//
// Rule, io_uring_cancelation(7): the canceled request's CQE carries its data,
// -ECANCELED, or -EINTR if it was running; the cancel's CQE 0, -ENOENT or
// -EALREADY, in either order. io_uring_prep_cancel(3) on -EALREADY: "the
// caller must wait for the canceled request to post its completion event".
// So 5 requests give exactly 5 CQEs, every iteration (cancel_accounting()).
// The report saw a read never complete after its cancel returned -ENOENT or
// -EALREADY (5.9 to 5.16): past the iteration deadline that is a hang.
//
// uc::Ring belongs to one thread: each worker creates its own, inside the
// thread (DEFER_TASKRUN rings are bound to their creator). Workers never
// call ctx.skip/error/hang/expect: they record an outcome, and the main
// thread decides once they have all stopped (parked, rings still open, so
// that evidence can include their CQE traces).
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "cancel_checks.h"
#include "cancel_rounds.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;

enum class CancelBy { user_data, fd, any };

// user_data = iteration << kTagBits | tag, iterations from 1, as in the reproducer.
enum Tag : uint64_t { kReadA, kReadB, kWrite, kCancelA, kCancelB, kTagCount };
constexpr unsigned kTagBits = 3;
constexpr unsigned kAllTags = (1u << kTagCount) - 1;
const char* const kTagNames[kTagCount] = {"read A", "read B", "write", "cancel of read A", "cancel of read B"};

// Counts per CQE res; a handful of distinct values are expected. No allocation.
struct ResCounts {
    static constexpr size_t kSlots = 8;
    std::array<int, kSlots> res{};
    std::array<uint64_t, kSlots> count{};
    size_t used = 0;
    uint64_t other = 0;

    void add(int value, uint64_t n = 1) {
        for (size_t i = 0; i < used; ++i)
            if (res[i] == value) {
                count[i] += n;
                return;
            }
        if (used == kSlots) {
            other += n;
            return;
        }
        res[used] = value;
        count[used++] = n;
    }
    uint64_t of(int value) const {
        for (size_t i = 0; i < used; ++i)
            if (res[i] == value) return count[i];
        return 0;
    }
    void merge(const ResCounts& from) {
        for (size_t i = 0; i < from.used; ++i) add(from.res[i], from.count[i]);
        other += from.other;
    }
};

struct Worker {
    unsigned index = 0;
    uint32_t ring_id = 0;  // its ring's number in the CQE evidence
    int read_fd[2] = {-1, -1};
    int write_fd = -1;
    uint64_t read_buf[2] = {};
    uint64_t write_buf = 0;
    // Outcome: written by the worker, read by the main thread once it finished.
    uint64_t iterations = 0;
    uint64_t end_ns = 0;
    ResCounts cancels, reads, writes;
    std::optional<Stop> stop;     // the ring or a submission was refused
    std::optional<Check> broken;  // a round broke the accounting
    uint64_t broken_round = 0;    // its number among all threads' rounds
    std::string missing;          // a CQE still missing at the iteration deadline
    std::atomic<uint64_t> iteration{0};  // progress, for a worker stuck in the kernel
    std::atomic<bool> done{false};
    std::thread thread;
};

struct Race {
    Ctx& ctx;
    Setup setup;
    unsigned threads;
    uint64_t value;
    CancelBy by;
    uint64_t iteration_limit_ns;
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> rounds{0};  // iterations begun, all threads together

    std::mutex mutex;
    std::condition_variable changed;
    unsigned ready = 0, finished = 0;
    bool go = false, released = false;

    void signal(unsigned Race::*counter) {
        std::lock_guard lock(mutex);
        ++(this->*counter);
        changed.notify_all();
    }
    void wait_for_flag(bool Race::*flag) {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return this->*flag; });
    }
};

struct Round {
    std::array<Cqe, 8> cqes;
    size_t count = 0;
    unsigned seen = 0;
};

const char* cancel_by_name(CancelBy by) {
    return by == CancelBy::user_data ? "user_data" : by == CancelBy::fd ? "fd" : "any";
}

// Waits for one CQE, never past `deadline`; false once it passed.
bool reap_one(Ring& ring, Round& round, uint64_t deadline) {
    uint64_t now = now_ns();
    if (now >= deadline) return false;
    std::optional<Cqe> cqe = ring.wait_for(deadline - now);
    if (cqe && round.count < round.cqes.size()) {
        round.cqes[round.count++] = *cqe;
        round.seen |= 1u << (cqe->user_data & ((1u << kTagBits) - 1));
    }
    return true;
}

// The round as cancel_accounting() sees it; `ids` holds its user_data values.
CancelRound describe_round(const Race& race, uint64_t base, std::array<uint64_t, 3>& ids,
                           std::array<CancelRequest, 2>& cancels) {
    ids = {base | kReadA, base | kReadB, base | kWrite};
    std::span<const uint64_t> reads(ids.data(), 2);
    CancelReport report = race.by == CancelBy::any ? CancelReport::count : CancelReport::first_match;
    cancels = {CancelRequest{base | kCancelA, report, race.by == CancelBy::any ? reads : reads.subspan(0, 1)},
               CancelRequest{base | kCancelB, report, race.by == CancelBy::any ? reads : reads.subspan(1, 1)}};
    return {.targets = reads, .cancels = cancels, .others = std::span<const uint64_t>(ids.data() + 2, 1),
            .targets_may_complete = race.value != 0};
}

// At most 5 SQEs are queued before the kernel took the previous ones (their
// CQEs were reaped), so the 8-entry SQ ring cannot be full.
io_uring_sqe* next_sqe(Ring& ring, uint64_t user_data) {
    io_uring_sqe* sqe = io_uring_get_sqe(ring.get());
    if (!sqe) throw Stop{Verdict::error, "SQ ring full in the race loop"};
    io_uring_sqe_set_data64(sqe, user_data);
    return sqe;
}

void prep_cancel(const Race& race, Ring& ring, Worker& w, uint64_t base, Tag cancel, Tag read) {
    io_uring_sqe* sqe = next_sqe(ring, base | cancel);
    switch (race.by) {
        case CancelBy::user_data: io_uring_prep_cancel64(sqe, base | read, 0); break;
        case CancelBy::fd: io_uring_prep_cancel_fd(sqe, w.read_fd[read - kReadA], 0); break;
        case CancelBy::any: io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY); break;
    }
}

// The evidence for a CQE missing at the deadline: which request, on which
// eventfd, what the cancels had returned, and the CQEs that did come.
std::string describe_missing(const Race& race, const Worker& w, uint64_t iteration, const Round& round) {
    std::string missing, came;
    for (unsigned tag = 0; tag < kTagCount; ++tag) {
        if (round.seen & (1u << tag)) continue;
        int fd = tag == kReadA || tag == kReadB ? w.read_fd[tag] : tag == kWrite ? w.write_fd : -1;
        missing += str(missing.empty() ? "" : " and ", kTagNames[tag], " (", fd >= 0 ? str("eventfd ", fd, ", ") : "",
                       "user_data ", (iteration << kTagBits) | tag, ")");
    }
    for (size_t i = 0; i < round.count; ++i) came += str(i ? "; " : "", round.cqes[i].describe());
    std::string head = str("thread ", w.index, " (ring ", w.ring_id, ") iteration ", iteration, ": no CQE for ", missing,
                           " within ", std::round(double(race.iteration_limit_ns) / 1e8) / 10, " s");
    std::string tail = str(" [CQEs this iteration: ", came.empty() ? "none" : came, "] (setup ", setup_name(race.setup),
                           ", cancel by ", cancel_by_name(race.by), ", ", race.threads, " threads, write value ",
                           race.value, ")");
    if (!(round.seen & (1u << kWrite))) return head + ", before any cancel" + tail;
    std::array<uint64_t, 3> ids;
    std::array<CancelRequest, 2> cancels;
    Check check = cancel_accounting({round.cqes.data(), round.count},
                                    describe_round(race, iteration << kTagBits, ids, cancels));
    return head + "; " + check.rule + tail;
}

// One iteration; false when it broke the accounting or missed its deadline
// (recorded in `w`).
bool run_iteration(const Race& race, Ring& ring, Worker& w, uint64_t iteration) {
    uint64_t base = iteration << kTagBits;
    uint64_t deadline = now_ns() + race.iteration_limit_ns;
    Round round;
    auto missed = [&] {
        w.missing = describe_missing(race, w, iteration, round);
        return false;
    };
    // io_uring_prep_*() leave user_data alone.
    for (Tag read : {kReadA, kReadB})
        io_uring_prep_read(next_sqe(ring, base | read), w.read_fd[read], &w.read_buf[read], sizeof(uint64_t), 0);
    io_uring_prep_write(next_sqe(ring, base | kWrite), w.write_fd, &w.write_buf, sizeof(w.write_buf), 0);
    ring.submit();
    while (!(round.seen & (1u << kWrite)))
        if (!reap_one(ring, round, deadline)) return missed();
    prep_cancel(race, ring, w, base, kCancelA, kReadA);
    prep_cancel(race, ring, w, base, kCancelB, kReadB);
    ring.submit();
    while ((round.seen & kAllTags) != kAllTags && round.count < round.cqes.size())
        if (!reap_one(ring, round, deadline)) return missed();

    std::array<uint64_t, 3> ids;
    std::array<CancelRequest, 2> cancels;
    Check check = cancel_accounting({round.cqes.data(), round.count}, describe_round(race, base, ids, cancels));
    if (!check) {
        w.broken = Check::fail(str("thread ", w.index, " (ring ", w.ring_id, ") iteration ", iteration, ": ", check.rule),
                               check.offending);
        return false;
    }
    for (size_t i = 0; i < round.count; ++i) {
        const Cqe& cqe = round.cqes[i];
        Tag tag = Tag(cqe.user_data & ((1u << kTagBits) - 1));
        (tag == kWrite ? w.writes : tag == kReadA || tag == kReadB ? w.reads : w.cancels).add(cqe.res);
    }
    return true;
}

void run_worker(Race& race, Worker& w) {
    std::optional<Ring> ring;
    try {
        ring.emplace(race.ctx, race.setup, 0u, 8u);
        w.ring_id = ring->id();
    } catch (const Stop& stop) {
        w.stop = stop;
    } catch (const std::exception& e) {
        w.stop = Stop{Verdict::error, str("ring setup in a worker: ", e.what())};
    }
    race.signal(&Race::ready);
    race.wait_for_flag(&Race::go);
    try {
        for (uint64_t i = 1; ring && !race.stop.load(std::memory_order_relaxed); ++i) {
            w.iteration.store(i, std::memory_order_relaxed);
            uint64_t round = race.rounds.fetch_add(1, std::memory_order_relaxed) + 1;
            if (!run_iteration(race, *ring, w, i)) {
                w.broken_round = round;
                break;
            }
            w.iterations = i;
        }
        w.end_ns = now_ns();
        // A CQE after the last round's five would be one too many.
        if (ring && !w.broken && w.missing.empty())
            if (auto late = ring->wait_for(10'000'000))
                w.broken = Check::fail(str("thread ", w.index, " (ring ", w.ring_id, "): CQE after the last iteration's five"),
                                       *late);
    } catch (const Stop& stop) {
        w.stop = stop;
    } catch (const std::exception& e) {
        w.stop = Stop{Verdict::error, str("worker ", w.index, ": ", e.what())};
    }
    w.done = true;
    race.signal(&Race::finished);
    race.wait_for_flag(&Race::released);  // keep the ring open while the main thread reads evidence
}

// Lets every parked worker go and joins it; detaches one that never
// finished (stuck in the kernel): joining it would hang the scenario.
struct ReleaseWorkers {
    Race& race;
    Worker* workers;
    ~ReleaseWorkers() {
        {
            std::lock_guard lock(race.mutex);
            race.released = true;
            race.go = true;
        }
        race.stop = true;
        race.changed.notify_all();
        for (unsigned i = 0; i < race.threads; ++i) {
            if (!workers[i].thread.joinable()) continue;
            if (workers[i].done)
                workers[i].thread.join();
            else
                workers[i].thread.detach();
        }
    }
};

// "ENOENT" for -ENOENT, "8" for 8: metric key suffixes.
std::string res_key(int res) { return res < 0 ? errno_name(res) : std::to_string(res); }

void record_metrics(Ctx& ctx, const Race& race, const Worker* workers, uint64_t started_ns) {
    ResCounts cancels, reads, writes;
    uint64_t total = 0, fewest = UINT64_MAX, ended_ns = started_ns;
    for (unsigned i = 0; i < race.threads; ++i) {
        const Worker& w = workers[i];
        total += w.iterations;
        fewest = std::min(fewest, w.iterations);
        ended_ns = std::max(ended_ns, w.end_ns);
        cancels.merge(w.cancels);
        reads.merge(w.reads);
        writes.merge(w.writes);
    }
    double seconds = double(ended_ns - started_ns) / 1e9;
    ctx.add_iterations(total);
    ctx.metric("iterations_per_s", seconds > 0 ? std::round(double(total) / seconds) : 0.0);
    ctx.metric("iterations_fewest_per_thread", fewest);
    ctx.metric("seconds", std::round(seconds * 1000) / 1000);
    // With ANY the cancel's res is a count (the kernel treats ANY as ANY|ALL).
    const std::vector<int> expected_cancels = race.by == CancelBy::any ? std::vector<int>{0, 1, 2}
                                                                        : std::vector<int>{0, -ENOENT, -EALREADY};
    auto record = [&](const char* prefix, const ResCounts& counts, const std::vector<int>& expected) {
        for (int res : expected) ctx.metric(str(prefix, res_key(res)), counts.of(res));
        for (size_t i = 0; i < counts.used; ++i)
            if (std::find(expected.begin(), expected.end(), counts.res[i]) == expected.end())
                ctx.metric(str(prefix, res_key(counts.res[i])), counts.count[i]);
        if (counts.other) ctx.metric(str(prefix, "other"), counts.other);
    };
    record(race.by == CancelBy::any ? "cancel_count_" : "cancel_", cancels, expected_cancels);
    record("read_", reads, {8, -ECANCELED, -EINTR});
    record("write_", writes, {8});
}

// The verdict, from the main thread once every worker stopped (or the
// deadline came): stuck or missing CQEs are a hang, a broken round a fail,
// a refused ring or submission whatever the worker met. The evidence reads
// the parked workers' rings; a worker that never stopped may still touch its
// own while it is read, a risk taken only when the verdict is already a hang.
void judge(Ctx& ctx, const Race& race, const Worker* workers, uint64_t started_ns) {
    record_metrics(ctx, race, workers, started_ns);
    for (unsigned i = 0; i < race.threads; ++i)
        if (!workers[i].done)
            ctx.hang(str("thread ", i, " still inside the kernel at iteration ", workers[i].iteration.load(),
                         " past its deadline: a bounded wait did not return"));
    const Worker* first_missing = nullptr;
    for (unsigned i = 0; i < race.threads; ++i)
        if (!workers[i].missing.empty()) {
            ctx.note(workers[i].missing);
            if (!first_missing) first_missing = &workers[i];
        }
    if (first_missing) ctx.hang(first_missing->missing);
    // Whether a cancel meets a read in the state that breaks the rule is a
    // matter of timing: each iteration is a round, each thread stops at its
    // first broken one.
    uint64_t rounds = race.rounds.load(), violations = 0;
    for (unsigned i = 0; i < race.threads; ++i) violations += workers[i].broken ? 1 : 0;
    ctx.timing_dependent(rounds, violations);
    for (unsigned i = 0; i < race.threads; ++i)
        if (const Worker& w = workers[i]; w.broken)
            ctx.expect(Check::fail(str("violated in round ", w.broken_round, " of ", rounds, ": ", w.broken->rule),
                                   w.broken->offending));
    for (unsigned i = 0; i < race.threads; ++i)
        if (workers[i].stop) throw *workers[i].stop;
}

// Waits on the race's condition until `done` or `until_ns`; false on timeout.
template <typename Done>
bool wait_until(Race& race, uint64_t until_ns, Done done) {
    std::unique_lock lock(race.mutex);
    while (!done()) {
        uint64_t now = now_ns();
        if (now >= until_ns) return false;
        race.changed.wait_for(lock, std::chrono::nanoseconds(std::min<uint64_t>(until_ns - now, 50'000'000)));
    }
    return true;
}

struct RaceParams {
    Setup setup;
    unsigned threads;
    unsigned value;  // what the writes add to the eventfds (0: a write wakes nobody)
    CancelBy cancel;
};

const Register<RaceParams> eventfd_race{{
    .family = cancel_family::cancel,
    .name = "eventfd-race-every-request-completes",
    .summary = "N threads read, write and cancel-read shared eventfds: every request yields exactly one CQE each iteration",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_WRITE), needs_op(IORING_OP_ASYNC_CANCEL),
              when(&RaceParams::cancel, CancelBy::fd, needs_capability("cancel_fd")),
              when(&RaceParams::cancel, CancelBy::any, needs_capability("cancel_any"))},
    .variants = grid(setups(&RaceParams::setup, all_setups()), axis("threads", &RaceParams::threads, {2u, 4u, 8u, 16u}),
                     axis("value", &RaceParams::value, {0u, 1u}),
                     axis("cancel", &RaceParams::cancel,
                          {{CancelBy::user_data, "user_data"}, {CancelBy::fd, "fd"}, {CancelBy::any, "any"}})),
    .body = [](Ctx& ctx, const RaceParams& p) {
        CancelBy by = p.cancel;
        unsigned threads = p.threads;
        double budget_s = ctx.budget_s(0.05, 3, 60);
        uint64_t budget_ns = uint64_t(budget_s * 1e9);
        // The last iteration must be able to miss its deadline before the
        // scenario's (budget_s() keeps the budget under half the watchdog's).
        uint64_t now = now_ns(), end = now + budget_ns;
        uint64_t room_ns = ctx.deadline_ns() > end ? ctx.deadline_ns() - end : 0;
        Race race{ctx, p.setup, threads, uint64_t(p.value), by,
                  std::clamp<uint64_t>(room_ns / 2, 100'000'000, 5'000'000'000)};
        std::vector<Fd> eventfds;
        for (unsigned i = 0; i < threads; ++i) {
            // Blocking: with EFD_NONBLOCK a read would end -EAGAIN at once.
            eventfds.emplace_back(eventfd(0, EFD_CLOEXEC));
            if (!eventfds.back()) ctx.error("eventfd: " + errno_name(errno));
        }
        auto workers = std::make_unique<Worker[]>(threads);
        ReleaseWorkers release{race, workers.get()};
        for (unsigned n = 0; n < threads; ++n) {
            Worker& w = workers[n];
            w.index = n;
            w.read_fd[0] = eventfds[n].get();
            w.read_fd[1] = eventfds[(n + 1) % threads].get();
            w.write_fd = eventfds[(n + 2) % threads].get();
            w.write_buf = race.value;
            w.thread = std::thread(run_worker, std::ref(race), std::ref(w));
        }
        if (!wait_until(race, now + 5'000'000'000, [&] { return race.ready == threads; }))
            ctx.error("the workers' rings were not set up within 5 s");
        uint64_t started = now_ns();
        {
            std::lock_guard lock(race.mutex);
            race.go = true;
        }
        race.changed.notify_all();
        wait_until(race, started + budget_ns, [&] { return race.finished > 0; });
        // Past the budget until the threads together ran enough rounds to catch
        // a 5 % violation (SQPOLL rings on few cores run few), within the room.
        uint64_t min_rounds = ctx.rounds_to_catch();
        wait_until(race, now_ns() + room_ns / 4, [&] { return race.finished > 0 || race.rounds.load() >= min_rounds; });
        race.stop = true;
        wait_until(race, ctx.deadline_ns() - 200'000'000, [&] { return race.finished == threads; });
        ctx.metric("budget_s", budget_s);
        judge(ctx, race, workers.get(), started);
    }}};

}  // namespace
