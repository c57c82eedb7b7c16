// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// Per-state services of the module: the frame every body and callback works in, accounting of the
// module's own memory, default names from the Lua caller's position, Lua destructors run under
// lua_pcall, and closing (everything the state created is freed, refusals overridden).

import CLua
import CLuaShims
import Glibc
import TallocCore

typealias StatePtr = UnsafeMutablePointer<ltc_State>
typealias Cell = UnsafeMutablePointer<ltc_Cell>

/// Where the module's tables are for the code running now: the upvalues of a module function, or three
/// stack slots a callback pushed from the registry (ltc_pushtables). Every helper that touches the
/// tables takes one, so none depends on which C function happens to be running.
struct Frame {
    let L: LuaState
    let S: StatePtr
    let meta: Int32
    let handles: Int32
    let extra: Int32
    /// For the C helpers: 0 inside a module function (its upvalues), else the index of `meta`.
    let tables: Int32

    /// Inside a module function (or a bound host function, which shares the upvalues).
    @inline(__always)
    init(module L: LuaState, _ S: StatePtr) {
        self.L = L
        self.S = S
        meta = ltc_upvalue(LTC_UPV_META)
        handles = ltc_upvalue(LTC_UPV_HANDLES)
        extra = ltc_upvalue(LTC_UPV_EXTRA)
        tables = 0
    }

    private init(L: LuaState, S: StatePtr, base: Int32) {
        self.L = L
        self.S = S
        meta = base
        handles = base + 1
        extra = base + 2
        tables = base
    }

    /// Runs `body` in a frame for a callback (observer, destructor, close): on the thread running now
    /// (the innermost module call's, else the main thread, which is then idle). Inside a module call the
    /// frame is that call's own: TallocCore calls back synchronously from the body, whose C function (a
    /// module function, sharing the upvalues) is the running one on that thread. Outside any (the state
    /// closing) the tables are pushed from the registry. Nil when the stack cannot grow.
    ///
    /// The registry is reachable from Lua through `debug.getregistry()`; tables a script replaced there
    /// are not used (the callback does nothing).
    static func callback<R>(_ S: StatePtr, _ body: (Frame) -> R) -> R? {
        let L = ltc_thread(S)
        guard lua_checkstack(L, 12) != 0 else { return nil }
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        if S.pointee.inbody > 0 { return body(Frame(module: L, S)) }
        ltc_pushtables(L, S)
        guard lua_type(L, base + 1) == LUA_TTABLE, lua_type(L, base + 2) == LUA_TTABLE,
              lua_type(L, base + 3) == LUA_TTABLE else { return nil }
        return body(Frame(L: L, S: S, base: base + 1))
    }
}

enum ModuleState {
    /// The state of the running module function (its trampoline put it in the outcome).
    @inline(__always)
    static func state(_ out: Out) -> StatePtr {
        out.pointee.context!.assumingMemoryBound(to: ltc_State.self)
    }

    /// The frame of the running module function.
    @inline(__always)
    static func frame(_ L: LuaState, _ out: Out) -> Frame { Frame(module: L, state(out)) }

    // MARK: Accounting

    /// Charges (or gives back) bytes of the module's own memory to the state's account: handle cells,
    /// side records, name copies, interned names, report text. A memory limit above the account then
    /// bounds what the module allocates on a script's behalf.
    /// A charge that fails asks for a collection at the next safe point: what holds the memory may be
    /// garbage waiting for its finalizer.
    static let charge: ltc_ChargeFn = { S, n in
        guard let account = S.pointee.account else { return 1 }
        if TallocContext(unsafePointer: account).unsafeAdjustExternalSize(by: Int(n)) { return 1 }
        ltc_requestcollect(S)
        return 0
    }

    /// TallocCore's work meter, read by the trampolines after a body when a budget is armed (ltc_meter):
    /// the steps of the long walks the body made.
    static let takeWork: ltc_TakeWorkFn = { Int64(Talloc.takeWork()) }

    /// Notes `steps` of a walk the module made itself (up the tree), charged after the body. As TallocCore's
    /// meter, only long walks count (64 steps and more): a call's usual few steps are its instructions'.
    @inline(__always)
    static func noteWork(_ S: StatePtr, _ steps: Int) {
        if _slowPath(steps >= 64) { S.pointee.work &+= Int64(steps) }
    }

