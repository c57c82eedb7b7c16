// luatalloc — the embeddable runtime
// SPDX-License-Identifier: MIT

import CLua
import CLuaShims
import Glibc
import TallocCore

/// A Lua 5.4 state whose heap is accounted in TallocCore, with the `talloc` module loaded: the way a
/// Swift program embeds Lua and talloc (`import LuaTalloc`).
///
/// The tree of a runtime:
///
///     luatalloc runtime          <- `root`: the memory limit (if any) sits here
///     ├── lua contexts           <- `contexts`: the parent of every top-level context a script makes
///     └── lua heap               <- `heap`: Lua's own memory, an external-size context
///
/// Lua's allocations go through `lua_Alloc` to malloc, and each one is charged to the "lua heap"
/// context before it happens, so one memory limit covers Lua's heap and the script's contexts, and
/// `talloc.report()` shows both. (A TallocCore chunk per Lua object would put a 64-byte header on every
/// string and table: accounting keeps Lua's memory as lean as with the stock allocator.)
///
/// What a host does with it:
///
///     let lua = try LuaRuntime(options: .sandbox(memoryLimit: 8 << 20, instructionLimit: 10_000_000))
///     try lua.register("greet") { args in ["hello, " + (args.first?.stringValue ?? "?")] }
///     let results = try lua.run("return greet('lua'), 6 * 7")   // ["hello, lua", 42]
///
/// - Errors: a script that fails — a Lua error, "not enough memory" over the memory limit, a spent
///   budget — throws `RuntimeError`; the runtime stays usable. A Lua error never unwinds a Swift frame:
///   Swift calls only the Lua API functions that cannot raise, and every other call runs in C under
///   `lua_pcall` (DESIGN §4).
/// - Contexts: a context a script makes belongs to Lua (its garbage collector frees it when no Lua value
///   reaches it; closing the runtime frees everything left). A context the host passes in is *lent*:
///   see `LuaValue.context`, `withContexts(_:)` and docs/EMBEDDING.md for who frees what.
///
/// - warning: Not thread-safe, like talloc and Lua: use a runtime from one thread at a time.
public final class LuaRuntime {
    /// The runtime's root context ("luatalloc runtime"); the memory limit is set on it.
    public let root: TallocContext
    /// The parent of the script's top-level contexts ("lua contexts"): what is under it is Lua's.
    public let contexts: TallocContext
    /// Lua's heap, as an external-size context ("lua heap").
    public let heap: TallocContext
    /// The Lua state (for the C API, `-` functions only). Valid until `close()`.
    public private(set) var state: LuaState?
    /// The options the runtime was made with.
    public let options: Options

    /// The registry reference of the host table (module, metatable, pins, bound helpers); 0 before
    /// the module is open.
    var hostRef: Int32 = 0
    /// What the allocator works with: the heap context and the "memory ran out" flag.
    let heapState: UnsafeMutablePointer<lth_Heap>
    /// The budget the count hook reads (nil: no budget, no hook).
    var budget: UnsafeMutablePointer<lth_Budget>?
    /// Entries from Swift into Lua that are running (the outermost arms the budget).
    var entryDepth = 0
    /// The threads that Swift functions called from Lua run on, innermost last: a host call made from
    /// inside one (a nested `run`) uses that thread, not the main one.
    var threads: [LuaState] = []
    /// The Swift functions registered with Lua; released when the runtime closes.
    var functions: [_FunctionBox] = []

