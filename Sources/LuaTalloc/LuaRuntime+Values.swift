// luatalloc — the embeddable runtime: copying values between the Lua stack and `LuaValue`
// SPDX-License-Identifier: MIT
//
// Reading uses only '-' API calls and the protected `lth_next`; writing uses protected helpers for
// everything that allocates. Neither can raise into Swift (DESIGN §4).

import CLua
import CLuaShims
import TallocCore

/// Why a value could not be copied between Lua and Swift.
enum _ConversionFailure: Error {
    case tooDeep(Int)
    /// A Lua error (the message), e.g. out of memory while iterating.
    case lua(String)
}

/// Reads Lua values into `LuaValue`s. `meta` is the absolute index of the contexts' metatable
/// (0: no module, every userdata is opaque).
///
/// Tables are read without recursion (an explicit stack of frames), so no shape of table and no
/// `maxDepth` can overflow the C stack, and each table is read once wherever that gives the same
/// Swift value:
///
/// - A table already read is **known** together with the ancestors it refers to through cycle
///   markers (each as the table and its distance above the known one). Wherever those same tables are
///   at the same distances, the known value is reused: a table shared in a DAG becomes one shared Swift
///   value (copy-on-write storage), and the conversion is linear in the size of the Lua value graph.
///   A table that refers to no ancestor (the usual case) is reused everywhere.
/// - A table on the path from the value being read is a cycle: `.cycle(levelsUp:)`, as before.
/// - Inside cycles, a table reached at different distances from the ancestors it refers to needs a
///   different Swift value at each (the markers are relative); such re-reading is bounded: reading
///   (and hashing table keys, see below) more than `1_000_000 + 16 ×` the entries of the distinct tables
///   seen is an error, never a hang.
/// - The depth limit applies to the Swift value: no table deeper than `maxDepth` (reused values
///   included). A table used as a key is hashed in full by `LuaValue`'s `Hashable`, so a key whose
///   value (shared parts counted at each place) has more than `maxKeyNodes` nodes is an error.
struct _LuaReader {
    let L: LuaState
    let meta: Int32
    let maxDepth: Int
    /// The runtime functions are held by (nil: functions are opaque).
    let runtime: LuaRuntime?

    /// Nodes a table key may have (hashing it visits them all, shared parts once per place).
    static let maxKeyNodes = 1 << 20
    /// Entries read beyond the distinct ones before the conversion gives up (see the type's comment).
    static let baseWork = 1_000_000
    static let workPerEntry = 16
    /// Values kept per table read in different contexts.
    static let maxKnownPerTable = 4

    /// A table being read.
    private struct Frame {
        /// `lua_topointer` of the table.
        let table: UnsafeRawPointer
        /// Its stack index.
        let index: Int32
        /// Whether this is the first time the table is read (its entries are distinct ones).
        let first: Bool
        var contents: [LuaValue: LuaValue] = [:]
        /// Frame numbers of the ancestors (below this frame) that cycle markers inside refer to.
        var outer: Set<Int> = []
        /// Levels of tables in the value (1: no table inside).
        var height = 1
        /// Nodes of the value (shared parts once per place), saturating.
        var nodes = 1
        /// The value of the pair being read, once read (its key comes next).
        var pending: LuaValue? = nil
        /// A table under this one is being read: it is the key (true) or the value of the pair.
        var childIsKey = false

        init(table: UnsafeRawPointer, index: Int32, first: Bool) {
            self.table = table
            self.index = index
            self.first = first
        }

        mutating func grow(height h: Int, nodes n: Int) {
            if h + 1 > height { height = h + 1 }
            let (s, o) = nodes.addingReportingOverflow(n)
            nodes = o ? Int.max : s
        }
    }

    /// A table already read, and what its value depends on.
    private struct Known {
        let value: LuaValue
        /// The ancestors its cycle markers refer to, each with its distance above the table (>= 1).
        let outer: [(table: UnsafeRawPointer, distance: Int)]
        let height: Int
        let nodes: Int
    }

