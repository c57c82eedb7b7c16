// luatalloc — LuaTalloc tests: the example host `tree-policy`, end to end (the built binary)
// SPDX-License-Identifier: MIT

import Foundation
import Testing

/// Runs the built `tree-policy` from the products directory (or `$TREE_POLICY_BIN`).
enum TreePolicy {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let binary: String = {
        if let path = ProcessInfo.processInfo.environment["TREE_POLICY_BIN"] { return path }
        var candidates: [URL] = []
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        candidates.append(executable.deletingLastPathComponent())
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
        for bundle in Bundle.allBundles { candidates.append(bundle.bundleURL.deletingLastPathComponent()) }
        for directory in candidates {
            let path = directory.appendingPathComponent("tree-policy").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return candidates[0].appendingPathComponent("tree-policy").path
    }()

    struct Result {
        var stdout: String
        var stderr: String
        var status: Int32
    }

    static func run(_ arguments: [String], stdin: String? = nil, executable: String? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable ?? binary)
        process.arguments = arguments
        process.currentDirectoryURL = repository
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self),
                      status: process.terminationStatus)
    }

    /// A policy file in a temporary directory.
    static func policy(_ text: String, _ name: String = #function) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tree-policy-tests-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent(name.filter { $0.isLetter || $0.isNumber } + ".lua")
        try Data(text.utf8).write(to: file)
        return file.path
    }
}

@Suite struct ExampleHostTests {
    static let list = """
        # path size
        src/main.c 1200
        src/util/strings.c 800
        src/util/pool.c 640
        include/util.h 96
        README 300
        """

    @Test func theShippedExampleReportsTheTree() throws {
        let r = try TreePolicy.run(["examples/tree-policy/policy.lua", "examples/tree-policy/files.txt"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == """
            full talloc report on 'files' (total   3036 bytes in   9 blocks)
                README                         contains    300 bytes in   1 blocks (ref 0)
                include                        contains     96 bytes in   2 blocks (ref 0)
                    util.h                         contains     96 bytes in   1 blocks (ref 0)
                src                            contains   2640 bytes in   5 blocks (ref 0)
                    util                           contains   1440 bytes in   3 blocks (ref 0)
                        pool.c                         contains    640 bytes in   1 blocks (ref 0)
                        strings.c                      contains    800 bytes in   1 blocks (ref 0)
                    main.c                         contains   1200 bytes in   1 blocks (ref 0)

            """)
        #expect(r.stderr == "5 files, 3036 bytes\n")
    }

    @Test func readsStandardInputAndWritesDot() throws {
        let dot = FileManager.default.temporaryDirectory.appendingPathComponent("tree-policy-\(getpid()).dot").path
        defer { try? FileManager.default.removeItem(atPath: dot) }
        let r = try TreePolicy.run(["--dot", dot, "examples/tree-policy/policy.lua"], stdin: Self.list)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("full talloc report on 'files' (total   3036 bytes in   9 blocks)"))
        let text = try String(contentsOfFile: dot, encoding: .utf8)
        #expect(text.hasPrefix("digraph"))
        #expect(text.contains("strings.c"))
    }

    @Test func aPolicyOverItsMemoryLimitFails() throws {
        let policy = try TreePolicy.policy("""
            function build(entries)
              local root = talloc.new(nil, "root")
              for i = 1, 1e6 do talloc.size(root, 10000, "block") end
              return root
            end
            """)
        let r = try TreePolicy.run(["--memlimit", "2M", policy], stdin: Self.list)
        #expect(r.status == 1)
        #expect(r.stderr.contains("not enough memory"), "\(r.stderr)")
    }

    @Test func aRunawayPolicyIsStopped() throws {
        let policy = try TreePolicy.policy("function build(entries) while true do end end")
        let r = try TreePolicy.run(["--instructions", "100000", policy], stdin: Self.list)
        #expect(r.status == 1)
        #expect(r.stderr.contains("instruction budget exhausted"), "\(r.stderr)")
    }

    @Test func aPolicyCannotTouchFiles() throws {
        let policy = try TreePolicy.policy("""
            function build(entries)
              return io.open("/etc/passwd")
            end
            """)
        let r = try TreePolicy.run([policy], stdin: Self.list)
        #expect(r.status == 1)
        #expect(r.stderr.contains("attempt to index a nil value (global 'io')"), "\(r.stderr)")
        let p2 = try TreePolicy.policy("function build() return dofile('/etc/passwd') end", "dofile")
        let r2 = try TreePolicy.run([p2], stdin: Self.list)
        #expect(r2.status == 1 && r2.stderr.contains("global 'dofile'"), "\(r2.stderr)")
    }

