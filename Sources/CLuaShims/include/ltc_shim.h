/*
** luatalloc — C helpers of the `talloc` Lua module (the generic ones are in shim.h).
** SPDX-License-Identifier: MIT
**
** The module's bodies are Swift.  What is here is what Swift must not do: anything that can raise a Lua
** error ('m', 'v', 'e' in the manual) is done either in a trampoline, before the Swift body runs or after
** it has returned, or in a protected helper that Swift runs through lua_pcall.
*/
#ifndef CLUA_TALLOC_SHIM_H
#define CLUA_TALLOC_SHIM_H
#include "clua_shim.h"

/* The metatable of contexts, as liolib names LUA_FILEHANDLE. */
#define LTC_METATABLE "talloc.context"

/*
** A handle on one chunk: a cell malloc'd outside Lua's heap, which the `talloc.context` userdata points
** to (its whole payload is the pointer).  As liolib's "closed" streams, a handle is created empty (body
** NULL) and filled afterwards, so a memory error in between leaves it consistent; body NULL afterwards
** means the context was freed.  Two owners share the cell: the userdata (until its __gc) and the chunk
** (through its TallocCore observer, until it is freed); the last one frees it.  So a userdata that dies
** without its __gc (debug.setmetatable(ctx, nil)) never leaves the chunk pointing into freed memory.
*/
typedef struct ltc_Box {
  int refs;               /* owners: the userdata, and the chunk while it is attached */
  struct ltc_Box *next, **pprev;  /* every live cell of the state, freed at close whatever happened */
  void *body;             /* the chunk's body (TallocCore), or NULL when freed */
  lua_Integer slot;       /* key of this chunk in the handles/slots tables; 0 = none */
  const char *freedFile;  /* the name at free time: a location "FILE:LINE" ... */
  int freedLine;          /* ... (line > 0), */
  int freedNewPrefix;     /* ... with "talloc_new: " ... */
  char freedName[40];     /* ... or the first bytes of any other name */
} ltc_Box;

/*
** Per-state data, a full userdata owned by Lua (freed by lua_close after every finalizer ran, so a
** late finalizer calling the module still finds it).  Its own __gc closes the module: it runs last,
** being the first object marked for finalization.
*/
typedef struct ltc_State {
  void *root;            /* the hidden parent of this state's top-level contexts (TallocCore body) */
  int ownsRoot;          /* free 'root' itself at close (module loaded in a stock lua) */
  int closing;           /* at close: destructor refusals and errors are overridden */
  int closed;            /* after close: the module refuses every call */
  int inGC;              /* > 0 while a __gc frees: destructor errors become warnings */
  int hasError;          /* a destructor raised; its error object is in the errors slot */
  lua_State *L;          /* the main thread */
  lua_State *currentL;   /* the thread running the module right now */
  void *closehook;       /* the module's close procedure (Swift), called by the state's __gc */
  lua_Integer nextslot;  /* the next never-used slot */
  lua_Integer *freeslots;/* slots given back, reused first (malloc'd; freed at close) */
  int nfree, capfree;
  const char *lastSource;/* the chunk source whose interned short_src is 'lastFile' (a name cache) */
  const char *lastFile;
  struct ltc_Box *cells; /* every live handle cell (see ltc_Box) */
} ltc_State;

/* Upvalues shared by every function of the module. */
#define LTC_UPV_BODY      1   /* the Swift body (light userdata) */
#define LTC_UPV_META      2   /* the metatable of contexts */
#define LTC_UPV_HANDLES   3   /* slot -> userdata, weak values */
#define LTC_UPV_STATE     4   /* the ltc_State userdata */
#define LTC_UPV_EXTRA     5   /* slot -> destructor function; [0] error slot; strong */
#define LTC_UPV_SLOTS     6   /* reserved */
#define LTC_NUPVALUES     6

static inline ltc_State *ltc_state (lua_State *L) {
  return (ltc_State *)lua_touserdata(L, lua_upvalueindex(LTC_UPV_STATE));
}

/* why: upvalue indices are macro arithmetic; Swift reads them through these. */
static inline int ltc_upvalue (int i) { return lua_upvalueindex(i); }

/*
** why: luaL_testudata is '-' in effect for Swift only when the metatable exists; this version
** compares against the metatable upvalue with '-' calls only (lua_getmetatable, lua_rawequal).
*/
/*
** What a handle points to once its __gc gave its cell back: an empty cell, so that a __gc called again
** (Lua code can call it, and a resurrected handle can be finalized twice) finds a freed context and
** nothing else.  Its count never reaches zero.
*/
static ltc_Box ltc_deadcell = { 1 << 30, NULL, NULL, NULL, 0, NULL, 0, 0, {0} };

