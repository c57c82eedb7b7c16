/*
** luatalloc — private copies of Lua 5.4.4's string machinery, and bounded standard functions for
** the sandbox (ltc_strlib.c).
** SPDX-License-Identifier: MIT
**
** EVERY FUNCTION HERE BUT lth_openbounded RAISES Lua errors (a longjmp).  Call them only from C:
** from a C function Lua is running (a trampoline, in the module's own frame, before the Swift body
** runs or after it has returned) or from a protected helper.  Never from Swift (DESIGN.md 4).
**
** Argument errors name the real stack indices, so that inside the C function of
** talloc.asprintf(parent, fmt, ...) (the format at index 2) a bad value reads
** "bad argument #3 to 'asprintf' (number expected, got table)"; luaL_argerror itself takes one
** off for a method call (ctx:asprintf(...)).
**
** The budget: lth_Budget (ltc_shim.h), whose pointer is in lua_getextraspace(L) of every thread.
** The extra space must hold NULL or that pointer whenever a hook is set on the thread; with no
** hook at all nothing is read (luaL_newstate leaves the extra space uninitialised, and
** lth_installbudget always sets the hook).  lth_openbounded writes NULL there when it finds no
** hook; lth_clearbudget does it explicitly.
*/
#ifndef LTC_STRLIB_H
#define LTC_STRLIB_H

#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#pragma clang assume_nonnull begin

/*
** string.format, with the format string at stack index 'fmt' and the values at fmt+1 .. top.
** [-0, +1, e]: pushes the result and returns 1.  Raises as string.format does (argument errors at
** the real indices).  '%s' runs __tostring / __name as luaL_tolstring does: Lua code can run, so
** callers re-resolve what they hold (pointers into strings, bodies of contexts) afterwards.
** (ltc_shim.h has a protected helper called ltc_format, which calls the global string.format: this
** is its replacement, under another name until the old helper goes.)
*/
int ltc_strformat (lua_State *L, int fmt);

/*
** string.pack, with the format at 'fmt' and the values at fmt+1 .. top.
** [-0, +1, e]: pushes the packed string and returns 1.  Format errors name 'fmt'; value errors
** their own indices.
*/
int ltc_strpack (lua_State *L, int fmt);

/* The same into 'b' (initialised here), without making a Lua string: the caller reads luaL_buffaddr(b)
   and luaL_bufflen(b) and leaves the stack above the values as it is until it has copied them. */
void ltc_strpackbuffer (lua_State *L, int fmt, luaL_Buffer *b);

/*
** string.unpack(fmt, data, pos), with the format at 'fmt', the data string at 'data' and the
** 1-based position 'pos' (negative: from the end, as string.unpack).
** [-0, +(n+1), e]: pushes the n values and the next 1-based position; returns n + 1.
** Format errors name 'fmt'; "data string too short" and "unfinished string for format 'z'" name
** 'data'; "initial position out of string" names data + 1 (where string.unpack has the position).
*/
int ltc_strunpack (lua_State *L, int fmt, int data, lua_Integer pos);

/*
** The same on 'ld' bytes at 'data' that are not a Lua string ('data' only names them in errors).  Only for
** formats without the string options c, s and z: numbers are pushed without allocating, so no collection
** (no finalizer) runs while the bytes are read, and no 'z' reads past bytes without a terminating NUL.
*/
int ltc_strunpackbytes (lua_State *L, int fmt, const char *data, size_t ld, int dataarg, lua_Integer pos);

/* A lua_CFunction equal to string.format (ltc_strformat(L, 1)), for tests and hosts. */
int ltc_format_function (lua_State *_Null_unspecified L);

/*
** lua_CFunctions with the format at index 2, after one other argument, as the C function of
** talloc.asprintf(parent, fmt, ...) has it (for tests of the argument numbers):
**   ltc_format_at2(x, fmt, ...)        = ltc_strformat(L, 2)
**   ltc_pack_at2(x, fmt, ...)          = ltc_strpack(L, 2)
**   ltc_unpack_at2(x, fmt, data [, pos]) = ltc_strunpack(L, 2, 3, pos or 1)
*/
int ltc_format_at2 (lua_State *_Null_unspecified L);
int ltc_pack_at2 (lua_State *_Null_unspecified L);
int ltc_unpack_at2 (lua_State *_Null_unspecified L);

/*
** Charges 'n' VM instructions' worth of work to the running entry's budget, exactly as the budget
** hook charges the instructions it counts: when the instructions run out, or the deadline has
** passed, it sets 'exhausted' (1 or 2), makes the hook fire at every instruction and raises
** "instruction budget exhausted" / "time budget exhausted".  Does nothing when no budget is armed.
** [-0, +0, v].  For C loops whose work is not bounded by memory.
*/
void lth_charge (lua_State *L, long long n);

/*
** The same where no error may be raised (a Swift frame, a finalizer): the work is owed,
** and charged by the next lth_charge (a module call charges after its body), or by the hook at its next
** count.  Does nothing when no budget is armed.  [-0, +0, -]
*/
void lth_owe (lua_State *L, long long n);

/* Whether a budget is armed on L's thread (our hook is installed and an entry from Swift runs).  [-0, +0, -] */
int lth_budgeted (lua_State *L);

/*
** The units of work of 'cycles' full collections of L's heap as it is now, as collectgarbage charges one
** (a collection traverses the heap).  0 inside a finalizer (no collection can run there).  [-0, +0, -]
*/
long long lth_gcunits (lua_State *L, int cycles);

/*
** The units of one step of a walk over chunks (TallocCore's work meter, Talloc.takeWork, and the module's
** own walks up a chain): a step reads a chunk's 64-byte header, as SCAN counts 64 bytes of a string.
*/
#define LTH_WALKUNITS 8

/*
** Protected helper (the style of ltc_shim.h: it pushes a C function and lua_pcalls it, returns the
** status, the error object on the top on failure, nothing on success).  Replaces, in the state's
** library tables (package.loaded.string / .table / ._G, and the global 'string', 'table' and the
** strings' __index when they are other tables), the standard functions whose work in one call is
** not bounded by the memory of their inputs and results, by copies of Lua 5.4.4's code that charge
** the budget for that work:
**   string.rep (the empty result is O(1)), string.find, string.match, string.gmatch, string.gsub,
**   table.concat, table.insert, table.remove, table.move, table.sort, collectgarbage.
** Without an armed budget they behave and cost as the originals (same results, same errors).
** Functions that are absent (or not functions) are left alone; calling it twice is harmless.
*/
int lth_openbounded (lua_State *L);

/* Writes NULL into the extra space of 'L' (no budget): for a state on which lth_installbudget never
   ran, before any thread is created.  [-0, +0, -] */
static inline void lth_clearbudget (lua_State *L) {
  void *none = NULL;
  memcpy(lua_getextraspace(L), &none, sizeof(none));
}

#pragma clang assume_nonnull end

#endif
