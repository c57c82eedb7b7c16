/*
** luatalloc tests — Debian's libtalloc, the oracle of the differential tests. SPDX-License-Identifier: MIT
**
** Test-only. Everything here is `static inline` so the module needs no compiled C target:
** wrappers for talloc's macros and variadic functions, a report-to-string helper, a log capture,
** a generic destructor that calls back into Swift, and a read-only peek into talloc 2.4.0's chunk
** header (LP64) so that the tests can walk the raw tree (children in order, reference handles) and
** see the POOL/POOLMEM flags. The peek is pinned to talloc 2.4.x: `ctalloc_layout_is_sane()` checks
** it against the public API at run time and the tests refuse to run if it does not hold.
*/
#ifndef CTALLOC_SHIM_H
#define CTALLOC_SHIM_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <talloc.h>

/* ---- allocation (macros and variadics Swift cannot call) -------------------------------------- */

static inline void *ctalloc_named_const(const void *ctx, size_t size, const char *name) {
    return talloc_named_const(ctx, size, name);
}
static inline void *ctalloc_pool(const void *ctx, size_t size) { return talloc_pool(ctx, size); }
static inline void *ctalloc_pooled_object(const void *ctx, size_t type_size, const char *type_name,
                                          unsigned num_subobjects, size_t total_subobjects_size) {
    return _talloc_pooled_object(ctx, type_size, type_name, num_subobjects, total_subobjects_size);
}
static inline char *ctalloc_strdup(const void *ctx, const char *s) { return talloc_strdup(ctx, s); }
static inline char *ctalloc_asprintf(const void *ctx, const char *s) { return talloc_asprintf(ctx, "%s", s); }
static inline char *ctalloc_strdup_append(char *s, const char *a) { return talloc_strdup_append(s, a); }
static inline char *ctalloc_strdup_append_buffer(char *s, const char *a) { return talloc_strdup_append_buffer(s, a); }
static inline char *ctalloc_asprintf_append(char *s, const char *a) { return talloc_asprintf_append(s, "%s", a); }
static inline char *ctalloc_asprintf_append_buffer(char *s, const char *a) {
    return talloc_asprintf_append_buffer(s, "%s", a);
}

/* ---- ownership (location-taking entry points behind talloc's macros) --------------------------- */

static inline int ctalloc_free(void *p) { return _talloc_free(p, "differential"); }
static inline void *ctalloc_steal(const void *new_ctx, const void *p) {
    return _talloc_steal_loc(new_ctx, p, "differential");
}
static inline void *ctalloc_reference(const void *ctx, const void *p) {
    return _talloc_reference_loc(ctx, p, "differential");
}
static inline void *ctalloc_realloc(const void *ctx, void *p, size_t size, const char *name) {
    return _talloc_realloc(ctx, p, size, name);
}
static inline const char *ctalloc_set_name(const void *p, const char *s) { return talloc_set_name(p, "%s", s); }

/* ---- destructors: one generic C destructor that asks Swift --------------------------------------- */

typedef int (*ctalloc_destructor_hook_t)(void *ptr);
static inline ctalloc_destructor_hook_t *ctalloc_destructor_hook_slot(void) {
    static ctalloc_destructor_hook_t slot = NULL;
    return &slot;
}
static inline void ctalloc_set_destructor_hook(ctalloc_destructor_hook_t hook) { *ctalloc_destructor_hook_slot() = hook; }
static inline int ctalloc_generic_destructor(void *ptr) {
    ctalloc_destructor_hook_t hook = *ctalloc_destructor_hook_slot();
    return hook ? hook(ptr) : 0;
}
/* on != 0 installs the generic destructor, 0 removes any destructor. */
static inline void ctalloc_set_destructor(const void *p, int on) {
    _talloc_set_destructor(p, on ? ctalloc_generic_destructor : NULL);
}

/* ---- log capture --------------------------------------------------------------------------------- */

typedef void (*ctalloc_log_hook_t)(const char *message);
static inline void ctalloc_set_log_hook(ctalloc_log_hook_t hook) { talloc_set_log_fn(hook); }

/* ---- reports as strings -------------------------------------------------------------------------- */

/* talloc_report_depth_file into a malloc'ed string; free it with ctalloc_free_cstring. */
static inline char *ctalloc_report_depth_string(const void *p, int depth, int max_depth) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) return NULL;
    talloc_report_depth_file(p, depth, max_depth, f);
    fclose(f);
    return buf;
}
static inline char *ctalloc_report_full_string(const void *p) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) return NULL;
    talloc_report_full(p, f);
    fclose(f);
    return buf;
}
static inline void ctalloc_free_cstring(char *s) { free(s); }

/* ---- read-only peek into the talloc 2.4.0 chunk header (LP64) ----------------------------------- */

/* struct talloc_chunk of talloc.c 2.4.0: 88 bytes, TC_HDR_SIZE = 96, user pointer = chunk + 96. */
struct ctalloc_chunk_view {
    unsigned flags;
    struct ctalloc_chunk_view *next, *prev;
    struct ctalloc_chunk_view *parent, *child;
    void *refs; /* struct talloc_reference_handle * (the user pointer of the handle chunk) */
    void *destructor;
    const char *name;
    size_t size;
    void *limit;
    void *pool;
};
_Static_assert(sizeof(struct ctalloc_chunk_view) == 88, "talloc 2.4 chunk header layout (LP64)");
/* struct talloc_reference_handle: the body of a reference handle chunk. */
struct ctalloc_ref_handle_view {
    struct ctalloc_ref_handle_view *next, *prev;
    void *ptr;
    const char *location;
};
/* struct talloc_pool_hdr: the 32-byte prefix in front of a pool's chunk header. */
struct ctalloc_pool_hdr_view {
    void *end;
    unsigned object_count;
    size_t poolsize;
};

