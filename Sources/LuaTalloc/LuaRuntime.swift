// luatalloc — the embeddable runtime
// SPDX-License-Identifier: MIT

import CLua
import Glibc
import TallocCore

/// A Lua 5.4 state whose heap is accounted in TallocCore, with the `talloc` module loaded.
///
/// The tree of a runtime:
///
///     luatalloc runtime          <- `root`: the memory limit (if any) sits here
///     ├── lua contexts           <- the parent of every top-level context a script makes
///     └── lua heap               <- Lua's own memory: an external-size context
///
/// Lua's allocations go through `lua_Alloc` to malloc, and each one is charged to the "lua heap"
/// context before it happens, so one memory limit covers Lua's heap and the script's contexts, and
/// `talloc.report()` shows both. (A TallocCore chunk per Lua object would put a 64-byte header on every
/// string and table: accounting keeps Lua's memory as lean as with the stock allocator.)
///
/// A script that exceeds the limit gets Lua's "not enough memory" error; the runtime stays usable.
/// Not thread-safe: use a runtime from one thread at a time.
public final class LuaRuntime {
    public struct Options: Sendable {
        /// Bytes for Lua's heap plus every context (headers included); nil: no limit.
        public var memoryLimit: Int?
        /// Open the standard libraries.
        public var openStandardLibraries: Bool
        /// Make the module the global `talloc` (it is always `require "talloc"`-able).
        public var tallocGlobal: Bool
        /// Open the standard libraries and the module now (false: call `openLibraries()` later).
        public var openLibrariesNow: Bool

        public init(memoryLimit: Int? = nil, openStandardLibraries: Bool = true, tallocGlobal: Bool = true,
                    openLibrariesNow: Bool = true) {
            self.memoryLimit = memoryLimit
            self.openStandardLibraries = openStandardLibraries
            self.tallocGlobal = tallocGlobal
            self.openLibrariesNow = openLibrariesNow
        }
    }

    public enum RuntimeError: Error, CustomStringConvertible {
        case outOfMemory
        case lua(status: Int32, message: String)
        public var description: String {
            switch self {
            case .outOfMemory: return "not enough memory"
            case .lua(_, let m): return m
            }
        }
    }

    /// The runtime's root context ("luatalloc runtime"); the memory limit is set on it.
    public let root: TallocContext
    /// The parent of the script's top-level contexts ("lua contexts").
    public let contexts: TallocContext
    /// Lua's heap, as an external-size context ("lua heap").
    public let heap: TallocContext
    /// The Lua state. Valid until `close()`.
    public private(set) var state: LuaState?

    public init(options: Options = Options()) throws(RuntimeError) {
        do {
            root = try TallocContext.new(parent: nil, name: "luatalloc runtime")
            contexts = try TallocContext.new(parent: root, name: "lua contexts")
            heap = try TallocContext.newExternal(parent: root, name: "lua heap")
        } catch {
            throw .outOfMemory
        }
        guard let L = luaL_newstate() else {
            try? root.free()
            throw .outOfMemory
        }
        // The state was made with the standard allocator (realloc/free) and its panic and warning
        // functions; from now on every allocation is charged to the heap context. Both allocators use
        // the C heap, so blocks made before the switch are freed correctly after it.
        let initial = Int(clua_gc(L, LUA_GCCOUNT)) * 1024 + Int(clua_gc(L, LUA_GCCOUNTB))
        _ = heap.unsafeAdjustExternalSize(by: initial)
        lua_setallocf(L, LuaRuntime.allocator, heap.unsafePointer)
        if let limit = options.memoryLimit {
            do { try root.setMemoryLimit(limit) } catch { lua_close(L); try? root.free(); throw .outOfMemory }
        }
        state = L
        self.options = options
        if options.openLibrariesNow {
            let st = openLibraries()
            if st != LUA_OK { let m = LuaRuntime.popMessage(L); close(); throw .lua(status: st, message: m) }
        }
    }

    private let options: Options

