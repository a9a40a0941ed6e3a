// The runner's verdicts for each way a scenario child can end, on the real
// kernel (the self-test scenarios in selftest_cases.cpp).
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "runner.h"

namespace {

namespace fs = std::filesystem;

size_t open_fd_count() {
    size_t count = 0;
    for (const auto& entry : fs::directory_iterator("/proc/self/fd")) (void)entry, ++count;
    return count;
}

long max_rss_kib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

bool process_gone(pid_t pid) { return kill(pid, 0) < 0 && errno == ESRCH; }

// A scratch directory per test, removed afterwards.
class TempDir {
  public:
    TempDir() {
        char pattern[] = "/tmp/uc-runner-test-XXXXXX";
        path_ = mkdtemp(pattern);
    }
    ~TempDir() { fs::remove_all(path_); }
    std::string operator/(const std::string& name) const { return (path_ / name).string(); }

  private:
    fs::path path_;
};

uc::RunOptions quiet_options(const TempDir& dir) {
    uc::RunOptions options;
    options.quiet = true;
    options.report_path = dir / "report.json";
    options.timeout_s = 1;
    return options;
}

std::vector<uc::Instance> instances_of(std::initializer_list<const char*> ids) {
    std::vector<uc::Instance> out;
    for (const char* id : ids) {
        auto found = uc::select_instances(id);
        EXPECT_EQ(found.size(), 1u) << id;
        out.insert(out.end(), found.begin(), found.end());
    }
    return out;
}

uc::Json run_one(const std::string& id, double timeout_s = 3) {
    static const uc::Probe probe = uc::run_probe();
    auto instances = uc::select_instances(id);
    EXPECT_EQ(instances.size(), 1u) << id;
    uc::Settings settings{uc::Profile::quick, 1, timeout_s, std::nullopt};
    return uc::run_instance(instances.at(0), probe, settings).to_json();
}

TEST(Runner, BrokenRuleIsFailWithCqeEvidence) {
    auto r = run_one("selftest/wrong-final-res");
    EXPECT_EQ(r["verdict"], "fail") << r.dump(2);
    EXPECT_NE(r["reason"].get<std::string>().find("ECANCELED"), std::string::npos) << r["reason"];
    ASSERT_TRUE(r["evidence"].contains("cqe_tail"));
    EXPECT_GE(r["evidence"]["cqe_tail"].size(), 2u);
}

TEST(Runner, StuckRequestIsHangNamingIt) {
    auto r = run_one("selftest/stuck-read", 1.5);
    EXPECT_EQ(r["verdict"], "hang") << r.dump(2);
    ASSERT_TRUE(r["evidence"].contains("outstanding"));
    EXPECT_NE(r["evidence"]["outstanding"][0].get<std::string>().find("user_data=42"), std::string::npos);
    EXPECT_LE(r["duration_ms"].get<double>(), 2500);
}

TEST(Runner, WatchdogKillsAnUnresponsiveChild) {
    auto r = run_one("selftest/ignores-watchdog", 1);
    EXPECT_EQ(r["verdict"], "hang") << r.dump(2);
    EXPECT_NE(r["reason"].get<std::string>().find("watchdog"), std::string::npos);
    EXPECT_LE(r["duration_ms"].get<double>(), 2000);
}

TEST(Runner, SignalsAreCrashesNamingTheSignal) {
    auto segv = run_one("selftest/crash-segv");
    EXPECT_EQ(segv["verdict"], "crash");
    EXPECT_EQ(segv["evidence"]["signal"], "SIGSEGV");
    auto abrt = run_one("selftest/crash-abort");
    EXPECT_EQ(abrt["verdict"], "crash");
    EXPECT_EQ(abrt["evidence"]["signal"], "SIGABRT");
}

TEST(Runner, ExitWithoutVerdictIsError) {
    auto r = run_one("selftest/exit-without-verdict");
    EXPECT_EQ(r["verdict"], "error");
    EXPECT_NE(r["reason"].get<std::string>().find("status 7"), std::string::npos);
}

TEST(Runner, SkipNeverHidesAFailure) {
    auto r = run_one("selftest/skip-after-fail");
    EXPECT_EQ(r["verdict"], "fail");
    EXPECT_EQ(r["reason"], "rule broken first");
}

TEST(Runner, LeakedFdsAndChildrenDoNotOutliveTheScenario) {
    size_t fds_before = open_fd_count();
    auto r = run_one("selftest/leak-fds-and-children");
    ASSERT_EQ(r["verdict"], "pass") << r.dump(2);
    pid_t child = r["metrics"]["child_pid"], escaped = r["metrics"]["escaped_pid"];
    EXPECT_TRUE(process_gone(child)) << "leaked child " << child << " survived";
    EXPECT_TRUE(process_gone(escaped)) << "setsid'd child " << escaped << " survived";
    EXPECT_EQ(open_fd_count(), fds_before) << "the runner lost descriptors";
}

TEST(Runner, FloodKeepsAValidBoundedTailAndCountsTheRest) {
    long rss_before = max_rss_kib();
    auto r = run_one("selftest/flood-stdout");
    ASSERT_EQ(r["verdict"], "pass") << r["reason"];
    EXPECT_EQ(r["evidence"]["output_bytes"], 16u << 20);
    std::string tail = r["evidence"]["output_tail"];
    EXPECT_LE(tail.size(), 3 * 4096u);  // 4 KiB of output, each invalid byte as a 3-byte U+FFFD
    EXPECT_EQ(uc::to_valid_utf8(tail), tail);
    EXPECT_NE(tail.find("flood line"), std::string::npos);
    EXPECT_LT(max_rss_kib() - rss_before, 8 * 1024) << "the runner buffered the flood";
}

TEST(Runner, EndlessFloodStillHangsWithinTimeoutPlusOneSecond) {
    auto r = run_one("selftest/flood-forever", 1);
    EXPECT_EQ(r["verdict"], "hang") << r["reason"];
    EXPECT_LE(r["duration_ms"].get<double>(), 2000);
    EXPECT_GT(r["evidence"]["output_bytes"].get<uint64_t>(), 4096u);
}

TEST(Runner, SuiteGoesOnAfterCrashAndHang) {
    TempDir dir;
    uc::RunOptions options = quiet_options(dir);
    uc::ReportWriter writer(options.report_path, "");
    auto instances = instances_of({"selftest/crash-segv", "selftest/ignores-watchdog", "selftest/empty"});
    int status = uc::run_suite(options, uc::run_probe(), instances, writer);
    EXPECT_EQ(status, 1);
    const uc::Json& results = writer.final_report()["results"];
    ASSERT_EQ(results.size(), 3u);
    EXPECT_EQ(results[0]["verdict"], "crash");
    EXPECT_EQ(results[1]["verdict"], "hang");
    EXPECT_EQ(results[2]["verdict"], "pass");
    EXPECT_TRUE(fs::exists(options.report_path));
    EXPECT_FALSE(fs::exists(options.report_path + ".jsonl"));
}

TEST(Runner, KernelWarningDuringAScenarioFailsThatScenarioOnly) {
    TempDir dir;
    uc::RunOptions options = quiet_options(dir);
    options.kmsg_path = dir / "kmsg";
    options.taint_path = dir / "tainted";
    std::ofstream(options.kmsg_path) << "4,1,1,-;WARNING: CPU: 0 PID: 1 at old/warning.c:1 before_the_run\n";
    std::ofstream(options.taint_path) << "0\n";
    setenv("UC_SELFTEST_KMSG", options.kmsg_path.c_str(), 1);
    setenv("UC_SELFTEST_TAINT", options.taint_path.c_str(), 1);
    uc::ReportWriter writer(options.report_path, "");
    auto instances = instances_of({"selftest/empty", "selftest/kernel-warning", "selftest/empty"});
    uc::run_suite(options, uc::run_probe(), instances, writer);
    unsetenv("UC_SELFTEST_KMSG");
    unsetenv("UC_SELFTEST_TAINT");

    const uc::Json& results = writer.final_report()["results"];
    ASSERT_EQ(results.size(), 3u);
    EXPECT_EQ(results[0]["verdict"], "pass") << "a splat from before the run was blamed on the first scenario";
    EXPECT_EQ(results[2]["verdict"], "pass");
    const uc::Json& warned = results[1];
    ASSERT_EQ(warned["verdict"], "fail") << warned.dump(2);
    EXPECT_EQ(warned["reason"],
              "kernel log: WARNING: CPU: 1 PID: 42 at io_uring/io_uring.c:123 io_selftest+0x10/0x20; "
              "kernel taint changed 0 -> 512 (W)");
    std::vector<std::string> log = warned["evidence"]["kernel_log"];
    ASSERT_EQ(log.size(), 3u) << "from the cut-here marker on, kernel records only";
    EXPECT_EQ(log[0], "------------[ cut here ]------------");
    EXPECT_EQ(log[2], "Call Trace:");
    EXPECT_EQ(warned["evidence"]["taint"]["added"], "W");
}

// Runs selftest/empty in a forked copy of this process whose RLIMIT_NOFILE
// leaves `spare` descriptors free; returns the verdict and reason.
std::string verdict_with_spare_fds(const uc::Probe& probe, size_t spare) {
    int report[2];
    if (pipe(report) < 0) return "pipe failed";
    pid_t pid = fork();
    if (pid == 0) {
        close(report[0]);
        rlimit limit{open_fd_count() - 1 + spare, open_fd_count() - 1 + spare};  // minus the directory scan's own fd
        setrlimit(RLIMIT_NOFILE, &limit);
        uc::Settings settings{uc::Profile::quick, 1, 3, std::nullopt};
        auto r = uc::run_instance(uc::select_instances("selftest/empty").at(0), probe, settings);
        std::string text = uc::verdict_name(r.verdict) + ": " + r.reason;
        if (write(report[1], text.data(), text.size()) < 0) _exit(1);
        _exit(0);
    }
    close(report[1]);
    std::string text;
    char buf[512];
    ssize_t n;
    while ((n = read(report[0], buf, sizeof(buf))) > 0) text.append(buf, size_t(n));
    close(report[0]);
    waitpid(pid, nullptr, 0);
    return text;
}

TEST(Runner, TooFewDescriptorsIsAnErrorNotAnAbort) {
    const uc::Probe probe = uc::run_probe();  // probed with the normal limit
    EXPECT_EQ(verdict_with_spare_fds(probe, 1), "error: runner: pipe2: EMFILE (Too many open files)");
    // Four for the pipes, one for the pidfd: the child itself needs no more.
    EXPECT_EQ(verdict_with_spare_fds(probe, 5), "pass: ");
}

}  // namespace