static inline ltc_Box *ltc_tobox (lua_State *L, int idx) {
  ltc_Box **p = (ltc_Box **)lua_touserdata(L, idx);
  if (p == NULL || lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return NULL;
  int same = lua_rawequal(L, -1, lua_upvalueindex(LTC_UPV_META));
  lua_pop(L, 1);
  if (!same) return NULL;
  return *p != NULL ? *p : &ltc_deadcell;
}

/* The cell of the handle at 'idx' (known to be a handle). */
static inline ltc_Box *ltc_cellat (lua_State *L, int idx) {
  ltc_Box *b = *(ltc_Box **)lua_touserdata(L, idx);
  return b != NULL ? b : &ltc_deadcell;
}

/* The handle at 'idx' lets go of its cell (in its __gc). */
static inline void ltc_dropcell (lua_State *L, int idx) {
  *(ltc_Box **)lua_touserdata(L, idx) = NULL;
}

/* Drops one owner of a cell; the last one frees it.  Never raises. */
static inline void ltc_unref (ltc_Box *b) {
  if (b != NULL && b != &ltc_deadcell && --b->refs <= 0) {
    if (b->pprev != NULL) {
      *b->pprev = b->next;
      if (b->next != NULL) b->next->pprev = b->pprev;
    }
    free(b);
  }
}

/*
** why: setting an existing integer key of a table to nil never allocates (luaH_setint finds the node),
** so lua_rawseti cannot raise here although the manual marks it 'm'.  Swift uses it only this way.
*/
static inline void ltc_clearslot (lua_State *L, int tableidx, lua_Integer slot) {
  tableidx = lua_absindex(L, tableidx);
  lua_rawgeti(L, tableidx, slot);
  int present = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (present) {
    lua_pushnil(L);
    lua_rawseti(L, tableidx, slot);
  }
}

/*
** why: as ltc_clearslot, replacing the value of a key that exists (here the pending-error slot 0 of the
** extra table, created when the module opened) never allocates.  Pops the value.
*/
static inline void ltc_setexisting (lua_State *L, int tableidx, lua_Integer key) {
  lua_rawseti(L, tableidx, key);
}

/*
** Slots: integer keys of the handles table, one per chunk Lua has seen.  A free list in the state, so
** taking and giving back a slot touches no Lua table.  Giving back never raises (a slot that does not
** fit in the list is simply never reused).
*/
static inline lua_Integer ltc_takeslot (ltc_State *S) {
  if (S->nfree > 0) return S->freeslots[--S->nfree];
  return ++S->nextslot;
}

static inline void ltc_giveslot (ltc_State *S, lua_Integer slot) {
  if (slot <= 0) return;
  if (S->nfree == S->capfree) {
    int cap = S->capfree ? S->capfree * 2 : 64;
    lua_Integer *p = (lua_Integer *)realloc(S->freeslots, (size_t)cap * sizeof(lua_Integer));
    if (p == NULL) return;
    S->freeslots = p;
    S->capfree = cap;
  }
  S->freeslots[S->nfree++] = slot;
}

static inline void ltc_releaseslot (lua_State *L, lua_Integer slot) {
  ltc_giveslot(ltc_state(L), slot);
}

/*
** A new, empty handle with a slot of its own: [-0, +1].  'meta', 'handles' and 'slots' are the indices
** of the metatable and of the two tables.  It raises on memory errors, so it runs in a trampoline
** before the Swift body, or in a protected helper.
*/
static inline ltc_Box *ltc_newbox_at (lua_State *L, int meta, int handles, int state) {
  ltc_Box *b;
  ltc_Box **p;
  ltc_State *S = (ltc_State *)lua_touserdata(L, state);
  meta = lua_absindex(L, meta);
  handles = lua_absindex(L, handles);
  p = (ltc_Box **)lua_newuserdatauv(L, sizeof(ltc_Box *), 1);
  *p = NULL;
  b = (ltc_Box *)calloc(1, sizeof(ltc_Box));
  if (b == NULL) luaL_error(L, "not enough memory");
  b->refs = 1;  /* the userdata's */
  b->next = S->cells;
  if (S->cells != NULL) S->cells->pprev = &b->next;
  b->pprev = &S->cells;
  S->cells = b;
  *p = b;
  lua_pushvalue(L, meta);
  lua_setmetatable(L, -2);  /* from here on its __gc gives the cell back */
  lua_pushvalue(L, -1);
  /* the slot is peeked, stored ('m': may raise), and only then taken */
  lua_rawseti(L, handles, S->nfree > 0 ? S->freeslots[S->nfree - 1] : S->nextslot + 1);
  b->slot = ltc_takeslot(S);
  return b;
}

static inline ltc_Box *ltc_newbox (lua_State *L) {
  return ltc_newbox_at(L, lua_upvalueindex(LTC_UPV_META), lua_upvalueindex(LTC_UPV_HANDLES),
                       lua_upvalueindex(LTC_UPV_STATE));
}

/* What a trampoline does once the Swift body has returned: raise as asked, or return its results. */
static inline int ltc_finish (lua_State *L, clua_Outcome *out, int n) {
  out->message[sizeof(out->message) - 1] = '\0';
  switch (out->kind) {
    case CLUA_ERROR: return luaL_error(L, "%s", out->message);
    case CLUA_ARGERROR: return luaL_argerror(L, out->arg, out->message);
    case CLUA_RETHROW: return lua_error(L);
    default: return n;
  }
}

/*
** The trampoline of functions that create a context: the handle is made first (it may raise: no Swift
** frame yet) and put at index 1, under the arguments (argument n is at index n + 1); then the Swift
** body fills it and returns 1, or fails and leaves it empty (its __gc gives the slot back).
*/
static inline int ltc_create_trampoline (lua_State *L) {
  clua_Outcome out;
  clua_Body body = (clua_Body)lua_touserdata(L, lua_upvalueindex(LTC_UPV_BODY));
  ltc_State *S = ltc_state(L);
  int n;
  if (S->closed) return luaL_error(L, "talloc: the Lua state is closing");
  S->currentL = L;
  ltc_newbox_at(L, lua_upvalueindex(LTC_UPV_META), lua_upvalueindex(LTC_UPV_HANDLES),
                lua_upvalueindex(LTC_UPV_STATE));
  lua_insert(L, 1);
  out.kind = CLUA_RETURN;
  out.arg = 0;
  out.context = S;
  out.message[0] = '\0';
  n = body(L, &out);  /* Swift returns here: only C frames below */
  return ltc_finish(L, &out, n);
}

/* The trampoline of every other function: the generic one, with the closed-state check, handing the
   state to the body in the outcome. */
static inline int ltc_trampoline (lua_State *L) {
  clua_Outcome out;
  clua_Body body = (clua_Body)lua_touserdata(L, lua_upvalueindex(LTC_UPV_BODY));
  ltc_State *S = ltc_state(L);
  int n;
  if (S->closed) return luaL_error(L, "talloc: the Lua state is closing");
  S->currentL = L;
  out.kind = CLUA_RETURN;
  out.arg = 0;
  out.context = S;
  out.message[0] = '\0';
  n = body(L, &out);  /* Swift returns here: only C frames below */
  return ltc_finish(L, &out, n);
}

/* (protected part of ltc_pushhandle) [meta, handles, state, body] -> handle */
static inline int ltc_pushhandle_k (lua_State *L) {
  void *body = lua_touserdata(L, 4);
  ltc_Box *b = ltc_newbox_at(L, 1, 2, 3);
  b->body = body;
  return 1;
}

/*
** why: making a handle allocates.  Pushes a new handle for 'body' (which has none), with its slot
** reserved, or the error object; returns the status.  Swift attaches the chunk afterwards.  Only '-'
** calls before the pcall; must run in a function with the module's upvalues.
*/
static inline int ltc_pushhandle (lua_State *L, void *body) {
  lua_pushcfunction(L, ltc_pushhandle_k);
  lua_pushvalue(L, lua_upvalueindex(LTC_UPV_META));
  lua_pushvalue(L, lua_upvalueindex(LTC_UPV_HANDLES));
  lua_pushvalue(L, lua_upvalueindex(LTC_UPV_STATE));
  lua_pushlightuserdata(L, body);
  return lua_pcall(L, 4, 1, 0);
}

/* (protected part of ltc_call_destructor) [fn, handle] -> results of fn(handle) */
static inline int ltc_call_k (lua_State *L) {
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/*
** why: a Lua destructor is arbitrary code ('e').  Calls fn(handle) with fn and handle on the top;
** [-2, +1]: the first result or the error object; returns the status.
*/
static inline int ltc_call (lua_State *L, int nargs) {
  lua_pushcfunction(L, ltc_call_k);
  lua_insert(L, -(nargs + 2));
  return lua_pcall(L, nargs + 1, 1, 0);
}

/* (protected part of ltc_setextra) [table, key, value] */
static inline int ltc_rawset_k (lua_State *L) {
  lua_rawset(L, 1);
  return 0;
}

/* why: lua_rawset may grow the table ('m').  t[k] = v with t at 'idx', k and v on the top; pops both. */
static inline int ltc_rawset (lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, ltc_rawset_k);
  lua_pushvalue(L, idx);
  lua_rotate(L, -4, 2);  /* [k, v, f, t] -> [f, t, k, v] */
  return lua_pcall(L, 3, 0, 0);
}

/* Calls string.NAME over the whole stack, with 'nresults' results (protected parts of ltc_format,
   ltc_pack, ltc_unpack). */
static inline int ltc_stringlib_k (lua_State *L, const char *name, int nresults) {
  int n = lua_gettop(L);
  lua_getglobal(L, "string");
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  lua_insert(L, 1);
  lua_call(L, n, nresults);
  return lua_gettop(L);
}
static inline int ltc_format_k (lua_State *L) { return ltc_stringlib_k(L, "format", 1); }
static inline int ltc_pack_k (lua_State *L) { return ltc_stringlib_k(L, "pack", 1); }
static inline int ltc_unpack_k (lua_State *L) { return ltc_stringlib_k(L, "unpack", LUA_MULTRET); }

/*
** why: formatting may raise (bad format, wrong argument) and allocates.  Runs the protected function
** 'k' over the 'nargs' values on the top; results replace them; returns the status.
*/
static inline int ltc_protected (lua_State *L, lua_CFunction k, int nargs, int nresults) {
  lua_pushcfunction(L, k);
  lua_insert(L, -(nargs + 1));
  return lua_pcall(L, nargs, nresults, 0);
}

static inline int ltc_format (lua_State *L, int nargs) { return ltc_protected(L, ltc_format_k, nargs, 1); }
static inline int ltc_pack (lua_State *L, int nargs) { return ltc_protected(L, ltc_pack_k, nargs, 1); }
static inline int ltc_unpack (lua_State *L, int nargs) { return ltc_protected(L, ltc_unpack_k, nargs, LUA_MULTRET); }

/* (protected part of ltc_where) */
static inline int ltc_where_k (lua_State *L) {
  luaL_where(L, (int)lua_tointeger(L, 1));
  return 1;
}

/* why: luaL_where builds a string ('m'). */
static inline int ltc_where (lua_State *L, int level) {
  lua_pushcfunction(L, ltc_where_k);
  lua_pushinteger(L, level);
  return lua_pcall(L, 1, 1, 0);
}

/*
** why: lua_getinfo with "S" formats 'short_src' and 'l' computes the line; neither allocates for these
** options, but the lua_Debug record is a C struct Swift would have to mirror.  Finds the position of
** the Lua code that called the module (level 1).  Returns 0 when there is none (a C caller such as
** pcall); 1 when its chunk is the one last seen ('S->lastFile' is its interned short_src); 2 when the
** short_src was copied into 'buf' for the caller to intern (it then sets S->lastSource/lastFile).
*/
static inline int ltc_callername (lua_State *L, ltc_State *S, char *buf, size_t buflen,
                                  const char **source, int *line) {
  lua_Debug ar;
  if (!lua_getstack(L, 1, &ar)) return 0;
  if (!lua_getinfo(L, "Sl", &ar)) return 0;
  if (ar.currentline < 0) return 0;  /* a C function: no position */
  *line = ar.currentline;
  *source = ar.source;
  if (S->lastSource == ar.source && S->lastFile != NULL && strcmp(S->lastFile, ar.short_src) == 0) return 1;
  strncpy(buf, ar.short_src, buflen - 1);
  buf[buflen - 1] = '\0';
  return 2;
}

/* why: lua_warning is '-', but building "msg" pieces is not; this is the 2-piece form. */
static inline void ltc_warn (lua_State *L, const char *a, const char *b) {
  lua_warning(L, a, 1);
  lua_warning(L, b, 0);
}

/*
** One function of the module: its Swift body, whether it creates a context (the creating trampoline),
** and where it goes: the module table, the methods (__index) table, or the metatable.
*/
typedef struct ltc_Reg {
  const char *name;
  clua_Body body;
  int creates;    /* 1: ltc_create_trampoline */
  int where;      /* bit 1: module function; bit 2: method; bit 4: metamethod */
} ltc_Reg;

/* Called (from C) when the state userdata is finalized: the module's close procedure (Swift). */
typedef void (*ltc_CloseHook) (lua_State *L, ltc_State *S);

/* __gc of the state userdata: runs last at lua_close. */
static inline int ltc_state_gc (lua_State *L) {
  ltc_State *S = (ltc_State *)lua_touserdata(L, lua_upvalueindex(LTC_UPV_STATE));
  if (S != NULL && !S->closed && S->closehook != NULL) {
    S->currentL = L;
    ((ltc_CloseHook)S->closehook)(L, S);
  }
  if (S != NULL) {
    S->closed = 1;
    /* cells whose userdata never ran its __gc (its metatable was taken away, or it was made while the
       state closed, when Lua runs no more finalizers): nothing can reach them any more */
    while (S->cells != NULL) {
      ltc_Box *b = S->cells;
      S->cells = b->next;
      free(b);
    }
    free(S->freeslots);
    S->freeslots = NULL;
    S->nfree = S->capfree = 0;
  }
  return 0;
}

/*
** (protected part of ltc_openlib) [regs, nregs, root, ownsRoot, closehook] -> module table.
** Builds the metatable "talloc.context", the handles (weak values), extra and slots tables, the state
** userdata, and one closure per function, all sharing the same upvalues.
*/
static inline int ltc_openlib_k (lua_State *L) {
  const ltc_Reg *regs = (const ltc_Reg *)lua_touserdata(L, 1);
  int nregs = (int)lua_tointeger(L, 2);
  void *root = lua_touserdata(L, 3);
  int owns = lua_toboolean(L, 4);
  ltc_CloseHook hook = (ltc_CloseHook)lua_touserdata(L, 5);
  int i, meta, handles, state, extra, slots, module, methods;
  ltc_State *S;
  lua_settop(L, 0);
  luaL_newmetatable(L, LTC_METATABLE); meta = lua_gettop(L);
  lua_newtable(L); handles = lua_gettop(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, handles);
  S = (ltc_State *)lua_newuserdatauv(L, sizeof(ltc_State), 0); state = lua_gettop(L);
  memset(S, 0, sizeof(*S));
  S->root = root;
  S->ownsRoot = owns;
  S->L = L;
  S->currentL = L;
  S->closehook = (void *)hook;
  lua_newtable(L); extra = lua_gettop(L);
  lua_pushboolean(L, 0);
  lua_rawseti(L, extra, 0);  /* the key of the pending destructor error exists from the start */
  lua_newtable(L); slots = lua_gettop(L);
  /* the state's __gc closes the module; it shares the module's upvalues, as observers need them */
  lua_createtable(L, 0, 1);
  lua_pushlightuserdata(L, NULL);
  lua_pushvalue(L, meta);
  lua_pushvalue(L, handles);
  lua_pushvalue(L, state);
  lua_pushvalue(L, extra);
  lua_pushvalue(L, slots);
  lua_pushcclosure(L, ltc_state_gc, LTC_NUPVALUES);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, state);
  lua_newtable(L); module = lua_gettop(L);
  lua_newtable(L); methods = lua_gettop(L);
  /* keep the state reachable from the registry too, so it is finalized only at lua_close */
  lua_pushvalue(L, state);
  lua_setfield(L, LUA_REGISTRYINDEX, "talloc.state");
  for (i = 0; i < nregs; i++) {
    lua_pushlightuserdata(L, (void *)regs[i].body);
    lua_pushvalue(L, meta);
    lua_pushvalue(L, handles);
    lua_pushvalue(L, state);
    lua_pushvalue(L, extra);
    lua_pushvalue(L, slots);
    lua_pushcclosure(L, regs[i].creates ? ltc_create_trampoline : ltc_trampoline, LTC_NUPVALUES);
    if (regs[i].where & 1) { lua_pushvalue(L, -1); lua_setfield(L, module, regs[i].name); }
    if (regs[i].where & 2) { lua_pushvalue(L, -1); lua_setfield(L, methods, regs[i].name); }
    if (regs[i].where & 4) { lua_pushvalue(L, -1); lua_setfield(L, meta, regs[i].name); }
    lua_pop(L, 1);
  }
  lua_pushvalue(L, methods);
  lua_setfield(L, meta, "__index");
  lua_getfield(L, module, "_next_child");  /* the iterator of children(), reachable from Swift */
  lua_rawseti(L, extra, -1);
  lua_pushvalue(L, meta);
  lua_setfield(L, module, "_metatable");
  lua_pushvalue(L, module);
  return 1;
}