    /// Opens the standard libraries (if the options ask for them) and the `talloc` module, in protected
    /// mode. Returns a Lua status; on failure the error object is on the top of the stack.
    public func openLibraries() -> Int32 {
        guard let L = state else { return LUA_ERRRUN }
        if options.openStandardLibraries {
            let st = clua_openlibs(L)
            if st != LUA_OK { return st }
        }
        let st = LuaTallocModule.open(L, root: contexts, ownsRoot: false, setGlobal: options.tallocGlobal)
        if st != LUA_OK { return st }
        clua_pop(L, 1)
        return LUA_OK
    }

    deinit { close() }

    /// Closes the state: every context the script made is freed (destructors run once more, refusals are
    /// overridden), then Lua's heap; the runtime's tree goes last.
    public func close() {
        guard let L = state else { return }
        state = nil
        lua_close(L)
        try? root.free()
    }

    /// Lua's `lua_Alloc`: malloc/realloc/free, each growth charged to the heap context first.
    static let allocator: lua_Alloc = { ud, ptr, osize, nsize in
        let heap = TallocContext(unsafePointer: ud!)
        let old = ptr == nil ? 0 : Int(osize)
        if nsize == 0 {
            if let ptr {
                Glibc.free(ptr)
                _ = heap.unsafeAdjustExternalSize(by: -old)
            }
            return nil
        }
        let delta = Int(nsize) - old
        if delta > 0 && !heap.unsafeAdjustExternalSize(by: delta) { return nil }
        guard let p = Glibc.realloc(ptr, Int(nsize)) else {
            if delta > 0 { _ = heap.unsafeAdjustExternalSize(by: -delta) }
            return nil
        }
        if delta < 0 { _ = heap.unsafeAdjustExternalSize(by: delta) }
        return p
    }

    static func popMessage(_ L: LuaState) -> String {
        let m = clua_tostring(L, -1).map { String(cString: $0) } ?? "(error object is not a string)"
        clua_pop(L, 1)
        return m
    }

    /// Runs a chunk of Lua source with a traceback on errors; its results are discarded.
    ///
    /// - Throws: `RuntimeError.lua` with Lua's message (and traceback) when it fails to load or run.
    public func run(_ code: String, chunkName: String = "=(string)") throws(RuntimeError) {
        guard let L = state else { throw .lua(status: LUA_ERRRUN, message: "the runtime is closed") }
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        var code = code
        let st = code.withUTF8 { b in
            b.withMemoryRebound(to: CChar.self) { c in clua_loadbuffer(L, c.baseAddress, c.count, chunkName) }
        }
        if st != LUA_OK { throw .lua(status: st, message: LuaRuntime.popMessage(L)) }
        lua_pushcclosure(L, clua_msghandler, 0)
        clua_insert(L, base + 1)
        let rs = clua_pcall(L, 0, 0, base + 1)
        if rs != LUA_OK { throw .lua(status: rs, message: LuaRuntime.popMessage(L)) }
    }

    /// Runs a Lua file (as `lua script.lua` would, without arguments).
    public func run(file path: String) throws(RuntimeError) {
        guard let L = state else { throw .lua(status: LUA_ERRRUN, message: "the runtime is closed") }
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        let st = clua_loadfile(L, path)
        if st != LUA_OK { throw .lua(status: st, message: LuaRuntime.popMessage(L)) }
        lua_pushcclosure(L, clua_msghandler, 0)
        clua_insert(L, base + 1)
        let rs = clua_pcall(L, 0, 0, base + 1)
        if rs != LUA_OK { throw .lua(status: rs, message: LuaRuntime.popMessage(L)) }
    }

    /// Bytes Lua's heap holds now.
    public var luaHeapSize: Int { heap.size }

    /// talloc_report_full of the runtime: Lua's heap and every context.
    public func reportFull(addresses: Bool = true) -> String { root.reportFull(addresses: addresses) }

    /// talloc_report of the script's top-level contexts.
    public func report(addresses: Bool = true) -> String { root.report(addresses: addresses) }

    /// Graphviz source of the runtime's tree.
    public func dot() -> String { root.dot() }
}
