/* luatalloc — Debian's Lua 5.4 (liblua5.4-dev, found through pkg-config lua5.4): the headers only. */
#ifndef CLUA_H
#define CLUA_H
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#endif