/* why: building tables and closures allocates.  [-0, +1]: the module table or the error object. */
static inline int ltc_openlib (lua_State *L, const ltc_Reg *regs, int nregs, void *root, int ownsRoot,
                               ltc_CloseHook hook) {
  lua_pushcfunction(L, ltc_openlib_k);
  lua_pushlightuserdata(L, (void *)regs);
  lua_pushinteger(L, nregs);
  lua_pushlightuserdata(L, root);
  lua_pushboolean(L, ownsRoot);
  lua_pushlightuserdata(L, (void *)hook);
  return lua_pcall(L, 5, 1, 0);
}

/* (protected part of ltc_preload) package.preload.talloc = a loader returning 'module' (upvalue) */
static inline int ltc_loader (lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  return 1;
}
static inline int ltc_preload_k (lua_State *L) {
  /* [module, setglobal] */
  lua_getglobal(L, "package");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "loaded");
    if (lua_istable(L, -1)) { lua_pushvalue(L, 1); lua_setfield(L, -2, "talloc"); }
    lua_pop(L, 1);
    lua_getfield(L, -1, "preload");
    if (lua_istable(L, -1)) {
      lua_pushvalue(L, 1);
      lua_pushcclosure(L, ltc_loader, 1);
      lua_setfield(L, -2, "talloc");
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (lua_toboolean(L, 2)) { lua_pushvalue(L, 1); lua_setglobal(L, "talloc"); }
  return 0;
}

