// luatalloc — the REPL in a pseudo-terminal (tmux), compared with lua5.4 where comparable.
// SPDX-License-Identifier: MIT

import Foundation
import Testing

/// One thing a person does at the terminal.
enum Step: Sendable {
    /// Type a line and press Enter.
    case line(String)
    /// Press keys (tmux names: `C-c`, `C-d`, `Up`).
    case keys(String)
    /// Wait until the screen shows this text.
    case waitFor(String)
    /// Wait a little (the program runs).
    case pause(TimeInterval)
}

/// A REPL session typed into both programs.
struct REPLSession: Sendable, CustomTestStringConvertible {
    let name: String
    var arguments: [String] = []
    let steps: [Step]
    /// Text that luatalloc's screen must show.
    let expected: [String]
    /// What lua5.4's screen shows instead of luatalloc's, where we differ on purpose (see
    /// `DeliberateDifference`): pairs (ours, theirs) replaced in our screen before comparing.
    var differences: [(String, String)] = []

    var testDescription: String { name }
}

/// libedit echoes "^D" when Ctrl-D ends the input (emacs mode, `em_delete_or_list`); GNU readline does
/// not. A cosmetic difference of the line editor, removed before comparing screens.
func removingEOFEcho(_ screen: String) -> String {
    screen.replacingOccurrences(of: "^D", with: "")
        .split(separator: "\n", omittingEmptySubsequences: false)
        .map { String($0.reversed().drop(while: { $0 == " " }).reversed()) }
        .joined(separator: "\n")
}

let replSessions: [REPLSession] = [
    REPLSession(
        name: "auto-print through print",
        steps: [.line("1 + 1, nil, 'a'"), .line("x = 5"), .line("x"), .line("=x * 2"), .line("print('p')"),
                .line("local y = 1"), .line("y"), .keys("C-d"), .waitFor("[exit 0]")],
        expected: ["> 1 + 1, nil, 'a'\n2       nil     a\n> x = 5\n> x\n5\n> =x * 2\n10\n> print('p')\np\n",
                   "> y\nnil", "[exit 0]"]),
    REPLSession(
        name: "continuation lines",
        steps: [.line("for i = 1, 2 do"), .line("print(i)"), .line("end"), .line("x ="), .line("7"), .line("x"),
                .keys("C-d"), .waitFor("[exit 0]")],
        expected: ["> for i = 1, 2 do\n>> print(i)\n>> end\n1\n2\n> x =\n>> 7\n> x\n7"]),
    REPLSession(
        name: "_PROMPT and _PROMPT2",
        steps: [.line("_PROMPT = 'lua> '"), .line("_PROMPT2 = setmetatable({}, {__tostring = function() return '... ' end})"),
                .line("if true then"), .line("end"), .line("_PROMPT = nil"), .keys("C-d"), .waitFor("[exit 0]")],
        expected: ["lua> if true then\n... end\nlua> _PROMPT = nil\n>"]),
    REPLSession(
        name: "error then go on",
        steps: [.line("error('e')"), .line("x.y.z = 1"), .line("print('still here')"), .line("x = = 1"),
                .keys("C-d"), .waitFor("[exit 0]")],
        expected: ["> error('e')\nstdin:1: e\nstack traceback:\n        [C]: in function 'error'\n        stdin:1: in main chunk\n        [C]: in ?\n",
                   "stdin:1: attempt to index a nil value (global 'x')", "> print('still here')\nstill here",
                   "> x = = 1\nstdin:1: unexpected symbol near '='", "[exit 0]"]),
    REPLSession(
        name: "Ctrl-C interrupts a running chunk",
        steps: [.line("while true do end"), .pause(0.5), .keys("C-c"), .waitFor("interrupted!"),
                .line("print('back')"), .keys("C-d"), .waitFor("[exit 0]")],
        expected: ["> while true do end\n^Cinterrupted!\nstack traceback:\n", "> print('back')\nback", "[exit 0]"]),
    REPLSession(
        name: "end of input inside an unfinished statement",
        steps: [.line("print(1"), .keys("C-d"), .line("print('after')"), .keys("C-d"),
                .waitFor("[exit 0]")],
        expected: [">>\nstdin:1: ')' expected near <eof>\n> print('after')\nafter"],
        differences: [("stdin:1: ')' expected near <eof>", "(null)")]),
    REPLSession(
        name: "script then -i",
        arguments: ["-i", "hello.lua"],
        steps: [.waitFor("> "), .line("print(#arg, arg[0])"), .keys("C-d"), .waitFor("[exit 0]")],
        expected: ["Lua 5.4.4  Copyright (C) 1994-2022 Lua.org, PUC-Rio\nhello\n> print(#arg, arg[0])\n0       hello.lua"]),
    REPLSession(
        name: "os.exit from the prompt",
        steps: [.line("os.exit(5)"), .waitFor("[exit")],
        expected: ["> os.exit(5)\n[exit 5]"]),
]

@Suite("REPL in a pseudo-terminal", .serialized)
struct REPLTests {
    /// Types the session into `program` and returns the final screen.
    func play(_ session: REPLSession, program: String, home: String) throws -> String {
        let terminal = try TerminalSession(program, session.arguments, home: home)
        #expect(terminal.waitFor("> "), "prompt of \(program)")
        terminal.settle()
        for step in session.steps {
            switch step {
            case .line(let text): try terminal.enter(text)
            case .keys(let names): try terminal.keys(names)
            case .waitFor(let text): #expect(terminal.waitFor(text), "\(program) shows \(text)")
            case .pause(let seconds): usleep(UInt32(seconds * 1_000_000))
            }
        }
        return terminal.screen()
    }

