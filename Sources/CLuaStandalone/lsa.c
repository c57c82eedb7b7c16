/*
** luatalloc — lua.c's machinery for the command-line program only (prefix lsa_): the SIGINT hook,
** docall, the messages, the arg table, -l, the REPL's prompt and print, loading a file or stdin.
** SPDX-License-Identifier: MIT
**
** Adapted from Lua 5.4.4's lua.c (Copyright (C) 1994-2022 Lua.org, PUC-Rio; MIT licence).  Same rules as
** CLuaShims: whatever may raise runs in a protected helper whose status the (Swift) caller reads.
*/
#include "CLuaStandalone.h"

/*
** why: the state a SIGINT must stop.  A signal handler takes no user data,
** so it has to be a global, as in lua.c.  it lives here, in the
** command line's own target.
*/
static lua_State *lsa_globalL = NULL;

/*
** why: 'sigaction' as lua.c's 'setsignal' (no SA_RESTART, empty mask), so
** behaviour does not depend on 'signal' semantics.
*/
static void lsa_setsignal (int sig, void (*handler) (int)) {
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
static void lsa_lstop (lua_State *L, lua_Debug *ar) {
  (void)ar;  /* unused arg. */
  lua_sethook(L, NULL, 0, 0);  /* reset hook */
  luaL_error(L, "interrupted!");
}

/*
** why: lua.c's 'laction'.  A C signal cannot just change a Lua state (no
** proper synchronization), so it only sets a hook that will stop the
** interpreter; a second SIGINT kills the process (SIG_DFL).
*/
static void lsa_laction (int i) {
  int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  lsa_setsignal(i, SIG_DFL);  /* if another SIGINT happens, terminate */
  lua_sethook(lsa_globalL, lsa_lstop, flag, 1);
}

/*
** (the C frame under every chunk, as 'pmain' is in lua.c) Arguments are
** the function, its arguments and the number of results wanted.  Running
** chunks from a C function keeps tracebacks identical to lua.c's, which
** end in "[C]: in ?" (pmain); it also makes 'error(msg, 2)' in a main
** chunk add no position, as in lua.c.
*/
static int lsa_docall_k (lua_State *L) {
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
int lsa_docall (lua_State *L, int narg, int nres) {
  int status;
  int base = lua_gettop(L) - narg;  /* function index */
  if (!lua_checkstack(L, 3)) {  /* room for handler, frame and 'nres' */
    lua_settop(L, base - 1);  /* drop function and arguments */
    lua_pushliteral(L, "not enough memory");  /* fixed string, preallocated */
    return LUA_ERRMEM;
  }
  lua_pushinteger(L, nres);
  lua_pushcfunction(L, lsa_docall_k);  /* the C frame under the chunk */
  lua_insert(L, base);
  lua_pushcfunction(L, clua_msghandler);  /* push message handler */
  lua_insert(L, base);  /* put it under function and args */
  lsa_globalL = L;  /* to be available to 'lsa_laction' */
  lsa_setsignal(SIGINT, lsa_laction);  /* set C-signal handler */
  status = lua_pcall(L, narg + 2, nres, base);
  lsa_setsignal(SIGINT, SIG_DFL);  /* reset C-signal handler */
  lua_remove(L, base);  /* remove message handler from the stack */
  return status;
}

/* why: lua.c's 'l_message': "progname: msg" on stderr, flushed
   (lua_writestringerror). 'pname' NULL omits the prefix (REPL). */
static void lsa_message (const char *_Nullable pname, const char *msg) {
  if (pname) fprintf(stderr, "%s: ", pname);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}

/*
** why: lua.c's 'report': prints the error message on the top (if
** 'status' is an error) and pops it.  Like 5.4.4, a non-string error
** object prints as "(error object is a X value)" rather than "(null)".
*/
int lsa_report (lua_State *L, const char *_Nullable pname, int status) {
  if (status != LUA_OK) {
    const char *msg = clua_tostring(L, -1);
    if (msg != NULL)
      lsa_message(pname, msg);
    else {
      char buff[64];
      snprintf(buff, sizeof(buff), "(error object is a %s value)",
               luaL_typename(L, -1));
      lsa_message(pname, buff);
    }
    lua_pop(L, 1);  /* remove message */
  }
  return status;
}

/* why: stdout writes through the same FILE as Lua's 'print'
   (lua_writestring), so output stays in order. */
void lsa_writestring (const char *s, size_t len) {
  fwrite(s, sizeof(char), len, stdout);
}

/* why: lua_writeline: newline + flush, as lua.c after the version and at
   the end of the REPL. */
void lsa_writeline (void) {
  fwrite("\n", sizeof(char), 1, stdout);
  fflush(stdout);
}

/* (protected part of 'lsa_createargtable'; lua.c's 'createargtable') */
static int lsa_createargtable_k (lua_State *L) {
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
int lsa_createargtable (lua_State *L, char *_Nullable *_Nonnull argv, int argc,
                                       int script) {
  lua_pushcfunction(L, lsa_createargtable_k);
  lua_pushlightuserdata(L, (void *)argv);
  lua_pushinteger(L, argc);
  lua_pushinteger(L, script);
  return lua_pcall(L, 3, 0, 0);
}

/* (protected part of 'lsa_pushargs'; lua.c's 'pushargs') */
static int lsa_pushargs_k (lua_State *L) {
  int i, n;
  if (lua_getglobal(L, "arg") != LUA_TTABLE)  // at open: lua.c reads the script's current 'arg' here, before the script runs (not a module call)
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
int lsa_pushargs (lua_State *L, int *n) {
  int top = lua_gettop(L);
  int status;
  lua_pushcfunction(L, lsa_pushargs_k);
  status = lua_pcall(L, 0, LUA_MULTRET, 0);
  *n = (status == LUA_OK) ? lua_gettop(L) - top : 0;
  return status;
}

/*
** why: lua.c's 'dolibrary' for '-l mod' and '-l g=mod': global 'globname'
** = require(modname).  The call goes through 'lsa_docall' (traceback,
** Ctrl-C) from the top level, not from inside another protected call, so
** that the traceback has the same frames as lua.c's.
*/
int lsa_dolibrary (lua_State *L, const char *globname,
                                  const char *modname) {
  int status = clua_getglobal(L, "require");  // at open: lua.c's -l, before any script (not a module call)
  if (status != LUA_OK) return status;
  status = clua_pushlstring(L, modname, strlen(modname));
  if (status != LUA_OK) {
    lua_remove(L, -2);  /* 'require' */
    return status;
  }
  status = lsa_docall(L, 1, 1);  /* call 'require(modname)' */
  if (status != LUA_OK) return status;
  return clua_setglobal(L, globname);  /* globname = require return */
}

/* (protected part of 'lsa_getprompt'; lua.c's 'get_prompt') */
static int lsa_getprompt_k (lua_State *L) {
  int firstline = lua_toboolean(L, 1);
  if (lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2") == LUA_TNIL)  // at open: lua.c reads the prompt a script may set, between lines (not a module call)
    lua_pushstring(L, firstline ? CLUA_PROMPT : CLUA_PROMPT2);
  else  /* apply 'tostring' over the value */
    luaL_tolstring(L, -1, NULL);
  return 1;
}

/*
** why: reading _PROMPT/_PROMPT2 may run metamethods ('e').  Pushes the
** prompt string (default "> " / ">> ") or the error object.
*/
int lsa_getprompt (lua_State *L, int firstline) {
  lua_pushcfunction(L, lsa_getprompt_k);
  lua_pushboolean(L, firstline);
  return lua_pcall(L, 1, 1, 0);
}

/* (protected part of 'lsa_print'; lua.c's 'l_print') */
static int lsa_print_k (lua_State *L) {
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
void lsa_print (lua_State *L, int n, const char *_Nullable pname) {
  int status;
  if (n <= 0) return;
  lua_pushcfunction(L, lsa_print_k);
  lua_insert(L, -(n + 1));
  status = lua_pcall(L, n, 1, 0);
  if (status != LUA_OK)
    lsa_report(L, pname, status);
  else {
    const char *msg = clua_tostring(L, -1);
    if (msg != NULL) lsa_message(pname, msg);
    lua_pop(L, 1);
  }
}

/* (protected part of 'lsa_loadfile') */
static int lsa_loadfile_k (lua_State *L) {
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
int lsa_loadfile (lua_State *L, const char *_Nullable fname) {
  int status;
  lua_pushcfunction(L, lsa_loadfile_k);
  lua_pushlightuserdata(L, (void *)fname);
  status = lua_pcall(L, 1, 2, 0);
  if (status != LUA_OK)
    return status;  /* error object on the top */
  status = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return status;
}

/* (protected part of 'lsa_openlibs') */
static int lsa_openlibs_k (lua_State *L) {
  luaL_openlibs(L);
  return 0;
}

/* why: luaL_openlibs allocates and runs the library openers ('e'). */
int lsa_openlibs (lua_State *L) {
  lua_pushcfunction(L, lsa_openlibs_k);
  return lua_pcall(L, 0, 0, 0);
}

/* why: string-concatenation macros are invisible to Swift; the CLI prints
   them ('-v') exactly as lua.c does. */
const char *lsa_copyright (void) { return LUA_COPYRIGHT; }

