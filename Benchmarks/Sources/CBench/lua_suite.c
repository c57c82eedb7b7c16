/*
** luatalloc benchmarks — the Lua-level suite (issue 11): a minimal C binding of libtalloc grown to the
** module's functions that libtalloc has, and Lua's own values for the plain rows. See cbench_lua.h.
** SPDX-License-Identifier: MIT
*/
#include "cbench_lua.h"
#include <lua5.4/lua.h>
#include <lua5.4/lauxlib.h>
#include <lua5.4/lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <talloc.h>
#include <unistd.h>

#define CT_META "bench.ct"
#define BUF_META "bench.buf"
#define UD_META "bench.ud"

/* ---------------------------------------------------------------- the C binding of libtalloc */

typedef struct ct_Handle {
    void *p;     /* the talloc pointer, NULL once freed through this handle */
    int owned;   /* made at the top level by this handle: its __gc frees it */
} ct_Handle;

static ct_Handle *ct_check(lua_State *L, int i) {
    ct_Handle *h = luaL_checkudata(L, i, CT_META);
    if (h->p == NULL) luaL_argerror(L, i, "freed context");
    return h;
}

static void *ct_optparent(lua_State *L, int i) {
    return lua_isnoneornil(L, i) ? NULL : ct_check(L, i)->p;
}

static void ct_push(lua_State *L, void *p, int owned) {
    ct_Handle *h;
    if (p == NULL) { lua_pushnil(L); return; }
    h = lua_newuserdatauv(L, sizeof(ct_Handle), 0);
    h->p = NULL;
    h->owned = 0;
    luaL_setmetatable(L, CT_META);
    h->p = p;
    h->owned = owned;
}

static int ct_gc(lua_State *L) {
    ct_Handle *h = lua_touserdata(L, 1);
    if (h->owned && h->p != NULL) talloc_free(h->p);
    h->p = NULL;
    return 0;
}

static int ct_new(lua_State *L) {
    void *parent = ct_optparent(L, 1);
    const char *name = luaL_optstring(L, 2, NULL);
    void *p = name != NULL ? talloc_named_const(parent, 0, name) : talloc_new(parent);
    if (p == NULL) return luaL_error(L, "not enough memory");
    ct_push(L, p, parent == NULL);
    return 1;
}

