// luatalloc — LuaTalloc tests
// SPDX-License-Identifier: MIT
//
// Issue 15: talloc.pool_stats and talloc.pool_advice, their errors and their memory, and a trace that
// replays to the statistics of the live run.

@testable import LuaTalloc
import TallocCore
import Testing

@Suite("talloc.pool_stats and talloc.pool_advice")
struct PoolStatisticsLuaTests {
    @Test("the numbers, by hand: a 1 KiB pool, five chunks, one spill, a hole, a reclaim, a reset")
    func statisticsByHand() {
        lua("""
            local p = talloc.pool(nil, 1024)
            local a = talloc.size(p, 100)      -- span 176: [64, 240)
            local b = talloc.size(p, 200)      -- 272: [240, 512)
            local c = talloc.size(b, 300)      -- 368: [512, 880)
            local d = talloc.size(p, 200)      -- 272 > 208 left: the heap
            local e = talloc.size(p, 100)      -- 176: [880, 1056)
            local s = talloc.pool_stats(p)
            assert(s.capacity == 1024 and s.used == 992 and s.peak == 992, s.used)
            assert(s.allocations == 4 and s.allocated_bytes == 992 and s.members == 4)
            assert(s.spills == 1 and s.spilled_bytes == 272 and s.largest_spill == 272)
            assert(s.needed == 1264 and s.freed == false and s.pinned_by == nil)
            talloc.free(c)                      -- a hole of 368
            talloc.free(e)                      -- the last carved: reclaimed
            talloc.free(d); talloc.free(b); talloc.free(a)
            s = talloc.pool_stats(a == nil and p or p)
            assert(s.holes == 2 and s.hole_bytes == 368 + 272 and s.reclaims == 1 and s.resets == 1, s.holes)
            assert(s.used == 0 and s.members == 0 and s.wasted_bytes == 0 and s.needed == 1264)
            local adv = talloc.pool_advice(p)
            assert(adv.capacity == 1024 and adv.advised == 1264 and adv.change == 240 and adv.spills == 1)
            assert(adv.mallocs_saved == 1 and adv.block_bytes == 16 + 64 + 1264 and adv.allocations == 4)
            assert(adv.text:find("A capacity of 1264 would have served every allocation", 1, true), adv.text)
            -- the advice, applied: the same allocations, no spill
            local q = talloc.pool(nil, adv.advised)
            local a2 = talloc.size(q, 100); local b2 = talloc.size(q, 200); talloc.size(b2, 300)
            talloc.size(q, 200); talloc.size(q, 100)
            assert(talloc.pool_stats(q).spills == 0 and talloc.pool_stats(a2).used == 1264)
            """)
    }

    @Test("a freed pool that members pin: who pins it, and where they are")
    func pinned() {
        lua("""
            local outside = talloc.new(nil, "outside")
            local p = talloc.pool(nil, 4096)
            local keep = talloc.strdup(p, "data we want to keep")
            talloc.strdup(p, "scratch")
            talloc.steal(outside, keep)
            assert(talloc.pool_stats(p).stolen == 1)
            talloc.free(p)
            local s = talloc.pool_stats(keep)
            assert(s.freed and s.pinning_members == 1 and s.pinned_bytes == 16 + 64 + 4096)
            assert(#s.pinned_by == 1 and s.pinned_by[1].name == "data we want to keep")
            assert(s.pinned_by[1].size == 21 and s.pinned_by[1].parent == "outside")
            local adv, why = talloc.pool_advice(keep)
            assert(adv == nil and why == "the pool was freed (its statistics ended with it)")
            """)
    }

