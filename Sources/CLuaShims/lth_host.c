/*
** luatalloc — host helpers (see lth_shim.h): the C half of LuaRuntime, the Swift host API.
** SPDX-License-Identifier: MIT
**
** Why C, and why one file: every helper here calls Lua API functions that can raise (allocate, run a
** metamethod, call Lua), so it must run inside lua_pcall, where a longjmp unwinds C frames only (DESIGN
** §4).  Each is a pair: a protected part 'lth_X_k' that does the work and a wrapper 'lth_X' that pushes it,
** lua_pcalls it and returns the status (.ci/check-boundary lists the wrappers as safe for Swift to call).
** They share one header and one set of conventions, and most are a dozen lines; the file is long because
** the host API is wide, not because a piece is.  In order:
**   opening          lth_openlibs, lth_sandbox (the sandbox's base library, lth_setmetatable, lth_unavailable)
**   the budget       lth_budgethook, lth_installbudget (the instruction count and the deadline)
**   tables, binding  lth_next, lth_hostinit, lth_bind (host functions carry the host's upvalues)
**   loading          lth_loadfile
**   memory errors    lth_collectingcatch: pcall, xpcall and coroutine.resume (copies of Lua's) that run
**                    the collection the allocator asked for when they catch "not enough memory"
**   errors           lth_msghandler, lth_describe (message, traceback, the original value)
**   dotted names     lth_callpath, lth_getpath, lth_ref, lth_newthread
**   print and async  lth_print, lth_setprint (the host's sinks), lth_pushasync (async host functions)
** The talloc module's own C half is ltc_module.c and ltc_cells.c; the bounded string library ltc_strlib.c.
*/
#include <stdlib.h>
#include "lth_shim.h"
#include "ltc_strlib.h"

int lth_msghandler (lua_State *L);


/* (protected part of lth_openlibs) [mask] */
static int lth_openlibs_k (lua_State *L) {
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
int lth_openlibs (lua_State *L, int mask) {
  lua_pushcfunction(L, lth_openlibs_k);
  lua_pushinteger(L, mask);
  return lua_pcall(L, 1, 0, 0);
}

/* os.exit, as loslib.c's, with the host's close for 'close' (upvalues: the close, its context) */
static int lth_exit (lua_State *L) {
  int status;
  if (lua_isboolean(L, 1))
    status = (lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE);
  else
    status = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
  {
    int closes = lua_toboolean(L, 2);
    lth_ExitClose close = (lth_ExitClose)lua_touserdata(L, lua_upvalueindex(1));
    close(lua_touserdata(L, lua_upvalueindex(2)), closes);  /* L is gone after it when 'closes' */
  }
  exit(status);
  return 0;  /* not reached */
}

/* (protected part of lth_setexit) [close, ctx] */
static int lth_setexit_k (lua_State *L) {
  if (lua_getglobal(L, LUA_OSLIBNAME) == LUA_TTABLE && lua_getfield(L, -1, "exit") == LUA_TFUNCTION) {
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, lth_exit, 2);
    lua_setfield(L, -2, "exit");
  }
  return 0;
}

int lth_setexit (lua_State *L, lth_ExitClose close, void *ctx) {
  lua_pushcfunction(L, lth_setexit_k);
  lua_pushlightuserdata(L, (void *)close);
  lua_pushlightuserdata(L, ctx);
  return lua_pcall(L, 2, 0, 0);
}

/* The sandbox's 'load': the original (upvalue 1) with mode "t", so no binary chunk is ever loaded
   (a crafted bytecode can crash the VM). */
