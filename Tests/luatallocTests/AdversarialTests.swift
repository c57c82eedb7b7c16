// luatalloc — the adversarial scripts (Tests/adversarial), end to end
// SPDX-License-Identifier: MIT
//
// Each script attacks the promise that no script can crash the process or escape its memory limit
// (issue 10). It runs in a child process of the built luatalloc; the test checks the exit status, the
// last line of output ("ok": the script's own asserts passed), that nothing trapped, and, for scripts
// marked `-- rss: yes`, that the peak RSS stayed within the memory limit plus the RSS of an empty run
// plus `AdversarialScripts.rssSlack`. Hangs are caught by a generous timeout, never a tight one.

import Foundation
import Glibc
import Testing

enum AdversarialScripts {
    static let directory = ScriptFiles.root.appendingPathComponent("Tests/adversarial")

    static var names: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".lua") }.sorted()
    }

    /// How far above `limit + empty run` the peak RSS of a limited run may go: what no accounting can see
    /// (malloc's own bookkeeping of Lua's small objects, partly used pages, the C stack). README,
    /// "Security model".
    static let rssSlack = 3 << 20

    struct Header {
        var arguments: [String] = []
        var stdout = "ok"
        var checksRSS = false
        var timeout: Double = 300
    }

    static func header(_ text: String) -> Header {
        var h = Header()
        for line in text.split(separator: "\n").prefix(while: { $0.hasPrefix("--") }) {
            let parts = line.dropFirst(2).split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "args": h.arguments = parts[1].split(separator: " ").map(String.init)
            case "stdout": h.stdout = parts[1]
            case "rss": h.checksRSS = parts[1] == "yes"
            case "timeout": h.timeout = Double(parts[1]) ?? h.timeout
            default: break
            }
        }
        return h
    }

    static func limit(_ arguments: [String]) -> Int? {
        guard let i = arguments.firstIndex(of: "--memlimit"), i + 1 < arguments.count else { return nil }
        var text = Substring(arguments[i + 1])
        var unit = 1
        switch text.last {
        case "K": unit = 1 << 10; text = text.dropLast()
        case "M": unit = 1 << 20; text = text.dropLast()
        case "G": unit = 1 << 30; text = text.dropLast()
        default: break
        }
        return Int(text).map { $0 * unit }
    }
}

/// What a measured run produced.
struct MeasuredRun {
    var stdout: String
    var stderr: String
    /// The exit status, or 128 + the signal.
    var status: Int32
    /// Peak resident set size in bytes (wait4's ru_maxrss).
    var peakRSS: Int
    var timedOut: Bool
}

/// Runs `program` with `arguments` and measures its peak RSS: through GNU time (`/usr/bin/time -f %M`,
/// Debian's `time`), which forks the program itself, so the figure is the program's own (a child spawned
/// straight from the test process would count the test process's pages until its exec).
func runMeasured(_ program: String, _ arguments: [String], timeout: Double) throws -> MeasuredRun {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("adv-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let outPath = scratch.appendingPathComponent("out").path
    let errPath = scratch.appendingPathComponent("err").path
    let rssPath = scratch.appendingPathComponent("rss").path
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
    let copy: (String) -> UnsafeMutablePointer<CChar>? = { Glibc.strdup($0) }
    let argv = (["/usr/bin/time", "-f", "%M", "-o", rssPath, program] + arguments).map(copy) + [nil]
    defer { for p in argv { free(p) } }
    let env = ["PATH=/usr/bin:/bin", "LANG=C", "HOME=/tmp", "SWIFT_BACKTRACE=enable=no"].map(copy) + [nil]
    defer { for p in env { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, "/usr/bin/time", &actions, &attributes, argv, env)
    guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EINVAL) }
    var status: Int32 = 0
    var usage = rusage()
    let deadline = Date().addingTimeInterval(timeout)
    var timedOut = false
    while wait4(pid, &status, WNOHANG, &usage) == 0 {
        if Date() > deadline {
            kill(pid, SIGKILL)
            timedOut = true
            _ = wait4(pid, &status, 0, &usage)
            break
        }
        usleep(10_000)
    }
    var code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    // GNU time exits with the program's status, or 128 + the signal that ended it, and writes
    // "Command terminated by signal N" before the figure
    let rssText = (try? String(contentsOfFile: rssPath, encoding: .utf8)) ?? ""
    if let line = rssText.split(separator: "\n").first(where: { $0.hasPrefix("Command terminated by signal") }),
       let n = Int32(line.split(separator: " ").last ?? "") {
        code = 128 + n
    }
    let kilobytes = rssText.split(separator: "\n").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? 0
    return MeasuredRun(
        stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "",
        status: code, peakRSS: kilobytes * 1024, timedOut: timedOut)
}

