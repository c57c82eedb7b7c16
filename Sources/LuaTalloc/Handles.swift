// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// Handles: the userdata of a chunk, and how Lua's garbage collector and talloc share ownership
// (DESIGN §3 "Handles, ownership and the garbage collector").
//
// - A chunk Lua has seen has a *cell* (ltc_Cell, outside Lua's heap), reached from the chunk through its
//   TallocCore observer (data = the cell, tag = the state: one state per chunk) and from each userdata
//   through its payload. The cell lives as long as the chunk or any userdata, whichever is longer, so a
//   userdata never reaches freed memory: the chunk's free empties the cell first.
// - `handles[slot]` (weak values) is the chunk's current userdata: identity is one array lookup. A chunk
//   keeps its slot (and `extra[slot]`, its Lua destructor) as long as its cell lives.
// - A handle's user value 1 is the handle of the nearest ancestor that has one: a child's handle keeps
//   its ancestors' handles — and so the top-level context — alive. TallocCore tells us when a chunk's
//   parent changes (steal, reparent, re-homing during a free), and the link follows.
// - Only the last userdata of a top-level context frees it when collected; a child belongs to its parent.
// - What Lua may see: the subtree of the state's root (its top level), and the subtrees of every chunk
//   that has a cell (what Lua was given or reached). A cell whose chunk's parent is outside that world is
//   marked LTC_HIDDEN: `parent` is nil there and walks up stop there. No path hands Lua the root, the
//   runtime's own contexts, or the ancestors of a context the host lent.

import CLua
import CLuaShims
import Glibc
import TallocCore

enum Handles {
    /// The side record a cell makes a chunk carry (charged to the account when the cell made it).
    static let sideRecordCost = ModuleState.footprint(TallocContext.sideRecordByteCount)

    // MARK: Cells

    /// The cell of `c` in state `S`, if Lua has seen it.
    @inline(__always)
    static func cell(of c: TallocContext, _ S: StatePtr) -> Cell? {
        guard c.observerTag == Int(bitPattern: S) else { return nil }
        return c.unsafeObserverData?.assumingMemoryBound(to: ltc_Cell.self)
    }

    /// The cell of `c`, made if needed (no Lua allocation happens here: no collection can run). Nil when
    /// memory runs out or when `c` belongs to another state.
    static func makeCell(_ S: StatePtr, _ c: TallocContext, lent: Bool = false) -> Cell? {
        if let cell = cell(of: c, S) { return cell }
        guard let cell = ltc_newcell(S) else { return nil }
        if !attach(S, c, cell) {
            ltc_freecell(S, cell)
            return nil
        }
        if lent { cell.pointee.flags |= Int32(LTC_LENT) }
        updateHidden(S, c, cell)
        return cell
    }

    /// Makes `cell` (new, or made by a creating trampoline) the cell of the new or unseen chunk `c`.
    /// False when memory runs out or `c` has another observer (another state's, or the host's).
    static func attach(_ S: StatePtr, _ c: TallocContext, _ cell: Cell) -> Bool {
        if c.observerTag != nil { return false }
        let hadSide = c.hasSideRecord
        if !hadSide && !ModuleState.charge(S, sideRecordCost) { return false }
        if !c.unsafeSetObserver(observer, context: UnsafeMutableRawPointer(S), tag: Int(bitPattern: S),
                                data: UnsafeMutableRawPointer(cell)) {
            if !hadSide { _ = ModuleState.charge(S, -sideRecordCost) }
            return false
        }
        if !hadSide {
            cell.pointee.flags |= Int32(LTC_SIDEREC)
            cell.pointee.charged = UInt32(sideRecordCost)
        }
        cell.pointee.flags |= Int32(LTC_ATTACHED)
        cell.pointee.body = c.unsafePointer
        return true
    }

    /// Frees `cell` if nothing points at it any more.
    @inline(__always)
    static func release(_ S: StatePtr, _ cell: Cell) {
        if cell.pointee.uds <= 0 && cell.pointee.flags & Int32(LTC_ATTACHED) == 0 { ltc_freecell(S, cell) }
    }

    // MARK: Arguments

    /// The context in argument `i` and its cell: a live handle, or a Lua error written to `out`.
    @inline(__always)
    static func resolve(_ f: Frame, _ out: Out, _ i: Int32, arg: Int32? = nil) -> (TallocContext, Cell)? {
        guard let cell = ltc_tocell_in(f.L, i, f.meta) else {
            _ = Lua.typeError(f.L, out, i, "talloc.context", arg: arg)
            return nil
        }
        guard let body = cell.pointee.body else {
            _ = freedError(f.L, out, cell)
            return nil
        }
        return (TallocContext(unsafePointer: body), cell)
    }

