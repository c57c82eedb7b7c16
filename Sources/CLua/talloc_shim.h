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
#include "shim.h"

/* The metatable of contexts, as liolib names LUA_FILEHANDLE. */
#define LTC_METATABLE "talloc.context"

/*
** The payload of a `talloc.context` userdata: a handle on one chunk.  As liolib's "closed" streams, a
** handle is created empty (body NULL) and filled afterwards, so a memory error in between leaves it in
** a consistent state; body NULL afterwards means the context was freed.
*/
typedef struct ltc_Box {
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
} ltc_State;

/* Upvalues shared by every function of the module. */
#define LTC_UPV_BODY      1   /* the Swift body (light userdata) */
#define LTC_UPV_META      2   /* the metatable of contexts */
#define LTC_UPV_HANDLES   3   /* slot -> userdata, weak values */
#define LTC_UPV_STATE     4   /* the ltc_State userdata */
#define LTC_UPV_EXTRA     5   /* slot -> destructor function; [0] error slot; strong */
#define LTC_UPV_SLOTS     6   /* luaL_ref allocation table for slots */
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
static inline ltc_Box *ltc_tobox (lua_State *L, int idx) {
  ltc_Box *b = (ltc_Box *)lua_touserdata(L, idx);
  if (b == NULL || lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return NULL;
  int same = lua_rawequal(L, -1, lua_upvalueindex(LTC_UPV_META));
  lua_pop(L, 1);
  return same ? b : NULL;
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
** why: as ltc_clearslot, luaL_unref only writes keys that exist (t[ref] and t[0], which luaL_ref
** created), so it does not allocate.  It is '-' in the 5.4 manual.
*/
static inline void ltc_releaseslot (lua_State *L, lua_Integer slot) {
  luaL_unref(L, lua_upvalueindex(LTC_UPV_SLOTS), (int)slot);
}

/*
** A new, empty handle with a slot of its own: [-0, +1].  'meta', 'handles' and 'slots' are the indices
** of the metatable and of the two tables.  It raises on memory errors, so it runs in a trampoline
** before the Swift body, or in a protected helper.
*/
static inline ltc_Box *ltc_newbox_at (lua_State *L, int meta, int handles, int slots) {
  ltc_Box *b;
  meta = lua_absindex(L, meta);
  handles = lua_absindex(L, handles);
  slots = lua_absindex(L, slots);
  b = (ltc_Box *)lua_newuserdatauv(L, sizeof(ltc_Box), 1);
  b->body = NULL;
  b->slot = 0;
  b->freedFile = NULL;
  b->freedLine = 0;
  b->freedNewPrefix = 0;
  b->freedName[0] = '\0';
  lua_pushvalue(L, meta);
  lua_setmetatable(L, -2);
  lua_pushboolean(L, 1);
  b->slot = luaL_ref(L, slots);  /* 'm' */
  lua_pushvalue(L, -1);
  lua_rawseti(L, handles, b->slot);  /* 'm' */
  return b;
}

static inline ltc_Box *ltc_newbox (lua_State *L) {
  return ltc_newbox_at(L, lua_upvalueindex(LTC_UPV_META), lua_upvalueindex(LTC_UPV_HANDLES),
                       lua_upvalueindex(LTC_UPV_SLOTS));
}

/*
** The trampoline of functions that create a context: the handle is made first (it may raise: no Swift
** frame yet) and put at index 1, under the arguments (argument n is at index n + 1); then the Swift
** body fills it and returns 1, or fails and leaves it empty (its __gc gives the slot back).
*/
static inline int ltc_create_trampoline (lua_State *L) {
  clua_Outcome out;
  clua_Body body = (clua_Body)lua_touserdata(L, lua_upvalueindex(LTC_UPV_BODY));
  int n;
  if (ltc_state(L)->closed) return luaL_error(L, "talloc: the Lua state is closing");
  ltc_newbox(L);
  lua_insert(L, 1);
  out.kind = CLUA_RETURN;
  out.arg = 0;
  out.message[0] = '\0';
  n = body(L, &out);  /* Swift returns here: only C frames below */
  out.message[sizeof(out.message) - 1] = '\0';
  switch (out.kind) {
    case CLUA_ERROR: return luaL_error(L, "%s", out.message);
    case CLUA_ARGERROR: return luaL_argerror(L, out.arg, out.message);
    case CLUA_RETHROW: return lua_error(L);
    default: return n;
  }
}

/* The trampoline of every other function (the generic one, with the closed-state check). */
static inline int ltc_trampoline (lua_State *L) {
  if (ltc_state(L)->closed) return luaL_error(L, "talloc: the Lua state is closing");
  return clua_trampoline(L);
}

/* (protected part of ltc_pushhandle) [meta, handles, slots, body] -> handle */
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
  lua_pushvalue(L, lua_upvalueindex(LTC_UPV_SLOTS));
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

/* (protected part of ltc_format) string.format(...) */
static inline int ltc_format_k (lua_State *L) {
  int n = lua_gettop(L);
  lua_getglobal(L, "string");
  lua_getfield(L, -1, "format");
  lua_remove(L, -2);
  lua_insert(L, 1);
  lua_call(L, n, 1);
  return 1;
}

/* (protected part of ltc_pack) string.pack(fmt, ...) */
static inline int ltc_pack_k (lua_State *L) {
  int n = lua_gettop(L);
  lua_getglobal(L, "string");
  lua_getfield(L, -1, "pack");
  lua_remove(L, -2);
  lua_insert(L, 1);
  lua_call(L, n, 1);
  return 1;
}

/* (protected part of ltc_unpack) string.unpack(fmt, s, pos) */
static inline int ltc_unpack_k (lua_State *L) {
  int n = lua_gettop(L);
  lua_getglobal(L, "string");
  lua_getfield(L, -1, "unpack");
  lua_remove(L, -2);
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

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
** why: lua_getinfo with "S" formats 'short_src' and 'l' computes the line; neither raises, but the
** lua_Debug record is a C struct Swift would have to mirror.  Fills the caller's position at 'level'
** (1 = the function that called the module): its chunk's source (an interned pointer for the same
** chunk) and line.  Returns 0 when there is no Lua caller (a C function such as pcall).
*/
static inline int ltc_caller (lua_State *L, int level, const char **source, const char **shortsrc,
                              char *buf, size_t buflen, int *line) {
  lua_Debug ar;
  if (!lua_getstack(L, level, &ar)) return 0;
  if (!lua_getinfo(L, "Sl", &ar)) return 0;
  if (ar.currentline < 0) return 0;  /* a C function: no position */
  *source = ar.source;
  *line = ar.currentline;
  strncpy(buf, ar.short_src, buflen - 1);
  buf[buflen - 1] = '\0';
  *shortsrc = buf;
  return 1;
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
  if (S != NULL) S->closed = 1;
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

#endif
