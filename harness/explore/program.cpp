#include "program.h"

#include <algorithm>
#include <array>

#include "util.h"

namespace uc::explore {

uint64_t SplitMix64::next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t SplitMix64::below(uint64_t bound) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do x = next();
    while (x >= limit);
    return x % bound;
}

uint64_t round_seed(uint64_t seed, uint64_t round) {
    SplitMix64 mix(seed ^ (round * 0xd1b54a32d192ed03ULL));
    return mix.next();
}

namespace {

constexpr uint32_t kNoStep = 0xffff;  // a step id no program has (ids < XMAX_STEPS)

// Relative weights of the default mix: requests dominate, with enough waits
// and cancels that they meet the requests in every state.
struct Weighted {
    unsigned op;
    unsigned weight;
};
constexpr std::array<Weighted, XOP_SELFTEST_GHOST> kMix{{
    {XOP_NOP, 4},           {XOP_WRITE, 14},         {XOP_READ, 12},         {XOP_EVENTFD_READ, 4},
    {XOP_EVENTFD_SIGNAL, 4}, {XOP_POLL_MULTISHOT, 4}, {XOP_RECV_MULTISHOT, 4}, {XOP_TIMEOUT, 5},
    {XOP_TIMEOUT_MULTISHOT, 3}, {XOP_LINKED_READ, 5}, {XOP_CANCEL, 10},      {XOP_CLOSE_WRITER, 2},
    {XOP_WAIT, 12},         {XOP_SLEEP, 2},          {XOP_REFILL, 4},
}};

unsigned op_needs(unsigned op) {
    switch (op) {
        case XOP_POLL_MULTISHOT: return XCAP_POLL_MULTISHOT;
        case XOP_RECV_MULTISHOT: return XCAP_RECV_MULTISHOT;
        case XOP_TIMEOUT_MULTISHOT: return XCAP_TIMEOUT_MULTISHOT;
        default: return 0;
    }
}

unsigned setup_needs(unsigned setup) {
    switch (setup) {
        case XSETUP_COOP_TASKRUN: return XCAP_COOP_TASKRUN;
        case XSETUP_DEFER_TASKRUN: return XCAP_DEFER_TASKRUN;
        case XSETUP_SQPOLL: return XCAP_SQPOLL;
        default: return 0;
    }
}

// Short times mostly (races), a long tail (requests that outlive the round's steps).
uint32_t draw_usec(SplitMix64& rng, uint32_t max) {
    return rng.chance(70) ? rng.between(0, std::min<uint32_t>(50, max)) : rng.between(0, max);
}

struct Generator {
    SplitMix64 rng;
    const GenOptions& options;
    std::vector<Weighted> mix;
    unsigned total = 0;
    std::array<bool, XS_COUNT> closed{};
    std::vector<uint32_t> request_ids;  // steps that queued a request, for cancel targets

    unsigned pick_op() {
        uint64_t x = rng.below(total);
        for (const Weighted& w : mix) {
            if (x < w.weight) return w.op;
            x -= w.weight;
        }
        return mix.back().op;
    }

    void fill(xstep& s) {
        switch (s.op) {
            case XOP_WRITE:
            case XOP_CLOSE_WRITER: {
                std::vector<uint8_t> open;
                for (unsigned i = 0; i < XS_COUNT; ++i)
                    if (!closed[i]) open.push_back(uint8_t(i));
                if (open.empty()) {
                    s.op = XOP_NOP;
                    return;
                }
                s.file = open[rng.below(open.size())];
                s.len = rng.chance(70) ? rng.between(1, 64) : rng.between(1, 1024);
                if (s.op == XOP_CLOSE_WRITER) closed[s.file] = true;
                return;
            }
            case XOP_READ:
            case XOP_LINKED_READ:
                s.file = uint8_t(rng.below(XS_COUNT));
                s.len = rng.chance(70) ? rng.between(1, 64) : rng.between(1, 1024);
                s.usec = draw_usec(rng, 2000);
                return;
            case XOP_POLL_MULTISHOT: {
                static constexpr uint8_t readable[] = {0, 2, 4, XF_EVENTFD};
                s.file = readable[rng.below(4)];
                return;
            }
            case XOP_TIMEOUT:
                s.usec = draw_usec(rng, 3000);
                s.count = rng.chance(50) ? 0 : rng.between(1, 4);
                return;
            case XOP_TIMEOUT_MULTISHOT:
                s.count = rng.between(0, 5);
                // An endless one (count 0) fires until the drain cancels it: not too often.
                s.usec = s.count == 0 ? rng.between(200, 2000) : draw_usec(rng, 1000) + 1;
                return;
            case XOP_CANCEL: {
                bool keys = options.caps & XCAP_CANCEL_KEYS;
                unsigned key = unsigned(rng.below(100));
                s.key = !keys || key < 55 ? XK_USER_DATA : key < 75 ? XK_FD : key < 90 ? XK_FD_ALL : XK_ANY;
                // No request yet: a user_data nothing carries (the cancel finds nothing).
                s.target = request_ids.empty() ? kNoStep : request_ids[rng.below(request_ids.size())];
                s.file = uint8_t(rng.below(XF_COUNT));
                return;
            }
            case XOP_WAIT:
                s.len = rng.between(1, 8);
                s.usec = draw_usec(rng, 500);
                return;
            case XOP_SLEEP:
                s.usec = rng.between(10, 300);
                return;
            case XOP_SELFTEST_GHOST:
                s.target = request_ids.empty() ? kNoStep : request_ids[rng.below(request_ids.size())];
                return;
            default:
                return;
        }
    }
};

bool queues_request(unsigned op) {
    switch (op) {
        case XOP_NOP: case XOP_WRITE: case XOP_READ: case XOP_EVENTFD_READ: case XOP_POLL_MULTISHOT:
        case XOP_RECV_MULTISHOT: case XOP_TIMEOUT: case XOP_TIMEOUT_MULTISHOT: case XOP_LINKED_READ:
            return true;
        default:
            return false;
    }
}

}  // namespace

