// luatalloc — the embeddable runtime: async Swift functions callable from Lua
// SPDX-License-Identifier: MIT
//
// An async call (`callAsync`, `runAsync`, `LuaFunction.callAsync`) runs its Lua function in a coroutine
// the runtime drives. When the script calls an async Swift function, a C function (lth_asyncfn) asks Swift
// to note the work (arguments copied into Swift), then yields the coroutine — from C, so no Swift frame is
// unwound. The driver, back in Swift with Lua idle, awaits the work, then resumes the coroutine with the
// results (or the error, which the C continuation raises at the script's position). The budget covers the
// whole call (instructions across every resume; the time spent awaiting is not Lua's), the memory limit
// applies as always.

import CLua
import CLuaShims
import TallocCore

/// An async Swift function registered with Lua, kept by its runtime until it closes.
final class _AsyncFunctionBox {
    let name: String
    var body: nonisolated(nonsending) ([LuaValue]) async throws -> [LuaValue]
    weak var runtime: LuaRuntime?

    init(name: String, body: nonisolated(nonsending) @escaping ([LuaValue]) async throws -> [LuaValue], runtime: LuaRuntime) {
        self.name = name
        self.body = body
        self.runtime = runtime
    }
}

/// One async call being driven: its coroutine, and the work an async function asked for.
final class _AsyncCall {
    let thread: LuaState
    var pending: (box: _AsyncFunctionBox, arguments: [LuaValue])?
    init(thread: LuaState) { self.thread = thread }
}

extension LuaRuntime {
    /// Makes the async `body` the global Lua function `name`: a script calls it like any function, and
    /// its coroutine is suspended while `body` awaits, then resumed with `body`'s results.
    ///
    ///     try lua.registerAsync("fetch") { args in [.string(try await http.get(args[0].stringValue!))] }
    ///     let r = try await lua.callAsync("handle", "/index")   // handle() calls fetch() inside
    ///
    /// Only an async call from the host (`callAsync`, `runAsync`, `LuaFunction.callAsync`) can run it, and
    /// only from the coroutine that call drives (in `pcall` too, not in a coroutine the script made, nor
    /// inside a C function that cannot yield: a metamethod, `table.sort`'s comparator); elsewhere the
    /// script gets an error naming the function. An error `body` throws is raised in the script at the
    /// caller's position, and reaches the host's call as `RuntimeError.hostError` when nothing catches it.
    ///
    /// While `body` awaits, Lua is idle: `body` may use the runtime (it runs on the caller's executor).
    /// - Throws: `RuntimeError` if the module is not open yet, or on a memory error.
    public func registerAsync(_ name: String,
                              _ body: nonisolated(nonsending) @escaping ([LuaValue]) async throws -> [LuaValue]) throws(RuntimeError) {
        if let box = asyncFunctions.first(where: { $0.name == name }) {  // as register: one box per name
            let old = box.body
            box.body = body
            do { try bindAsync(box) } catch {
                box.body = old
                throw error
            }
            retireSync(name)
            return
        }
        let box = _AsyncFunctionBox(name: name, body: body, runtime: self)
        try bindAsync(box)
        asyncFunctions.append(box)
        retireSync(name)
    }

    /// Makes the function of `box` the global `box.name`.
    func bindAsync(_ box: _AsyncFunctionBox) throws(RuntimeError) {
        let L = try currentThread()
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard lua_checkstack(L, 6) != 0 else { throw stackError() }
        let ps = lth_pushasync(L, LuaRuntime.asyncStart, Unmanaged.passUnretained(box).toOpaque())
        if ps != LUA_OK { throw failure(L, ps) }
        let st = entered { clua_setglobal(L, box.name) }
        if st != LUA_OK { throw failure(L, st) }
    }

    /// The start of every async function (lth_asyncfn): 0 to yield, 1 to raise the message pushed, 2 to
    /// raise the object pushed.
    static let asyncStart: lth_AsyncStart = { L, ud in
        let box = Unmanaged<_AsyncFunctionBox>.fromOpaque(ud).takeUnretainedValue()
        guard let runtime = box.runtime, runtime.state != nil else {
            return Lua.push(L, "the Lua runtime is closed") ? 1 : 2
        }
        return runtime.startAsync(box, L)
    }

