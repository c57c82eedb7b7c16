/*
** luatalloc — the C half of the `talloc` Lua module (prefix ltc_).
** SPDX-License-Identifier: MIT
**
** The module's bodies are Swift.  What is here is what Swift must not do: anything that can raise a Lua
** error ('m', 'v', 'e' in the manual) is done either in a trampoline, before the Swift body runs or after
** it has returned, or in a protected helper that Swift runs through lua_pcall (ltc_module.c).
**
** Two rules keep hostile scripts from crashing the process:
**   - Threads.  Every module call runs on some thread (a coroutine or the main one).  The trampoline
**     records it in the state and restores the previous one when the body returns, so callbacks that run
**     inside a call (TallocCore's observer, Lua destructors) always use the thread that is running now,
**     never one that called the module earlier and may be dead.  Callbacks reach the module's tables
**     through registry references, never through the upvalues of some function that happens to run.
**   - Handles.  A context is reached from Lua through a *cell* (ltc_Cell): a record outside Lua's heap that
**     lives as long as the chunk or any userdata pointing to it, whichever is longer.  The chunk's free
**     empties the cell (body NULL) before the memory goes, so a userdata never reaches freed memory.  Code
**     that ran Lua (a metamethod, a destructor, a finalizer run by a collection) re-reads every context it
**     holds from its cell.
*/
#ifndef LTC_SHIM_H
#define LTC_SHIM_H
#include "clua_shim.h"

#pragma clang assume_nonnull begin

/* The metatable of contexts, as liolib names LUA_FILEHANDLE. */
#define LTC_METATABLE "talloc.context"

/* ltc_Cell.flags */
#define LTC_ATTACHED   0x01  /* the chunk's observer points at this cell (until the chunk is freed) */
#define LTC_HIDDEN     0x02  /* the chunk's parent is not Lua's to see (parent() is nil, walks stop here) */
#define LTC_LENT       0x04  /* the host lent this context */
#define LTC_REFUSED    0x08  /* the collector tried to free it and a destructor refused: never again */
#define LTC_NEWPREFIX  0x10  /* the location name reads "talloc_new: FILE:LINE" */
#define LTC_LOCATION   0x20  /* 'name' is the FILE of a location name ("FILE:LINE", the line in 'line') */
#define LTC_SIDEREC    0x40  /* the chunk's side record was made for this cell, charged to the account */
#define LTC_SAVED      0x80  /* the name was saved when the chunk's free began */
#define LTC_LUADTOR    0x100 /* the chunk's destructor is the module's (a Lua destructor in extra[slot]) */
#define LTC_INUSE      0x200 /* a live cell (a free cell of a page has none of these flags) */

/*
** An interned name, counted: the FILE of location names ("FILE:LINE", the chunk source's short_src), and
** the names scripts give (new, size, set_type): a chunk's name points into one, which its cell counts.
** One copy per distinct name and state, charged to the account; freed with its last count.
*/
typedef struct ltc_Name {
  struct ltc_Name *_Nullable next;  /* the hash chain */
  size_t refs;              /* cells whose chunk is named by it */
  size_t len;
  unsigned hash;
  char text[1];             /* NUL-terminated */
} ltc_Name;

/*
** The record of one chunk Lua has seen (see the header comment).  'uds' userdata point at it and, while
** LTC_ATTACHED, the chunk does (its TallocCore observer's data); it is freed when neither does.  Cells
** live in pages the state owns (ltc_newcell), so making one is a few instructions and costs no malloc
** header; its slot comes with its place in its page.
*/
typedef struct ltc_Cell {
  void *_Nullable body;     /* the chunk's body (TallocCore), or NULL once freed */
  ltc_Name *_Nullable name; /* the interned name its chunk's name points into (one count), or NULL; once
                               the chunk's free began, the name it had (its first bytes, interned) */
  int slot;                 /* handles[slot] is its userdata (weak), extra[slot] its Lua destructor */
  int flags;                /* LTC_ATTACHED ... */
  int uds;                  /* userdata pointing at this cell */
  int line;                 /* the line of a location name */
  unsigned charged;         /* bytes charged to the state's account for this chunk's side record */
  unsigned reserved;
} ltc_Cell;

