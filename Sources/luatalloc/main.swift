// luatalloc — a drop-in for the standalone `lua5.4` program, with talloc's tools on top.
// SPDX-License-Identifier: MIT
//
// As lua.c's `main`, this file makes only calls that cannot raise a Lua error: the state is created
// by RuntimeHooks.swift and everything that runs Lua code goes through `Interpreter`, which uses the
// protected helpers of shim.h.

import CLua
import CLuaShims
import Glibc
import LuaTalloc
import TallocCore

/// Writes `text` to stderr and flushes it (lua.c's lua_writestringerror).
func writeError(_ text: String) {
    fputs(text, stderr)
    fflush(stderr)
}

/// Writes what `produce` streams to a new file at `path`; nil on success, else the reason (strerror).
func writeFile(to path: CArgument, _ produce: ((UnsafeRawBufferPointer) -> Bool) -> Void) -> String? {
    guard let file = path.withCString({ fopen($0, "w") }) else { return String(cString: strerror(errno)) }
    produce { piece in fwrite(piece.baseAddress, 1, piece.count, file) == piece.count }
    let failed = ferror(file) != 0
    let closed = fclose(file) == 0
    return failed || !closed ? String(cString: strerror(errno)) : nil
}

/// The program; returns the exit status.
func luatallocMain() -> Int32 {
    let arguments = (0..<Int(CommandLine.argc)).compactMap { index in
        CommandLine.unsafeArgv[index].map { CArgument(UnsafePointer($0)) }
    }
    // lua.c: 'progname' is argv[0] when present and not empty
    let progname = arguments.first.flatMap { $0.count > 0 ? $0 : nil } ?? CArgument(bytes: "luatalloc".utf8CString.dropLast())

    let options: Options
    switch collectArguments(arguments) {
    case .help:
        fputs(usageText(progname: progname.text), stdout)
        return EXIT_SUCCESS
    case .failure(let error):
        writeError("\(progname.text): \(error.message)\n" + usageText(progname: progname.text))
        return EXIT_FAILURE
    case .run(let parsed):
        options = parsed
    }

    if let replayFile = options.replayFile {
        return runReplay(replayFile, capacity: options.poolCapacity, memoryLimit: options.memoryLimit, progname: progname)
    }

    // Every pool the script makes records into this (the pool report, and -W's warning when a pool is
    // pinned: a Lua warning, so warn("@on") in a script turns it on too).
    let recorder = TallocPoolRecorder()
    TallocPoolRecorder.current = recorder
    var trace: (writer: TallocTraceWriter, file: UnsafeMutablePointer<FILE>)? = nil
    if let traceFile = options.traceFile {
        guard let file = traceFile.withCString({ fopen($0, "w") }) else {
            writeError("\(progname.text): cannot open \(traceFile.text): \(String(cString: strerror(errno)))\n")
            return EXIT_FAILURE
        }
        let script = options.script < arguments.count ? arguments[options.script].text : "(no script)"
        let writer = TallocTraceWriter(sink: { piece in fwrite(piece.baseAddress, 1, piece.count, file) == piece.count },
                                       comment: "luatalloc --trace of \(script)")
        TallocTraceWriter.current = writer
        trace = (writer, file)
    }

    guard let L = hostMakeState(memoryLimit: options.memoryLimit) else {
        writeError("\(progname.text): cannot create state: not enough memory\n")
        return EXIT_FAILURE
    }
    recorder.onPinned = { pin in lua_warning(L, PoolReport.warning(pin), 0) }
    let interpreter = Interpreter(state: L, arguments: arguments, options: options, progname: progname)

    /// The program's end: the trace, the reports, the close of the state (`closeState`); false when a
    /// file could not be written. Also what os.exit does before it exits (`programExit`).
    func finish(_ closeState: () -> Void) -> Bool {
        var succeeded = true
        fflush(stdout)
        if let (writer, file) = trace {
            // what closing the state frees is not the script's doing: the trace ends here
            TallocTraceWriter.current = nil
            writer.flush()
            if writer.failed || ferror(file) != 0 || fclose(file) != 0 {
                writeError("\(progname.text): cannot write \(options.traceFile!.text): \(String(cString: strerror(errno)))\n")
                succeeded = false
            }
        }

        if options.report {
            hostReport(L) { piece in fwrite(piece.baseAddress, 1, piece.count, stderr) == piece.count }
            fflush(stderr)
        }
        if let dotFile = options.dotFile, let reason = writeFile(to: dotFile, { hostDot(L, to: $0) }) {
            writeError("\(progname.text): cannot write \(dotFile.text): \(reason)\n")
            succeeded = false
        }
        recorder.isClosing = true
        recorder.onPinned = nil
        closeState()
        TallocPoolRecorder.current = nil
        if options.poolReport {
            writeError(PoolReport.text(recorder.sites))
        }
        return succeeded
    }

    programExit = { closeState in _ = finish(closeState) }
    var succeeded = interpreter.run()
    programExit = nil
    succeeded = finish { hostCloseState(L) } && succeeded
    return succeeded ? EXIT_SUCCESS : EXIT_FAILURE
}

exit(luatallocMain())