/* why: tables and globals may allocate.  Makes the module on the top requirable (and a global). */
static inline int ltc_preload (lua_State *L, int setglobal) {
  lua_pushcfunction(L, ltc_preload_k);
  lua_insert(L, -2);
  lua_pushboolean(L, setglobal);
  return lua_pcall(L, 2, 0, 0);
}


/*
** {======================================================================
** host API: what LuaRuntime (Swift hosts, issue 5) needs beyond the module
** =======================================================================
**
** Prefix 'lth_'.  Same rules as above: a helper that may raise runs under lua_pcall and returns the
** status; the budget hook is C because it raises ("instruction budget exhausted") from inside the
** running Lua code, where no Swift frame can be.
*/
#include <time.h>

/* The standard libraries, one bit each, in luaL_openlibs's order (LuaRuntime.Libraries mirrors them). */
#define LTH_LIB_BASE       0x001
#define LTH_LIB_PACKAGE    0x002
#define LTH_LIB_COROUTINE  0x004
#define LTH_LIB_TABLE      0x008
#define LTH_LIB_IO         0x010
#define LTH_LIB_OS         0x020
#define LTH_LIB_STRING     0x040
#define LTH_LIB_MATH       0x080
#define LTH_LIB_UTF8       0x100
#define LTH_LIB_DEBUG      0x200

