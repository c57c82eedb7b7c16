/*
** luatalloc — the C half of the `talloc` Lua module: trampolines, opening and closing, protected helpers
** (cells, handles and interned names: ltc_cells.c).
** SPDX-License-Identifier: MIT
**
** See ltc_shim.h for the two rules (threads, handles).  Every function here that may raise runs either in
** a module function's own frame (before its Swift body or after the body returned) or under lua_pcall.
*/
#include "ltc_shim.h"
#include "ltc_strlib.h"

const ltc_Cell ltc_deadcell = { NULL, NULL, 0, 0, 1 << 30, 0, 0, 0 };

/* The closure of every module function carries these upvalues (see LTC_UPV_*). */

static int ltc_closedmsg (lua_State *L) {
  return luaL_error(L, "talloc: the Lua state is closing");
}

/*
** Once the state's close has begun (ModuleState.close frees every context, running destructors), no new
** context is made: a destructor that made one every time it ran would keep the close from ever ending
** (finding F3).  Its error becomes a warning at close, as every destructor error there does.
*/
static int ltc_closingmsg (lua_State *L) {
  return luaL_error(L, "talloc: the Lua state is closing: no new contexts");
}

/*
** {======================================================================
** Running a Swift body
** =======================================================================
*/

/*
** Pushes the text of out->pieces as one string.  The piece whose bytes a finalizer could free (a chunk's
** name) is copied first: an allocation runs a collection step only after its copy is made; the others
** are stable (literals, the outcome, Lua strings on the stack) until Lua joins them.
*/
static void ltc_pushtext (lua_State *L, clua_Outcome *out) {
  int i, n = out->npieces, v = out->volatilepiece, base;
  if (n <= 0) { lua_pushliteral(L, ""); return; }
  if (n > CLUA_MAXPIECES) n = CLUA_MAXPIECES;
  luaL_checkstack(L, n + 1, NULL);  /* (a C function has LUA_MINSTACK slots: no growth, no collection) */
  base = lua_gettop(L);
  if (v >= 0 && v < n) lua_pushlstring(L, (const char *)out->pieces[v].p, out->pieces[v].len);
  else v = -1;
  for (i = 0; i < n; i++) {
    if (i == v) lua_pushvalue(L, base + 1);
    else lua_pushlstring(L, (const char *)out->pieces[i].p, out->pieces[i].len);
  }
  lua_concat(L, n);
  if (v >= 0) lua_remove(L, base + 1);
}

/* Raises as the body asked, or returns its results.  The previous thread is back in place already. */
static int ltc_finish (lua_State *L, clua_Outcome *out, int n) {
  out->message[sizeof(out->message) - 1] = '\0';
  switch (out->kind) {
    case CLUA_ERROR: return luaL_error(L, "%s", out->message);
    case CLUA_ARGERROR: return luaL_argerror(L, out->arg, out->message);
    case CLUA_RETHROW: return lua_error(L);
    case LTC_RETBYTES:  /* the body's last result: bytes it pointed at (a chunk's, which nothing can free
                           before they are copied: no Lua code runs until then) */
      lua_pushlstring(L, (const char *)out->bytes, out->len);
      return n;
    case LTC_RETTEXT:
      ltc_pushtext(L, out);
      return n;
    case LTC_ERRORTEXT:
      ltc_pushtext(L, out);
      /* FALLTHROUGH */
    case LTC_ERRORVALUE:  /* "position: " .. message, any bytes */
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
      return lua_error(L);
    default: return n;
  }
}

/*
** Runs the body with the thread recorded: callbacks that run inside it (observer, Lua destructors) use
** this thread, and the thread of the call that was running before comes back when the body returns.  A
** body never raises, so the restore always happens.  'host' says whether the body is a host function's
** (a bound function: withContexts, a registered Swift function) rather than a module function's.
*/
static int ltc_runbodyas (lua_State *L, ltc_State *S, clua_Body body, clua_Outcome *out, const void *arg,
                          size_t len, int host) {
  lua_State *prev = S->currentL;
  int prevhost = S->hostbody;
  int n;
  out->kind = CLUA_RETURN;
  out->arg = 0;
  out->context = S;
  out->bytes = arg;  /* what the trampoline gives the body (the __gc cell, pack's bytes) */
  out->len = len;
  out->message[0] = '\0';
  S->currentL = L;
  S->hostbody = host;
  S->inbody++;
  n = body(L, out);  /* Swift returns here: only C frames below */
  S->inbody--;
  S->hostbody = prevhost;
  S->currentL = prev;
  return n;
}

