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
///     let check = try lua.function("greet")                      // a handle: look up once, call often
///     try check("again")
///
/// - Errors: a script that fails — a Lua error, "not enough memory" over the memory limit, a spent
///   budget — throws `RuntimeError`; the runtime stays usable. A Lua error never unwinds a Swift frame:
///   Swift calls only the Lua API functions that cannot raise, and every other call runs in C under
///   `lua_pcall` (DESIGN §4).
/// - Contexts: a context a script makes belongs to Lua (its garbage collector frees it when no Lua value
///   reaches it; closing the runtime frees everything left). A context the host passes in is *lent*:
///   see `LuaValue.context`, `withContexts(_:)` and docs/EMBEDDING.md for who frees what.
/// - Threads: a runtime, like talloc's trees and Lua's states, is used by one thread at a time, and is
///   not `Sendable`. It may be made on one thread or task and handed to another (`sending`: strict
///   concurrency then rejects any further use by the first), or lent from a `LuaRuntimePool`. Everything
///   that comes out of it (`LuaValue`s with contexts or functions, `LuaFunction`s, `TallocContext`s)
///   belongs to the same thread, and goes with it.
public final class LuaRuntime {
    /// The runtime's root context ("luatalloc runtime"); the memory limit is set on it.
    public let root: TallocContext
    /// The parent of the script's top-level contexts ("lua contexts"): what is under it is Lua's.
    public let contexts: TallocContext
    /// Lua's heap, as an external-size context ("lua heap").
    public let heap: TallocContext
    /// The Lua state (for the C API, `-` functions only). Valid until `close()` (a `reset()` makes a new one).
    public private(set) var state: LuaState?
    /// The options the runtime was made with.
    public let options: Options

    /// The registry reference of the host table (module, metatable, pins, bound helpers, message
    /// handler, held values); 0 before the module is open.
    var hostRef: Int32 = 0
    /// What the allocator works with: the heap context and the "memory ran out" flag.
    let heapState: UnsafeMutablePointer<lth_Heap>
    /// `closeForExit()` has begun.
    private var closingForExit = false
    /// The budget the count hook reads (nil: no budget, no hook).
    var budget: UnsafeMutablePointer<lth_Budget>?
    /// Entries from Swift into Lua that are running (the outermost arms the budget).
    var entryDepth = 0
    /// At the start of the outermost entry: the allocator's refusals, whether a collection was pending.
    var entryRefusals = 0
    var entryPending = false
    /// The errors Swift functions threw during the outermost entry, to give back to the host.
    var hostFailures: [_HostFailure] = []
    /// The threads that Swift functions called from Lua run on, innermost last: a host call made from
    /// inside one (a nested `run`) uses that thread, not the main one.
    var threads: [LuaState] = []
    /// The Swift functions registered with Lua; released when the runtime closes, bound again on reset.
    var functions: [_FunctionBox] = []
    var asyncFunctions: [_AsyncFunctionBox] = []
    /// Functions replaced under their name by one of the other kind: kept while the state lives (a
    /// script may hold them), never bound again.
    var retired: [AnyObject] = []
    /// A new generation at every close and reset: handles (LuaFunction) of an older one are stale.
    var generation = 0
    /// The host's sinks for `print` and warnings (docs: "Host hooks").
    var sinks = _Sinks()
    /// The async call being driven (callAsync), and the work an async function asked for.
    var asyncCalls: [_AsyncCall] = []