/* (protected part of lth_openlibs) [mask] */
static inline int lth_openlibs_k (lua_State *L) {
  static const struct { int bit; const char *name; lua_CFunction open; } libs[] = {
    {LTH_LIB_BASE, LUA_GNAME, luaopen_base},
    {LTH_LIB_PACKAGE, LUA_LOADLIBNAME, luaopen_package},
    {LTH_LIB_COROUTINE, LUA_COLIBNAME, luaopen_coroutine},
    {LTH_LIB_TABLE, LUA_TABLIBNAME, luaopen_table},
    {LTH_LIB_IO, LUA_IOLIBNAME, luaopen_io},
    {LTH_LIB_OS, LUA_OSLIBNAME, luaopen_os},
    {LTH_LIB_STRING, LUA_STRLIBNAME, luaopen_string},
    {LTH_LIB_MATH, LUA_MATHLIBNAME, luaopen_math},
    {LTH_LIB_UTF8, LUA_UTF8LIBNAME, luaopen_utf8},
    {LTH_LIB_DEBUG, LUA_DBLIBNAME, luaopen_debug},
  };
  int mask = (int)lua_tointeger(L, 1);
  size_t i;
  for (i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
    if (mask & libs[i].bit) {
      luaL_requiref(L, libs[i].name, libs[i].open, 1);  /* as luaL_openlibs, one by one */
      lua_pop(L, 1);
    }
  }
  return 0;
}

