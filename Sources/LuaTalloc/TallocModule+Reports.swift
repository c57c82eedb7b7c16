// luatalloc — the `talloc` Lua module: sizes, reports, memory limits, pools, pictures
// SPDX-License-Identifier: MIT
//
// See TallocModule.swift for the rules every body follows.

import CLua
import CLuaShims
import Glibc
import TallocCore

extension TallocModule {
    static func integerQuery(_ L: LuaState, _ out: Out, _ fn: (TallocContext) -> Int) -> Int32 {
        guard let c = Handles.context(ModuleState.frame(L, out), out, 1) else { return 0 }
        lua_pushinteger(L, lua_Integer(fn(c)))
        return 1
    }

    static let getSize: clua_Body = { L, out in integerQuery(L, out) { $0.size } }
    static let totalSize: clua_Body = { L, out in integerQuery(L, out) { $0.totalSize } }
    static let totalBlocks: clua_Body = { L, out in integerQuery(L, out) { $0.totalBlocks } }

    // MARK: - Reports, limits, pools, pictures

    /// The `addresses` option of report/report_full at stack index `i` (read first: `__index` may run).
    static func addressesOption(_ L: LuaState, _ out: Out, _ i: Int32) -> Bool? {
        var addresses = true
        if !Lua.isNoneOrNil(L, i) {
            guard lua_type(L, i) == LUA_TTABLE else { _ = Lua.typeError(L, out, i, "table"); return nil }
            guard clua_getfield(L, i, "addresses") == LUA_OK else { _ = out.rethrow(); return nil }
            if lua_type(L, -1) != LUA_TNIL { addresses = lua_toboolean(L, -1) != 0 }
            clua_pop(L, 1)
        }
        return addresses
    }

    static func reportBody(_ L: LuaState, _ out: Out, full: Bool) -> Int32 {
        let f = ModuleState.frame(L, out)
        guard let addresses = addressesOption(L, out, 2) else { return 0 }
        let target: TallocContext
        if Lua.isNoneOrNil(L, 1) {
            // everything the state made: the runtime's root (Lua's heap and the contexts) when there
            // is one, else the state's top level
            let root = TallocContext(unsafePointer: f.S.pointee.root)
            target = root.parent ?? root
        } else {
            guard let c = Handles.context(f, out, 1) else { return 0 }
            target = c
        }
        return Text.push(f, out) { accountant, sink in
            target.writeReport(depth: 0, maxDepth: full ? -1 : 1, addresses: addresses, accountant: accountant, to: sink)
        }
    }

    static let report: clua_Body = { L, out in reportBody(L, out, full: false) }
    static let reportFull: clua_Body = { L, out in reportBody(L, out, full: true) }

    static let setMemlimit: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let n = Lua.integer(L, out, 2) else { return 0 }
        if n < 0 { return out.argError(2, "limit must not be negative") }
        guard let (c, cell) = Handles.resolve(f, out, 1) else { return 0 }
        // a first limit mallocs the limit record: charged first, with the cell's other bytes after
        let cost = c.needsLimitRecord ? ModuleState.footprint(TallocContext.limitRecordByteCount) : 0
        guard cost == 0 || ModuleState.charge(f.S, cost) else { return TallocModule.outOfMemory(f.S, out) }
        do throws(TallocError) { try c.setMemoryLimit(n) } catch {
            if cost > 0 { _ = ModuleState.charge(f.S, -cost) }
            return out.fail(f.S, error)
        }
        if cost > 0 { cell.pointee.charged += UInt32(cost) }
        lua_pushboolean(L, 1)
        return 1
    }

    static let poolInfo: clua_Body = { L, out in
        guard let c = Handles.context(ModuleState.frame(L, out), out, 1) else { return 0 }
        guard let info = c.poolInfo else { lua_pushnil(L); return 1 }
        guard clua_createtable(L, 0, 5) == LUA_OK else { return out.rethrow() }
        for (k, v) in [("capacity", info.capacity), ("used", info.used), ("available", info.available),
                       ("objects", info.objectCount)] {
            lua_pushinteger(L, lua_Integer(v))
            guard clua_setfield(L, -2, k) == LUA_OK else { return out.rethrow() }
        }
        lua_pushboolean(L, info.isFreed ? 1 : 0)
        guard clua_setfield(L, -2, "freed") == LUA_OK else { return out.rethrow() }
        return 1
    }

    static let dot: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        let target: TallocContext
        if Lua.isNoneOrNil(L, 1) {
            let root = TallocContext(unsafePointer: f.S.pointee.root)
            target = root.parent ?? root
        } else {
            guard let c = Handles.context(f, out, 1) else { return 0 }
            target = c
        }
        return Text.push(f, out) { accountant, sink in target.writeDot(accountant: accountant, to: sink) }
    }

    static let poolMap: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let c = Handles.context(f, out, 1) else { return 0 }
        var segments = 0
        defer { ModuleState.noteWork(f.S, segments) }  // a pool's members, walked (F9)
        guard let text = PoolMap.render(c, segments: &segments) else { lua_pushnil(L); return 1 }
        return Lua.push(L, text) ? 1 : out.rethrow()
    }
}

/// talloc.pool_map: a pool's bytes drawn on one line of a fixed width, whatever the pool holds.
enum PoolMap {
    /// One character per `scale` bytes: `P` the pool's own object, `H` chunk headers, `#` live bytes,
    /// `.` holes left by freed members (not reusable until the pool empties), `_` free space. A cell that
    /// covers several kinds shows the one that covers most of it (live bytes and headers win ties, so a
    /// small member never disappears from a big pool's map).
    static func render(_ c: TallocContext, width: Int = 64) -> String? {
        var segments = 0
        return render(c, width: width, segments: &segments)
    }

    /// The same, counting the segments walked (the work of a call).
    static func render(_ c: TallocContext, width: Int = 64, segments: inout Int) -> String? {
        guard let info = c.poolInfo else { return nil }
        let total = max(info.capacity, 1)
        let scale = max(16, (total + width - 1) / width)
        let cells = (total + scale - 1) / scale
        // bytes of each kind in each cell: kinds P H # . _
        var counts = [Int](repeating: 0, count: cells * 5)
        func kindIndex(_ k: TallocPoolSegment.Kind) -> Int {
            switch k {
            case .pool: return 0
            case .header: return 1
            case .live: return 2
            case .hole: return 3
            case .free: return 4
            }
        }
        var walked = 0
        defer { segments = walked }
        let ok = c.forEachPoolSegment { seg in
            walked &+= 1
            var start = max(0, seg.offset)
            let end = min(total, seg.offset + seg.length)
            let k = kindIndex(seg.kind)
            while start < end {
                let cell = start / scale
                let cellEnd = min(end, (cell + 1) * scale)
                counts[cell * 5 + k] += cellEnd - start
                start = cellEnd
            }
            return true
        }
        guard ok else { return nil }
        let glyphs: [Character] = ["P", "H", "#", ".", "_"]
        var line = ""
        for cell in 0..<cells {
            var best = 4, bestCount = -1
            for k in [2, 1, 0, 3, 4] where counts[cell * 5 + k] > bestCount {
                best = k
                bestCount = counts[cell * 5 + k]
            }
            if counts[cell * 5 + 2] > 0 && bestCount < scale / 2 { best = 2 }  // live bytes are never hidden
            line.append(glyphs[best])
        }
        let state = info.isFreed ? ", freed (pinned by \(info.objectCount) members)" : ""
        return "[\(line)] \(info.used)/\(info.capacity) bytes used, \(info.objectCount) objects\(state); 1 char = \(scale) bytes"
    }
}
