/*
** luatalloc — the only C in the product: static inline helpers over Lua 5.4's C API.
** SPDX-License-Identifier: MIT
**
** Why this file exists (STYLE.md 2.3, DESIGN.md 4): a Lua error is a longjmp and
** must never unwind a Swift frame.  So Swift calls only API functions marked '-'
** in the manual; everything that may raise ('m', 'v', 'e') lives here, either
**   (a) in 'clua_trampoline', which raises only after the Swift body returned, or
**   (b) in a protected helper: a small C function run under 'lua_pcall', whose
**       caller returns the status (LUA_OK or an error code) to Swift, with the
**       error object (if any) on the top of the stack.
** Every helper is 'static inline' because a systemLibrary target cannot hold .c
** files and a non-static body in a header gives duplicate symbols.
**
** Convention of the protected helpers: on LUA_OK they leave what they document
** on the stack; on error they leave exactly one value, the error object, in
** place of their results.  Their arguments are always consumed.
**
** Note for editors: never write the star-suffixed names of the checking
** functions of lauxlib in a comment here; a star followed by a slash closes
** the comment early.
*/
#ifndef CLUA_SHIM_H
#define CLUA_SHIM_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#pragma clang assume_nonnull begin

/*
** {==================================================================
** Re-exports of what Swift cannot see (macros and variadic functions)
** ===================================================================
*/

/* why: LUA_REGISTRYINDEX is an expression macro; Swift imports only plain
   integer literals. */
static const int CLUA_REGISTRYINDEX = LUA_REGISTRYINDEX;

/* why: lua_pop is a macro over lua_settop.  lua_settop is 'e' only because
   it may close to-be-closed slots; callers use it for their own temporaries,
   which are never to-be-closed, so it cannot raise there. */
static inline void clua_pop (lua_State *L, int n) { lua_pop(L, n); }

/* why: lua_pcall is a macro over lua_pcallk; never raises ('-'). */
static inline int clua_pcall (lua_State *L, int nargs, int nresults,
                              int msgh) {
  return lua_pcall(L, nargs, nresults, msgh);
}

/* why: lua_insert/lua_remove/lua_replace are macros over lua_rotate/
   lua_copy, which never raise. */
static inline void clua_insert (lua_State *L, int idx) { lua_insert(L, idx); }
static inline void clua_remove (lua_State *L, int idx) { lua_remove(L, idx); }
static inline void clua_replace (lua_State *L, int idx) {
  lua_replace(L, idx);
}

/*
** why: lua_tolstring is 'm' because it converts numbers in place.  This
** version only reads values that already are strings (no conversion, so it
** never raises) and returns NULL for anything else.  It is what Swift must use;
** lua_tostring itself is left to C code.
*/
static inline const char *_Nullable clua_tostring_strict (lua_State *L, int idx,
                                                          size_t *_Nullable len) {
  if (lua_type(L, idx) != LUA_TSTRING) {
    if (len) *len = 0;
    return NULL;
  }
  return lua_tolstring(L, idx, len);
}

/* why: the 'lua_tostring' macro for Swift, with the strict rule above
   (NULL unless the value is a string, so never raises). */
static inline const char *_Nullable clua_tostring (lua_State *L, int idx) {
  return clua_tostring_strict(L, idx, NULL);
}

/* why: lua_pushcfunction is a macro; with no upvalues lua_pushcclosure
   creates no closure object and cannot raise. */
static inline void clua_pushcfunction (lua_State *L, lua_CFunction f) {
  lua_pushcfunction(L, f);
}

/* why: lua_gc is variadic, which Swift cannot call.  lua_gc is '-'. */
static inline int clua_gc (lua_State *L, int what) { return lua_gc(L, what); }
static inline int clua_gc1 (lua_State *L, int what, int a) {
  return lua_gc(L, what, a);
}
static inline int clua_gc2 (lua_State *L, int what, int a, int b) {
  return lua_gc(L, what, a, b);
}

/* }================================================================== */

/*
** {==================================================================
** Swift functions as Lua functions: the trampoline
** ===================================================================
*/

/* What a Swift body asks the trampoline to do once the body has returned. */
enum {
  CLUA_RETURN = 0,   /* return the body's result count */
  CLUA_ERROR,        /* luaL_error(L, "%s", message): position + message */
  CLUA_ARGERROR,     /* luaL_argerror(L, arg, message) */
  CLUA_RETHROW       /* lua_error(L): the error object is on the top */
};

/* A piece of a text the trampoline makes after the body returned (the module's LTC_RETTEXT, LTC_ERRORTEXT):
   'len' bytes at 'p', which stay valid until then (a literal, the outcome's own message buffer, a Lua
   string on the stack, a chunk's name). */
typedef struct clua_Piece {
  const void *_Nullable p;
  size_t len;
} clua_Piece;
#define CLUA_MAXPIECES 8

typedef struct clua_Outcome {
  int kind;            /* one of the CLUA_ kinds above */
  int arg;             /* argument index for CLUA_ARGERROR */
  void *_Nullable context;  /* what the trampoline already looked up for the body (the module: its state) */
  const void *_Nullable bytes;  /* bytes the trampoline pushes as the last result (the module's LTC_RETBYTES) */
  size_t len;
  int npieces;         /* the pieces of a text (LTC_RETTEXT, LTC_ERRORTEXT) */
  int volatilepiece;   /* the one piece whose bytes a finalizer could free (a chunk's name), or -1 */
  clua_Piece pieces[CLUA_MAXPIECES];
  char message[256];   /* NUL-terminated message for CLUA_ERROR/ARGERROR; small pieces of a text */
} clua_Outcome;