/* why: luaL_requiref allocates and runs the openers ('e').  Opens the libraries in 'mask'. */
static inline int lth_openlibs (lua_State *L, int mask) {
  lua_pushcfunction(L, lth_openlibs_k);
  lua_pushinteger(L, mask);
  return lua_pcall(L, 1, 0, 0);
}

/* The sandbox's 'load': the original (upvalue 1) with mode "t", so no binary chunk is ever loaded
   (a crafted bytecode can crash the VM). */
static inline int lth_loadtext (lua_State *L) {
  int n = lua_gettop(L);
  if (n < 3) { lua_settop(L, 3); n = 3; }  /* an absent env stays absent (n counts it) */
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

/* The sandbox's 'setmetatable': the original (upvalue 1), refusing metatables with a __gc field.
   Finalizers run with hooks off, so a looping __gc would escape the instruction budget. */
static inline int lth_setmetatable (lua_State *L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL)
      return luaL_error(L, "__gc metamethods are not allowed in the sandbox");
    lua_pop(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/* A function the sandbox removed: raises "'NAME' is not available in the sandbox" (NAME: upvalue 1). */
static inline int lth_unavailable (lua_State *L) {
  return luaL_error(L, "'%s' is not available in the sandbox", lua_tostring(L, lua_upvalueindex(1)));
}

/* (protected part of lth_sandbox) [module or nil] */
static inline int lth_sandbox_k (lua_State *L) {
  lua_pushglobaltable(L);                      /* 2 */
  lua_pushnil(L); lua_setfield(L, 2, "dofile");
  lua_pushnil(L); lua_setfield(L, 2, "loadfile");
  if (lua_getfield(L, 2, "load") == LUA_TFUNCTION) {
    lua_pushcclosure(L, lth_loadtext, 1);
    lua_setfield(L, 2, "load");
  } else lua_pop(L, 1);
  if (lua_getfield(L, 2, "setmetatable") == LUA_TFUNCTION) {
    lua_pushcclosure(L, lth_setmetatable, 1);
    lua_setfield(L, 2, "setmetatable");
  } else lua_pop(L, 1);
  if (lua_istable(L, 1)) {
    /* Lua destructors may run from the collector, where hooks are off: not in the sandbox.  The
       metatable of contexts is locked and unlisted, so no script can give it a Lua __gc. */
    lua_pushliteral(L, "set_destructor");
    lua_pushcclosure(L, lth_unavailable, 1);   /* 3 */
    lua_pushvalue(L, 3); lua_setfield(L, 1, "set_destructor");
    luaL_getmetatable(L, LTC_METATABLE);       /* 4 */
    if (lua_istable(L, 4)) {
      if (lua_getfield(L, 4, "__index") == LUA_TTABLE) {
        lua_pushvalue(L, 3);
        lua_setfield(L, -2, "set_destructor");
      }
      lua_pop(L, 1);
      lua_pushliteral(L, LTC_METATABLE);
      lua_setfield(L, 4, "__metatable");
    }
    lua_pushnil(L); lua_setfield(L, 1, "_metatable");
  }
  return 0;
}

/*
** why: changing globals allocates ('m').  Makes the state a sandbox: no dofile/loadfile, text-only
** load, no Lua finalizers (setmetatable refuses __gc, no talloc destructors, the contexts' metatable
** locked).  The module table (or nil) is on the top; it is popped.
*/
static inline int lth_sandbox (lua_State *L) {
  lua_pushcfunction(L, lth_sandbox_k);
  lua_insert(L, -2);
  return lua_pcall(L, 1, 0, 0);
}

/*
** The instruction and time budget of one entry from Swift into Lua.  A pointer to it lives in the
** main thread's extra space, which every coroutine copies when it is created, so the count hook
** finds it in any thread.
*/
typedef struct lth_Budget {
  long long remaining;   /* instructions left (when 'limited') */
  double deadline;       /* CLOCK_MONOTONIC seconds; 0 = none */
  int limited;           /* an instruction limit is set */
  int armed;             /* an entry from Swift is running */
  int exhausted;         /* 1: instructions, 2: time */
  int step;              /* the hook's count */
} lth_Budget;

static inline double lth_now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
** why: a hook that stops the script must raise ('v') from inside the running Lua code (as lua.c's
** 'lstop').  Once the budget is spent, the hook runs at every instruction, so a script that catches
** the error with pcall is stopped again at its next instruction.
*/
static inline void lth_budgethook (lua_State *L, lua_Debug *ar) {
  lth_Budget *b;
  (void)ar;
  memcpy(&b, lua_getextraspace(L), sizeof(b));
  if (b == NULL || !b->armed) return;
  if (b->limited) {
    b->remaining -= lua_gethookcount(L);
    if (b->remaining <= 0) {
      b->remaining = 0;
      if (!b->exhausted) b->exhausted = 1;
      lua_sethook(L, lth_budgethook, LUA_MASKCOUNT, 1);
      luaL_error(L, "instruction budget exhausted");
    }
  }
  if (b->deadline > 0 && (b->exhausted == 2 || lth_now() >= b->deadline)) {
    b->exhausted = 2;
    lua_sethook(L, lth_budgethook, LUA_MASKCOUNT, 1);
    luaL_error(L, "time budget exhausted");
  }
}

/* why: the hook is a C function Swift must not write.  Installs it on 'L' (every 'step' instructions)
   with its budget; threads created afterwards inherit both. */
static inline void lth_installbudget (lua_State *L, lth_Budget *b) {
  memcpy(lua_getextraspace(L), &b, sizeof(b));
  lua_sethook(L, lth_budgethook, LUA_MASKCOUNT, b->step);
}

/* (protected part of lth_next) [table, key] */
static inline int lth_next_k (lua_State *L) {
  return lua_next(L, 1) ? 2 : 0;
}

/*
** why: lua_next raises on a key that is not in the table ('v').  Pops the key on the top and pushes
** the next key and value of the table at 'idx' (*more = 1), or nothing (*more = 0); or the error object.
*/
static inline int lth_next (lua_State *L, int idx, int *more) {
  int top, status;
  idx = lua_absindex(L, idx);
  top = lua_gettop(L) - 1;
  lua_pushcfunction(L, lth_next_k);
  lua_pushvalue(L, idx);
  lua_rotate(L, -3, -1);  /* key, f, t -> f, t, key */
  status = lua_pcall(L, 2, LUA_MULTRET, 0);
  *more = (status == LUA_OK && lua_gettop(L) > top);
  return status;
}

/*
** Upvalues of a *bound* function: the module's six (so the module's Swift helpers work in it, as in
** any module function), then the host table and one light userdata for the Swift side.
*/
#define LTH_UPV_HOST    (LTC_NUPVALUES + 1)
#define LTH_UPV_EXTRA   (LTC_NUPVALUES + 2)
#define LTH_NUPVALUES   (LTC_NUPVALUES + 2)

/* The host table (kept in the registry, integer keys so Swift reads it with lua_rawgeti). */
#define LTH_HOST_MODULE   1   /* the module table */
#define LTH_HOST_META     2   /* the metatable of contexts */
#define LTH_HOST_PINS     3   /* handle -> light userdata (the body lent): handles the GC must keep */
#define LTH_HOST_SOURCE   4   /* a module function: where bound functions copy the upvalues from */
#define LTH_HOST_PERFORM  5   /* the bound function that runs Swift work inside the module */

/* why: upvalue indices are macro arithmetic. */
static inline int lth_upvalue (int i) { return lua_upvalueindex(i); }

/* [-0, +1, m] pushes a bound function of 'body' over the host table at 'host'; 'extra' is its
   light userdata.  Only for protected helpers. */
static inline void lth_pushbound (lua_State *L, int host, clua_Body body, void *extra) {
  int i;
  host = lua_absindex(L, host);
  lua_pushlightuserdata(L, (void *)body);
  lua_rawgeti(L, host, LTH_HOST_SOURCE);
  for (i = 2; i <= LTC_NUPVALUES; i++) {
    lua_getupvalue(L, -1 - (i - 2), i);  /* the source moves down as upvalues are pushed */
  }
  lua_remove(L, -LTC_NUPVALUES);  /* the source function */
  lua_pushvalue(L, host);
  lua_pushlightuserdata(L, extra);
  lua_pushcclosure(L, ltc_trampoline, LTH_NUPVALUES);
}

/* (protected part of lth_hostinit) [module, perform body] */
static inline int lth_hostinit_k (lua_State *L) {
  int host;
  lua_createtable(L, 5, 0);
  host = lua_gettop(L);
  lua_pushvalue(L, 1);
  lua_rawseti(L, host, LTH_HOST_MODULE);
  luaL_getmetatable(L, LTC_METATABLE);
  lua_rawseti(L, host, LTH_HOST_META);
  lua_newtable(L);
  lua_rawseti(L, host, LTH_HOST_PINS);
  lua_pushliteral(L, "new");
  lua_rawget(L, 1);
  if (lua_type(L, -1) != LUA_TFUNCTION) return luaL_error(L, "talloc module without 'new'");
  lua_rawseti(L, host, LTH_HOST_SOURCE);
  lth_pushbound(L, host, (clua_Body)lua_touserdata(L, 2), NULL);
  lua_rawseti(L, host, LTH_HOST_PERFORM);
  lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
  return 1;
}

/*
** why: tables, closures and a registry reference allocate.  Builds the host table for the module on
** the top (popped); '*ref' is its registry reference (lua_rawgeti(L, LUA_REGISTRYINDEX, ref)).
*/
static inline int lth_hostinit (lua_State *L, clua_Body perform, int *ref) {
  int status;
  lua_pushcfunction(L, lth_hostinit_k);
  lua_insert(L, -2);
  lua_pushlightuserdata(L, (void *)perform);
  status = lua_pcall(L, 2, 1, 0);
  if (status == LUA_OK) {
    *ref = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  return status;
}

/* (protected part of lth_bind) [host, body, extra] */
static inline int lth_bind_k (lua_State *L) {
  lth_pushbound(L, 1, (clua_Body)lua_touserdata(L, 2), lua_touserdata(L, 3));
  return 1;
}

/* why: a closure with upvalues allocates ('m').  Pushes a bound function of 'body' (or the error
   object) over the host table at 'host'. */
static inline int lth_bind (lua_State *L, int host, clua_Body body, void *extra) {
  host = lua_absindex(L, host);
  lua_pushcfunction(L, lth_bind_k);
  lua_pushvalue(L, host);
  lua_pushlightuserdata(L, (void *)body);
  lua_pushlightuserdata(L, extra);
  return lua_pcall(L, 3, 1, 0);
}

/* (protected part of lth_loadfile) [fname, mode] */
static inline int lth_loadfile_k (lua_State *L) {
  int status = luaL_loadfilex(L, (const char *)lua_touserdata(L, 1), (const char *)lua_touserdata(L, 2));
  lua_pushinteger(L, status);
  return 2;  /* chunk or message, status */
}

/*
** why: as clua_loadfile ('m'), with a mode ("t" in a sandbox: a file of bytecode is refused).  Pushes
** the chunk or the message and returns the load status.
*/
static inline int lth_loadfile (lua_State *L, const char *fname, const char *mode) {
  int status;
  lua_pushcfunction(L, lth_loadfile_k);
  lua_pushlightuserdata(L, (void *)fname);
  lua_pushlightuserdata(L, (void *)mode);
  status = lua_pcall(L, 2, 2, 0);
  if (status != LUA_OK) return status;
  status = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return status;
}

/* }====================================================================== */

#endif