    /// Makes the state, the runtime's tree and (with `openLibrariesNow`) the libraries and the module.
    ///
    /// The corresponding Lua function is `luaL_newstate` (then `lua_setallocf`).
    /// - Throws: `RuntimeError` of kind `.memory`, or the error of opening the libraries.
    public init(options: Options = Options()) throws(RuntimeError) {
        do {
            // (never under the calling thread's null context: the runtime may go to another thread)
            root = try TallocContext.newDetached(name: "luatalloc runtime")
            contexts = try TallocContext.new(parent: root, name: "lua contexts")
            heap = try TallocContext.newExternal(parent: root, name: "lua heap")
        } catch {
            throw .outOfMemory
        }
        self.options = options
        heapState = UnsafeMutablePointer<lth_Heap>.allocate(capacity: 1)
        heapState.initialize(to: lth_Heap(collect: ltc_Collect(pending: 0, grace: 0, budgetArmed: nil), heap: heap.unsafePointer, debt: 0,
                                          refusals: 0, tracking: 0, allocated: 0, peak: 0, root: root.unsafePointer,
                                          peakTotal: 0, budget: nil))
        if let limit = options.memoryLimit {
            do { try root.setMemoryLimit(limit) } catch {
                try? root.free()
                heapState.deallocate()
                throw .outOfMemory
            }
        }
        do { try makeState() } catch {
            if state != nil { close() } else {
                try? root.free()
                heapState.deallocate()
            }
            throw error
        }
    }

    /// A new Lua state under the runtime's tree, with its budget, and its libraries when the options say so.
    private func makeState() throws(RuntimeError) {
        guard let L = luaL_newstate() else { throw .outOfMemory }
        // The state was made with the standard allocator (realloc/free) and its panic and warning
        // functions; from now on every allocation is charged to the heap context. Both allocators use
        // the C heap, so blocks made before the switch are freed correctly after it.
        // (malloc's headers of those first blocks are not known: Lua's own count, plus 16 bytes a block
        // for the few dozen blocks a new state has, is close)
        let initial = Int(clua_gc(L, LUA_GCCOUNT)) * 1024 + Int(clua_gc(L, LUA_GCCOUNTB))
        lth_clearbudget(L)  // no budget until one is installed: the extra space says so
        if !heap.unsafeAdjustExternalSize(by: initial) {
            // A bare state is charged whatever the limit (a limit too small for it fails at the next
            // allocation, with "not enough memory", as the standalone lua reports it).
            var charged = false
            if let limit = options.memoryLimit, (try? root.setMemoryLimit(0)) != nil {
                charged = heap.unsafeAdjustExternalSize(by: initial)
                try? root.setMemoryLimit(limit)
            }
            if !charged {
                lua_close(L)
                throw .outOfMemory
            }
        }
        lua_setallocf(L, LuaRuntime.allocator, heapState)
        state = L
        if options.instructionLimit != nil || options.timeLimit != nil {
            installBudget(L)
        }
        installWarningSink(L)
        if options.openLibrariesNow {
            try openLibraries()
        }
    }

    /// Opens the standard libraries the options ask for and the `talloc` module, in protected mode, then
    /// hardens the globals of a sandbox (when `openLibrariesNow` was false).
    ///
    /// The corresponding Lua functions are `luaL_requiref` with each `luaopen_*` (as `luaL_openlibs`).
    /// - Throws: the error of an opener (`.memory` when the memory limit is too small for them).
    public func openLibraries() throws(RuntimeError) {
        guard let L = state else { throw RuntimeError.closedRuntime }
        let st = openLibrariesStatus()
        if st != .ok { throw failure(L, st.rawValue) }
    }

    /// `openLibraries()` for hosts that report errors as the standalone `lua` does: returns the status and,
    /// on failure, leaves the error object on the top of `state`'s stack.
    public func openLibrariesStatus() -> LuaStatus {
        guard let L = state else { return .runtimeError }
        if !options.libraries.isEmpty {
            let st = lth_openlibs(L, options.libraries.rawValue)
            if st != LUA_OK { return LuaStatus(code: st) }
        }
        let st = LuaTallocModule.open(L, root: contexts, ownsRoot: false, setGlobal: options.tallocGlobal,
                                      account: heap, collect: &heapState.pointee.collect)
        if st != LUA_OK { return LuaStatus(code: st) }
        if options.libraries.contains(.base) || options.libraries.contains(.coroutine) {
            let cs = lth_collectingcatch(L, heapState)
            if cs != LUA_OK { clua_remove(L, -2); return LuaStatus(code: cs) }
        }
        lua_pushvalue(L, -1)
        var ref: Int32 = 0
        let hs = lth_hostinit(L, LuaRuntime.performBody, &ref)
        if hs != LUA_OK { clua_remove(L, -2); return LuaStatus(code: hs) }
        hostRef = ref
        if options.sandboxed {
            let ss = lth_sandbox(L)  // pops the module
            if ss != LUA_OK { return LuaStatus(code: ss) }
            // the standard functions whose single calls could outrun the budget charge it for their work
            let bs = lth_openbounded(L)
            if bs != LUA_OK { return LuaStatus(code: bs) }
        } else {
            clua_pop(L, 1)
        }
        return .ok
    }

