/*
** luatalloc — line editing for the REPL, through Debian's libedit (BSD licence),
** readline-compatible API. SPDX-License-Identifier: MIT
*/
#ifndef CEDIT_SHIM_H
#define CEDIT_SHIM_H
#include <stdio.h>
#include <editline/readline.h>
#endif