    /// The tables on the path from the value being read (frame numbers), the current one last.
    private var path: [UnsafeRawPointer] = []
    /// Frame number of each table on the path.
    private var onPath: [UnsafeRawPointer: Int] = [:]
    private var known: [UnsafeRawPointer: [Known]] = [:]
    /// Tables read at least once.
    private var seen: Set<UnsafeRawPointer> = []
    /// Entries read, and entries of distinct tables read.
    private var work = 0
    private var distinct = 0

    init(_ L: LuaState, meta: Int32, maxDepth: Int, runtime: LuaRuntime? = nil) {
        self.L = L
        self.meta = meta
        self.maxDepth = maxDepth
        self.runtime = runtime
    }

    /// The value at `idx`. On failure the stack is as it was.
    mutating func read(_ idx: Int32) throws(_ConversionFailure) -> LuaValue {
        let idx = lua_absindex(L, idx)
        if lua_type(L, idx) != LUA_TTABLE { return scalar(idx) }
        let base = lua_gettop(L)
        do {
            return try readTable(idx)
        } catch {
            lua_settop(L, base)
            path.removeAll()
            onPath.removeAll()
            throw error
        }
    }

    /// What reading a table gave: a known value, or the frame to read it in (its iteration started).
    private enum Visit {
        case known(Known)
        case enter(Frame)
    }

    /// Reads the table at `idx` (the root), with an explicit stack of frames: `stack` holds the
    /// ancestors of `cur`.
    private mutating func readTable(_ idx: Int32) throws(_ConversionFailure) -> LuaValue {
        var stack: [Frame] = []
        var cur: Frame
        switch try visit(idx, holder: nil) {
        case .known(let k): return k.value
        case .enter(let f): cur = f
        }
        while true {
            if cur.pending == nil {
                // a new pair: the key of the last one is on the top
                var more: Int32 = 0
                let status = lth_next(L, cur.index, &more)
                if status != LUA_OK { throw .lua(LuaRuntime.popMessage(L)) }
                if more == 0 {
                    let done = finish(cur)
                    guard var parent = stack.popLast() else { return done.value }
                    let p = path.count - 1  // the parent's frame number (the child's was p + 1)
                    for (_, distance) in done.outer where p + 1 - distance < p {
                        parent.outer.insert(p + 1 - distance)  // an ancestor below the parent too
                    }
                    parent.grow(height: done.height, nodes: done.nodes)
                    if parent.childIsKey {
                        try store(done.value, nodes: done.nodes, in: &parent)
                    } else {
                        parent.pending = done.value
                    }
                    cur = parent
                    continue
                }
                work += 1
                if cur.first { distinct += 1 }
                try checkWork()
                let top = lua_gettop(L)
                if lua_type(L, top) == LUA_TTABLE {
                    switch try visit(top, holder: &cur) {
                    case .known(let k):
                        cur.grow(height: k.height, nodes: k.nodes)
                        cur.pending = k.value
                    case .enter(let f):
                        cur.childIsKey = false
                        stack.append(cur)
                        cur = f
                        continue
                    }
                } else {
                    cur.grow(height: 0, nodes: 1)
                    cur.pending = scalar(top)
                }
            }
            // the value is read: the key, under it
            let kidx = lua_gettop(L) - 1
            if lua_type(L, kidx) == LUA_TTABLE {
                switch try visit(kidx, holder: &cur) {
                case .known(let k):
                    cur.grow(height: k.height, nodes: k.nodes)
                    try store(k.value, nodes: k.nodes, in: &cur)
                case .enter(let f):
                    cur.childIsKey = true
                    stack.append(cur)
                    cur = f
                }
            } else {
                cur.grow(height: 0, nodes: 1)
                try store(scalar(kidx), nodes: 1, in: &cur)
            }
        }
    }

    /// Stores the pair (`key`, the pending value) in `frame`; pops the value (the key stays for lth_next).
    /// A table key is hashed in full (every node, shared ones at each place): that is work too.
    private mutating func store(_ key: LuaValue, nodes: Int, in frame: inout Frame) throws(_ConversionFailure) {
        if nodes > 1 {
            if nodes > _LuaReader.maxKeyNodes {
                throw .lua("a table used as a key is too large to copy (more than \(_LuaReader.maxKeyNodes) values, shared ones counted at each place)")
            }
            work += nodes
            try checkWork()
        }
        let value = frame.pending!
        frame.pending = nil
        frame.contents[key] = value
        clua_pop(L, 1)
    }