    /// Makes the state, the runtime's tree and (with `openLibrariesNow`) the libraries and the module.
    ///
    /// The corresponding Lua function is `luaL_newstate` (then `lua_setallocf`).
    /// - Throws: `RuntimeError.outOfMemory`, or `.lua` if opening the libraries failed.
    public init(options: Options = Options()) throws(RuntimeError) {
        do {
            root = try TallocContext.new(parent: nil, name: "luatalloc runtime")
            contexts = try TallocContext.new(parent: root, name: "lua contexts")
            heap = try TallocContext.newExternal(parent: root, name: "lua heap")
        } catch {
            throw .outOfMemory
        }
        self.options = options
        heapState = UnsafeMutablePointer<lth_Heap>.allocate(capacity: 1)
        heapState.initialize(to: lth_Heap(collect: ltc_Collect(pending: 0, grace: 0), heap: heap.unsafePointer, debt: 0))
        guard let L = luaL_newstate() else {
            try? root.free()
            heapState.deallocate()
            throw .outOfMemory
        }
        // The state was made with the standard allocator (realloc/free) and its panic and warning
        // functions; from now on every allocation is charged to the heap context. Both allocators use
        // the C heap, so blocks made before the switch are freed correctly after it.
        // (malloc's headers of those first blocks are not known: Lua's own count, plus 16 bytes a block
        // for the few dozen blocks a new state has, is close)
        let initial = Int(clua_gc(L, LUA_GCCOUNT)) * 1024 + Int(clua_gc(L, LUA_GCCOUNTB))
        lth_clearbudget(L)  // no budget until one is installed: the extra space says so
        _ = heap.unsafeAdjustExternalSize(by: initial)
        lua_setallocf(L, LuaRuntime.allocator, heapState)
        if let limit = options.memoryLimit {
            do { try root.setMemoryLimit(limit) } catch {
                lua_close(L)
                try? root.free()
                heapState.deallocate()
                throw .outOfMemory
            }
        }
        state = L
        if options.instructionLimit != nil || options.timeLimit != nil {
            installBudget(L)
        }
        if options.openLibrariesNow {
            let st = openLibraries()
            if st != LUA_OK { let m = LuaRuntime.popMessage(L); close(); throw .lua(status: st, message: m) }
        }
    }

    /// Opens the standard libraries the options ask for and the `talloc` module, in protected mode, then
    /// hardens the globals of a sandbox. Returns a Lua status; on failure the error object is on the top
    /// of the stack.
    ///
    /// The corresponding Lua functions are `luaL_requiref` with each `luaopen_*` (as `luaL_openlibs`).
    public func openLibraries() -> Int32 {
        guard let L = state else { return LUA_ERRRUN }
        if !options.libraries.isEmpty {
            let st = lth_openlibs(L, options.libraries.rawValue)
            if st != LUA_OK { return st }
        }
        let st = LuaTallocModule.open(L, root: contexts, ownsRoot: false, setGlobal: options.tallocGlobal,
                                      account: heap, collect: &heapState.pointee.collect)
        if st != LUA_OK { return st }
        if options.libraries.contains(.base) || options.libraries.contains(.coroutine) {
            let cs = lth_collectingcatch(L, &heapState.pointee.collect)
            if cs != LUA_OK { clua_remove(L, -2); return cs }
        }
        lua_pushvalue(L, -1)
        var ref: Int32 = 0
        let hs = lth_hostinit(L, LuaRuntime.performBody, &ref)
        if hs != LUA_OK { clua_remove(L, -2); return hs }
        hostRef = ref
        if options.sandboxed {
            let ss = lth_sandbox(L)  // pops the module
            if ss != LUA_OK { return ss }
            // the standard functions whose single calls could outrun the budget charge it for their work
            let bs = lth_openbounded(L)
            if bs != LUA_OK { return bs }
        } else {
            clua_pop(L, 1)
        }
        return LUA_OK
    }

    deinit { close() }

    /// Closes the state: every context the scripts made is freed (destructors run once more, refusals are
    /// overridden), then Lua's heap; the runtime's tree goes last. Lent contexts stay the host's, with
    /// whatever Lua made under them (their Lua destructors are dropped). Registered Swift functions are
    /// released. Calling it again does nothing, and so does calling it from a Swift function that Lua
    /// is running (the state is in use; close it after the call returns).
    ///
    /// The corresponding Lua function is `lua_close`.
    public func close() {
        guard let L = state, entryDepth == 0, threads.isEmpty else { return }
        state = nil
        hostRef = 0
        lua_close(L)
        functions.removeAll()
        if let budget {
            budget.deallocate()
            self.budget = nil
        }
        try? root.free()
        heapState.deallocate()
    }