    @inline(__always)
    static func charge(_ S: StatePtr, _ n: Int) -> Bool {
        guard let fn = S.pointee.charge else { return true }
        return fn(S, Int64(n)) != 0
    }

    /// What a malloc of `n` bytes really takes (ltc_mallocfootprint).
    @inline(__always)
    static func footprint(_ n: Int) -> Int { Int(ltc_mallocfootprint(n)) }

    // MARK: Names

    private static let emptyName = strdup("")!
    private static let newEmptyName = strdup("talloc_new: ")!

    /// Names `c` after the Lua code that called the module: "FILE:LINE" or "talloc_new: FILE:LINE",
    /// formatted only when read. FILE is the chunk's source interned in the state (its count is the
    /// cell's). A C caller (e.g. pcall) gives talloc's name with an empty location. False when memory ran out.
    static func nameByCaller(_ f: Frame, _ c: TallocContext, _ cell: Cell, talloc_new: Bool) -> Bool {
        var name: UnsafeMutablePointer<ltc_Name>? = nil
        var line: Int32 = 0
        switch ltc_callername(f.L, f.S, f.extra, &name, &line) {
        case 1:
            let n = name!
            c.unsafeSetNameLocation(file: text(n), line: Int(line), talloc_new: talloc_new)
            setCellName(f.S, cell, n)
            cell.pointee.flags |= Int32(LTC_LOCATION)
            if talloc_new { cell.pointee.flags |= Int32(LTC_NEWPREFIX) } else { cell.pointee.flags &= ~Int32(LTC_NEWPREFIX) }
            cell.pointee.line = line
            return true
        case 0:
            c.unsafeSetNameConst(talloc_new ? newEmptyName : emptyName)
            setCellName(f.S, cell, nil)
            return true
        default:
            return false
        }
    }

    /// Names `c` with `bytes` up to their first NUL (talloc_named_const semantics, without keeping the
    /// Lua string alive): the chunk's name points into the state's interned copy, counted by the cell, so
    /// contexts named alike share one copy, charged to the account. False when memory ran out or the name
    /// is as large as talloc refuses allocations.
    static func setNameInterned(_ S: StatePtr, _ c: TallocContext, _ cell: Cell, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let n = bytes.firstIndex(of: 0) ?? bytes.count
        if n >= Talloc.maximumSize { return false }
        let base = bytes.baseAddress.map { $0.assumingMemoryBound(to: CChar.self) } ?? UnsafePointer(emptyName)
        guard let name = ltc_internbytes(S, base, n) else { return false }
        c.unsafeSetNameConst(text(name))
        setCellName(S, cell, name)
        return true
    }

    /// The text of an interned name (NUL-terminated; it lives while counted).
    @inline(__always)
    static func text(_ n: UnsafeMutablePointer<ltc_Name>) -> UnsafeMutablePointer<CChar> {
        UnsafeMutableRawPointer(n).advanced(by: MemoryLayout<ltc_Name>.offset(of: \ltc_Name.text)!)
            .assumingMemoryBound(to: CChar.self)
    }

    /// The cell now counts `name` (already counted for it), letting go of the one it had.
    static func setCellName(_ S: StatePtr, _ cell: Cell, _ name: UnsafeMutablePointer<ltc_Name>?) {
        let old = cell.pointee.name
        cell.pointee.name = name
        cell.pointee.flags &= ~Int32(LTC_LOCATION | LTC_NEWPREFIX)
        if let old { ltc_unrefname(S, old) }
    }

    /// After the module renamed `c` some other way (set_name, appends, realloc): when its name no longer
    /// points into the interned name its cell counts, that count goes.
    static func nameChanged(_ S: StatePtr, _ cell: Cell, _ c: TallocContext) {
        guard let n = cell.pointee.name else { return }
        if UnsafeRawPointer(c.unsafeNameParts.string) != UnsafeRawPointer(text(n)) { setCellName(S, cell, nil) }
    }

    // MARK: Destructors