    /// Gives up when far more was read than the distinct tables hold (see the type's comment).
    private func checkWork() throws(_ConversionFailure) {
        if work > _LuaReader.baseWork + _LuaReader.workPerEntry * distinct {
            throw .lua("table graph too large to copy (its shared tables under cycles unfold to more than \(work) entries)")
        }
    }

    /// The table at `idx`, reached from `holder` (nil: the root): a cycle marker, a known value, or a
    /// new frame.
    private mutating func visit(_ idx: Int32, holder: UnsafeMutablePointer<Frame>?) throws(_ConversionFailure) -> Visit {
        let p = lua_topointer(L, idx)!
        let depth = path.count
        if let d = onPath[p] {  // (the root is on no path: holder != nil here)
            if d < depth - 1 { holder?.pointee.outer.insert(d) }
            return .known(Known(value: .cycle(levelsUp: depth - d), outer: [], height: 0, nodes: 1))
        }
        if let k = reusable(p, at: depth) {
            for (_, distance) in k.outer where depth - distance < depth - 1 { holder?.pointee.outer.insert(depth - distance) }
            return .known(k)
        }
        if depth >= maxDepth { throw .tooDeep(maxDepth) }
        guard lua_checkstack(L, 4) != 0 else { throw .lua("stack overflow (table too deep)") }
        path.append(p)
        onPath[p] = depth
        lua_pushnil(L)
        return .enter(Frame(table: p, index: idx, first: seen.insert(p).inserted))
    }

    private mutating func visit(_ idx: Int32, holder: inout Frame) throws(_ConversionFailure) -> Visit {
        try withUnsafeMutablePointer(to: &holder) { h throws(_ConversionFailure) in try visit(idx, holder: h) }
    }

    /// A known value of `p` valid at `depth`: the ancestors it refers to are there, and it fits.
    private func reusable(_ p: UnsafeRawPointer, at depth: Int) -> Known? {
        guard let list = known[p] else { return nil }
        candidates: for k in list {
            if depth + k.height > maxDepth { continue }
            for (table, distance) in k.outer {
                let d = depth - distance
                if d < 0 || path[d] != table { continue candidates }
            }
            return k
        }
        return nil
    }

    /// Ends the frame `frame` (the last on the path): its value, remembered with what it depends on.
    private mutating func finish(_ frame: Frame) -> Known {
        path.removeLast()
        let f = path.count
        onPath[frame.table] = nil
        let outer = frame.outer.map { (table: path[$0], distance: f - $0) }
        let k = Known(value: .table(frame.contents), outer: outer, height: frame.height, nodes: frame.nodes)
        if var list = known[frame.table] {
            if list.count >= _LuaReader.maxKnownPerTable { list.removeLast() }
            list.insert(k, at: 0)
            known[frame.table] = list
        } else {
            known[frame.table] = [k]
        }
        return k
    }

    /// A nil, boolean, number or string (anything else reads as nil).
    static func scalarValue(_ L: LuaState, _ idx: Int32) -> LuaValue {
        switch lua_type(L, idx) {
        case LUA_TBOOLEAN:
            return .boolean(lua_toboolean(L, idx) != 0)
        case LUA_TNUMBER:
            if lua_isinteger(L, idx) != 0 { return .integer(Int(lua_tointegerx(L, idx, nil))) }
            return .number(lua_tonumberx(L, idx, nil))
        case LUA_TSTRING:
            var len = 0
            guard let p = clua_tostring_strict(L, idx, &len) else { return .nil }
            let bytes = UnsafeRawBufferPointer(start: p, count: len)
            if let s = String(validating: bytes, as: UTF8.self) { return .string(s) }
            return .bytes(Array(bytes))
        default:
            return .nil
        }
    }

