// luatalloc — host API tests (issue 13): the examples of the README's "Embedding in Swift" and of
// docs/EMBEDDING.md, as written there. Swift 6 language mode.
// SPDX-License-Identifier: MIT

import LuaTalloc
import TallocCore
import Testing

@Suite("Documentation examples")
struct DocExampleTests {
    @Test("README: Embedding in Swift")
    func readme() throws {
        let lua = try LuaRuntime(options: .sandbox(memoryLimit: 16 << 20, instructionLimit: 50_000_000))
        defer { lua.close() }
        try lua.register("lookup") { args in
            guard let key = args.first?.stringValue else {
                throw LuaError("lookup: a key is needed")
            }
            return [.string(key.uppercased())]
        }
        try lua.setGlobal("config", ["depth": 3, "names": ["a", "b"]])
        #expect(try lua.run("return lookup('x'), #config.names") == ["X", 2])

        try lua.run("policy = {check = function(req) if req.size > 1000 then return false, 'too big' end return true end}")
        let check = try lua.function("policy.check")
        struct Request: Codable { var path: String; var size: Int }
        #expect(try check(LuaValue(encoding: Request(path: "/a", size: 10))) == [true])
        #expect(try check(LuaValue(encoding: Request(path: "/b", size: 5000))) == [false, "too big"])

        let tree = try lua.run("local t = talloc.new(nil, 'tree'); talloc.strdup(t, 'leaf'); return t")[0]
        #expect(try lua.report(of: tree.contextValue!, addresses: false).hasPrefix("full talloc report on 'tree'"))

        let root = try TallocContext.new(parent: nil, name: "root")
        defer { try? root.free() }
        let i = 2
        let worker = try TallocContext.new(parent: root, name: "worker \(i)")
        #expect(worker.name == "worker 2")
    }

    @Test("EMBEDDING §3: calling Lua, load once, the argument-list forms")
    func calling() throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        try lua.run("function area(w, h) return w * h end  M = {check = function(x) return x > 0 end}")
        #expect(try lua.call("area", 6, 7) == [42])
        #expect(try lua.call("M.check", 5) == [true])
        let check = try lua.function("M.check")
        for x in [-1, 1] { #expect(try check(.integer(x)) == [.boolean(x > 0)]) }
        let rule = try lua.load("local x = ... return x * 2", chunkName: "=rule")
        #expect(try rule(21) == [42])
    }

    @Test("EMBEDDING §5: errors")
    func errors() throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        do { try lua.run("error({code = 42})") } catch {
            #expect(error.value["code"].intValue == 42)
            #expect(error.kind == .runtime && !error.isOutOfMemory && error.traceback != nil)
        }
    }

    @Test("EMBEDDING §10: a pool")
    func pool() async throws {
        let policySource = "function check(p) return #p < 10 end function count(p) return #p end"
        let pool = try LuaRuntimePool(count: 4, options: .sandbox(memoryLimit: 16 << 20, instructionLimit: 10_000_000),
                                      resetBetweenUses: true) { lua in
            try lua.run(policySource, chunkName: "@policy.lua")
        }
        let path = "/etc"
        let allowed = try pool.withRuntime { lua in try lua.call("check", .string(path))[0].boolValue ?? false }
        #expect(allowed)
        let n = try await pool.withRuntime { lua in try await lua.callAsync("count", .string(path))[0].intValue }
        #expect(n == 4)
    }
}
