// luatalloc — host API tests (issue 13): host hooks — print and warning sinks, the memory a call used,
// async Swift functions. Swift 6 language mode.
// SPDX-License-Identifier: MIT

import LuaTalloc
import Testing

@Suite("Host hooks")
struct HostHookTests {
    @Test("print goes to the host's sink, formatted as Lua's print")
    func printSink() throws {
        let lua = try LuaRuntime(options: .sandbox(memoryLimit: 8 << 20, instructionLimit: 1_000_000))
        defer { lua.close() }
        var lines: [String] = []
        try lua.setPrintHandler { lines.append($0) }
        try lua.run("print('a', 1, 2.5, nil, true) print() print(setmetatable({}, {__tostring = function() return 'T' end}))")
        #expect(lines == ["a\t1\t2.5\tnil\ttrue", "", "T"])
        // a script that kept the old print still reaches the sink; the sink survives a reset
        try lua.run("saved = print")
        try lua.reset()
        try lua.run("print('after reset')")
        #expect(lines.last == "after reset")
        // removed: Lua's own print again
        try lua.setPrintHandler(nil)
        let count = lines.count
        try lua.run("print('to stdout')")
        #expect(lines.count == count)
        // an error inside tostring is the script's error, not a crash
        try lua.setPrintHandler { lines.append($0) }
        #expect(throws: LuaRuntime.RuntimeError.self) {
            try lua.run("print(setmetatable({}, {__tostring = function() error('no') end}))")
        }
    }

    @Test("warnings go to the host's sink, pieces joined, control messages dropped")
    func warningSink() throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        var warnings: [String] = []
        lua.setWarningHandler { warnings.append($0) }
        try lua.run("warn('@on') warn('one') warn('two ', 'pieces', '!') warn('@off') warn('still delivered')")
        #expect(warnings == ["one", "two pieces!", "still delivered"])
        // errors in finalizers are warnings too
        try lua.run("setmetatable({}, {__gc = function() error('in gc') end}) collectgarbage() collectgarbage()")
        #expect(warnings.contains { $0.contains("in gc") })
        try lua.reset()
        try lua.run("warn('after reset')")
        #expect(warnings.last == "after reset")
    }

    @Test("the memory a call used, from the runtime's own tree")
    func memoryUsage() throws {
        let lua = try LuaRuntime(options: .init(memoryLimit: 64 << 20))
        defer { lua.close() }
        try lua.run("""
            function churn(n) local t for i = 1, n do t = {i, tostring(i)} end return #t end
            function keep(n) kept = {} for i = 1, n do kept[i] = ('x'):rep(100) .. i end end
            function contexts(n)  -- no collection meanwhile: the peak is then exactly what the contexts add
              collectgarbage('stop')
              local p = talloc.new(nil, 'p') for i = 1, n do talloc.size(p, 1000) end talloc.free(p)
              collectgarbage('restart')
            end
            """)
        let (r, churn) = lua.measuringMemory { try? lua.call("churn", 10_000) }
        #expect(r == [2])
        // 10,000 small tables and strings made and dropped: much allocated, little kept
        #expect(churn.luaHeapAllocated > 10_000 * 64, "\(churn)")
        #expect(churn.luaHeapPeak >= lua.luaHeapSize - 1024)
        #expect(churn.peakBytes >= churn.bytesBefore)
        let (_, keep) = lua.measuringMemory { try? lua.call("keep", 1000) }
        #expect(keep.netBytes > 100 * 1000, "\(keep)")
        #expect(keep.peakBytes >= keep.bytesAfter)
        #expect(keep.bytesBefore == churn.bytesAfter || keep.bytesBefore > 0)
        // contexts count in the tree's charge: 100 contexts of 1000 bytes, freed at the end
        let (_, ctx) = lua.measuringMemory { try? lua.call("contexts", 100) }
        #expect(ctx.peakBytes >= ctx.bytesBefore + 100 * 1000, "\(ctx)")
        #expect(ctx.netBytes < 100 * 1000)
        // a runtime without a memory limit measures too
        let free = try LuaRuntime()
        defer { free.close() }
        let (_, u) = free.measuringMemory { try? free.run("local t = {} for i = 1, 1000 do t[i] = {} end") }
        #expect(u.luaHeapAllocated > 1000 * 32 && u.bytesBefore > 0)
    }

    // MARK: Async

    @Test("an async Swift function suspends the calling coroutine and resumes it with the result")
    func asyncFunctions() async throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        try lua.registerAsync("fetch") { args in
            try await Task.sleep(for: .milliseconds(1))
            return [.string("page " + (args.first?.stringValue ?? "?")), 200]
        }
        try lua.run("""
            function handle(path)
              local body, status = fetch(path)
              local ok, b2 = pcall(fetch, path .. '/again')   -- in pcall too
              return body, status, b2
            end
            """)
        #expect(try await lua.callAsync("handle", "/index") == ["page /index", 200, "page /index/again"])
        #expect(try await lua.runAsync("return fetch('x')") == ["page x", 200])
        let f = try lua.function("handle")
        #expect(try await f.callAsync("/f") == ["page /f", 200, "page /f/again"])
        // many in a row, each awaited
        #expect(try await lua.runAsync("local n = 0 for i = 1, 50 do local b = fetch(tostring(i)) n = n + #b end return n")
                == [.integer((1...50).map { "page \($0)".count }.reduce(0, +))])
    }

    @Test("an async function's error is raised in Lua and comes back to the host as itself")
    func asyncErrors() async throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        try lua.registerAsync("deny") { args in throw Refused(code: args.first?.intValue ?? 0) }
        let caught = try await lua.runAsync("local ok, e = pcall(function() local x = deny(4) return x end) return ok, e",
                                            chunkName: "=t")
        #expect(caught[0] == false && caught[1].stringValue?.hasPrefix("t:1:") == true)
        do {
            try await lua.runAsync("deny(9)")
            Issue.record("no error")
        } catch {
            #expect(error.hostError as? Refused == Refused(code: 9))
            #expect(error.traceback != nil)
        }
    }

    @Test("async functions only run from an async call, from its coroutine, where it can yield")
    func asyncMisuse() async throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        try lua.registerAsync("later") { _ in [1] }
        // a synchronous call
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.run("later()") }
        #expect(e.message.contains("async function 'later' needs an async call"))
        // a coroutine the script made
        do {
            try await lua.runAsync("coroutine.wrap(function() later() end)()")
            Issue.record("no error")
        } catch {
            #expect(error.message.contains("can only suspend the coroutine the host's async call runs"))
        }
        // a C call that cannot yield (a metamethod called from C: table.sort's comparator)
        do {
            try await lua.runAsync("table.sort({3, 1, 2}, function(a, b) later() return a < b end)")
            Issue.record("no error")
        } catch {
            #expect(error.message.contains("cannot suspend here"))
        }
        // a plain yield at the top of an async call
        do {
            try await lua.runAsync("coroutine.yield(1)")
            Issue.record("no error")
        } catch {
            #expect(error.message.contains("attempt to yield"))
        }
        #expect(try await lua.runAsync("return later()") == [1])
    }

    @Test("budgets and memory limits keep applying across suspensions; awaiting is not Lua's time")
    func asyncBudgets() async throws {
        let lua = try LuaRuntime(options: .init(memoryLimit: 4 << 20, libraries: .all, instructionLimit: 200_000,
                                                timeLimit: .milliseconds(500)))
        defer { lua.close() }
        try lua.registerAsync("tick") { _ in
            try await Task.sleep(for: .milliseconds(30))
            return []
        }
        // 20 awaits of 30 ms: 600 ms awaiting, over the time limit, but not Lua's time
        #expect(try await lua.runAsync("for i = 1, 20 do tick() end return 'done'") == ["done"])
        // instructions count across resumes
        do {
            try await lua.runAsync("for i = 1, 1e9 do if i % 1000 == 0 then tick() end end")
            Issue.record("no error")
        } catch {
            #expect(error.kind == .budget(.instructions))
        }
        do {
            try await lua.runAsync("tick() local t = {} for i = 1, 1e7 do t[i] = ('x'):rep(100) .. i end")
            Issue.record("no error")
        } catch {
            #expect(error.isOutOfMemory)
        }
        #expect(try await lua.runAsync("tick() return 1") == [1])
    }

    @Test("while an async function awaits, the host may use the runtime")
    func reentrantWhileAwaiting() async throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        try lua.registerAsync("lookup") { [lua] args in
            let key = args.first?.stringValue ?? ""
            return try lua.run("return table_of[...]", arguments: [.string(key)])
        }
        try lua.run("table_of = {a = 'alpha', b = 'beta'}")
        #expect(try await lua.runAsync("return lookup('a') .. lookup('b')") == ["alphabeta"])
    }
}