static int ltc_runbody (lua_State *L, ltc_State *S, clua_Body body, clua_Outcome *out, const void *arg,
                        size_t len) {
  return ltc_runbodyas(L, S, body, out, arg, len, 0);
}

/* the collection itself (see ltc_collectnow) */
static void ltc_collect (lua_State *L, ltc_Collect *c) {
  c->pending = 0;
  c->grace++;
  lua_gc(L, LUA_GCCOLLECT);
  lua_gc(L, LUA_GCCOLLECT);
  c->grace--;
}

/* (the slow parts of ltc_collectnow and ltc_collectcharged: a collection is pending) */
void ltc_collectowed (lua_State *L, ltc_Collect *c) {
  lth_owe(L, lth_gcunits(L, 2));
  ltc_collect(L, c);
}

void ltc_collectpaid (lua_State *L, ltc_Collect *c) {
  lth_charge(L, lth_gcunits(L, 2));
  ltc_collect(L, c);
}

/*
** The safe point at the start of every module call: nothing is held yet, so a collection asked for when
** memory ran out (finalizers included: contexts that became garbage give their memory back) runs here,
** charged to the budget first (it may raise: no Swift frame yet).
*/
static void ltc_safepoint (lua_State *L, ltc_State *S) {
  ltc_collectcharged(L, S->collect);
}

/*
** After a module function's body: the work it did that no instruction count sees is charged to the running
** entry's budget (finding F9) — TallocCore's long walks (subtrees, parent chains up to limits, reference
** lists: Talloc.takeWork), the module's own walks up the tree (S->work), and what a Swift frame owed (the
** collections of a collect-and-retry).  May raise "instruction budget exhausted": the body has returned.
** Without an armed budget (the luatalloc program, stock Lua, a host's own call) it costs a load and a test.
*/
static void ltc_metered (lua_State *L, ltc_State *S);

static inline void ltc_meter (lua_State *L, ltc_State *S) {
  const int *armed = S->collect->budgetArmed;
  if (armed != NULL && *armed) ltc_metered(L, S);
  else S->work = 0;
}

static void ltc_metered (lua_State *L, ltc_State *S) {
  long long steps;
  if (!lth_budgeted(L)) { S->work = 0; return; }  /* (the hook is not ours on this thread) */
  steps = S->work;
  S->work = 0;
  if (S->takework != NULL) steps += S->takework();
  lth_charge(L, steps * LTH_WALKUNITS);
}

/* The host's bound functions (upvalue 1: the Swift body itself; the state in LTC_UPV_STATE). */
int ltc_trampoline (lua_State *L) {
  clua_Outcome out;
  ltc_State *S = ltc_state(L);
  int n;
  if (S->closed) return ltc_closedmsg(L);
  ltc_collectnow(L, S->collect);  /* owed, not charged: a host's call must not fail for a script's debt */
  n = ltc_runbodyas(L, S, (clua_Body)lua_touserdata(L, lua_upvalueindex(LTC_UPV_BODY)), &out, NULL, 0, 1);
  return ltc_finish(L, &out, n);
}

/* The record of the running module function (upvalue 1): its body and the state, in one lookup. */
static ltc_Fn *ltc_fn (lua_State *L) {
  return (ltc_Fn *)lua_touserdata(L, lua_upvalueindex(LTC_UPV_BODY));
}

/* Every plain module function. */
static int ltc_fn_trampoline (lua_State *L) {
  clua_Outcome out;
  ltc_Fn *fn = ltc_fn(L);
  ltc_State *S = fn->S;
  int n;
  if (S->closed) return ltc_closedmsg(L);
  ltc_safepoint(L, S);
  n = ltc_runbody(L, S, fn->body, &out, NULL, 0);
  ltc_meter(L, S);
  return ltc_finish(L, &out, n);
}

/* Functions that must work on a closed state and never raise on their own (is_freed, __gc, __tostring):
   the body sees out.context NULL when the state is closed. */
static int ltc_nostate_trampoline (lua_State *L) {
  clua_Outcome out;
  ltc_Fn *fn = ltc_fn(L);
  ltc_State *S = fn->S;
  int n;
  if (S->closed) {
    clua_Body body = fn->body;
    out.kind = CLUA_RETURN;
    out.arg = 0;
    out.context = NULL;
    out.bytes = NULL;
    out.len = 0;
    out.message[0] = '\0';
    n = body(L, &out);
    return ltc_finish(L, &out, n);
  }
  n = ltc_runbody(L, S, fn->body, &out, NULL, 0);  /* (not metered: these never raise on their own) */
  return ltc_finish(L, &out, n);
}

