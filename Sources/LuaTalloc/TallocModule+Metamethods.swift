// luatalloc — the `talloc` Lua module: is_freed and the metamethods (__gc, __close, __tostring)
// SPDX-License-Identifier: MIT
//
// See TallocModule.swift for the rules every body follows.

import CLua
import CLuaShims
import Glibc
import TallocCore

extension TallocModule {
    /// is_freed(x): true for a freed context (and for every handle once the state closed); never raises.
    static let isFreed: clua_Body = { L, out in
        guard let S = out.pointee.context?.assumingMemoryBound(to: ltc_State.self) else {
            lua_pushboolean(L, ltc_tocell(L, 1) != nil ? 1 : 0)
            return 1
        }
        let f = Frame(module: L, S)
        if let cell = ltc_tocell_in(L, 1, f.meta) { lua_pushboolean(L, cell.pointee.body == nil ? 1 : 0) } else { lua_pushboolean(L, 0) }
        return 1
    }

    // MARK: - Metamethods

    static let tostring: clua_Body = { L, out in
        guard let cell = ltc_tocell(L, 1) else { return Lua.typeError(L, out, 1, "talloc.context") }
        guard out.pointee.context != nil, let body = cell.pointee.body else {
            return Lua.push(L, "talloc.context (freed)") ? 1 : out.rethrow()
        }
        let c = TallocContext(unsafePointer: body)
        var text = TextPieces(out)
        text.add("talloc.context '")
        text.addName(of: c)
        text.add(copying: "' (\(c.size) bytes) 0x\(String(UInt(bitPattern: body), radix: 16))".utf8)
        return text.returnText()
    }

    /// __gc: when the last userdata of a top-level context goes, the context is freed (unless the host
    /// lent it, or a destructor refused once already); a child is left to its parent.
    ///
    /// Its trampoline (ltc_gc_trampoline) settled every other case: this body runs only for the last
    /// handle of a live cell (given in `out.bytes`; the handle let go of it already), on an open state.
    static let gc: clua_Body = { L, out in
        guard let S = out.pointee.context?.assumingMemoryBound(to: ltc_State.self),
              let cell = UnsafeMutableRawPointer(mutating: out.pointee.bytes)?.assumingMemoryBound(to: ltc_Cell.self)
        else { return 0 }
        let f = Frame(module: L, S)
        // this userdata's count is given back at the end: the cell must outlive the free below
        defer {
            cell.pointee.uds -= 1
            Handles.release(S, cell)
        }
        guard cell.pointee.uds <= 1, let body = cell.pointee.body else { return 0 }
        let c = TallocContext(unsafePointer: body)
        let flags = cell.pointee.flags
        guard c.parent?.unsafePointer == S.pointee.root, flags & Int32(LTC_LENT | LTC_REFUSED) == 0, !c.isBeingFreed else {
            return 0
        }
        S.pointee.inGC += 1
        try? c.free()
        S.pointee.inGC -= 1
        if ModuleState.takeError(f) { clua_pop(L, 1) }
        if cell.pointee.body != nil {
            // refused (a destructor, or references): it stays until the state closes, and the collector
            // does not try again
            cell.pointee.flags |= Int32(LTC_REFUSED)
        }
        return 0
    }

    /// __close: frees like `free`; a refusal is not an error, a destructor's error is.
    static let close: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let cell = ltc_tocell_in(L, 1, f.meta), let body = cell.pointee.body else { return 0 }
        try? TallocContext(unsafePointer: body).free()
        if Refusal.destructorFailed(f, out) { return 0 }
        return 0
    }
}