/* A page of cells (malloc'd, charged): the state's cell allocator. */
#define LTC_PAGECELLS 15  /* a page stays below 1 KiB: glibc consolidates its fast bins for larger requests */
typedef struct ltc_Page {
  struct ltc_Page *_Nullable pnext;   /* the pages with free cells */
  struct ltc_Page *_Nullable *_Nullable pprev;
  int id;                   /* S->pages[id] is this page; its cells' slots are id * LTC_PAGECELLS + 1 ... */
  unsigned inuse;           /* bit i: cells[i] is live */
  ltc_Cell cells[LTC_PAGECELLS];
} ltc_Page;

/*
** Per-state data, a full userdata owned by Lua (freed by lua_close after every finalizer ran, so a late
** finalizer calling the module still finds it).  Its own __gc closes the module: it runs last, being the
** first object marked for finalization.
*/
/*
** When memory ran out: 'pending' asks for a full collection (finalizers included) at the next safe point
** (the next module call, or a pcall that catches the error).  While that collection runs 'grace' is set:
** the runtime's allocator then lets finalizers overdraw the limit a little (their own calls need stack),
** and settles the debt once they gave memory back.
*/
typedef struct ltc_Collect {
  int pending;
  int grace;
  /* the runtime's budget's 'armed' flag (lth_Budget), or NULL (no budget: the stock-Lua module, a runtime
     without limits); read by the module after each call, so that without an armed budget the charge for
     walks costs a load and a test */
  const int *_Nullable budgetArmed;
} ltc_Collect;

/*
** Runs the collection asked for, if any (a no-op inside a finalizer, where Lua refuses lua_gc).  Two
** cycles: the first runs the finalizers (our handles' __gc free their contexts), the second frees the
** finalized objects themselves, which Lua keeps for one more cycle.  The budget pays for them (finding
** F1: a script catching "not enough memory" in a loop made the runtime collect for it, uncharged):
** ltc_collectnow owes the work (never raises: Swift calls it), ltc_collectcharged charges it before
** collecting (may raise: C only, in a module function's frame or a pcall's).
*/
void ltc_collectowed (lua_State *L, ltc_Collect *c);
void ltc_collectpaid (lua_State *L, ltc_Collect *c);
static inline void ltc_collectnow (lua_State *L, ltc_Collect *_Nullable c) {
  if (c != NULL && c->pending) ltc_collectowed(L, c);
}
static inline void ltc_collectcharged (lua_State *L, ltc_Collect *_Nullable c) {
  if (c != NULL && c->pending) ltc_collectpaid(L, c);
}

struct ltc_State;

/* A module function: its Swift body and the state, reached in one lookup (its upvalue 1). */
typedef struct ltc_Fn {
  clua_Body body;
  struct ltc_State *S;
} ltc_Fn;
#define LTC_MAXFNS 64

/* Charges n bytes (n > 0: may refuse, returning 0) to the state's account, or gives them back (n < 0). */
typedef int (*ltc_ChargeFn) (struct ltc_State *S, long long n);

/* TallocCore's work meter (Talloc.takeWork): the steps of long walks on this thread since the last call. */
typedef long long (*ltc_TakeWorkFn) (void);

typedef struct ltc_State {
  void *root;               /* Lua's top level: the parent of the state's top-level contexts */
  void *_Nullable account;  /* an external-size context charged for the module's own memory, or NULL */
  ltc_Collect *_Nullable collect;  /* memory ran out: collect (with finalizers) at the next safe point */
  ltc_Collect ownCollect;   /* 'collect' when the host gives none */
  int ownsRoot;             /* free 'root' itself at close (module loaded in a stock lua) */
  int closing;              /* at close: destructor refusals and errors are overridden, no new context
                               or reference is made */
  int closed;               /* after close: the module refuses every call */
  int inGC;                 /* > 0 while a __gc frees: destructor errors become warnings */
  int hasError;             /* a destructor raised; its error object is in extra[0] */
  lua_State *_Nullable L;   /* the main thread */
  lua_State *_Nullable currentL;  /* the thread of the innermost module call running now, or NULL */
  int metaRef, handlesRef, extraRef;  /* registry references of the module's tables */
  int (*_Nullable charge) (struct ltc_State *S, long long n);  /* charges (n > 0) or gives back 'account' bytes */
  void *_Nullable closehook;  /* the module's close procedure (Swift), called by the state's __gc */
  ltc_Page *_Nullable *_Nullable pages;  /* every page by id; a released id holds the next released (odd) */
  int npages, cappages;
  int freeid;               /* the first released page id + 1, or 0 */
  ltc_Page *_Nullable partial;  /* the pages with free cells (the newest first) */
  ltc_Page *_Nullable spare;    /* an empty page kept for the next burst of cells */
  int ncells;               /* live cells */
  int inbody;               /* module bodies running now (their frames reach the tables by upvalues) */
  int hostbody;             /* the innermost body running is a host function's (a bound function) */
  ltc_Cell *_Nullable quiet;  /* a cell whose move the running body relinks itself (the observer skips it) */
  ltc_Name *_Nullable lastName;  /* the interned source of the caller last seen (extra[LTC_EXTRA_LASTFN]);
                                    cleared when its last count goes */
  ltc_Name *_Nullable *_Nullable names;  /* the interned names (hash buckets; malloc'd, charged) */
  size_t nnames, capnames;
  ltc_Fn *_Nullable iterfn;  /* the children iterator (in no table: each children() call makes one) */
  long long work;           /* steps of the module's own walks (up the tree) not charged yet (ltc_meter) */
  ltc_TakeWorkFn _Nullable takework;  /* TallocCore's meter, read after each body when a budget is armed */
  ltc_Fn fns[LTC_MAXFNS];   /* the module's functions (upvalue 1 of each points at its record) */
} ltc_State;