/*
** __gc of handles.  The common cases are decided here: a handle whose context is freed already, or that is
** not the last userdata of its cell, or whose context the collector must not free (lent, refused once),
** just lets go of its cell.  Only the last handle of a live context goes to the Swift body, which frees the
** context if it is top level.  Once the state is closed, the cells are gone with it: the handle only lets
** go of its pointer.
*/
static int ltc_gc_trampoline (lua_State *L) {
  ltc_Fn *fn = ltc_fn(L);
  ltc_State *S = fn->S;
  ltc_Cell *cell = ltc_tocell(L, 1);
  clua_Outcome out;
  int n;
  if (cell == NULL || ltc_isdead(cell)) return 0;
  ltc_dropcell(L, 1);  /* a second __gc finds the dead cell */
  if (S->closed) return 0;
  if (cell->uds > 1 || cell->body == NULL || (cell->flags & (LTC_LENT | LTC_REFUSED))) {
    if (--cell->uds <= 0 && !(cell->flags & LTC_ATTACHED)) ltc_freecell(S, cell);
    return 0;
  }
  /* the last handle of a live context: the body (TallocModule.gc) frees it if it is top level, then lets
     go of the cell, which it finds in out.bytes */
  n = ltc_runbody(L, S, fn->body, &out, cell, 0);
  return ltc_finish(L, &out, n);
}

/*
** A new, empty handle with a new cell (body NULL, slot of its own, stored in handles[slot]): [-0, +1].
** Raises on memory errors, so it runs in a trampoline before the Swift body.  Until the body attaches a
** chunk, the handle reads as freed; if the body fails, the handle is garbage and its __gc frees the cell.
*/
static ltc_Cell *ltc_newhandle (lua_State *L, ltc_State *S) {
  ltc_Cell *cell;
  ltc_Cell **p = (ltc_Cell **)lua_newuserdatauv(L, sizeof(ltc_Cell *), 1);
  *p = NULL;
  lua_pushvalue(L, lua_upvalueindex(LTC_UPV_META));
  lua_setmetatable(L, -2);  /* from here on its __gc runs (and finds a dead cell until one is set) */
  cell = ltc_newcell(S);
  if (cell == NULL) luaL_error(L, "not enough memory");
  *p = cell;
  cell->uds = 1;
  lua_pushvalue(L, -1);
  lua_rawseti(L, lua_upvalueindex(LTC_UPV_HANDLES), cell->slot);  /* 'm': raises, the __gc cleans up */
  return cell;
}

/*
** Functions that create a context: the handle is made first (it may raise: no Swift frame yet) and put at
** index 1, under the arguments (argument n is at index n + 1); then the Swift body fills it and returns 1,
** or fails and leaves it empty.
*/
static int ltc_create_trampoline (lua_State *L) {
  clua_Outcome out;
  ltc_Fn *fn = ltc_fn(L);
  ltc_State *S = fn->S;
  int n;
  if (S->closed) return ltc_closedmsg(L);
  if (S->closing) return ltc_closingmsg(L);
  ltc_safepoint(L, S);
  ltc_newhandle(L, S);
  lua_insert(L, 1);
  n = ltc_runbody(L, S, fn->body, &out, NULL, 0);
  ltc_meter(L, S);
  return ltc_finish(L, &out, n);
}

/*
** asprintf(parent, fmt, ...): the arguments are formatted first, in the function's own frame, so errors
** name 'asprintf' and its real argument numbers, and __tostring (Lua code) has run before the body looks
** at any context.  Then as ltc_create_trampoline; the formatted string is on the top.
*/
static int ltc_format_trampoline (lua_State *L) {
  clua_Outcome out;
  ltc_Fn *fn = ltc_fn(L);
  ltc_State *S = fn->S;
  int n;
  if (S->closed) return ltc_closedmsg(L);
  if (S->closing) return ltc_closingmsg(L);
  ltc_safepoint(L, S);
  luaL_checkstack(L, 4, NULL);
  if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER) luaL_checklstring(L, 2, NULL);
  ltc_strformat(L, 2);
  ltc_newhandle(L, S);
  lua_insert(L, 1);
  n = ltc_runbody(L, S, fn->body, &out, NULL, 0);
  ltc_meter(L, S);
  return ltc_finish(L, &out, n);
}

