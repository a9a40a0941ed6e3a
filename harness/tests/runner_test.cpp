// The runner's verdicts for each way a scenario child can end, on the real
// kernel (the self-test scenarios in selftest_cases.cpp).
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "runner.h"

namespace {

uc::Json run_one(const std::string& id, double timeout_s = 3) {
    static const uc::Probe probe = uc::run_probe();
    auto instances = uc::select_instances(id);
    EXPECT_EQ(instances.size(), 1u) << id;
    uc::Settings settings{uc::Profile::quick, 1, timeout_s, std::nullopt};
    return uc::run_instance(instances.at(0), probe, settings);
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

}  // namespace
