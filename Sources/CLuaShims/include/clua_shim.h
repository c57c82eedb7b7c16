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


/*
** {==================================================================
** Re-exports of what Swift cannot see (macros and variadic functions)
** ===================================================================
*/

/* why: LUA_REGISTRYINDEX is an expression macro; Swift imports only plain
   integer literals. */
static const int CLUA_REGISTRYINDEX = LUA_REGISTRYINDEX;

/* why: string-concatenation macros are invisible to Swift; the CLI prints
   them ('-v') exactly as lua.c does. */
static inline const char *clua_copyright (void) { return LUA_COPYRIGHT; }
static inline const char *clua_release (void) { return LUA_RELEASE; }
static inline const char *clua_version (void) { return LUA_VERSION; }

/* why: lua_upvalueindex is a function-like macro. */
static inline int clua_upvalueindex (int i) { return lua_upvalueindex(i); }

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

/* why: the 'lua_is...' type tests are macros; they only read a tag. */
static inline int clua_isnil (lua_State *L, int idx) { return lua_isnil(L, idx); }
static inline int clua_isnoneornil (lua_State *L, int idx) {
  return lua_isnoneornil(L, idx);
}
static inline int clua_istable (lua_State *L, int idx) {
  return lua_istable(L, idx);
}
static inline int clua_isfunction (lua_State *L, int idx) {
  return lua_isfunction(L, idx);
}

/* why: lua_tointeger/lua_tonumber are macros over the 'x' variants ('-'). */
static inline lua_Integer clua_tointeger (lua_State *L, int idx) {
  return lua_tointeger(L, idx);
}
static inline lua_Number clua_tonumber (lua_State *L, int idx) {
  return lua_tonumber(L, idx);
}

/*
** why: lua_tolstring is 'm' because it converts numbers in place.  This
** version only reads values that already are strings (no conversion, so it
** never raises) and returns NULL for anything else.  It is what Swift must use;
** lua_tostring itself is left to C code.
*/
static inline const char *clua_tostring_strict (lua_State *L, int idx,
                                                size_t *len) {
  if (lua_type(L, idx) != LUA_TSTRING) {
    if (len) *len = 0;
    return NULL;
  }
  return lua_tolstring(L, idx, len);
}

/* why: the 'lua_tostring' macro for Swift, with the strict rule above
   (NULL unless the value is a string, so never raises). */
static inline const char *clua_tostring (lua_State *L, int idx) {
  return clua_tostring_strict(L, idx, NULL);
}

/* why: lua_getextraspace is pointer arithmetic in a macro. */
static inline void *clua_getextraspace (lua_State *L) {
  return lua_getextraspace(L);
}

/* why: lua_pushcfunction is a macro; with no upvalues lua_pushcclosure
   creates no closure object and cannot raise. */
static inline void clua_pushcfunction (lua_State *L, lua_CFunction f) {
  lua_pushcfunction(L, f);
}

/* why: lua_pushglobaltable is a macro; lua_rawgeti on the registry is '-'
   in practice (integer key, no metamethods on the registry). */
static inline void clua_pushglobaltable (lua_State *L) {
  lua_pushglobaltable(L);
}

/* why: lua_gc is variadic, which Swift cannot call.  lua_gc is '-'. */
static inline int clua_gc (lua_State *L, int what) { return lua_gc(L, what); }
static inline int clua_gc1 (lua_State *L, int what, int a) {
  return lua_gc(L, what, a);
}
static inline int clua_gc2 (lua_State *L, int what, int a, int b) {
  return lua_gc(L, what, a, b);
}

/* why: luaL_loadbuffer is a macro over luaL_loadbufferx ('-': the parser
   runs protected and reports errors as a status). */
