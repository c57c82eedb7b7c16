// luatalloc — the options lua5.4 does not have: --memlimit, --report, --dot, -h/--help; and Ctrl-C.
// SPDX-License-Identifier: MIT
//
// The program runs on LuaRuntime: one limit covers Lua's heap and every context, and the report and the
// picture show the runtime's real tree.

import Foundation
import Testing

/// luatalloc's full usage text, as the program prints it.
let expectedUsage = """
    usage: lua [options] [script [args]]
    Available options are:
      -e stat   execute string 'stat'
      -i        enter interactive mode after executing 'script'
      -l mod    require library 'mod' into global 'mod'
      -l g=mod  require library 'mod' into global 'g'
      -v        show version information
      -E        ignore environment variables
      -W        turn warnings on
      --        stop handling options
      -         stop handling options and execute stdin
    talloc options:
      --memlimit SIZE  limit Lua's heap and all talloc contexts to SIZE bytes
                       (suffix K, M or G, e.g. 64M)
      --report         print the talloc report of every context still alive
                       at exit (on stderr)
      --dot FILE       write the final talloc tree as Graphviz source to FILE
      --pool-report    print at exit, on stderr, each site that made pools:
                       capacity, peak, spills, advice, and the pools
                       pinned by members stolen out of them (with -W, warn
                       when a pool is pinned)
      --trace FILE     record every talloc operation of the script in FILE
      --replay FILE    replay a trace without the script (no Lua): peak
                       memory, allocations and pool statistics, on stdout;
                       within --memlimit (1G when not given)
      --pool-capacity N|advice|none
                       with --replay: every pool N bytes (K, M, G), each
                       pool as its advice says, or no pools
      -h, --help       show this help and exit

    """

@Suite("luatalloc's own options")
struct TallocOptionTests {
    @Test(arguments: [["-h"], ["--help"], ["-e", "print(1)", "--help"]])
    func help(_ arguments: [String]) throws {
        let result = try runLuatalloc(arguments)
        #expect(result == RunResult(stdout: expectedUsage, stderr: "", status: 0))
    }

    @Test(arguments: [["-hx"], ["--help=1"], ["--reportx"], ["--report=1"], ["--memlimits", "1M"]])
    func malformedLongOptions(_ arguments: [String]) throws {
        let result = try runLuatalloc(arguments)
        #expect(result.status == 1)
        #expect(result.stderr == "lua: unrecognized option '\(arguments[0])'\n" + expectedUsage)
        #expect(result.stdout == "")
    }

