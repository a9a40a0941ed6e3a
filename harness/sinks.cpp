#include "sinks.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>

#include "expectations.h"
#include "junit.h"
#include "runner.h"
#include "version.h"

namespace uc {

void ReportSink::started(size_t index, const Instance& instance) {
    writer_.started(instance.id, index, planned_);
}

void ReportSink::result(const Result& r) {
    if (r.resumed)
        writer_.carried_over(r);
    else
        writer_.result(r);
}

// KTAP nests variants under their family: one test per family, in plan order.
void KtapSink::begin(const RunStart& start) {
    std::vector<KtapFamily> families;
    for (const Instance& inst : start.plan) {
        if (families.empty() || families.back().name != inst.scenario->family) families.push_back({inst.scenario->family, 0});
        ++families.back().planned;
    }
    const Json& run = start.header["run"];
    std::vector<std::string> lines = {str("uring-conform ", UC_TOOL_VERSION, ", kernel ",
                                          start.header["kernel"].value("release", ""), " ",
                                          start.header["kernel"].value("machine", ""), ", profile ",
                                          run.value("profile", ""), ", seed ", dump_line(run.value("seed", Json())),
                                          ", filter ", run.value("filter", ""))};
    lines.insert(lines.end(), start.notes.begin(), start.notes.end());
    ktap_->begin(lines, families);
}

void JunitSink::end(double) { write_junit(check_output("--junit", path_, {}), writer_.final_report()); }

ProgressSink::ProgressSink(const RunOptions& options) : quiet_(options.quiet), verbose_(options.verbose) {
    const char* term = getenv("TERM");
    live_ = !quiet_ && isatty(STDERR_FILENO) && !(term && std::strcmp(term, "dumb") == 0);
    winsize size{};
    if (live_ && ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 20) width_ = size.ws_col;
}

void ProgressSink::begin(const RunStart& start) {
    total_ = start.plan.size();
    started_ns_ = now_ns();
    for (const std::string& text : start.notes) note(text);
}

void ProgressSink::started(size_t index, const Instance& instance) {
    index_ = index + 1;
    id_ = instance.id;
    draw();
}

void ProgressSink::result(const Result& r) {
    failing_ += counts_as_failure(r);
    if (quiet_ || r.resumed) return;
    if (live_ && !verbose_ && !is_bad(r.verdict)) return draw();
    clear();
    int digits = int(std::to_string(total_).size());
    std::fprintf(stderr, "[%*zu/%zu] %-5s %7.0f ms  %s\n", digits, index_, total_, verdict_name(r.verdict).c_str(),
                 r.duration_ms, r.id.c_str());
    if (r.verdict != Verdict::pass) std::fprintf(stderr, "      %s\n", r.reason.c_str());
    if (verbose_ && is_bad(r.verdict))
        for (const std::string& line : evidence_lines(r.evidence, 40))
            if (line != "failure: " + r.reason)  // printed just above
                std::fprintf(stderr, "        %s\n", line.c_str());
    draw();
}

void ProgressSink::note(const std::string& text) {
    if (quiet_) return;
    clear();
    std::fprintf(stderr, "%s\n", text.c_str());
}

void ProgressSink::draw() {
    if (!live_ || index_ == 0) return;
    std::string line =
        str("[", index_, "/", total_, "] ", (now_ns() - started_ns_) / 1'000'000'000, "s, ", failing_, " failing  ", id_);
    if (line.size() > width_ - 1) line.resize(width_ - 1);
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    std::fflush(stderr);
    drawn_ = true;
}

void ProgressSink::clear() {
    if (!drawn_) return;
    std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
}

}  // namespace uc
