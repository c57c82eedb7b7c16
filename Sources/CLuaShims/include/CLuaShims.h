/* luatalloc — the C half of the Lua binding: Lua API wrappers (clua_), the talloc module (ltc_), host
   helpers (lth_), and private copies of Lua's string functions (ltc_str*, lth_openbounded). */
#ifndef CLUASHIMS_H
#define CLUASHIMS_H
#include "clua_shim.h"
#include "ltc_shim.h"
#include "lth_shim.h"
#include "ltc_strlib.h"
#endif
