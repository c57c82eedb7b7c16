/*
** luatalloc benchmarks — the libtalloc side of `talloc-bench replay` (see include/cbench_replay.h).
** SPDX-License-Identifier: MIT
*/
#include "cbench_replay.h"
#include <stdlib.h>
#include <string.h>
#include <talloc.h>

void *cb_rp_size(const void *parent, size_t size) { return talloc_named_const(parent, size, "replay"); }
void *cb_rp_pool(const void *parent, size_t capacity) { return talloc_pool(parent, capacity); }
void *cb_rp_pooled_object(const void *parent, size_t size, unsigned count, size_t bytes) {
    return _talloc_pooled_object(parent, size, "replay", count, bytes);
}
void *cb_rp_realloc(void *p, size_t size) { return _talloc_realloc(NULL, p, size, "replay"); }
/* K lines: the refusals each chunk's destructor still has to make (a short list: traces rarely refuse);
   a free or unlink they refused did what the script's did, so it succeeds here. */
struct rp_refusal { const void *p; unsigned n; struct rp_refusal *next; };
static struct rp_refusal *rp_refusals;
static const void *rp_refused;
static int rp_closing;
static int rp_destructor(void *p) {
  for (struct rp_refusal **r = &rp_refusals; *r != NULL; r = &(*r)->next) {
    if ((*r)->p != p) continue;
    if ((*r)->n > 0 && !rp_closing) { (*r)->n--; rp_refused = p; return -1; }
    struct rp_refusal *gone = *r;
    *r = gone->next;
    free(gone);
    return 0;
  }
  return 0;
}
int cb_rp_refuse(void *p) {
  struct rp_refusal *r = rp_refusals;
  while (r != NULL && r->p != p) r = r->next;
  if (r == NULL) {
    if ((r = malloc(sizeof *r)) == NULL) return -1;
    r->p = p; r->n = 0; r->next = rp_refusals;
    rp_refusals = r;
  }
  r->n++;
  _talloc_set_destructor(p, rp_destructor);
  return 0;
}
void cb_rp_closing(int closing) {
  rp_closing = closing;
  if (closing) return;
  while (rp_refusals != NULL) { struct rp_refusal *r = rp_refusals; rp_refusals = r->next; free(r); }
}
int cb_rp_free(void *p) {
  rp_refused = NULL;
  int rc = _talloc_free(p, "replay");
  return rc != 0 && rp_refused == p ? 0 : rc;
}
void cb_rp_free_children(void *p) { talloc_free_children(p); }
void *cb_rp_steal(const void *parent, const void *p) { return _talloc_steal_loc(parent, p, "replay"); }
int cb_rp_reparent(const void *old_parent, const void *new_parent, const void *p) {
    return talloc_reparent(old_parent, new_parent, p) != NULL;
}
void *cb_rp_reference(const void *parent, const void *p) { return _talloc_reference_loc(parent, p, "replay"); }
int cb_rp_unlink(const void *parent, void *p) {
  rp_refused = NULL;
  int rc = talloc_unlink(parent, p);
  return rc != 0 && rp_refused == p ? 0 : rc;
}
void *cb_rp_set_name(const void *p, size_t length) {
    char *name = malloc(length + 1);
    if (name == NULL) return NULL;
    memset(name, 'n', length);
    name[length] = 0;
    const char *set = talloc_set_name(p, "%s", name);
    free(name);
    if (set == NULL) return NULL;
    return (void *)set;  /* the name is the body of the new ".name" chunk */
}
int cb_rp_set_memlimit(const void *p, size_t bytes) { return talloc_set_memlimit(p, bytes); }

/* talloc 2.4.0's struct talloc_chunk starts with `unsigned flags`; TC_HDR_SIZE is 96. */
#define RP_TC_HDR_SIZE 96
#define RP_FLAG_POOL 0x04u
#define RP_FLAG_POOLMEM 0x08u
static unsigned rp_flags(const void *p) { return *(const unsigned *)((const char *)p - RP_TC_HDR_SIZE); }
int cb_rp_is_pool_memory(const void *p) { return (rp_flags(p) & RP_FLAG_POOLMEM) != 0; }

int cb_rp_layout_is_sane(void) {
    void *root = talloc_named_const(NULL, 0, "root");
    void *pool = talloc_pool(root, 1024);
    void *m = talloc_named_const(pool, 16, "m");
    void *a = talloc_named_const(root, 16, "a");
    int ok = pool != NULL && m != NULL && a != NULL
        && (rp_flags(pool) & RP_FLAG_POOL) && !(rp_flags(pool) & RP_FLAG_POOLMEM)
        && cb_rp_is_pool_memory(m) && !cb_rp_is_pool_memory(a)
        && (char *)m - (char *)pool == RP_TC_HDR_SIZE;
    talloc_free(root);
    return ok;
}
