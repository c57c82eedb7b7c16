// luatalloc — the embeddable runtime: handles on Lua functions
// SPDX-License-Identifier: MIT

import CLua
import CLuaShims

/// A Lua function held by the host: get it once, call it many times, pass it back to Lua, keep it.
///
///     let check = try lua.function("policy.check")       // looked up once
///     for request in requests { try check(request.path, request.size) }
///     try lua.setGlobal("handler", .function(check))      // back to Lua, the same function
///
/// A function read out of Lua (a result, an argument of a Swift function, a table field) arrives as
/// `LuaValue.function`; `LuaRuntime.load(_:)` compiles a chunk into one (load once, run many).
///
/// The handle keeps the function alive (a reference in the runtime's registry) until the handle goes;
/// it belongs to its runtime and keeps it alive too. Closing or resetting the runtime releases every
/// function: calling a handle afterwards throws `RuntimeError` of kind `.closed`, never crashes. Like its
/// runtime, a handle is used by one thread at a time (it is not `Sendable`).
///
/// The corresponding Lua C API is `luaL_ref`/`luaL_unref` and `lua_pcall` (mlua's `Function`, lupa's
/// `_LuaFunction`).
public final class LuaFunction: Hashable, CustomStringConvertible {
    /// The runtime the function belongs to.
    public let runtime: LuaRuntime
    /// The key of the function in the runtime's table of held values.
    let ref: Int32
    /// The runtime's generation when the handle was made (a reset or close makes a new one).
    let generation: Int
    /// The function's address in Lua (`lua_topointer`): two handles on the same function have the same.
    public let address: UInt

    init(runtime: LuaRuntime, ref: Int32, address: UInt) {
        self.runtime = runtime
        self.ref = ref
        self.generation = runtime.generation
        self.address = address
    }

    deinit { runtime.releaseReference(ref, generation: generation) }

    /// Whether the handle can still be called (its runtime is open and was not reset since).
    public var isValid: Bool { runtime.state != nil && runtime.generation == generation }

    /// Calls the function; each argument is one Lua argument. Returns its results.
    ///
    /// The corresponding Lua function is `lua_pcall` (with a message handler that keeps the traceback).
    /// - Throws: `RuntimeError` (the function raised, a budget or the memory limit ran out, the runtime
    ///   is closed).
    @discardableResult
    public func call(_ arguments: LuaValue...) throws(LuaRuntime.RuntimeError) -> [LuaValue] {
        try runtime.call(self, arguments: arguments)
    }

    /// Calls the function with an argument list built in Swift: `arguments[0]` is its first argument.
    @discardableResult
    public func call(arguments: [LuaValue]) throws(LuaRuntime.RuntimeError) -> [LuaValue] {
        try runtime.call(self, arguments: arguments)
    }

    /// `f(1, "two")` is `f.call(1, "two")`.
    @discardableResult
    public func callAsFunction(_ arguments: LuaValue...) throws(LuaRuntime.RuntimeError) -> [LuaValue] {
        try runtime.call(self, arguments: arguments)
    }

    /// Calls the function, decoding its first result as `T` (see `LuaValueDecoder`).
    public func call<T: Decodable>(_ arguments: LuaValue..., returning type: T.Type) throws -> T {
        let results = try runtime.call(self, arguments: arguments)
        return try LuaValueDecoder().decode(type, from: results.first ?? .nil)
    }

    /// The function's bytecode (`string.dump`), to load elsewhere with `LuaRuntime.load(bytecode:)`
    /// outside a sandbox. `strip` leaves out debug information (line numbers, local names).
    ///
    /// The corresponding Lua function is `lua_dump`.
    /// - Throws: `RuntimeError` of kind `.conversion` for a C function (it has no bytecode), `.closed`.
    public func bytecode(strip: Bool = false) throws(LuaRuntime.RuntimeError) -> [UInt8] {
        try runtime.dump(self, strip: strip)
    }

    public static func == (a: LuaFunction, b: LuaFunction) -> Bool {
        a.runtime === b.runtime && a.address == b.address
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(runtime))
        hasher.combine(address)
    }

    public var description: String { "function: 0x\(String(address, radix: 16))" }
}

@available(*, unavailable, message: "a LuaFunction belongs to its runtime's thread")
extension LuaFunction: Sendable {}

extension LuaRuntime {
    /// The function at `path` (a global name, or fields from the globals: `"policy.check"`), as a handle
    /// to call many times.
    ///
    /// The corresponding Lua function is `lua_getglobal` (then `lua_getfield`, metamethods included).
    /// - Throws: `RuntimeError` naming the function when there is none there (`function 'policy.check'
    ///   not found ('policy' is nil)`) or it is not callable.
    public func function(_ path: String) throws(RuntimeError) -> LuaFunction {
        let L = try currentThread()
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard lua_checkstack(L, 8) != 0 else { throw stackError() }
        var path = path
        let st = path.withUTF8 { p in
            p.withMemoryRebound(to: CChar.self) { c in entered { lth_getpath(L, c.baseAddress!, c.count, 1) } }
        }
        if st != LUA_OK { throw failure(L, st) }
        return try makeFunction(L, lua_gettop(L))
    }

