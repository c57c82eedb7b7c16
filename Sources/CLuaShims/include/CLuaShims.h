/* luatalloc — the C half of the Lua binding (see clua_shim.h and ltc_shim.h). */
#ifndef CLUASHIMS_H
#define CLUASHIMS_H
#include "clua_shim.h"
#include "ltc_shim.h"
#include "ltc_strlib.h"
#endif
