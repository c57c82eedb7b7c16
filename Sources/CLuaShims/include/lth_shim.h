/*
** luatalloc — host helpers: what LuaRuntime (Swift hosts) needs beyond the module (prefix lth_).
** SPDX-License-Identifier: MIT
**
** Same rules as ltc_shim.h: a helper that may raise runs under lua_pcall and returns the status; the budget
** hook is C because it raises ("instruction budget exhausted") from inside the running Lua code, where no
** Swift frame can be.
*/
#ifndef LTH_SHIM_H
#define LTH_SHIM_H
#include <time.h>
#include "ltc_shim.h"

#pragma clang assume_nonnull begin

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

/* why: luaL_requiref allocates and runs the openers ('e').  Opens the libraries in 'mask'. */
int lth_openlibs (lua_State *L, int mask);

/*
** why: changing globals allocates ('m').  Makes the state a sandbox: no dofile/loadfile, text-only load,
** no Lua finalizers (setmetatable refuses __gc, no talloc destructors, the contexts' metatable locked),
** and the standard functions whose single calls could outrun the budget replaced by bounded ones.  The
** module table (or nil) is on the top; it is popped.
*/
int lth_sandbox (lua_State *L);

/*
** The instruction and time budget of one entry from Swift into Lua.  A pointer to it lives in the main
** thread's extra space, which every coroutine copies when it is created, so the count hook finds it in
** any thread.
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

/* why: the hook is a C function Swift must not write.  Installs it on 'L' (every 'step' instructions)
   with its budget; threads created afterwards inherit both. */
void lth_installbudget (lua_State *L, lth_Budget *b);

/* The count hook itself (exported for code that charges work to the budget). */
void lth_budgethook (lua_State *L, lua_Debug *ar);

/*
** why: lua_next raises on a key that is not in the table ('v').  Pops the key on the top and pushes the
** next key and value of the table at 'idx' (*more = 1), or nothing (*more = 0); or the error object.
*/
int lth_next (lua_State *L, int idx, int *more);

/*
** Upvalues of a *bound* function: the module's (so the module's Swift helpers work in it, as in any module
** function), then the host table and one light userdata for the Swift side.
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

/*
** why: tables, closures and a registry reference allocate.  Builds the host table for the module on the
** top (popped); '*ref' is its registry reference (lua_rawgeti(L, LUA_REGISTRYINDEX, ref)).
*/
int lth_hostinit (lua_State *L, clua_Body perform, int *ref);

/* why: a closure with upvalues allocates ('m').  Pushes a bound function of 'body' (or the error object)
   over the host table at 'host'. */
int lth_bind (lua_State *L, int host, clua_Body body, void *extra);

/*
** why: as clua_loadfile ('m'), with a mode ("t" in a sandbox: a file of bytecode is refused).  Pushes the
** chunk or the message and returns the load status.
*/
int lth_loadfile (lua_State *L, const char *fname, const char *mode);

/*
** why: replacing globals allocates.  Replaces pcall, xpcall and coroutine.resume by copies of Lua 5.4's
** that, when they catch an error while 'pending->pending' is set (memory ran out), run a full collection
** (finalizers included) before returning: contexts that became garbage give their memory back before the
** script's next allocation can fail for want of it.
*/
int lth_collectingcatch (lua_State *L, ltc_Collect *pending);

/*
** What a runtime's lua_Alloc works with (its 'ud'): the heap context every allocation is charged to, and
** the flag it sets when an allocation fails (memory ran out: collect at the next safe point).
*/
typedef struct lth_Heap {
  ltc_Collect collect;     /* memory ran out: collect at the next safe point (shared with the module) */
  void *heap;              /* the "lua heap" context (TallocCore body) */
  size_t debt;             /* bytes allocated during a collection's grace and not charged yet */
} lth_Heap;

/* How far finalizers run by a collection we started may overdraw the limit (then settled). */
#define LTH_GRACE (256 * 1024)

#pragma clang assume_nonnull end

#endif
