// luatalloc — host API tests (issue 13): structured errors. Swift 6 language mode.
// SPDX-License-Identifier: MIT

import LuaTalloc
import Testing

/// An error class, to check that the very instance comes back.
final class Denied: Error, @unchecked Sendable {
    let path: String
    init(path: String) { self.path = path }
}

struct Refused: Error, Equatable {
    var code: Int
}

@Suite("Errors")
struct ErrorTests {
    @Test("the message and the traceback are apart; description is both, as lua prints them")
    func messageAndTraceback() throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        try lua.run("function inner() error('boom') end function outer() inner() end", chunkName: "=policy")
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.call("outer") }
        #expect(e.message == "policy:1: boom")
        #expect(e.kind == .runtime && e.status == .runtimeError)
        let tb = try #require(e.traceback)
        #expect(tb.hasPrefix("stack traceback:\n"))
        #expect(tb.contains("in function 'error'"))
        #expect(tb.contains("in function 'inner'") && tb.contains("in function 'outer'"))
        #expect(!e.message.contains("traceback"))
        #expect(e.description == e.message + "\n" + tb)
        #expect(e.value == "policy:1: boom")
        #expect(e.hostError == nil)
        // a syntax error has no traceback
        let s = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.run("x = = 1", chunkName: "=bad") }
        #expect(s.kind == .syntax && s.status == .syntaxError && s.traceback == nil)
        #expect(s.message == "bad:1: unexpected symbol near '='")
    }

    @Test("error({code = 42}) keeps the table; __tostring gives the message")
    func nonStringErrorValues() throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.run("error({code = 42, why = 'denied'})") }
        #expect(e.value == ["code": 42, "why": "denied"])
        #expect(e.value["code"] == 42)
        #expect(e.message == "(error object is a table value)")
        #expect(e.traceback != nil)
        let e2 = try #require(throws: LuaRuntime.RuntimeError.self) {
            try lua.run("error(setmetatable({code = 7}, {__tostring = function(t) return 'code ' .. t.code end}))")
        }
        #expect(e2.message == "code 7")
        #expect(e2.value["code"] == 7)
        let e3 = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.run("error(12)") }
        #expect(e3.value == 12 && e3.message == "12")
        let e4 = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.run("error()") }
        #expect(e4.value == .nil && e4.message == "(error object is a nil value)")
        // a __tostring that fails or loops does not break the error
        let e5 = try #require(throws: LuaRuntime.RuntimeError.self) {
            try lua.run("error(setmetatable({}, {__tostring = function() error('nested') end}))")
        }
        #expect(e5.message == "(error object is a table value)")
        // contexts and functions in an error value are markers (an error may cross threads)
        let e6 = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.run("error({f = print, c = talloc.new()})") }
        guard case .opaque(let f) = e6.value["f"], case .opaque(let c) = e6.value["c"] else { Issue.record("\(e6.value)"); return }
        #expect(f.kind == .function && c.kind == .context)
    }

    @Test("the Swift error a registered function threw comes back as that same error")
    func hostErrorsComeBack() throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        let denied = Denied(path: "/etc/passwd")
        try lua.register("open") { args in throw denied }
        try lua.register("check") { args in throw Refused(code: args.first?.intValue ?? 0) }
        try lua.run("function handler(p) local x = open(p) return x end")
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.call("handler", "/etc/passwd") }
        #expect(e.hostError as? Denied === denied)
        #expect(e.kind == .runtime && e.traceback != nil)
        let e2 = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.run("check(17)") }
        #expect(e2.hostError as? Refused == Refused(code: 17))
        // re-raised as is by the script: still the host's error
        let e3 = try #require(throws: LuaRuntime.RuntimeError.self) {
            try lua.run("local ok, err = pcall(check, 3) error(err, 0)")
        }
        #expect(e3.hostError as? Refused == Refused(code: 3))
        // caught and replaced by the script: not the host's error any more
        let e4 = try #require(throws: LuaRuntime.RuntimeError.self) {
            try lua.run("local ok = pcall(check, 3) error('something else')")
        }
        #expect(e4.hostError == nil)
        // a later call does not see an earlier call's error
        let e5 = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.run("error('plain')") }
        #expect(e5.hostError == nil)
    }

    @Test("isOutOfMemory only for real memory errors, not for a script's error('not enough memory')")
    func realMemoryErrorsOnly() throws {
        let lua = try LuaRuntime(options: .init(memoryLimit: 2 << 20))
        defer { lua.close() }
        for code in ["error('not enough memory')", "error('not enough memory', 0)", "error('x: not enough memory', 0)"] {
            let e = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.run(code) }
            #expect(!e.isOutOfMemory, "\(code)")
            #expect(e.kind == .runtime)
        }
        // Lua's heap over the limit
        let e = try #require(throws: LuaRuntime.RuntimeError.self) {
            try lua.run("local t = {} for i = 1, 1e7 do t[i] = ('x'):rep(100) .. i end")
        }
        #expect(e.isOutOfMemory && e.kind == .memory && e.message.hasSuffix("not enough memory"))
        // contexts over the limit (the module raises it at the caller's position)
        let e2 = try #require(throws: LuaRuntime.RuntimeError.self) {
            try lua.run("local t = {} for i = 1, 1e6 do t[i] = talloc.size(nil, 1000) end")
        }
        #expect(e2.isOutOfMemory)
        // caught by pcall and raised again: still a memory error
        let e3 = try #require(throws: LuaRuntime.RuntimeError.self) {
            try lua.run("""
                local ok, err = pcall(function() local t = {} for i = 1, 1e7 do t[i] = ('y'):rep(100) .. i end end)
                assert(not ok)
                error(err, 0)
                """)
        }
        #expect(e3.isOutOfMemory)
        // and the next script's own error is its own again
        let e4 = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.run("error('not enough memory', 0)") }
        #expect(!e4.isOutOfMemory)
        #expect(try lua.run("return 1") == [1])
    }

    @Test("statuses are an enum")
    func statuses() {
        #expect(LuaStatus(code: 0) == .ok)
        #expect(LuaStatus(code: 2) == .runtimeError)
        #expect(LuaStatus(code: 4) == .memoryError)
        #expect(LuaStatus(code: 99) == .runtimeError)
        #expect(LuaStatus.syntaxError.rawValue == 3)
    }

    @Test("budget errors say which budget")
    func budgets() throws {
        let lua = try LuaRuntime(options: .init(libraries: .all, instructionLimit: 100_000, timeLimit: .seconds(30)))
        defer { lua.close() }
        let e = try #require(throws: LuaRuntime.RuntimeError.self) { try lua.run("while true do end") }
        #expect(e.kind == .budget(.instructions) && e.isBudgetExhausted)
        #expect(e.message.hasSuffix("instruction budget exhausted"))
        let timed = try LuaRuntime(options: .init(libraries: .all, timeLimit: .milliseconds(50)))
        defer { timed.close() }
        let e2 = try #require(throws: LuaRuntime.RuntimeError.self) { try timed.run("while true do end") }
        #expect(e2.kind == .budget(.time))
    }
}
