/*
** luatalloc benchmarks — libpeakmem.so: see include/peakmem.h. Single-threaded use only.
** SPDX-License-Identifier: MIT
*/
#include "peakmem.h"
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static size_t live, peak, base;

static inline size_t chunk(void *p) { return p ? malloc_usable_size(p) + sizeof(size_t) : 0; }
static inline void add(void *p) {
    live += chunk(p);
    if (live > peak) peak = live;
}
static inline void sub(void *p) { live -= chunk(p); }

void peakmem_reset(void) { base = peak = live; }
size_t peakmem_peak_since_reset(void) { return peak - base; }

void *malloc(size_t n) {
    void *p = __libc_malloc(n);
    add(p);
    return p;
}

void *calloc(size_t n, size_t m) {
    void *p = __libc_calloc(n, m);
    add(p);
    return p;
}

void free(void *p) {
    if (!p) return;
    sub(p);
    __libc_free(p);
}

void *realloc(void *p, size_t n) {
    size_t old = chunk(p);
    void *q = __libc_realloc(p, n);
    if (q || n == 0) {
        live -= old;
        add(q);
    }
    return q;
}

void *memalign(size_t al, size_t n) {
    void *p = __libc_memalign(al, n);
    add(p);
    return p;
}

void *aligned_alloc(size_t al, size_t n) { return memalign(al, n); }

int posix_memalign(void **out, size_t al, size_t n) {
    if (al < sizeof(void *) || (al & (al - 1))) return EINVAL;
    void *p = memalign(al, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
