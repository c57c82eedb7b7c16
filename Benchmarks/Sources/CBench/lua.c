/*
** luatalloc benchmarks — Lua 5.4 (Debian liblua5.4-dev) side: states, the W6 floor and the minimal
** C binding of libtalloc, the W7 binary-trees program and its peak-memory sampler.
** Debian installs the headers in /usr/include/lua5.4 (pkg-config lua5.4), included by path here.
** SPDX-License-Identifier: MIT
*/
#include "cbench.h"
#include <lua5.4/lua.h>
#include <lua5.4/lauxlib.h>
#include <lua5.4/lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <talloc.h>

static void check(lua_State *L, int status, const char *what) {
    if (status != LUA_OK) {
        fprintf(stderr, "talloc-bench: Lua error in %s: %s\n", what, lua_tostring(L, -1));
        abort();
    }
}

void *cb_lua_new_stock(void) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    return L;
}

void *cb_lua_new_with_alloc(cb_lua_alloc f, void *ud) {
    lua_State *L = lua_newstate(f, ud);
    if (!L) { fprintf(stderr, "talloc-bench: lua_newstate failed\n"); abort(); }
    luaL_openlibs(L);
    return L;
}

void cb_lua_close(void *L) { lua_close((lua_State *)L); }

void cb_lua_require(void *Lv, const char *name, int (*openf)(void *L)) {
    lua_State *L = Lv;
    luaL_requiref(L, name, (lua_CFunction)(void *)openf, 1);
    lua_pop(L, 1);
}

/* ---------------------------------------------------------------- W6 */

static int plain_gc(lua_State *L) { (void)L; return 0; }

static int plain_new(lua_State *L) {
    lua_newuserdatauv(L, sizeof(void *), 0);
    luaL_setmetatable(L, "bench.plain");
    return 1;
}

static int ctalloc_gc(lua_State *L) {
    void **p = lua_touserdata(L, 1);
    if (*p) { talloc_free(*p); *p = NULL; }
    return 0;
}

static int ctalloc_new(lua_State *L) {
    void **p = lua_newuserdatauv(L, sizeof(void *), 0);
    *p = NULL;
    luaL_setmetatable(L, "bench.ctalloc");
    *p = talloc_new(NULL);
    if (!*p) return luaL_error(L, "talloc_new failed");
    return 1;
}

void cb_lua_install_w6(void *Lv) {
    lua_State *L = Lv;
    luaL_newmetatable(L, "bench.plain");
    lua_pushcfunction(L, plain_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, "bench.ctalloc");
    lua_pushcfunction(L, ctalloc_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lua_register(L, "bench_plain_new", plain_new);
    lua_register(L, "bench_ctalloc_new", ctalloc_new);
}

int cb_lua_loop_ref(void *Lv, const char *expr) {
    lua_State *L = Lv;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "local new = ");
    luaL_addstring(&b, expr);
    luaL_addstring(&b, "\nassert(new, 'no such function')\n"
                       "return function(n) for i = 1, n do new() end collectgarbage() end\n");
    luaL_pushresult(&b);
    const char *code = lua_tostring(L, -1);
    check(L, luaL_loadbuffer(L, code, lua_rawlen(L, -1), "=w6"), "load");
    lua_remove(L, -2);
    check(L, lua_pcall(L, 0, 1, 0), expr);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

void cb_lua_run_loop(void *Lv, int ref, long n) {
    lua_State *L = Lv;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_pushinteger(L, n);
    check(L, lua_pcall(L, 1, 0, 0), "w6 loop");
}

/* ---------------------------------------------------------------- W7 */

/* The benchmarks game's binary-trees, Lua version, returning the number of tables it built. */
static const char binarytrees[] =
    "local function BottomUpTree(depth)\n"
    "  if depth > 0 then\n"
    "    depth = depth - 1\n"
    "    local left, right = BottomUpTree(depth), BottomUpTree(depth)\n"
    "    return { left, right }\n"
    "  else\n"
    "    return { }\n"
    "  end\n"
    "end\n"
    "local function ItemCheck(tree)\n"
    "  if tree[1] then\n"
    "    return 1 + ItemCheck(tree[1]) + ItemCheck(tree[2])\n"
    "  else\n"
    "    return 1\n"
    "  end\n"
    "end\n"
    "local N = ...\n"
    "local mindepth = 4\n"
    "local maxdepth = mindepth + 2\n"
    "if maxdepth < N then maxdepth = N end\n"
    "local nodes = 0\n"
    "do\n"
    "  local stretchdepth = maxdepth + 1\n"
    "  local stretchtree = BottomUpTree(stretchdepth)\n"
    "  nodes = nodes + ItemCheck(stretchtree)\n"
    "end\n"
    "local longlivedtree = BottomUpTree(maxdepth)\n"
    "for depth = mindepth, maxdepth, 2 do\n"
    "  local iterations = 2 ^ (maxdepth - depth + mindepth)\n"
    "  local check = 0\n"
    "  for i = 1, iterations do\n"
    "    check = check + ItemCheck(BottomUpTree(depth))\n"
    "  end\n"
    "  nodes = nodes + check\n"
    "end\n"
    "nodes = nodes + ItemCheck(longlivedtree)\n"
    "return nodes\n";

long cb_lua_binarytrees(void *Lv, int depth) {
    lua_State *L = Lv;
    check(L, luaL_loadbuffer(L, binarytrees, sizeof binarytrees - 1, "=binarytrees"), "load");
    lua_pushinteger(L, depth);
    check(L, lua_pcall(L, 1, 1, 0), "binarytrees");
    long nodes = (long)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return nodes;
}