    /// The context in argument `i`: a live handle, or a Lua error written to `out`.
    @inline(__always)
    static func context(_ f: Frame, _ out: Out, _ i: Int32, arg: Int32? = nil) -> TallocContext? {
        resolve(f, out, i, arg: arg)?.0
    }

    /// An optional parent: nil or none is the state's root (Lua's "top level").
    @inline(__always)
    static func parent(_ f: Frame, _ out: Out, _ i: Int32, arg: Int32? = nil) -> TallocContext? {
        if Lua.isNoneOrNil(f.L, i) { return TallocContext(unsafePointer: f.S.pointee.root) }
        return context(f, out, i, arg: arg)
    }

    /// "attempt to use a freed talloc context ('NAME')", with the name the context had (in place: a name
    /// is any size), or "(unnamed)".
    static func freedError(_ L: LuaState, _ out: Out, _ cell: Cell) -> Int32 {
        var text = TextPieces(out)
        text.add("attempt to use a freed talloc context (")
        if let n = cell.pointee.name {
            let location = cell.pointee.flags & Int32(LTC_LOCATION) != 0
            text.add(location && cell.pointee.flags & Int32(LTC_NEWPREFIX) != 0 ? "'talloc_new: " : "'")
            text.add(ModuleState.text(n), n.pointee.len, volatile: true)
            if location { text.add(copying: ":\(cell.pointee.line)')".utf8) } else { text.add("')") }
        } else {
            text.add("unnamed)")
        }
        return text.raise()
    }

    // MARK: Pushing handles

    /// Pushes the live userdata of `cell`, if it has one (no allocation). Returns false otherwise.
    @inline(__always)
    static func pushExisting(_ f: Frame, _ cell: Cell) -> Bool {
        if lua_rawgeti(f.L, f.handles, lua_Integer(cell.pointee.slot)) == LUA_TUSERDATA, ltc_cellat(f.L, -1) == cell {
            return true
        }
        clua_pop(f.L, 1)
        return false
    }

    /// Pushes the handle of `c` (the same userdata every time while it lives), making one if needed.
    /// `cell` is `c`'s cell if the caller has it. Returns false with the error object on the top.
    ///
    /// Making a userdata allocates, so a collection may run finalizers and destructors meanwhile: the
    /// caller must re-read every context it holds from its cell afterwards (the pushed handle may read as
    /// freed by then, which is what it then is).
    static func push(_ f: Frame, _ c: TallocContext, _ known: Cell? = nil) -> Bool {
        guard let cell = known ?? makeCell(f.S, c) else {
            ltc_requestcollect(f.S)
            return fail(f.L, TallocError.outOfMemory.luaMessage())
        }
        return push(f, cell: cell)
    }

    static func push(_ f: Frame, cell: Cell) -> Bool {
        if pushExisting(f, cell) { return true }
        cell.pointee.uds += 1  // the cell must outlive the allocation below, whatever a finalizer frees
        let st = ltc_pushhandle(f.L, cell, f.tables)
        cell.pointee.uds -= 1
        if st != LUA_OK {
            release(f.S, cell)
            return false
        }
        if let body = cell.pointee.body { linkParent(f, -1, TallocContext(unsafePointer: body), cell) }
        return true
    }

    /// Pushes the handle of `c`, or nil for none. Returns 1 (the result count) or raises through `out`.
    static func pushOrNil(_ f: Frame, _ out: Out, _ c: TallocContext?) -> Int32 {
        guard let c else { lua_pushnil(f.L); return 1 }
        return push(f, c) ? 1 : out.rethrow()
    }

    static func fail(_ L: LuaState, _ message: String) -> Bool {
        _ = Lua.push(L, message)
        return false
    }

    /// Sets user value 1 of the handle at `idx` to the handle of the nearest ancestor that has one.
    static func linkParent(_ f: Frame, _ idx: Int32, _ c: TallocContext, _ cell: Cell) {
        let ud = lua_absindex(f.L, idx)
        if cell.pointee.flags & Int32(LTC_HIDDEN) == 0 {
            let root = f.S.pointee.root
            var p = c.parent
            var steps = 0
            defer { ModuleState.noteWork(f.S, steps) }  // (a long walk where no ancestor has a handle: F9)
            while let x = p, x.unsafePointer != root {
                steps &+= 1
                if let xc = Handles.cell(of: x, f.S) {
                    if pushExisting(f, xc) {
                        lua_setiuservalue(f.L, ud, 1)
                        return
                    }
                    if xc.pointee.flags & Int32(LTC_HIDDEN) != 0 { break }
                }
                p = x.parent
            }
        }
        lua_pushnil(f.L)
        lua_setiuservalue(f.L, ud, 1)
    }