    deinit { close() }

    /// Closes the state: every context the scripts made is freed (destructors run once more, refusals are
    /// overridden), then Lua's heap; the runtime's tree goes last. Lent contexts stay the host's, with
    /// whatever Lua made under them (their Lua destructors are dropped). Registered Swift functions are
    /// released, and every `LuaFunction` of the runtime becomes stale (calling it throws `.closed`).
    /// Calling it again does nothing, and so does calling it from a Swift function that Lua is running
    /// (the state is in use; close it after the call returns).
    ///
    /// The corresponding Lua function is `lua_close`.
    public func close() {
        guard closeState() else { return }
        release()
    }

    /// For `os.exit(status, true)` in a program about to exit (the luatalloc program's `os.exit`,
    /// `lth_setexit`): closes the state from inside the Lua call that runs it, as Lua's own os.exit does
    /// with `lua_close`, and releases the runtime's tree, so that nothing the runtime made outlives the
    /// state. The caller exits at once: no Swift frame below it resumes. The lent contexts a script moved
    /// into its tree go back to the host in the module's close.
    package func closeForExit() {
        // (once: a destructor running in that close may call os.exit(status, true) again, which then
        // only exits)
        guard let L = state, !closingForExit else { return }
        closingForExit = true
        generation += 1
        hostRef = 0
        lua_close(L)
        state = nil
        release()
    }

    /// What `close()` releases once the state is closed.
    private func release() {
        functions.removeAll()
        asyncFunctions.removeAll()
        retired.removeAll()
        sinks = _Sinks()
        if let budget {
            heapState.pointee.budget = nil
            heapState.pointee.collect.budgetArmed = nil
            budget.deallocate()
            self.budget = nil
        }
        try? root.free()
        heapState.deallocate()
    }

    /// lua_close, keeping the runtime's tree and the Swift functions. False when it cannot close now.
    private func closeState() -> Bool {
        guard let L = state, entryDepth == 0, threads.isEmpty, asyncCalls.isEmpty else { return false }
        // lent contexts a script moved into its own tree go back to the host before any finalizer frees
        // that tree (the module's close does it again, last)
        if hostRef > 0 {
            let base = lua_gettop(L)
            _ = perform(L, nargs: 0, nresults: 0) { L, out in
                let S = ModuleState.state(out)
                ModuleState.giveBackLent(S, TallocContext(unsafePointer: S.pointee.root))
                return 0
            }
            lua_settop(L, base)
        }
        generation += 1
        hostRef = 0
        lua_close(L)
        state = nil
        return true
    }

