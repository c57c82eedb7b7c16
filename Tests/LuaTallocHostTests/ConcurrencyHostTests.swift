// luatalloc — host API tests (issue 13): runtimes on every core — handing a runtime to another task, a
// pool of runtimes with as many workers, and strict concurrency rejecting the mistakes. Swift 6 language
// mode: this file compiling without a diagnostic is part of the test.
// SPDX-License-Identifier: MIT

import Dispatch
import Foundation
import LuaTalloc
import TallocCore
import Testing

/// Uses a runtime handed over (`sending`): the caller cannot touch it afterwards.
private func work(on lua: sending LuaRuntime, _ n: Int) async throws -> Int {
    defer { lua.close() }
    return try lua.call("sum", .integer(n))[0].intValue ?? -1
}

private let sumScript = "function sum(n) local s = 0 for i = 1, n do s = s + i end return s end"

@Suite("Runtimes on every core")
struct ConcurrencyHostTests {
    @Test("a runtime made in one task is handed to another and used there")
    func handOver() async throws {
        let lua = try LuaRuntime()
        try lua.run(sumScript)
        let detached = Task.detached {
            defer { lua.close() }
            return try lua.call("sum", 100)[0].intValue
        }
        #expect(try await detached.value == 5050)

        let lua1 = try LuaRuntime()
        try lua1.run(sumScript)
        #expect(try await work(on: lua1, 10) == 55)  // 'sending': lua1 is not usable here any more

        let lua2 = try LuaRuntime()
        try lua2.run(sumScript)
        let total = try await Task.detached {
            defer { lua2.close() }
            let f = try lua2.function("sum")   // made there, used there
            return try (1...10).map { try f(.integer($0))[0].intValue! }.reduce(0, +)
        }.value
        #expect(total == 220)
    }

    @Test("a pool: 4 runtimes, 4 threads, every call on a runtime no other thread is using")
    func poolOnThreads() throws {
        let pool = try LuaRuntimePool(count: 4) { lua in
            try lua.run(sumScript)
            try lua.run("""
                busy, calls = false, 0
                function guarded(n)
                  assert(not busy, 'runtime used by two threads at once')
                  busy = true
                  local s = sum(n)
                  calls = calls + 1
                  busy = false
                  return s
                end
                """)
        }
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for i in 0..<200 {
                do {
                    let s = try pool.withRuntime { lua in try lua.call("guarded", .integer(i + worker))[0].intValue }
                    results.add(s == (i + worker) * (i + worker + 1) / 2)
                } catch {
                    results.add(false)
                }
            }
        }
        #expect(results.count == 800 && results.allGood)
        // every call was counted by exactly one runtime
        var calls = 0
        for _ in 0..<4 { calls += try pool.withRuntime { lua in try lua.global("calls").intValue ?? 0 } }
        #expect(calls > 0)
        pool.close()
        #expect(throws: LuaRuntime.RuntimeError.self) { try pool.withRuntime { _ in 1 } }
    }

    @Test("a pool from tasks: 16 tasks share 2 runtimes, waiting without blocking")
    func poolFromTasks() async throws {
        let pool = try LuaRuntimePool(count: 2) { lua in
            try lua.run(sumScript)
            try lua.registerAsync("pause") { _ in
                try await Task.sleep(for: .milliseconds(2))
                return []
            }
        }
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for t in 0..<16 {
                group.addTask {
                    try await pool.withRuntime { lua in
                        try await lua.runAsync("pause() return sum(...)", arguments: [.integer(t)])[0].intValue ?? 0
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(total == (0..<16).map { $0 * ($0 + 1) / 2 }.reduce(0, +))
    }

    @Test("a pool that resets between uses gives every caller fresh globals")
    func poolWithReset() throws {
        let pool = try LuaRuntimePool(count: 1, resetBetweenUses: true) { lua in try lua.run("prepared = true") }
        try pool.withRuntime { lua in _ = try lua.run("leftover = 1") }
        let seen = try pool.withRuntime { lua in try lua.run("return leftover, prepared").map(\.description) }
        #expect(seen == ["nil", "true"])
    }

    @Test("strict concurrency rejects sharing a runtime, its contexts, values and functions across tasks")
    func strictConcurrencyRejectsTheMistakes() throws {
        guard let checker = TypeChecker() else {
            Issue.record("cannot find swiftc or the built modules")
            return
        }
        // handing things over is fine
        let fine = """
            import LuaTalloc
            import TallocCore
            func handOver() async throws {
                let lua = try LuaRuntime()
                Task.detached { _ = try lua.run("return 1") }
            }
            @MainActor func onMain() async throws {
                let lua = try LuaRuntime()
                try lua.registerAsync("f") { _ in [1] }
                _ = try await lua.callAsync("f")
            }
            func pool(_ pool: LuaRuntimePool) async throws {
                _ = try await pool.withRuntime { lua in try await lua.runAsync("return 1").count }
            }
            """
        let ok = try checker.check(fine)
        #expect(ok.errors.isEmpty, "\(ok.output)")
        // each of these shares something of a runtime's thread with another task
        let mistakes: [(name: String, code: String)] = [
            ("a runtime used after it was sent", """
                let lua = try LuaRuntime()
                Task.detached { _ = try lua.run("return 1") }
                _ = try lua.run("return 2")
                """),
            ("a Lua-owned context freed by another task", """
                let lua = try LuaRuntime()
                let tree = try lua.run("return talloc.new()")[0].contextValue!
                Task.detached { try tree.free() }
                _ = try lua.run("return 2")
                """),
            ("a value with a context sent while the runtime stays", """
                let lua = try LuaRuntime()
                let v = try lua.run("return {c = talloc.new()}")[0]
                Task.detached { print(v) }
                _ = try lua.run("return 2")
                """),
            ("a function handle shared with another task", """
                let lua = try LuaRuntime()
                let f = try lua.function("print")
                Task.detached { _ = try f("x") }
                _ = try f("y")
                """),
            ("a Lua value carried out of a pool's runtime", """
                let pool = try LuaRuntimePool(count: 1)
                let v: LuaValue = try pool.withRuntime { lua in try lua.run("return print")[0] }
                print(v)
                """),
            ("a TallocCore tree shared between tasks", """
                let root = try TallocContext.new(parent: nil)
                Task.detached { _ = try TallocContext.new(parent: root) }
                _ = try TallocContext.new(parent: root)
                """),
        ]
        for m in mistakes {
            let source = "import LuaTalloc\nimport TallocCore\nfunc mistake() async throws {\n" + m.code + "\n}\n"
            let r = try checker.check(source)
            #expect(r.errors.contains { $0.contains("risks causing data races") || $0.contains("Sendable") },
                    "\(m.name): \(r.output)")
        }
    }
}

/// Counts results from many threads.
private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    private var bad = 0
    func add(_ good: Bool) {
        lock.lock()
        n += 1
        if !good { bad += 1 }
        lock.unlock()
    }
    var count: Int { lock.lock(); defer { lock.unlock() }; return n }
    var allGood: Bool { lock.lock(); defer { lock.unlock() }; return bad == 0 }
}

