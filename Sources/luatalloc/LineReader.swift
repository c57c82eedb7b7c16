// luatalloc — how the REPL reads a line: libedit on a terminal, plain fgets otherwise.
// SPDX-License-Identifier: MIT

import CEdit
import Glibc

/// Reads the REPL's input lines. On a terminal it uses libedit's readline-compatible API (line editing,
/// history across runs in `historyFile`); when the standard input is not a terminal it prints the prompt
/// and reads with `fgets` into a 512-byte buffer, as lua.c built without readline does (LUA_MAXINPUT).
final class LineReader {
    /// lua.c's LUA_MAXINPUT: the fgets buffer; longer lines arrive in pieces, as in lua.c.
    static let maximumInput: Int32 = 512
    /// How many entries the history keeps.
    static let historyLimit: Int32 = 1000

    private let usesEditor: Bool
    private let historyFile: String?

    /// - Parameter historyFile: where history is read from and saved to; nil keeps it in memory only.
    init(historyFile: String?) {
        usesEditor = isatty(0) != 0
        self.historyFile = usesEditor ? historyFile : nil
        guard usesEditor else { return }
        rl_readline_name = UnsafePointer(strdup("lua"))  // as lua.c, for editrc/inputrc sections
        using_history()
        stifle_history(Self.historyLimit)
        if let historyFile { _ = read_history(historyFile) }
    }

    /// Shows `prompt` and reads one line, without its newline; nil at end of input.
    func readLine(prompt: [CChar]) -> [CChar]? {
        if usesEditor {
            guard let line = readline(prompt) else {
                // GNU readline ends the line at end of input; libedit leaves the cursor after its "^D"
                // echo, so the next message would start on the same line.
                fputs("\n", stdout)
                fflush(stdout)
                return nil
            }
            defer { free(line) }
            return Array(UnsafeBufferPointer(start: line, count: strlen(line)))
        }
        fputs(prompt, stdout)  // show prompt
        fflush(stdout)
        var buffer = [CChar](repeating: 0, count: Int(Self.maximumInput))
        guard fgets(&buffer, Self.maximumInput, stdin) != nil else { return nil }
        var line = Array(buffer[..<strlen(buffer)])
        if line.last == CChar(UInt8(ascii: "\n")) { line.removeLast() }  // remove newline
        return line
    }

    /// Keeps a complete statement in the history (and in the history file at once, so that a session
    /// killed by Ctrl-C at the prompt keeps what was typed).
    func save(_ line: [CChar]) {
        guard usesEditor else { return }
        _ = (line + [0]).withUnsafeBufferPointer { add_history($0.baseAddress) }
        if let historyFile { _ = write_history(historyFile) }
    }
}
