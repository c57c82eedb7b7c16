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

/* What os.exit calls before it exits: 'close' is 1 for os.exit(status, true), and the function must then
   close the state (in place of lua_close); with 0 it must not.  'ctx' is the host's. */
typedef void (*lth_ExitClose) (void *_Nullable ctx, int close);

/*
** why: changing a table allocates ('m').  Replaces os.exit (if the os library is open) by one that calls
** 'close' (which, asked to close the state, must close it, with lua_close, and release what the host keeps
** for it; asked not to, does the host's own exit work only) instead of lua_close, then exits as os.exit
** does.  Nothing happens without os.exit.
*/
int lth_setexit (lua_State *L, lth_ExitClose close, void *_Nullable ctx);

/*
** The instruction and time budget of one entry from Swift into Lua.  A pointer to it lives in the main
** thread's extra space, which every coroutine copies when it is created, so the count hook finds it in
** any thread.
*/
typedef struct lth_Budget {
  long long remaining;   /* instructions left (when 'limited') */
  long long debt;        /* work owed where no error could be raised (a Swift frame, the allocator, a
                            finalizer): charged by the next lth_charge, module call or hook (lth_owe) */
  long long emergencies; /* Lua's emergency collections in this entry (allocations the limit refused) */
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
#define LTH_HOST_MSGH     6   /* the message handler of host calls (lth_msghandler over this table) */
#define LTH_HOST_ERRMSG   7   /* the message of the last error the handler saw (a string), or false */
#define LTH_HOST_TRACEBACK 8  /* its traceback ("stack traceback:\n..."), or false */
#define LTH_HOST_REFS     9   /* values the host holds (LuaFunction): luaL_ref keys */
#define LTH_HOST_PRINT    10  /* the 'print' a print sink replaced, or false */
#define LTH_HOST_NKEYS    10

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
** What a runtime's lua_Alloc works with (its 'ud'): the heap context every allocation is charged to, and
** the flag it sets when an allocation fails (memory ran out: collect at the next safe point).
*/
typedef struct lth_Heap {
  ltc_Collect collect;     /* memory ran out: collect at the next safe point (shared with the module) */
  void *heap;              /* the "lua heap" context (TallocCore body) */
  size_t debt;             /* bytes allocated during a collection's grace and not charged yet */
  size_t refusals;         /* allocations the limit refused, ever (an error after one is a memory error) */
  int tracking;            /* count what the heap allocates (LuaRuntime.measuringMemory) */
  size_t allocated;        /* while tracking: bytes of growth of Lua's heap */
  size_t peak;             /* while tracking: the highest size of Lua's heap */
  void *root;              /* the runtime's root (TallocCore body): its limit record counts the whole tree */
  size_t peakTotal;        /* while tracking: the highest charge of the root seen at an allocation */
  lth_Budget *_Nullable budget;  /* the runtime's budget, or NULL: a refused allocation owes the emergency
                                    collection Lua runs next (lmem.c's tryagain) */
} lth_Heap;

/*
** why: replacing globals allocates.  Replaces pcall, xpcall and coroutine.resume by copies of Lua 5.4's
** that, when they catch an error while 'heap->collect.pending' is set (memory ran out), count it as a
** refusal (the error is a memory error, whatever the script raises next) and run a full collection
** (finalizers included) before returning: contexts that became garbage give their memory back before the
** script's next allocation can fail for want of it.
*/
int lth_collectingcatch (lua_State *L, lth_Heap *heap);

/*
** Lua's emergency collections (one per allocation the limit refuses) an entry makes before the budget pays
** for them, each as a full collection: a script filling its memory up to "not enough memory" meets about
** twenty; one that keeps its heap at the limit, one every few instructions.
*/
#define LTH_FREEEMERGENCIES 32

/* How far finalizers run by a collection we started may overdraw the limit (then settled). */
#define LTH_GRACE (256 * 1024)

/*
** {======================================================================
** Errors of host calls: the original error object, its message and traceback apart
** =======================================================================
*/

/*
** The message handler of host calls (a C closure over the host table, LTH_HOST_MSGH).  It returns the
** error object unchanged (error({code = 42}) stays a table) and, in protected mode, stores its message
** (tostring semantics: a string, a __tostring result, else "(error object is a X value)") and the
** traceback at LTH_HOST_ERRMSG and LTH_HOST_TRACEBACK.  When that fails (no memory), it stores nothing.
*/
int lth_msghandler (lua_State *L);

/*
** why: tostring may run __tostring ('e') and luaL_traceback allocates ('m').  The same description for an
** error that no handler saw: the error object on the top of 'co' (a coroutine that failed; 'co' may be 'L'),
** stored at LTH_HOST_ERRMSG / LTH_HOST_TRACEBACK of the host table at 'host' (on L's stack).  Returns the
** status (on failure nothing is stored and the error object of the failure is pushed on L).
*/
int lth_describe (lua_State *L, int host, lua_State *co);

/* }====================================================================== */

/*
** {======================================================================
** Calling from the host
** =======================================================================
*/

/*
** why: looking a path up runs __index ('e'), a call runs anything.  Calls the function at the dotted path
** 'path' ("check", "M.check", "a.b.c": fields from the globals) with the 'nargs' values on the top, as
** lua_pcall with message handler 'msgh' would; returns the status with the results or the error object
** in place of the arguments.  A path that does not lead to a value is an error naming it ("function
** 'M.check' not found: 'M' is nil").
*/
int lth_callpath (lua_State *L, const char *path, size_t pathlen, int nargs, int msgh);

/*
** why: as lth_callpath, the lookup alone: pushes the value at 'path' (or the error object); returns the
** status.  'function' set: a missing value is an error naming it as a function.
*/
int lth_getpath (lua_State *L, const char *path, size_t pathlen, int function);

/* why: luaL_ref allocates ('m').  Pops the value on the top into the table at 'idx'; *ref is its key. */
int lth_ref (lua_State *L, int idx, int *ref);

/* why: lua_newthread allocates ('m').  Pushes a new coroutine of L (or the error object). */
int lth_newthread (lua_State *L);

/* }====================================================================== */

/*
** {======================================================================
** Host sinks: print
** =======================================================================
*/

/* Where 'print' writes when the host gave a sink: the line's bytes (no newline). Must not raise. */
typedef void (*lth_PrintSink) (void *ud, const char *text, size_t len);

/*
** why: setting a global allocates.  Replaces the global 'print' by one that formats as Lua's (tostring of
** each argument, tabs between) and gives the line to 'sink'; the replaced 'print' is kept in the host table
** at 'host' (LTH_HOST_PRINT), and 'sink' NULL puts it back.
*/
int lth_setprint (lua_State *L, int host, lth_PrintSink _Nullable sink, void *_Nullable ud);

/* }====================================================================== */

/*
** {======================================================================
** Async host functions
** =======================================================================
**
** An async Swift function is a C closure that asks Swift to start the work ('start': it reads the
** arguments at 1..top and returns 0, or 1 with an error message pushed), then yields the running
** coroutine.  The host's driver (LuaRuntime.callAsync) resumes it with either 'true' and the results, or
** 'false' and a message, which the continuation raises at the caller's position.
*/
typedef int (*lth_AsyncStart) (lua_State *L, void *ud);

/* why: a closure allocates ('m').  Pushes an async function (or the error object); returns the status. */
int lth_pushasync (lua_State *L, lth_AsyncStart start, void *ud);

/* }====================================================================== */

#pragma clang assume_nonnull end

#endif
