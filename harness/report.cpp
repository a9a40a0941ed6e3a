#include "report.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace uc {
namespace {

void write_all(int fd, const std::string& text, const std::string& what) {
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::runtime_error("cannot write " + what + ": " + std::strerror(errno));
        p += n;
        left -= size_t(n);
    }
}

Fd open_for_writing(const std::string& path, int extra_flags) {
    std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | extra_flags, 0644);
    if (fd < 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
    return Fd(fd);
}

}  // namespace

ReportWriter::ReportWriter(std::string report_path, std::string stream_path)
    : report_path_(std::move(report_path)), jsonl_path_(report_path_ + ".jsonl") {
    jsonl_ = open_for_writing(jsonl_path_, O_CREAT | O_TRUNC | O_APPEND);
    if (!stream_path.empty()) stream_ = open_for_writing(stream_path, O_NOCTTY | O_APPEND);
}

void ReportWriter::append(const Json& line) {
    std::string text = line.dump() + "\n";
    write_all(jsonl_.get(), text, jsonl_path_);
    fsync(jsonl_.get());
    if (stream_) {
        write_all(stream_.get(), text, "stream");
        fsync(stream_.get());  // a tty answers EINVAL; the write itself went out
    }
}

void ReportWriter::header(const Json& header) {
    header_ = header;
    Json line = {{"type", "header"}};
    line.update(header);
    append(line);
}

void ReportWriter::result(const Json& result) {
    results_.push_back(result);
    Json line = {{"type", "result"}};
    line.update(result);
    append(line);
}

Json summarize(const std::vector<Json>& results) {
    Json summary = {{"total", results.size()}};
    for (const char* verdict : {"pass", "fail", "skip", "hang", "crash", "error"}) {
        size_t count = 0;
        for (const Json& r : results) count += r["verdict"] == verdict;
        summary[verdict] = count;
    }
    return summary;
}

std::string ReportWriter::finish(double duration_s) {
    append({{"type", "end"}, {"duration_s", duration_s}});
    Json report;
    for (const char* key : {"schema_version", "tool", "kernel", "liburing", "probe"}) report[key] = header_[key];
    Json run = header_["run"];
    run["duration_s"] = duration_s;
    run["ended"] = "complete";
    report["run"] = run;
    report["results"] = results_;
    report["summary"] = summarize(results_);

    std::string tmp = report_path_ + ".tmp";
    {
        Fd out = open_for_writing(tmp, O_CREAT | O_TRUNC);
        write_all(out.get(), report.dump(2) + "\n", tmp);
        fsync(out.get());
    }
    if (rename(tmp.c_str(), report_path_.c_str()) < 0)
        throw std::runtime_error("cannot write " + report_path_ + ": " + std::strerror(errno));
    unlink(jsonl_path_.c_str());
    return report_path_;
}

}  // namespace uc