    /// Anything but a table.
    private func scalar(_ idx: Int32) -> LuaValue {
        switch lua_type(L, idx) {
        case LUA_TNIL, LUA_TNONE:
            return .nil
        case LUA_TBOOLEAN, LUA_TNUMBER, LUA_TSTRING:
            return _LuaReader.scalarValue(L, idx)
        case LUA_TUSERDATA:
            if meta != 0, lua_getmetatable(L, idx) != 0 {
                let isContext = lua_rawequal(L, -1, meta) != 0
                clua_pop(L, 1)
                if isContext {
                    let b = ltc_cellat(L, idx)
                    guard let body = b.pointee.body else { return .opaque(LuaOpaque(kind: .freedContext, address: 0)) }
                    return .context(TallocContext(unsafePointer: body))
                }
            }
            return opaque(.userdata, idx)
        case LUA_TFUNCTION:
            // a handle the host can call and pass back (when the runtime can hold it)
            if let runtime, let f = try? runtime.makeFunction(L, idx) { return .function(f) }
            return opaque(.function, idx)
        case LUA_TTHREAD:
            return opaque(.thread, idx)
        case LUA_TLIGHTUSERDATA:
            return opaque(.lightUserdata, idx)
        default:
            return opaque(.userdata, idx)
        }
    }

    private func opaque(_ kind: LuaOpaque.Kind, _ idx: Int32) -> LuaValue {
        .opaque(LuaOpaque(kind: kind, address: UInt(bitPattern: lua_topointer(L, idx))))
    }

}

/// Pushes `LuaValue`s. Contexts need the module (its frame and the pins table at `pins`); without them a
/// context is an error.
struct _LuaWriter {
    let L: LuaState
    let frame: Frame?
    /// Absolute index of the pins table (host table's LTH_HOST_PINS), 0 if none.
    let pins: Int32
    /// The runtime's "lua contexts": contexts under it are Lua's, others are lent.
    let contexts: TallocContext?
    /// The runtime's root: nothing else of its tree may reach Lua.
    let root: TallocContext?
    /// The runtime whose functions may be pushed, and the absolute index of its table of held values.
    let runtime: LuaRuntime?
    let refs: Int32
    /// The tables being built, outermost first (stack indices), for `.cycle`.
    private var building: [Int32] = []

    init(_ L: LuaState, frame: Frame?, pins: Int32, contexts: TallocContext?, root: TallocContext?,
         runtime: LuaRuntime? = nil, refs: Int32 = 0) {
        self.L = L
        self.frame = frame
        self.pins = pins
        self.contexts = contexts
        self.root = root
        self.runtime = runtime
        self.refs = refs
    }

    /// Pushes a value that needs no allocation (`pushesWithoutAllocating`): '-' calls only.
    static func pushScalar(_ L: LuaState, _ value: LuaValue) {
        switch value {
        case .boolean(let b): lua_pushboolean(L, b ? 1 : 0)
        case .integer(let i): lua_pushinteger(L, lua_Integer(i))
        case .number(let d): lua_pushnumber(L, d)
        default: lua_pushnil(L)
        }
    }

    /// Pushes `value`. On failure returns false with exactly one value pushed: the error object.
    mutating func push(_ value: LuaValue) -> Bool {
        let base = lua_gettop(L)
        if pushValue(value) { return true }
        // leave just the error object (it is on the top)
        if lua_gettop(L) > base + 1 {
            clua_replace(L, base + 1)
            lua_settop(L, base + 1)
        }
        return false
    }

    private func fail(_ message: String) -> Bool {
        if !Lua.push(L, message) { return false }  // the memory error is the error object then
        return false
    }

