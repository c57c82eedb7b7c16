/*
** luatalloc — the C half of the `talloc` Lua module: cells (the records handles point at) and the pages
** they come from, pushing handles, and the state's interned names.
** SPDX-License-Identifier: MIT
**
** See ltc_shim.h for the two rules (threads, handles).  Nothing here raises but ltc_pushhandle's protected
** part, which runs under lua_pcall.
*/
#include "ltc_shim.h"

/*
** {======================================================================
** Cells, slots, handles
** =======================================================================
*/

/* Under AddressSanitizer a free cell is poisoned, so that a use after its release is still reported
   although its page stays allocated. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define LTC_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define LTC_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#endif
#endif
#ifndef LTC_POISON
#define LTC_POISON(p, n) ((void)0)
#define LTC_UNPOISON(p, n) ((void)0)
#endif

/*
** Cells come from pages of LTC_PAGECELLS (one malloc, charged): taking and giving back a cell is a few
** instructions, and a burst of frees (a collection) gives whole pages back.  A page knows its live cells
** by a bit mask (nothing is kept in a free cell, which AddressSanitizer builds poison).  A cell's slot is
** fixed by its place: page id * LTC_PAGECELLS + index + 1.  Ids of released pages are reused first.
*/
#define LTC_FULLPAGE ((1u << LTC_PAGECELLS) - 1)

static void ltc_pushpartial (ltc_State *S, ltc_Page *pg) {
  pg->pnext = S->partial;
  if (S->partial != NULL) S->partial->pprev = &pg->pnext;
  pg->pprev = &S->partial;
  S->partial = pg;
}

static void ltc_unpartial (ltc_Page *pg) {
  *pg->pprev = pg->pnext;
  if (pg->pnext != NULL) pg->pnext->pprev = pg->pprev;
  pg->pnext = NULL;
  pg->pprev = NULL;
}

/* An entry of S->pages: a page, or (odd) a released id linking to the next released one (+1, 0: none). */
static ltc_Page *ltc_livepage (ltc_State *S, int id) {
  ltc_Page *pg = S->pages[id];
  return ((uintptr_t)pg & 1) ? NULL : pg;
}

static ltc_Page *ltc_newpage (ltc_State *S) {
  ltc_Page *pg;
  int id;
  long long cost = (long long)ltc_mallocfootprint(sizeof(ltc_Page));
  if (S->freeid == 0 && S->npages == S->cappages) {  /* grow the page table */
    int cap = S->cappages ? S->cappages * 2 : 16;
    long long grow = (long long)(cap - S->cappages) * (long long)sizeof(ltc_Page *);
    ltc_Page **pages;
    if (S->charge != NULL && !S->charge(S, grow)) return NULL;
    pages = (ltc_Page **)realloc(S->pages, (size_t)cap * sizeof(ltc_Page *));
    if (pages == NULL) {
      if (S->charge != NULL) S->charge(S, -grow);
      return NULL;
    }
    S->pages = pages;
    S->cappages = cap;
  }
  if (S->charge != NULL && !S->charge(S, cost)) return NULL;
  pg = (ltc_Page *)malloc(sizeof(ltc_Page));
  if (pg == NULL) {
    if (S->charge != NULL) S->charge(S, -cost);
    return NULL;
  }
  if (S->freeid != 0) {  /* a released id first */
    id = S->freeid - 1;
    S->freeid = (int)((uintptr_t)S->pages[id] >> 1);
  }
  else id = S->npages++;
  S->pages[id] = pg;
  pg->id = id;
  pg->inuse = 0;
  LTC_POISON(pg->cells, sizeof(pg->cells));
  ltc_pushpartial(S, pg);
  return pg;
}

static void ltc_releasepage (ltc_State *S, ltc_Page *pg) {
  ltc_unpartial(pg);
  S->pages[pg->id] = (ltc_Page *)(((uintptr_t)S->freeid << 1) | 1);
  S->freeid = pg->id + 1;
  LTC_UNPOISON(pg->cells, sizeof(pg->cells));
  free(pg);
  if (S->charge != NULL) S->charge(S, -(long long)ltc_mallocfootprint(sizeof(ltc_Page)));
}

ltc_Cell *ltc_newcell (ltc_State *S) {
  ltc_Page *pg = S->partial;
  ltc_Cell *cell;
  int i;
  if (pg == NULL && (pg = ltc_newpage(S)) == NULL) return NULL;
  if (pg == S->spare) S->spare = NULL;
  i = __builtin_ctz(~pg->inuse & LTC_FULLPAGE);
  pg->inuse |= 1u << i;
  if (pg->inuse == LTC_FULLPAGE) ltc_unpartial(pg);
  cell = &pg->cells[i];
  LTC_UNPOISON(cell, sizeof(*cell));
  memset(cell, 0, sizeof(*cell));
  cell->slot = pg->id * LTC_PAGECELLS + i + 1;
  cell->flags = LTC_INUSE;
  S->ncells++;
  return cell;
}

