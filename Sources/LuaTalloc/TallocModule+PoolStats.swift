// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// Pool statistics and advice (issue 15; talloc has neither). Every pool a script makes keeps statistics
// in TallocCore (`TallocContext.enablePoolStatistics`), their record charged to the state's account with
// the pool's cell. With a recorder on the thread (`luatalloc --pool-report`), each pool also records
// into it under the Lua position of the call that made it.
//
// `pool_stats` and `pool_advice` read everything first (numbers, and the names of the members that pin
// a freed pool), then build the table: building it allocates, and a collection may then run finalizers
// that free the very pool being described.

import CLua
import CLuaShims
import Glibc
import TallocCore

enum PoolStatistics {
    // MARK: Pools that keep statistics

    /// talloc.pool, keeping statistics.
    static let pool: clua_Body = { L, out in
        let n = TallocModule.pool(L, out)
        return n == 1 ? keepStatistics(L, out) : n
    }

    /// talloc.pooled_object, keeping statistics.
    static let pooledObject: clua_Body = { L, out in
        let n = TallocModule.pooledObject(L, out)
        return n == 1 ? keepStatistics(L, out) : n
    }

    /// The pool just made (the handle at index 1, the only result) starts keeping statistics; their
    /// record is charged to the account for as long as the pool's cell is (its `charged` bytes go back
    /// when the chunk is freed, or when the state closes). On failure the pool is freed again.
    static func keepStatistics(_ L: LuaState, _ out: Out) -> Int32 {
        let f = ModuleState.frame(L, out)
        guard let (c, cell) = Handles.resolve(f, out, 1) else { return 0 }
        // the statistics' record, and the limit record they live in when the pool has none yet
        let cost = ModuleState.footprint(TallocContext.poolStatisticsByteCount)
            + (c.needsLimitRecord ? ModuleState.footprint(TallocContext.limitRecordByteCount) : 0)
        guard ModuleState.charge(f.S, cost) else {
            try? c.free()
            return TallocModule.outOfMemory(f.S, out)
        }
        let recorder = TallocPoolRecorder.current
        let site = recorder == nil ? nil : callerSite(f)
        var kept = false
        do throws(TallocError) { kept = try c.enablePoolStatistics(recorder: recorder, site: site) } catch {
            _ = ModuleState.charge(f.S, -cost)
            try? c.free()
            return TallocModule.outOfMemory(f.S, out)
        }
        if kept {
            cell.pointee.charged += UInt32(cost)
        } else {
            _ = ModuleState.charge(f.S, -cost)
        }
        return 1
    }

    /// "FILE:LINE" of the Lua code that called the module, or "?" (a C caller such as pcall).
    static func callerSite(_ f: Frame) -> String {
        var name: UnsafeMutablePointer<ltc_Name>? = nil
        var line: Int32 = 0
        guard ltc_callername(f.L, f.S, f.extra, &name, &line) == 1, let n = name else { return "?" }
        defer { ltc_unrefname(f.S, n) }  // the count ltc_callername took for us
        return "\(String(cString: ModuleState.text(n))):\(line)"
    }

    // MARK: pool_stats, pool_advice

    /// A member that pins a freed pool, as Lua may see it.
    struct PinningMember {
        var name: [UInt8]
        var size: Int
        var parent: [UInt8]?
    }

    /// How many pinning members `pool_stats` names (it counts them all).
    static let listedMembers = 16

    /// The statistics of the pool `c` is or was carved from; nil and a reason when there are none.
    static func statistics(_ f: Frame, _ c: TallocContext) -> (TallocPoolStatistics, [PinningMember])? {
        guard let st = c.poolStatistics else { return nil }
        var members: [PinningMember] = []
        if st.isFreed {
            // At most `listedMembers`, each name cut at `TallocPoolRecorder.Member.nameLimit` bytes: the
            // copies are the program's until they are pushed (then Lua's, charged).
            for m in c.livePoolMembers(limit: listedMembers, where: { Handles.isVisible(f.S, $0) }) {
                let parent = Handles.visibleParent(f.S, m, Handles.cell(of: m, f.S)).map { reportName($0) }
                members.append(PinningMember(name: reportName(m), size: m.size, parent: parent))
            }
        }
        return (st, members)
    }

    /// A name as pool_stats lists it: at most `TallocPoolRecorder.Member.nameLimit` bytes, "..." where cut.
    static func reportName(_ c: TallocContext) -> [UInt8] {
        let (bytes, truncated) = c.nameBytes(prefix: TallocPoolRecorder.Member.nameLimit)
        return truncated ? bytes + Array("...".utf8) : bytes
    }

