// luatalloc — issue 15's options: --pool-report, -W's warning when a pool is pinned, --trace, --replay and
// --pool-capacity.
// SPDX-License-Identifier: MIT

import Foundation
import Testing

@Suite("luatalloc --pool-report, --trace, --replay")
struct PoolOptionTests {
    /// A pool too small for its work, and one pinned by a member stolen out of it.
    static let script = """
        local outside = talloc.new(nil, "outside")
        local p = talloc.pool(nil, 1024)
        for i = 1, 8 do talloc.size(p, 100) end
        talloc.free(p)
        local q = talloc.pool(nil, 4096)
        local keep = talloc.strdup(q, "data we want to keep")
        talloc.steal(outside, keep)
        print("before")
        talloc.free(q)
        print("after")
        """

    static let report = """
        pool report: 2 pools made at 2 sites
        (command line):2: 1 pool, capacity 1024
            peak 880 bytes (85%), 5 allocations from the pool, 3 spills to the heap (528 bytes, the largest 176)
            advice: capacity 1408 would have served every allocation (384 bytes more in the pool's block, 3 mallocs fewer)
        (command line):5: 1 pool, capacity 4096
            peak 96 bytes (2%), 1 allocation from the pool, no spills
            1 member stolen out
            advice: capacity 96 would have served every allocation too (4000 bytes less)
            pinned: pool #2 was freed while 1 member stolen out of it lived; its 4176-byte block stayed allocated until it went:
                'data we want to keep' (21 bytes), under 'outside'

        """

    static let warning = "Lua warning: talloc: pool #2 made at (command line):5 (capacity 4096) was freed, but a member "
        + "stolen out of it still lives: its 4176-byte block stays allocated until it goes: "
        + "'data we want to keep' (under 'outside')\n"

    @Test("--pool-report prints each site's pools, the advice and the pinned pools at exit, on stderr")
    func poolReport() throws {
        let result = try runLuatalloc(["--pool-report", "-e", PoolOptionTests.script])
        #expect(result == RunResult(stdout: "before\nafter\n", stderr: PoolOptionTests.report, status: 0))
    }

    @Test("-W warns the moment a pool is pinned; without warnings on, nothing is said")
    func warningWhenPinned() throws {
        let warned = try runLuatalloc(["-W", "-e", PoolOptionTests.script])
        #expect(warned == RunResult(stdout: "before\nafter\n", stderr: PoolOptionTests.warning, status: 0))
        let quiet = try runLuatalloc(["-e", PoolOptionTests.script])
        #expect(quiet == RunResult(stdout: "before\nafter\n", stderr: "", status: 0))
        let fromScript = try runLuatalloc(["-e", "warn('@on')", "-e", PoolOptionTests.script])
        #expect(fromScript.stderr == PoolOptionTests.warning)
        // at exit, pools freed by the state's close do not warn
        let atExit = try runLuatalloc(["-W", "-e", "p = talloc.pool(nil, 64); o = talloc.new(nil, 'o'); talloc.steal(o, talloc.size(p, 1))"])
        #expect(atExit == RunResult(stdout: "", stderr: "", status: 0))
    }

    @Test("the README's pool advice and pool report are what luatalloc prints for its example")
    func readmeExample() throws {
        let readme = try String(contentsOf: ScriptFiles.root.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.components(separatedBy: "## Sizing pools and finding pinned pools").dropFirst().first)
        // the fenced blocks of the section: the script, the advice it prints, the stderr of -W --pool-report
        let blocks = section.components(separatedBy: "```").enumerated().filter { $0.offset % 2 == 1 }.map { block in
            String(block.element.drop { $0 != "\n" }.dropFirst())
        }
        try #require(blocks.count >= 3)
        // short: Lua cuts a longer script path in its positions ("...")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("r" + UUID().uuidString.prefix(8)).path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/demo.lua"
        try Data(blocks[0].utf8).write(to: URL(fileURLWithPath: script))
        let result = try runLuatalloc(["-W", "--pool-report", script])
        #expect(result.status == 0)
        #expect(result.stdout == blocks[1], "\(result.stdout)")
        #expect(result.stderr.replacingOccurrences(of: script, with: "demo.lua") == blocks[2], "\(result.stderr)")
    }

    func temporaryPath(_ suffix: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("pool-\(UUID().uuidString)\(suffix)").path
    }

    @Test("--trace records the script's talloc operations; --replay runs them again without it")
    func traceAndReplay() throws {
        let path = temporaryPath(".trace")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let traced = try runLuatalloc(["--trace", path, "-e", PoolOptionTests.script])
        #expect(traced == RunResult(stdout: "before\nafter\n", stderr: "", status: 0))
        let trace = try String(contentsOfFile: path, encoding: .utf8)
        #expect(trace.hasPrefix("talloc-trace 1\n# luatalloc --trace of (no script)\nN 1 0 0\nP 2 0 1024 (command line):2\nN 3 2 100\n"),
                "\(trace)")
        #expect(trace.hasSuffix("F 2\nP 11 0 4096 (command line):5\nN 12 11 21\nS 12 1\nF 11\n"), "\(trace)")

