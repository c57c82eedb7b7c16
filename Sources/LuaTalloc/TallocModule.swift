// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// One body per Lua function (DESIGN §3). Bodies use only '-' API calls and protected helpers, and
// report failures through the outcome, so a Lua error never unwinds a Swift frame (DESIGN §4).
//
// Lua code can run in the middle of a call: a metamethod, a destructor, or a finalizer run by a
// collection that any allocation may start. So a body reads its plain arguments first (converting a
// number to a name allocates), then resolves its contexts, and re-resolves them from their handles after
// anything that allocates or runs Lua. It never looks up a global.

import CLua
import CLuaShims
import Glibc
import TallocCore

// The bodies are grouped by what they do: TallocModule+Creation (new, size, strings, realloc),
// +Hierarchy (free, steal, reparent, walking the tree), +References (references, destructors), +Names
// (names and types), +Reports (sizes, reports, limits, pools, DOT), +Metamethods (is_freed, __gc, __close,
// __tostring), and MemoryAccess (read, write, fill, pack, unpack, string). What a failure reads like in Lua
// is TallocError+Lua; what a handle is, Handles.

enum TallocModule {
    /// "not enough memory", asking for a collection at the next safe point (see `Out.fail`).
    static func outOfMemory(_ S: StatePtr, _ out: Out) -> Int32 { out.fail(S, .outOfMemory) }

    /// The optional name argument at stack index `i` (read before any context: it may allocate).
    /// `.some(nil)` when absent; nil when it is not a string (the error is in `out`).
    static func nameArgument(_ L: LuaState, _ out: Out, _ i: Int32, arg: Int32) -> UnsafeRawBufferPointer?? {
        if Lua.isNoneOrNil(L, i) { return .some(nil) }
        guard let b = Lua.bytes(L, out, i, arg: arg) else { return nil }
        return .some(b)
    }

    /// A size argument: an integer from 0 up.
    static func size(_ L: LuaState, _ out: Out, _ i: Int32, arg: Int32, what: String = "size") -> Int? {
        guard let n = Lua.integer(L, out, i, arg: arg) else { return nil }
        if n < 0 { _ = out.argError(arg, "\(what) must not be negative"); return nil }
        return n
    }
}
