// luatalloc — the only place where the program learns how its Lua state is made.
// SPDX-License-Identifier: MIT
//
// PROVISIONAL: these bodies use plain Lua (luaL_newstate + a counting allocator) until LuaRuntime
// (library LuaTalloc) lands; the integrator replaces only the bodies below. Everything else in the
// program depends on these five functions, never on how the state is built.

import CLua
import Glibc

/// Creates the state luatalloc runs in (standard libraries NOT yet opened). memoryLimit in bytes, nil = none.
func hostMakeState(memoryLimit: Int?) -> OpaquePointer? {
    guard let L = luaL_newstate() else { return nil }
    if let memoryLimit {
        ProvisionalLimit.install(on: L, limit: memoryLimit)
    }
    return L
}

/// Opens the standard libraries and the `talloc` global/module in protected mode; returns a Lua status.
func hostOpenLibraries(_ L: OpaquePointer) -> Int32 {
    return clua_openlibs(L)
}

/// Text of the talloc report of every context still alive (for --report); "" for now.
func hostReport(_ L: OpaquePointer) -> String {
    return ""
}

/// Graphviz DOT source of every context still alive (for --dot); a valid empty digraph for now.
func hostDot(_ L: OpaquePointer) -> String {
    return "digraph talloc {\n}\n"
}

/// Closes the state.
func hostCloseState(_ L: OpaquePointer) {
    let limit = ProvisionalLimit.installed(on: L)
    lua_close(L)
    limit?.deallocate()
}

/// A byte cap on Lua's heap, wrapping the allocator of `luaL_newstate` (the lua-memlimit approach),
/// so that `--memlimit` has an effect before LuaRuntime accounts everything through TallocCore.
private struct ProvisionalLimit {
    var used: Int
    var limit: Int
    var base: lua_Alloc
    var baseData: UnsafeMutableRawPointer?

    static func install(on L: OpaquePointer, limit: Int) {
        var baseData: UnsafeMutableRawPointer? = nil
        guard let base = lua_getallocf(L, &baseData) else { return }
        let used = Int(clua_gc(L, LUA_GCCOUNT)) * 1024 + Int(clua_gc(L, LUA_GCCOUNTB))
        let state = UnsafeMutablePointer<ProvisionalLimit>.allocate(capacity: 1)
        state.initialize(to: ProvisionalLimit(used: used, limit: limit, base: base, baseData: baseData))
        lua_setallocf(L, limitedAllocator, state)
    }

    static func installed(on L: OpaquePointer) -> UnsafeMutablePointer<ProvisionalLimit>? {
        var data: UnsafeMutableRawPointer? = nil
        let allocator = lua_getallocf(L, &data)
        guard let allocator, let data,
            unsafeBitCast(allocator, to: UnsafeRawPointer.self)
                == unsafeBitCast(limitedAllocator, to: UnsafeRawPointer.self)
        else { return nil }
        return data.assumingMemoryBound(to: ProvisionalLimit.self)
    }
}

/// The `lua_Alloc` of `ProvisionalLimit`: refuses growth past the limit (Lua then collects and retries
/// once before raising "not enough memory"); shrinking and freeing always go through.
private let limitedAllocator: lua_Alloc = { data, block, oldSize, newSize in
    guard let data else { return nil }
    let state = data.assumingMemoryBound(to: ProvisionalLimit.self)
    let old = block == nil ? 0 : oldSize  // with no block, oldSize is a type tag
    if newSize > old && state.pointee.used - old + newSize > state.pointee.limit {
        return nil
    }
    let result = state.pointee.base(state.pointee.baseData, block, oldSize, newSize)
    if newSize == 0 {
        state.pointee.used -= old
    } else if result != nil {
        state.pointee.used += newSize - old
    }
    return result
}