    @Test func severalListsAreBuiltAtOnceEachInAFreshRuntime() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tree-policy-lists-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var lists: [String] = []
        for i in 1...6 {
            let file = dir.appendingPathComponent("list\(i).txt")
            try Data((1...i).map { "d\(i)/f\($0) \($0 * 10)" }.joined(separator: "\n").utf8).write(to: file)
            lists.append(file.path)
        }
        // the policy counts its calls in a global: a fresh runtime for every list sees 1
        let policy = try TreePolicy.policy("""
            function build(entries)
              calls = (calls or 0) + 1
              local root = talloc.new(nil, "root")
              for _, e in ipairs(entries) do talloc.size(root, e.size, e.path) end
              print("calls", calls, #entries)
              return root
            end
            """)
        let r = try TreePolicy.run(["--jobs", "3", "--stats", policy] + lists)
        #expect(r.status == 0, "\(r.stderr)")
        for (i, list) in lists.enumerated() {
            let n = i + 1
            let total = (1...n).map { $0 * 10 }.reduce(0, +)
            #expect(r.stdout.contains("== \(list) ==\nfull talloc report on 'root' (total \(String(repeating: " ", count: 6 - String(total).count))\(total) bytes in \(String(repeating: " ", count: 3 - String(n + 1).count))\(n + 1) blocks)"), "\(r.stdout)")
            #expect(r.stderr.contains("calls\t1\t\(n)\n"), "\(r.stderr)")
            #expect(r.stderr.contains("\(list): "), "\(r.stderr)")
        }
        #expect(!r.stderr.contains("calls\t2"))
        // the reports come in the order of the lists
        let positions = lists.map { r.stdout.range(of: "== \($0) ==")!.lowerBound }
        #expect(positions == positions.sorted())
        // one failing list fails the run, the others are still reported
        let bad = dir.appendingPathComponent("bad.txt")
        try Data("huge 100000000".utf8).write(to: bad)
        let r2 = try TreePolicy.run(["--jobs", "2", "--memlimit", "4M", policy, lists[0], bad.path, lists[1]])
        #expect(r2.status == 1)
        #expect(r2.stderr.contains("\(bad.path): ") && r2.stderr.contains("not enough memory"), "\(r2.stderr)")
        #expect(r2.stdout.contains("== \(lists[1]) ==\nfull talloc report"))
    }

    @Test func mistakesAreReported() throws {
        let none = try TreePolicy.policy("x = 1")
        let r = try TreePolicy.run([none], stdin: Self.list)
        #expect(r.status == 1 && r.stderr.contains("does not define a function 'build(entries)'"), "\(r.stderr)")
        let wrong = try TreePolicy.policy("function build() return 42 end", "wrong")
        let r2 = try TreePolicy.run([wrong], stdin: Self.list)
        #expect(r2.status == 1 && r2.stderr.contains("must return a talloc context, got number"), "\(r2.stderr)")
        let r3 = try TreePolicy.run(["examples/tree-policy/policy.lua"], stdin: "just-a-path\n")
        #expect(r3.status == 1 && r3.stderr.contains("line 1: expected 'path size'"), "\(r3.stderr)")
        let r4 = try TreePolicy.run([])
        #expect(r4.status == 2 && r4.stderr.contains("usage: tree-policy"))
    }

    // MARK: Adversarial policies (F4, F13)

    /// Runs tree-policy under GNU time: the result and the peak RSS in KB.
    static func measured(_ arguments: [String], stdin: String) throws -> (TreePolicy.Result, Int) {
        let marker = "PEAK-RSS-KB "
        let r = try TreePolicy.run(["-f", marker + "%M", TreePolicy.binary] + arguments, stdin: stdin, executable: "/usr/bin/time")
        guard let line = r.stderr.split(separator: "\n").last(where: { $0.hasPrefix(marker) }),
              let kb = Int(line.dropFirst(marker.count)) else { return (r, -1) }
        return (r, kb)
    }

    @Test("a policy whose tree's report would be 800 MB fails with a clear error, within its memory (F4)",
          .timeLimit(.minutes(2)))
    func aDeepTreesReportIsBounded() throws {
        let policy = try TreePolicy.policy("""
            function build(entries)
              local root = talloc.new(nil, "r")
              local c = root
              for i = 1, 20000 do c = talloc.new(c, "") end
              return root
            end
            """)
        // the budget pays for the walks up to the limit that building a deep chain makes (quadratic): one
        // large enough for a 20,000-deep chain
        let (r, kb) = try Self.measured(["--instructions", "5000000000", policy], stdin: Self.list)
        #expect(r.status == 1)
        #expect(r.stderr.contains("report: the text is longer than 16777216 bytes"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        // was 1.6 GB; the 16 MiB limit, the text up to its bound (twice, as bytes and as a String) and the
        // program itself
        #expect(kb > 0 && kb < 150_000, "peak \(kb) KB")
    }

    @Test("note() of a table of 2^40 paths prints at once (F13)", .timeLimit(.minutes(1)))
    func noteOfASharedGraphIsLinear() throws {
        let policy = try TreePolicy.policy("""
            function build(entries)
              local t = {"leaf"}
              for i = 1, 40 do t = {t, t} end
              note(t)
              return talloc.new(nil, "done")
            end
            """)
        let r = try TreePolicy.run([policy], stdin: Self.list)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("{&1 {&2 {"), "\(r.stderr.prefix(200))")
        #expect(r.stderr.utf8.count < 1_000)
        #expect(r.stdout.hasPrefix("full talloc report on 'done'"))
    }
}
