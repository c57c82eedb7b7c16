// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// Handles: the one userdata of a chunk, and how Lua's garbage collector and talloc share ownership
// (DESIGN §3 "Handles, ownership and the garbage collector").
//
// - A chunk seen by Lua gets a *slot* (an integer key, luaL_ref-allocated) kept in its side record as the
//   TallocCore observer tag. `handles[slot]` (weak values) is its userdata: identity is one array lookup.
// - A handle's user value 1 is its parent's handle (the nearest ancestor that has one): a child's handle
//   keeps its ancestors' handles — and so the top-level context — alive. TallocCore tells us when a
//   chunk's parent changes (steal, reparent, re-homing during a free), and the link follows.
// - Only a top-level handle's __gc frees its context; a child belongs to its parent.
// - When a chunk is freed, TallocCore tells us first: the handle is emptied (body NULL), so using it is a
//   Lua error ("attempt to use a freed talloc context"), never a dangling pointer — even if a new chunk
//   later takes the same address.
// - A Lua destructor lives in `extra[slot]`; a chunk with one keeps its slot after its handle is
//   collected, so the destructor still runs when the chunk is freed.

import CLua
import CLuaShims
import Glibc
import TallocCore

typealias Box = UnsafeMutablePointer<ltc_Box>

enum Handles {
    /// The context in argument `i`: a live handle, or a Lua error written to `out` (wrong type, freed).
    @inline(__always)
    static func context(_ L: LuaState, _ out: Out, _ i: Int32, arg: Int32? = nil) -> TallocContext? {
        guard let b = ltc_tobox(L, i) else {
            _ = Lua.typeError(L, out, i, "talloc.context", arg: arg)
            return nil
        }
        guard let body = b.pointee.body else {
            _ = out.error("attempt to use a freed talloc context (\(freedName(b)))")
            return nil
        }
        return TallocContext(unsafePointer: body)
    }

    /// An optional parent: nil or none is the state's root (Lua's "top level").
    @inline(__always)
    static func parent(_ L: LuaState, _ out: Out, _ i: Int32, _ S: UnsafeMutablePointer<ltc_State>, arg: Int32? = nil) -> TallocContext?? {
        if Lua.isNoneOrNil(L, i) { return .some(TallocContext(unsafePointer: S.pointee.root)) }
        guard let c = context(L, out, i, arg: arg) else { return nil }
        return .some(c)
    }

    static func freedName(_ b: Box) -> String {
        if let f = b.pointee.freedFile {
            let loc = String(cString: f) + ":" + String(b.pointee.freedLine)
            return "'" + (b.pointee.freedNewPrefix != 0 ? "talloc_new: " + loc : loc) + "'"
        }
        let name = withUnsafeBytes(of: b.pointee.freedName) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return name.isEmpty ? "unnamed" : "'" + name + "'"
    }

    /// Fills a new handle (on the stack at `idx`, made by the trampoline or ltc_pushhandle) with `c`.
    ///
    /// Invariant: the chunk's observer data is the box of its current handle (or nil), and a box whose
    /// `body` is set is the current handle of that chunk. The observer reaches the box through that
    /// pointer, not through the weak `handles` table: a handle waiting for its finalizer has already
    /// left the weak table, yet must still learn that its chunk was freed.
    static func attach(_ L: LuaState, _ S: UnsafeMutablePointer<ltc_State>, _ idx: Int32, _ c: TallocContext) {
        let b = ltc_cellat(L, idx)!
        b.pointee.body = c.unsafePointer
        if let old = c.unsafeObserverData?.assumingMemoryBound(to: ltc_Box.self), old != b {
            // An older handle, unreachable and waiting for its finalizer: it no longer speaks for the chunk,
            // which lets go of its cell.
            old.pointee.body = nil
            old.pointee.slot = 0
            c.unsafeObserverData = nil
            ltc_unref(old)
        }
        let newSlot = Int(b.pointee.slot)
        if let old = c.observerTag, old != newSlot {
            // The chunk kept its slot (it has a destructor) while it had no handle: move the handle to
            // that slot, so the destructor stays found.
            if moveHandle(L, idx, from: newSlot, to: old) { b.pointee.slot = lua_Integer(old) }
        }
        let had = c.unsafeObserverData != nil
        if !c.unsafeSetObserver(observer, context: UnsafeMutableRawPointer(S), tag: Int(b.pointee.slot),
                                data: UnsafeMutableRawPointer(b)) {
            // No memory for the side record: the handle could not learn of the free. Keep it empty.
            b.pointee.body = nil
            return
        }
        if !had { b.pointee.refs += 1 }  // the chunk's
        linkParent(L, idx, c, S)
    }

    private static func moveHandle(_ L: LuaState, _ idx: Int32, from: Int, to: Int) -> Bool {
        let ud = lua_absindex(L, idx)
        lua_pushinteger(L, lua_Integer(to))
        lua_pushvalue(L, ud)
        if ltc_rawset(L, ltc_upvalue(LTC_UPV_HANDLES)) != LUA_OK {
            clua_pop(L, 1)
            return false
        }
        ltc_clearslot(L, ltc_upvalue(LTC_UPV_HANDLES), lua_Integer(from))
        ltc_releaseslot(L, lua_Integer(from))
        return true
    }

