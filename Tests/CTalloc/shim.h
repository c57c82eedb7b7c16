/*
** luatalloc tests — Debian's libtalloc, the oracle. SPDX-License-Identifier: MIT
*/
#ifndef CTALLOC_SHIM_H
#define CTALLOC_SHIM_H
#include <talloc.h>
#endif
