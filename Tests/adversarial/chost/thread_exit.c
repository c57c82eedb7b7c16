/* (Tests/luatallocTests/AdversarialTests.swift, finding F14)
   A C host (stock Lua 5.4) runs a Lua state on a worker thread: the script requires "talloc" and frees
   a context with a child (TallocCore then allocates its per-thread state, registered with
   pthread_setspecific under a key whose destructor function lives in libtalloc.so). The state is closed
   (lua_close dlclose()s libtalloc.so), then the thread ends: glibc runs the key's destructor, which was
   unloaded with the library. */
#include <lua5.4/lua.h>
#include <lua5.4/lauxlib.h>
#include <lua5.4/lualib.h>
#include <pthread.h>
#include <stdio.h>
static void *worker(void *arg) {
  (void)arg;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (luaL_dostring(L, "local t = require 'talloc'; local a = t.new(nil, 'a'); t.new(a, 'kid');"
                       "t.free(a); return 1") != LUA_OK)
    fprintf(stderr, "error: %s\n", lua_tostring(L, -1));
  lua_close(L);
  fprintf(stderr, "state closed, thread ending\n");
  return NULL;
}
int main(void) {
  pthread_t th;
  pthread_create(&th, NULL, worker, NULL);
  pthread_join(th, NULL);
  fprintf(stderr, "thread joined\n");
  return 0;
}