    /// A handle on the function (or callable value) at `idx`.
    func makeFunction(_ L: LuaState, _ idx: Int32) throws(RuntimeError) -> LuaFunction {
        let idx = lua_absindex(L, idx)
        guard lua_checkstack(L, 4) != 0, pushHostTable(L) else {
            throw RuntimeError(.closed, "the talloc module is not open (call openLibraries())")
        }
        guard LuaRuntime.pushField(L, -1, LTH_HOST_REFS, LUA_TTABLE) else {
            clua_pop(L, 1)
            throw RuntimeError(.closed, "the runtime's table of held functions is gone (replaced by a script)")
        }
        lua_pushvalue(L, idx)
        var ref: Int32 = 0
        let st = lth_ref(L, -2, &ref)
        if st != LUA_OK {
            let e = failure(L, st)
            clua_pop(L, 2)
            throw e
        }
        clua_pop(L, 2)
        return LuaFunction(runtime: self, ref: ref, address: UInt(bitPattern: lua_topointer(L, idx)))
    }

    /// Pushes the function of `f` (from the table of held values). False, nothing pushed, when the handle
    /// is not this runtime's or is stale.
    func pushFunction(_ L: LuaState, _ f: LuaFunction) -> Bool {
        guard f.runtime === self, f.generation == generation, lua_checkstack(L, 4) != 0, pushHostTable(L) else { return false }
        guard LuaRuntime.pushField(L, -1, LTH_HOST_REFS, LUA_TTABLE) else {
            clua_pop(L, 1)
            return false
        }
        lua_rawgeti(L, -1, lua_Integer(f.ref))
        clua_replace(L, -3)
        clua_pop(L, 1)
        return true
    }

    /// Lets go of a held value (a LuaFunction's deinit). Nothing when the runtime was closed or reset since
    /// (its references went with the state).
    func releaseReference(_ ref: Int32, generation: Int) {
        guard generation == self.generation, let L = threads.last ?? state, lua_checkstack(L, 4) != 0, pushHostTable(L) else {
            return
        }
        if LuaRuntime.pushField(L, -1, LTH_HOST_REFS, LUA_TTABLE) {
            luaL_unref(L, -1, ref)  // '-': it writes keys that exist (the slot and the free list)
            clua_pop(L, 1)
        }
        clua_pop(L, 1)
    }

    /// Calls the function of `f` with `arguments`.
    func call(_ f: LuaFunction, arguments: [LuaValue]) throws(RuntimeError) -> [LuaValue] {
        guard f.runtime === self else { throw RuntimeError(.conversion, "the function belongs to another runtime") }
        guard f.generation == generation, state != nil else {
            throw RuntimeError(.closed, "the function's runtime was closed or reset")
        }
        let L = try currentThread()
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard lua_checkstack(L, Int32(clamping: arguments.count) + 8) != 0 else { throw stackError() }
        pushMessageHandler(L)
        guard pushFunction(L, f) else { throw RuntimeError.closedRuntime }
        try pushArguments(L, arguments)
        let st = entered { clua_pcall(L, Int32(arguments.count), LUA_MULTRET, base + 1) }
        return try results(L, st, base: base)
    }

    /// `lua_dump` of the function of `f`.
    func dump(_ f: LuaFunction, strip: Bool) throws(RuntimeError) -> [UInt8] {
        guard f.generation == generation, state != nil else { throw RuntimeError(.closed, "the function's runtime was closed or reset") }
        let L = try currentThread()
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard pushFunction(L, f) else { throw RuntimeError.closedRuntime }
        guard lua_type(L, -1) == LUA_TFUNCTION, lua_iscfunction(L, -1) == 0 else {
            throw RuntimeError(.conversion, "a C function has no bytecode")
        }
        let sink = _DumpSink()
        let st = withExtendedLifetime(sink) {
            lua_dump(L, { _, p, size, ud in
                let sink = Unmanaged<_DumpSink>.fromOpaque(ud!).takeUnretainedValue()
                if let p, size > 0 { sink.bytes.append(contentsOf: UnsafeRawBufferPointer(start: p, count: size)) }
                return 0
            }, Unmanaged.passUnretained(sink).toOpaque(), strip ? 1 : 0)
        }
        if st != 0 { throw RuntimeError(.conversion, "the function could not be dumped") }
        return sink.bytes
    }
}

/// Where `lua_dump` writes.
final class _DumpSink {
    var bytes: [UInt8] = []
}