#define CTALLOC_TC_HDR_SIZE 96
#define CTALLOC_TP_HDR_SIZE 32
#define CTALLOC_FLAG_FREE 0x01u
#define CTALLOC_FLAG_POOL 0x04u
#define CTALLOC_FLAG_POOLMEM 0x08u

static inline const struct ctalloc_chunk_view *ctalloc_chunk(const void *p) {
    return (const struct ctalloc_chunk_view *)((const char *)p - CTALLOC_TC_HDR_SIZE);
}
static inline void *ctalloc_ptr(const struct ctalloc_chunk_view *tc) {
    return tc ? (void *)((char *)tc + CTALLOC_TC_HDR_SIZE) : NULL;
}
static inline unsigned ctalloc_flags(const void *p) { return ctalloc_chunk(p)->flags; }
static inline int ctalloc_is_pool_memory(const void *p) { return (ctalloc_flags(p) & CTALLOC_FLAG_POOLMEM) != 0; }
static inline int ctalloc_is_pool(const void *p) { return (ctalloc_flags(p) & CTALLOC_FLAG_POOL) != 0; }
static inline int ctalloc_has_destructor(const void *p) { return ctalloc_chunk(p)->destructor != NULL; }
/* Newest child (head of the child list), or NULL. */
static inline void *ctalloc_first_child(const void *p) { return ctalloc_ptr(ctalloc_chunk(p)->child); }
/* Next older sibling, or NULL. */
static inline void *ctalloc_next_sibling(const void *p) { return ctalloc_ptr(ctalloc_chunk(p)->next); }
/* Whether p is the head of its parent's child list (only the head keeps a parent pointer). */
static inline int ctalloc_is_first_sibling(const void *p) { return ctalloc_chunk(p)->prev == NULL; }
static inline int ctalloc_is_reference_handle(const void *p) { return ctalloc_chunk(p)->name == (const char *)1; }
/* For a reference handle chunk: the chunk it refers to. */
static inline void *ctalloc_handle_target(const void *h) { return ((const struct ctalloc_ref_handle_view *)h)->ptr; }
/* The newest reference handle of p (a handle chunk pointer), or NULL; then the next older one. */
static inline void *ctalloc_newest_handle(const void *p) { return ctalloc_chunk(p)->refs; }
static inline void *ctalloc_next_handle(const void *h) { return ((const struct ctalloc_ref_handle_view *)h)->next; }
/* For a pool chunk: its object count and capacity; for pool memory: the pool's header. */
static inline unsigned ctalloc_pool_object_count(const void *pool) {
    return ((const struct ctalloc_pool_hdr_view *)((const char *)ctalloc_chunk(pool) - CTALLOC_TP_HDR_SIZE))->object_count;
}
static inline size_t ctalloc_pool_size(const void *pool) {
    return ((const struct ctalloc_pool_hdr_view *)((const char *)ctalloc_chunk(pool) - CTALLOC_TP_HDR_SIZE))->poolsize;
}
/* The pool a pool-memory chunk was carved from, as the pool's user pointer. */
static inline void *ctalloc_pool_of(const void *p) {
    const struct ctalloc_chunk_view *tc = ctalloc_chunk(p);
    if (!(tc->flags & CTALLOC_FLAG_POOLMEM) || tc->pool == NULL) return NULL;
    return (char *)tc->pool + CTALLOC_TP_HDR_SIZE + CTALLOC_TC_HDR_SIZE;
}

/* Checks the header peek against the public API; returns 1 when the layout is the expected one. */
static inline int ctalloc_layout_is_sane(void) {
    int ok = 1;
    void *root = talloc_named_const(NULL, 3, "root");
    void *a = talloc_named_const(root, 5, "a");
    void *b = talloc_named_const(root, 7, "b");
    void *other = talloc_named_const(NULL, 0, "other");
    void *r = talloc_reference(other, a);
    void *pool = talloc_pool(root, 1024);
    void *m = talloc_named_const(pool, 11, "m");
    ok &= ctalloc_first_child(root) == pool;
    ok &= ctalloc_next_sibling(pool) == b && ctalloc_next_sibling(b) == a && ctalloc_next_sibling(a) == NULL;
    ok &= ctalloc_chunk(a)->size == 5 && ctalloc_chunk(b)->size == 7;
    ok &= strcmp(ctalloc_chunk(b)->name, "b") == 0;
    ok &= r == a && ctalloc_newest_handle(a) != NULL;
    ok &= ctalloc_is_reference_handle(ctalloc_first_child(other));
    ok &= ctalloc_handle_target(ctalloc_first_child(other)) == a;
    ok &= ctalloc_newest_handle(a) == ctalloc_first_child(other);
    ok &= ctalloc_is_pool(pool) && !ctalloc_is_pool_memory(pool) && ctalloc_is_pool_memory(m) && !ctalloc_is_pool_memory(a);
    ok &= ctalloc_pool_of(m) == pool && ctalloc_pool_object_count(pool) == 2 && ctalloc_pool_size(pool) == 1024;
    ok &= (char *)m - (char *)pool == 96;
    ok &= ctalloc_is_first_sibling(pool) && !ctalloc_is_first_sibling(b);
    talloc_free(other);
    talloc_free(root);
    return ok;
}

#endif