    @Test(arguments: [
        ("12Q", "12Q"), ("M", "M"), ("0", "0"), ("-5", "-5"), ("-1", "-1"), ("-v", nil), ("1.5M", "1.5M"), ("99999999999999999999G", "99999999999999999999G"),
        ("", ""),
    ] as [(String, String?)])
    func invalidMemoryLimit(_ value: String, _ shown: String?) throws {
        let result = try runLuatalloc(["--memlimit", value, "-e", "print('ran')"])
        #expect(result.status == 1)
        #expect(result.stdout == "", "nothing runs")
        if let shown {
            #expect(
                result.stderr
                    == "lua: invalid size '\(shown)' for '--memlimit' (a number of bytes, with an optional K, M or G suffix)\n"
                    + expectedUsage)
        } else {
            // like lua.c's -e: an option after it is taken as a missing argument (a negative number is a
            // value, refused as a size)
            #expect(result.stderr == "lua: '--memlimit' needs argument\n" + expectedUsage)
        }
    }

    @Test(arguments: [["--memlimit"], ["--dot"], ["--dot="], ["--dot", "-v"]])
    func missingArgument(_ arguments: [String]) throws {
        let result = try runLuatalloc(arguments)
        #expect(result.status == 1)
        let name = arguments[0].split(separator: "=").first.map(String.init) ?? arguments[0]
        #expect(result.stderr == "lua: '\(name)' needs argument\n" + expectedUsage)
    }

    @Test(arguments: ["64M", "64m", "65536", "512K", "1G", "64k"])
    func validMemoryLimit(_ value: String) throws {
        let result = try runLuatalloc(["--memlimit", value, "-e", "print('ran')"])
        #expect(result == RunResult(stdout: "ran\n", stderr: "", status: 0))
        let attached = try runLuatalloc(["--memlimit=" + value, "-e", "print('ran')"])
        #expect(attached == result)
    }

    /// The limit covers Lua's heap and talloc contexts alike; the report shows Lua's heap under the same root.
    @Test func memoryLimitStopsRunawayScript() throws {
        let result = try runLuatalloc(["--memlimit", "2M", "-e", "local t = {} for i = 1, 1e8 do t[i] = i end"])
        #expect(result.stderr == "lua: not enough memory\n")
        #expect(result.status == 1)
        let recovered = try runLuatalloc([
            "--memlimit", "2M", "-e",
            "print(pcall(string.rep, 'x', 8 * 1024 * 1024)) collectgarbage() print('still running')",
        ])
        #expect(recovered == RunResult(stdout: "false\tnot enough memory\nstill running\n", stderr: "", status: 0))
        let contexts = try runLuatalloc([
            "--memlimit", "2M", "-e",
            "print(pcall(talloc.size, nil, 4 << 20)) print(talloc.report(nil, {addresses = false}):match('lua heap') ~= nil)",
        ])
        #expect(contexts.stdout.hasPrefix("false\t"), "\(contexts)")
        #expect(contexts.stdout.contains("not enough memory"), "\(contexts)")
        #expect(contexts.stdout.hasSuffix("true\n"), "\(contexts)")
    }

    @Test func memoryLimitTooSmallForLibraries() throws {
        let result = try runLuatalloc(["--memlimit", "1K", "-e", "print(1)"])
        #expect(result == RunResult(stdout: "", stderr: "lua: not enough memory\n", status: 1))
    }

    @Test func optionsAppearInArgTable() throws {
        let result = try runLuatalloc(["--memlimit", "64M", "--report", "args.lua", "x"])
        #expect(result.stdout.contains("-3\t--memlimit\n-2\t64M\n-1\t--report\n0\targs.lua\n1\tx\n"), "\(result)")
    }

    /// The report lists the contexts a script leaves alive, in talloc_report_full's format.
    @Test func reportGoesToStderrAfterTheRun() throws {
        let result = try runLuatalloc(["--report", "-e", "print('out')"])
        #expect(result.stdout == "out\n")
        #expect(result.status == 0)
        let failing = try runLuatalloc(["--report", "-e", "error('x', 0)"])
        #expect(failing.status == 1)
        #expect(failing.stderr.hasPrefix("lua: x\nstack traceback:\n"))
        let leaked = try runLuatalloc(["--report", "-e", "kept = talloc.new(nil, 'kept'); talloc.strdup(kept, 'leak')"])
        #expect(leaked.stderr.hasPrefix("full talloc report on 'lua contexts' (total      5 bytes in   3 blocks)\n"), "\(leaked)")
        #expect(leaked.stderr.contains("    kept                           contains      5 bytes in   2 blocks (ref 0) 0x"))
        #expect(leaked.stderr.contains("        leak                           contains      5 bytes in   1 blocks (ref 0) 0x"))
    }

    /// The DOT file has a node per live context and an edge per parent/child link.
    @Test func dotWritesGraphvizSource() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tree-\(UUID().uuidString).dot").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try runLuatalloc(["--dot", path, "-e", "print('ran')"])
        #expect(result == RunResult(stdout: "ran\n", stderr: "", status: 0))
        let dot = try String(contentsOfFile: path, encoding: .utf8)
        #expect(dot.hasPrefix("digraph"))
        #expect(dot.contains("{") && dot.contains("}"))

        let attached = try runLuatalloc(["--dot=" + path, "-e", "os.exit(true, true)"])
        #expect(attached.status == 0)

        let tree = try runLuatalloc(["--dot", path, "-e", "a = talloc.new(nil, 'alpha'); b = talloc.new(a, 'beta')"])
        #expect(tree.status == 0)
        let picture = try String(contentsOfFile: path, encoding: .utf8)
        #expect(picture.contains("label=\"alpha\\n0 bytes\"") && picture.contains("label=\"beta\\n0 bytes\""), "\(picture)")
        #expect(picture.contains(" -> "))
    }

    /// os.exit(status, true) closes the whole runtime (its state, then its tree: LeakSanitizer and valgrind
    /// found the runtime's root chunks left when only lua_close ran), from any thread, and a destructor
    /// that calls it again while the state closes only exits (lua_close within lua_close would free twice).
    @Test func exitClosingTheStateClosesTheRuntime() throws {
        let fromCoroutine = try runLuatalloc(["-e", """
            local c = talloc.new(nil, "c")
            talloc.set_destructor(c, function(x) io.write("closed ", talloc.get_name(x), "\\n") end)
            coroutine.wrap(function() os.exit(3, true) end)()
            """])
        #expect(fromCoroutine == RunResult(stdout: "closed c\n", stderr: "", status: 3))
        let again = try runLuatalloc(["-e", """
            talloc.set_destructor(talloc.new(), function() io.write("once\\n") os.exit(4, true) end)
            keep = talloc.new()
            talloc.set_destructor(keep, function() io.write("kept\\n") end)
            os.exit(true, true)
            """])
        #expect(again.status == 4 && again.stdout.split(separator: "\n").filter { $0 == "once" }.count == 1, "\(again)")
        #expect(again.stderr.isEmpty, "\(again)")
        let plain = try runLuatalloc(["-e", "x = talloc.new() os.exit(false)"])
        #expect(plain == RunResult(stdout: "", stderr: "", status: 1))
    }

    @Test func dotToUnwritablePathFails() throws {
        let result = try runLuatalloc(["--dot", "/nonexistent-dir/x.dot", "-e", "print('ran')"])
        #expect(result.stdout == "ran\n")
        #expect(result.stderr == "lua: cannot write /nonexistent-dir/x.dot: No such file or directory\n")
        #expect(result.status == 1)
    }

    @Test func tallocOptionsMixWithLuaOptions() throws {
        let result = try runLuatalloc(["-E", "--memlimit", "8M", "-W", "--report", "-e", "warn('w')", "hello.lua"])
        #expect(result.stdout == "hello\n")
        #expect(result.stderr.hasPrefix("Lua warning: w\n"))
        #expect(result.status == 0)
    }

    /// `--` ends option handling for luatalloc's options too.
    @Test func doubleDashStopsTallocOptions() throws {
        let result = try runLuatalloc(["--", "args.lua", "--memlimit", "1"])
        #expect(result.stdout.contains("1\t--memlimit\n2\t1\n"))
        #expect(result.status == 0)
    }

    /// Ctrl-C (SIGINT) while a script runs: `lua: interrupted!` + traceback, exit status 1, as lua.c.
    @Test func sigintInterruptsScript() throws {
        for program in [Programs.luatalloc] + (Programs.luaIsInstalled ? [Programs.lua] : []) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = ["interrupt.lua"]
            process.currentDirectoryURL = URL(fileURLWithPath: Fixtures.directory)
            process.environment = ["PATH": "/usr/bin:/bin", "HOME": Fixtures.home]
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            process.standardInput = FileHandle.nullDevice
            try withDefaultSignalMask { try process.run() }
            let pid = process.processIdentifier
            DispatchQueue.global().asyncAfter(deadline: .now() + 15) { kill(pid, SIGKILL) }  // never hang
            // wait for "started" so that the loop is running under docall's handler
            var started = Data()
            while !String(decoding: started, as: UTF8.self).contains("started") {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                started.append(chunk)
            }
            usleep(100_000)
            kill(process.processIdentifier, SIGINT)
            let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 1, "\(program)")
            #expect(errors.hasPrefix("\(program): interrupted!\nstack traceback:\n"), "\(program): \(errors)")
            #expect(errors.contains("interrupt.lua:3: in main chunk"), "\(program): \(errors)")
        }
    }
}