    /// The context in argument 1 of pool_stats and pool_advice; a freed one is the error every module
    /// function gives: "attempt to use a freed talloc context ('NAME')".
    static func argument(_ f: Frame, _ out: Out) -> TallocContext? {
        Handles.context(f, out, 1)
    }

    /// nil and why there are no statistics for the context at index 1 (the caller checked it is live).
    static func noStatistics(_ L: LuaState, _ c: TallocContext) -> Int32 {
        lua_pushnil(L)
        Lua.push(L, c.isPool || c.isPoolMemory ? "the pool keeps no statistics" : "not pool memory")
        return 2
    }

    /// Sets integer fields of the table on the top; false (error object on the top) on a memory error.
    static func setIntegers(_ L: LuaState, _ fields: [(String, Int)]) -> Bool {
        for (k, v) in fields {
            lua_pushinteger(L, lua_Integer(v))
            guard clua_setfield(L, -2, k) == LUA_OK else { return false }
        }
        return true
    }

    static func setString(_ L: LuaState, _ key: String, _ bytes: [UInt8]) -> Bool {
        guard bytes.withUnsafeBytes({ Lua.push(L, bytes: $0) }) else { return false }
        return clua_setfield(L, -2, key) == LUA_OK
    }

    /// talloc.pool_stats(c): the statistics of the pool c is or lives in, as a table; nil and a reason
    /// when c is not pool memory or its pool keeps none.
    static let stats: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let c = argument(f, out) else { return 0 }
        guard let (st, members) = statistics(f, c) else { return noStatistics(L, c) }
        guard clua_createtable(L, 0, 24) == LUA_OK else { return out.rethrow() }
        let ok = setIntegers(L, [
            ("capacity", st.capacity), ("used", st.used), ("peak", st.peakUsed),
            ("allocations", st.allocations), ("allocated_bytes", st.allocatedBytes),
            ("spills", st.spills), ("spilled_bytes", st.spilledBytes), ("largest_spill", st.largestSpill),
            ("members", st.members), ("live_bytes", st.liveBytes), ("wasted_bytes", st.wastedBytes),
            ("holes", st.holes), ("hole_bytes", st.holeBytes), ("reclaims", st.reclaims), ("resets", st.resets),
            ("stolen", st.stolen), ("reallocs", st.reallocs), ("needed", st.neededCapacity),
            ("pinning_members", st.pinningMembers), ("pinned_bytes", st.pinnedBytes),
        ])
        guard ok else { return out.rethrow() }
        lua_pushboolean(L, st.isFreed ? 1 : 0)
        guard clua_setfield(L, -2, "freed") == LUA_OK else { return out.rethrow() }
        if st.isFreed {
            guard clua_createtable(L, Int32(members.count), 0) == LUA_OK else { return out.rethrow() }
            for (i, m) in members.enumerated() {
                lua_pushinteger(L, lua_Integer(i + 1))
                guard clua_createtable(L, 0, 3) == LUA_OK else { return out.rethrow() }
                guard setString(L, "name", m.name), setIntegers(L, [("size", m.size)]) else { return out.rethrow() }
                if let p = m.parent, !setString(L, "parent", p) { return out.rethrow() }
                guard ltc_rawset(L, -3) == LUA_OK else { return out.rethrow() }
            }
            guard clua_setfield(L, -2, "pinned_by") == LUA_OK else { return out.rethrow() }
        }
        return 1
    }

    /// talloc.pool_advice(c): what capacity would have served every allocation the pool of c saw, and
    /// what it would have cost: a table of numbers and `text`, the same in words. nil and a reason when
    /// there are no statistics, or the pool was freed (its counters ended with it).
    static let advice: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let c = argument(f, out) else { return 0 }
        guard let st = c.poolStatistics else { return noStatistics(L, c) }
        if st.isFreed {
            lua_pushnil(L)
            Lua.push(L, "the pool was freed (its statistics ended with it)")
            return 2
        }
        let a = TallocPoolAdvice(st)
        guard clua_createtable(L, 0, 10) == LUA_OK else { return out.rethrow() }
        let ok = setIntegers(L, [
            ("capacity", a.capacity), ("advised", a.advisedCapacity), ("change", a.change),
            ("allocations", a.allocations), ("spills", a.spills), ("spilled_bytes", a.spilledBytes),
            ("mallocs_saved", a.mallocsSaved), ("block_bytes", a.advisedBlockBytes),
        ])
        guard ok, setString(L, "text", Array(a.text.utf8)) else { return out.rethrow() }
        return 1
    }
}
