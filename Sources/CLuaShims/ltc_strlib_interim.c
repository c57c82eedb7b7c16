/* INTERIM (replaced by the strlib branch). */
#include "ltc_strlib.h"
static int callstr (lua_State *L, const char *name, int first, int nres) {
  int n = lua_gettop(L) - first + 1, i, base;
  lua_getglobal(L, "string"); lua_getfield(L, -1, name); lua_remove(L, -2);
  for (i = 0; i < n; i++) lua_pushvalue(L, first + i);
  base = lua_gettop(L) - n - 1;
  lua_call(L, n, nres);
  return lua_gettop(L) - base;
}
int ltc_format (lua_State *L, int fmt) { return callstr(L, "format", fmt, 1); }
int ltc_pack (lua_State *L, int fmt) { return callstr(L, "pack", fmt, 1); }
int ltc_unpack (lua_State *L, int fmt, int data, lua_Integer pos) {
  int base = lua_gettop(L);
  lua_getglobal(L, "string"); lua_getfield(L, -1, "unpack"); lua_remove(L, -2);
  lua_pushvalue(L, fmt); lua_pushvalue(L, data); lua_pushinteger(L, pos);
  lua_call(L, 3, LUA_MULTRET);
  return lua_gettop(L) - base;
}