    /// Pushes anything but a table.
    private mutating func pushLeaf(_ value: LuaValue) -> Bool {
        switch value {
        case .nil: lua_pushnil(L)
        case .boolean(let b): lua_pushboolean(L, b ? 1 : 0)
        case .integer(let i): lua_pushinteger(L, lua_Integer(i))
        case .number(let d): lua_pushnumber(L, d)
        case .string(let s): return Lua.push(L, s)
        case .bytes(let b): return b.withUnsafeBytes { Lua.push(L, bytes: $0) }
        case .cycle(let n):
            guard n >= 1, n <= building.count else { return fail("invalid cycle reference (\(n) levels up)") }
            lua_pushvalue(L, building[building.count - n])
        case .opaque(let o):
            return fail("cannot pass a Lua \(o.kind.rawValue) back to Lua")
        case .function(let fn):
            guard let runtime, fn.runtime === runtime else { return fail("cannot pass a function of another Lua runtime") }
            guard fn.generation == runtime.generation, refs != 0 else {
                return fail("cannot pass a function of a runtime that was reset or closed")
            }
            lua_rawgeti(L, refs, lua_Integer(fn.ref))
        case .context(let c):
            return pushContext(c)
        case .table:
            return fail("internal error: a table pushed as a leaf")
        }
        return true
    }

    /// A table being built: its stack index, what is left of its entries, and what is on the stack above
    /// it for the entry in progress.
    private struct Building {
        let index: Int32
        /// Its place in `building` (what cycle markers count from).
        let position: Int
        /// Its storage, when the value holds it more than once (it is then written once, and reused).
        let shared: UInt?
        var entries: Dictionary<LuaValue, LuaValue>.Iterator
        /// The value of the entry in progress (its key is being pushed, or is on the top).
        var value: LuaValue = .nil
        /// 0: between entries; 1: a table key is being built; 2: the key is on the top, a table value is
        /// being built.
        var stage = 0
        /// The lowest place in `building` a cycle marker inside refers to (Int.max: none).
        var lowestReference = Int.max
    }

    /// The storages of the nested tables `root` holds more than once (none: nothing to remember).
    private static func sharedTables(_ root: [LuaValue: LuaValue]) -> Set<UInt> {
        var reached: Set<UInt> = []
        var shared: Set<UInt> = []
        var pending: [[LuaValue: LuaValue]] = []
        func visit(_ v: LuaValue) {
            guard case .table(let t) = v, !t.isEmpty, let id = LuaValue.storageIdentity(t) else { return }
            if reached.insert(id).inserted { pending.append(t) } else { shared.insert(id) }
        }
        for (k, v) in root { visit(k); visit(v) }
        while let t = pending.popLast() {
            for (k, v) in t { visit(k); visit(v) }
        }
        return shared
    }