static int lth_loadtext (lua_State *L) {
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
static int lth_setmetatable (lua_State *L) {
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
static int lth_unavailable (lua_State *L) {
  return luaL_error(L, "'%s' is not available in the sandbox", lua_tostring(L, lua_upvalueindex(1)));
}

/* (protected part of lth_sandbox) [module or nil] */
static int lth_sandbox_k (lua_State *L) {
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
  }
  return 0;
}

/*
** why: changing globals allocates ('m').  Makes the state a sandbox: no dofile/loadfile, text-only
** load, no Lua finalizers (setmetatable refuses __gc, no talloc destructors, the contexts' metatable
** locked).  The module table (or nil) is on the top; it is popped.
*/
int lth_sandbox (lua_State *L) {
  lua_pushcfunction(L, lth_sandbox_k);
  lua_insert(L, -2);
  return lua_pcall(L, 1, 0, 0);
}



/*
** why: a hook that stops the script must raise ('v') from inside the running Lua code (as lua.c's
** 'lstop').  Once the budget is spent, the hook runs at every instruction, so a script that catches
** the error with pcall is stopped again at its next instruction.
*/
void lth_budgethook (lua_State *L, lua_Debug *ar) {
  lth_Budget *b;
  (void)ar;
  memcpy(&b, lua_getextraspace(L), sizeof(b));
  if (b == NULL || !b->armed) return;
  if (b->limited) {
    b->remaining -= lua_gethookcount(L) + b->debt;  /* and the work owed since (lth_owe) */
    b->debt = 0;
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
void lth_installbudget (lua_State *L, lth_Budget *b) {
  memcpy(lua_getextraspace(L), &b, sizeof(b));
  lua_sethook(L, lth_budgethook, LUA_MASKCOUNT, b->step);
}

/* (protected part of lth_next) [table, key] */
static int lth_next_k (lua_State *L) {
  return lua_next(L, 1) ? 2 : 0;
}

/*
** why: lua_next raises on a key that is not in the table ('v').  Pops the key on the top and pushes
** the next key and value of the table at 'idx' (*more = 1), or nothing (*more = 0); or the error object.
*/
int lth_next (lua_State *L, int idx, int *more) {
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




/* [-0, +1, m] pushes a bound function of 'body' over the host table at 'host'; 'extra' is its
   light userdata.  Only for protected helpers. */
static void lth_pushbound (lua_State *L, int host, clua_Body body, void *extra) {
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
static int lth_hostinit_k (lua_State *L) {
  int host;
  lua_createtable(L, LTH_HOST_NKEYS, 0);
  host = lua_gettop(L);
  lua_pushvalue(L, 1);
  lua_rawseti(L, host, LTH_HOST_MODULE);
  luaL_getmetatable(L, LTC_METATABLE);
  lua_rawseti(L, host, LTH_HOST_META);
  lua_newtable(L);
  lua_rawseti(L, host, LTH_HOST_PINS);
  lua_pushvalue(L, host);
  lua_pushcclosure(L, lth_msghandler, 1);
  lua_rawseti(L, host, LTH_HOST_MSGH);
  /* the slots the handler writes exist from now on: writing them never allocates */
  lua_pushboolean(L, 0);
  lua_rawseti(L, host, LTH_HOST_ERRMSG);
  lua_pushboolean(L, 0);
  lua_rawseti(L, host, LTH_HOST_TRACEBACK);
  lua_newtable(L);
  lua_rawseti(L, host, LTH_HOST_REFS);
  lua_pushboolean(L, 0);
  lua_rawseti(L, host, LTH_HOST_PRINT);
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
int lth_hostinit (lua_State *L, clua_Body perform, int *ref) {
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
static int lth_bind_k (lua_State *L) {
  lth_pushbound(L, 1, (clua_Body)lua_touserdata(L, 2), lua_touserdata(L, 3));
  return 1;
}

/* why: a closure with upvalues allocates ('m').  Pushes a bound function of 'body' (or the error
   object) over the host table at 'host'. */
int lth_bind (lua_State *L, int host, clua_Body body, void *extra) {
  host = lua_absindex(L, host);
  lua_pushcfunction(L, lth_bind_k);
  lua_pushvalue(L, host);
  lua_pushlightuserdata(L, (void *)body);
  lua_pushlightuserdata(L, extra);
  return lua_pcall(L, 3, 1, 0);
}

/* (protected part of lth_loadfile) [fname, mode] */
static int lth_loadfile_k (lua_State *L) {
  int status = luaL_loadfilex(L, (const char *)lua_touserdata(L, 1), (const char *)lua_touserdata(L, 2));
  lua_pushinteger(L, status);
  return 2;  /* chunk or message, status */
}

/*
** why: as clua_loadfile ('m'), with a mode ("t" in a sandbox: a file of bytecode is refused).  Pushes
** the chunk or the message and returns the load status.
*/
int lth_loadfile (lua_State *L, const char *fname, const char *mode) {
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



/*
** {======================================================================
** Catching errors collects: pcall, xpcall and coroutine.resume
** =======================================================================
**
** Copies of Lua 5.4.4's luaB_pcall, luaB_xpcall (lbaselib.c) and luaB_coresume (lcorolib.c), Copyright
** (C) 1994-2022 Lua.org, PUC-Rio, MIT licence, with one addition: when one of them catches an error while
** the runtime's "memory ran out" flag (upvalue 1) is set, it runs a full collection before returning.
** Lua's emergency collections run no finalizers, so contexts whose handles became garbage would keep
** their memory until a normal cycle reached them; the script that just caught "not enough memory" gets it
** back before its next allocation.
*/

static void lth_aftercatch (lua_State *L) {
  lth_Heap *h = (lth_Heap *)lua_touserdata(L, lua_upvalueindex(1));
  if (h->collect.pending) h->refusals++;  /* what was caught is a memory error */
  ltc_collectcharged(L, &h->collect);  /* charged to the budget first (may raise: finding F1) */
}

static int lth_finishpcall (lua_State *L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {  /* error? */
    lth_aftercatch(L);
    lua_pushboolean(L, 0);  /* first result (false) */
    lua_pushvalue(L, -2);  /* error message */
    return 2;  /* return false, msg */
  }
  else return lua_gettop(L) - (int)extra;  /* return all results */
}

static int lth_pcall (lua_State *L) {
  int status;
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);  /* first result if no errors */
  lua_insert(L, 1);  /* put it in place */
  status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, lth_finishpcall);
  return lth_finishpcall(L, status, 0);
}

static int lth_xpcall (lua_State *L) {
  int status;
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);  /* check error function */
  lua_pushboolean(L, 1);  /* first result */
  lua_pushvalue(L, 1);  /* function */
  lua_rotate(L, 3, 2);  /* move them below function's arguments */
  status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, lth_finishpcall);
  return lth_finishpcall(L, status, 2);
}

static lua_State *lth_getco (lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  return co;
}

static int lth_auxresume (lua_State *L, lua_State *co, int narg) {
  int status, nres;
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;  /* error flag */
  }
  lua_xmove(L, co, narg);
  status = lua_resume(co, L, narg, &nres);
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);  /* remove results anyway */
      lua_pushliteral(L, "too many results to resume");
      return -1;  /* error flag */
    }
    lua_xmove(co, L, nres);  /* move yielded values */
    return nres;
  }
  else {
    lua_xmove(co, L, 1);  /* move error message */
    return -1;  /* error flag */
  }
}