static inline int clua_loadbuffer (lua_State *L, const char *s, size_t sz,
                                   const char *name) {
  return luaL_loadbuffer(L, s, sz, name);
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

typedef struct clua_Outcome {
  int kind;            /* one of the CLUA_ kinds above */
  int arg;             /* argument index for CLUA_ARGERROR */
  void *context;       /* what the trampoline already looked up for the body (NULL in clua_trampoline) */
  char message[256];   /* NUL-terminated message for CLUA_ERROR/ARGERROR */
} clua_Outcome;

/* A Swift body: may use only '-' API functions and protected helpers.  It
   returns the number of results and fills 'out' to ask for an error. */
typedef int (*clua_Body) (lua_State *_Nonnull L, clua_Outcome *_Nonnull out);

/*
** why: the only place that raises on behalf of Swift.  The Swift body
** (light userdata in upvalue 1) has returned before any raise, so the
** longjmp crosses only C frames.
*/
static inline int clua_trampoline (lua_State *L) {
  clua_Outcome out;
  clua_Body body = (clua_Body)lua_touserdata(L, lua_upvalueindex(1));
  int n;
  out.kind = CLUA_RETURN;
  out.arg = 0;
  out.context = NULL;
  out.message[0] = '\0';
  n = body(L, &out);  /* Swift returns here: only C frames below */
  out.message[sizeof(out.message) - 1] = '\0';  /* be safe */
  switch (out.kind) {
    case CLUA_ERROR: return luaL_error(L, "%s", out.message);
    case CLUA_ARGERROR: return luaL_argerror(L, out.arg, out.message);
    case CLUA_RETHROW: return lua_error(L);
    default: return n;
  }
}

/* (protected part of 'clua_pushswiftfunction') */
static inline int clua_pushswiftfunction_k (lua_State *L) {
  int n = lua_gettop(L);  /* upvalues..., body */
  lua_insert(L, 1);  /* body becomes upvalue 1 */
  lua_pushcclosure(L, clua_trampoline, n);
  return 1;
}

/*
** why: a closure with upvalues allocates ('m').  Pushes 'body' as a Lua
** function whose upvalue 1 is the body and upvalues 2..nup+1 are the
** 'nupvalues' values on the top of the stack (popped).  Returns a status.
*/
static inline int clua_pushswiftfunction (lua_State *L, clua_Body body,
                                          int nupvalues) {
  lua_pushcfunction(L, clua_pushswiftfunction_k);
  lua_insert(L, -(nupvalues + 1));  /* under the upvalues */
  lua_pushlightuserdata(L, (void *)body);
  return lua_pcall(L, nupvalues + 1, 1, 0);
}

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

/* why: as 'clua_pushlstring', for a NUL-terminated string. */
static inline int clua_pushstring (lua_State *L, const char *s) {
  return clua_pushlstring(L, s, strlen(s));
}

/* (protected part of 'clua_newtable') */
static inline int clua_newtable_k (lua_State *L) {
  lua_createtable(L, (int)lua_tointeger(L, 1), (int)lua_tointeger(L, 2));
  return 1;
}

/* why: lua_createtable allocates ('m').  [-0, +1]: the new table (sized
   for 'narr' array and 'nrec' hash items) or the error object. */
static inline int clua_createtable (lua_State *L, int narr, int nrec) {
  lua_pushcfunction(L, clua_newtable_k);
  lua_pushinteger(L, narr);
  lua_pushinteger(L, nrec);
  return lua_pcall(L, 2, 1, 0);
}

/* why: the lua_newtable macro, protected (see 'clua_createtable'). */
static inline int clua_newtable (lua_State *L) {
  return clua_createtable(L, 0, 0);
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

/* (protected part of 'clua_openlibs') */
static inline int clua_openlibs_k (lua_State *L) {
  luaL_openlibs(L);
  return 0;
}

/* why: luaL_openlibs allocates and runs the library openers ('e'). */
static inline int clua_openlibs (lua_State *L) {
  lua_pushcfunction(L, clua_openlibs_k);
  return lua_pcall(L, 0, 0, 0);
}

/* (protected part of 'clua_tolstring_meta') */
static inline int clua_tolstring_meta_k (lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* why: luaL_tolstring runs __tostring/__name ('e').  Pushes the string
   form of the value at 'idx' (as 'tostring' does), or the error object. */
static inline int clua_tolstring_meta (lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, clua_tolstring_meta_k);
  lua_pushvalue(L, idx);
  return lua_pcall(L, 1, 1, 0);
}

/* (protected part of 'clua_loadfile') */
static inline int clua_loadfile_k (lua_State *L) {
  const char *fname = (const char *)lua_touserdata(L, 1);
  int status = luaL_loadfilex(L, fname, NULL);
  lua_pushinteger(L, status);
  return 2;  /* chunk or message, status */
}

/*
** why: luaL_loadfilex is 'm' (it pushes the file name and messages).
** Pushes the compiled chunk or the error message and returns the load
** status (LUA_ERRFILE, LUA_ERRSYNTAX, LUA_ERRMEM), as luaL_loadfile would.
** 'fname' NULL reads the standard input (chunk name "=stdin").
*/
static inline int clua_loadfile (lua_State *L, const char *fname) {
  int status;
  lua_pushcfunction(L, clua_loadfile_k);
  lua_pushlightuserdata(L, (void *)fname);
  status = lua_pcall(L, 1, 2, 0);
  if (status != LUA_OK)
    return status;  /* error object on the top */
  status = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return status;
}

/* }================================================================== */


/*
** {==================================================================
** lua.c's machinery: message handler, docall, Ctrl-C
** ===================================================================
*/

/*
** why: the state a SIGINT must stop.  A signal handler takes no user data,
** so it has to be a global, as in lua.c.  'static' in a header means one
** copy per importing module: only the program's module uses it.
*/
static lua_State *clua_globalL = NULL;

/*
** why: 'sigaction' as lua.c's 'setsignal' (no SA_RESTART, empty mask), so
** behaviour does not depend on 'signal' semantics.
*/
static inline void clua_setsignal (int sig, void (*handler) (int)) {
  struct sigaction sa;
  sa.sa_handler = handler;
  sa.sa_flags = 0;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

/*
** why: the hook raises "interrupted!" ('v'), so it must be C (lua.c's
** 'lstop').  It runs inside the Lua code that was interrupted.
*/
static inline void clua_lstop (lua_State *L, lua_Debug *ar) {
  (void)ar;  /* unused arg. */
  lua_sethook(L, NULL, 0, 0);  /* reset hook */
  luaL_error(L, "interrupted!");
}

/*
** why: lua.c's 'laction'.  A C signal cannot just change a Lua state (no
** proper synchronization), so it only sets a hook that will stop the
** interpreter; a second SIGINT kills the process (SIG_DFL).
*/
static inline void clua_laction (int i) {
  int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  clua_setsignal(i, SIG_DFL);  /* if another SIGINT happens, terminate */
  lua_sethook(clua_globalL, clua_lstop, flag, 1);
}

/*
** why: lua.c's 'msghandler' (luaL_traceback and luaL_callmeta are 'm'/'e',
** so this is C).  Non-string error objects use __tostring when it gives a
** string (then no traceback), else "(error object is a X value)".
*/
static inline int clua_msghandler (lua_State *L) {
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

/*
** (the C frame under every chunk, as 'pmain' is in lua.c) Arguments are
** the function, its arguments and the number of results wanted.  Running
** chunks from a C function keeps tracebacks identical to lua.c's, which
** end in "[C]: in ?" (pmain); it also makes 'error(msg, 2)' in a main
** chunk add no position, as in lua.c.
*/
static inline int clua_docall_k (lua_State *L) {
  int nres = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_call(L, lua_gettop(L) - 1, nres);
  return lua_gettop(L);
}

/*
** why: lua.c's 'docall': runs the function below 'narg' arguments with
** 'clua_msghandler' and with SIGINT turned into "interrupted!" while it
** runs.  Never raises; returns the status (error message on the top,
** else 'nres' results, all of them for LUA_MULTRET).
*/
static inline int clua_docall (lua_State *L, int narg, int nres) {
  int status;
  int base = lua_gettop(L) - narg;  /* function index */
  if (!lua_checkstack(L, 3)) {  /* room for handler, frame and 'nres' */
    lua_settop(L, base - 1);  /* drop function and arguments */
    lua_pushliteral(L, "not enough memory");  /* fixed string, preallocated */
    return LUA_ERRMEM;
  }
  lua_pushinteger(L, nres);
  lua_pushcfunction(L, clua_docall_k);  /* the C frame under the chunk */
  lua_insert(L, base);
  lua_pushcfunction(L, clua_msghandler);  /* push message handler */
  lua_insert(L, base);  /* put it under function and args */
  clua_globalL = L;  /* to be available to 'clua_laction' */
  clua_setsignal(SIGINT, clua_laction);  /* set C-signal handler */
  status = lua_pcall(L, narg + 2, nres, base);
  clua_setsignal(SIGINT, SIG_DFL);  /* reset C-signal handler */
  lua_remove(L, base);  /* remove message handler from the stack */
  return status;
}

/* why: lua.c's 'l_message': "progname: msg" on stderr, flushed
   (lua_writestringerror). 'pname' NULL omits the prefix (REPL). */
static inline void clua_message (const char *pname, const char *msg) {
  if (pname) fprintf(stderr, "%s: ", pname);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}

/*
** why: lua.c's 'report': prints the error message on the top (if
** 'status' is an error) and pops it.  Like 5.4.4, a non-string error
** object prints as "(error object is a X value)" rather than "(null)".
*/
static inline int clua_report (lua_State *L, const char *pname, int status) {
  if (status != LUA_OK) {
    const char *msg = clua_tostring(L, -1);
    if (msg != NULL)
      clua_message(pname, msg);
    else {
      char buff[64];
      snprintf(buff, sizeof(buff), "(error object is a %s value)",
               luaL_typename(L, -1));
      clua_message(pname, buff);
    }
    lua_pop(L, 1);  /* remove message */
  }
  return status;
}

/* why: stdout writes through the same FILE as Lua's 'print'
   (lua_writestring), so output stays in order. */
static inline void clua_writestring (const char *s, size_t len) {
  fwrite(s, sizeof(char), len, stdout);
}

/* why: lua_writeline: newline + flush, as lua.c after the version and at
   the end of the REPL. */
static inline void clua_writeline (void) {
  fwrite("\n", sizeof(char), 1, stdout);
  fflush(stdout);
}

/* }================================================================== */

/*
** {==================================================================
** Protected pieces of lua.c's 'pmain' and REPL, for the luatalloc program
** ===================================================================
*/

#define CLUA_PROMPT   "> "    /* lua.c's LUA_PROMPT */
#define CLUA_PROMPT2  ">> "   /* lua.c's LUA_PROMPT2 */

/* (protected part of 'clua_createargtable'; lua.c's 'createargtable') */
static inline int clua_createargtable_k (lua_State *L) {
  char **argv = (char **)lua_touserdata(L, 1);
  int argc = (int)lua_tointeger(L, 2);
  int script = (int)lua_tointeger(L, 3);
  int i, narg;
  if (script == argc) script = 0;  /* no script name? */
  narg = argc - (script + 1);  /* number of positive indices */
  lua_createtable(L, narg, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
  return 0;
}

/*
** why: builds global 'arg' (allocates, sets a global: 'e').  argv[script]
** goes to index 0, what follows to 1.., what precedes to negative indices;
** with no script (script == argc) the base is the interpreter's name.
*/
static inline int clua_createargtable (lua_State *L, char **argv, int argc,
                                       int script) {
  lua_pushcfunction(L, clua_createargtable_k);
  lua_pushlightuserdata(L, (void *)argv);
  lua_pushinteger(L, argc);
  lua_pushinteger(L, script);
  return lua_pcall(L, 3, 0, 0);
}

/* (protected part of 'clua_pushargs'; lua.c's 'pushargs') */
static inline int clua_pushargs_k (lua_State *L) {
  int i, n;
  if (lua_getglobal(L, "arg") != LUA_TTABLE)
    luaL_error(L, "'arg' is not a table");
  n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (i = 1; i <= n; i++)
    lua_rawgeti(L, -i, i);
  lua_remove(L, -i);  /* remove table from the stack */
  return n;
}

/*
** why: pushes arg[1..#arg] (the *current* global 'arg', after LUA_INIT
** and -e ran) as the script's varargs; raises "'arg' is not a table".
** On LUA_OK '*n' is the number of values pushed.
*/
static inline int clua_pushargs (lua_State *L, int *n) {
  int top = lua_gettop(L);
  int status;
  lua_pushcfunction(L, clua_pushargs_k);
  status = lua_pcall(L, 0, LUA_MULTRET, 0);
  *n = (status == LUA_OK) ? lua_gettop(L) - top : 0;
  return status;
}

/*
** why: lua.c's 'dolibrary' for '-l mod' and '-l g=mod': global 'globname'
** = require(modname).  The call goes through 'clua_docall' (traceback,
** Ctrl-C) from the top level, not from inside another protected call, so
** that the traceback has the same frames as lua.c's.
*/
static inline int clua_dolibrary (lua_State *L, const char *globname,
                                  const char *modname) {
  int status = clua_getglobal(L, "require");
  if (status != LUA_OK) return status;
  status = clua_pushstring(L, modname);
  if (status != LUA_OK) {
    lua_remove(L, -2);  /* 'require' */
    return status;
  }
  status = clua_docall(L, 1, 1);  /* call 'require(modname)' */
  if (status != LUA_OK) return status;
  return clua_setglobal(L, globname);  /* globname = require return */
}

/* (protected part of 'clua_getprompt'; lua.c's 'get_prompt') */
static inline int clua_getprompt_k (lua_State *L) {
  int firstline = lua_toboolean(L, 1);
  if (lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2") == LUA_TNIL)
    lua_pushstring(L, firstline ? CLUA_PROMPT : CLUA_PROMPT2);
  else  /* apply 'tostring' over the value */
    luaL_tolstring(L, -1, NULL);
  return 1;
}

/*
** why: reading _PROMPT/_PROMPT2 may run metamethods ('e').  Pushes the
** prompt string (default "> " / ">> ") or the error object.
*/
static inline int clua_getprompt (lua_State *L, int firstline) {
  lua_pushcfunction(L, clua_getprompt_k);
  lua_pushboolean(L, firstline);
  return lua_pcall(L, 1, 1, 0);
}

/* (protected part of 'clua_print'; lua.c's 'l_print') */
static inline int clua_print_k (lua_State *L) {
  int n = lua_gettop(L);
  luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
  lua_getglobal(L, "print");
  lua_insert(L, 1);
  if (lua_pcall(L, n, 0, 0) != LUA_OK)
    lua_pushfstring(L, "error calling 'print' (%s)", lua_tostring(L, -1));
  else
    lua_pushnil(L);
  return 1;
}

/*
** why: the REPL prints results by calling the *global* 'print' (users
** override it); getting it and calling it may raise.  Consumes the 'n'
** values on the top; a failure is reported as lua.c does, with 'pname'.
*/
static inline void clua_print (lua_State *L, int n, const char *pname) {
  int status;
  if (n <= 0) return;
  lua_pushcfunction(L, clua_print_k);
  lua_insert(L, -(n + 1));
  status = lua_pcall(L, n, 1, 0);
  if (status != LUA_OK)
    clua_report(L, pname, status);
  else {
    const char *msg = clua_tostring(L, -1);
    if (msg != NULL) clua_message(pname, msg);
    lua_pop(L, 1);
  }
}

/* }================================================================== */

#endif