    /// Runs `move` (a steal or reparent of the context whose handle is at stack index `handle`, under the
    /// context whose handle is at `to`, or nil for the top level) and relinks that handle itself: the new
    /// parent's handle is right there, and it is visible. The observer skips the cell meanwhile. When the
    /// context has another userdata (one awaiting finalization) the observer does the general work instead.
    ///
    /// A reparent that moves a reference instead (the old parent was a referrer) leaves the parent as it
    /// was, and so the link: it is relinked only when `c`'s parent is now `newParent`.
    static func moving(_ f: Frame, handle: Int32, _ c: TallocContext, _ cell: Cell, to: Int32, _ newParent: TallocContext,
                       _ move: () throws(TallocError) -> Void) throws(TallocError) {
        guard cell.pointee.uds == 1 else { return try move() }
        f.S.pointee.quiet = cell
        defer { f.S.pointee.quiet = nil }
        try move()
        guard c.parent == newParent else { return }
        cell.pointee.flags &= ~Int32(LTC_HIDDEN)
        if Lua.isNoneOrNil(f.L, to) { lua_pushnil(f.L) } else { lua_pushvalue(f.L, to) }
        lua_setiuservalue(f.L, handle, 1)
    }

    // MARK: What Lua may see

    /// Whether `c` lies in Lua's world: under the state's root, or in the subtree of a chunk Lua has seen.
    /// Walks up to the first such chunk (usually `c` itself or its parent).
    static func isVisible(_ S: StatePtr, _ c: TallocContext) -> Bool {
        let root = S.pointee.root
        var x: TallocContext? = c
        var steps = 0
        defer { ModuleState.noteWork(S, steps) }
        while let y = x {
            steps &+= 1
            if y.unsafePointer == root { return false }  // the root itself is never Lua's to hold
            if cell(of: y, S) != nil { return true }
            guard let p = y.parent else { return false }
            if p.unsafePointer == root { return true }
            x = p
        }
        return false
    }

    /// Recomputes LTC_HIDDEN: set when `c`'s parent is outside Lua's world.
    static func updateHidden(_ S: StatePtr, _ c: TallocContext, _ cell: Cell) {
        let hidden: Bool
        if let p = c.parent {
            hidden = p.unsafePointer != S.pointee.root && !isVisible(S, p)
        } else {
            hidden = true
        }
        if hidden { cell.pointee.flags |= Int32(LTC_HIDDEN) } else { cell.pointee.flags &= ~Int32(LTC_HIDDEN) }
    }

    /// The parent Lua sees: nil at the top level, and above a context whose parent is not Lua's.
    static func visibleParent(_ S: StatePtr, _ c: TallocContext, _ cell: Cell?) -> TallocContext? {
        guard let p = c.parent, p.unsafePointer != S.pointee.root else { return nil }
        if let cell {
            if cell.pointee.flags & Int32(LTC_HIDDEN) != 0 { return nil }
            return p
        }
        return isVisible(S, p) ? p : nil
    }

    // MARK: Lending

    /// Pushes the handle of a context the host lends to Lua: its cell is marked lent (the collector
    /// never frees it; its ancestors stay hidden). Returns the cell, or nil with the error object pushed.
    static func lend(_ f: Frame, _ c: TallocContext) -> Cell? {
        guard let cell = makeCell(f.S, c, lent: true) else {
            _ = fail(f.L, c.observerTag != nil && cell(of: c, f.S) == nil
                     ? "the context is already lent to another Lua state" : TallocError.outOfMemory.luaMessage())
            return nil
        }
        cell.pointee.flags |= Int32(LTC_LENT)
        return push(f, cell: cell) ? cell : nil
    }

    // MARK: The observer