    /// Pushes `value` without recursion: nested tables are built from an explicit stack, so a value of
    /// any depth is pushed or refused with "stack overflow" (Lua's stack limit), never a crash. A table
    /// the value holds more than once (shared Swift storage, as a table Lua had shared comes out) is
    /// written once and the same Lua table used at each place, so a shared graph is written in time
    /// linear in its stored size (unless cycle markers inside it point above it: those are per place).
    private mutating func pushValue(_ value: LuaValue) -> Bool {
        guard lua_checkstack(L, 4) != 0 else { return fail("stack overflow (value too deep)") }
        guard case .table(let root) = value else { return pushLeaf(value) }
        let shared = _LuaWriter.sharedTables(root)
        var memo: Int32 = 0  // the Lua table of the shared tables written: storage -> table
        if !shared.isEmpty {
            guard clua_createtable(L, 0, Int32(clamping: shared.count)) == LUA_OK else { return false }
            memo = lua_gettop(L)
        }
        var frames: [Building] = []
        defer { building.removeAll() }

        /// The table on the top is done: it becomes the key or the value of its parent's entry.
        func attach(_ lowest: Int, _ me: inout _LuaWriter) -> Bool {
            guard var parent = frames.popLast() else { return true }
            parent.lowestReference = Swift.min(parent.lowestReference, lowest)
            if parent.stage == 1 {
                parent.stage = 2
            } else {
                guard ltc_rawset(me.L, parent.index) == LUA_OK else { return false }
                parent.stage = 0
                parent.value = .nil
            }
            frames.append(parent)
            return true
        }
        /// Pushes the table of `t`: one written before, or a new one that becomes the current frame.
        /// `reused` says which.
        func open(_ t: [LuaValue: LuaValue], _ me: inout _LuaWriter, reused: inout Bool) -> Bool {
            // the table, a key and a value above it
            guard lua_checkstack(me.L, 4) != 0 else { return me.fail("stack overflow (value too deep)") }
            let id = memo != 0 ? LuaValue.storageIdentity(t).flatMap { shared.contains($0) ? $0 : nil } : nil
            if let id {
                lua_pushinteger(me.L, lua_Integer(Int(bitPattern: id)))
                if lua_rawget(me.L, memo) != LUA_TNIL {
                    reused = true
                    return true
                }
                clua_pop(me.L, 1)
            }
            reused = false
            let narr = t.keys.reduce(0) { n, k in if case .integer(let i) = k, i >= 1, i <= t.count { return n + 1 }; return n }
            guard clua_createtable(me.L, Int32(clamping: narr), Int32(clamping: t.count - narr)) == LUA_OK else { return false }
            let idx = lua_gettop(me.L)
            frames.append(Building(index: idx, position: me.building.count, shared: id, entries: t.makeIterator()))
            me.building.append(idx)
            return true
        }
        /// Opens a child table of the current frame (pushed back first, at `stage`).
        func child(_ t: [LuaValue: LuaValue], of f: Building, _ me: inout _LuaWriter) -> Bool {
            frames.append(f)
            var reused = false
            guard open(t, &me, reused: &reused) else { return false }
            return reused ? attach(Int.max, &me) : true
        }

        var reused = false
        guard open(root, &self, reused: &reused) else { return false }
        while var f = frames.popLast() {
            switch f.stage {
            case 0:
                guard let (k, v) = f.entries.next() else {
                    // the table is done, on the top
                    building.removeLast()
                    if let id = f.shared, f.lowestReference >= f.position {
                        // remembered where it is the same at every place: no marker inside points above it
                        lua_pushinteger(L, lua_Integer(Int(bitPattern: id)))
                        lua_pushvalue(L, -2)
                        guard ltc_rawset(L, memo) == LUA_OK else { return false }
                    }
                    if frames.isEmpty {
                        if memo != 0 { clua_remove(L, memo) }
                        return true
                    }
                    guard attach(f.lowestReference, &self) else { return false }
                    continue
                }
                if v.isNil { frames.append(f); continue }
                if k.isNil { return fail("table index is nil") }
                f.value = v
                if case .table(let kt) = k {
                    f.stage = 1
                    guard child(kt, of: f, &self) else { return false }
                    continue
                }
                if case .cycle(let n) = k { f.lowestReference = Swift.min(f.lowestReference, building.count - n) }
                guard pushLeaf(k) else { return false }
                f.stage = 2
                fallthrough
            case 2:
                // the key is on the top: the value
                if case .table(let vt) = f.value {
                    guard child(vt, of: f, &self) else { return false }  // (stage 2: the child's end sets the pair)
                    continue
                }
                if case .cycle(let n) = f.value { f.lowestReference = Swift.min(f.lowestReference, building.count - n) }
                guard pushLeaf(f.value) else { return false }
                guard ltc_rawset(L, f.index) == LUA_OK else { return false }
                f.stage = 0
                f.value = .nil
                frames.append(f)
            default:
                // stage 1 frames are below their key's frame, never popped here
                return fail("internal error: table writer out of step")
            }
        }
        return true
    }

    /// The handle of `c`; a context outside the runtime's "lua contexts" is lent (Handles.lend): its
    /// handle is pinned, and nothing above it reaches Lua.
    private func pushContext(_ c: TallocContext) -> Bool {
        guard let frame, pins != 0, let contexts, let root else { return fail("talloc contexts need the talloc module (openLibraries)") }
        guard c.isValid else { return fail("invalid talloc context (already freed?)") }
        return LuaRuntime.pushContext(frame, c, contexts: contexts, root: root) { pin(-1, c) }
    }

    /// pins[handle at idx] = light userdata(c): the handle stays reachable until the runtime closes.
    private func pin(_ idx: Int32, _ c: TallocContext) -> Bool {
        lua_pushvalue(L, idx)
        lua_pushlightuserdata(L, c.unsafePointer)
        return ltc_rawset(L, pins) == LUA_OK
    }
}
