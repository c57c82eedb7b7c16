// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// Tracing (issue 15): each module function that changes a tree is registered through a wrapper here,
// which runs the function's body and then, when the calling thread has a trace writer
// (`TallocTraceWriter.current`, set by `luatalloc --trace`), writes the operation it performed. Without a
// writer on any thread a wrapper costs one relaxed atomic load.
//
// A wrapper reads what it needs before the body only with calls that cannot fail or raise (the cell of
// a handle, integers), and records only when the body succeeded (`out.kind == CLUA_RETURN`): a failed
// call changed nothing the trace could replay. Lua code may run inside a body (destructors, finalizers);
// what it does is recorded by the wrappers it goes through, before the operation that ran it, which is
// the order a replay needs (a destructor runs before its chunk's children are freed).

import CLua
import CLuaShims
import TallocCore

enum Traced {
    /// The context in the handle at index `i`, without raising and without writing to `out`.
    @inline(__always)
    static func peek(_ f: Frame, _ i: Int32) -> TallocContext? {
        guard lua_type(f.L, i) == LUA_TUSERDATA, let cell = ltc_tocell_in(f.L, i, f.meta), let body = cell.pointee.body
        else { return nil }
        return TallocContext(unsafePointer: body)
    }

    /// The number of the context at index `i`, or of the top level for nil/none, for the writer.
    static func peekID(_ w: TallocTraceWriter, _ f: Frame, _ i: Int32) -> Int? {
        if Lua.isNoneOrNil(f.L, i) { return 0 }
        guard let c = peek(f, i) else { return nil }
        return w.id(c, top: f.S.pointee.root)
    }

    @inline(__always)
    static func succeeded(_ out: Out) -> Bool { out.pointee.kind == Int32(CLUA_RETURN) }

    // MARK: Functions that make a context (the new handle at index 1)

    static func made(_ L: LuaState, _ out: Out, _ n: Int32, _ op: (TallocTraceWriter, Frame, TallocContext, Int, Int) -> TallocTrace.Operation) -> Int32 {
        guard let w = TallocTraceWriter.active, n == 1, succeeded(out) else { return n }
        let f = ModuleState.frame(L, out)
        guard let c = peek(f, 1) else { return n }
        let parent = w.id(c.parent, top: f.S.pointee.root)
        let id = w.assign(c.unsafePointer)
        w.write(op(w, f, c, id, parent))
        return n
    }

    static func madeChunk(_ L: LuaState, _ out: Out, _ n: Int32) -> Int32 {
        made(L, out, n) { _, _, c, id, parent in .new(id: id, parent: parent, size: c.size) }
    }

    static let new: clua_Body = { L, out in madeChunk(L, out, TallocModule.new(L, out)) }
    static let size: clua_Body = { L, out in madeChunk(L, out, TallocModule.size(L, out)) }
    static let zero: clua_Body = { L, out in madeChunk(L, out, TallocModule.zero(L, out)) }
    static let strdup: clua_Body = { L, out in madeChunk(L, out, TallocModule.strdup(L, out)) }
    static let strndup: clua_Body = { L, out in madeChunk(L, out, TallocModule.strndup(L, out)) }
    static let asprintf: clua_Body = { L, out in madeChunk(L, out, TallocModule.asprintf(L, out)) }
    static let memdup: clua_Body = { L, out in madeChunk(L, out, TallocModule.memdup(L, out)) }

    static let pool: clua_Body = { L, out in
        made(L, out, PoolStatistics.pool(L, out)) { _, f, c, id, parent in
            .pool(id: id, parent: parent, capacity: c.poolInfo?.capacity ?? 0, site: PoolStatistics.callerSite(f))
        }
    }

    static let pooledObject: clua_Body = { L, out in
        // the arguments are gone once the body returns (it leaves only the new handle): read them first
        var counts = (0, 0)
        if TallocTraceWriter.active != nil {
            counts = (Int(lua_tointegerx(L, 4, nil)), Int(lua_tointegerx(L, 5, nil)))
        }
        return made(L, out, PoolStatistics.pooledObject(L, out)) { _, f, c, id, parent in
            .pooledObject(id: id, parent: parent, size: c.size, count: counts.0, bytes: counts.1,
                          site: PoolStatistics.callerSite(f))
        }
    }

    // MARK: Functions that change a context (at index 1 unless said)

    /// Runs `body`; when it succeeded, records `op` with the number the context at `index` had before
    /// and the body's result count.
    static func changed(_ L: LuaState, _ out: Out, index: Int32 = 1, _ body: clua_Body,
                        _ op: (TallocTraceWriter, Frame, Int, TallocContext?, Int32) -> TallocTrace.Operation?) -> Int32 {
        guard let w = TallocTraceWriter.active else { return body(L, out) }
        let f = ModuleState.frame(L, out)
        let before = peek(f, index)
        let id = before.map { w.id($0, top: f.S.pointee.root) }
        let n = body(L, out)
        guard succeeded(out), let id, let op = op(w, f, id, before, n) else { return n }
        w.write(op)
        return n
    }

