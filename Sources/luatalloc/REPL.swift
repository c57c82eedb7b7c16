// luatalloc — lua.c's read-eval-print loop (doREPL, loadline, addreturn, multiline, l_print).
// SPDX-License-Identifier: MIT

import CLua
import CLuaShims
import CLuaStandalone
import Glibc

/// The interactive loop, as lua.c's `doREPL`: each input is first compiled as `return <line>;` and its
/// results printed through the global `print`; otherwise as a statement, reading continuation lines
/// (prompt `_PROMPT2`) while the syntax error ends in `<eof>`. Errors are printed without the program
/// name and the loop goes on; end of input prints a newline and returns.
struct REPL {
    let interpreter: Interpreter
    private var L: OpaquePointer { interpreter.L }

    init(interpreter: Interpreter) {
        self.interpreter = interpreter
    }

    /// The history file: `~/.luatalloc_history`, none with `-E` (environment ignored) or without $HOME.
    private var historyFile: String? {
        guard !interpreter.options.ignoreEnvironment, let home = getenv("HOME"), home[0] != 0 else {
            return nil
        }
        return String(cString: home) + "/.luatalloc_history"
    }

    func run() {
        let oldProgname = interpreter.progname
        interpreter.progname = nil  // no 'progname' on errors in interactive mode
        let reader = LineReader(historyFile: historyFile)
        let base = interpreter.baseOfStack
        clua_pop(L, lua_gettop(L) - base)  // lua.c's loadline: lua_settop(L, 0)
        while let loaded = loadLine(reader) {
            var status = loaded
            if status == LUA_OK { status = lsa_docall(L, 0, LUA_MULTRET) }
            if status == LUA_OK {
                lsa_print(L, lua_gettop(L) - base, nil)
            } else {
                interpreter.report(status)
            }
            clua_pop(L, lua_gettop(L) - base)
        }
        clua_pop(L, lua_gettop(L) - base)  // clear stack
        lsa_writeline()
        interpreter.progname = oldProgname
    }

    /// lua.c's `get_prompt`: `_PROMPT`/`_PROMPT2` through `tostring`, or the defaults; NUL-terminated.
    /// (An error in a `__tostring` of the prompt is reported and the default prompt is used.)
    private func prompt(firstLine: Bool) -> [CChar] {
        let fallback = firstLine ? "> " : ">> "
        let status = lsa_getprompt(L, firstLine ? 1 : 0)
        defer { clua_pop(L, 1) }
        guard status == LUA_OK else {
            interpreter.report(status)
            lua_pushnil(L)  // for the deferred pop
            return Array(fallback.utf8CString)
        }
        var length = 0
        guard let text = clua_tostring_strict(L, -1, &length) else { return Array(fallback.utf8CString) }
        return Array(UnsafeBufferPointer(start: text, count: length)) + [0]
    }

    /// lua.c's `pushline`: prompt, read, and the 5.2 compatibility `=expr` → `return expr`.
    private func readLine(_ reader: LineReader, firstLine: Bool) -> [CChar]? {
        guard let line = reader.readLine(prompt: prompt(firstLine: firstLine)) else { return nil }
        if firstLine && line.first == CChar(UInt8(ascii: "=")) {
            return Array("return ".utf8).map { CChar(bitPattern: $0) } + line.dropFirst()
        }
        return line
    }

    /// Compiles `code` with chunk name `=stdin`; pushes the chunk or the error message.
    private func load(_ code: [CChar]) -> Int32 {
        code.withUnsafeBufferPointer { luaL_loadbufferx(L, $0.baseAddress, $0.count, "=stdin", nil) }
    }

    /// lua.c's `loadline`: reads and compiles one statement; nil at end of input. On return the chunk
    /// (status LUA_OK) or the error message is on the top.
    private func loadLine(_ reader: LineReader) -> Int32? {
        guard let line = readLine(reader, firstLine: true) else { return nil }
        // addreturn: try 'return <line>;' (lua.c builds it with "%s", so stops at a NUL)
        let text = Array(line.prefix { $0 != 0 })
        let returnLine = Array("return ".utf8CString.dropLast()) + text + [CChar(UInt8(ascii: ";"))]
        if load(returnLine) == LUA_OK {
            if !text.isEmpty { reader.save(text) }  // keep history
            return LUA_OK
        }
        clua_pop(L, 1)  // pop the message of the failed 'return' version
        return multiline(reader, first: line)
    }

    /// lua.c's `multiline`: compiles as a statement, adding continuation lines while the syntax error
    /// says the input ended too early (message ends in `<eof>`).
    ///
    /// Deliberate fix of Lua 5.4.4: when the input ends inside an unfinished statement, 5.4.4 prints
    /// `(null)` (its `incomplete` popped the message and `report` then reads the prompt slot). We keep the
    /// syntax error of what was typed and report it, e.g. `stdin:1: ')' expected near <eof>`, which is
    /// what Lua 5.4.8 prints after its fix "Bad stack manipulation in 'multiline'".
    private func multiline(_ reader: LineReader, first: [CChar]) -> Int32 {
        var buffer = first
        while true {
            let status = load(buffer)
            guard status == LUA_ERRSYNTAX, endsWithEOFMark(), let more = readLine(reader, firstLine: false)
            else {
                reader.save(buffer)  // keep history
                return status
            }
            clua_pop(L, 1)  // the message about the incomplete input
            buffer += [CChar(UInt8(ascii: "\n"))] + more
        }
    }

    /// lua.c's `incomplete`: does the message on the top end with `<eof>`?
    private func endsWithEOFMark() -> Bool {
        var length = 0
        guard let message = clua_tostring_strict(L, -1, &length) else { return false }
        let bytes = UnsafeRawBufferPointer(start: message, count: length)
        return bytes.count >= 5 && Array(bytes.suffix(5)) == Array("<eof>".utf8)
    }
}
