// Pieces shared by the cancel family's files (cancel.cpp, cancel_lifetime.cpp):
// the user_data roles, the barrier NOP, and settling a round through
// cancel_accounting().
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <climits>
#include <fstream>
#include <string>
#include <vector>

#include "cancel_checks.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace cancel_family {

using namespace uc;

constexpr uint64_t kTarget = 1;   // the request to cancel
constexpr uint64_t kCancel = 2;   // the cancel request
constexpr uint64_t kOther = 3;    // a request no cancel may touch
constexpr uint64_t kBarrier = 9;  // NOP whose CQE says the SQEs before it were issued
constexpr uint64_t kQuietNs = 20'000'000;  // "nothing more comes": 20 ms of silence

inline const Family cancel{"cancel"};
inline const auto kSetups = grid(setups(&SetupOnly::setup, all_setups()));
// --- shared pieces ---

// Submits what is queued plus a NOP and reaps up to the NOP's CQE. SQEs are
// issued in order, so everything before it reached the kernel (with SQPOLL,
// io_uring_submit() returns before the SQ thread has taken them).
inline void issue(Ring& ring) {
    io_uring_prep_nop(ring.sqe(kBarrier, "barrier nop"));
    ring.submit();
    ring.reap_until_final(kBarrier);
}

inline std::vector<Cqe> round_cqes(const Ring& ring) {
    std::vector<Cqe> out;
    for (const Cqe& cqe : ring.trace().all())
        if (cqe.user_data != kBarrier) out.push_back(cqe);
    return out;
}

// Reaps until every request of the round has its CQE, waits for silence (a
// duplicate would show), then checks the round's accounting.
inline void finish(Ctx& ctx, Ring& ring, const CancelRound& round) {
    auto any_outstanding = [&] {
        for (uint64_t t : round.targets)
            if (ring.is_outstanding(t)) return true;
        for (const CancelRequest& c : round.cancels)
            if (ring.is_outstanding(c.user_data)) return true;
        for (uint64_t o : round.others)
            if (ring.is_outstanding(o)) return true;
        return false;
    };
    while (any_outstanding()) ring.wait();
    ring.settle(kQuietNs);
    ctx.expect(cancel_accounting(round_cqes(ring), round));
}

// The res of the request's first CQE; INT_MIN if it has none.
inline int cqe_res(const Ring& ring, uint64_t user_data) {
    auto cqes = ring.trace().for_request(user_data);
    return cqes.empty() ? INT_MIN : cqes.front().res;
}

inline void prep_pipe_read(Ring& ring, uint64_t user_data, int fd, uint64_t* buf) {
    io_uring_prep_read(ring.sqe(user_data, "pipe read"), fd, buf, sizeof(*buf), 0);
}

// The usual cancel target: a ring in the variant's setup mode with one read
// of an empty pipe issued and pending.
struct PendingPipeRead {
    Ring ring;
    Pipe pipe;
    uint64_t buf = 0;

    PendingPipeRead(Ctx& ctx, Setup setup, uint64_t user_data) : ring(ctx, setup), pipe(make_pipe(ctx)) {
        prep_pipe_read(ring, user_data, pipe.read.get(), &buf);
        issue(ring);
    }
};

// Satisfies a pending pipe read and checks it completes with the data: the
// request was alive, untouched by the cancels before.
inline void complete_pending_read(Ctx& ctx, Ring& ring, uint64_t user_data, int write_fd, const std::string& why) {
    const uint64_t value = 0x0123456789abcdefull;
    send_all(ctx, write_fd, &value, sizeof(value));
    ring.reap_until_final(user_data);
    ctx.expect_eq(cqe_res(ring, user_data), int(sizeof(value)), why);
}

// How many of our io-wq workers (threads named iou-wrk-*) sleep in the
// kernel ('S' or 'D' in /proc/self/task/*/stat): requests blocked there.
inline size_t sleeping_io_workers() {
    DIR* dir = opendir("/proc/self/task");
    if (!dir) return 0;
    size_t sleeping = 0;
    while (dirent* entry = readdir(dir)) {
        if (entry->d_name[0] == '.') continue;
        std::ifstream stat(std::string("/proc/self/task/") + entry->d_name + "/stat");
        std::string line;
        std::getline(stat, line);
        size_t close_paren = line.rfind(')');
        if (line.find("(iou-wrk-") == std::string::npos || close_paren == std::string::npos || close_paren + 2 >= line.size())
            continue;
        char state = line[close_paren + 2];
        sleeping += state == 'S' || state == 'D';
    }
    closedir(dir);
    return sleeping;
}

// Waits until `n` io-wq workers sleep; false after `timeout_ns`.
inline bool wait_for_sleeping_io_workers(size_t n, uint64_t timeout_ns) {
    uint64_t until = now_ns() + timeout_ns;
    while (now_ns() < until) {
        if (sleeping_io_workers() >= n) return true;
        usleep(1000);
    }
    return false;
}

inline const uint64_t kJustTarget[] = {kTarget};
inline const CancelRequest kCancelOfTarget[] = {{kCancel, CancelReport::first_match, kJustTarget}};
inline const CancelRound kTargetRound{.targets = kJustTarget, .cancels = kCancelOfTarget};
}  // namespace cancel_family
