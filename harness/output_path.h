// Where an output named on the command line really goes, decided before the
// first scenario runs. Run as root, a report path may name /dev/null or a
// symlink: the suite must never replace what is not a regular file, and must
// say what is wrong in one line before any work is done.
#pragma once

#include <string>

namespace uc {

enum class OutputKind {
    absent,   // does not exist yet: created (its parent must exist)
    regular,  // an existing regular file: replaced by temp file + rename
    device,   // a character device or FIFO: written in place, never replaced
};

struct OutputTarget {
    std::string path;  // symlinks resolved: the file actually written
    OutputKind kind;
};

struct OutputRules {
    bool allow_device = true;    // false: refuse (the report needs a .jsonl beside it)
    bool create_parent = false;  // true only for the default reports/local/
};

// Throws std::runtime_error("--what PATH: ...") for a directory, a socket or
// block device, a missing parent (unless create_parent), or an unwritable place.
OutputTarget check_output(const std::string& what, const std::string& path, const OutputRules& rules);

// Writes `text` to the target: regular/absent via PATH.tmp + rename (a
// reader never sees half a file), a device in place. Throws on failure.
void write_output(const OutputTarget& target, const std::string& text);

}  // namespace uc