/* asprintf_append(c, fmt, ...): formatted first, as above; the result on the top. */
static int ltc_append_trampoline (lua_State *L) {
  clua_Outcome out;
  ltc_Fn *fn = ltc_fn(L);
  ltc_State *S = fn->S;
  int n;
  if (S->closed) return ltc_closedmsg(L);
  ltc_safepoint(L, S);
  luaL_checkstack(L, 4, NULL);
  if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER) luaL_checklstring(L, 2, NULL);
  ltc_strformat(L, 2);
  n = ltc_runbody(L, S, fn->body, &out, NULL, 0);
  ltc_meter(L, S);
  return ltc_finish(L, &out, n);
}

/* c:pack(off, fmt, ...): string.pack of the arguments from 3 on, in the method's own frame, into a buffer
   of this frame (no Lua string is made); the body finds the bytes in out.bytes and out.len. */
static int ltc_pack_trampoline (lua_State *L) {
  clua_Outcome out;
  ltc_Fn *fn = ltc_fn(L);
  ltc_State *S = fn->S;
  luaL_Buffer b;
  int n;
  if (S->closed) return ltc_closedmsg(L);
  ltc_safepoint(L, S);
  luaL_checkstack(L, 4, NULL);
  ltc_strpackbuffer(L, 3, &b);
  n = ltc_runbody(L, S, fn->body, &out, luaL_buffaddr(&b), luaL_bufflen(&b));
  ltc_meter(L, S);
  return ltc_finish(L, &out, n);
}

/*
** c:unpack(off, fmt): the body checks the context and the offset and points at the bytes from 'off' on;
** they are copied into a string here (so no finalizer can free what is being read); then string.unpack
** runs on it, in the method's frame, and its last result becomes an offset into the context again.
*/
static int ltc_unpack_trampoline (lua_State *L) {
  clua_Outcome out;
  ltc_Fn *fn = ltc_fn(L);
  ltc_State *S = fn->S;
  int n, data;
  lua_Integer off;
  if (S->closed) return ltc_closedmsg(L);
  ltc_safepoint(L, S);
  lua_settop(L, 3);
  n = ltc_runbody(L, S, fn->body, &out, NULL, 0);
  ltc_meter(L, S);
  if (out.kind != LTC_RETBYTES) return ltc_finish(L, &out, n);
  off = lua_tointeger(L, 2);
  if (strpbrk(lua_tostring(L, 3), "csz") == NULL)  /* numbers only: read in place (nothing allocates) */
    n = ltc_strunpackbytes(L, 3, (const char *)out.bytes, out.len, lua_gettop(L) + 1, 1);
  else {
    lua_pushlstring(L, (const char *)out.bytes, out.len);  /* a copy: no finalizer can free what is read */
    data = lua_gettop(L);
    n = ltc_strunpack(L, 3, data, 1);
  }
  lua_pushinteger(L, off + lua_tointeger(L, -1) - 1);
  lua_replace(L, -2);
  return n;
}

/*
** children(c): the body checks c (index 1); then the iterator is made here (a closure allocates): the
** module's upvalues with the iterator's body, the parent's handle and the child returned last, so that
** it works in a generic for and called bare (`local nxt = talloc.children(p); local first = nxt()`).
*/
static int ltc_children_trampoline (lua_State *L) {
  clua_Outcome out;
  ltc_Fn *fn = ltc_fn(L);
  ltc_State *S = fn->S;
  int n, i;
  if (S->closed) return ltc_closedmsg(L);
  ltc_safepoint(L, S);
  n = ltc_runbody(L, S, fn->body, &out, NULL, 0);
  ltc_meter(L, S);
  if (out.kind != CLUA_RETURN || S->iterfn == NULL) return ltc_finish(L, &out, n);
  lua_settop(L, 1);
  luaL_checkstack(L, LTC_NUPVALUES + 2, NULL);
  lua_pushlightuserdata(L, (void *)S->iterfn);
  for (i = 2; i <= LTC_NUPVALUES; i++) lua_pushvalue(L, lua_upvalueindex(i));
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  lua_pushcclosure(L, ltc_fn_trampoline, LTC_NUPVALUES + 2);
  return 1;
}

/* }====================================================================== */




/*
** {======================================================================
** Protected helpers
** =======================================================================
*/

