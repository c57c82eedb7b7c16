// luatalloc — differential tests: luatalloc must behave as Debian's lua5.4 (stdout, stderr, exit status),
// once the program name is normalised.
// SPDX-License-Identifier: MIT

import Foundation
import Testing

/// Where luatalloc differs from lua5.4 on purpose; each says why, and how the comparison accounts for it.
enum DeliberateDifference: Sendable {
    /// luatalloc's usage text has lua.c's lines followed by a "talloc options:" block for its own
    /// options (--memlimit, --report, --dot, -h/--help). Compared after removing that block.
    case usageListsTallocOptions
    /// With `-i` and a piped stdin, Debian's lua5.4 calls GNU readline, which echoes every line it reads
    /// after the prompt; luatalloc reads a non-terminal stdin with fgets as lua.c without readline does
    /// (brief: no line editor when stdin is not a tty), so it does not echo. Compared after removing the
    /// echoed lines from lua5.4's output.
    case noEchoOfPipedInput
    /// Lua 5.4.4 prints "(null)" when input ends inside an unfinished statement (a bug fixed in 5.4.8,
    /// "Bad stack manipulation in 'multiline'"); luatalloc prints the syntax error instead, as 5.4.8
    /// does. Compared after mapping that message back to "(null)".
    case reportsUnfinishedStatement(message: String)
}

/// One command line run by both programs.
struct DifferentialCase: Sendable, CustomTestStringConvertible {
    let name: String
    let arguments: [String]
    var stdin: String? = nil
    var environment: [String: String] = [:]
    var differences: [DeliberateDifference] = []

    var testDescription: String { name }

    init(
        _ name: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:],
        differences: [DeliberateDifference] = []
    ) {
        self.name = name
        self.arguments = arguments
        self.stdin = stdin
        self.environment = environment
        self.differences = differences
    }

    /// Applies the deliberate differences: maps luatalloc's result and lua5.4's onto the same text.
    func reconcile(ours: RunResult, theirs: RunResult) -> (RunResult, RunResult) {
        var ours = ours
        var theirs = theirs
        for difference in differences {
            switch difference {
            case .usageListsTallocOptions:
                ours.stderr = removingTallocUsage(ours.stderr)
            case .noEchoOfPipedInput:
                for line in (stdin ?? "").split(separator: "\n", omittingEmptySubsequences: false)
                where !line.isEmpty {
                    for prompt in [">> ", "> ", "... "] {
                        theirs.stdout = theirs.stdout.replacingOccurrences(
                            of: prompt + line + "\n", with: prompt)
                    }
                }
            case .reportsUnfinishedStatement(let message):
                ours.stderr = ours.stderr.replacingOccurrences(of: message, with: "(null)")
            }
        }
        return (ours, theirs)
    }
}

/// luatalloc's usage text without its "talloc options:" block.
func removingTallocUsage(_ text: String) -> String {
    var lines: [Substring] = []
    var inBlock = false
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if line == "talloc options:" {
            inBlock = true
            continue
        }
        if inBlock && line.hasPrefix("  ") { continue }
        inBlock = false
        lines.append(line)
    }
    return lines.joined(separator: "\n")
}

