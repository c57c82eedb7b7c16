/* INTERIM (replaced by the strlib branch): lstrlib's format/pack/unpack, called in the caller's frame. */
#ifndef LTC_STRLIB_H
#define LTC_STRLIB_H
#include "clua_shim.h"
int ltc_format (lua_State *L, int fmt);
int ltc_pack (lua_State *L, int fmt);
int ltc_unpack (lua_State *L, int fmt, int data, lua_Integer pos);
#endif
