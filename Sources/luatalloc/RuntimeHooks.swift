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
    // os.exit(status, true) closes the runtime, not only its Lua state: its tree goes too
    return lth_setexit(L, { ctx in
        guard let ctx else { return }
        let rt = Unmanaged<LuaRuntime>.fromOpaque(ctx).takeUnretainedValue()
        rt.closeForExit()
    }, Unmanaged.passUnretained(rt).toOpaque())
}

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
