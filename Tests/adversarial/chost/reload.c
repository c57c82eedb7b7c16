/* (Tests/luatallocTests/AdversarialTests.swift, finding F14)
   A C program embedding stock Lua 5.4 (as any C host does): N times, a new state requires "talloc",
   uses it, and closes. lua_close dlclose()s the module (Lua's CLIBS finalizer), unloading libtalloc.so
   and, with it, the Swift runtime libraries it pulled in; the next state loads them again. */
#include <lua5.4/lua.h>
#include <lua5.4/lauxlib.h>
#include <lua5.4/lualib.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20;
  const char *code = argc > 2 ? argv[2] :
    "local t = require 'talloc'; local a = t.new(nil, 'a'); local s = t.strdup(a, 'x');"
    "t.set_destructor(a, function() end); keep = t.pool(nil, 1024); return t.report_full(a)";
  for (int i = 0; i < n; i++) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_dostring(L, code) != LUA_OK) {
      fprintf(stderr, "round %d: %s\n", i, lua_tostring(L, -1));
      lua_close(L);
      return 1;
    }
    lua_close(L);
    fprintf(stderr, "round %d ok\n", i);
  }
  return 0;
}
