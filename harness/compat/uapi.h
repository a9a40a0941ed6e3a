// io_uring uapi constants newer than Debian's liburing 2.3 headers.
//
// Every value comes from the kernel's include/uapi/linux/io_uring.h (6.12 as
// shipped in Debian's linux-headers-6.12.*-common, later values from the
// mainline header); each is guarded so a newer liburing's definition wins.
// The kernel is asked at run time whether it understands them (probe.cpp):
// defining a constant here never implies support.
#pragma once

#include <liburing.h>

// --- io_uring_setup() flags -------------------------------------------------
#ifndef IORING_SETUP_NO_MMAP
#define IORING_SETUP_NO_MMAP (1U << 14)  // 6.5
#endif
#ifndef IORING_SETUP_REGISTERED_FD_ONLY
#define IORING_SETUP_REGISTERED_FD_ONLY (1U << 15)  // 6.5
#endif
#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)  // 6.6
#endif
#ifndef IORING_SETUP_HYBRID_IOPOLL
#define IORING_SETUP_HYBRID_IOPOLL (1U << 17)  // 6.13
#endif

// --- IORING_FEAT_* ------------------------------------------------------------
#ifndef IORING_FEAT_REG_REG_RING
#define IORING_FEAT_REG_REG_RING (1U << 13)  // 6.3
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)  // 6.10
#endif
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)  // 6.12
#endif
#ifndef IORING_FEAT_RW_ATTR
#define IORING_FEAT_RW_ATTR (1U << 16)  // 6.14
#endif
#ifndef IORING_FEAT_NO_IOWAIT
#define IORING_FEAT_NO_IOWAIT (1U << 17)  // 6.15
#endif

// --- opcodes past IORING_OP_SENDMSG_ZC (48), in uapi enum order ---------------
// liburing 2.3 ends its enum at SENDMSG_ZC; these are plain ints so that a
// newer liburing, which defines them as enumerators, still compiles.
namespace compat {
inline constexpr int op_read_multishot = 49;  // 6.7
inline constexpr int op_waitid = 50;
inline constexpr int op_futex_wait = 51;
inline constexpr int op_futex_wake = 52;
inline constexpr int op_futex_waitv = 53;
inline constexpr int op_fixed_fd_install = 54;
inline constexpr int op_ftruncate = 55;
inline constexpr int op_bind = 56;
inline constexpr int op_listen = 57;
inline constexpr int op_recv_zc = 58;
inline constexpr int op_epoll_wait = 59;
inline constexpr int op_readv_fixed = 60;
inline constexpr int op_writev_fixed = 61;
inline constexpr int op_pipe = 62;
inline constexpr int op_nop128 = 63;
inline constexpr int op_uring_cmd128 = 64;
static_assert(IORING_OP_SENDMSG_ZC + 1 == op_read_multishot, "compat opcodes must continue liburing's enum");
}  // namespace compat

// --- SQE / CQE flags ------------------------------------------------------------
#ifndef IORING_TIMEOUT_MULTISHOT
#define IORING_TIMEOUT_MULTISHOT (1U << 6)  // 6.4
#endif
#ifndef IORING_ASYNC_CANCEL_USERDATA
#define IORING_ASYNC_CANCEL_USERDATA (1U << 4)  // 6.6
#endif
#ifndef IORING_ASYNC_CANCEL_OP
#define IORING_ASYNC_CANCEL_OP (1U << 5)  // 6.6
#endif
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)  // 6.2
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)  // 6.2
#endif
#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4)  // 6.10
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)  // 6.12
#endif

// --- IORING_OP_MSG_RING flags (sqe->msg_ring_flags) ------------------------------
#ifndef IORING_MSG_RING_FLAGS_PASS
#define IORING_MSG_RING_FLAGS_PASS (1U << 1)  // 6.3: sqe->file_index becomes the target CQE's flags
#endif

// --- provided buffer rings --------------------------------------------------------
#ifndef IOU_PBUF_RING_MMAP
#define IOU_PBUF_RING_MMAP 1U  // 6.4
#endif
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2U  // 6.12
#endif

namespace compat {
// struct io_uring_buf_reg grew a `flags` field (6.4) where liburing 2.3 still
// names the same 16 bits `pad`; this sets them whichever name the header uses.
template <typename Reg>
auto set_buf_reg_flags(Reg& reg, unsigned short flags, int) -> decltype(reg.flags = flags, void()) {
    reg.flags = flags;
}
template <typename Reg>
void set_buf_reg_flags(Reg& reg, unsigned short flags, long) {
    reg.pad = flags;
}
inline void set_buf_reg_flags(io_uring_buf_reg& reg, unsigned short flags) {
    set_buf_reg_flags(reg, flags, 0);
}
}  // namespace compat

namespace compat {
// struct io_uring_getevents_arg's `pad` became `min_wait_usec` in 6.12 (with
// IORING_FEAT_MIN_TIMEOUT; same offset, the struct keeps its size); this sets
// it whichever name the header uses. Older kernels reject a non-zero pad.
template <typename Arg>
auto set_min_wait_usec(Arg& arg, __u32 usec, int) -> decltype(arg.min_wait_usec = usec, void()) {
    arg.min_wait_usec = usec;
}
template <typename Arg>
void set_min_wait_usec(Arg& arg, __u32 usec, long) {
    arg.pad = usec;
}
inline void set_min_wait_usec(io_uring_getevents_arg& arg, __u32 usec) { set_min_wait_usec(arg, usec, 0); }
}  // namespace compat
