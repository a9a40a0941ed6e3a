// Precompiled header (meson cpp_pch): only headers from outside the project,
// which every translation unit pays for and which never change between
// builds. nlohmann/json alone costs several seconds of parsing per file, and
// cqe.h brings it into nearly every one. Project headers stay out, so a
// source that forgets an include of ours still fails to compile. No include
// guard: only ever the first include of a file (meson passes -include).

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <liburing.h>
#include <nlohmann/json.hpp>