/* (protected part of ltc_call) [k, fn, args...] -> first result of fn(args...) */
static int ltc_call_k (lua_State *L) {
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

int ltc_call (lua_State *L, int nargs) {
  lua_pushcfunction(L, ltc_call_k);
  lua_insert(L, -(nargs + 2));
  return lua_pcall(L, nargs + 1, 1, 0);
}

/* (protected part of ltc_rawset) [table, key, value] */
static int ltc_rawset_k (lua_State *L) {
  lua_rawset(L, 1);
  return 0;
}

int ltc_rawset (lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, ltc_rawset_k);
  lua_pushvalue(L, idx);
  lua_rotate(L, -4, 2);  /* [k, v, f, t] -> [f, t, k, v] */
  return lua_pcall(L, 3, 0, 0);
}

/* (protected part of ltc_where) [level, message] */
static int ltc_where_k (lua_State *L) {
  luaL_where(L, (int)lua_tointeger(L, 1));
  lua_insert(L, 2);
  lua_concat(L, 2);
  return 1;
}

int ltc_where (lua_State *L, int level) {
  lua_pushcfunction(L, ltc_where_k);
  lua_pushinteger(L, level);
  lua_rotate(L, -3, -1);  /* [msg, f, level] -> [f, level, msg] */
  return lua_pcall(L, 2, 1, 0);
}

/* }====================================================================== */


/*
** {======================================================================
** Opening and closing
** =======================================================================
*/

/* __gc of the state userdata: runs last at lua_close. */
static int ltc_state_gc (lua_State *L) {
  ltc_State *S = (ltc_State *)lua_touserdata(L, 1);
  if (S == NULL) return 0;
  if (!S->closed && S->closehook != NULL) {
    lua_State *prev = S->currentL;
    S->currentL = L;
    /* a body still counted as running (os.exit(status, true) in a destructor its call ran closes the state
       from inside it) never resumes: its frame's upvalues are not this __gc's, so the close's callbacks
       must take the tables from the registry (finding A3 of adv2: a SIGSEGV in liblua) */
    S->inbody = 0;
    S->hostbody = 0;
    ((ltc_CloseHook)S->closehook)(L, S);
    S->currentL = prev;
  }
  S->closed = 1;
  /* cells whose userdata never ran its __gc (its metatable was taken away, or it was made while the state
     closed, when Lua runs no more finalizers): nothing can reach them any more */
  ltc_freeall(S);
  return 0;
}

static lua_CFunction ltc_trampolinefor (int kind) {
  switch (kind) {
    case LTC_CREATES: return ltc_create_trampoline;
    case LTC_FORMATS: return ltc_format_trampoline;
    case LTC_APPENDS: return ltc_append_trampoline;
    case LTC_PACKS: return ltc_pack_trampoline;
    case LTC_UNPACKS: return ltc_unpack_trampoline;
    case LTC_NOSTATE: return ltc_nostate_trampoline;
    case LTC_ITERATES: return ltc_children_trampoline;
    case LTC_FINALIZES: return ltc_gc_trampoline;
    default: return ltc_fn_trampoline;
  }
}

/* [-0, +1, m] pushes a module function: its record 'fn' (upvalue 1) and the tables; 'kind' picks the
   trampoline. */
static void ltc_pushfn (lua_State *L, ltc_Fn *fn, int kind, int meta, int handles, int state, int extra) {
  lua_pushlightuserdata(L, (void *)fn);
  lua_pushvalue(L, meta);
  lua_pushvalue(L, handles);
  lua_pushvalue(L, state);
  lua_pushvalue(L, extra);
  lua_pushcclosure(L, ltc_trampolinefor(kind), LTC_NUPVALUES);
}

