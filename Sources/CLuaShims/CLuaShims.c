/* luatalloc — the C half of the Lua binding. */
#include "CLuaShims.h"
