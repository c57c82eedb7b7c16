/*
** luatalloc benchmarks — the libtalloc side of `talloc-bench replay` (a trace of `luatalloc --trace`
** replayed on Samba's libtalloc): talloc's macros as functions, and a read-only look at the POOLMEM flag
** of talloc 2.4's chunk header (LP64) to tell which chunks were carved from a pool.
** SPDX-License-Identifier: MIT
*/
#ifndef CBENCH_REPLAY_H
#define CBENCH_REPLAY_H
#include <stddef.h>

void *cb_rp_size(const void *parent, size_t size);
void *cb_rp_pool(const void *parent, size_t capacity);
void *cb_rp_pooled_object(const void *parent, size_t size, unsigned count, size_t bytes);
/* talloc_realloc of a live chunk to size > 0: the chunk (maybe moved), or NULL. */
void *cb_rp_realloc(void *p, size_t size);
int cb_rp_free(void *p);
void cb_rp_free_children(void *p);
void *cb_rp_steal(const void *parent, const void *p);
int cb_rp_reparent(const void *old_parent, const void *new_parent, const void *p);
void *cb_rp_reference(const void *parent, const void *p);
int cb_rp_unlink(const void *parent, void *p);
/* talloc_set_name with a name of `length` bytes: the new ".name" chunk, or NULL. */
void *cb_rp_set_name(const void *p, size_t length);
int cb_rp_set_memlimit(const void *p, size_t bytes);
/* A K line: the chunk's next free (itself or with an ancestor) is refused once more; a free or unlink a
   K refused returns 0 (it did what the script's did). cb_rp_closing(1) before the final free lets every
   free go through; cb_rp_closing(0) forgets what is left. */
int cb_rp_refuse(void *p);
void cb_rp_closing(int closing);
/* Whether the chunk was carved from a pool (talloc 2.4's TALLOC_FLAG_POOLMEM). */
int cb_rp_is_pool_memory(const void *p);
/* Checks the header look against the public API: 1 when the layout is talloc 2.4's. */
int cb_rp_layout_is_sane(void);
#endif
