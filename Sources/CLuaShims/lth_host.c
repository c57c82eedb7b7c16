/*
** luatalloc — host helpers (see lth_shim.h).
** SPDX-License-Identifier: MIT
*/
#include "lth_shim.h"
#include "ltc_strlib.h"



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
    lua_pushnil(L); lua_setfield(L, 1, "_metatable");
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
  ltc_collectnow(L, (ltc_Collect *)lua_touserdata(L, lua_upvalueindex(1)));
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

int lth_collectingcatch (lua_State *L, ltc_Collect *pending) {
  lua_pushcfunction(L, lth_collectingcatch_k);
  lua_pushlightuserdata(L, pending);
  return lua_pcall(L, 1, 0, 0);
}

/* }====================================================================== */
