// luatalloc — LuaTalloc tests: the budget sees the work no instruction count sees (issue 10, findings F1
// and F9): collections the runtime starts after "not enough memory", walks inside module functions,
// allocations at the bottom of deep chains under a limit.
// SPDX-License-Identifier: MIT
//
// Each attack is a loop of a few VM instructions whose calls each do long work. With that work charged
// (in Lua's units: a full collection as `collectgarbage` charges it, a step of a walk over chunks as a few
// instructions), a small budget stops the loop after a few rounds; uncharged, the loop runs to its end
// (and, unbounded, for minutes or hours). No timing is measured: the rounds done are counted.

import CLua
import CLuaShims
import LuaTalloc
import TallocCore
import Testing

/// A runtime for the attacks: a sandbox of `memory` bytes and `budget` instructions per entry.
private func sandbox(memory: Int, budget: Int) throws -> LuaRuntime {
    try LuaRuntime(options: .sandbox(memoryLimit: memory, instructionLimit: budget))
}

/// Runs `attack` (a loop that sets the global `rounds`) in `rt`: it must end with the instruction budget
/// exhausted after fewer than `most` rounds. Returns the rounds done.
@discardableResult
private func expectStopped(_ rt: LuaRuntime, _ name: String, _ attack: String, most: Int,
                           sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
    try rt.run("rounds = 0")
    do {
        try rt.run(attack, chunkName: "=" + name)
        Issue.record("\(name): the loop ran to its end within the budget", sourceLocation: sourceLocation)
    } catch {
        #expect(error.kind == .budget(.instructions), "\(name): \(error)", sourceLocation: sourceLocation)
    }
    let rounds = try rt.run("return rounds")[0].intValue ?? -1
    #expect(rounds >= 0 && rounds < most, "\(name): \(rounds) rounds", sourceLocation: sourceLocation)
    // the runtime goes on: a new entry has its whole budget
    #expect(try rt.run("return 1 + 1") == [2], sourceLocation: sourceLocation)
    return rounds
}

@Suite("The budget sees the work of single calls (F1, F9)", .serialized)
struct BudgetWorkTests {
    /// Fills the sandbox with small tables up to its limit, then gives a little room back.
    static let fill = """
        keep = {}
        pcall(function() for i = 1, 1e7 do keep[i] = {i} end end)
        for i = #keep, #keep - 2000, -1 do keep[i] = nil end
        """

    @Test("a caught 'not enough memory' pays for the collections the runtime runs (F1)")
    func caughtOutOfMemory() throws {
        let rt = try sandbox(memory: 16 << 20, budget: 20_000_000)
        try rt.run(Self.fill)
        // the module's collect-and-retry and the collecting pcall: four full collections a round
        try expectStopped(rt, "talloc.size", "for i = 1, 200 do pcall(talloc.size, nil, 200 << 20) rounds = i end", most: 40)
        // without the module: Lua's emergency collection and the collecting pcall
        try expectStopped(rt, "concat", """
            for i = 1, 20000 do keep[#keep] = nil end           -- room for s (the result never fits)
            local s = string.rep("x", 256 << 10)
            for i = 1, 200 do
              pcall(function() return s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s end)
              rounds = i
            end
            """, most: 40)
        // the same through coroutine.resume, which collects as pcall does
        try expectStopped(rt, "resume", """
            local function f() return talloc.size(nil, 200 << 20) end
            for i = 1, 200 do
              local ok, co = pcall(coroutine.create, f)
              if ok then coroutine.resume(co) end
              rounds = i
            end
            """, most: 40)
    }

