#pragma once
// In progress (issue #19): the recvmsg multishot header checker.
