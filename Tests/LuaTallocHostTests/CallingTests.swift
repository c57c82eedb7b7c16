// luatalloc — host API tests (issue 13): calling Lua from Swift — function handles, dotted names, load
// once / run many, bytecode, the argument-list forms, resetting a runtime. Swift 6 language mode.
// SPDX-License-Identifier: MIT

import LuaTalloc
import Testing

@Suite("Calling Lua from Swift")
struct CallingTests {
    @Test("a function handle: get it once, call it many times, pass it back, keep it")
    func functionHandles() throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        try lua.run("""
            calls = 0
            function add(a, b) calls = calls + 1 return a + b end
            function apply(f, x) return f(x, 10) end
            """)
        let add = try lua.function("add")
        var sum = 0
        for i in 1...1000 { sum += try add(.integer(i), 1)[0].intValue! }
        #expect(sum == 500_500 + 1000)
        #expect(try lua.global("calls") == 1000)
        // back to Lua, as an argument and as a global: the same function
        #expect(try lua.call("apply", .function(add), 5) == [15])
        try lua.setGlobal("add2", .function(add))
        #expect(try lua.run("return add2 == add") == [true])
        // a function Lua returns is a handle too, equal to one got by name
        let back = try lua.run("return add")[0]
        #expect(back == .function(add))
        #expect(back.functionValue?.address == add.address)
        // kept in a Swift structure, called later
        let table: [String: LuaFunction] = ["add": add]
        try lua.run("add = nil")  // the global goes; the handle keeps the function
        #expect(try table["add"]!.call(2, 3) == [5])
    }

    @Test("a function Lua passes to a Swift function can be kept and called later (a callback)")
    func callbacks() throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        var saved: LuaFunction?
        try lua.register("on_event") { args in
            saved = args.first?.functionValue
            return []
        }
        try lua.run("local n = 0; on_event(function(x) n = n + x; return n end)")
        let callback = try #require(saved)
        #expect(try callback(5) == [5])
        #expect(try callback(7) == [12])
    }

    @Test("call takes dotted names; a missing function is an error that names it")
    func dottedNames() throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        try lua.run("""
            M = {check = function(x) return x * 2 end, sub = {deep = function() return 'deep' end}}
            s = 'text'
            n = 5
            """)
        #expect(try lua.call("M.check", 21) == [42])
        #expect(try lua.call("M.sub.deep") == ["deep"])
        #expect(try lua.function("M.sub.deep")() == ["deep"])
        #expect(try lua.call("s.upper", "abc") == ["ABC"])  // through the strings' __index
        #expect(try lua.global("M.sub.missing") == .nil)
        #expect(try lua.global("nothing.here") == .nil)
        let cases: [(String, String)] = [
            ("nope", "function 'nope' not found"),
            ("M.nope", "function 'M.nope' not found"),
            ("X.check", "function 'X.check' not found ('X' is nil)"),
            ("M.sub.x.y", "function 'M.sub.x.y' not found ('M.sub.x' is nil)"),
            ("n.check", "function 'n.check' not found ('n' is a number value)"),
            ("n", "'n' is not a function (a number value)"),
        ]
        for (name, message) in cases {
            let e = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.call(name) }
            #expect(e.message == message, "\(name)")
            #expect(e.kind == .runtime)
            let e2 = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.function(name) }
            #expect(e2.message == message, "\(name)")
        }
        // a callable table is a function too
        try lua.run("callable = setmetatable({}, {__call = function(_, x) return x + 1 end})")
        #expect(try lua.call("callable", 1) == [2])
    }

    @Test("call(name, [1, 2, 3]) passes one table; call(name, arguments: [1, 2, 3]) passes three")
    func argumentListForms() throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        try lua.run("function count(...) return select('#', ...), type((...)) end")
        let a: LuaValue = [1, 2, 3]
        #expect(try lua.call("count", [1, 2, 3]) == [1, "table"])
        #expect(try lua.call("count", a) == [1, "table"])
        #expect(try lua.call("count", arguments: [1, 2, 3]) == [3, "number"])
        #expect(try lua.call("count", 1, 2, 3) == [3, "number"])
        let list: [LuaValue] = [1, 2]
        #expect(try lua.call("count", arguments: list) == [2, "number"])
        #expect(try lua.call("count", .array(list)) == [1, "table"])
        let f = try lua.function("count")
        #expect(try f([1, 2, 3]) == [1, "table"])
        #expect(try f.call(arguments: [1, 2, 3]) == [3, "number"])
    }

    @Test("load once, run many: a chunk compiled once runs again without parsing")
    func loadOnceRunMany() throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        let rule = try lua.load("local x = ... ; runs = (runs or 0) + 1 ; return x * 2", chunkName: "=rule")
        for i in 1...100 { #expect(try rule(.integer(i)) == [.integer(2 * i)]) }
        #expect(try lua.global("runs") == 100)
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.load("return +", chunkName: "=bad") }
        #expect(e.kind == .syntax && e.status == .syntaxError)
        #expect(e.message.hasPrefix("bad:1:"))
    }

    @Test("precompiled bytecode loads outside the sandbox; the sandbox refuses it")
    func bytecode() throws {
        let maker = try LuaRuntime()
        defer { maker.close() }
        let source = try maker.load("local a, b = ... return a * b, 'from bytecode'", chunkName: "=mul")
        let code = try source.bytecode()
        #expect(code.starts(with: [0x1B, 0x4C, 0x75, 0x61]))  // "\eLua"
        let stripped = try source.bytecode(strip: true)
        #expect(stripped.count < code.count)

        let lua = try LuaRuntime()
        defer { lua.close() }
        let f = try lua.load(bytecode: code, chunkName: "=mul")
        #expect(try f(6, 7) == [42, "from bytecode"])
        #expect(try lua.load(bytecode: stripped)(2, 3) == [6, "from bytecode"])
        // not a chunk: an error, not a crash
        #expect(throws: LuaRuntime.RuntimeError.self) { try lua.load(bytecode: [0x1B, 0x4C, 0x75, 0x61, 0x54, 0, 1, 2]) }
        // a C function has no bytecode
        let print = try lua.function("print")
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try print.bytecode() }
        #expect(e.kind == .conversion)

        let sandbox = try LuaRuntime(options: .sandbox(memoryLimit: 8 << 20, instructionLimit: 1_000_000))
        defer { sandbox.close() }
        let e2 = try #require(throws: LuaRuntime.RuntimeError.self) { try sandbox.load(bytecode: code) }
        #expect(e2.kind == .syntax)
        // nor as text
        let text = String(decoding: code, as: UTF8.self)
        #expect(throws: LuaRuntime.RuntimeError.self) { try sandbox.load(text) }
        #expect(throws: LuaRuntime.RuntimeError.self) { try sandbox.run(text) }
    }

    @Test("a handle used after its runtime closed or was reset is an error, not a crash")
    func staleHandles() throws {
        let lua = try LuaRuntime()
        try lua.run("function f() return 1 end")
        let f = try lua.function("f")
        #expect(f.isValid)
        try lua.reset()
        #expect(!f.isValid)
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try f() }
        #expect(e.kind == .closed)
        #expect(throws: LuaRuntime.RuntimeError.self) { try lua.setGlobal("g", .function(f)) }
        try lua.run("function f() return 2 end")
        let f2 = try lua.function("f")
        lua.close()
        let e2 = try #require(throws: LuaRuntime.RuntimeError.self) { try f2() }
        #expect(e2.kind == .closed)
        #expect(throws: LuaRuntime.RuntimeError.self) { try lua.run("return 1") }
        // a handle of one runtime does not go into another
        let a = try LuaRuntime(), b = try LuaRuntime()
        defer { a.close(); b.close() }
        let fa = try a.load("return 1")
        #expect(throws: LuaRuntime.RuntimeError.self) { try b.setGlobal("x", .function(fa)) }
    }

    @Test("handles let go of their functions: a thousand handles leave the registry as it was")
    func handlesAreReleased() throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        try lua.run("function f() end")
        _ = try lua.function("f")
        lua.collectGarbage()
        let before = lua.luaHeapSize
        for _ in 0..<1000 { _ = try lua.function("f") }
        lua.collectGarbage()
        #expect(lua.luaHeapSize <= before + 4096, "\(before) -> \(lua.luaHeapSize)")
    }

    @Test("reset: fresh globals, the same limits; registered functions come back")
    func reset() throws {
        let lua = try LuaRuntime(options: .init(memoryLimit: 4 << 20, libraries: .safe, instructionLimit: 1_000_000))
        defer { lua.close() }
        try lua.register("host_answer") { _ in [42] }
        try lua.run("leftover = 1; keep = talloc.new(nil, 'script tree')")
        #expect(lua.contexts.totalBlocks > 1)
        try lua.reset()
        #expect(try lua.global("leftover") == .nil)
        #expect(lua.contexts.totalBlocks == 1)  // the script's contexts went with the old state
        #expect(try lua.run("return host_answer()") == [42])
        // the same limits
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.run("while true do end") }
        #expect(e.kind == .budget(.instructions))
        let e2 = try #require(throws: LuaRuntime.RuntimeError.self) {
            try lua.run("local t = {} for i = 1, 1e7 do t[i] = ('x'):rep(64) .. i end")
        }
        #expect(e2.isOutOfMemory)
        #expect(try lua.run("return 1 + 1") == [2])
        // not while Lua runs
        try lua.register("reset_me") { _ in try lua.reset(); return [] }
        let e3 = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.run("reset_me()") }
        #expect(e3.message.contains("cannot be reset while Lua is running"))
    }
}