    func startAsync(_ box: _AsyncFunctionBox, _ L: LuaState) -> Int32 {
        func refuse(_ message: String) -> Int32 { Lua.push(L, message) ? 1 : 2 }
        guard let call = asyncCalls.last else {
            return refuse("async function '\(box.name)' needs an async call from the host (callAsync, runAsync)")
        }
        guard call.thread == L, threads.isEmpty, call.pending == nil else {
            return refuse("async function '\(box.name)' can only suspend the coroutine the host's async call runs (not a coroutine the script made, nor a synchronous call)")
        }
        guard lua_isyieldable(L) != 0 else {
            return refuse("async function '\(box.name)' cannot suspend here (attempt to yield across a C-call boundary)")
        }
        let n = lua_gettop(L)
        guard lua_checkstack(L, 8) != 0 else { return refuse("stack overflow") }
        var meta: Int32 = 0
        if pushHostTable(L) {
            lua_rawgeti(L, -1, lua_Integer(LTH_HOST_META))
            meta = lua_gettop(L)
        }
        var reader = _LuaReader(L, meta: meta, maxDepth: options.maxTableDepth, runtime: self)
        var args: [LuaValue] = []
        if n > 0 {
            for i in 1...n {
                do { args.append(try reader.read(i)) } catch {
                    lua_settop(L, n)
                    return refuse("bad argument #\(i) to '\(box.name)' (\(LuaRuntime.describe(error)))")
                }
            }
        }
        lua_settop(L, n)
        call.pending = (box, args)
        return 0
    }

    // MARK: - Async calls

    /// Calls the function `name` (a global or a field path, as `call`) in a coroutine the runtime drives,
    /// so that async Swift functions (`registerAsync`) it calls can suspend it; returns its results.
    ///
    /// Runs on the caller's executor (it is `nonisolated(nonsending)`): a runtime owned by an actor or by
    /// the main actor stays there.
    /// - Throws: `RuntimeError` as `call` does.
    @discardableResult
    nonisolated(nonsending)
    public func callAsync(_ name: String, _ arguments: LuaValue...) async throws(RuntimeError) -> [LuaValue] {
        try await callAsync(name, arguments: arguments)
    }

    /// `callAsync` with an argument list built in Swift.
    @discardableResult
    nonisolated(nonsending)
    public func callAsync(_ name: String, arguments: [LuaValue]) async throws(RuntimeError) -> [LuaValue] {
        try await drive(arguments) { L throws(RuntimeError) in
            var name = name
            let st = name.withUTF8 { p in
                p.withMemoryRebound(to: CChar.self) { c in lth_getpath(L, c.baseAddress ?? LuaRuntime.emptyCString, c.count, 1) }
            }
            if st != LUA_OK { throw failure(L, st) }
        }
    }

    /// Runs a chunk of Lua source in a coroutine the runtime drives (see `callAsync`).
    @discardableResult
    nonisolated(nonsending)
    public func runAsync(_ code: String, chunkName: String = "=(string)", arguments: [LuaValue] = []) async throws(RuntimeError) -> [LuaValue] {
        try await drive(arguments) { L throws(RuntimeError) in
            var code = code
            let st = code.withUTF8 { b in
                b.withMemoryRebound(to: CChar.self) { c in
                    luaL_loadbufferx(L, c.baseAddress, c.count, chunkName, options.sandboxed ? "t" : "bt")
                }
            }
            if st != LUA_OK { throw failure(L, st) }
        }
    }

    /// Calls the function of `f` in a driven coroutine.
    nonisolated(nonsending)
    func callAsync(_ f: LuaFunction, arguments: [LuaValue]) async throws(RuntimeError) -> [LuaValue] {
        guard f.runtime === self else { throw RuntimeError(.conversion, "the function belongs to another runtime") }
        return try await drive(arguments) { L throws(RuntimeError) in
            guard pushFunction(L, f) else { throw RuntimeError(.closed, "the function's runtime was closed or reset") }
        }
    }