/* Gives back a cell nothing points at any more (no userdata, no chunk): its name and charges go back. */
void ltc_freecell (ltc_State *S, ltc_Cell *cell) {
  ltc_Page *pg;
  unsigned bit;
  if (cell == NULL || cell == &ltc_deadcell) return;
  pg = ltc_livepage(S, (cell->slot - 1) / LTC_PAGECELLS);
  bit = 1u << ((cell->slot - 1) % LTC_PAGECELLS);
  if (pg == NULL || !(pg->inuse & bit)) return;  /* not live (a second release) */
  S->ncells--;
  if (!S->closed) {
    if (cell->name != NULL) ltc_unrefname(S, cell->name);
    if (S->charge != NULL && cell->charged > 0) S->charge(S, -(long long)cell->charged);
  }
  if (pg->inuse == LTC_FULLPAGE) ltc_pushpartial(S, pg);
  pg->inuse &= ~bit;
  cell->flags = 0;
  LTC_POISON(cell, sizeof(*cell));
  if (pg->inuse == 0 && !S->closed) {  /* empty: keep one such page for the next burst */
    if (S->spare == NULL) S->spare = pg;
    else if (S->spare != pg) ltc_releasepage(S, pg);
  }
}

ltc_Cell *ltc_nextcell (ltc_State *S, ltc_Cell *cell) {
  int id = 0, i = 0;
  if (cell != NULL) {
    id = (cell->slot - 1) / LTC_PAGECELLS;
    i = (cell->slot - 1) % LTC_PAGECELLS + 1;
  }
  for (; id < S->npages; id++, i = 0) {
    ltc_Page *pg = ltc_livepage(S, id);
    if (pg == NULL) continue;
    for (; i < LTC_PAGECELLS; i++)
      if (pg->inuse & (1u << i)) return &pg->cells[i];
  }
  return NULL;
}

void ltc_pushtables (lua_State *L, ltc_State *S) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->metaRef);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->handlesRef);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->extraRef);
}

/* (protected part of ltc_pushhandle) [meta, handles, cell] -> handle */
static int ltc_pushhandle_k (lua_State *L) {
  ltc_Cell *cell = (ltc_Cell *)lua_touserdata(L, 3);
  ltc_Cell **p = (ltc_Cell **)lua_newuserdatauv(L, sizeof(ltc_Cell *), 1);
  *p = NULL;
  lua_pushvalue(L, 1);
  lua_setmetatable(L, -2);
  *p = cell;  /* with the metatable set, its __gc will count this userdata out again */
  cell->uds++;
  lua_pushvalue(L, -1);
  lua_rawseti(L, 2, cell->slot);
  return 1;
}

int ltc_pushhandle (lua_State *L, ltc_Cell *cell, int tables) {
  lua_pushcfunction(L, ltc_pushhandle_k);
  if (tables == 0) {
    lua_pushvalue(L, lua_upvalueindex(LTC_UPV_META));
    lua_pushvalue(L, lua_upvalueindex(LTC_UPV_HANDLES));
  } else {
    tables = lua_absindex(L, tables);
    lua_pushvalue(L, tables);
    lua_pushvalue(L, tables + 1);
  }
  lua_pushlightuserdata(L, cell);
  return lua_pcall(L, 3, 1, 0);
}

/* }====================================================================== */


/*
** {======================================================================
** Interned names: the chunk sources of location names ("FILE:LINE")
** =======================================================================
*/

static unsigned ltc_hash (const char *s, size_t len) {
  unsigned h = 2166136261u;
  size_t i;
  for (i = 0; i < len; i++) { h ^= (unsigned char)s[i]; h *= 16777619u; }
  return h;
}

/* The counted name for 'text' (one count taken for the caller), or NULL when memory runs out. */
ltc_Name *ltc_internname (ltc_State *S, const char *text) {
  return ltc_internbytes(S, text, strlen(text));
}