extension LuaRuntime {
    /// A full collection (for tests that compare sizes).
    func collectGarbage() {
        _ = try? run("collectgarbage(); collectgarbage()")
    }
}

@Suite("Registering again")
struct ReregisterTests {
    @Test("registering a name again replaces its body, also for a script that kept the old function")
    func reregister() async throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        try lua.register("f") { _ in [1] }
        try lua.run("kept = f")
        try lua.register("f") { _ in [2] }
        #expect(try lua.run("return f(), kept()") == [2, 2])
        // an async function under the same name: the global is async; the kept sync one still works
        try lua.registerAsync("f") { _ in [3] }
        #expect(try await lua.runAsync("return f(), kept()") == [3, 2])
        try lua.reset()
        #expect(try await lua.runAsync("return f()") == [3])
        // a pool that resets and prepares again and again
        let pool = try LuaRuntimePool(count: 1, resetBetweenUses: true) { lua in
            try lua.register("note") { _ in [] }
            try lua.registerAsync("later") { _ in [1] }
        }
        for _ in 0..<200 { _ = try pool.withRuntime { lua in try lua.run("note() return 1").count } }
        #expect(try pool.withRuntime { lua in try lua.run("return type(note), type(later)").map(\.description) } == ["\"function\"", "\"function\""])
    }
}
