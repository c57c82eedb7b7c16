/*
** luatalloc benchmarks — W1–W5 on Samba's libtalloc (Debian libtalloc-dev) and on glibc malloc.
** Compiled with the package's release settings; libtalloc is the distribution's shared library.
** SPDX-License-Identifier: MIT
*/
#include "cbench.h"
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <talloc.h>

const char cb_str41[42] = "0123456789abcdefghijklmnopqrstuvwxyzABCDE";
const char *cb_string41(void) { return cb_str41; }

size_t cb_heap_in_use(void) {
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

void cb_heap_trim(void) { malloc_trim(0); }

void cb_escape(void *p) { __asm__ volatile("" : : "g"(p) : "memory"); }

#define ESCAPE(p) __asm__ volatile("" : : "g"(p) : "memory")

/* ---------------------------------------------------------------- W1 */

void cb_w1_talloc_plain(long n) {
    for (long i = 0; i < n; i++) {
        void *ctx = talloc_new(NULL);
        void *a = talloc_size(ctx, 1);
        char *s = talloc_strdup(ctx, cb_str41);
        void *b = talloc_size(ctx, 100);
        ESCAPE(a); ESCAPE(s); ESCAPE(b);
        talloc_free(ctx);
    }
}

static void *w1_pool;

void cb_w1_talloc_pool_setup(void) { w1_pool = talloc_pool(NULL, 4096); }
void cb_w1_talloc_pool_teardown(void) { talloc_free(w1_pool); w1_pool = NULL; }

void cb_w1_talloc_pool(long n) {
    void *pool = w1_pool;
    for (long i = 0; i < n; i++) {
        void *ctx = talloc_new(pool);
        void *a = talloc_size(ctx, 1);
        char *s = talloc_strdup(ctx, cb_str41);
        void *b = talloc_size(ctx, 100);
        ESCAPE(a); ESCAPE(s); ESCAPE(b);
        talloc_free(ctx);
    }
}

void cb_w1_talloc_pooled_object(long n) {
    for (long i = 0; i < n; i++) {
        void *ctx = _talloc_pooled_object(NULL, 0, "pooled", 3, 1 + 42 + 100);
        void *a = talloc_size(ctx, 1);
        char *s = talloc_strdup(ctx, cb_str41);
        void *b = talloc_size(ctx, 100);
        ESCAPE(a); ESCAPE(s); ESCAPE(b);
        talloc_free(ctx);
    }
}

void cb_w1_malloc(long n) {
    for (long i = 0; i < n; i++) {
        void *ctx = malloc(0);
        void *a = malloc(1);
        char *s = strdup(cb_str41);
        void *b = malloc(100);
        ESCAPE(ctx); ESCAPE(a); ESCAPE(s); ESCAPE(b);
        free(b); free(s); free(a); free(ctx);
    }
}

/* ---------------------------------------------------------------- W2 */

static const uint32_t *w2_sizes;
static long w2_count;
static void **w2_ptrs;

void cb_w2_set_sizes(const uint32_t *sizes, long count) {
    w2_sizes = sizes;
    w2_count = count;
    free(w2_ptrs);
    w2_ptrs = calloc((size_t)count, sizeof(void *));
}

void cb_w2_talloc(long n, size_t pool_bytes) {
    const uint32_t *sizes = w2_sizes;
    long count = w2_count;
    for (long i = 0; i < n; i++) {
        void *pool = pool_bytes ? talloc_pool(NULL, pool_bytes) : talloc_new(NULL);
        for (long k = 0; k < count; k++) {
            void *p = talloc_size(pool, sizes[k]);
            ESCAPE(p);
        }
        talloc_free(pool);
    }
}

void cb_w2_malloc(long n) {
    const uint32_t *sizes = w2_sizes;
    long count = w2_count;
    void **ptrs = w2_ptrs;
    for (long i = 0; i < n; i++) {
        for (long k = 0; k < count; k++) {
            ptrs[k] = malloc(sizes[k]);
            ESCAPE(ptrs[k]);
        }
        for (long k = 0; k < count; k++) free(ptrs[k]);
    }
}

/* ---------------------------------------------------------------- W3 */

static const uint32_t *w3_parents;
static long w3_count;
static void **w3_nodes;

void cb_w3_set_parents(const uint32_t *parents, long count) {
    w3_parents = parents;
    w3_count = count;
    free(w3_nodes);
    w3_nodes = calloc((size_t)count, sizeof(void *));
}

static void *w3_build(void *top) {
    const uint32_t *parents = w3_parents;
    void **nodes = w3_nodes;
    long count = w3_count;
    nodes[0] = talloc_size(top, 32);
    for (long k = 1; k < count; k++) nodes[k] = talloc_size(nodes[parents[k]], 32);
    return nodes[0];
}

void cb_w3_talloc(long n, size_t pool_bytes) {
    for (long i = 0; i < n; i++) {
        void *pool = pool_bytes ? talloc_pool(NULL, pool_bytes) : NULL;
        void *root = w3_build(pool);
        talloc_free(pool ? pool : root);
    }
}

size_t cb_w3_talloc_bytes(size_t pool_bytes) {
    cb_heap_trim();
    size_t before = cb_heap_in_use();
    void *pool = pool_bytes ? talloc_pool(NULL, pool_bytes) : NULL;
    void *root = w3_build(pool);
    size_t after = cb_heap_in_use();
    talloc_free(pool ? pool : root);
    return after - before;
}

static void w3_malloc_build(void) {
    void **nodes = w3_nodes;
    long count = w3_count;
    for (long k = 0; k < count; k++) {
        nodes[k] = malloc(32);
        ESCAPE(nodes[k]);
    }
}

static void w3_malloc_free(void) {
    void **nodes = w3_nodes;
    long count = w3_count;
    for (long k = 0; k < count; k++) free(nodes[k]);
}

void cb_w3_malloc(long n) {
    for (long i = 0; i < n; i++) {
        w3_malloc_build();
        w3_malloc_free();
    }
}

size_t cb_w3_malloc_bytes(void) {
    cb_heap_trim();
    size_t before = cb_heap_in_use();
    w3_malloc_build();
    size_t after = cb_heap_in_use();
    w3_malloc_free();
    return after - before;
}

/* ---------------------------------------------------------------- W4 */

struct w4 {
    void *parent[2];
    void **children;
    uint32_t *order;
    long count;
    int side; /* where the children are now */
};

void *cb_w4_talloc_setup(long count, const uint32_t *order) {
    struct w4 *w = calloc(1, sizeof *w);
    w->count = count;
    w->parent[0] = talloc_new(NULL);
    w->parent[1] = talloc_new(NULL);
    w->children = malloc((size_t)count * sizeof(void *));
    w->order = malloc((size_t)count * sizeof(uint32_t));
    for (long k = 0; k < count; k++) {
        w->children[k] = talloc_size(w->parent[0], 16);
        w->order[k] = order ? order[k] : (uint32_t)k;
    }
    return w;
}

void cb_w4_talloc(void *wv, long n) {
    struct w4 *w = wv;
    void **children = w->children;
    const uint32_t *order = w->order;
    long count = w->count;
    for (long i = 0; i < n; i++) {
        void *to = w->parent[1 - w->side];
        for (long k = 0; k < count; k++) {
            void *p = talloc_steal(to, children[order[k]]);
            ESCAPE(p);
        }
        w->side = 1 - w->side;
    }
}

void cb_w4_talloc_teardown(void *wv) {
    struct w4 *w = wv;
    talloc_free(w->parent[0]);
    talloc_free(w->parent[1]);
    free(w->children);
    free(w->order);
    free(w);
}

/* ---------------------------------------------------------------- W5 */

struct w5 { void *parent; int mode; };

void *cb_w5_talloc_setup(int mode) {
    struct w5 *w = malloc(sizeof *w);
    w->mode = mode;
    w->parent = mode == 0 ? talloc_new(NULL) : talloc_pool(NULL, 16384);
    return w;
}

void cb_w5_talloc_teardown(void *wv) {
    struct w5 *w = wv;
    talloc_free(w->parent);
    free(w);
}

void cb_w5_talloc(void *wv, long n) {
    struct w5 *w = wv;
    void *parent = w->parent;
    if (w->mode == 2) {
        void *blockers[9];
        for (long i = 0; i < n; i++) {
            char *buf = talloc_size(parent, 16);
            blockers[0] = talloc_size(parent, 1);
            int b = 1;
            for (size_t size = 32; size <= 4096; size *= 2) {
                buf = talloc_realloc_size(parent, buf, size);
                blockers[b++] = talloc_size(parent, 1);
            }
            ESCAPE(buf);
            talloc_free(buf);
            for (int k = 0; k < b; k++) talloc_free(blockers[k]);
        }
        return;
    }
    for (long i = 0; i < n; i++) {
        char *buf = talloc_size(parent, 16);
        for (size_t size = 32; size <= 4096; size *= 2) buf = talloc_realloc_size(parent, buf, size);
        ESCAPE(buf);
        talloc_free(buf);
    }
}

void cb_w5_realloc(long n) {
    for (long i = 0; i < n; i++) {
        char *buf = malloc(16);
        ESCAPE(buf);
        for (size_t size = 32; size <= 4096; size *= 2) {
            buf = realloc(buf, size);
            ESCAPE(buf);
        }
        free(buf);
    }
}
