// luatalloc — `require "talloc"` from a stock lua5.4
// SPDX-License-Identifier: MIT
//
// The product `talloc` is a shared library exporting `luaopen_talloc`, so that
//     LUA_CPATH='.build/release/lib?.so' lua5.4 -e 'local talloc = require "talloc"'
// gives the same module as luatalloc's global. Lua's own allocator is left alone: the contexts the
// script makes hang under a root context this module owns and frees when the state closes. The library
// is never unloaded once it opened (ltc_pinlibrary): TallocCore's per-thread state lives in it.

import CLua
import CLuaShims
import LuaTalloc
import TallocCore

/// The entry point `require` calls. A Swift frame must not raise a Lua error, so a failure here (only
/// "not enough memory" is possible) is reported as a warning and `require` gets no module.
@_cdecl("luaopen_talloc")
public func luaopen_talloc(_ L: OpaquePointer?) -> Int32 {
    guard let L else { return 0 }
    // stock Lua dlclose()s the library at lua_close; TallocCore's per-thread state needs it loaded
    _ = ltc_pinlibrary()
    guard let root = try? TallocContext.new(parent: nil, name: "lua contexts") else {
        lua_warning(L, "talloc: not enough memory to open the module", 0)
        return 0
    }
    let status = LuaTallocModule.open(L, root: root, ownsRoot: true, setGlobal: false)
    if status != LUA_OK {
        clua_pop(L, 1)
        try? root.free()
        lua_warning(L, "talloc: not enough memory to open the module", 0)
        return 0
    }
    return 1
}