    /// Drives one async call: `pushFunction` pushes the function on the main thread; the coroutine runs it
    /// with `arguments`, awaiting the async functions it calls.
    nonisolated(nonsending)
    private func drive(_ arguments: [LuaValue], _ pushFunction: (LuaState) throws(RuntimeError) -> Void) async throws(RuntimeError) -> [LuaValue] {
        guard let L = state else { throw RuntimeError.closedRuntime }
        guard threads.isEmpty else {
            throw RuntimeError(.closed, "an async call cannot start inside a synchronous Swift function called from Lua")
        }
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard lua_checkstack(L, Int32(clamping: arguments.count) + 8) != 0 else { throw stackError() }
        let ts = lth_newthread(L)  // base + 1: the coroutine, anchored here for the whole call
        if ts != LUA_OK { throw failure(L, ts) }
        guard let co = lua_tothread(L, base + 1) else { throw RuntimeError(.runtime, "no coroutine") }
        try pushFunction(L)
        try pushArguments(L, arguments)
        guard lua_checkstack(co, Int32(clamping: arguments.count) + 8) != 0 else { throw stackError() }
        lua_xmove(L, co, Int32(arguments.count) + 1)
        let call = _AsyncCall(thread: co)
        asyncCalls.append(call)
        beginEntry()
        defer {
            endEntry()
            asyncCalls.removeLast()
        }
        var nargs = Int32(arguments.count)
        while true {
            var nres: Int32 = 0
            let st = lua_resume(co, L, nargs, &nres)
            if st == LUA_OK {
                guard lua_checkstack(L, nres + 8) != 0 else { throw stackError() }
                let top = lua_gettop(L)
                lua_xmove(co, L, nres)
                if let b = budget, b.pointee.exhausted != 0 {
                    throw RuntimeError(.budget(b.pointee.exhausted == 2 ? .time : .instructions),
                                       b.pointee.exhausted == 2 ? "time budget exhausted" : "instruction budget exhausted",
                                       status: .runtimeError)
                }
                return try readValues(L, from: top + 1, to: lua_gettop(L))
            }
            guard st == LUA_YIELD else { throw failure(L, st, thread: co) }
            clua_pop(co, nres)
            guard let (box, args) = call.pending else {
                throw RuntimeError(.runtime, "attempt to yield from the coroutine of an async call (only async functions suspend it)",
                                   status: .runtimeError)
            }
            call.pending = nil
            // Lua is idle: await the Swift work (the time budget stops while it runs)
            let started = lth_now()
            let outcome: Result<[LuaValue], any Error>
            do { outcome = .success(try await box.body(args)) } catch { outcome = .failure(error) }
            extendDeadline(by: lth_now() - started)
            guard state != nil else { throw RuntimeError.closedRuntime }
            let top = lua_gettop(L)
            switch outcome {
            case .success(let values):
                lua_pushboolean(L, 1)
                let ps = pushValues(L, values)
                guard ps == LUA_OK, lua_checkstack(co, Int32(clamping: values.count) + 8) != 0 else {
                    // the results could not be made (memory): resume with the error instead
                    let message = ps == LUA_OK ? "too many results" : LuaRuntime.popMessage(L)
                    lua_settop(L, top)
                    lua_pushboolean(L, 0)
                    if !Lua.push(L, message) { lua_pushnil(L) }
                    lua_xmove(L, co, 2)
                    nargs = 2
                    continue
                }
                nargs = lua_gettop(L) - top
            case .failure(let error):
                let message = (error as? LuaError)?.message ?? String(describing: error)
                noteHostFailure(message, error)
                lua_pushboolean(L, 0)
                _ = Lua.push(L, message)  // or the memory error, raised as it is
                nargs = 2
            }
            lua_xmove(L, co, nargs)
        }
    }
}

extension LuaFunction {
    /// Calls the function in a coroutine the runtime drives, so that async Swift functions it calls can
    /// suspend it (see `LuaRuntime.callAsync`).
    @discardableResult
    nonisolated(nonsending)
    public func callAsync(_ arguments: LuaValue...) async throws(LuaRuntime.RuntimeError) -> [LuaValue] {
        try await runtime.callAsync(self, arguments: arguments)
    }

    /// `callAsync` with an argument list built in Swift.
    @discardableResult
    nonisolated(nonsending)
    public func callAsync(arguments: [LuaValue]) async throws(LuaRuntime.RuntimeError) -> [LuaValue] {
        try await runtime.callAsync(self, arguments: arguments)
    }
}
