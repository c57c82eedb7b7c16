// luatalloc — LuaTalloc tests
// SPDX-License-Identifier: MIT
//
// Hostile scripts against a Swift host (issue 10): the sandbox's hidden root and limit, lent contexts'
// ancestors, runtimes on many threads. The scripts of Tests/adversarial cover the command line; cases
// that could crash run in a child process (exit tests), so a regression is a failure, not a dead runner.

import CLua
import CLuaShims
import Foundation
import LuaTalloc
import TallocCore
import Testing

@Suite("Adversarial: hostile scripts and hosts")
struct AdversarialHostTests {
    static let sandbox = LuaRuntime.Options.sandbox(memoryLimit: 16 << 20, instructionLimit: 50_000_000)

    // MARK: Class 2: the runtime's own contexts

    @Test("the sandbox's root, its contexts and Lua's heap are out of every script's reach")
    func hiddenRoot() async throws {
        await #expect(processExitsWith: .success) {
            let rt = try LuaRuntime(options: AdversarialHostTests.sandbox)
            let r = try rt.run("""
                local c = talloc.new()
                local found = {}
                for _, n in ipairs{"luatalloc runtime", "lua contexts", "lua heap"} do
                  found[#found + 1] = talloc.find_parent_byname(c, n) ~= nil
                end
                local x = c for i = 1, 10 do x = talloc.new(x) end
                local top = x while talloc.parent(top) do top = talloc.parent(top) end
                -- the limit cannot be lifted: there is nothing above the script's own contexts to set it on
                local ok = pcall(talloc.set_memlimit, c, math.maxinteger)
                local t = {}
                local grew = pcall(function() for i = 1, 1e9 do t[i] = talloc.size(c, 65536) end end)
                return found[1], found[2], found[3], rawequal(top, c), grew
                """)
            guard r == [false, false, false, true, false] else { exit(1) }
            guard rt.root.totalSize <= 16 << 20, let l = rt.root.memoryLimit, l.current <= l.max else { exit(2) }
            rt.close()
        }
    }

    @Test("a lent context's ancestors stay the host's: parent, find_parent_byname and walks stop at it")
    func lentAncestors() throws {
        let hostTop = try TallocContext.new(parent: nil, name: "host top")
        defer { try? hostTop.free() }
        let middle = try TallocContext.new(parent: hostTop, name: "host middle")
        let lent = try TallocContext.new(parent: middle, name: "lent")
        let rt = try LuaRuntime(options: AdversarialHostTests.sandbox)
        try rt.setGlobal("lent", .context(lent))
        #expect(try rt.run("return talloc.parent(lent), talloc.parent_name(lent)") == [.nil, .nil])
        #expect(try rt.run("return talloc.find_parent_byname(lent, 'host top'), talloc.find_parent_byname(lent, 'host middle')")
                == [.nil, .nil])
        #expect(try rt.run("return rawequal(talloc.find_parent_byname(lent, 'lent'), lent)") == [true])
        // below it, everything is Lua's to see
        #expect(try rt.run("""
            local a = talloc.new(lent, "a") local b = talloc.new(a, "b")
            return rawequal(talloc.find_parent_byname(b, "lent"), lent), talloc.find_parent_byname(b, "host top")
            """) == [true, .nil])
        // a child the script frees refuses: it goes to the lent context's parent, which Lua must not see
        #expect(try rt.run("""
            local k = talloc.new(lent, "k")
            local keep = talloc.new(k, "keep")
            setmetatable(_G, nil)
            KEEP = keep
            return talloc.free(lent) ~= nil
            """) == [true])
        // lent was freed by the script: the host learns it without touching freed memory
        #expect(rt.lentContext(lent) == nil)
        #expect(hostTop.isValid && middle.isValid)
        rt.close()
    }

    @Test("a refusing child re-homed into the host's tree does not lead Lua there")
    func refusingChildInTheHostsTree() throws {
        let hostTop = try TallocContext.new(parent: nil, name: "host top")
        defer { try? hostTop.free() }
        let lent = try TallocContext.new(parent: hostTop, name: "lent")
        let rt = try LuaRuntime()
        try rt.setGlobal("lent", .context(lent))
        let r = try rt.run("""
            local k = talloc.new(lent, "stubborn")
            talloc.set_destructor(k, function() return false end)
            assert(talloc.free(lent))
            -- 'stubborn' refused: talloc moves it to the parent of what was freed, the host's top
            return talloc.is_freed(k), talloc.parent(k), talloc.parent_name(k), talloc.find_parent_byname(k, "host top")
            """)
        #expect(r == [false, .nil, .nil, .nil])
        #expect(hostTop.firstChild?.name == "stubborn")
        rt.close()
    }

    // MARK: Class 10: runtimes on threads

    @Test("runtimes on four threads, each checking its own results")
    func runtimesOnThreads() async throws {
        await #expect(processExitsWith: .success) {
            let failures = FailureCount()
            DispatchQueue.concurrentPerform(iterations: 4) { t in
                do {
                    let rt = try LuaRuntime(options: .init(memoryLimit: 64 << 20))
                    for round in 0..<30 {
                        let n = 1000 + 100 * t + round
                        let r = try rt.run("""
                            local n = ...
                            local p = talloc.pool(nil, 65536)
                            local s = talloc.strdup(p, n)          -- a number converted to a name
                            local k = talloc.new(p, "thread " .. n)
                            local kids = {}
                            for i = 1, 200 do kids[i] = talloc.asprintf(k, "%d-%d", n, i) end
                            local co = coroutine.wrap(function() for c in talloc.children(k) do coroutine.yield(c) end end)
                            local count = 0 for c in co do count = count + 1 end
                            talloc.set_destructor(k, function(x) for c in talloc.children(x) do end end)
                            local text = talloc.report_full(p, {addresses = false})
                            local ok = talloc.get_name(s) == tostring(n) and count == 200
                              and talloc.get_name(kids[1]) == n .. "-1" and text:find("thread " .. n, 1, true) ~= nil
                            talloc.free(p)
                            collectgarbage()
                            return ok
                            """, arguments: [.integer(n)])
                        if r != [true] { failures.add(1) }
                    }
                    rt.close()
                } catch {
                    failures.add(100)
                }
            }
            exit(failures.total == 0 ? 0 : 1)
        }
    }

    // MARK: Class 11: errors a host sees

    @Test("errors from Swift functions and the module keep every byte of their message")
    func exactMessages() throws {
        let rt = try LuaRuntime()
        let r = try rt.run("""
            local c = talloc.new(nil, "a\\0b")
            local ok, e = pcall(talloc.get_type_abort, c, "zz\\0q")
            return e
            """)
        #expect(r[0].stringValue?.hasSuffix("Type mismatch: name[a] expected[zz\u{0}q]") == true)
        rt.close()
    }
}

/// A failure count the worker threads of a test share.
final class FailureCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add(_ n: Int) { lock.lock(); count += n; lock.unlock() }
    var total: Int { lock.lock(); defer { lock.unlock() }; return count }

    // MARK: The host API's own tables

    @Test("a script with the debug library that wrecks the host table gets errors, the host no crash")
    func wreckedHostTable() async throws {
        await #expect(processExitsWith: .success) {
            let rt = try LuaRuntime()
            try rt.run("function f(x) return x end")
            let f = try rt.function("f")
            let lent = try TallocContext.new(parent: nil, name: "lent")
            try rt.setGlobal("lent", .context(lent))
            // find the host table in the registry (its [1] is the module table) and put junk in every slot
            try rt.run("""
                for _, t in pairs(debug.getregistry()) do
                  if type(t) == 'table' and type(rawget(t, 1)) == 'table' and rawget(t, 1).new == talloc.new then
                    for k = 3, 12 do rawset(t, k, ({42, 'junk', {}, nil, print})[k % 5 + 1]) end
                  end
                end
                """)
            var survived = 0
            for attempt in 0..<8 {
                do {
                    switch attempt {
                    case 0: _ = try f(1)
                    case 1: _ = try rt.function("f")
                    case 2: _ = try rt.run("error({code = 1})")
                    case 3: _ = try rt.run("return print")
                    case 4: try rt.setGlobal("g", .function(f))
                    case 5: _ = rt.lentContext(lent)
                    case 6: _ = rt.lentContextCount
                    default: _ = try rt.call("f", "x")
                    }
                } catch {}
                survived += 1
            }
            rt.close()
            try lent.free()
            exit(survived == 8 ? 0 : 1)
        }
    }
}

@Suite("Adversarial: closing a runtime")
struct AdversarialCloseTests {
    @Test("close() ends when a destructor makes a new top-level context every time it runs (finding F3)")
    func rebornAtClose() async throws {
        await #expect(processExitsWith: .success) {
            // no memory limit, an instruction budget (not armed while closing): only the module can stop it
            let rt = try LuaRuntime(options: .init(libraries: .all, instructionLimit: 1_000_000))
            nonisolated(unsafe) var warnings: [String] = []
            rt.setWarningHandler { warnings.append($0) }
            try rt.run("""
                local n = 0
                local function evil(c)
                  n = n + 1
                  if n > 10000 then os.exit(3) end
                  talloc.set_destructor(talloc.new(nil, "reborn " .. n), evil)
                end
                keep = talloc.new(nil, "seed")
                talloc.set_destructor(keep, evil)
                """)
            rt.close()
            guard warnings.contains(where: { $0.contains("the Lua state is closing") }) else { exit(5) }
            exit(0)
        }
    }
}

@Suite("Adversarial: what belongs to whom")
struct AdversarialOwnershipTests {
    static let detached = """
        local function detached()
          local P = talloc.new(nil, "P")
          local C = talloc.new(P, "C")
          local K = talloc.new(C, "K")
          local T = talloc.new(C, "T")
          talloc.set_destructor(K, function() return false end)
          talloc.set_destructor(T, function() talloc.free(P) end)
          assert(talloc.free(C))
          return K
        end

        """

    @Test("a child a free re-homes while a destructor frees its walk's parent stays in the runtime's tree (finding F10)")
    func escapedChildStaysUnderTheLimit() throws {
        let rt = try LuaRuntime(options: .init(memoryLimit: 8 << 20))
        defer { rt.close() }
        try rt.run(Self.detached + "K = detached()")
        let k = try #require(try rt.global("K").contextValue)
        #expect(k.name == "K")
        #expect(k.parent == rt.contexts)
        let before = try #require(rt.root.memoryLimit).current
        #expect(try rt.run("return pcall(talloc.size, K, 1 << 20)")[0] == true)
        #expect(try #require(rt.root.memoryLimit).current >= before + (1 << 20))
        #expect(try rt.run("return select(2, pcall(talloc.size, K, 16 << 20))")[0].stringValue?.contains("not enough memory") == true)
    }

    @Test("a lent context the script moved into Lua's tree is given back to the host at close (finding F11)")
    func lentContextGivenBack() async throws {
        await #expect(processExitsWith: .success) {
            for (round, script) in [
                "talloc.steal(nil, lent); talloc.new(lent, 'made by lua')",
                "keep = talloc.new(nil, 'keep'); talloc.steal(talloc.new(keep, 'deep'), lent); talloc.new(lent, 'made by lua')",
                // a top-level context with one reference: its free hands it to the referrer
                "keep = talloc.new(nil, 'referrer'); talloc.reference(keep, lent); assert(talloc.free(lent)); talloc.new(lent, 'made by lua')",
            ].enumerated() {
                let lua = try LuaRuntime(options: .sandbox(memoryLimit: 8 << 20, instructionLimit: 1_000_000))
                let mine = try TallocContext.new(parent: nil, name: "host context")
                _ = try TallocContext.new(parent: mine, name: "host child")
                try lua.setGlobal("lent", .context(mine))
                try lua.run(script)
                // the documented protocol: alive while the runtime is open, then the host frees it
                guard let still = lua.lentContext(mine), still.isParent(lua.contexts) else { exit(Int32(10 + round)) }
                lua.close()
                guard still.parent == nil, still.totalBlocks == 3, still.firstChild?.name == "made by lua" else {
                    exit(Int32(20 + round))
                }
                try still.free()
            }
            exit(0)
        }
    }
}
