// luatalloc — the `talloc` Lua module: free, steal, reparent, and walking the tree
// SPDX-License-Identifier: MIT
//
// See TallocModule.swift for the rules every body follows.

import CLua
import CLuaShims
import Glibc
import TallocCore

extension TallocModule {
    // MARK: - Free

    static let free: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let c = Handles.context(f, out, 1) else { return 0 }
        do throws(TallocError) {
            try c.free()
        } catch {
            // references are checked before any destructor runs: c is alive when they refuse
            return Refusal.push(f, out, error, error == .hasReferences ? c : nil)
        }
        if Refusal.destructorFailed(f, out) { return 0 }
        lua_pushboolean(L, 1)
        return 1
    }

    static let freeChildren: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let c = Handles.context(f, out, 1) else { return 0 }
        c.freeChildren()
        if Refusal.destructorFailed(f, out) { return 0 }
        return 0
    }

    // MARK: - Ownership

    static let steal: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let parent = Handles.parent(f, out, 1), let (c, cell) = Handles.resolve(f, out, 2) else { return 0 }
        do throws(TallocError) {
            try Handles.moving(f, handle: 2, c, cell, to: 1, parent) { () throws(TallocError) in try c.steal(to: parent) }
        } catch { return out.fail(f.S, error) }
        lua_pushvalue(L, 2)
        return 1
    }

    static let reparent: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let old = Handles.parent(f, out, 1), let new = Handles.parent(f, out, 2),
              let (c, cell) = Handles.resolve(f, out, 3) else { return 0 }
        do throws(TallocError) {
            try Handles.moving(f, handle: 3, c, cell, to: 2, new) { () throws(TallocError) in try c.reparent(from: old, to: new) }
        } catch .notAParent {
            return Refusal.push(f, out, .notAParent, lead: .nil)
        } catch { return out.fail(f.S, error) }
        lua_settop(L, 3)
        return 1
    }

    // MARK: - Tree queries

    static let parent: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let (c, cell) = Handles.resolve(f, out, 1) else { return 0 }
        return Handles.pushOrNil(f, out, Handles.visibleParent(f.S, c, cell))
    }

    static let parentName: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let (c, cell) = Handles.resolve(f, out, 1) else { return 0 }
        guard let p = Handles.visibleParent(f.S, c, cell) else { lua_pushnil(L); return 1 }
        var text = TextPieces(out)
        text.addName(of: p)
        return text.returnText()
    }

    /// The children a Lua user sees: not reference handles (TallocCore skips them), not the ".name"
    /// chunk holding the parent's current name (found by address: O(1) per step).
    @inline(__always)
    static func visibleChild(_ start: TallocContext?, of parent: TallocContext) -> TallocContext? {
        var c = start
        while let x = c, Names.isNameChild(x, of: parent) { c = x.nextSibling }
        return c
    }

    /// children(c): checks c; its trampoline then returns the iterator (a closure over c, see below).
    static let children: clua_Body = { L, out in
        guard Handles.context(ModuleState.frame(L, out), out, 1) != nil else { return 0 }
        return 0
    }

    /// The iterator children() returns: each call gives the next child, newest first, O(1) a step, then
    /// nil for good. It ignores its arguments (a generic for passes some) and keeps its state in its own
    /// upvalues: the parent's handle and the child it returned last (nil before the first, false after
    /// the last), as string.gmatch does.
    static let nextChild: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        let prevAt = ltc_upvalue(LTC_UPV_ITERPREV)
        let state = lua_type(L, prevAt)
        if state == LUA_TBOOLEAN { lua_pushnil(L); return 1 }  // ran out already
        // both upvalues are handles children() and this function put there: no type check needed
        let pc = ltc_cellat(L, ltc_upvalue(LTC_UPV_ITERPARENT))
        guard let pb = pc.pointee.body else { return Handles.freedError(L, out, pc) }
        let p = TallocContext(unsafePointer: pb)
        let next: TallocContext?
        if state == LUA_TNIL {
            next = visibleChild(p.firstChild, of: p)
        } else {
            let prevCell = ltc_cellat(L, prevAt)
            guard let b = prevCell.pointee.body else { return Handles.freedError(L, out, prevCell) }
            let prev = TallocContext(unsafePointer: b)
            if prev.parent != p { return out.error("children changed while iterating (the previous child moved)") }
            next = visibleChild(prev.nextSibling, of: p)
        }
        guard let next else {
            lua_pushboolean(L, 0)
            lua_copy(L, -1, prevAt)
            lua_pushnil(L)
            return 1
        }
        guard Handles.push(f, next) else { return out.rethrow() }
        lua_copy(L, -1, prevAt)  // the handle stays on the top: the result
        return 1
    }

    static let isParent: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let c = Handles.context(f, out, 1), let p = Handles.context(f, out, 2) else { return 0 }
        lua_pushboolean(L, c.isParent(p) ? 1 : 0)
        return 1
    }

    /// find_parent_byname(c, name): c itself or its nearest ancestor so named, within what Lua may see.
    static let findParentByName: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let s = Lua.bytes(L, out, 2) else { return 0 }
        guard let c = Handles.context(f, out, 1) else { return 0 }
        let root = f.S.pointee.root
        var x = c
        var steps = 0
        defer { ModuleState.noteWork(f.S, steps) }  // charged after the body (F9)
        while true {
            steps &+= 1
            if Names.equals(x, s) { return Handles.push(f, x) ? 1 : out.rethrow() }
            if let xc = Handles.cell(of: x, f.S), xc.pointee.flags & Int32(LTC_HIDDEN) != 0 { break }
            guard let p = x.parent, p.unsafePointer != root else { break }
            x = p
        }
        lua_pushnil(L)
        return 1
    }
}