    /// TallocCore's observer of every chunk that has a cell; `data` is the cell, `context` the state.
    static let observer: TallocUnsafeObserver = { body, event, _, context, data in
        let S = context!.assumingMemoryBound(to: ltc_State.self)
        guard let cell = data?.assumingMemoryBound(to: ltc_Cell.self) else { return }
        switch TallocObserverEvent(rawValue: event) {
        case .freeing?:  // its free has begun: remember its name for "attempt to use a freed talloc context"
            saveName(S, cell, TallocContext(unsafePointer: body))
        case .freed?:  // the cell is emptied, its destructor forgotten, its side record's charge returned
            if cell.pointee.flags & Int32(LTC_SAVED) == 0 {
                // no "free has begun" first (a chunk freed without the full protocol): its name may point
                // into a child freed already, so only a counted name is kept
                saveName(S, cell, TallocContext(unsafePointer: body), countedOnly: true)
            }
            cell.pointee.body = nil
            cell.pointee.flags &= ~Int32(LTC_ATTACHED)
            if S.pointee.closed == 0 {
                if cell.pointee.charged > 0 {
                    _ = ModuleState.charge(S, -Int(cell.pointee.charged))
                    cell.pointee.charged = 0
                }
                if cell.pointee.flags & Int32(LTC_LUADTOR) != 0 {  // its Lua destructor goes
                    cell.pointee.flags &= ~Int32(LTC_LUADTOR)
                    _ = Frame.callback(S) { f in ltc_clearslot(f.L, f.extra, lua_Integer(cell.pointee.slot)) }
                }
            }
            release(S, cell)
        case .moved?:  // by a realloc
            if cell.pointee.body != nil { cell.pointee.body = body }
        case .reparented?:  // what Lua may see of it, and the parent link, follow
            guard S.pointee.closed == 0, cell != S.pointee.quiet else { return }
            let c = TallocContext(unsafePointer: body)
            if c.parent == nil && rehome(S, c, cell) { return }  // its move to the root told the rest
            updateHidden(S, c, cell)
            if cell.pointee.uds > 0 {
                _ = Frame.callback(S) { f in
                    if pushExisting(f, cell) { linkParent(f, -1, c, cell) }
                }
            }
        case nil:  // not an event TallocCore sends
            break
        }
    }

    /// A chunk of Lua's that a free sent to the *true* top level goes to Lua's top level, the state's root
    /// (finding F10). talloc sends a child whose destructor refuses to the parent of the chunk being freed,
    /// and to the top level when that parent is gone (a destructor freed it meanwhile, §8.6); outside the
    /// state's root it would escape the runtime's memory limit, the collector and the close. Only during
    /// what Lua runs — a module function, a finalizer, the close — and never for a lent context: a host
    /// function may move contexts of its own tree to the top level. True when it moved.
    static func rehome(_ S: StatePtr, _ c: TallocContext, _ cell: Cell) -> Bool {
        guard cell.pointee.flags & Int32(LTC_LENT) == 0,
              S.pointee.closing != 0 || (S.pointee.inbody > 0 && S.pointee.hostbody == 0) else { return false }
        let root = TallocContext(unsafePointer: S.pointee.root)
        guard (try? c.steal(to: root)) != nil else { return false }
        return c.parent == root
    }

    /// How many bytes of a name a freed context keeps for its messages.
    static let savedNameBytes = 23

    /// Keeps what the name was, for the message of a later use: the interned name the cell counts, if the
    /// chunk is still named by it (the cell keeps it until it goes), or else the name's first bytes,
    /// interned (nothing when memory ran out: "unnamed"). With `countedOnly` (the chunk's name may point
    /// into a child freed already) only the counted name.
    static func saveName(_ S: StatePtr, _ cell: Cell, _ c: TallocContext, countedOnly: Bool = false) {
        if cell.pointee.body == nil || cell.pointee.flags & Int32(LTC_SAVED) != 0 { return }  // already saved
        cell.pointee.flags |= Int32(LTC_SAVED)
        let parts = c.unsafeNameParts
        if let n = cell.pointee.name, UnsafeRawPointer(parts.string) == UnsafeRawPointer(ModuleState.text(n)) {
            return  // named by the counted name (a location's line and prefix are in the cell already)
        }
        var saved: UnsafeMutablePointer<ltc_Name>? = nil
        if !countedOnly {
            if !parts.isLocation, let s = parts.string {
                saved = ltc_internbytes(S, s, strnlen(s, savedNameBytes))
            } else {
                let bytes = Array(Names.bytes(c).prefix(savedNameBytes)) + [0]
                saved = bytes.withUnsafeBytes { b in
                    ltc_internbytes(S, b.baseAddress!.assumingMemoryBound(to: CChar.self), b.count - 1)
                }
            }
        }
        ModuleState.setCellName(S, cell, saved)
    }
}
