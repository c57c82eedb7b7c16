/*
** luatalloc benchmarks — the Lua-level suite (issue 11): what its rows need from C. The Lua states cross
** as `void *` (see cbench.h).
** SPDX-License-Identifier: MIT
*/
#ifndef CBENCH_LUA_H
#define CBENCH_LUA_H
#include <stddef.h>

/*
** Installs in state L, as globals:
**   ct     a minimal C binding of Samba's libtalloc with the module's shape for the functions libtalloc
**          has (new, size, strdup, pool, free, steal, parent, find_parent_byname, report_full, and the
**          methods write, read, pack, unpack for "<i8"): a userdata holding the pointer, no identity
**          (parent() makes a new userdata each time), a top-level context freed by the __gc of the handle
**          that made it. Unsafe by design (a handle outliving its context is not detected): benchmarks only.
**   plain  Lua's own values: ud() a full userdata with an empty __gc (no user value), udp(parent) the same
**          with one user value holding `parent`, buf(n) a userdata of n bytes with bounds-checked C methods
**          write, read (and nop), nop() a C function that does nothing (the cost of a call).
*/
void cb_lua_install_suite(void *L);

/*
** Loads `code` (a chunk named `name`), calls it with (global `impl`, global `plain`) and keeps the
** function it returns in the registry: returns the reference, to run with cb_lua_run_loop(L, ref, n).
** Aborts with the Lua message if anything fails.
*/
int cb_lua_load_workload(void *L, const char *code, const char *name, const char *impl);

/* Resident set size of this process, in bytes (/proc/self/statm). */
size_t cb_rss_bytes(void);

#endif