    @Test(arguments: replSessions)
    func session(_ session: REPLSession) throws {
        try #require(tmuxIsInstalled, "needs tmux")
        let ours = try play(session, program: Programs.luatalloc, home: try makeHome())
        for text in session.expected {
            #expect(removingEOFEcho(ours).contains(text), "screen:\n\(ours)")
        }
        guard Programs.luaIsInstalled else { return }
        let theirs = try play(session, program: Programs.lua, home: try makeHome())
        var reconciled = removingEOFEcho(ours)
        for (mine, lua) in session.differences {
            reconciled = reconciled.replacingOccurrences(of: mine, with: lua)
        }
        #expect(reconciled == removingEOFEcho(theirs), "luatalloc:\n\(ours)\n\nlua5.4:\n\(theirs)")
    }

    /// As lua.c: SIGINT is only caught while a chunk runs; at the prompt it ends the program (the line
    /// editor restores the terminal first).
    @Test func ctrlCAtThePromptEndsTheProgram() throws {
        try #require(tmuxIsInstalled, "needs tmux")
        for program in [Programs.luatalloc] + (Programs.luaIsInstalled ? [Programs.lua] : []) {
            let terminal = try TerminalSession(program, ["-E"], home: try makeHome())
            #expect(terminal.waitFor(">"))
            try terminal.enter("print('typed')")
            try terminal.keys("C-c")
            #expect(terminal.waitFor("[exit 130]"), "\(program):\n\(terminal.screen())")
        }
    }

    @Test func historyIsKeptAcrossRuns() throws {
        try #require(tmuxIsInstalled, "needs tmux")
        let home = try makeHome()
        do {
            let terminal = try TerminalSession(Programs.luatalloc, home: home)
            #expect(terminal.waitFor("> "))
            try terminal.enter("print('first' .. 'run')")
            try terminal.enter("for i = 1, 1 do")
            try terminal.enter("end")
            try terminal.keys("C-d")
            #expect(terminal.waitFor("[exit 0]"))
        }
        let file = home + "/.luatalloc_history"
        let history = try String(contentsOfFile: file, encoding: .utf8)
        #expect(history.contains("print('first'"), "history file:\n\(history)")
        #expect(history.contains("for"), "multi-line statement kept as one entry")

        let terminal = try TerminalSession(Programs.luatalloc, home: home)
        #expect(terminal.waitFor("> "))
        terminal.settle()
        try terminal.keys("Up", "Up")
        try terminal.keys("Enter")
        #expect(terminal.waitFor("firstrun"), "Up twice recalls the line typed in the previous run:\n\(terminal.screen())")
        try terminal.keys("C-d")
    }

    @Test func noHistoryFileWithE() throws {
        try #require(tmuxIsInstalled, "needs tmux")
        let home = try makeHome()
        let terminal = try TerminalSession(Programs.luatalloc, ["-E"], home: home)
        #expect(terminal.waitFor("> "))
        try terminal.enter("print('no history')")
        try terminal.keys("Up")
        try terminal.keys("Enter")
        #expect(terminal.waitFor("no history\n> print('no history')\nno history"), "history still works within the run:\n\(terminal.screen())")
        try terminal.keys("C-d")
        #expect(terminal.waitFor("[exit 0]"))
        #expect(!FileManager.default.fileExists(atPath: home + "/.luatalloc_history"))
    }

    @Test func lineEditing() throws {
        try #require(tmuxIsInstalled, "needs tmux")
        let terminal = try TerminalSession(Programs.luatalloc, ["-E"], home: try makeHome())
        #expect(terminal.waitFor("> "))
        try terminal.type("print(12)")
        try terminal.keys("Left", "BSpace", "5", "Enter")
        #expect(terminal.waitFor("\n15"), "Left + Backspace edit the line:\n\(terminal.screen())")
        try terminal.keys("C-d")
    }
}

/// talloc at the prompt: the global, the whole-session report, a pool's byte map, a picture's source.
@Suite("talloc at the REPL", .serialized)
struct TallocREPLTests {
    @Test func thePoolsChapterAtThePrompt() throws {
        try #require(tmuxIsInstalled, "needs tmux")
        let terminal = try TerminalSession(Programs.luatalloc, ["-E"], home: try makeHome())
        #expect(terminal.waitFor("> "))
        terminal.settle()
        try terminal.enter("p = talloc.pool(nil, 1024)")
        try terminal.enter("a = talloc.size(p, 512, 'a')")
        try terminal.enter("talloc.pool_map(p)")
        #expect(terminal.waitFor("[HHHH################################____________________________] 576/1024 bytes used"), "\(terminal.screen())")
        try terminal.enter("b = talloc.size(p, 100, 'b'); talloc.free(b); talloc.pool_map(p)")
        #expect(terminal.waitFor("576/1024 bytes used, 2 objects"), "the last chunk is reclaimed:\n\(terminal.screen())")
        try terminal.enter("print(talloc.report(nil, {addresses = false}))")
        #expect(terminal.waitFor("talloc report on 'luatalloc runtime'"), "\(terminal.screen())")
        #expect(terminal.waitFor("lua heap"), "\(terminal.screen())")
        try terminal.enter("print((talloc.dot(p):gsub('\\n', ' ')))")
        #expect(terminal.waitFor("digraph talloc {"), "\(terminal.screen())")
        try terminal.enter("talloc.get_size(a), talloc.free(p), talloc.is_freed(a)")
        #expect(terminal.waitFor("512     true    true"), "\(terminal.screen())")
        try terminal.keys("C-d")
        #expect(terminal.waitFor("[exit 0]"))
    }
}