@Suite("Adversarial scripts: no crash, no escape from the memory limit", .serialized)
struct AdversarialTests {
    /// The RSS of an empty run with the same limit.
    static func baselineRSS(_ arguments: [String]) throws -> Int {
        let limitArguments = AdversarialScripts.limit(arguments).map { ["--memlimit", "\($0)"] } ?? []
        return try runMeasured(ScriptFiles.binary, limitArguments + ["-e", ""], timeout: 60).peakRSS
    }

    @Test("the scripts are found (an unreadable directory would make the test below run none)")
    func scriptsAreFound() {
        #expect(AdversarialScripts.names.count >= 16, "\(AdversarialScripts.directory.path)")
    }

    @Test(arguments: AdversarialScripts.names)
    func script(_ name: String) throws {
        let text = try String(contentsOf: AdversarialScripts.directory.appendingPathComponent(name), encoding: .utf8)
        let header = AdversarialScripts.header(text)
        let path = AdversarialScripts.directory.appendingPathComponent(name).path
        let run = try runMeasured(ScriptFiles.binary, header.arguments + [path], timeout: header.timeout)
        let context = "\(name): status \(run.status)\n--- stdout (end) ---\n\(run.stdout.suffix(600))\n--- stderr (end) ---\n\(run.stderr.suffix(1500))"
        #expect(!run.timedOut, "\(name) did not end within \(header.timeout) s")
        #expect(run.status == 0, "\(context)")
        let last = run.stdout.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last == header.stdout, "\(context)")
        #expect(!run.stderr.contains("Fatal error") && !run.stderr.contains("Program crashed"), "\(context)")
        if header.checksRSS {
            let limit = try #require(AdversarialScripts.limit(header.arguments), "\(name): 'rss: yes' needs --memlimit")
            let base = try Self.baselineRSS(header.arguments)
            let bound = limit + base + AdversarialScripts.rssSlack
            #expect(run.peakRSS <= bound,
                    "\(name): peak RSS \(run.peakRSS / 1024) kB > limit \(limit / 1024) kB + empty run \(base / 1024) kB + slack \(AdversarialScripts.rssSlack / 1024) kB")
        }
    }
}

/// C hosts of Debian's stock Lua 5.4 (Tests/adversarial/chost), built with gcc against liblua5.4 and run
/// with the built module (`libtalloc.so`, next to `luatalloc`) on their `LUA_CPATH`.
@Suite("Adversarial C hosts: the loadable module in stock Lua", .serialized)
struct AdversarialCHostTests {
    static let sources = AdversarialScripts.directory.appendingPathComponent("chost")

    /// Builds `name`.c into a scratch directory; returns the program's path.
    static func build(_ name: String, in scratch: URL, _ libraries: [String]) throws -> String {
        let program = scratch.appendingPathComponent(name).path
        let result = try run("/usr/bin/gcc", ["-O1", "-g", "-o", program, sources.appendingPathComponent(name + ".c").path]
                             + libraries, timeout: 120)
        #expect(result.status == 0, "gcc \(name).c: \(result)")
        return program
    }

    static var module: String {
        URL(fileURLWithPath: Programs.luatalloc).deletingLastPathComponent().appendingPathComponent("libtalloc.so").path
    }

    static func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("chost-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("a worker thread that used the module ends after lua_close (finding F14: the module was unloaded under its thread-state key)")
    func threadEndsAfterClose() throws {
        try #require(FileManager.default.fileExists(atPath: Self.module), "no \(Self.module): build the products first")
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let program = try Self.build("thread_exit", in: dir, ["-llua5.4", "-lpthread"])
        let cpath = URL(fileURLWithPath: Self.module).deletingLastPathComponent().path + "/lib?.so;;"
        let result = try run(program, [], environment: ["LUA_CPATH": cpath, "SWIFT_BACKTRACE": "enable=no"], timeout: 60)
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.hasSuffix("thread joined\n"), "\(result)")
    }

    @Test("600 states that each require the module and free a context with a child (finding F14: a new thread-state key per load ran out at 512)")
    func manyStatesOverTime() throws {
        try #require(FileManager.default.fileExists(atPath: Self.module), "no \(Self.module): build the products first")
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let program = try Self.build("reload", in: dir, ["-llua5.4"])
        let cpath = URL(fileURLWithPath: Self.module).deletingLastPathComponent().path + "/lib?.so;;"
        let script = "local t = require 'talloc'; local a = t.new(nil, 'a'); t.new(a, 'kid'); t.free(a)"
        let result = try run(program, ["600", script], environment: ["LUA_CPATH": cpath, "SWIFT_BACKTRACE": "enable=no"],
                             timeout: 300)
        #expect(result.status == 0, "\(result.status)\n\(result.stderr.suffix(2000))")
        #expect(result.stderr.hasSuffix("round 599 ok\n"), "\(result.stderr.suffix(2000))")
    }
}
