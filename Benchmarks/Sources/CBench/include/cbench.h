/*
** luatalloc benchmarks — the C side of every workload (libtalloc, glibc malloc, Lua 5.4).
** Lua states cross this header as `void *` so that no Lua header is exported to Swift (the main
** package's CLua module owns those).
** SPDX-License-Identifier: MIT
*/
#ifndef CBENCH_H
#define CBENCH_H
#include <stddef.h>
#include <stdint.h>

/* The 41-byte string of W1 (plus its NUL). */
extern const char cb_str41[42];
const char *cb_string41(void);

/* Bytes in use in glibc's heap (mallinfo2: uordblks + hblkhd), to measure memory by difference. */
size_t cb_heap_in_use(void);
/* Give freed memory back so that a measurement starts from a trimmed heap. */
void cb_heap_trim(void);
/* An optimisation barrier: the compiler must assume p escapes. */
void cb_escape(void *p);

/* W1: ctx + 3 children (1 byte, strdup of cb_str41, 100 bytes), free ctx. n iterations. */
void cb_w1_talloc_plain(long n);
void cb_w1_talloc_pool_setup(void);
void cb_w1_talloc_pool(long n);
void cb_w1_talloc_pool_teardown(void);
void cb_w1_talloc_pooled_object(long n);
void cb_w1_malloc(long n);

/* W2: `count` allocations of sizes[i] into one pool of pool_bytes (0: no pool, a plain context),
** then one free. Reference: malloc each, free each. */
void cb_w2_set_sizes(const uint32_t *sizes, long count);
void cb_w2_talloc(long n, size_t pool_bytes);
void cb_w2_malloc(long n);

/* W3: tree of `count` nodes, node i (i >= 1) a child of node parents[i], 32-byte payload; build,
** then free the root. pool_bytes 0: no pool. *_bytes: heap bytes in use with the tree built. */
void cb_w3_set_parents(const uint32_t *parents, long count);
void cb_w3_talloc(long n, size_t pool_bytes);
size_t cb_w3_talloc_bytes(size_t pool_bytes);
void cb_w3_malloc(long n);
size_t cb_w3_malloc_bytes(void);

/* W4: `count` 16-byte children created under parent A; each iteration steals all of them to the
** other parent in `order` (NULL: creation order). */
void *cb_w4_talloc_setup(long count, const uint32_t *order);
void cb_w4_talloc(void *w, long n);
void cb_w4_talloc_teardown(void *w);

/* W5: one buffer from 16 B to 4 KiB by doubling (8 reallocs), then free.
** mode 0: child of a plain context; 1: in a pool, the only chunk; 2: in a pool, a 1-byte chunk is
** allocated after the buffer at each step so that it is never the last chunk. */
void *cb_w5_talloc_setup(int mode);
void cb_w5_talloc(void *w, long n);
void cb_w5_talloc_teardown(void *w);
void cb_w5_realloc(long n);

/* Lua (Debian's liblua5.4). */
typedef void *(*cb_lua_alloc)(void *ud, void *ptr, size_t osize, size_t nsize);
void *cb_lua_new_stock(void);                            /* luaL_newstate + luaL_openlibs */
void *cb_lua_new_with_alloc(cb_lua_alloc f, void *ud);   /* lua_newstate(f, ud) + luaL_openlibs */
void cb_lua_close(void *L);
/* Open a module the way `require` would and set it as global `name`. */
void cb_lua_require(void *L, const char *name, int (*openf)(void *L));
/* W6: globals bench_plain_new (userdata + empty __gc) and bench_ctalloc_new (userdata holding
** talloc_new(NULL), __gc calling talloc_free). */
void cb_lua_install_w6(void *L);
/* Compile `return function(n) local new = <expr>; for i = 1, n do new() end; collectgarbage() end`;
** returns a registry reference. */
int cb_lua_loop_ref(void *L, const char *expr);
void cb_lua_run_loop(void *L, int ref, long n);
/* W7: binary-trees (the benchmarks game program) at `depth` in state L; returns the number of
** tables (tree nodes) it built. */
long cb_lua_binarytrees(void *L, int depth);

/* The Lua-level suite (issue 11). */
#include "cbench_lua.h"

/* `talloc-bench replay` (Replay.swift). */
#include "cbench_replay.h"

#endif