    @Test("the pinning members listed are bounded: at most 16, names cut at 256 bytes; all are counted")
    func pinnedListIsBounded() {
        lua("""
            local outside = talloc.new(nil, "outside")
            local p = talloc.pool(nil, 64 * 1024)
            local keep = {}
            for i = 1, 20 do keep[i] = talloc.size(p, 8); talloc.steal(outside, keep[i]) end
            talloc.set_name(keep[1], string.rep("n", 100000))
            talloc.set_name(outside, string.rep("o", 300))
            talloc.free(p)
            local s = talloc.pool_stats(keep[1])
            assert(s.freed and s.pinning_members == 20 and #s.pinned_by == 16, #s.pinned_by)
            assert(s.pinned_by[1].name == string.rep("n", 256) .. "...", #s.pinned_by[1].name)
            assert(s.pinned_by[1].parent == string.rep("o", 256) .. "...")
            assert(#s.pinned_by[2].name < 256 and s.pinned_by[2].parent == string.rep("o", 256) .. "...")
            """)
        let recorder = TallocPoolRecorder()
        TallocPoolRecorder.current = recorder
        defer { TallocPoolRecorder.current = nil }
        lua("""
            local outside = talloc.new(nil, "outside")
            local p = talloc.pool(nil, 1024)
            local k = talloc.size(p, 8)
            talloc.set_name(k, string.rep("k", 5000))
            talloc.steal(outside, k)
            talloc.free(p)
            """)
        let pin = recorder.sites.first?.pins.first
        #expect(pin?.members.first?.name == String(repeating: "k", count: 256) + "...")
        #expect(pin?.members.first?.parentName == "outside")
    }

    @Test("bad arguments and freed contexts are Lua errors; a context not in a pool gives nil and why")
    func errors() {
        #expect(luaError("talloc.pool_stats()")?.contains("bad argument #1 to 'pool_stats' (talloc.context expected, got no value)") == true)
        #expect(luaError("talloc.pool_advice(42)")?.contains("bad argument #1 to 'pool_advice' (talloc.context expected, got number)") == true)
        #expect(luaError("local p = talloc.pool(nil, 64); talloc.free(p); talloc.pool_stats(p)")?
            .contains("attempt to use a freed talloc context (") == true)
        #expect(luaError("local p = talloc.pool(nil, 64); talloc.set_name(p, 'mine'); talloc.free(p); p:pool_advice()")?
            .contains("attempt to use a freed talloc context ('mine')") == true)
        lua("""
            local c = talloc.new()
            local s, why = talloc.pool_stats(c)
            assert(s == nil and why == "not pool memory")
            local a, why2 = c:pool_advice()
            assert(a == nil and why2 == "not pool memory")
            local p = talloc.pooled_object(nil, 40, 2, 20, "obj")
            assert(p:pool_stats().capacity == 345 and p:pool_stats().used == 48)
            """)
    }

    @Test("a pool the host made without statistics says so")
    func hostPoolWithoutStatistics() throws {
        let rt = try LuaRuntime()
        defer { rt.close() }
        let pool = try TallocContext.pool(parent: nil, capacity: 256)
        defer { try? pool.free() }
        try rt.setGlobal("hostpool", .context(pool))
        let r = try rt.run("local s, why = talloc.pool_stats(hostpool); return s == nil, why")
        #expect(r == [true, "the pool keeps no statistics"])
    }

    /// A runtime with an 8 MiB limit whose Lua function `charge()` returns the root's current charge.
    static func chargingRuntime() throws -> LuaRuntime {
        let rt = try LuaRuntime(options: .init(memoryLimit: 8 << 20))
        try rt.register("charge") { [unowned rt] _ in [.integer(rt.root.memoryLimit?.current ?? -1)] }
        return rt
    }

    /// The collector stopped and twenty contexts kept, so the next two handles need no table growth.
    static let keepTwenty = """
        collectgarbage("stop")
        local keep = {}
        for i = 1, 20 do keep[i] = talloc.new() end     -- the handles' table has room for two more

        """

    @Test("the statistics record is charged to the state's memory, and given back with the pool")
    func statisticsAreCharged() throws {
        let rt = try Self.chargingRuntime()
        defer { rt.close() }
        let r = try rt.run(Self.keepTwenty + """
            local c0 = charge()
            keep[21] = talloc.new()
            local c1 = charge()
            keep[22] = talloc.pool(nil, 0)
            local c2 = charge()
            talloc.free(keep[22])
            local c3 = charge()
            return c1 - c0, c2 - c1, c2 - c3
            """)
        // a pool of capacity 0 takes 16 bytes more than a context of 0 bytes, and its statistics with the
        // record they live in (malloc's footprints)
        let statistics = ((TallocContext.poolStatisticsByteCount + 8 + 15) & ~15)
            + ((TallocContext.limitRecordByteCount + 8 + 15) & ~15)
        let plain = try #require(r[0].intValue), pool = try #require(r[1].intValue), freed = try #require(r[2].intValue)
        #expect(pool - plain == 16 + statistics, "\(r)")
        #expect(freed >= 80 + statistics, "the free gives the block and the statistics back: \(r)")
    }

    @Test("a first memory limit's record is charged to the state's memory, and given back with the context")
    func limitRecordIsCharged() throws {
        let rt = try Self.chargingRuntime()
        defer { rt.close() }
        let r = try rt.run(Self.keepTwenty + """
            keep[21] = talloc.new()
            local c0 = charge()
            talloc.set_memlimit(keep[21], 1000)
            local c1 = charge()
            talloc.set_memlimit(keep[21], 2000)             -- the record is there: nothing more
            local c2 = charge()
            talloc.free(keep[21])
            local c3 = charge()
            return c1 - c0, c2 - c1, c1 - c3
            """)
        let record = (TallocContext.limitRecordByteCount + 8 + 15) & ~15
        #expect(r[0] == .integer(record) && r[1] == 0, "\(r)")
        #expect((r[2].intValue ?? 0) >= 80 + record, "the free gives the block and the record back: \(r)")
    }

    @Test("making pools within a limit ends in 'not enough memory', their statistics counted")
    func poolsWithinALimit() throws {
        let rt = try LuaRuntime(options: .init(memoryLimit: 1 << 20))
        defer { rt.close() }
        let r = try rt.run("""
            local t, n = {}, 0
            local ok, err = pcall(function() while true do n = n + 1; t[n] = talloc.pool(nil, 0) end end)
            return ok, err, n
            """)
        #expect(r[0] == false && r[1].stringValue?.hasSuffix("not enough memory") == true)
        // each pool costs its block, its handle, its cell and side record, and its statistics: fewer
        // than 1 MiB / (80 + statistics)
        #expect((r[2].intValue ?? .max) < (1 << 20) / (80 + TallocContext.poolStatisticsByteCount + TallocContext.limitRecordByteCount))
    }
}