/* Upvalues shared by every function of the module. */
#define LTC_UPV_BODY      1   /* the function's ltc_Fn (light userdata); a bound host function: its body */
#define LTC_UPV_META      2   /* the metatable of contexts */
#define LTC_UPV_HANDLES   3   /* slot -> userdata, weak values */
#define LTC_UPV_STATE     4   /* the ltc_State userdata */
#define LTC_UPV_EXTRA     5   /* slot -> destructor function; [0] the pending destructor error; strong */
#define LTC_EXTRA_LASTFN  (-2)  /* extra[-2]: {the function that called the module last} (weak values) */
#define LTC_NUPVALUES     5
/* ... and the children iterator's own two (its closure keeps its state, as string.gmatch's does) */
#define LTC_UPV_ITERPARENT (LTC_NUPVALUES + 1)  /* the parent's handle */
#define LTC_UPV_ITERPREV   (LTC_NUPVALUES + 2)  /* the child returned last: nil before the first, false after the last */

/* The state of the running module function. */
static inline ltc_State *ltc_state (lua_State *L) {
  return (ltc_State *)lua_touserdata(L, lua_upvalueindex(LTC_UPV_STATE));
}

/* why: upvalue indices are macro arithmetic; Swift reads them through this. */
static inline int ltc_upvalue (int i) { return lua_upvalueindex(i); }

/*
** What a handle points to once its __gc gave its cell back: an empty cell, so that a __gc called again
** (Lua code can call it, and a resurrected handle can be finalized twice) finds a freed context and
** nothing else.  Never written.
*/
extern const ltc_Cell ltc_deadcell;