        let replay = try runLuatalloc(["--replay", path])
        #expect(replay.status == 0 && replay.stderr == "", "\(replay)")
        let expected = """
            replay of \(path), pools at their recorded capacities
              15 operations
              peak 4304 bytes of talloc memory (headers, bodies, whole pool blocks), 4304 at the end
              12 chunks (pools and name chunks included): 6 carved from pools, 6 from malloc
            pools: 2 pools made at 2 sites
            (command line):2: 1 pool, capacity 1024
                peak 880 bytes (85%), 5 allocations from the pool, 3 spills to the heap (528 bytes, the largest 176)
                advice: capacity 1408 would have served every allocation (384 bytes more in the pool's block, 3 mallocs fewer)
            (command line):5: 1 pool, capacity 4096
                peak 96 bytes (2%), 1 allocation from the pool, no spills
                1 member stolen out
                advice: capacity 96 would have served every allocation too (4000 bytes less)
                pinned: pool #11 was freed while 1 member stolen out of it lived; its 4176-byte block stayed allocated until it went:
                    '#12' (21 bytes), under '#1'

            """
        #expect(replay.stdout == expected, "\(replay.stdout)")

        let advised = try runLuatalloc(["--replay", path, "--pool-capacity", "advice"])
        #expect(advised.status == 0)
        #expect(advised.stdout.hasPrefix("replay of \(path), each pool at the capacity its advice gave (a first replay at the "
                                         + "recorded capacities: peak 4304 bytes, 6 mallocs, 3 spills)\n"), "\(advised.stdout)")
        #expect(advised.stdout.contains("(command line):2: 1 pool, capacity 1408\n    peak 1408 bytes (100%), 8 allocations from the pool, no spills\n"))
        #expect(advised.stdout.contains("  peak 1616 bytes of talloc memory (headers, bodies, whole pool blocks), 304 at the end\n"))
        #expect(advised.stdout.contains("  12 chunks (pools and name chunks included): 9 carved from pools, 3 from malloc\n"))

        let fixed = try runLuatalloc(["--replay=" + path, "--pool-capacity=2K"])
        #expect(fixed.stdout.contains("every pool 2048 bytes") && fixed.stdout.contains("(command line):5: 1 pool, capacity 2048\n"))
        let none = try runLuatalloc(["--replay", path, "--pool-capacity", "none"])
        #expect(none.stdout.contains("without pools") && none.stdout.contains("0 carved from pools") && none.stdout.contains("pools: no pools\n"))
    }

    @Test("a script that ends in an error still leaves its trace; a trace file that cannot be written fails")
    func traceFiles() throws {
        let path = temporaryPath(".trace")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let failing = try runLuatalloc(["--trace", path, "-e", "talloc.new(nil, 'x'); error('stop', 0)"])
        #expect(failing.status == 1)
        #expect(try String(contentsOfFile: path, encoding: .utf8).hasSuffix("N 1 0 0\n"))
        let unwritable = try runLuatalloc(["--trace", "/nonexistent-dir/t.trace", "-e", "print('ran')"])
        #expect(unwritable == RunResult(stdout: "", stderr: "lua: cannot open /nonexistent-dir/t.trace: No such file or directory\n", status: 1))
    }

    /// A script that ends with os.exit (finding A4 of adv2): the trace stayed in its buffer (an empty
    /// file, not even its first line), and --pool-report, --report and --dot were never written.
    @Test("os.exit, with or without closing the state, still writes the trace and the reports", arguments: ["true", "false"])
    func osExitWritesTheTrace(_ close: String) throws {
        let path = temporaryPath(".trace")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let script = "local p = talloc.pool(nil, 100); talloc.size(p, 200); talloc.free(p); X = talloc.new(nil, 'alive'); "
            + "io.write('ran'); os.exit(3, \(close))"
        let run = try runLuatalloc(["--trace", path, "--pool-report", "--report", "-e", script])
        #expect(run.status == 3 && run.stdout == "ran", "\(run)")
        let trace = try String(contentsOfFile: path, encoding: .utf8)
        #expect(trace.hasPrefix("talloc-trace 1\n") && trace.hasSuffix("P 1 0 100 (command line):1\nN 2 1 200\nF 1\nN 3 0 0\n"), "\(trace)")
        #expect(run.stderr.contains("pool report: 1 pool made at 1 site\n(command line):1: 1 pool, capacity 100\n"), "\(run.stderr)")
        #expect(run.stderr.contains("\n    alive  "), "\(run.stderr)")
    }

    @Test("bad replays: a missing file, a file that is not a trace, a bad line")
    func badReplays() throws {
        let missing = try runLuatalloc(["--replay", "/nonexistent-dir/t.trace"])
        #expect(missing == RunResult(stdout: "", stderr: "lua: cannot read /nonexistent-dir/t.trace: No such file or directory\n", status: 1))
        let notATrace = try runLuatalloc(["--replay", "hello.lua"])
        #expect(notATrace == RunResult(stdout: "", stderr: "lua: hello.lua: line 1: not a talloc trace (the first line must be 'talloc-trace 1')\n", status: 1))
        let path = temporaryPath(".trace")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("talloc-trace 1\nN 1 0 5\nZ 2\n".utf8).write(to: URL(fileURLWithPath: path))
        let bad = try runLuatalloc(["--replay", path])
        #expect(bad == RunResult(stdout: "", stderr: "lua: \(path): line 3: unknown operation 'Z'\n", status: 1))
    }

    /// A trace is input: a few hundred bytes of it made the replay take 1 GB and more of RSS (pools of
    /// 250 MB whose member grew out of them, copied), `--memlimit` was ignored, and a name line made a
    /// Swift array as long as it said before any limit (finding A2 of adv2).
    @Test("a hostile trace replays within the replay's limit: --memlimit, or 1 GiB by default")
    func replayWithinALimit() throws {
        let path = temporaryPath(".trace")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var text = "talloc-trace 1\n"
        for i in 1...12 { text += "P \(i) 0 250000000\nN \(i + 100) \(i) 249000000\nR \(i + 100) 250000000\n" }
        for i in 1...12 { text += "A \(i + 100) 250000000 \(i + 200)\n" }
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let limited = try runMeasured(ScriptFiles.binary, ["--memlimit", "64M", "--replay", path], timeout: 120)
        #expect(limited.status == 0, "\(limited.stderr)")
        #expect(limited.stdout.contains("  48 operations (48 failed: a memory limit refused"), "\(limited.stdout)")
        #expect(limited.peakRSS < 64 << 20, "peak RSS \(limited.peakRSS / 1024) kB")
        let byDefault = try runMeasured(ScriptFiles.binary, ["--replay", path], timeout: 120)
        #expect(byDefault.status == 0, "\(byDefault.stderr)")
        let peak = byDefault.stdout.split(separator: "\n").first { $0.hasPrefix("  peak ") }
            .flatMap { Int($0.split(separator: " ")[1]) } ?? .max
        #expect(peak <= 1 << 30, "\(byDefault.stdout)")
        #expect(byDefault.peakRSS < (1 << 30) + (64 << 20), "peak RSS \(byDefault.peakRSS / 1024) kB")
    }

    /// `--pool-capacity` resizes pooled objects with `capacity - size - header`: a hostile size overflowed,
    /// a Swift trap (SIGILL) (finding A9 of adv2).
    @Test("a pooled object of any size in a trace replays at any capacity without a trap",
          arguments: [[], ["--pool-capacity", "0"], ["--pool-capacity", "1"], ["--pool-capacity", "advice"],
                      ["--pool-capacity", "none"], ["--pool-capacity", "8G"]])
    func hostilePooledObjects(_ capacity: [String]) throws {
        let path = temporaryPath(".trace")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let max = "9223372036854775807"
        try Data("talloc-trace 1\nO 1 0 \(max) \(max) \(max) x\nO 2 0 10 \(max) 10 y\nO 3 0 \(max) 0 0 z\nO 4 0 10 1 \(max)\nN 5 0 1\n".utf8)
            .write(to: URL(fileURLWithPath: path))
        let run = try runLuatalloc(["--replay", path] + capacity)
        #expect(run.status == 0 && run.stdout.contains("  5 operations ("), "\(run)")
    }

    @Test("options that do not go together, and bad capacities, are refused with the usage", arguments: [
        (["--pool-capacity", "1K", "-e", "print(1)"], "'--pool-capacity' resizes the pools of a replay: it needs '--replay FILE'"),
        (["--replay", "x.trace", "hello.lua"], "'--replay' runs a trace without Lua: it takes no script, '-e', '-l', '-i', '-W' or '--trace'"),
        (["--replay", "x.trace", "-e", "print(1)"], "'--replay' runs a trace without Lua: it takes no script, '-e', '-l', '-i', '-W' or '--trace'"),
        (["--replay", "x.trace", "--trace", "y"], "'--replay' runs a trace without Lua: it takes no script, '-e', '-l', '-i', '-W' or '--trace'"),
        (["--replay", "x.trace", "--pool-capacity", "lots"],
         "invalid capacity 'lots' for '--pool-capacity' (a number of bytes with an optional K, M or G suffix, 'advice' or 'none')"),
        (["--replay"], "'--replay' needs argument"),
        (["--trace"], "'--trace' needs argument"),
        (["--pool-capacity"], "'--pool-capacity' needs argument"),
    ] as [([String], String)])
    func refusedCombinations(_ arguments: [String], _ message: String) throws {
        let result = try runLuatalloc(arguments)
        #expect(result.status == 1)
        #expect(result.stdout == "")
        #expect(result.stderr == "lua: \(message)\n" + expectedUsage, "\(result)")
    }
}