@Suite("traces: what a script did, replayed without it")
struct TraceReplayTests {
    static let workload = """
        local outside = talloc.new(nil, "outside")
        local function batch(capacity, n)
          local p = talloc.pool(nil, capacity)
          local items = {}
          for i = 1, n do items[i] = talloc.size(p, 40 + (i * 37) % 200) end
          for i = 1, n, 3 do talloc.free(items[i]) end            -- holes, reclaims
          local grown = talloc.realloc(items[2], 500)               -- a move, maybe a spill
          talloc.strdup_append(talloc.strdup(p, "abc"), "defgh")
          talloc.steal(outside, items[3])                           -- pins the pool
          talloc.set_name(p, "batch pool")
          talloc.free(p)
        end
        for round = 1, 3 do batch(1024 * round, 20) end
        local q = talloc.pool(outside, 2048)                         -- alive at exit
        local r = talloc.reference(q, talloc.size(q, 10))
        talloc.free_children(q)
        local o = talloc.pooled_object(outside, 64, 3, 100, "obj")
        for i = 1, 3 do talloc.zero(o, 30) end
        do local dropped = talloc.pool(nil, 512); talloc.size(dropped, 100) end
        collectgarbage(); collectgarbage()                           -- the collector frees 'dropped'
        """

    /// Runs the workload with a recorder and a trace writer on this thread; the pools' sites as the
    /// recorder summed them, and the trace's text.
    static func traced(_ code: String) throws -> ([TallocPoolRecorder.Site], String) {
        var text: [UInt8] = []
        let recorder = TallocPoolRecorder()
        let writer = TallocTraceWriter(sink: { text.append(contentsOf: $0); return true })
        TallocPoolRecorder.current = recorder
        TallocTraceWriter.current = writer
        defer {
            TallocPoolRecorder.current = nil
            TallocTraceWriter.current = nil
        }
        let rt = try LuaRuntime()
        try rt.run(code, chunkName: "=workload")
        TallocTraceWriter.current = nil
        writer.flush()
        recorder.isClosing = true
        rt.close()
        return (recorder.sites, String(decoding: text, as: UTF8.self))
    }

