/*
** luatalloc — the loadable module stays loaded (finding F14).
** SPDX-License-Identifier: MIT
**
** Stock Lua's 'require' keeps a C library in its CLIBS table, whose finalizer dlclose()s it at lua_close.
** The module must outlive that: TallocCore keeps per-thread state under a pthread key whose destructor is
** code of this library (a worker thread that used the module ends after lua_close: glibc calls it), and a
** library loaded again makes a new key each time (the process runs out of keys after ~512 states).  So the
** module marks itself RTLD_NODELETE the first time it opens: dlclose() then leaves it (and the libraries it
** depends on) in place, and every later 'require' finds it loaded.
*/
#define _GNU_SOURCE
#include <dlfcn.h>

#include "ltc_shim.h"

int ltc_pinlibrary (void) {
  Dl_info info;
  if (dladdr((void *)&ltc_pinlibrary, &info) == 0 || info.dli_fname == NULL) return 0;
  /* RTLD_NOLOAD: the library is loaded already (this code runs in it); the call only sets the flag and
     takes a reference that is never given back */
  return dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) != NULL;
}
