// luatalloc — LuaTalloc tests: the Swift host API (issue 5)
// SPDX-License-Identifier: MIT

import Foundation
import LuaTalloc
import TallocCore
import Testing

@Suite struct HostAPITests {
    // MARK: Values

    @Test func scalarsComeBackAsSwiftValues() throws {
        let rt = try LuaRuntime()
        let r = try rt.run("return nil, true, 42, 1.5, 'hé', '\\xff\\x00', 2^53")
        #expect(r == [.nil, .boolean(true), .integer(42), .number(1.5), .string("hé"), .bytes([0xff, 0]), .number(9007199254740992)])
        #expect(r[2].intValue == 42 && r[3].doubleValue == 1.5 && r[4].stringValue == "hé")
        #expect(try rt.run("return").isEmpty)
    }

    @Test func nestedTablesRoundTrip() throws {
        let rt = try LuaRuntime()
        let value: LuaValue = ["name": "tree", "sizes": [1, 2, 3], "nested": ["deep": ["deeper": [true, 2.5]]], 7: "seven"]
        try rt.setGlobal("v", value)
        try rt.run("""
        assert(v.name == "tree" and #v.sizes == 3 and v.sizes[3] == 3)
        assert(v.nested.deep.deeper[1] == true and v.nested.deep.deeper[2] == 2.5)
        assert(v[7] == "seven")
        """)
        #expect(try rt.global("v") == value)
        let back = try rt.run("return {10, 20, 30, n = 3}")[0]
        #expect(back.arrayValue == [10, 20, 30])
        #expect(back["n"] == 3)
        #expect(back.dictionaryValue?["n"] == .integer(3))
    }

    @Test func cyclesBecomeMarkersAndComeBackAsCycles() throws {
        let rt = try LuaRuntime()
        let v = try rt.run("""
        local t = {name = "t"}
        t.self = t
        t.child = {up = t, me = nil}
        t.child.me = t.child
        return t
        """)[0]
        #expect(v["self"] == .cycle(levelsUp: 1))
        #expect(v["child"]["up"] == .cycle(levelsUp: 2))
        #expect(v["child"]["me"] == .cycle(levelsUp: 1))
        try rt.setGlobal("t2", v)
        try rt.run("""
        assert(t2.self == t2 and t2.child.up == t2 and t2.child.me == t2.child and t2.name == "t")
        """)
        // a graph with much sharing converts in linear time
        let shared = try rt.run("""
        local t = {}
        for i = 1, 64 do t = {a = t, b = t} end
        return t
        """)[0]
        #expect(shared["a"]["a"]["b"].tableValue != nil)
    }