    /// Lua's `lua_Alloc`: malloc/realloc/free, each growth charged to the heap context first. A growth
    /// that fails asks for a collection: the module (at its next call) and the runtime's pcall (when it
    /// catches the error) then collect with finalizers, which Lua's emergency collections skip. While
    /// such a collection runs, finalizers may overdraw the limit by up to LTH_GRACE bytes (calling one
    /// needs stack); that debt is charged back as soon as it fits.
    static let allocator: lua_Alloc = { ud, ptr, osize, nsize in
        let hs = ud!.assumingMemoryBound(to: lth_Heap.self)
        let heap = TallocContext(unsafePointer: hs.pointee.heap)
        if hs.pointee.debt > 0 && heap.unsafeAdjustExternalSize(by: Int(hs.pointee.debt)) { hs.pointee.debt = 0 }
        // what malloc really takes, so that the limit bounds the process's memory, not Lua's count of it
        let old = ptr == nil ? 0 : Int(ltc_mallocfootprint(osize))
        if nsize == 0 {
            if let ptr {
                Glibc.free(ptr)
                release(hs, heap, old)
            }
            return nil
        }
        let delta = Int(ltc_mallocfootprint(nsize)) - old
        var owed = 0
        if delta > 0 && !heap.unsafeAdjustExternalSize(by: delta) {
            hs.pointee.collect.pending = 1
            guard hs.pointee.collect.grace > 0, Int(hs.pointee.debt) + delta <= Int(LTH_GRACE) else { return nil }
            owed = delta
        }
        guard let p = Glibc.realloc(ptr, Int(nsize)) else {
            if delta > 0 && owed == 0 { _ = heap.unsafeAdjustExternalSize(by: -delta) }
            hs.pointee.collect.pending = 1
            return nil
        }
        if owed > 0 { hs.pointee.debt += owed }
        if delta < 0 { release(hs, heap, -delta) }
        return p
    }

    /// Gives `n` bytes back: first from the debt, then from the heap context (never below zero: the
    /// blocks the state made before the allocator was switched were counted without malloc's headers).
    @inline(__always)
    static func release(_ hs: UnsafeMutablePointer<lth_Heap>, _ heap: TallocContext, _ n: Int) {
        let fromDebt = Swift.min(Int(hs.pointee.debt), n)
        hs.pointee.debt -= fromDebt
        let rest = Swift.min(n - fromDebt, heap.size)
        if rest > 0 { _ = heap.unsafeAdjustExternalSize(by: -rest) }
    }

    /// The message of the error object on the top (popped).
    static func popMessage(_ L: LuaState) -> String {
        let m: String
        if let s = clua_tostring(L, -1) {
            m = String(cString: s)
        } else {
            m = "(error object is a \(String(cString: lua_typename(L, lua_type(L, -1)))) value)"
        }
        clua_pop(L, 1)
        return m
    }

    /// The thread host calls run on: the one a Swift function called from Lua is running on, else the
    /// main thread.
    func currentThread() throws(RuntimeError) -> LuaState {
        if let L = threads.last { return L }
        guard let L = state else { throw .lua(status: LUA_ERRRUN, message: "the runtime is closed") }
        return L
    }

    // MARK: - Running code

    /// Runs a chunk of Lua source and returns what it returns, as Swift values.
    ///
    /// Errors get a traceback. The chunk's varargs are `arguments`.
    ///
    /// The corresponding Lua functions are `luaL_loadbufferx` and `lua_pcall`.
    /// - Parameters:
    ///   - code: Lua source text (binary chunks are refused in a sandbox).
    ///   - chunkName: the chunk's name in messages: `"=name"` as is, `"@file"` as a file name.
    ///   - arguments: the chunk's `...`.
    /// - Returns: the chunk's results.
    /// - Throws: `RuntimeError.lua` (syntax or run-time error, "not enough memory"), `.budgetExhausted`,
    ///   `.conversion` (a result that cannot be copied into Swift).
    @discardableResult
    public func run(_ code: String, chunkName: String = "=(string)", arguments: [LuaValue] = []) throws(RuntimeError) -> [LuaValue] {
        let L = try currentThread()
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard lua_checkstack(L, 8) != 0 else { throw .lua(status: LUA_ERRMEM, message: "stack overflow") }
        var code = code
        let mode: String = options.sandboxed ? "t" : "bt"
        let st = code.withUTF8 { b in
            b.withMemoryRebound(to: CChar.self) { c in luaL_loadbufferx(L, c.baseAddress, c.count, chunkName, mode) }
        }
        if st != LUA_OK { throw .lua(status: st, message: LuaRuntime.popMessage(L)) }
        try pushArguments(L, arguments)
        return try execute(L, base: base, nargs: Int32(arguments.count))
    }

