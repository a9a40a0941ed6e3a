// Cost of recording and checking one CQE: what Ring::record() does per CQE
// (timestamp + uc::CqeTrace::add) and uc::multishot_contract() over the
// recorded stream. Tracing must stay far below a race iteration (~20 µs) so
// it never changes race timing; target <= 50 ns per CQE.
// bench/run reads items_per_second (CQEs/s) from --benchmark_format=json.
#include <benchmark/benchmark.h>

#include "checks.h"
#include "compat/uapi.h"
#include "cqe.h"
#include "util.h"

namespace {

// A synthetic multishot stream: `requests` interleaved multishot requests
// (user_data 1..requests), `length` CQEs in all; each request's last CQE lacks
// IORING_CQE_F_MORE, so the contract holds for every one of them.
std::vector<uc::Cqe> multishot_stream(size_t length, uint64_t requests) {
    std::vector<uc::Cqe> stream;
    for (size_t i = 0; i < length; ++i) {
        uint64_t user_data = 1 + i % requests;
        bool last_of_request = i + requests >= length;
        uint32_t flags = IORING_CQE_F_BUFFER | uint32_t(i % 16) << IORING_CQE_BUFFER_SHIFT;
        if (!last_of_request) flags |= IORING_CQE_F_MORE;
        stream.push_back({user_data, last_of_request ? 0 : 64, flags, 0, 0});
    }
    return stream;
}

// As Ring::record(): stamp the CQE with CLOCK_MONOTONIC, append it.
inline void record(uc::CqeTrace& trace, const uc::Cqe& raw) {
    trace.add({raw.user_data, raw.res, raw.flags, uc::now_ns(), raw.ring});
}

// Record a stream, then check every request in it: the per-CQE cost a
// scenario pays for tracing plus its checks.
void record_and_check(benchmark::State& state) {
    size_t length = size_t(state.range(0));
    uint64_t requests = uint64_t(state.range(1));
    std::vector<uc::Cqe> stream = multishot_stream(length, requests);
    uc::CqeTrace trace;
    for (auto _ : state) {
        trace.clear();
        for (const uc::Cqe& cqe : stream) record(trace, cqe);
        for (uint64_t user_data = 1; user_data <= requests; ++user_data) {
            uc::Check check = uc::multishot_contract(trace.all(), user_data, {.final_res = {0}});
            if (!check) state.SkipWithError(check.describe().c_str());
            benchmark::DoNotOptimize(check);
        }
    }
    state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(length));
}
BENCHMARK(record_and_check)->ArgNames({"cqes", "requests"})->Args({64, 1})->Args({4096, 1})->Args({4096, 4});

// Recording alone, in a trace kept at its default capacity over a long race
// (so the halving when it is full is paid for, amortised).
void record_long_race(benchmark::State& state) {
    std::vector<uc::Cqe> stream = multishot_stream(4096, 5);
    uc::CqeTrace trace;
    for (auto _ : state) {
        for (const uc::Cqe& cqe : stream) record(trace, cqe);
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(stream.size()));
}
BENCHMARK(record_long_race);

// The checker alone over an already recorded stream.
void check_only(benchmark::State& state) {
    std::vector<uc::Cqe> stream = multishot_stream(size_t(state.range(0)), 1);
    for (auto _ : state) {
        uc::Check check = uc::multishot_contract(stream, 1, {.final_res = {0}});
        benchmark::DoNotOptimize(check);
    }
    state.SetItemsProcessed(int64_t(state.iterations()) * state.range(0));
}
BENCHMARK(check_only)->ArgName("cqes")->Arg(4096);

}  // namespace

BENCHMARK_MAIN();