/// Runs `swiftc -swift-version 6` (strict concurrency) over a snippet that imports the modules this test
/// binary was built with, up to the SIL diagnostics (where region-based isolation reports).
struct TypeChecker {
    let swiftc: String
    let arguments: [String]

    init?() {
        // the build directory: where this test binary is (…/debug/luatallocPackageTests.xctest)
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Modules/LuaTalloc.swiftmodule").path) {
            if dir.path == "/" { return nil }
            dir = dir.deletingLastPathComponent()
        }
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let candidates = [ProcessInfo.processInfo.environment["SWIFTC"], "/opt/swift/usr/bin/swiftc", "/usr/bin/swiftc"]
        guard let swiftc = candidates.compactMap({ $0 }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            return nil
        }
        self.swiftc = swiftc
        arguments = [
            "-swift-version", "6", "-emit-sil", "-o", "/dev/null",
            "-I", dir.appendingPathComponent("Modules").path,
            "-Xcc", "-fmodule-map-file=" + package.appendingPathComponent("Sources/CLua/module.modulemap").path,
            "-Xcc", "-fmodule-map-file=" + dir.appendingPathComponent("CLuaShims.build/module.modulemap").path,
            "-Xcc", "-I" + package.appendingPathComponent("Sources/CLuaShims/include").path,
            "-Xcc", "-I/usr/include/lua5.4",
        ]
    }

    /// The error lines swiftc gives for `source`, and its whole output.
    func check(_ source: String) throws -> (errors: [String], output: String) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("strict-\(UUID().uuidString).swift")
        try source.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: swiftc)
        p.arguments = arguments + [file.path]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        let errors = output.split(separator: "\n").map(String.init).filter { $0.contains(": error:") }
        return (errors, output)
    }
}

@Suite("Runtime pools that fail")
struct FailingPoolTests {
    @Test("a prepare that throws fails the pool's creation cleanly, with its error")
    func prepareThrows() throws {
        struct NoPolicy: Error {}
        #expect(throws: NoPolicy.self) {
            _ = try LuaRuntimePool(count: 3) { lua in
                try lua.run("x = 1")
                throw NoPolicy()
            }
        }
        let e = try #require(throws: LuaRuntime.RuntimeError.self) {
            _ = try LuaRuntimePool(count: 2) { lua in try lua.run("syntax error here") }
        }
        #expect(e.kind == .syntax)
    }
}
