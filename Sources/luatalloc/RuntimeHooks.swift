// luatalloc — the only place where the program learns how its Lua state is made.
// SPDX-License-Identifier: MIT
//
// The state is a LuaRuntime (library LuaTalloc): Lua's heap is accounted in TallocCore, so --memlimit
// covers Lua's heap and every context, and the reports show both.

import CLua
import CLuaShims
import CLuaStandalone
import LuaTalloc

/// The runtimes behind the states this program made (one, in practice).
private nonisolated(unsafe) var runtimes: [OpaquePointer: LuaRuntime] = [:]

/// Creates the state luatalloc runs in (standard libraries NOT yet opened). memoryLimit in bytes, nil = none.
func hostMakeState(memoryLimit: Int?) -> OpaquePointer? {
    let options = LuaRuntime.Options(memoryLimit: memoryLimit, openLibrariesNow: false)
    guard let rt = try? LuaRuntime(options: options), let L = rt.state else { return nil }
    runtimes[L] = rt
    return L
}

/// Opens the standard libraries and the `talloc` global/module in protected mode; returns a Lua status.
func hostOpenLibraries(_ L: OpaquePointer) -> Int32 {
    guard let rt = runtimes[L] else { return lsa_openlibs(L) }
    let st = rt.openLibrariesStatus().rawValue
    if st != LUA_OK { return st }
    // os.exit(status, true) closes the runtime, not only its Lua state: its tree goes too. Either form
    // first does the program's exit work (programExit: the trace, the reports).
    return lth_setexit(L, { ctx, close in
        guard let ctx else { return }
        let rt = Unmanaged<LuaRuntime>.fromOpaque(ctx).takeUnretainedValue()
        let closeState: () -> Void = { if close != 0 { rt.closeForExit() } }
        // once: a destructor running in that close may call os.exit again, which then only exits
        guard let exitWork = programExit else { return closeState() }
        programExit = nil
        exitWork(closeState)
    }, Unmanaged.passUnretained(rt).toOpaque())
}

/// What the program does at its end, around the close of its state (the closure it is given: for
/// os.exit(status) without closing, one that does nothing); main sets it while the script runs, so that
/// a script ending in os.exit still leaves its trace and reports (finding A4 of adv2).
nonisolated(unsafe) var programExit: ((_ closeState: () -> Void) -> Void)? = nil

/// Writes talloc's report (full) of every context the script made that is still alive, as talloc's
/// leak report, to `sink` in pieces: the text of a big tree never sits in memory whole.
func hostReport(_ L: OpaquePointer, to sink: (UnsafeRawBufferPointer) -> Bool) {
    guard let rt = runtimes[L] else { return }
    rt.contexts.writeReport(depth: 0, maxDepth: -1, to: sink)
}

/// Writes the Graphviz DOT source of the runtime's tree (Lua's heap and every context still alive) to
/// `sink` in pieces.
func hostDot(_ L: OpaquePointer, to sink: (UnsafeRawBufferPointer) -> Bool) {
    guard let rt = runtimes[L] else {
        var empty = "digraph talloc {\n}\n"
        _ = empty.withUTF8 { sink(UnsafeRawBufferPointer($0)) }
        return
    }
    rt.root.writeDot(to: sink)
}

/// Closes the state (every context is freed, destructors run once more).
func hostCloseState(_ L: OpaquePointer) {
    guard let rt = runtimes.removeValue(forKey: L) else {
        lua_close(L)
        return
    }
    rt.close()
}