    /// After a realloc or an append: its size now, and its number follows it if it moved.
    static func resized(_ w: TallocTraceWriter, _ f: Frame, _ id: Int, _ before: TallocContext?, _ n: Int32) -> TallocTrace.Operation? {
        guard let now = peek(f, 1) else { return nil }
        if let before { w.moved(from: before.unsafePointer, to: now.unsafePointer) }
        return .realloc(id: id, size: now.size)
    }

    static let strdupAppend: clua_Body = { L, out in changed(L, out, TallocModule.strdupAppend, resized) }
    static let asprintfAppend: clua_Body = { L, out in changed(L, out, TallocModule.asprintfAppend, resized) }

    static let realloc: clua_Body = { L, out in
        guard let w = TallocTraceWriter.active else { return TallocModule.realloc(L, out) }
        let f = ModuleState.frame(L, out)
        guard lua_tointegerx(L, 2, nil) == 0, let c = peek(f, 1) else {
            return changed(L, out, TallocModule.realloc, resized)
        }
        if c.isBeingFreed && c.referenceCount == 0 { return TallocModule.realloc(L, out) }  // talloc does nothing (see free)
        // realloc(c, 0): talloc_realloc's unlink from the parent
        let id = w.id(c, top: f.S.pointee.root)
        let parent = w.id(c.parent, top: f.S.pointee.root)
        let count = w.refusals.count
        let n = TallocModule.realloc(L, out)
        if (succeeded(out) && n == 1 && lua_type(L, -1) == LUA_TNIL) || refusedItself(w, id, since: count) {
            w.write(.unlink(id: id, parent: parent))
        }
        return n
    }

    /// A function returning true when it did what the trace records.
    static func returnedTrue(_ L: LuaState, _ n: Int32) -> Bool { n >= 1 && lua_toboolean(L, -n) != 0 }

    /// Whether the destructor of `id` itself refused the free a body just attempted: the last `K`
    /// written since `count` is its (its destructor runs first, and nothing after it when it refuses).
    /// The operation is then written all the same, after its `K`: the replay refuses it too.
    static func refusedItself(_ w: TallocTraceWriter, _ id: Int, since count: Int) -> Bool {
        let r = w.refusals
        return r.count != count && r.last == id
    }

    /// Whether the handle at `i` (still on the stack after a body that raised) is of a freed context: a
    /// free that raised a descendant's destructor error after it freed (finding A1 of adv2).
    static func freedNow(_ f: Frame, _ i: Int32) -> Bool {
        guard lua_type(f.L, i) == LUA_TUSERDATA, let cell = ltc_tocell_in(f.L, i, f.meta) else { return false }
        return ltc_isdead(cell) != 0 || cell.pointee.body == nil
    }

    static let free: clua_Body = { L, out in
        guard let w = TallocTraceWriter.active else { return TallocModule.free(L, out) }
        let f = ModuleState.frame(L, out)
        // a context already being freed (a destructor its free runs frees it again): talloc's free does
        // nothing and succeeds; the free under way is written when it ends (finding A7 of adv2)
        guard let before = peek(f, 1), !before.isBeingFreed else { return TallocModule.free(L, out) }
        let id = w.id(before, top: f.S.pointee.root)
        let count = w.refusals.count
        let n = TallocModule.free(L, out)
        if refusedItself(w, id, since: count) {
            w.write(.free(id: id))
        } else if (succeeded(out) && returnedTrue(L, n)) || (!succeeded(out) && freedNow(f, 1)) {
            w.forget(before.unsafePointer)
            w.write(.free(id: id))
        }
        return n
    }

    static let freeChildren: clua_Body = { L, out in
        guard let w = TallocTraceWriter.active else { return TallocModule.freeChildren(L, out) }
        let f = ModuleState.frame(L, out)
        guard let before = peek(f, 1) else { return TallocModule.freeChildren(L, out) }
        let id = w.id(before, top: f.S.pointee.root)
        let n = TallocModule.freeChildren(L, out)
        // the children are freed (or moved, refusing) even when a destructor's error reaches the caller
        w.write(.freeChildren(id: id))
        return n
    }

