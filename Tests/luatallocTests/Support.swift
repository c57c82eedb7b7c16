// luatalloc — end-to-end test support: where the programs are, running them, fixture scripts.
// SPDX-License-Identifier: MIT

import Foundation

/// The two programs under comparison.
enum Programs {
    /// Debian's reference interpreter.
    static let lua = "/usr/bin/lua5.4"

    /// The built `luatalloc`, next to the test bundle in the products directory (or `$LUATALLOC_BIN`).
    static let luatalloc: String = {
        if let path = ProcessInfo.processInfo.environment["LUATALLOC_BIN"] { return path }
        var candidates: [URL] = []
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        candidates.append(executable.deletingLastPathComponent())
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
        candidates.append(Bundle.main.bundleURL)
        for bundle in Bundle.allBundles { candidates.append(bundle.bundleURL.deletingLastPathComponent()) }
        for directory in candidates {
            let path = directory.appendingPathComponent("luatalloc").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return candidates[0].appendingPathComponent("luatalloc").path
    }()

    static var luaIsInstalled: Bool { FileManager.default.isExecutableFile(atPath: lua) }
}

/// What a run produced.
struct RunResult: Equatable, CustomStringConvertible {
    var stdout: String
    var stderr: String
    var status: Int32

    var description: String {
        "status \(status)\n--- stdout ---\n\(stdout)\n--- stderr ---\n\(stderr)"
    }

    /// Replaces the program's path (argv[0]) by `lua`, so that both programs can be compared.
    func normalisingProgram(_ path: String) -> RunResult {
        RunResult(
            stdout: stdout.replacingOccurrences(of: path, with: "lua"),
            stderr: stderr.replacingOccurrences(of: path, with: "lua"),
            status: status)
    }
}

/// A directory of fixture scripts, made once per test process; programs run with it as the current
/// directory and a home directory inside it.
enum Fixtures {
    static let directory: String = {
        let base = FileManager.default.temporaryDirectory
            .appendingPathComponent("luatalloc-tests-\(getpid())")
        try? FileManager.default.removeItem(at: base)
        try? FileManager.default.createDirectory(
            at: base.appendingPathComponent("home"), withIntermediateDirectories: true)
        for (name, text) in files {
            try? Data(text.utf8).write(to: base.appendingPathComponent(name))
        }
        return base.path
    }()

    static var home: String { directory + "/home" }

    static let files: [String: String] = [
        "hello.lua": "print(\"hello\")\n",
        "args.lua": """
            print("varargs", select("#", ...), ...)
            for i = -8, #arg do
              if arg[i] ~= nil then print(i, arg[i]) end
            end

            """,
        "err.lua": """
            local function f(x)
              return x.y
            end
            f(nil)

            """,
        "syntax.lua": "x = = 1\n",
        "exit.lua": "io.write(\"bye\")\nos.exit(7)\n",
        "shebang.lua": "#!/usr/bin/env lua\nprint(\"shebang ok\")\n",
        "init.lua": "print(\"init file\")\ninitialized = true\n",
        "mod.lua": "print(\"loading mod\", ...)\nreturn { value = 42 }\n",
        "badmod.lua": "error(\"module failed\")\n",
        "returns.lua": "return 1, 2, 3\n",
        "empty.lua": "",
        "close.lua": """
            do
              local c <close> = setmetatable({}, { __close = function(_, e) print("closing", e ~= nil) end })
              error("inside")
            end

            """,
        "warn.lua": "warn(\"from script\")\nprint(\"after warn\")\n",
        "gcmode.lua": "print(collectgarbage(\"incremental\"))\n",
        "errobj.lua": "error(setmetatable({}, { __tostring = function() return \"custom error object\" end }))\n",
        "streams.lua": "io.stderr:write(\"to stderr\\n\")\nio.write(\"no newline\")\n",
        "deep.lua": "local function f(n) return 1 + f(n + 1) end\nf(1)\n",
        "bom.lua": "\u{FEFF}print(\"bom ok\")\n",
        "level2.lua": "local function check(x) if not x then error(\"check failed\", 2) end end\ncheck(false)\n",
        "yield.lua": "coroutine.yield(1)\n",
        "table.lua": "error({ code = 1 })\n",
        "paths.lua": "print(package.path)\nprint(package.cpath)\n",
        "interrupt.lua": "print(\"started\")\nio.stdout:flush()\nwhile true do end\n",
    ]
}

/// Runs `program` with `arguments` in the fixture directory, with a clean environment plus
/// `environment`, feeding `stdin` (nil: /dev/null). A run that takes longer than `timeout` is killed.
func run(
    _ program: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:],
    timeout: TimeInterval = 20
) throws -> RunResult {
    let directory = Fixtures.directory
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let outURL = scratch.appendingPathComponent("out")
    let errURL = scratch.appendingPathComponent("err")
    FileManager.default.createFile(atPath: outURL.path, contents: nil)
    FileManager.default.createFile(atPath: errURL.path, contents: nil)

    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    var env = ["PATH": "/usr/bin:/bin", "HOME": Fixtures.home, "LANG": "C"]
    env.merge(environment) { $1 }
    process.environment = env
    if let stdin {
        let inURL = scratch.appendingPathComponent("in")
        try Data(stdin.utf8).write(to: inURL)
        process.standardInput = try FileHandle(forReadingFrom: inURL)
    } else {
        process.standardInput = FileHandle.nullDevice
    }
    let outHandle = try FileHandle(forWritingTo: outURL)
    let errHandle = try FileHandle(forWritingTo: errURL)
    process.standardOutput = outHandle
    process.standardError = errHandle
    try withDefaultSignalMask { try process.run() }
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(5_000) }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
    }
    process.waitUntilExit()
    try? outHandle.close()
    try? errHandle.close()
    let status =
        process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    return RunResult(
        stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
        stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self),
        status: status)
}

/// Runs luatalloc, with its path normalised to `lua`.
func runLuatalloc(
    _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]
) throws -> RunResult {
    try run(Programs.luatalloc, arguments, stdin: stdin, environment: environment)
        .normalisingProgram(Programs.luatalloc)
}

/// Runs Debian's lua5.4, with its path normalised to `lua`.
func runLua(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) throws
    -> RunResult
{
    try run(Programs.lua, arguments, stdin: stdin, environment: environment).normalisingProgram(Programs.lua)
}

/// Runs `body` (which starts a process) with no signal blocked on this thread. The test runner's worker
/// threads block most signals and a child inherits that mask, so without this a program started by a
/// test could not be interrupted by SIGINT (nor ended by SIGTERM).
func withDefaultSignalMask<R>(_ body: () throws -> R) rethrows -> R {
    var empty = sigset_t()
    var saved = sigset_t()
    sigemptyset(&empty)
    pthread_sigmask(SIG_SETMASK, &empty, &saved)
    defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
    return try body()
}
