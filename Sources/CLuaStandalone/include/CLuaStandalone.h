/*
** luatalloc — lua.c's machinery for the command-line program only (prefix lsa_); see lsa.c.
** SPDX-License-Identifier: MIT
*/
#ifndef CLUASTANDALONE_H
#define CLUASTANDALONE_H
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "CLuaShims.h"

#pragma clang assume_nonnull begin

/*
** why: lua.c's 'docall': runs the function below 'narg' arguments with
** 'clua_msghandler' and with SIGINT turned into "interrupted!" while it
** runs.  Never raises; returns the status (error message on the top,
** else 'nres' results, all of them for LUA_MULTRET).
*/
int lsa_docall (lua_State *L, int narg, int nres);

/*
** why: lua.c's 'report': prints the error message on the top (if
** 'status' is an error) and pops it.  Like 5.4.4, a non-string error
** object prints as "(error object is a X value)" rather than "(null)".
*/
int lsa_report (lua_State *L, const char *_Nullable pname, int status);

/* why: stdout writes through the same FILE as Lua's 'print'
   (lua_writestring), so output stays in order. */
void lsa_writestring (const char *s, size_t len);

/* why: lua_writeline: newline + flush, as lua.c after the version and at
   the end of the REPL. */
void lsa_writeline (void);

/*
** why: builds global 'arg' (allocates, sets a global: 'e').  argv[script]
** goes to index 0, what follows to 1.., what precedes to negative indices;
** with no script (script == argc) the base is the interpreter's name.
*/
int lsa_createargtable (lua_State *L, char *_Nullable *_Nonnull argv, int argc,
                                       int script);

/*
** why: pushes arg[1..#arg] (the *current* global 'arg', after LUA_INIT
** and -e ran) as the script's varargs; raises "'arg' is not a table".
** On LUA_OK '*n' is the number of values pushed.
*/
int lsa_pushargs (lua_State *L, int *n);

/*
** why: lua.c's 'dolibrary' for '-l mod' and '-l g=mod': global 'globname'
** = require(modname).  The call goes through 'clua_docall' (traceback,
** Ctrl-C) from the top level, not from inside another protected call, so
** that the traceback has the same frames as lua.c's.
*/
int lsa_dolibrary (lua_State *L, const char *globname,
                                  const char *modname);

/*
** why: reading _PROMPT/_PROMPT2 may run metamethods ('e').  Pushes the
** prompt string (default "> " / ">> ") or the error object.
*/
int lsa_getprompt (lua_State *L, int firstline);

/*
** why: the REPL prints results by calling the *global* 'print' (users
** override it); getting it and calling it may raise.  Consumes the 'n'
** values on the top; a failure is reported as lua.c does, with 'pname'.
*/
void lsa_print (lua_State *L, int n, const char *_Nullable pname);

/*
** why: luaL_loadfilex is 'm' (it pushes the file name and messages).
** Pushes the compiled chunk or the error message and returns the load
** status (LUA_ERRFILE, LUA_ERRSYNTAX, LUA_ERRMEM), as luaL_loadfile would.
** 'fname' NULL reads the standard input (chunk name "=stdin").
*/
int lsa_loadfile (lua_State *L, const char *_Nullable fname);

/* why: luaL_openlibs allocates and runs the library openers ('e'). */
int lsa_openlibs (lua_State *L);

/* why: string-concatenation macros are invisible to Swift; the CLI prints
   them ('-v') exactly as lua.c does. */
const char *lsa_copyright (void);

#pragma clang assume_nonnull end

#endif