static int ct_size(lua_State *L) {
    void *parent = ct_optparent(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    void *p = talloc_zero_size(parent, (size_t)n);
    if (p == NULL) return luaL_error(L, "not enough memory");
    ct_push(L, p, parent == NULL);
    return 1;
}

static int ct_strdup(lua_State *L) {
    void *parent = ct_optparent(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    void *p = talloc_strndup(parent, s, len);
    if (p == NULL) return luaL_error(L, "not enough memory");
    ct_push(L, p, parent == NULL);
    return 1;
}

static int ct_pool(lua_State *L) {
    void *parent = ct_optparent(L, 1);
    void *p = talloc_pool(parent, (size_t)luaL_checkinteger(L, 2));
    if (p == NULL) return luaL_error(L, "not enough memory");
    ct_push(L, p, parent == NULL);
    return 1;
}

static int ct_free(lua_State *L) {
    ct_Handle *h = ct_check(L, 1);
    int r = talloc_free(h->p);
    if (r == 0) h->p = NULL;
    lua_pushboolean(L, r == 0);
    return 1;
}

static int ct_steal(lua_State *L) {
    void *parent = ct_optparent(L, 1);
    ct_Handle *h = ct_check(L, 2);
    talloc_steal(parent, h->p);
    lua_settop(L, 2);
    return 1;
}

static int ct_parent(lua_State *L) {
    ct_push(L, talloc_parent(ct_check(L, 1)->p), 0);
    return 1;
}

static int ct_find_parent_byname(lua_State *L) {
    ct_Handle *h = ct_check(L, 1);
    ct_push(L, talloc_find_parent_byname(h->p, luaL_checkstring(L, 2)), 0);
    return 1;
}

static int ct_report_full(lua_State *L) {
    ct_Handle *h = ct_check(L, 1);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) return luaL_error(L, "not enough memory");
    talloc_report_full(h->p, f);
    fclose(f);
    lua_pushlstring(L, text, len);
    free(text);
    return 1;
}

/* Bounds of [off, off + len) in a block of `size` bytes: the offset argument's error otherwise. */
static void bench_bounds(lua_State *L, lua_Integer off, lua_Integer len, size_t size) {
    if (off < 0 || (size_t)off > size || len < 0 || (size_t)len > size - (size_t)off)
        luaL_argerror(L, 2, "out of bounds");
}

static int ct_write(lua_State *L) {
    ct_Handle *h = ct_check(L, 1);
    lua_Integer off = luaL_checkinteger(L, 2);
    size_t len;
    const char *s = luaL_checklstring(L, 3, &len);
    bench_bounds(L, off, (lua_Integer)len, talloc_get_size(h->p));
    memcpy((char *)h->p + off, s, len);
    lua_pushinteger(L, off + (lua_Integer)len);
    return 1;
}

static int ct_read(lua_State *L) {
    ct_Handle *h = ct_check(L, 1);
    size_t size = talloc_get_size(h->p);
    lua_Integer off = luaL_optinteger(L, 2, 0);
    lua_Integer len = luaL_optinteger(L, 3, (lua_Integer)size - off);
    bench_bounds(L, off, len, size);
    lua_pushlstring(L, (char *)h->p + off, (size_t)len);
    return 1;
}

/* pack/unpack of one little-endian 8-byte integer ("<i8" only): the minimal binding's memory access. */
static int ct_pack(lua_State *L) {
    ct_Handle *h = ct_check(L, 1);
    lua_Integer off = luaL_checkinteger(L, 2);
    int64_t v;
    luaL_argcheck(L, strcmp(luaL_checkstring(L, 3), "<i8") == 0, 3, "only '<i8'");
    v = (int64_t)luaL_checkinteger(L, 4);
    bench_bounds(L, off, 8, talloc_get_size(h->p));
    memcpy((char *)h->p + off, &v, 8);
    lua_pushinteger(L, off + 8);
    return 1;
}

static int ct_unpack(lua_State *L) {
    ct_Handle *h = ct_check(L, 1);
    lua_Integer off = luaL_checkinteger(L, 2);
    int64_t v;
    luaL_argcheck(L, strcmp(luaL_checkstring(L, 3), "<i8") == 0, 3, "only '<i8'");
    bench_bounds(L, off, 8, talloc_get_size(h->p));
    memcpy(&v, (char *)h->p + off, 8);
    lua_pushinteger(L, (lua_Integer)v);
    lua_pushinteger(L, off + 8);
    return 2;
}

static const luaL_Reg ct_funcs[] = {
    {"new", ct_new}, {"size", ct_size}, {"strdup", ct_strdup}, {"pool", ct_pool}, {"free", ct_free},
    {"steal", ct_steal}, {"parent", ct_parent}, {"find_parent_byname", ct_find_parent_byname},
    {"report_full", ct_report_full}, {"write", ct_write}, {"read", ct_read}, {"pack", ct_pack},
    {"unpack", ct_unpack}, {NULL, NULL}
};

/* ---------------------------------------------------------------- Lua's own values */

static int ud_gc(lua_State *L) { (void)L; return 0; }

static int plain_ud(lua_State *L) {
    lua_newuserdatauv(L, sizeof(void *), 0);
    luaL_setmetatable(L, UD_META);
    return 1;
}

static int plain_udp(lua_State *L) {
    lua_settop(L, 1);
    lua_newuserdatauv(L, sizeof(void *), 1);
    luaL_setmetatable(L, UD_META);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static int plain_buf(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    size_t *b = lua_newuserdatauv(L, sizeof(size_t) + (size_t)n, 0);
    memset(b, 0, sizeof(size_t) + (size_t)n);
    *b = (size_t)n;
    luaL_setmetatable(L, BUF_META);
    return 1;
}

static int buf_write(lua_State *L) {
    size_t *b = luaL_checkudata(L, 1, BUF_META);
    lua_Integer off = luaL_checkinteger(L, 2);
    size_t len;
    const char *s = luaL_checklstring(L, 3, &len);
    bench_bounds(L, off, (lua_Integer)len, *b);
    memcpy((char *)(b + 1) + off, s, len);
    lua_pushinteger(L, off + (lua_Integer)len);
    return 1;
}

static int buf_read(lua_State *L) {
    size_t *b = luaL_checkudata(L, 1, BUF_META);
    lua_Integer off = luaL_optinteger(L, 2, 0);
    lua_Integer len = luaL_optinteger(L, 3, (lua_Integer)*b - off);
    bench_bounds(L, off, len, *b);
    lua_pushlstring(L, (char *)(b + 1) + off, (size_t)len);
    return 1;
}

/* A C function that does nothing: what calling one from Lua costs. */
static int plain_nop(lua_State *L) { (void)L; return 0; }

static const luaL_Reg plain_funcs[] = {
    {"ud", plain_ud}, {"udp", plain_udp}, {"buf", plain_buf}, {"nop", plain_nop}, {NULL, NULL}
};

static void bench_meta(lua_State *L, const char *name, lua_CFunction gc, const luaL_Reg *methods) {
    luaL_newmetatable(L, name);
    if (gc != NULL) { lua_pushcfunction(L, gc); lua_setfield(L, -2, "__gc"); }
    if (methods != NULL) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

void cb_lua_install_suite(void *Lv) {
    lua_State *L = Lv;
    static const luaL_Reg ct_methods[] = {
        {"write", ct_write}, {"read", ct_read}, {"pack", ct_pack}, {"unpack", ct_unpack}, {"free", ct_free},
        {"parent", ct_parent}, {NULL, NULL}
    };
    static const luaL_Reg buf_methods[] = {
        {"write", buf_write}, {"read", buf_read}, {"nop", plain_nop}, {NULL, NULL}
    };
    bench_meta(L, CT_META, ct_gc, ct_methods);
    bench_meta(L, UD_META, ud_gc, NULL);
    bench_meta(L, BUF_META, NULL, buf_methods);
    luaL_newlib(L, ct_funcs);
    lua_setglobal(L, "ct");
    luaL_newlib(L, plain_funcs);
    lua_setglobal(L, "plain");
}

int cb_lua_load_workload(void *Lv, const char *code, const char *name, const char *impl) {
    lua_State *L = Lv;
    if (luaL_loadbuffer(L, code, strlen(code), name) != LUA_OK
        || (lua_getglobal(L, impl), lua_getglobal(L, "plain"), lua_pcall(L, 2, 1, 0)) != LUA_OK
        || lua_type(L, -1) != LUA_TFUNCTION) {
        fprintf(stderr, "talloc-bench: workload %s (%s): %s\n", name, impl,
                lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "did not return a function");
        abort();
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

size_t cb_rss_bytes(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}