/* A Swift body: may use only '-' API functions and protected helpers.  It
   returns the number of results and fills 'out' to ask for an error. */
typedef int (*clua_Body) (lua_State *L, clua_Outcome *out);

/* }================================================================== */

/*
** {==================================================================
** Protected helpers: each returns a Lua status
** ===================================================================
*/

/* (protected part of 'clua_pushlstring') */
static inline int clua_pushlstring_k (lua_State *L) {
  const char *s = (const char *)lua_touserdata(L, 1);
  size_t len = (size_t)lua_tointeger(L, 2);
  lua_pushlstring(L, s, len);
  return 1;
}

/* why: creating a string allocates ('m').  [-0, +1]: the string or the
   error object; returns the status. */
static inline int clua_pushlstring (lua_State *L, const char *s, size_t len) {
  lua_pushcfunction(L, clua_pushlstring_k);
  lua_pushlightuserdata(L, (void *)s);
  lua_pushinteger(L, (lua_Integer)len);
  return lua_pcall(L, 2, 1, 0);
}

/* (protected part of 'clua_createtable') */
static inline int clua_createtable_k (lua_State *L) {
  lua_createtable(L, (int)lua_tointeger(L, 1), (int)lua_tointeger(L, 2));
  return 1;
}

/* why: lua_createtable allocates ('m').  [-0, +1]: the new table (sized
   for 'narr' array and 'nrec' hash items) or the error object. */
static inline int clua_createtable (lua_State *L, int narr, int nrec) {
  lua_pushcfunction(L, clua_createtable_k);
  lua_pushinteger(L, narr);
  lua_pushinteger(L, nrec);
  return lua_pcall(L, 2, 1, 0);
}

/* (protected part of 'clua_setfield') */
static inline int clua_setfield_k (lua_State *L) {
  /* table, value, key (light userdata) */
  const char *k = (const char *)lua_touserdata(L, 3);
  lua_settop(L, 2);
  lua_setfield(L, 1, k);
  return 0;
}

/*
** why: lua_setfield may allocate the key and run __newindex ('e').
** Does t[k] = v where t is at 'idx' and v is on the top (popped).
** [-1, +0] on success; on error the value is replaced by the error object.
*/
static inline int clua_setfield (lua_State *L, int idx, const char *k) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, clua_setfield_k);
  lua_pushvalue(L, idx);
  lua_rotate(L, -3, -1);  /* value, k_fn, table -> k_fn, table, value */
  lua_pushlightuserdata(L, (void *)k);
  return lua_pcall(L, 3, 0, 0);
}

/* (protected part of 'clua_getfield') */
static inline int clua_getfield_k (lua_State *L) {
  lua_getfield(L, 1, (const char *)lua_touserdata(L, 2));
  return 1;
}

/* why: lua_getfield may run __index ('e').  Pushes t[k] for the table at
   'idx', or the error object; returns the status. */
static inline int clua_getfield (lua_State *L, int idx, const char *k) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, clua_getfield_k);
  lua_pushvalue(L, idx);
  lua_pushlightuserdata(L, (void *)k);
  return lua_pcall(L, 2, 1, 0);
}

/* (protected part of 'clua_setglobal') */
static inline int clua_setglobal_k (lua_State *L) {
  const char *name = (const char *)lua_touserdata(L, 2);
  lua_settop(L, 1);  /* value */
  lua_setglobal(L, name);
  return 0;
}

/* why: lua_setglobal is 'e' (the globals table may have __newindex).
   Pops the value on the top into global 'name'. */
static inline int clua_setglobal (lua_State *L, const char *name) {
  lua_pushcfunction(L, clua_setglobal_k);
  lua_insert(L, -2);
  lua_pushlightuserdata(L, (void *)name);
  return lua_pcall(L, 2, 0, 0);
}

/* (protected part of 'clua_getglobal') */
static inline int clua_getglobal_k (lua_State *L) {
  lua_getglobal(L, (const char *)lua_touserdata(L, 1));
  return 1;
}

/* why: lua_getglobal is 'e'.  Pushes global 'name' or the error object. */
static inline int clua_getglobal (lua_State *L, const char *name) {
  lua_pushcfunction(L, clua_getglobal_k);
  lua_pushlightuserdata(L, (void *)name);
  return lua_pcall(L, 1, 1, 0);
}

/* }================================================================== */

/*
** {==================================================================
** lua.c's machinery: message handler, docall, Ctrl-C
** ===================================================================
*/

/*
** why: lua.c's 'msghandler' (luaL_traceback and luaL_callmeta are 'm'/'e',
** so this is C).  Non-string error objects use __tostring when it gives a
** string (then no traceback), else "(error object is a X value)".
*/
static inline int clua_msghandler (lua_State *_Null_unspecified L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {  /* is error object not a string? */
    if (luaL_callmeta(L, 1, "__tostring") &&  /* does it have a metamethod */
        lua_type(L, -1) == LUA_TSTRING)  /* that produces a string? */
      return 1;  /* that is the message */
    else
      msg = lua_pushfstring(L, "(error object is a %s value)",
                               luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);  /* append a standard traceback */
  return 1;  /* return the traceback */
}

/* }================================================================== */

/*
** {==================================================================
** Protected pieces of lua.c's 'pmain' and REPL, for the luatalloc program
** ===================================================================
*/

#define CLUA_PROMPT   "> "    /* lua.c's LUA_PROMPT */
#define CLUA_PROMPT2  ">> "   /* lua.c's LUA_PROMPT2 */

/* }================================================================== */

#pragma clang assume_nonnull end

#endif
