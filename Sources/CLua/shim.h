/*
** luatalloc — the only C in the product: static inline helpers over Lua 5.4's C API.
** SPDX-License-Identifier: MIT
*/
#ifndef CLUA_SHIM_H
#define CLUA_SHIM_H
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#endif