Program generate(uint64_t seed, uint64_t round, const GenOptions& options) {
    Generator gen{SplitMix64(round_seed(seed, round)), options, {}, 0, {}, {}};
    for (const Weighted& w : kMix) {
        bool listed = options.ops.empty() ||
                      std::find(options.ops.begin(), options.ops.end(), w.op) != options.ops.end();
        if (listed && (op_needs(w.op) & ~options.caps) == 0) gen.mix.push_back(w);
    }
    if (options.selftest_ghost) gen.mix.push_back({XOP_SELFTEST_GHOST, 2});
    if (gen.mix.empty()) gen.mix.push_back({XOP_NOP, 1});
    for (const Weighted& w : gen.mix) gen.total += w.weight;

    Program program;
    if (options.setup) {
        program.setup = *options.setup;
    } else {
        std::vector<unsigned> setups;
        for (unsigned s = 0; s < XSETUP_COUNT; ++s)
            if ((setup_needs(s) & ~options.caps) == 0) setups.push_back(s);
        program.setup = setups[gen.rng.below(setups.size())];
    }
    unsigned length = gen.rng.between(8, 48);
    for (unsigned i = 0; i < length; ++i) {
        xstep s{};
        s.id = i;
        s.op = uint8_t(gen.pick_op());
        gen.fill(s);
        if (queues_request(s.op)) gen.request_ids.push_back(s.id);
        program.steps.push_back(s);
    }
    return program;
}

std::string file_name(unsigned slot) {
    static const char* const names[XF_COUNT] = {"pipe0.r", "pipe0.w", "pipe1.r", "pipe1.w", "sock.r", "sock.w", "eventfd"};
    return slot < XF_COUNT ? names[slot] : "?";
}

static std::string stream_name(unsigned stream) {
    static const char* const names[XS_COUNT] = {"pipe0", "pipe1", "sock"};
    return stream < XS_COUNT ? names[stream] : "?";
}

std::string describe(const xstep& s) {
    std::string head = str("#", s.id, " ", xop_name(s.op));
    switch (s.op) {
        case XOP_WRITE: case XOP_READ: return str(head, " ", stream_name(s.file), " len=", s.len);
        case XOP_LINKED_READ: return str(head, " ", stream_name(s.file), " len=", s.len, " link-timeout=", s.usec, "us");
        case XOP_CLOSE_WRITER: return str(head, " ", stream_name(s.file));
        case XOP_POLL_MULTISHOT: return str(head, " ", file_name(s.file));
        case XOP_TIMEOUT: case XOP_TIMEOUT_MULTISHOT: return str(head, " ", s.usec, "us count=", s.count);
        case XOP_CANCEL:
            switch (s.key) {
                case XK_USER_DATA: return str(head, " user_data of #", s.target);
                case XK_FD: return str(head, " fd ", file_name(s.file));
                case XK_FD_ALL: return str(head, " fd ", file_name(s.file), " all");
                default: return str(head, " any");
            }
        case XOP_WAIT: return str(head, " ", s.len, " CQEs <= ", s.usec, "us");
        case XOP_SLEEP: return str(head, " ", s.usec, "us");
        case XOP_SELFTEST_GHOST: return str(head, " nop reusing user_data of #", s.target);
        default: return head;
    }
}

nlohmann::json program_to_json(const Program& program) {
    nlohmann::json steps = nlohmann::json::array();
    for (const xstep& s : program.steps) steps.push_back(describe(s));
    return {{"setup", xsetup_name(program.setup)}, {"steps", steps}};
}

std::vector<std::string> op_names() {
    std::vector<std::string> names;
    for (const Weighted& w : kMix) names.push_back(xop_name(w.op));
    return names;
}

std::optional<unsigned> op_from_name(const std::string& name) {
    for (unsigned op = 0; op < XOP_SELFTEST_GHOST; ++op)
        if (name == xop_name(op)) return op;
    return std::nullopt;
}

}  // namespace uc::explore