    /// What the live run and the replay must agree on (the pinning members' names differ: the replay
    /// names contexts by their number).
    static func comparable(_ s: TallocPoolRecorder.Site) -> [Int] {
        [s.pools, s.minCapacity, s.maxCapacity, s.peakUsed, s.allocations, s.spills, s.spilledBytes, s.largestSpill,
         s.poolsThatSpilled, s.neededCapacity, s.holes, s.holeBytes, s.reclaims, s.resets, s.stolen, s.pinned,
         s.aliveAtExit, s.pins.count] + s.pins.flatMap { [$0.capacity, $0.pinnedBytes, $0.memberCount, $0.atExit ? 1 : 0] }
    }

    @Test("a trace replays to the same pool statistics as the live run")
    func replayMatchesTheLiveRun() throws {
        let (live, text) = try TraceReplayTests.traced(TraceReplayTests.workload)
        let ops = try TallocTrace.parse(text)
        #expect(ops.contains { if case .free = $0 { return true } else { return false } })
        let replay = TallocTrace.replay(ops)
        #expect(replay.failed == 0, "\(replay.failedOperations)")
        #expect(live.map(\.name) == replay.sites.map(\.name))
        #expect(live.count == 4)
        #expect(live.map(TraceReplayTests.comparable) == replay.sites.map(TraceReplayTests.comparable),
                "live \(live)\nreplay \(replay.sites)")
        #expect(live.first?.spills ?? 0 > 0 && live.first?.pinned == 3, "\(live.first!)")
    }

    /// Destructors that refuse (return false, or raise) while their chunk is freed with an ancestor, by
    /// free_children, or by <close>: the survivors live on in the script (finding A1 of adv2: the replay
    /// freed them, so its statistics and every later operation on them diverged).
    static let refusals = """
        local p = talloc.pool(nil, 1024)
        local keep = talloc.size(p, 100, "keep")
        talloc.set_destructor(keep, function() return false end)
        local parent = talloc.new(nil, "parent")
        talloc.steal(parent, p)
        assert(talloc.free(parent) == true)                          -- keep refuses twice and survives
        talloc.set_destructor(keep, nil)
        talloc.realloc(keep, 200)
        talloc.free(keep)
        local q = talloc.pool(nil, 1024)
        local a = talloc.size(q, 100, "a")
        talloc.set_destructor(a, function() return false end)
        talloc.free_children(q)                                      -- a survives: no reset
        for i = 1, 8 do talloc.size(q, 100) end
        talloc.set_destructor(a, nil)
        talloc.free_children(q)
        for i = 1, 8 do talloc.size(q, 100) end
        local r = talloc.pool(nil, 512)
        local e = talloc.size(r, 100, "raises")
        talloc.set_destructor(e, function() error("no") end)
        assert(not pcall(talloc.free, r))                            -- r is freed; e survives, the error reaches us
        assert(talloc.is_freed(r) and not talloc.is_freed(e))
        assert(not pcall(talloc.free, e))                            -- e itself refuses by raising
        talloc.set_destructor(e, nil)
        talloc.size(e, 10)
        local x = talloc.pool(nil, 300)
        talloc.set_destructor(x, function() return false end)
        assert(talloc.free(x) == false)                              -- refused at the top: nothing happened
        do local y <close> = x end                                   -- refused again by <close>
        talloc.size(x, 100)
        talloc.set_destructor(x, nil)
        talloc.free(x)
        """

    @Test("destructors that refuse replay as refusals: the same survivors, the same statistics")
    func refusalsReplay() throws {
        let (live, text) = try TraceReplayTests.traced(TraceReplayTests.refusals)
        let replay = TallocTrace.replay(try TallocTrace.parse(text))
        #expect(replay.failed == 0, "\(replay.failedOperations)\n\(text)")
        #expect(live.map(TraceReplayTests.comparable) == replay.sites.map(TraceReplayTests.comparable),
                "live \(live)\nreplay \(replay.sites)\n\(text)")
    }

    @Test("a free of a context already being freed (from a destructor its free runs) is not written: talloc does nothing (finding A7 of adv2)")
    func freeDuringItsOwnFree() throws {
        let (live, text) = try TraceReplayTests.traced("""
            local p = talloc.pool(nil, 1000)
            local kid = talloc.size(p, 100, "kid")
            local other = talloc.new(nil, "other")
            talloc.set_destructor(kid, function() assert(talloc.free(p)); talloc.steal(other, talloc.size(p, 50)) end)
            talloc.free(p)
            """)
        let replay = TallocTrace.replay(try TallocTrace.parse(text))
        #expect(replay.failed == 0, "\(replay.failedOperations)\n\(text)")
        #expect(live.map(TraceReplayTests.comparable) == replay.sites.map(TraceReplayTests.comparable),
                "live \(live)\nreplay \(replay.sites)\n\(text)")
    }

    @Test("pools in pools: replayed at the advised capacities, no pool spills (finding A5 of adv2)")
    func nestedPoolsAdvice() throws {
        let (_, text) = try TraceReplayTests.traced("""
            local outer = talloc.pool(nil, 2000)
            local inner = talloc.pool(outer, 600)
            talloc.size(outer, 200)
            for i = 1, 4 do talloc.size(inner, 300) end               -- inner spills: its advice grows it
            local deep = talloc.pool(inner, 100)
            for i = 1, 3 do talloc.size(deep, 80) end
            """)
        let ops = try TallocTrace.parse(text)
        let (capacities, first) = TallocTrace.advisedCapacities(ops)
        #expect(first.pools.reduce(0) { $0 + $1.spills } > 0)
        let advised = TallocTrace.replay(ops, capacity: .perPool(capacities))
        #expect(advised.failed == 0 && advised.pools.reduce(0) { $0 + $1.spills } == 0, "\(advised.pools)")
    }

    @Test("replayed with the advice, no pool spills; without pools, nothing is carved")
    func replayStrategies() throws {
        let (_, text) = try TraceReplayTests.traced(TraceReplayTests.workload)
        let ops = try TallocTrace.parse(text)
        let first = TallocTrace.replay(ops)
        #expect(first.pools.reduce(0) { $0 + $1.spills } > 0)
        let advised = TallocTrace.replay(ops, capacity: .perPool(first.advisedCapacities))
        #expect(advised.failed == 0 && advised.pools.reduce(0) { $0 + $1.spills } == 0)
        #expect(advised.carved > first.carved && advised.mallocs < first.mallocs)
        let none = TallocTrace.replay(ops, capacity: .none)
        #expect(none.carved == 0 && none.pools.isEmpty && none.chunks == first.chunks)
        let fixed = TallocTrace.replay(ops, capacity: .fixed(64))
        #expect(fixed.poolCapacities.values.allSatisfy { $0 == 64 || $0 > 64 })  // pooled objects keep their object
    }

    @Test("every line of a trace parses back to the operation it was written from")
    func formatRoundTrips() throws {
        let ops: [TallocTrace.Operation] = [
            .new(id: 1, parent: 0, size: 5), .pool(id: 2, parent: 1, capacity: 1024, site: "a file.lua:12"),
            .pool(id: 3, parent: 0, capacity: 0, site: nil),
            .pooledObject(id: 4, parent: 2, size: 8, count: 2, bytes: 30, site: "x:1"), .external(id: 5, parent: 0, size: 7),
            .realloc(id: 1, size: 9), .free(id: 1), .freeChildren(id: 2), .steal(id: 4, parent: 0),
            .reparent(id: 4, old: 0, new: 5), .reference(id: 5, parent: 2), .unlink(id: 5, parent: 2),
            .setName(id: 2, length: 3, child: 6), .memlimit(id: 5, bytes: 100), .refuse(id: 5),
        ]
        let text = TallocTrace.header + "\n# a comment\n\n" + ops.map(\.line).joined(separator: "\n") + "\n"
        #expect(try TallocTrace.parse(text) == ops)
        #expect(throws: TallocTrace.ParseError.self) { try TallocTrace.parse("not a trace\n") }
        #expect(throws: TallocTrace.ParseError.self) { try TallocTrace.parse(TallocTrace.header + "\nN 1 0\n") }
        #expect(throws: TallocTrace.ParseError.self) { try TallocTrace.parse(TallocTrace.header + "\nN 1 0 -5\n") }
        #expect(throws: TallocTrace.ParseError.self) { try TallocTrace.parse(TallocTrace.header + "\nQ 1\n") }
        do {
            _ = try TallocTrace.parse(TallocTrace.header + "\nN 1 0 1\nF x\n")
        } catch {
            #expect(error.line == 3)
        }
    }

    @Test("the writer's bytes are the operations' lines: every kind, numbers of every length, sites with line breaks")
    func writerWritesTheLines() throws {
        var ops: [TallocTrace.Operation] = [
            .new(id: 1, parent: 0, size: 5), .pool(id: 2, parent: 1, capacity: 1024, site: "a file.lua:12"),
            .pool(id: 3, parent: 0, capacity: 0, site: nil),
            .pooledObject(id: 4, parent: 2, size: 8, count: 2, bytes: 30, site: "x:1"), .external(id: 5, parent: 0, size: 7),
            .realloc(id: 1, size: 9), .free(id: 1), .freeChildren(id: 2), .steal(id: 4, parent: 0),
            .reparent(id: 4, old: 0, new: 5), .reference(id: 5, parent: 2), .unlink(id: 5, parent: 2),
            .setName(id: 2, length: 3, child: 6), .memlimit(id: 5, bytes: 100), .refuse(id: 5),
        ]
        var n = 1
        for _ in 0..<18 { ops.append(.new(id: n - 1, parent: n, size: n + 1)); n *= 10 }
        ops.append(.reparent(id: Int.max, old: Int.max - 1, new: 9_999_999_999))
        // enough lines to flush the 64 KiB buffer a few times
        for i in 0..<20_000 { ops.append(.pooledObject(id: i, parent: i / 2, size: i % 977, count: i % 3, bytes: i * 7, site: "s:\(i)")) }
        var text: [UInt8] = []
        let writer = TallocTraceWriter(sink: { text.append(contentsOf: $0); return true }, comment: "two\nlines")
        for op in ops { writer.write(op) }
        writer.write(.pool(id: 9, parent: 0, capacity: 64, site: "=a\nF 1\r:3"))
        writer.flush()
        #expect(writer.operations == ops.count + 1 && !writer.failed)
        let parsed = try TallocTrace.parse(String(decoding: text, as: UTF8.self))
        #expect(Array(parsed.dropLast()) == ops)
        #expect(parsed.last == .pool(id: 9, parent: 0, capacity: 64, site: "=a?F 1?:3"))
    }

    @Test("the writer's table of context numbers: growth, removals and moves keep every number")
    func writerNumbersContexts() {
        let writer = TallocTraceWriter(sink: { _ in true })
        let blocks = (0..<50_000).map { _ in UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16) }
        defer { for b in blocks { b.deallocate() } }
        var expected: [Int] = []
        for b in blocks { expected.append(writer.assign(b)) }
        #expect(expected == Array(1...blocks.count))
        for i in stride(from: 0, to: blocks.count, by: 2) { writer.forget(blocks[i]) }
        for i in stride(from: 1, to: blocks.count - 1, by: 4) { writer.moved(from: blocks[i], to: blocks[i - 1]) }
        var ok = true
        for i in 0..<blocks.count {
            let want: Int? = i % 2 == 1 ? (i % 4 == 1 && i < blocks.count - 1 ? nil : i + 1) : (i % 4 == 0 && i + 1 < blocks.count - 1 ? i + 2 : nil)
            if writer.peek(blocks[i]) != want { ok = false; break }
        }
        #expect(ok)
        // numbers are never reused, and a sink that refuses ends the trace
        #expect(writer.assign(blocks[0]) == blocks.count + 1)
        let refusing = TallocTraceWriter(sink: { _ in false })
        refusing.write(.free(id: 1))
        refusing.flush()
        #expect(refusing.failed)
    }

    @Test("a trace that does not hold together replays what it can")
    func inconsistentTrace() throws {
        let ops = try TallocTrace.parse(TallocTrace.header + "\nF 7\nN 1 9 10\nP 2 0 100\nN 3 2 10\nF 2\nR 3 20\nS 3 0\n")
        let r = TallocTrace.replay(ops)
        #expect(r.operations == 7 && r.failed == 4 && r.failedOperations == [0, 1, 5, 6])
    }
}