static int lth_coresume (lua_State *L) {
  lua_State *co = lth_getco(L);
  int r;
  r = lth_auxresume(L, co, lua_gettop(L) - 1);
  if (r < 0) {
    lua_remove(L, 1);  /* the dead coroutine: collectable now if nothing else holds it */
    lth_aftercatch(L);
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;  /* return false + error message */
  }
  else {
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;  /* return true + 'resume' returns */
  }
}

/* (protected part of lth_collectingcatch) [pending] */
static int lth_collectingcatch_k (lua_State *L) {
  void *pending = lua_touserdata(L, 1);
  lua_pushglobaltable(L);  /* 2 */
  if (lua_getfield(L, 2, "pcall") == LUA_TFUNCTION) {
    lua_pushlightuserdata(L, pending);
    lua_pushcclosure(L, lth_pcall, 1);
    lua_setfield(L, 2, "pcall");
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 2, "xpcall") == LUA_TFUNCTION) {
    lua_pushlightuserdata(L, pending);
    lua_pushcclosure(L, lth_xpcall, 1);
    lua_setfield(L, 2, "xpcall");
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 2, "coroutine") == LUA_TTABLE && lua_getfield(L, 3, "resume") == LUA_TFUNCTION) {
    lua_pushlightuserdata(L, pending);
    lua_pushcclosure(L, lth_coresume, 1);
    lua_setfield(L, 3, "resume");
  }
  return 0;
}