/// The cases. Keep them here, in one array, so that the count is obvious (`differentialCases.count`).
let differentialCases: [DifferentialCase] = [
    // -v, -e and their order
    .init("version", ["-v"]),
    .init("execute", ["-e", "print(1, 'two', 3.0)"]),
    .init("execute attached", ["-eprint(42)"]),
    .init("execute chain shares globals", ["-e", "x = 1", "-e", "print(x + 1)"]),
    .init("version printed before -e output", ["-e", "print('after')", "-v"]),
    .init("version then script", ["-v", "hello.lua"]),
    .init("execute then script", ["-e", "print('first')", "hello.lua"]),
    .init("-e chunk gets no varargs", ["-e", "print(select('#', ...))"]),
    .init("-e stops at first error", ["-e", "error('a')", "-e", "print('not reached')"]),
    .init("-e error skips script", ["-e", "error('a')", "hello.lua"]),
    .init("io.write and stderr", ["streams.lua"]),
    // errors and tracebacks
    .init("runtime error traceback", ["-e", "error('boom')"]),
    .init("error without position", ["-e", "error('plain', 0)"]),
    .init("error level 2 in main chunk", ["-e", "error('lvl', 2)"]),
    .init("error level 2 in script", ["level2.lua"]),
    .init("error with nil", ["-e", "error()"]),
    .init("error with number", ["-e", "error(42)"]),
    .init("error with table", ["table.lua"]),
    .init("error object __tostring", ["errobj.lua"]),
    .init("syntax error in -e", ["-e", "x ="]),
    .init("script runtime error", ["err.lua"]),
    .init("script syntax error", ["syntax.lua"]),
    .init("missing script", ["nonexist.lua"]),
    .init("directory as script", ["."]),
    .init("stack overflow traceback", ["deep.lua"]),
    .init("to-be-closed variable on error", ["close.lua"]),
    .init("yield from main chunk", ["yield.lua"]),
    // exit status
    .init("os.exit code", ["-e", "os.exit(3)"]),
    .init("os.exit true", ["-e", "os.exit(true)"]),
    .init("os.exit false", ["-e", "os.exit(false)"]),
    .init("os.exit closing state", ["-e", "os.exit(0, true)"]),
    .init("os.exit from script", ["exit.lua"]),
    .init("script results are ignored", ["returns.lua"]),
    .init("empty script", ["empty.lua"]),
    // arg table and varargs
    .init("script args", ["args.lua", "a", "b", "c"]),
    .init("negative indices", ["-e", "x=1", "args.lua", "foo", "bar"]),
    .init("arg without script", ["-e", "for i = -3, #arg do print(i, arg[i]) end"]),
    .init("arg count without script", ["-e", "print(#arg, arg[0] ~= nil)", "-e", "print(arg[1])"]),
    .init("varargs from modified arg", ["-e", "arg = {[1] = 'z'}", "args.lua", "a", "b"]),
    .init("arg is not a table", ["-e", "arg = nil", "args.lua"]),
    .init("args with spaces and empty", ["args.lua", "two words", "", "-x"]),
    .init("options after script go to the script", ["args.lua", "-e", "print(1)", "-v"]),
    // - and --
    .init("dash runs stdin with args", ["-", "a", "b"], stdin: "print(...)\nprint(arg[0], #arg)\n"),
    .init("double dash then script", ["--", "args.lua", "-x"]),
    .init("double dash dash is a file", ["--", "-"]),
    .init("double dash alone runs stdin", ["--"], stdin: "print('stdin after --')\n"),
    .init("execute then dash", ["-e", "print(1)", "-"], stdin: "print(2)\n"),
    // stdin that is not a terminal
    .init("stdin script", [], stdin: "print('from stdin')\nprint(arg[0] ~= nil)\n"),
    .init("stdin runtime error exits 0", [], stdin: "error('x')\n"),
    .init("stdin syntax error exits 0", [], stdin: "x =\n"),
    .init("stdin not read after -e", ["-e", "print(1)"], stdin: "print('ignored')\n"),
    .init("stdin not read after -v", ["-v"], stdin: "print('ignored')\n"),
    .init("shebang line", ["shebang.lua"]),
    .init("byte order mark", ["bom.lua"]),
    // LUA_INIT
    .init("LUA_INIT string", ["-e", "print(2)"], environment: ["LUA_INIT": "print('init')"]),
    .init(
        "LUA_INIT_5_4 wins", ["-e", "print(2)"],
        environment: ["LUA_INIT": "print('plain')", "LUA_INIT_5_4": "print('versioned')"]),
    .init("LUA_INIT file", ["-e", "print(initialized)"], environment: ["LUA_INIT": "@init.lua"]),
    .init("LUA_INIT missing file", ["-e", "print(2)"], environment: ["LUA_INIT": "@missing.lua"]),
    .init("LUA_INIT error", ["-e", "print(2)"], environment: ["LUA_INIT": "error('in init')"]),
    .init("LUA_INIT_5_4 error chunkname", [], environment: ["LUA_INIT_5_4": "x ="]),
    .init("LUA_INIT before -e and script", ["hello.lua"], environment: ["LUA_INIT": "print('init first')"]),
    .init("-E ignores LUA_INIT", ["-E", "-e", "print(2)"], environment: ["LUA_INIT": "print('init')"]),
    .init("LUA_PATH honoured", ["paths.lua"], environment: ["LUA_PATH": "/x/?.lua", "LUA_CPATH": "/y/?.so"]),
    .init("-E ignores LUA_PATH", ["-E", "paths.lua"], environment: ["LUA_PATH": "/x/?.lua", "LUA_CPATH": "/y/?.so"]),
    .init("LUA_PATH double semicolon", ["-e", "print(package.path)"], environment: ["LUA_PATH_5_4": "/z/?.lua;;"]),
    // -l
    .init("require library", ["-l", "mod", "-e", "print(mod.value)"]),
    .init("require library attached", ["-lmod", "-e", "print(mod.value)"]),
    .init("require into named global", ["-l", "m=mod", "-e", "print(m.value, mod)"]),
    .init("require missing module", ["-l", "nomod"]),
    .init("require failing module", ["-l", "badmod"]),
    .init("-l and -e in order", ["-e", "print(mod)", "-l", "mod", "-e", "print(mod.value)"]),
    // -W
    .init("warnings off by default", ["-e", "warn('hidden')", "-e", "print('done')"]),
    .init("-W turns warnings on", ["-W", "warn.lua"]),
    .init("-W after -e applies later", ["-e", "warn('early')", "-W", "-e", "warn('late')"]),
    .init("warn @on from Lua", ["-e", "warn('@on') warn('a', 'b')"]),
    .init("generational GC mode", ["gcmode.lua"]),
    // bad command lines
    .init("unknown option", ["-x"], differences: [.usageListsTallocOptions]),
    .init("unknown long option", ["--x"], differences: [.usageListsTallocOptions]),
    .init("combined flags", ["-iv"], differences: [.usageListsTallocOptions]),
    .init("-v with extra", ["-vx"], differences: [.usageListsTallocOptions]),
    .init("-E with extra", ["-Ex"], differences: [.usageListsTallocOptions]),
    .init("-W with extra", ["-Wall"], differences: [.usageListsTallocOptions]),
    .init("-e missing argument", ["-e"], differences: [.usageListsTallocOptions]),
    .init("-e next is an option", ["-e", "-v"], differences: [.usageListsTallocOptions]),
    .init("-l missing argument", ["-l"], differences: [.usageListsTallocOptions]),
    .init("bad option after good ones runs nothing", ["-e", "print(1)", "-q"], differences: [.usageListsTallocOptions]),
    // -i with a stdin that is not a terminal
    .init(
        "interactive with piped stdin", ["-i"], stdin: "print(1)\nx = 5\nx\nerror('e')\n1, nil, 'a'\n",
        differences: [.noEchoOfPipedInput]),
    .init(
        "interactive continuation piped", ["-i", "-e", "y = 2"], stdin: "for i = 1, y do\nprint(i)\nend\n",
        differences: [.noEchoOfPipedInput]),
    .init(
        "interactive _PROMPT piped", ["-i"], stdin: "_PROMPT = 'lua> '\n_PROMPT2 = setmetatable({}, {__tostring = function() return '... ' end})\nif true then\nend\n",
        differences: [.noEchoOfPipedInput]),
    .init(
        "interactive = shortcut and print override", ["-i"], stdin: "=1+1\nprint = function(...) io.write('P:', select('#', ...), '\\n') end\n1, 2\n",
        differences: [.noEchoOfPipedInput]),
    .init(
        "interactive end inside unfinished statement", ["-i"], stdin: "print(1\n",
        differences: [.noEchoOfPipedInput, .reportsUnfinishedStatement(message: "stdin:1: ')' expected near <eof>")]),
]

@Suite("luatalloc against Debian's lua5.4")
struct DifferentialTests {
    @Test("enough cases") func caseCount() {
        #expect(differentialCases.count >= 60)
        #expect(Set(differentialCases.map(\.name)).count == differentialCases.count, "case names are unique")
    }

    @Test(arguments: differentialCases)
    func sameAsLua(_ testCase: DifferentialCase) throws {
        try #require(Programs.luaIsInstalled, "needs Debian's lua5.4 (apt-get install lua5.4)")
        let ours = try runLuatalloc(testCase.arguments, stdin: testCase.stdin, environment: testCase.environment)
        let theirs = try runLua(testCase.arguments, stdin: testCase.stdin, environment: testCase.environment)
        let (reconciledOurs, reconciledTheirs) = testCase.reconcile(ours: ours, theirs: theirs)
        #expect(reconciledOurs.stdout == reconciledTheirs.stdout, "stdout")
        #expect(reconciledOurs.stderr == reconciledTheirs.stderr, "stderr")
        #expect(reconciledOurs.status == reconciledTheirs.status, "exit status")
    }
}