    /// Pushes the live handle of `c`, if it has one (no allocation). Returns false otherwise.
    @inline(__always)
    static func pushExisting(_ L: LuaState, _ c: TallocContext, _ S: UnsafeMutablePointer<ltc_State>) -> Bool {
        guard let tag = c.observerTag else { return false }
        return pushExisting(L, slot: tag, body: c.unsafePointer)
    }

    @inline(__always)
    static func pushExisting(_ L: LuaState, slot: Int, body: UnsafeMutableRawPointer) -> Bool {
        lua_rawgeti(L, ltc_upvalue(LTC_UPV_HANDLES), lua_Integer(slot))
        if lua_type(L, -1) == LUA_TUSERDATA, let b = ltc_cellat(L, -1), b.pointee.body == body {
            return true
        }
        clua_pop(L, 1)
        return false
    }

    /// Pushes the handle of `c` (the same userdata every time while it lives), making one if needed.
    /// Returns false with the error object on the top when making one failed.
    static func push(_ L: LuaState, _ c: TallocContext, _ S: UnsafeMutablePointer<ltc_State>) -> Bool {
        if pushExisting(L, c, S) { return true }
        if ltc_pushhandle(L, c.unsafePointer) != LUA_OK { return false }
        attach(L, S, -1, c)
        return true
    }

    /// The Lua-visible parent: nil for the state's root (Lua's top level).
    static func visibleParent(_ c: TallocContext, _ S: UnsafeMutablePointer<ltc_State>) -> TallocContext? {
        guard let p = c.parent, p.unsafePointer != S.pointee.root else { return nil }
        return p
    }

    /// Sets user value 1 of the handle at `idx` to the handle of the nearest ancestor that has one.
    static func linkParent(_ L: LuaState, _ idx: Int32, _ c: TallocContext, _ S: UnsafeMutablePointer<ltc_State>) {
        let ud = lua_absindex(L, idx)
        var p = visibleParent(c, S)
        var steps = 0
        while let x = p, steps < 100_000 {
            if !x.isValid { break }
            if pushExisting(L, x, S) {
                lua_setiuservalue(L, ud, 1)
                return
            }
            p = visibleParent(x, S)
            steps += 1
        }
        lua_pushnil(L)
        lua_setiuservalue(L, ud, 1)
    }

    /// TallocCore's observer for chunks that have a slot; `data` is the box of the chunk's handle.
    static let observer: TallocUnsafeObserver = { body, event, tag, context, data in
        let S = context!.assumingMemoryBound(to: ltc_State.self)
        let b = data?.assumingMemoryBound(to: ltc_Box.self)
        switch event {
        case 3:  // its free has begun: remember its name for "attempt to use a freed talloc context"
            if let b, b.pointee.body == body { saveName(b, TallocContext(unsafePointer: body)) }
        case 0:  // freed: empty the handle (the chunk lets go of its cell), forget the destructor, give the slot back
            if let b {
                if b.pointee.body == body {
                    b.pointee.body = nil
                    b.pointee.slot = 0
                }
                ltc_unref(b)
            }
            guard S.pointee.closed == 0, let L = S.pointee.currentL else { return }
            ltc_clearslot(L, ltc_upvalue(LTC_UPV_HANDLES), lua_Integer(tag))
            ltc_clearslot(L, ltc_upvalue(LTC_UPV_EXTRA), lua_Integer(tag))
            ltc_releaseslot(L, lua_Integer(tag))
        case 1:  // moved by a realloc
            if let b, b.pointee.body != nil { b.pointee.body = body }
        case 2:  // a new parent: the parent link follows
            guard S.pointee.closed == 0, let L = S.pointee.currentL else { return }
            if pushExisting(L, slot: tag, body: body) {
                linkParent(L, -1, TallocContext(unsafePointer: body), S)
                clua_pop(L, 1)
            }
        default:
            break
        }
    }

    /// Keeps what the name was, for the message of a later use ("attempt to use a freed talloc context
    /// ('NAME')"): the parts of a location name (interned, permanent), or the first bytes of any other.
    static func saveName(_ b: Box, _ c: TallocContext) {
        if b.pointee.freedFile != nil || b.pointee.freedName.0 != 0 { return }
        let parts = c.unsafeNameParts
        if parts.isLocation, let file = parts.string {
            b.pointee.freedFile = file
            b.pointee.freedLine = Int32(truncatingIfNeeded: parts.line)
            b.pointee.freedNewPrefix = parts.talloc_new ? 1 : 0
            return
        }
        withUnsafeMutableBytes(of: &b.pointee.freedName) { buf in
            guard let src = parts.string else {
                for (i, ch) in "UNNAMED".utf8.enumerated() { buf[i] = ch }
                buf[7] = 0
                return
            }
            let n = strnlen(src, buf.count - 1)
            memcpy(buf.baseAddress!, src, n)
            buf[n] = 0
        }
    }
}
