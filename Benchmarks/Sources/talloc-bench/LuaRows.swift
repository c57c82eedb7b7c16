// luatalloc benchmarks — rows that need the Lua module (W6 `talloc.new()`) or the Lua allocator on
// TallocCore (W7).
// SPDX-License-Identifier: MIT

func luaModuleRows(_ cfg: Config) -> [Row] {
    return []
}

func luaHeapRows(_ cfg: Config, _ depth: Int) -> [Row] {
    return []
}