    @Test("a heap kept at its limit pays for Lua's emergency collections, past the first few of an entry")
    func emergencyCollections() throws {
        let rt = try sandbox(memory: 16 << 20, budget: 5_000_000)
        try rt.run(Self.fill)
        // every few rounds the garbage string fits only after a full (emergency) collection of the heap
        try expectStopped(rt, "emergency", """
            for i = 1, 20000 do keep[#keep] = nil end
            local s = string.rep("x", 100000)
            for i = 1, 5000 do local t = s .. s .. s .. s rounds = i end
            """, most: 1000)
        // filling the memory up to "not enough memory" meets a few dozen: free, the memory error comes first
        let small = try LuaRuntime(options: .init(memoryLimit: 4 << 20, libraries: .safe, instructionLimit: 1_000_000))
        let e = try #require(throws: LuaRuntime.RuntimeError.self) {
            try small.run("local t = {} for i = 1, 1e7 do t[i] = ('x'):rep(64) .. i end")
        }
        #expect(e.isOutOfMemory, "\(e)")
    }

    @Test("module functions that walk a subtree pay for it (F9)")
    func subtreeWalks() throws {
        let rt = try sandbox(memory: 8 << 20, budget: 5_000_000)
        // ~28,000 children of one context (handles dropped: the chunks stay); 1 MiB of room left for the
        // loops themselves (their chunks are compiled in the full sandbox)
        try rt.run("""
            local pad = string.rep("x", 1 << 20)
            holder, a, b = talloc.new(nil, "holder"), talloc.new(nil, "a"), talloc.new(nil, "b")
            root = talloc.new(holder, "root")
            pcall(function() for i = 1, 1e6 do talloc.size(root, 0, "") end end)
            pad = nil
            collectgarbage() collectgarbage()
            """)
        let blocks = try rt.run("return talloc.total_blocks(root)")[0].intValue ?? 0
        #expect(blocks > 10_000)
        let loops: [(String, String)] = [
            ("steal", "for i = 1, 400 do talloc.steal(i % 2 == 0 and a or b, root) rounds = i end"),
            ("steal back", "talloc.steal(holder, root)"),
            ("total_size", "for i = 1, 400 do local x = talloc.total_size(root) rounds = i end"),
            ("total_blocks", "for i = 1, 400 do local x = talloc.total_blocks(root) rounds = i end"),
            // one level: two lines of text, but the totals sum the whole subtree
            ("report", "for i = 1, 400 do local r = talloc.report(holder, {addresses = false}) rounds = i end"),
        ]
        for (name, loop) in loops {
            if name == "steal back" { try rt.run(loop); continue }
            try expectStopped(rt, name, loop, most: 100)
        }
    }

    @Test("a pool's map walks its members; reference lists walk the references (F9)")
    func poolsAndReferences() throws {
        let rt = try sandbox(memory: 8 << 20, budget: 5_000_000)
        try rt.run("""
            pool = talloc.pool(nil, 4 << 20)
            pcall(function() for i = 1, 1e6 do talloc.size(pool, 0, "") end end)
            collectgarbage() collectgarbage()
            """)
        #expect(try rt.run("return talloc.pool_info(pool).objects > 10000") == [true])
        try expectStopped(rt, "pool_map", "for i = 1, 400 do local m = talloc.pool_map(pool) rounds = i end", most: 100)
        try rt.run("""
            talloc.free(pool) pool = nil collectgarbage()
            local pad = string.rep("x", 1 << 20)
            c, owner, other = talloc.new(nil, "c"), talloc.new(nil, "owner"), talloc.new(nil, "other")
            pcall(function() for i = 1, 1e6 do talloc.reference(owner, c) end end)
            pad = nil
            collectgarbage() collectgarbage()
            """)
        #expect(try rt.run("return talloc.reference_count(c) > 10000") == [true])
        try expectStopped(rt, "reference_count", "for i = 1, 400 do local n = talloc.reference_count(c) rounds = i end", most: 100)
        try expectStopped(rt, "unlink", "for i = 1, 400 do talloc.unlink(other, c) rounds = i end", most: 100)
    }

    @Test("allocations at the bottom of a deep chain under a limit pay for the walk up to it (F9)")
    func deepChainUnderALimit() throws {
        let rt = try sandbox(memory: 8 << 20, budget: 5_000_000)
        let rounds = try expectStopped(rt, "chain", """
            local c = talloc.new(nil, "top")
            keep = c
            for i = 1, 15000 do c = talloc.new(c, "") rounds = i end
            """, most: 15000)
        #expect(rounds > 100)
    }

    @Test("walks up a chain pay for it: the module's find_parent_byname, TallocCore's is_parent (F9)")
    func moduleWalksUp() throws {
        let rt = try sandbox(memory: 8 << 20, budget: 5_000_000)
        // a 20,000-deep chain the host built (TallocCore, outside every limit), lent to the script
        let top = try TallocContext.new(parent: nil, name: "top")
        defer { try? top.free() }
        var c = top
        for _ in 0..<20_000 { c = try TallocContext.new(parent: c, name: "link") }
        try rt.setGlobal("top", .context(top))
        try rt.run("bottom = top for i = 1, 20000 do bottom = talloc.children(bottom)() end")
        #expect(try rt.run("return talloc.get_name(bottom), talloc.children(bottom)()") == ["link", .nil])
        try expectStopped(rt, "find_parent_byname",
                          "for i = 1, 400 do local p = talloc.find_parent_byname(bottom, 'nowhere') rounds = i end", most: 100)
        // TallocCore's walk up (is_parent), for comparison
        try expectStopped(rt, "is_parent", "for i = 1, 400 do local p = talloc.is_parent(bottom, bottom) and talloc.is_parent(bottom, talloc.new()) rounds = i end", most: 100)
        rt.close()
    }

    @Test("ordinary module work fits a modest budget, and what a call costs is not charged twice")
    func ordinaryWorkIsCheap() throws {
        let rt = try sandbox(memory: 16 << 20, budget: 1_000_000)
        let r = try rt.run("""
            local p = talloc.pool(nil, 65536)
            local kids = {}
            for i = 1, 500 do kids[i] = talloc.strdup(p, "k" .. i) end
            local c = talloc.new(nil, "c")
            for i = 1, 200 do talloc.steal(c, kids[i]) end
            local chain = c
            for i = 1, 50 do chain = talloc.new(chain, "l") end
            local found = talloc.find_parent_byname(chain, "c")
            local text = talloc.report_full(c, {addresses = false})
            local ok = pcall(talloc.size, nil, 100 << 20)
            return talloc.total_blocks(c), rawequal(found, c), #text > 0, ok
            """)
        #expect(r == [251, true, true, false])
    }
}