    @Test func deepTablesAreAnErrorNotACrash() throws {
        let rt = try LuaRuntime(options: .init(libraries: .all, maxTableDepth: 50))
        #expect(throws: LuaRuntime.RuntimeError.self) {
            try rt.run("local t = {} for i = 1, 100 do t = {t} end return t")
        }
        #expect(try rt.run("return 1") == [1])
    }

    @Test func functionsAreHandlesAndOtherValuesAreOpaque() throws {
        let rt = try LuaRuntime()
        let r = try rt.run("return print, coroutine.create(print), io.stdout")
        #expect(r.map(\.typeName) == ["function", "thread", "userdata"])
        guard case .function = r[0], case .opaque = r[1], case .opaque = r[2] else { Issue.record("\(r)"); return }
        try rt.setGlobal("f", r[0])  // a function goes back as itself
        #expect(try rt.run("return f == print") == [true])
        #expect(throws: LuaRuntime.RuntimeError.self) { try rt.setGlobal("co", r[1]) }
    }

    // MARK: Globals and calls

    @Test func globals() throws {
        let rt = try LuaRuntime()
        try rt.setGlobal("answer", 42)
        #expect(try rt.run("return answer + 1") == [43])
        try rt.run("greeting = 'hi'")
        #expect(try rt.global("greeting") == "hi")
        #expect(try rt.global("missing") == .nil)
        try rt.setGlobal("answer", .nil)
        #expect(try rt.run("return answer") == [.nil])
        try rt.run("function add(a, b) return a + b, a * b end")
        #expect(try rt.call("add", 3, 4) == [7, 12])
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try rt.call("nope") }
        #expect(e.message == "function 'nope' not found")
        #expect(try rt.run("return ...", arguments: [1, "two"]) == [1, "two"])
    }

    // MARK: Swift functions

    struct Refused: Error, CustomStringConvertible { var description: String { "refused by Swift" } }

    @Test func swiftFunctionsAreCallableFromLua() throws {
        let rt = try LuaRuntime()
        var seen: [[LuaValue]] = []
        try rt.register("swift_sum") { args in
            seen.append(args)
            return [.integer(args.compactMap(\.intValue).reduce(0, +)), "done"]
        }
        #expect(try rt.run("return swift_sum(1, 2, 3)") == [6, "done"])
        #expect(try rt.run("local t = {x = 1}; return select('#', swift_sum(t))") == [2])
        #expect(seen.last == [["x": 1]])
    }

    @Test func aThrowingSwiftFunctionRaisesALuaError() throws {
        let rt = try LuaRuntime()
        try rt.register("fail") { _ in throw Refused() }
        try rt.register("failExactly") { args in throw LuaError("bad input: \(args.first?.stringValue ?? "?")") }
        // the error reaches Lua with the caller's position, and pcall catches it
        let r = try rt.run("""
        local ok, err = pcall(fail)
        local ok2, err2 = pcall(function() failExactly("x") end)
        return ok, err, ok2, err2
        """, chunkName: "=test")
        #expect(r[0] == false && r[2] == false)
        #expect(r[1].stringValue == "refused by Swift")  // called by pcall (C): no position
        #expect(r[3].stringValue == "test:2: bad input: x")
        // uncaught: it ends the chunk; the host survives and the runtime is usable
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try rt.run("fail()", chunkName: "=test") }
        #expect("\(e)".hasPrefix("test:1: refused by Swift"))
        #expect(try rt.run("return 1 + 1") == [2])
        // a long message is not cut
        let long = String(repeating: "x", count: 1000)
        try rt.register("failLong") { _ in throw LuaError(long) }
        let e2 = try #require(throws: LuaRuntime.RuntimeError.self) { try rt.run("failLong()") }
        #expect("\(e2)".contains(long))
    }

    @Test func swiftFunctionsCanReenterTheRuntime() throws {
        let rt = try LuaRuntime()
        defer { rt.close() }  // the closure holds the runtime: close() lets go of it
        try rt.register("eval") { args in try rt.run(args[0].stringValue ?? "") }
        #expect(try rt.run("return eval('return 6 * 7')") == [42])
        // from a coroutine: the nested run uses the coroutine's thread
        #expect(try rt.run("""
        local co = coroutine.wrap(function() local x = eval('return 5'); coroutine.yield(x + 1) end)
        return co()
        """) == [6])
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try rt.run("eval('error(\"inner\")')") }
        #expect("\(e)".contains("inner"))
    }

    // MARK: Memory limit

    @Test func aScriptOverItsMemoryLimitFailsAndTheRuntimeStaysUsable() throws {
        let rt = try LuaRuntime(options: .init(memoryLimit: 2 << 20))
        let e = try #require(throws: LuaRuntime.RuntimeError.self) {
            try rt.run("local t = {} for i = 1, 1e7 do t[i] = ('x'):rep(100) .. i end")
        }
        #expect(e.isOutOfMemory)
        #expect("\(e)".contains("not enough memory"))
        let e2 = try #require(throws: LuaRuntime.RuntimeError.self) {
            try rt.run("local t = {} for i = 1, 1e6 do t[i] = talloc.size(nil, 1000) end")
        }
        #expect("\(e2)".contains("not enough memory"))
        #expect(try rt.run("collectgarbage(); return #('x'):rep(1000)") == [1000])
        #expect(rt.root.totalSize <= 2 << 20)
    }

    // MARK: Budget

    @Test func aRunawayScriptIsStoppedByItsInstructionBudget() throws {
        let rt = try LuaRuntime(options: .init(libraries: .all, instructionLimit: 1_000_000))
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try rt.run("while true do end") }
        #expect(e.kind == .budget(.instructions))
        let m = e.message
        #expect(m.contains("instruction budget exhausted"))
        // catching it does not help: the next instruction stops the script again
        let e2 = try #require(throws: LuaRuntime.RuntimeError.self) {
            try rt.run("while true do pcall(function() while true do end end) end")
        }
        #expect("\(e2)".contains("budget exhausted"))
        // nor does a coroutine
        let e3 = try #require(throws: LuaRuntime.RuntimeError.self) {
            try rt.run("local co = coroutine.wrap(function() while true do end end) co()")
        }
        #expect("\(e3)".contains("instruction budget exhausted"))
        // each entry has the whole budget: the runtime is usable, and a modest script runs
        #expect(try rt.run("local s = 0 for i = 1, 10000 do s = s + i end return s") == [50005000])
        #expect(try rt.run("return 1") == [1])
    }

    @Test func aRunawayScriptIsStoppedByItsTimeBudget() throws {
        let rt = try LuaRuntime(options: .init(libraries: .all, timeLimit: .milliseconds(100)))
        let start = ContinuousClock.now
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try rt.run("while true do end") }
        #expect("\(e)".contains("time budget exhausted"))
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(try rt.run("return 2") == [2])
    }

    // MARK: Contexts

    @Test func aContextMadeByLuaComesBackToSwift() throws {
        let rt = try LuaRuntime()
        let r = try rt.run("local c = talloc.new(nil, 'made in lua'); talloc.strdup(c, 'child'); keep = c; return c")
        let c = try #require(r[0].contextValue)
        #expect(c.name == "made in lua" && c.isParent(rt.contexts))
        #expect(c.totalBlocks == 2)
        // the same handle when passed back
        #expect(try rt.run("return ...", arguments: [r[0]]) == r)
        #expect(try rt.run("return rawequal(keep, ...)", arguments: [.context(c)]) == [true])
        // freed by Lua: the value reads as a freed handle
        let f = try rt.run("talloc.free(keep); return keep")[0]
        #expect(f == .opaque(LuaOpaque(kind: .freedContext, address: 0)))
    }

    @Test func aHostContextLentToLuaKeepsItsIdentityAndSurvivesTheCollector() throws {
        let host = try TallocContext.new(parent: nil, name: "host root")
        defer { try? host.free() }
        let child = try TallocContext.new(parent: host, name: "host child")
        do {
            let rt = try LuaRuntime()
            try rt.setGlobal("root", .context(host))
            try rt.setGlobal("child", .context(child))
            try rt.run("""
            assert(rawequal(child:parent(), root))
            assert(root:get_name() == "host root")
            talloc.strdup(root, "made by lua")
            local tmp = talloc.new(child, "temporary")
            """)
            // every handle dropped and collected: the host's tree is not freed by the collector
            try rt.run("root = nil child = nil collectgarbage() collectgarbage()")
            #expect(host.isValid && child.isValid)
            #expect(host.totalBlocks == 4)
            #expect(rt.lentContext(host) == host)
            // identity: what comes back is the host's context
            let back = try rt.run("return (...)", arguments: [.context(child)])[0]
            #expect(back.contextValue == child)
            rt.close()
        }
        // after close the tree is the host's, with what Lua made in it; freeing it is safe
        #expect(host.totalBlocks == 4)
        try child.free()
        #expect(host.totalBlocks == 2)
    }

    @Test func theRuntimesOwnContextsNeverReachLua() throws {
        let rt = try LuaRuntime()
        for c in [rt.root, rt.contexts, rt.heap] {
            #expect(throws: LuaRuntime.RuntimeError.self) { try rt.setGlobal("x", .context(c)) }
        }
        #expect(try rt.run("return x") == [.nil])
    }

    @Test func luaCannotCrashTheHostByFreeingALentContext() throws {
        let host = try TallocContext.new(parent: nil, name: "host")
        defer { try? host.free() }
        let lent = try TallocContext.new(parent: host, name: "lent")
        let rt = try LuaRuntime()
        try rt.setGlobal("lent", .context(lent))
        try rt.run("talloc.new(lent, 'x'); assert(talloc.free(lent))")
        #expect(rt.lentContext(lent) == nil)  // the host learns it without touching freed memory
        #expect(try rt.run("return talloc.is_freed(lent)") == [true])
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try rt.run("return lent:get_name()") }
        #expect("\(e)".contains("attempt to use a freed talloc context"))
        #expect(host.totalBlocks == 1)
        rt.close()
    }

    @Test func theHostFreesALentContextInsideWithContexts() throws {
        let host = try TallocContext.new(parent: nil, name: "host")
        defer { try? host.free() }
        let rt = try LuaRuntime()
        try rt.setGlobal("root", .context(host))
        try rt.run("""
        item = talloc.new(root, "item")
        item:set_destructor(function() destroyed = true end)
        """)
        let item = try #require(try rt.global("item").contextValue)
        try rt.withContexts { try item.free() }
        #expect(try rt.run("return talloc.is_freed(item), destroyed") == [true, true])
        rt.close()
        #expect(host.totalBlocks == 1)
    }

    @Test func closingDropsLuaDestructorsOnLentTrees() throws {
        let host = try TallocContext.new(parent: nil, name: "host")
        defer { try? host.free() }
        do {
            let rt = try LuaRuntime()
            try rt.setGlobal("root", .context(host))
            try rt.run("""
            local c = talloc.new(root, "with destructor")
            c:set_destructor(function() error("must not run after close") end)
            local mine = talloc.new(nil, "lua's own")
            talloc.reference(root, mine)        -- a reference from the host's tree to Lua's context
            """)
            rt.close()
        }
        #expect(host.totalBlocks == 2)  // host + "with destructor"; the reference was dropped
        host.freeChildren()  // no destructor runs, no observer is called
        #expect(host.totalBlocks == 1)
    }

    // MARK: Sandbox

    @Test func theSandboxHasNoIoOsOrFileLoading() throws {
        let rt = try LuaRuntime(options: .sandbox(memoryLimit: 4 << 20, instructionLimit: 1_000_000))
        #expect(try rt.run("return io, os, package, debug, require, dofile, loadfile") == Array(repeating: .nil, count: 7))
        #expect(try rt.run("return type(string), type(table), type(math), type(utf8), type(coroutine), type(talloc)")
                == ["table", "table", "table", "table", "table", "table"])
        // no binary chunks
        let r = try rt.run("return load(string.dump(function() return 1 end))")
        #expect(r[0] == .nil && (r[1].stringValue ?? "").contains("binary"))
        #expect(try rt.run("return load('return 5')()") == [5])
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try rt.run("\u{1b}Lua") }
        #expect("\(e)".contains("binary"))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("host-api-\(getpid()).luac").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let full = try LuaRuntime()
        try full.run("local f = assert(io.open(..., 'wb')) f:write(string.dump(function() return 1 end)) f:close()",
                     arguments: [.string(file)])
        #expect(try full.run(file: file) == [1])
        let e2 = try #require(throws: LuaRuntime.RuntimeError.self) { try rt.run(file: file) }
        #expect("\(e2)".contains("binary"))
        // no Lua finalizers
        #expect(try rt.run("return pcall(setmetatable, {}, {__gc = function() end})")[0] == false)
        #expect(try rt.run("return (pcall(talloc.set_destructor, talloc.new(), print))") == [false])
        #expect(try rt.run("return getmetatable(talloc.new())") == ["talloc.context"])
        #expect(try rt.run("return talloc._metatable") == [.nil])
        // but talloc itself works
        #expect(try rt.run("local c = talloc.new(); talloc.strdup(c, 'x'); return c:total_blocks()") == [2])
    }

    @Test func theSandboxStopsWhatWouldHurtTheHost() throws {
        let rt = try LuaRuntime(options: .sandbox(memoryLimit: 4 << 20, instructionLimit: 2_000_000))
        let attacks = [
            "while true do end",
            "local s = 'x' while true do s = s .. s end",
            "local t = {} while true do t[#t + 1] = talloc.size(nil, 4096) end",
            "local function f() return f() + 1 end f()",
            "local co co = coroutine.wrap(function() while true do end end) co()",
            "string.rep('x', 1 << 40)",
        ]
        for code in attacks {
            #expect(throws: LuaRuntime.RuntimeError.self, "\(code)") { try rt.run(code) }
            #expect(try rt.run("return 1 + 1") == [2], "\(code)")
        }
        // a script that makes assignments to new globals loop: the budget stops the host's too
        try rt.run("setmetatable(_G, {__newindex = function() while true do end end})")
        #expect(throws: LuaRuntime.RuntimeError.self) { try rt.run("x = 1") }
        #expect(throws: LuaRuntime.RuntimeError.self) { try rt.setGlobal("newGlobal", 1) }
        #expect(rt.root.totalSize <= 4 << 20)
    }

    @Test func librariesAreOpenedOneByOne() throws {
        let rt = try LuaRuntime(options: .init(libraries: [.base, .string]))
        #expect(try rt.run("return type(string), type(table), type(io), type(talloc)") == ["table", "nil", "nil", "table"])
        let bare = try LuaRuntime(options: .init(libraries: []))
        #expect(throws: LuaRuntime.RuntimeError.self) { try bare.run("print(1)") }
        #expect(try bare.run("return talloc ~= nil") == [true])
    }

    @Test("reports and DOT text of a script's tree are bounded: an error past maxBytes, never the whole text (F4)")
    func reportsAreBounded() throws {
        // (a 20,000-deep chain under a limit: every level's allocation walks up to the limit, and the budget
        // pays for those walks, about 3.2e9 instructions' worth in all: BudgetWorkTests)
        let lua = try LuaRuntime(options: .sandbox(memoryLimit: 16 << 20, instructionLimit: 5_000_000_000))
        #expect(lua.reportByteLimit == 16 << 20)
        #expect(try LuaRuntime().reportByteLimit == 256 << 20)
        #expect(try LuaRuntime(options: .init(memoryLimit: 1000, openLibrariesNow: false)).reportByteLimit == 1 << 20)
        let deep = try lua.run("local r = talloc.new(nil, 'r') local c = r for i = 1, 20000 do c = talloc.new(c, '') end return r")[0]
        let root = try #require(deep.contextValue)
        do {
            _ = try lua.report(of: root, addresses: false)
            Issue.record("an 800 MB report was built")
        } catch {
            #expect(error.kind == .memory && error.message == "report: the text is longer than 16777216 bytes")
        }
        #expect(throws: LuaRuntime.RuntimeError.self) { try lua.reportFull(addresses: false) }
        #expect(throws: LuaRuntime.RuntimeError.self) { try lua.dot(of: root, maxBytes: 10_000) }
        #expect(throws: LuaRuntime.RuntimeError.self) { try lua.dot(maxBytes: 10_000) }
        #expect(throws: LuaRuntime.RuntimeError.self) { try lua.report(maxBytes: 10) }
        // a small tree: the whole text, the same as TallocCore's, and exactly maxBytes is enough
        let small = try #require(try lua.run("local t = talloc.new(nil, 'tree') talloc.strdup(t, 'leaf') return t")[0].contextValue)
        let full = small.reportFull(addresses: false)
        #expect(try lua.report(of: small, addresses: false) == full)
        #expect(try lua.report(of: small, addresses: false, maxBytes: full.utf8.count) == full)
        #expect(throws: LuaRuntime.RuntimeError.self) { try lua.report(of: small, addresses: false, maxBytes: full.utf8.count - 1) }
        #expect(small.reportFull(addresses: false, maxBytes: full.utf8.count) == full)
        #expect(small.reportFull(addresses: false, maxBytes: full.utf8.count - 1) == nil)
        #expect(small.report(addresses: false, maxBytes: 1 << 20) == small.report(addresses: false))
        #expect(small.dot(maxBytes: 1 << 20) == small.dot())
        #expect(small.dot(maxBytes: 10) == nil)
        #expect(try lua.dot(of: small) == small.dot())
    }

    @Test("a runtime made on a thread with null tracking on is not under that thread's null context")
    func runtimeIgnoresNullTracking() {
        onThread(stack: 8 << 20) {
            Talloc.enableNullTrackingNoAutofree()
            defer { Talloc.disableNullTracking() }
            do {
                let null = try #require(Talloc.nullContext)
                try null.setMemoryLimit(1 << 30)
                let before = null.memoryLimit?.current
                let rt = try LuaRuntime()
                #expect(rt.root.parent == nil)
                #expect(!Talloc.reportNull(full: true, addresses: false).contains("luatalloc runtime"))
                #expect(null.memoryLimit?.current == before)
                #expect(try rt.run("local c = talloc.new() return talloc.parent(c) == nil") == [true])
                // TallocCore: talloc_new(NULL) goes under the null context, newDetached does not
                let plain = try TallocContext.new(parent: nil, name: "plain")
                #expect(plain.parent == null)
                let withPlain = null.memoryLimit?.current
                #expect(withPlain != before)
                let detached = try TallocContext.newDetached(name: "detached")
                #expect(detached.parent == nil && detached.name == "detached")
                #expect(null.memoryLimit?.current == withPlain)
                _ = try TallocContext.new(parent: detached, name: "child")
                #expect(detached.totalBlocks == 2)
                try detached.free()
                try plain.free()
                rt.close()
                #expect(null.memoryLimit?.current == before)
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    @Test("measuring a runtime without a memory limit: what the never-refusing record it installs shows, and what not")
    func measuringWithoutALimit() throws {
        let rt = try LuaRuntime()
        #expect(rt.root.memoryLimit == nil)
        #expect(try !rt.dot().contains("limit "))
        let (_, usage) = try rt.measuringMemory { try rt.run("local t = {} for i = 1, 100 do t[i] = {} end return #t") }
        #expect(usage.luaHeapAllocated > 0 && usage.bytesBefore > 0)
        // the record: limit 0 (talloc's "no limit"), nothing refused
        #expect(rt.root.memoryLimit?.max == 0)
        #expect(try rt.run("local s = string.rep('x', 1 << 20) return #s") == [.integer(1 << 20)])
        // reports and the DOT picture show it, as any limit (documented: give the runtime a memoryLimit
        // to have the same text before and after measuring)
        #expect(try rt.reportFull(addresses: false).contains("luatalloc runtime              is a memlimit context (max_size = 0 bytes"))
        #expect(try rt.run("return talloc.report_full(nil, {addresses = false}):find('is a memlimit context (max_size = 0 bytes', 1, true) ~= nil") == [true])
        #expect(try rt.dot().contains("limit "))
        // with a limit of its own, measuring changes nothing
        let limited = try LuaRuntime(options: .init(memoryLimit: 64 << 20))
        let before = try limited.reportFull(addresses: false)
        _ = limited.measuringMemory { 0 }
        #expect(try limited.reportFull(addresses: false) == before)
    }
}