    /// Makes the runtime as new for the next script: a fresh Lua state with fresh globals and the same
    /// options (memory limit, libraries, budget, sandbox). The Swift functions registered with `register`
    /// and `registerAsync` and the print and warning sinks are installed again; everything the scripts
    /// made is gone (their contexts are freed, as by `close()`), lent contexts stay the host's, and every
    /// `LuaFunction` of the runtime becomes stale.
    ///
    /// It costs about what making a runtime costs (a new state and its libraries): see docs/EMBEDDING.md,
    /// "Reusing runtimes", for the numbers.
    /// - Throws: `.closed` when the runtime is closed or Lua is running (a Swift function called from Lua
    ///   cannot reset the runtime that runs it); the error of opening the libraries.
    public func reset() throws(RuntimeError) {
        guard state != nil else { throw RuntimeError.closedRuntime }
        guard closeState() else { throw RuntimeError(.closed, "the runtime cannot be reset while Lua is running") }
        retired.removeAll()  // no closure of the old state is left to call them
        // what the closed state left charged (its first blocks were counted without malloc's headers)
        _ = heap.unsafeAdjustExternalSize(by: -heap.size)
        heapState.pointee.debt = 0
        heapState.pointee.collect = ltc_Collect(pending: 0, grace: 0, budgetArmed: nil)
        try makeState()
        guard hostRef > 0 else { return }  // libraries not open yet: the host opens them and registers
        try rebind()
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
            hs.pointee.refusals += 1
            // Lua runs an emergency collection next (lmem.c's tryagain): one per refused allocation. A script
            // that keeps the heap at its limit makes one every few instructions (a full collection each);
            // past the first LTH_FREEEMERGENCIES of an entry (filling memory up to "not enough memory" meets
            // a few dozen) the budget pays for each, as for a collectgarbage()
            if let b = hs.pointee.budget, b.pointee.armed != 0 {
                b.pointee.emergencies += 1
                if b.pointee.emergencies > LTH_FREEEMERGENCIES { b.pointee.debt += Int64(heap.size >> 4) }
            }
            guard hs.pointee.collect.grace > 0, Int(hs.pointee.debt) + delta <= Int(LTH_GRACE) else { return nil }
            owed = delta
        }
        guard let p = Glibc.realloc(ptr, Int(nsize)) else {
            if delta > 0 && owed == 0 { _ = heap.unsafeAdjustExternalSize(by: -delta) }
            hs.pointee.collect.pending = 1
            hs.pointee.refusals += 1
            return nil
        }
        if owed > 0 { hs.pointee.debt += owed }
        if delta < 0 { release(hs, heap, -delta) }
        if hs.pointee.tracking != 0 { LuaRuntime.track(hs, heap, delta) }
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

    /// The message of the error object on the top (popped): for the few places that have no runtime error
    /// to make (the module failing to open in a bare state).
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