/*
** (protected part of ltc_openlib) [regs, nregs, root, ownsRoot, closehook, account, pending, charge, takework]
** -> module table.  Builds the metatable "talloc.context", the handles (weak values) and extra tables, the
** state userdata, and one closure per function, all sharing the same upvalues.
*/
static int ltc_openlib_k (lua_State *L) {
  const ltc_Reg *regs = (const ltc_Reg *)lua_touserdata(L, 1);
  int nregs = (int)lua_tointeger(L, 2);
  void *root = lua_touserdata(L, 3);
  int owns = lua_toboolean(L, 4);
  ltc_CloseHook hook = (ltc_CloseHook)lua_touserdata(L, 5);
  void *account = lua_touserdata(L, 6);
  ltc_Collect *collect = (ltc_Collect *)lua_touserdata(L, 7);
  ltc_ChargeFn charge = (ltc_ChargeFn)lua_touserdata(L, 8);
  ltc_TakeWorkFn takework = (ltc_TakeWorkFn)lua_touserdata(L, 9);
  int i, meta, handles, state, extra, module, methods;
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
  S->account = account;
  S->charge = account != NULL ? charge : NULL;
  S->collect = collect != NULL ? collect : &S->ownCollect;
  S->takework = takework;
  S->L = L;
  S->currentL = NULL;
  S->metaRef = S->handlesRef = S->extraRef = LUA_NOREF;
  lua_newtable(L); extra = lua_gettop(L);
  lua_pushboolean(L, 0);
  lua_rawseti(L, extra, 0);  /* the key of the pending destructor error exists from the start */
  lua_createtable(L, 1, 0);  /* the caller cache of ltc_callername: one array slot, weak */
  lua_pushboolean(L, 0);
  lua_rawseti(L, -2, 1);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawseti(L, extra, LTC_EXTRA_LASTFN);
  /* the state's __gc closes the module; a plain function, it finds the state in its argument */
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, ltc_state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, state);
  S->closehook = (void *)hook;  /* only now: a failure above leaves a state whose __gc does nothing */
  /* the tables, for callbacks (registry references); the state, so it is finalized only at lua_close */
  lua_pushvalue(L, meta); S->metaRef = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, handles); S->handlesRef = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, extra); S->extraRef = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, state);
  lua_setfield(L, LUA_REGISTRYINDEX, "talloc.state");
  lua_newtable(L); module = lua_gettop(L);
  lua_newtable(L); methods = lua_gettop(L);
  if (nregs > LTC_MAXFNS) return luaL_error(L, "talloc: too many module functions");
  for (i = 0; i < nregs; i++) {
    ltc_Fn *fn = &S->fns[i];
    fn->body = regs[i].body;
    fn->S = S;
    if (regs[i].where & 8) { S->iterfn = fn; continue; }  /* made by each children() call */
    ltc_pushfn(L, fn, regs[i].kind, meta, handles, state, extra);
    if (regs[i].where & 1) { lua_pushvalue(L, -1); lua_setfield(L, module, regs[i].name); }
    if (regs[i].where & 2) { lua_pushvalue(L, -1); lua_setfield(L, methods, regs[i].name); }
    if (regs[i].where & 4) { lua_pushvalue(L, -1); lua_setfield(L, meta, regs[i].name); }
    lua_pop(L, 1);
  }
  lua_pushvalue(L, methods);
  lua_setfield(L, meta, "__index");
  lua_pushvalue(L, module);
  return 1;
}

int ltc_openlib (lua_State *L, const ltc_Reg *regs, int nregs, void *root, int ownsRoot, void *_Nullable account,
                 ltc_Collect *_Nullable collect, ltc_ChargeFn charge, ltc_TakeWorkFn takework, ltc_CloseHook hook) {
  lua_pushcfunction(L, ltc_openlib_k);
  lua_pushlightuserdata(L, (void *)regs);
  lua_pushinteger(L, nregs);
  lua_pushlightuserdata(L, root);
  lua_pushboolean(L, ownsRoot);
  lua_pushlightuserdata(L, (void *)hook);
  lua_pushlightuserdata(L, account);
  lua_pushlightuserdata(L, (void *)collect);
  lua_pushlightuserdata(L, (void *)charge);
  lua_pushlightuserdata(L, (void *)takework);
  return lua_pcall(L, 9, 1, 0);
}

/* (protected part of ltc_preload) package.preload.talloc = a loader returning 'module' (upvalue) */
static int ltc_loader (lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  return 1;
}

static int ltc_preload_k (lua_State *L) {
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

int ltc_preload (lua_State *L, int setglobal) {
  lua_pushcfunction(L, ltc_preload_k);
  lua_insert(L, -2);
  lua_pushboolean(L, setglobal);
  return lua_pcall(L, 2, 0, 0);
}

/* }====================================================================== */

/* (protected part of ltc_tostringinplace) [value] -> string */
static int ltc_tostring_k (lua_State *L) {
  lua_tolstring(L, 1, NULL);
  return 1;
}

int ltc_tostringinplace (lua_State *L, int idx) {
  int status;
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, ltc_tostring_k);
  lua_pushvalue(L, idx);
  status = lua_pcall(L, 1, 1, 0);
  if (status == LUA_OK) lua_replace(L, idx);
  return status;
}

