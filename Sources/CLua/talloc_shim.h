/*
** luatalloc — C helpers specific to the `talloc` Lua module (the generic ones are in shim.h).
** SPDX-License-Identifier: MIT
*/
#ifndef CLUA_TALLOC_SHIM_H
#define CLUA_TALLOC_SHIM_H
#include "shim.h"
#endif