    /// Runs a Lua file (as `lua script.lua` would, without arguments) and returns what it returns.
    /// A sandbox refuses a file of bytecode.
    ///
    /// The corresponding Lua function is `luaL_loadfilex` (then `lua_pcall`).
    @discardableResult
    public func run(file path: String, arguments: [LuaValue] = []) throws(RuntimeError) -> [LuaValue] {
        let L = try currentThread()
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard lua_checkstack(L, 8) != 0 else { throw .lua(status: LUA_ERRMEM, message: "stack overflow") }
        let st = lth_loadfile(L, path, options.sandboxed ? "t" : "bt")
        if st != LUA_OK { throw .lua(status: st, message: LuaRuntime.popMessage(L)) }
        try pushArguments(L, arguments)
        return try execute(L, base: base, nargs: Int32(arguments.count))
    }

    /// Calls the global function `name` with `arguments` and returns its results.
    ///
    /// The corresponding Lua functions are `lua_getglobal` and `lua_pcall`.
    @discardableResult
    public func call(_ name: String, _ arguments: [LuaValue] = []) throws(RuntimeError) -> [LuaValue] {
        let L = try currentThread()
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard lua_checkstack(L, 8) != 0 else { throw .lua(status: LUA_ERRMEM, message: "stack overflow") }
        let gs = entered { clua_getglobal(L, name) }
        if gs != LUA_OK { throw classify(gs, LuaRuntime.popMessage(L)) }
        try pushArguments(L, arguments)
        return try execute(L, base: base, nargs: Int32(arguments.count))
    }

    /// Calls the global function `name` with `arguments` and returns its results.
    @discardableResult
    public func call(_ name: String, _ arguments: LuaValue...) throws(RuntimeError) -> [LuaValue] {
        try call(name, arguments)
    }

    /// Pushes `arguments` above the function that is on the top.
    private func pushArguments(_ L: LuaState, _ arguments: [LuaValue]) throws(RuntimeError) {
        if arguments.isEmpty { return }
        let st = pushValues(L, arguments)
        if st != LUA_OK { throw classify(st, LuaRuntime.popMessage(L)) }
    }

    /// Calls the function at `base + 1` with the `nargs` values above it, with the traceback handler and
    /// the budget; returns its results as Swift values. The caller restores the stack.
    func execute(_ L: LuaState, base: Int32, nargs: Int32) throws(RuntimeError) -> [LuaValue] {
        lua_pushcclosure(L, clua_msghandler, 0)
        clua_insert(L, base + 1)
        let rs = entered { clua_pcall(L, nargs, LUA_MULTRET, base + 1) }
        if rs != LUA_OK { throw classify(rs, LuaRuntime.popMessage(L)) }
        if let b = budget, b.pointee.exhausted != 0 {
            // the budget ran out and the script caught the error in a call the hook could not follow
            // (a C function's own pcall in a tail call): the entry still failed
            throw .budgetExhausted(message: b.pointee.exhausted == 2 ? "time budget exhausted" : "instruction budget exhausted")
        }
        clua_remove(L, base + 1)
        return try readValues(L, from: base + 1, to: lua_gettop(L))
    }

    /// The error of a failed entry: a spent budget, or Lua's status and message.
    func classify(_ status: Int32, _ message: String) -> RuntimeError {
        if let b = budget, b.pointee.exhausted != 0 { return .budgetExhausted(message: message) }
        if status == LUA_ERRMEM || message.contains("not enough memory"), let L = state {
            // Lua's emergency collections run no finalizers, so contexts whose handles became garbage
            // still hold their memory: a full collection (finalizers included) gives it back, and the
            // runtime can load and run again.
            _ = clua_gc(L, LUA_GCCOLLECT)
        }
        return .lua(status: status, message: message)
    }

    // MARK: - Reports

    /// Bytes Lua's heap takes from malloc now (its blocks with malloc's own headers: what the memory limit
    /// counts; `collectgarbage("count")` is Lua's count of the same blocks without them).
    public var luaHeapSize: Int { heap.size }

    /// The full report of the runtime: Lua's heap and every context.
    ///
    /// The corresponding talloc function is `talloc_report_full()` (on the runtime's root).
    public func reportFull(addresses: Bool = true) -> String { root.reportFull(addresses: addresses) }

    /// The report of the runtime's root: Lua's heap and the scripts' contexts, one level.
    ///
    /// The corresponding talloc function is `talloc_report()`.
    public func report(addresses: Bool = true) -> String { root.report(addresses: addresses) }

    /// Graphviz source of the runtime's tree (as Lua's `talloc.dot()`).
    public func dot() -> String { root.dot() }
}