ltc_Name *ltc_internbytes (ltc_State *S, const char *text, size_t len) {
  unsigned h;
  const char *nul = (const char *)memchr(text, '\0', len);
  if (nul != NULL) len = (size_t)(nul - text);  /* a name ends at its first NUL, as talloc's */
  h = ltc_hash(text, len);
  ltc_Name *n;
  if (S->capnames > 0) {
    for (n = S->names[h & (S->capnames - 1)]; n != NULL; n = n->next) {
      if (n->hash == h && n->len == len && memcmp(n->text, text, len) == 0) {
        n->refs++;
        return n;
      }
    }
  }
  if (S->nnames >= S->capnames) {  /* grow the buckets (and rehash) */
    size_t cap = S->capnames ? S->capnames * 2 : 64, i;
    long long cost = (long long)(cap * sizeof(ltc_Name *)), old = (long long)(S->capnames * sizeof(ltc_Name *));
    ltc_Name **b;
    if (S->charge != NULL && !S->charge(S, cost)) return NULL;
    b = (ltc_Name **)calloc(cap, sizeof(ltc_Name *));
    if (b == NULL) { if (S->charge != NULL) S->charge(S, -cost); return NULL; }
    for (i = 0; i < S->capnames; i++) {
      ltc_Name *x = S->names[i];
      while (x != NULL) {
        ltc_Name *next = x->next;
        x->next = b[x->hash & (cap - 1)];
        b[x->hash & (cap - 1)] = x;
        x = next;
      }
    }
    free(S->names);
    if (S->charge != NULL) S->charge(S, -old);
    S->names = b;
    S->capnames = cap;
  }
  if (S->charge != NULL && !S->charge(S, (long long)ltc_mallocfootprint(sizeof(ltc_Name) + len))) return NULL;
  n = (ltc_Name *)malloc(sizeof(ltc_Name) + len);
  if (n == NULL) {
    if (S->charge != NULL) S->charge(S, -(long long)ltc_mallocfootprint(sizeof(ltc_Name) + len));
    return NULL;
  }
  memcpy(n->text, text, len);
  n->text[len] = '\0';
  n->len = len;
  n->hash = h;
  n->refs = 1;
  n->next = S->names[h & (S->capnames - 1)];
  S->names[h & (S->capnames - 1)] = n;
  S->nnames++;
  return n;
}

/* Drops one count of a name; the last one frees it (and forgets it in the one-entry cache). */
void ltc_unrefname (ltc_State *S, ltc_Name *n) {
  ltc_Name **pp;
  if (n == NULL || S->closed) return;
  if (--n->refs > 0) return;
  for (pp = &S->names[n->hash & (S->capnames - 1)]; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == n) { *pp = n->next; break; }
  }
  if (S->lastName == n) S->lastName = NULL;
  S->nnames--;
  if (S->charge != NULL) S->charge(S, -(long long)ltc_mallocfootprint(sizeof(ltc_Name) + n->len));
  free(n);
}

static void ltc_freenames (ltc_State *S) {
  size_t i;
  for (i = 0; i < S->capnames; i++) {
    ltc_Name *x = S->names[i];
    while (x != NULL) { ltc_Name *next = x->next; free(x); x = next; }
  }
  free(S->names);
  S->names = NULL;
  S->capnames = S->nnames = 0;
  S->lastName = NULL;
}

/*
** The position of the Lua code that called the module (level 1), for a default name: the line, and the
** chunk's source interned.  lua_getinfo's "S" formats short_src every time; so "f" pushes the calling
** function first and, when it is the one the state saw last (kept in a weak table: the cache keeps no
** function alive), its interned source is reused.  Never raises: lua_getinfo allocates nothing for these
** options, and the cache's one array slot exists from the start.
*/
int ltc_callername (lua_State *L, ltc_State *S, int extra, ltc_Name **name, int *line) {
  lua_Debug ar;
  ltc_Name *n;
  extra = lua_absindex(L, extra);
  if (!lua_checkstack(L, 4)) return -1;
  if (!lua_getstack(L, 1, &ar) || !lua_getinfo(L, "lf", &ar)) return 0;  /* pushes the function */
  if (ar.currentline < 0) {  /* a C function: no position */
    lua_pop(L, 1);
    return 0;
  }
  *line = ar.currentline;
  lua_rawgeti(L, extra, LTC_EXTRA_LASTFN);  /* the cache: {function} with weak values */
  if (S->lastName != NULL) {
    int same;
    lua_rawgeti(L, -1, 1);
    same = lua_rawequal(L, -1, -3);
    lua_pop(L, 1);
    if (same) {
      lua_pop(L, 2);
      S->lastName->refs++;
      *name = S->lastName;
      return 1;
    }
  }
  lua_pushvalue(L, -2);
  lua_getinfo(L, ">S", &ar);  /* pops the copy */
  n = ltc_internname(S, ar.short_src);
  if (n == NULL) {
    lua_pop(L, 2);
    return -1;
  }
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, 1);  /* the array slot 1 exists: no allocation */
    S->lastName = n;
  }
  lua_pop(L, 2);
  *name = n;
  return 1;
}

/* }====================================================================== */


/* At close (the state's __gc, after every handle's): every page and name goes, whatever points at them. */
void ltc_freeall (ltc_State *S) {
  int id;
  for (id = 0; id < S->npages; id++) {
    ltc_Page *pg = ltc_livepage(S, id);
    if (pg != NULL) LTC_UNPOISON(pg->cells, sizeof(pg->cells));
    free(pg);
  }
  free(S->pages);
  S->pages = NULL;
  S->npages = S->cappages = S->freeid = S->ncells = 0;
  S->partial = S->spare = NULL;
  ltc_freenames(S);
}