int lth_collectingcatch (lua_State *L, lth_Heap *pending) {
  lua_pushcfunction(L, lth_collectingcatch_k);
  lua_pushlightuserdata(L, pending);
  return lua_pcall(L, 1, 0, 0);
}

/* }====================================================================== */



/*
** {======================================================================
** Errors of host calls
** =======================================================================
*/

/*
** (protected part of lth_msghandler and lth_describe) [host, error object, thread (light userdata; NULL:
** this one), level].  Stores the object's message and the traceback of the thread from 'level'.
*/
static int lth_describe_k (lua_State *L) {
  lua_State *co = (lua_State *)lua_touserdata(L, 3);
  int level = (int)lua_tointeger(L, 4);
  if (co == NULL) co = L;
  if (lua_type(L, 2) == LUA_TSTRING) lua_pushvalue(L, 2);
  else if (lua_type(L, 2) == LUA_TNUMBER) {  /* as lua.c's lua_tostring: a number is its text */
    lua_pushvalue(L, 2);
    lua_tolstring(L, -1, NULL);
  }
  else if (!luaL_callmeta(L, 2, "__tostring") || lua_type(L, -1) != LUA_TSTRING) {
    lua_settop(L, 4);
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 2));
  }
  lua_rawseti(L, 1, LTH_HOST_ERRMSG);
  luaL_traceback(L, co, NULL, level);
  lua_rawseti(L, 1, LTH_HOST_TRACEBACK);
  return 0;
}

/*
** The message handler of host calls: returns the error object as it is, and stores its message and the
** traceback in the host table (upvalue 1) when it can (a failure to do so leaves them false).  Level 2 from
** the protected part is level 1 from here: the function that raised, as lua.c's msghandler.
*/
int lth_msghandler (lua_State *L) {
  lua_settop(L, 1);
  if (!lua_checkstack(L, 8)) return 1;
  lua_pushcfunction(L, lth_describe_k);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushlightuserdata(L, NULL);
  lua_pushinteger(L, 2);
  if (lua_pcall(L, 4, 0, 0) != LUA_OK) lua_pop(L, 1);
  return 1;
}

/*
** why: tostring may run __tostring ('e') and luaL_traceback allocates ('m').  Describes the error object
** on the top of 'co' into the host table at 'host' (see lth_shim.h).
*/
int lth_describe (lua_State *L, int host, lua_State *co) {
  host = lua_absindex(L, host);
  lua_pushcfunction(L, lth_describe_k);
  lua_pushvalue(L, host);
  if (co != L) {
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
  } else {
    lua_pushvalue(L, -3);
  }
  lua_pushlightuserdata(L, co == L ? NULL : (void *)co);
  lua_pushinteger(L, 0);
  return lua_pcall(L, 4, 0, 0);
}

/* }====================================================================== */


/*
** {======================================================================
** Calling from the host
** =======================================================================
*/

