#include "output_path.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace uc {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void refuse(const std::string& what, const std::string& path, const std::string& why) {
    throw std::runtime_error(what + " " + path + ": " + why);
}

// The file a path names once every symlink is followed, even a dangling one
// (a link to a report not yet written is the report's future place).
std::string follow_symlinks(const std::string& what, const std::string& path) {
    fs::path current = path;
    for (int hops = 0; hops < 40; ++hops) {
        std::error_code ec;
        if (!fs::is_symlink(fs::symlink_status(current, ec))) return current.string();
        fs::path target = fs::read_symlink(current, ec);
        if (ec) refuse(what, path, "cannot read symlink: " + ec.message());
        current = target.is_absolute() ? target : current.parent_path() / target;
    }
    refuse(what, path, "too many levels of symbolic links");
}

void write_fd(int fd, const std::string& text, const std::string& path) {
    for (size_t done = 0; done < text.size();) {
        ssize_t n = write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
        done += size_t(n);
    }
}

}  // namespace

OutputTarget check_output(const std::string& what, const std::string& path, const OutputRules& rules) {
    if (path.empty()) refuse(what, path, "empty path");
    std::string real = follow_symlinks(what, path);
    struct stat st {};
    if (stat(real.c_str(), &st) == 0) {
        if (S_ISREG(st.st_mode)) {
            if (access(real.c_str(), W_OK) != 0) refuse(what, path, std::strerror(errno));
            return {real, OutputKind::regular};
        }
        if (S_ISDIR(st.st_mode)) refuse(what, path, "is a directory (name a file)");
        if ((S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) && rules.allow_device) return {real, OutputKind::device};
        if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))
            refuse(what, path, "is a device, not a regular file (it cannot get a .jsonl beside it; use --stream for devices)");
        refuse(what, path, "is neither a regular file nor a character device");
    }
    if (errno != ENOENT) refuse(what, path, std::strerror(errno));
    fs::path parent = fs::path(real).parent_path();
    if (parent.empty()) parent = ".";
    std::error_code ec;
    if (!fs::exists(parent, ec)) {
        if (!rules.create_parent) refuse(what, path, "directory " + parent.string() + " does not exist");
        fs::create_directories(parent, ec);
        if (ec) refuse(what, path, "cannot create " + parent.string() + ": " + ec.message());
    }
    if (!fs::is_directory(parent, ec)) refuse(what, path, parent.string() + " is not a directory");
    if (access(parent.c_str(), W_OK) != 0) refuse(what, path, "cannot create files in " + parent.string() + ": " + std::strerror(errno));
    return {real, OutputKind::absent};
}

void write_output(const OutputTarget& target, const std::string& text) {
    if (target.kind == OutputKind::device) {
        int fd = open(target.path.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) throw std::runtime_error("cannot write " + target.path + ": " + std::strerror(errno));
        try {
            write_fd(fd, text, target.path);
        } catch (...) {
            close(fd);
            throw;
        }
        close(fd);
        return;
    }
    std::string tmp = target.path + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
    try {
        write_fd(fd, text, tmp);
        fsync(fd);
    } catch (...) {
        close(fd);
        unlink(tmp.c_str());
        throw;
    }
    close(fd);
    if (rename(tmp.c_str(), target.path.c_str()) < 0) {
        int err = errno;
        unlink(tmp.c_str());
        throw std::runtime_error("cannot write " + target.path + ": " + std::strerror(err));
    }
}

}  // namespace uc