    /// The C destructor of every chunk that has a Lua destructor: runs `fn(handle)` in lua_pcall, on the
    /// thread running now. `false` refuses; an error refuses too and is kept for the caller of `free` (a
    /// warning when the collector freed). While the state closes, refusals and errors are overridden.
    static let destructor: TallocUnsafeDestructor = { body, context in
        let S = context!.assumingMemoryBound(to: ltc_State.self)
        guard S.pointee.closed == 0 else { return 0 }
        let c = TallocContext(unsafePointer: body)
        guard let cell = Handles.cell(of: c, S) else { return 0 }
        let verdict = Frame.callback(S) { f in runDestructor(f, c, cell) } ?? 0
        // a refusal is in the trace before the operation whose free it refused (finding A1 of adv2)
        if verdict != 0, S.pointee.closing == 0, let w = TallocTraceWriter.active {
            w.write(.refuse(id: w.id(c, top: S.pointee.root)))
        }
        return verdict
    }

    private static func runDestructor(_ f: Frame, _ c: TallocContext, _ cell: Cell) -> Int32 {
        let L = f.L, S = f.S
        lua_rawgeti(L, f.extra, lua_Integer(cell.pointee.slot))
        guard lua_type(L, -1) == LUA_TFUNCTION else { return 0 }
        guard Handles.push(f, c, cell) else { return 0 }  // out of memory: let it go
        let status = ltc_call(L, 1)
        if status != LUA_OK {
            if S.pointee.closing != 0 {
                warn(L, "talloc: error in a destructor while the state closes (ignored): ")
                return 0
            }
            if S.pointee.inGC > 0 {
                warn(L, "talloc: error in a destructor run by the garbage collector: ")
                return -1
            }
            if S.pointee.hasError == 0 {
                // key 0 exists since the module opened: this assignment cannot allocate
                ltc_setexisting(L, f.extra, 0)
                S.pointee.hasError = 1
            }
            return -1
        }
        let refuses = lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1) == 0
        if refuses && S.pointee.closing != 0 {
            lua_warning(L, "talloc: a destructor refused while the state closes (overridden)", 0)
            return 0
        }
        return refuses ? -1 : 0
    }

    /// Warns with `prefix` and the error object on the top (left there).
    static func warn(_ L: LuaState, _ prefix: String) {
        lua_warning(L, prefix, 1)
        if let msg = clua_tostring(L, -1) {
            lua_warning(L, msg, 0)
        } else {
            lua_warning(L, "(error object is a \(Lua.typeName(L, -1)) value)", 0)
        }
    }

    /// After a free: a destructor error kept for this caller is pushed; returns whether there was one.
    static func takeError(_ f: Frame) -> Bool {
        guard f.S.pointee.hasError != 0 else { return false }
        f.S.pointee.hasError = 0
        lua_rawgeti(f.L, f.extra, 0)
        lua_pushboolean(f.L, 0)
        ltc_setexisting(f.L, f.extra, 0)
        return true
    }

    // MARK: Closing

    /// The state's __gc (it runs last in lua_close): frees every context the state created, running
    /// destructors once more and overriding refusals; then the root itself if the module owns it. Once it
    /// has begun (`closing`), a destructor can make no new context nor reference (the module raises, and
    /// the error is a warning): one that made a new context every time it ran would keep it from ending. What
    /// Lua saw outside its own tree (lent contexts, their trees, contexts moved into the host's trees)
    /// stays the host's: references from there to Lua's contexts are dropped first (so those contexts
    /// are freed, not handed to the host), and afterwards every such chunk lets go of its cell, its Lua
    /// destructor and its observer, and its name, if it pointed into the state's interned names, becomes
    /// a copy the chunk owns. Nothing then points at the closed state.
    static let close: ltc_CloseHook = { L, S in
        guard S.pointee.closed == 0 else { return }
        S.pointee.closing = 1
        let root = TallocContext(unsafePointer: S.pointee.root)
        giveBackLent(S, root)
        var lua = Set<UnsafeMutableRawPointer>()
        var stack = [root]
        while let x = stack.popLast() {
            lua.insert(x.unsafePointer)
            var c = x.firstChild
            while let y = c { stack.append(y); c = y.nextSibling }
        }
        // the cells are pinned while these loops run: a destructor may free chunks (and cells) meanwhile
        let outside = outsideCells(S, lua)
        for cell in outside { cell.pointee.uds += 1 }
        for cell in outside {
            guard let body = cell.pointee.body else { continue }
            let x = TallocContext(unsafePointer: body)
            for r in x.referencedContexts where lua.contains(r.unsafePointer) { try? r.unlink(from: x) }
        }
        for cell in outside {
            cell.pointee.uds -= 1
            Handles.release(S, cell)
        }
        // (destructors that run here cannot make new contexts or references: `closing`, ltc_closingmsg)
        var rounds = 0
        while root.firstChild != nil || root.totalBlocks > 1 {
            root.freeChildren()
            rounds += 1
            if rounds > 8 {
                lua_warning(L, "talloc: contexts are left under the state's root after 9 rounds of frees at close", 0)
                break
            }
        }
        let detached: Bool? = Frame.callback(S) { f in
            for cell in outsideCells(S, []) { detach(f, cell) }
            return true
        }
        let frameless = detached == nil
        if frameless { for cell in outsideCells(S, []) { detach(nil, S, cell) } }
        if S.pointee.ownsRoot != 0 {
            S.pointee.closed = 1
            try? root.free()
        }
        S.pointee.closed = 1
    }

    /// Lent contexts the script moved into Lua's tree (a steal, or a free that handed one to its
    /// referrer) go back to the host before that tree is freed: each becomes a top-level context again,
    /// with whatever is under it (finding F11: the host, told by `lentContext` that it was alive, then freed
    /// freed memory). A lent context below another one in Lua's tree goes with it. `LuaRuntime` does it
    /// before lua_close too, before the finalizers (a collected handle of Lua's would free its tree).
    static func giveBackLent(_ S: StatePtr, _ root: TallocContext) {
        var lent: [Cell] = []
        var cell = ltc_nextcell(S, nil)
        while let c = cell {
            if c.pointee.flags & Int32(LTC_LENT) != 0 && c.pointee.body != nil { lent.append(c) }
            cell = ltc_nextcell(S, c)
        }
        for cell in lent { cell.pointee.uds += 1 }  // pinned while the steals run
        for cell in lent {
            guard let body = cell.pointee.body else { continue }
            let x = TallocContext(unsafePointer: body)
            guard let p = x.parent, p.isParent(root) else { continue }
            var above: TallocContext? = p
            var nested = false
            while let y = above, y != root {
                if let yc = Handles.cell(of: y, S), yc.pointee.flags & Int32(LTC_LENT) != 0 { nested = true; break }
                above = y.parent
            }
            if !nested { try? x.steal(to: nil) }
        }
        for cell in lent {
            cell.pointee.uds -= 1
            Handles.release(S, cell)
        }
    }

    /// The cells whose chunk is alive and not in `lua` (the chunks of Lua's own tree).
    private static func outsideCells(_ S: StatePtr, _ lua: Set<UnsafeMutableRawPointer>) -> [Cell] {
        var out: [Cell] = []
        var cell = ltc_nextcell(S, nil)
        while let c = cell {
            if let body = c.pointee.body, c.pointee.flags & Int32(LTC_ATTACHED) != 0, !lua.contains(body) { out.append(c) }
            cell = ltc_nextcell(S, c)
        }
        return out
    }

    /// A chunk outside Lua's tree lets go of its cell as the state closes (see `close`).
    private static func detach(_ f: Frame, _ cell: Cell) { detach(f, f.S, cell) }

    private static func detach(_ f: Frame?, _ S: StatePtr, _ cell: Cell) {
        guard let body = cell.pointee.body else { return }
        let x = TallocContext(unsafePointer: body)
        if let n = cell.pointee.name {  // its name may point into the state's interned names: a copy of its own
            let parts = x.unsafeNameParts
            if !parts.isLocation, UnsafeRawPointer(parts.string) == UnsafeRawPointer(text(n)) {
                _ = x.setNameCopy(UnsafeRawBufferPointer(start: text(n), count: n.pointee.len))  // (any size: no copy in Swift)
            } else {
                let bytes = Names.bytes(x)  // a location: "FILE:LINE", a few dozen bytes
                _ = bytes.withUnsafeBytes { x.setNameCopy($0) }
            }
        }
        Handles.saveName(S, cell, x)
        if cell.pointee.flags & Int32(LTC_LUADTOR) != 0 { _ = x.unsafeSetDestructor(nil, context: nil) }
        if let f { ltc_clearslot(f.L, f.extra, lua_Integer(cell.pointee.slot)) }
        _ = x.unsafeSetObserver(nil, context: nil, tag: 0)
        _ = charge(S, -Int(cell.pointee.charged))
        cell.pointee.charged = 0
        cell.pointee.body = nil
        cell.pointee.flags &= ~Int32(LTC_ATTACHED)
        Handles.release(S, cell)
    }
}
