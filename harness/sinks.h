// Where results go while a run goes on. run_suite() hands every sink the
// same calls in the same order; each output (the JSONL/JSON report, KTAP,
// the progress line, JUnit, the end-of-run summary) is one sink.
#pragma once

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ktap.h"
#include "report.h"
#include "result.h"
#include "scenario.h"

namespace uc {

struct RunOptions;

struct RunStart {
    const Json& header;                // the report's tool/kernel/probe/run header
    const std::vector<Instance>& plan;  // in run order, grouped by family
    std::vector<std::string> notes;     // for people: "note: ..." (checks not done), resume status
};

class ResultSink {
  public:
    virtual ~ResultSink() = default;
    virtual void begin(const RunStart&) {}
    // `index` is the position in the plan; called only for scenarios that run.
    virtual void started(size_t /*index*/, const Instance&) {}
    virtual void result(const Result& r) = 0;
    virtual void end(double /*duration_s*/) {}
};

// The JSONL stream and, at the end, the report (ReportWriter).
class ReportSink : public ResultSink {
  public:
    explicit ReportSink(ReportWriter& writer) : writer_(writer) {}
    void begin(const RunStart& start) override {
        planned_ = start.plan.size();
        writer_.header(start.header);
    }
    void started(size_t index, const Instance& instance) override;
    void result(const Result& r) override;
    void end(double duration_s) override { writer_.finish(duration_s); }

  private:
    ReportWriter& writer_;
    size_t planned_ = 0;
};

class KtapSink : public ResultSink {
  public:
    explicit KtapSink(const std::string& path) : ktap_(std::in_place, path) {}
    void begin(const RunStart& start) override;
    void result(const Result& r) override { ktap_->result(r.to_json()); }
    // Closed before the report is written: under a tiny ulimit -n it needs the descriptor.
    void end(double) override { ktap_.reset(); }

  private:
    std::optional<KtapWriter> ktap_;
};

// JUnit XML from the finished report: must follow the ReportSink.
class JunitSink : public ResultSink {
  public:
    JunitSink(std::string path, const ReportWriter& writer) : path_(std::move(path)), writer_(writer) {}
    void result(const Result&) override {}
    void end(double) override;

  private:
    std::string path_;
    const ReportWriter& writer_;
};

// Progress on stderr: quiet prints nothing; on a terminal a live line
// (i/n, elapsed, failing so far, running id) is rewritten in place and only
// results that did not pass stay on screen; otherwise (CI logs) one line per
// finished scenario. Verbose prints every result and the evidence of those
// that did not pass.
class ProgressSink : public ResultSink {
  public:
    explicit ProgressSink(const RunOptions& options);
    void begin(const RunStart& start) override;
    void started(size_t index, const Instance& instance) override;
    void result(const Result& r) override;
    void end(double) override { clear(); }
    void tick() { draw(); }

  private:
    void note(const std::string& text);
    void draw();
    void clear();

    bool quiet_, verbose_;
    bool live_ = false, drawn_ = false;
    size_t width_ = 80, total_ = 0, index_ = 0, failing_ = 0;
    uint64_t started_ns_ = 0;
    std::string id_;
};

// The end-of-run table (verdicts per family, slowest, not passing, where the
// report went): must follow the ReportSink.
class SummarySink : public ResultSink {
  public:
    SummarySink(std::FILE* out, const ReportWriter& writer) : out_(out), writer_(writer) {}
    void result(const Result&) override {}
    void end(double) override { print_summary(out_, writer_.results(), writer_.report_path()); }

  private:
    std::FILE* out_;
    const ReportWriter& writer_;
};

}  // namespace uc