    /// "" (for an empty buffer's missing base address): a literal's bytes, NUL-terminated.
    static var emptyCString: UnsafePointer<CChar> {
        UnsafeRawPointer(("" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self)
    }

    /// The thread host calls run on: the one a Swift function called from Lua is running on, else the
    /// main thread.
    func currentThread() throws(RuntimeError) -> LuaState {
        if let L = threads.last { return L }
        guard let L = state else { throw RuntimeError.closedRuntime }
        return L
    }

    // MARK: - Running code

    /// Runs a chunk of Lua source and returns what it returns, as Swift values.
    ///
    /// Errors get a traceback (`RuntimeError.traceback`). The chunk's varargs are `arguments`.
    ///
    /// The corresponding Lua functions are `luaL_loadbufferx` and `lua_pcall`.
    /// - Parameters:
    ///   - code: Lua source text (binary chunks are refused in a sandbox).
    ///   - chunkName: the chunk's name in messages: `"=name"` as is, `"@file"` as a file name.
    ///   - arguments: the chunk's `...`.
    /// - Returns: the chunk's results.
    /// - Throws: `RuntimeError` (syntax or run-time error, the memory limit, a budget, a result that
    ///   cannot be copied into Swift).
    @discardableResult
    public func run(_ code: String, chunkName: String = "=(string)", arguments: [LuaValue] = []) throws(RuntimeError) -> [LuaValue] {
        let L = try currentThread()
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard lua_checkstack(L, Int32(clamping: arguments.count) + 8) != 0 else { throw stackError() }
        pushMessageHandler(L)
        var code = code
        let st = code.withUTF8 { b in
            b.withMemoryRebound(to: CChar.self) { c in
                luaL_loadbufferx(L, c.baseAddress, c.count, chunkName, options.sandboxed ? "t" : "bt")
            }
        }
        if st != LUA_OK { throw failure(L, st) }
        try pushArguments(L, arguments)
        let rs = entered { clua_pcall(L, Int32(arguments.count), LUA_MULTRET, base + 1) }
        return try results(L, rs, base: base)
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
        guard lua_checkstack(L, Int32(clamping: arguments.count) + 8) != 0 else { throw stackError() }
        pushMessageHandler(L)
        let st = lth_loadfile(L, path, options.sandboxed ? "t" : "bt")
        if st != LUA_OK { throw failure(L, st) }
        try pushArguments(L, arguments)
        let rs = entered { clua_pcall(L, Int32(arguments.count), LUA_MULTRET, base + 1) }
        return try results(L, rs, base: base)
    }

    /// Compiles a chunk of Lua source once, to run it many times: calling the function runs the chunk
    /// (its arguments are the chunk's `...`), without parsing it again.
    ///
    ///     let rule = try lua.load("local x = ... return x * 2", chunkName: "=rule")
    ///     for x in 1...1000 { try rule(.integer(x)) }
    ///
    /// The corresponding Lua function is `luaL_loadbufferx` (`load` in Lua).
    /// - Throws: `RuntimeError` of kind `.syntax` for a syntax error.
    public func load(_ code: String, chunkName: String = "=(load)") throws(RuntimeError) -> LuaFunction {
        var code = code
        return try code.withUTF8 { b in
            Result { () throws(RuntimeError) in
                try load(UnsafeRawBufferPointer(b), chunkName: chunkName, mode: options.sandboxed ? "t" : "bt")
            }
        }.get()
    }

    /// Loads a precompiled chunk (`LuaFunction.bytecode()`, `string.dump`, `luac` output) once, to run it
    /// many times. A sandbox refuses bytecode (crafted bytecode can crash the VM): only load bytecode you
    /// made yourself.
    ///
    /// The corresponding Lua function is `luaL_loadbufferx` with mode `"b"`.
    /// - Throws: `RuntimeError` of kind `.syntax` in a sandbox or for bytes that are not a chunk.
    public func load(bytecode: [UInt8], chunkName: String = "=(load)") throws(RuntimeError) -> LuaFunction {
        if options.sandboxed {
            throw RuntimeError(.syntax, "bytecode is not loaded in a sandbox", status: .syntaxError)
        }
        return try bytecode.withUnsafeBytes { b in
            Result { () throws(RuntimeError) in try load(b, chunkName: chunkName, mode: "b") }
        }.get()
    }

    private func load(_ bytes: UnsafeRawBufferPointer, chunkName: String, mode: String) throws(RuntimeError) -> LuaFunction {
        let L = try currentThread()
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard lua_checkstack(L, 8) != 0 else { throw stackError() }
        let p = bytes.baseAddress.map { $0.assumingMemoryBound(to: CChar.self) }
        let st = luaL_loadbufferx(L, p ?? LuaRuntime.emptyCString, bytes.count, chunkName, mode)
        if st != LUA_OK { throw failure(L, st) }
        return try makeFunction(L, -1)
    }

    /// Calls the function `name` — a global, or a field path from the globals (`"policy.check"`) — with
    /// one Lua argument per `LuaValue`, and returns its results.
    ///
    ///     try lua.call("area", 6, 7)                  // two arguments
    ///     try lua.call("sum", [1, 2, 3])              // ONE argument: the table {1, 2, 3}
    ///     try lua.call("sum", arguments: list)        // list[0], list[1], ...: an argument list from Swift
    ///
    /// For a function called often, `function(_:)` gives a handle that skips the lookup.
    ///
    /// The corresponding Lua functions are `lua_getglobal` (then `lua_getfield`) and `lua_pcall`.
    /// - Throws: `RuntimeError` naming the function when there is none at `name` (`function
    ///   'policy.check' not found ('policy' is nil)`), or what the function raised.
    @discardableResult
    public func call(_ name: String, _ arguments: LuaValue...) throws(RuntimeError) -> [LuaValue] {
        try call(name, arguments: arguments)
    }

    /// Calls the function `name` with an argument list built in Swift: `arguments[0]` is its first
    /// argument. (The variadic form passes each `LuaValue` as one argument, an array literal included.)
    @discardableResult
    public func call(_ name: String, arguments: [LuaValue]) throws(RuntimeError) -> [LuaValue] {
        let L = try currentThread()
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard lua_checkstack(L, Int32(clamping: arguments.count) + 8) != 0 else { throw stackError() }
        pushMessageHandler(L)
        try pushArguments(L, arguments)
        var name = name
        let st = name.withUTF8 { b in
            b.withMemoryRebound(to: CChar.self) { c in
                entered { lth_callpath(L, c.baseAddress ?? LuaRuntime.emptyCString, c.count, Int32(arguments.count), base + 1) }
            }
        }
        return try results(L, st, base: base)
    }

    /// The array form of old, which passed the array's elements as the arguments: the same expression
    /// with an array literal (`call("sum", [1, 2, 3])`) now passes one table. Say which you mean.
    @available(*, unavailable, message: "use call(_:arguments:) to pass the array's elements as the arguments, or call(_:_:) with .array(...) to pass one table")
    public func call(_ name: String, _ arguments: [LuaValue]) throws(RuntimeError) -> [LuaValue] {
        try call(name, arguments: arguments)
    }

    /// Calls the function `name` and decodes its first result as `T` (see `LuaValueDecoder`).
    public func call<T: Decodable>(_ name: String, _ arguments: LuaValue..., returning type: T.Type) throws -> T {
        let results = try call(name, arguments: arguments)
        return try LuaValueDecoder().decode(type, from: results.first ?? .nil)
    }

    /// Pushes the message handler of host calls (it keeps the error object, and stores the message and the
    /// traceback apart).
    func pushMessageHandler(_ L: LuaState) {
        if hostRef > 0, pushHostTable(L) {
            if LuaRuntime.pushField(L, -1, LTH_HOST_MSGH, LUA_TFUNCTION) {
                clua_remove(L, -2)
                return
            }
            clua_pop(L, 1)
        }
        lua_pushcclosure(L, clua_msghandler, 0)
    }

    /// Pushes `arguments` above the function that is on the top.
    func pushArguments(_ L: LuaState, _ arguments: [LuaValue]) throws(RuntimeError) {
        if arguments.isEmpty { return }
        // numbers, booleans and nil push without allocating: no protected call needed
        if arguments.allSatisfy(\.pushesWithoutAllocating), lua_checkstack(L, Int32(clamping: arguments.count) + 2) != 0 {
            for a in arguments { _LuaWriter.pushScalar(L, a) }
            return
        }
        let st = pushValues(L, arguments)
        if st != LUA_OK { throw failure(L, st) }
    }

    /// The results of an entry that returned `status`: the values above the message handler at
    /// `base + 1`, or the error.
    func results(_ L: LuaState, _ status: Int32, base: Int32) throws(RuntimeError) -> [LuaValue] {
        if status != LUA_OK { throw failure(L, status) }
        if let b = budget, b.pointee.exhausted != 0 {
            // the budget ran out and the script caught the error in a call the hook could not follow
            // (a C function's own pcall in a tail call): the entry still failed
            throw RuntimeError(.budget(b.pointee.exhausted == 2 ? .time : .instructions),
                               b.pointee.exhausted == 2 ? "time budget exhausted" : "instruction budget exhausted",
                               status: .runtimeError)
        }
        return try readValues(L, from: base + 2, to: lua_gettop(L))
    }

    // MARK: - Reports

    /// Bytes Lua's heap takes from malloc now (its blocks with malloc's own headers: what the memory limit
    /// counts; `collectgarbage("count")` is Lua's count of the same blocks without them).
    public var luaHeapSize: Int { heap.size }

    /// The most text `report`, `reportFull` and `dot` return when not told otherwise: the memory limit
    /// (at least 1 MiB), or 256 MiB for a runtime without one. The text of a tree is not bounded by the
    /// tree's size — a full report grows with the square of its depth (a 20,000-deep chain a script
    /// builds in 2 MB is 800 MB of report) — so a report of what a script made is always bounded.
    public var reportByteLimit: Int {
        options.memoryLimit.map { Swift.max($0, 1 << 20) } ?? (256 << 20)
    }

    /// The full report of the runtime: Lua's heap and every context.
    ///
    /// The corresponding talloc function is `talloc_report_full()` (on the runtime's root).
    /// - Parameters:
    ///   - addresses: false drops the `%p` column, for deterministic output.
    ///   - maxBytes: the most text to build (default `reportByteLimit`).
    /// - Throws: `RuntimeError` of kind `.memory` when the text would be longer (nothing past `maxBytes`
    ///   is built). To have any length, stream it: `root.writeReport(depth:maxDepth:addresses:to:)`.
    public func reportFull(addresses: Bool = true, maxBytes: Int? = nil) throws(RuntimeError) -> String {
        try report(of: root, full: true, addresses: addresses, maxBytes: maxBytes)
    }

    /// The report of the runtime's root: Lua's heap and the scripts' contexts, one level.
    ///
    /// The corresponding talloc function is `talloc_report()`.
    /// - Throws: as `reportFull`.
    public func report(addresses: Bool = true, maxBytes: Int? = nil) throws(RuntimeError) -> String {
        try report(of: root, full: false, addresses: addresses, maxBytes: maxBytes)
    }

    /// Graphviz source of the runtime's tree (as Lua's `talloc.dot()`).
    /// - Throws: as `reportFull` (stream it with `root.writeDot(to:)`).
    public func dot(maxBytes: Int? = nil) throws(RuntimeError) -> String {
        try dot(of: root, maxBytes: maxBytes)
    }

    /// The report of a context (a script's, or one you lent), bounded: what a host should use for a tree
    /// a script built, instead of the context's unbounded `reportFull()`.
    ///
    ///     let tree = try lua.call("build")[0]
    ///     print(try lua.report(of: tree.contextValue!, addresses: false))
    ///
    /// The corresponding talloc functions are `talloc_report_full()` (`full`) and `talloc_report()`.
    /// - Parameters:
    ///   - context: the context whose tree is reported (a `.context` value read from Lua, or a lent one).
    ///   - full: the whole tree (true) or one level.
    ///   - addresses: false drops the `%p` column, for deterministic output.
    ///   - maxBytes: the most text to build (default `reportByteLimit`).
    /// - Throws: `RuntimeError` of kind `.memory` when the text would be longer; `.runtime` for a freed
    ///   context.
    public func report(of context: TallocContext, full: Bool = true, addresses: Bool = true,
                       maxBytes: Int? = nil) throws(RuntimeError) -> String {
        guard context.isValid else { throw RuntimeError(.runtime, "report: the context was freed") }
        let limit = maxBytes ?? reportByteLimit
        guard let text = context.report(depth: 0, maxDepth: full ? -1 : 1, addresses: addresses, maxBytes: limit) else {
            throw RuntimeError(.memory, "report: the text is longer than \(limit) bytes")
        }
        return text
    }

    /// Graphviz source of a context's tree, bounded as `report(of:)`.
    /// - Throws: as `report(of:)`.
    public func dot(of context: TallocContext, maxBytes: Int? = nil) throws(RuntimeError) -> String {
        guard context.isValid else { throw RuntimeError(.runtime, "dot: the context was freed") }
        let limit = maxBytes ?? reportByteLimit
        guard let text = context.dot(maxBytes: limit) else {
            throw RuntimeError(.memory, "dot: the text is longer than \(limit) bytes")
        }
        return text
    }
}

/// A runtime is used by one thread at a time: it is handed over (`sending`), never shared.
@available(*, unavailable, message: "a LuaRuntime is used by one thread at a time: hand it over with 'sending' or lend it from a LuaRuntimePool")
extension LuaRuntime: Sendable {}