/*
** why: luaL_testudata needs the registry; this compares against the metatable at 'meta' (an upvalue or
** stack index) with '-' calls only.  The cell of the handle at 'idx', or NULL when it is not a handle.
*/
static inline ltc_Cell *_Nullable ltc_tocell_in (lua_State *L, int idx, int meta) {
  ltc_Cell **p = (ltc_Cell **)lua_touserdata(L, idx);
  int same;
  if (p == NULL || lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return NULL;
  same = lua_rawequal(L, -1, meta);
  lua_pop(L, 1);
  if (!same) return NULL;
  return *p != NULL ? *p : (ltc_Cell *)&ltc_deadcell;
}

/* The same inside a module function. */
static inline ltc_Cell *_Nullable ltc_tocell (lua_State *L, int idx) {
  return ltc_tocell_in(L, idx, lua_upvalueindex(LTC_UPV_META));
}

/* Whether 'cell' is the dead cell. */
static inline int ltc_isdead (const ltc_Cell *cell) { return cell == &ltc_deadcell; }

/* The cell of the handle at 'idx' (known to be a handle). */
static inline ltc_Cell *ltc_cellat (lua_State *L, int idx) {
  ltc_Cell *c = *(ltc_Cell **)lua_touserdata(L, idx);
  return c != NULL ? c : (ltc_Cell *)&ltc_deadcell;
}

/* The handle at 'idx' (known to be a handle) lets go of its cell (in its __gc). */
static inline void ltc_dropcell (lua_State *L, int idx) {
  *(ltc_Cell **)lua_touserdata(L, idx) = NULL;
}

/* The handle at 'idx' (a new handle, empty) now speaks for 'cell'. */
static inline void ltc_setcell (lua_State *L, int idx, ltc_Cell *cell) {
  *(ltc_Cell **)lua_touserdata(L, idx) = cell;
}

/*
** why: setting a key of a table to nil never allocates (luaH_set finds the node or does nothing), so
** lua_rawseti cannot raise here although the manual marks it 'm'.  Swift uses it only this way.
*/
static inline void ltc_clearslot (lua_State *L, int tableidx, lua_Integer slot) {
  tableidx = lua_absindex(L, tableidx);
  if (lua_rawgeti(L, tableidx, slot) != LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawseti(L, tableidx, slot);
  } else {
    lua_pop(L, 1);
  }
}

/*
** why: as ltc_clearslot, replacing the value of a key that exists (here the pending-error slot 0 of the
** extra table, created when the module opened) never allocates.  Pops the value.
*/
static inline void ltc_setexisting (lua_State *L, int tableidx, lua_Integer key) {
  lua_rawseti(L, tableidx, key);
}

/* What a Swift body asks beyond clua_shim's kinds: raise the string on the top with the caller's position
   prepended (a message of any length and bytes, NULs included); or return, its last result being
   out->bytes (out->len bytes of a chunk: the trampoline makes the Lua string, after the body). */
#define LTC_ERRORVALUE 10
#define LTC_RETBYTES   11
/* ... or the same with a text made of out->pieces (a big name is copied once, by Lua, into memory the
   limit counts: finding F2): raise it with the position prepended, or return it as the last result. */
#define LTC_ERRORTEXT  12
#define LTC_RETTEXT    13

/*
** One function of the module: its Swift body, its kind (how the trampoline prepares the call), and where
** it goes: the module table, the methods (__index) table, or the metatable.
*/
#define LTC_PLAIN     0   /* the plain trampoline */
#define LTC_CREATES   1   /* a new empty handle at index 1, the arguments after it */
#define LTC_FORMATS   2   /* creates, and the arguments from index 2 formatted as string.format: the
                             result string is pushed on the top before the body runs */
#define LTC_APPENDS   3   /* the arguments from index 2 formatted, the result on the top */
#define LTC_PACKS     4   /* c:pack(off, fmt, ...): string.pack of the arguments from index 3 on the top */
#define LTC_NOSTATE   5   /* works on a closed state (is_freed, __gc, __tostring): out->context is NULL then */
#define LTC_UNPACKS   6   /* c:unpack(off, fmt): the body pushes the bytes; string.unpack runs after it */
#define LTC_ITERATES  7   /* children(c): the body checks c; the trampoline returns the iterator over it */
#define LTC_FINALIZES 8   /* __gc: the trampoline decides the common cases; the body frees a last handle's
                             top-level context (as LTC_NOSTATE) */
typedef struct ltc_Reg {
  const char *name;
  clua_Body body;
  int kind;       /* LTC_PLAIN ... */
  int where;      /* bit 1: module function; bit 2: method; bit 4: metamethod; bit 8: the children iterator */
} ltc_Reg;

/* Called (from C) when the state userdata is finalized: the module's close procedure (Swift). */
typedef void (*ltc_CloseHook) (lua_State *L, ltc_State *S);

/*
** why: building tables and closures allocates.  Opens the module: [-0, +1] the module table, or the error
** object; returns the status.  'account' (or NULL) is charged for the module's own memory; 'collect' (or
** NULL: the state's own) is where running out of memory asks for a collection at the next safe point;
** 'takework' reads TallocCore's work meter (charged to a budget after each call, when one is armed).
*/
int ltc_openlib (lua_State *L, const ltc_Reg *regs, int nregs, void *root, int ownsRoot, void *_Nullable account,
                 ltc_Collect *_Nullable collect, ltc_ChargeFn charge, ltc_TakeWorkFn _Nullable takework,
                 ltc_CloseHook hook);

/* The trampoline of the host's bound functions: upvalue 1 is their Swift body, 2... the module's. */
int ltc_trampoline (lua_State *L);

/* why: tables and globals may allocate.  Makes the module on the top requirable (and a global); pops it. */
int ltc_preload (lua_State *L, int setglobal);

/*
** Pushes the module's tables (metatable, handles, extra) from the registry: [-0, +3].  For callbacks that
** run outside any module function, and for the host.  Only '-' calls; the caller checks the stack.
*/
void ltc_pushtables (lua_State *L, ltc_State *S);

/* The thread callbacks must use now: the innermost running module call's, else the main thread (no Lua
   code is running then). */
static inline lua_State *ltc_thread (ltc_State *S) {
  return S->currentL != NULL ? S->currentL : S->L;
}

/*
** why: making a userdata allocates.  Pushes a new handle for 'cell' (which the caller keeps alive with a
** count of its own while this runs) and stores it in handles[cell->slot]; 'tables' is the index of the
** three tables pushed by ltc_pushtables, or 0 inside a module function (its upvalues).  Returns the status;
** on failure the error object is pushed instead.  A collection can run finalizers meanwhile: the caller
** re-reads cell->body afterwards.
*/
int ltc_pushhandle (lua_State *L, ltc_Cell *cell, int tables);

/* why: a Lua destructor is arbitrary code ('e').  Calls the function under the 'nargs' arguments on the
   top; [-(nargs+1), +1]: its first result or the error object; returns the status. */
int ltc_call (lua_State *L, int nargs);

/* why: lua_rawset may grow the table ('m').  t[k] = v with t at 'idx', k and v on the top; pops both. */
int ltc_rawset (lua_State *L, int idx);

/* why: lua_concat and luaL_where allocate.  Pushes "position: " .. (string on the top), replacing it. */
int ltc_where (lua_State *L, int level);

/*
** why: lua_getinfo's lua_Debug is a C struct Swift would have to mirror.  The position of the Lua code that
** called the module (level 1): 1 with the line and the chunk's interned source (one count for the caller),
** 0 when the caller is a C function (e.g. pcall: no position), -1 when memory ran out.  'extra' is the
** index of the extra table (its LTC_EXTRA_LASTFN entry caches the last caller).  Never raises.
*/
int ltc_callername (lua_State *L, ltc_State *S, int extra, ltc_Name *_Nullable *_Nonnull name, int *line);

/* why: lua_warning is '-', but building "msg" pieces is not; this is the 2-piece form. */
static inline void ltc_warn (lua_State *L, const char *a, const char *b) {
  lua_warning(L, a, 1);
  lua_warning(L, b, 0);
}

/*
** What malloc really takes for a block of n bytes (glibc on 64-bit: 8 bytes of header, 16-byte granules,
** 32 bytes at least): what the module charges, so that a memory limit bounds the process's real memory.
*/
static inline size_t ltc_mallocfootprint (size_t n) {
  size_t m = (n + 8 + 15) & ~(size_t)15;
  return m < 32 ? 32 : m;
}

/* Cells: a new one, zeroed but for its slot and LTC_INUSE (NULL when memory runs out: a new page is
   charged); a cell nothing points at any more is given back with ltc_freecell (its name and charges go
   back; an empty page is released).  Never raise. */
ltc_Cell *_Nullable ltc_newcell (ltc_State *S);
void ltc_freecell (ltc_State *S, ltc_Cell *_Nullable cell);

/* At close, after every finalizer: frees every page and interned name.  Never raises. */
void ltc_freeall (ltc_State *S);

/* The live cell after 'cell' (the first with NULL), in page order, or NULL.  Never raises. */
ltc_Cell *_Nullable ltc_nextcell (ltc_State *S, ltc_Cell *_Nullable cell);

/* Interned names: a counted name for 'text' (up to its first NUL, at most 'len' bytes; NULL when memory
   runs out), and dropping a count.  Never raise. */
ltc_Name *_Nullable ltc_internname (ltc_State *S, const char *text);
ltc_Name *_Nullable ltc_internbytes (ltc_State *S, const char *text, size_t len);
void ltc_unrefname (ltc_State *S, ltc_Name *_Nullable n);

/*
** why: converting a number to a string allocates ('m').  Replaces the number at 'idx' by its string (as
** luaL_checklstring does); returns the status (error object on the top on failure).  A collection may run.
*/
int ltc_tostringinplace (lua_State *L, int idx);

/* Asks for a collection at the next safe point (the next module call, or a pcall that caught an error
   in a runtime that wraps pcall). */
static inline void ltc_requestcollect (ltc_State *S) { S->collect->pending = 1; }

/*
** Keeps the shared object this code is linked into loaded for the rest of the process (RTLD_NODELETE), so
** that lua_close's dlclose() of the loadable module leaves it: TallocCore's per-thread state and its
** pthread key point into it (ltc_pin.c).  Returns whether it could.  Never raises.
*/
int ltc_pinlibrary (void);

#pragma clang assume_nonnull end

#endif