/*
** Pushes the value at the dotted path 'path' (fields from the globals; metamethods apply) [-0, +1, e].  With
** 'function' set, a missing value is an error naming the function and the first missing part; without, a
** missing part gives nil.
*/
static void lth_lookup (lua_State *L, const char *path, size_t len, int function) {
  size_t start = 0;
  lua_pushglobaltable(L);
  for (;;) {
    size_t end = start;
    while (end < len && path[end] != '.') end++;
    if (lua_type(L, -1) == LUA_TNIL && start > 0) {
      const char *part;
      if (!function) return;
      part = lua_pushlstring(L, path, start - 1);
      luaL_error(L, "function '%s' not found ('%s' is nil)", path, part);
    }
    if (start > 0 && lua_type(L, -1) != LUA_TTABLE && luaL_getmetafield(L, -1, "__index") == LUA_TNIL) {
      const char *type = luaL_typename(L, -1);
      const char *part;
      if (!function) { lua_pop(L, 1); lua_pushnil(L); return; }
      part = lua_pushlstring(L, path, start - 1);
      luaL_error(L, "function '%s' not found ('%s' is a %s value)", path, part, type);
    }
    else if (start > 0 && lua_type(L, -1) != LUA_TTABLE) lua_pop(L, 1);  /* the __index field */
    lua_pushlstring(L, path + start, end - start);
    lua_gettable(L, -2);
    lua_remove(L, -2);
    if (end >= len) break;
    start = end + 1;
  }
  if (function && lua_type(L, -1) != LUA_TFUNCTION) {
    if (lua_type(L, -1) == LUA_TNIL)
      luaL_error(L, "function '%s' not found", path);
    if (luaL_getmetafield(L, -1, "__call") == LUA_TNIL)
      luaL_error(L, "'%s' is not a function (a %s value)", path, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
}

/* (protected part of lth_callpath) [path, len, args...] */
static int lth_callpath_k (lua_State *L) {
  const char *path = (const char *)lua_touserdata(L, 1);
  size_t len = (size_t)lua_tointeger(L, 2);
  int nargs = lua_gettop(L) - 2;
  /* a C string for the messages: the path is not NUL-terminated */
  lua_pushlstring(L, path, len);
  lth_lookup(L, lua_tostring(L, -1), len, 1);
  lua_replace(L, 1);  /* the function where the path was */
  lua_settop(L, nargs + 2);  /* drop the path string */
  lua_remove(L, 2);
  lua_call(L, nargs, LUA_MULTRET);
  return lua_gettop(L);
}

int lth_callpath (lua_State *L, const char *path, size_t pathlen, int nargs, int msgh) {
  lua_pushcfunction(L, lth_callpath_k);
  lua_pushlightuserdata(L, (void *)path);
  lua_pushinteger(L, (lua_Integer)pathlen);
  lua_rotate(L, -(nargs + 3), 3);  /* f, path, len below the arguments */
  return lua_pcall(L, nargs + 2, LUA_MULTRET, msgh);
}

/* (protected part of lth_getpath) [path, len, function] */
static int lth_getpath_k (lua_State *L) {
  size_t len = (size_t)lua_tointeger(L, 2);
  lua_pushlstring(L, (const char *)lua_touserdata(L, 1), len);
  lth_lookup(L, lua_tostring(L, -1), len, lua_toboolean(L, 3));
  return 1;
}

int lth_getpath (lua_State *L, const char *path, size_t pathlen, int function) {
  lua_pushcfunction(L, lth_getpath_k);
  lua_pushlightuserdata(L, (void *)path);
  lua_pushinteger(L, (lua_Integer)pathlen);
  lua_pushboolean(L, function);
  return lua_pcall(L, 3, 1, 0);
}

/* (protected part of lth_ref) [table, value] */
static int lth_ref_k (lua_State *L) {
  lua_pushinteger(L, luaL_ref(L, 1));
  return 1;
}

int lth_ref (lua_State *L, int idx, int *ref) {
  int status;
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, lth_ref_k);
  lua_pushvalue(L, idx);
  lua_rotate(L, -3, -1);  /* value, f, t -> f, t, value */
  status = lua_pcall(L, 2, 1, 0);
  if (status == LUA_OK) {
    *ref = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  return status;
}

/* (protected part of lth_newthread) */
static int lth_newthread_k (lua_State *L) {
  lua_newthread(L);
  return 1;
}

int lth_newthread (lua_State *L) {
  lua_pushcfunction(L, lth_newthread_k);
  return lua_pcall(L, 0, 1, 0);
}

/* }====================================================================== */


/*
** {======================================================================
** Host sinks: print
** =======================================================================
*/

/* 'print' with a host sink (upvalues: the sink, its ud): luaB_print's formatting, one line to the sink. */
static int lth_print (lua_State *L) {
  lth_PrintSink sink = (lth_PrintSink)lua_touserdata(L, lua_upvalueindex(1));
  void *ud = lua_touserdata(L, lua_upvalueindex(2));
  int n = lua_gettop(L);
  int i;
  size_t len;
  const char *s;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  s = lua_tolstring(L, -1, &len);
  sink(ud, s, len);
  return 0;
}

/* (protected part of lth_setprint) [host, sink, ud] */
static int lth_setprint_k (lua_State *L) {
  lua_pushglobaltable(L);  /* 4 */
  if (lua_touserdata(L, 2) != NULL) {
    if (lua_rawgeti(L, 1, LTH_HOST_PRINT) != LUA_TFUNCTION) {
      if (lua_getfield(L, 4, "print") == LUA_TFUNCTION) lua_rawseti(L, 1, LTH_HOST_PRINT);
      else lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_pushcclosure(L, lth_print, 2);
    lua_setfield(L, 4, "print");
  } else if (lua_rawgeti(L, 1, LTH_HOST_PRINT) == LUA_TFUNCTION) {
    lua_setfield(L, 4, "print");
    lua_pushboolean(L, 0);
    lua_rawseti(L, 1, LTH_HOST_PRINT);
  }
  return 0;
}

int lth_setprint (lua_State *L, int host, lth_PrintSink _Nullable sink, void *_Nullable ud) {
  host = lua_absindex(L, host);
  lua_pushcfunction(L, lth_setprint_k);
  lua_pushvalue(L, host);
  lua_pushlightuserdata(L, (void *)sink);
  lua_pushlightuserdata(L, ud);
  return lua_pcall(L, 3, 0, 0);
}

/* }====================================================================== */


/*
** {======================================================================
** Async host functions
** =======================================================================
*/

/* Where an async function goes on when the host resumes it: [true, results...] or [false, message]. */
static int lth_asynccont (lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lua_toboolean(L, 1)) {
    lua_remove(L, 1);
    return lua_gettop(L);
  }
  lua_settop(L, 2);
  if (lua_type(L, 2) == LUA_TSTRING) {  /* the caller's position, as luaL_error */
    luaL_where(L, 1);
    lua_insert(L, 2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

/*
** An async function (upvalues: 'start' and its ud).  'start' returns 0 (the work started: yield), 1 (raise
** the message on the top at the caller's position) or 2 (raise the object on the top as it is).
*/
static int lth_asyncfn (lua_State *L) {
  lth_AsyncStart start = (lth_AsyncStart)lua_touserdata(L, lua_upvalueindex(1));
  int r = start(L, lua_touserdata(L, lua_upvalueindex(2)));
  if (r == 1) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
    return lua_error(L);
  }
  if (r != 0) return lua_error(L);
  lua_settop(L, 0);
  return lua_yieldk(L, 0, 0, lth_asynccont);
}

/* (protected part of lth_pushasync) [start, ud] */
static int lth_pushasync_k (lua_State *L) {
  lua_pushcclosure(L, lth_asyncfn, 2);
  return 1;
}

int lth_pushasync (lua_State *L, lth_AsyncStart start, void *ud) {
  lua_pushcfunction(L, lth_pushasync_k);
  lua_pushlightuserdata(L, (void *)start);
  lua_pushlightuserdata(L, ud);
  return lua_pcall(L, 2, 1, 0);
}

/* }====================================================================== */