    /// steal and reference: `body` puts the context of argument 2 under the parent of argument 1.
    static func underParent(_ L: LuaState, _ out: Out, _ body: clua_Body,
                            _ op: (_ id: Int, _ parent: Int) -> TallocTrace.Operation) -> Int32 {
        guard let w = TallocTraceWriter.active else { return body(L, out) }
        let f = ModuleState.frame(L, out)
        let parent = peekID(w, f, 1)
        return changed(L, out, index: 2, body) { _, _, id, _, _ in parent.map { op(id, $0) } }
    }

    static let steal: clua_Body = { L, out in
        underParent(L, out, TallocModule.steal) { .steal(id: $0, parent: $1) }
    }

    static let reparent: clua_Body = { L, out in
        guard let w = TallocTraceWriter.active else { return TallocModule.reparent(L, out) }
        let f = ModuleState.frame(L, out)
        let old = peekID(w, f, 1), new = peekID(w, f, 2)
        return changed(L, out, index: 3, TallocModule.reparent) { _, _, id, _, n in
            guard lua_type(L, -n) != LUA_TNIL, let old, let new else { return nil }  // nil, "not a parent"
            return .reparent(id: id, old: old, new: new)
        }
    }

    static let reference: clua_Body = { L, out in
        underParent(L, out, TallocModule.reference) { .reference(id: $0, parent: $1) }
    }

    static let unlink: clua_Body = { L, out in
        guard let w = TallocTraceWriter.active else { return TallocModule.unlink(L, out) }
        let f = ModuleState.frame(L, out)
        let parent = peekID(w, f, 1)
        let count = w.refusals.count
        // being freed and unreferenced: talloc's unlink frees it, which does nothing (see free)
        let beingFreed = peek(f, 2).map { $0.isBeingFreed && $0.referenceCount == 0 } ?? false
        return changed(L, out, index: 2, TallocModule.unlink) { _, _, id, _, n in
            guard !beingFreed, returnedTrue(L, n) || refusedItself(w, id, since: count), let parent else { return nil }
            return .unlink(id: id, parent: parent)
        }
    }

    static let setName: clua_Body = { L, out in
        changed(L, out, TallocModule.setName) { w, f, id, _, _ in
            // the new ".name" chunk is the one the context's name now points into
            guard let c = peek(f, 1), let s = c.unsafeNameParts.string, !c.unsafeNameParts.isLocation else { return nil }
            let child = TallocContext(unsafePointer: UnsafeMutableRawPointer(mutating: s))
            let childID = w.assign(child.unsafePointer)
            return .setName(id: id, length: max(0, child.size - 1), child: childID)
        }
    }

    static let setMemlimit: clua_Body = { L, out in
        let bytes = Int(lua_tointegerx(L, 2, nil))
        return changed(L, out, TallocModule.setMemlimit) { _, _, id, _, _ in .memlimit(id: id, bytes: bytes) }
    }

    // MARK: The collector and <close>

    /// __gc and __close, recorded as a free when they free (try to free) the context: __close always,
    /// __gc under the condition it frees under (the last userdata of a top-level context that is not
    /// lent, not refused before, not being freed). A Lua destructor that refused wrote its `K` first
    /// (ModuleState.destructor), so the replay's free refuses the same way.
    static func collected(_ L: LuaState, _ out: Out, _ body: clua_Body, always: Bool) -> Int32 {
        guard let w = TallocTraceWriter.active, let S = out.pointee.context?.assumingMemoryBound(to: ltc_State.self),
              S.pointee.closed == 0 else { return body(L, out) }
        let f = Frame(module: L, S)
        // __gc's trampoline took the cell out of the handle and passes it in out.bytes; __close's is in it
        let found = always ? ltc_tocell_in(L, 1, f.meta)
            : UnsafeMutableRawPointer(mutating: out.pointee.bytes)?.assumingMemoryBound(to: ltc_Cell.self)
        guard let cell = found, ltc_isdead(cell) == 0, let live = cell.pointee.body else {
            return body(L, out)
        }
        let c = TallocContext(unsafePointer: live)
        let frees = always || (cell.pointee.uds <= 1 && c.parent?.unsafePointer == S.pointee.root
                               && cell.pointee.flags & Int32(LTC_LENT | LTC_REFUSED) == 0 && !c.isBeingFreed)
        let id = frees ? w.id(c, top: S.pointee.root) : 0
        let count = w.refusals.count
        let n = body(L, out)
        guard frees else { return n }
        if refusedItself(w, id, since: count) {
            w.write(.free(id: id))  // refused: the context lives on, with its number
        } else if succeeded(out) || (always && freedNow(f, 1)) {
            w.forget(live)
            w.write(.free(id: id))
        }
        return n
    }

    static let gc: clua_Body = { L, out in collected(L, out, TallocModule.gc, always: false) }
    static let close: clua_Body = { L, out in collected(L, out, TallocModule.close, always: true) }
}
