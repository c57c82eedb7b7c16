/*
** luatalloc benchmarks — libpeakmem.so, an LD_PRELOAD interposer of glibc's malloc family that counts
** the heap bytes in use (malloc_usable_size + 8 per block, i.e. glibc's chunk sizes) and their peak.
** talloc-bench runs a row in a child process with it preloaded to measure peak memory (W7); the
** benchmark binary itself never links it, so timing and callgrind runs see the plain allocator.
** SPDX-License-Identifier: MIT
*/
#ifndef PEAKMEM_H
#define PEAKMEM_H
#include <stddef.h>
/* Restart the peak at the bytes in use now. */
void peakmem_reset(void);
/* Peak bytes in use since the last reset, minus the bytes in use at that reset. */
size_t peakmem_peak_since_reset(void);
#endif
