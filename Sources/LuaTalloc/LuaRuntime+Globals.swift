// luatalloc — the embeddable runtime: globals and Swift functions callable from Lua
// SPDX-License-Identifier: MIT

import CLua
import CLuaShims
import TallocCore

/// A Swift function registered with Lua, kept alive by its runtime (`functions`) until it closes; the
/// Lua closure holds it as a light userdata (upvalue LTH_UPV_EXTRA).
final class _FunctionBox {
    let name: String
    var body: ([LuaValue]) throws -> [LuaValue]
    weak var runtime: LuaRuntime?

    init(name: String, body: @escaping ([LuaValue]) throws -> [LuaValue], runtime: LuaRuntime) {
        self.name = name
        self.body = body
        self.runtime = runtime
    }
}

/// An error a Swift function registered with Lua may throw to choose the message Lua sees exactly
/// (any other error is shown with `String(describing:)`). Either way the host's caller gets the thrown
/// error back in `RuntimeError.hostError`.
public struct LuaError: Error, CustomStringConvertible {
    /// The message, after which Lua adds nothing but the caller's position.
    public var message: String
    /// An error whose message Lua sees as it is (as `luaL_error` with `"%s"`).
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

extension LuaRuntime {
    // MARK: - Globals

    /// The value of the global `name` (or of a field path from the globals, `"config.limits.depth"`;
    /// a missing part gives nil), copied into Swift.
    ///
    /// The corresponding Lua function is `lua_getglobal` (then `lua_getfield`; metamethods run, under
    /// the budget).
    public func global(_ name: String) throws(RuntimeError) -> LuaValue {
        let L = try currentThread()
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard lua_checkstack(L, 8) != 0 else { throw stackError() }
        var name = name
        let st = name.withUTF8 { p in
            p.withMemoryRebound(to: CChar.self) { c in entered { lth_getpath(L, c.baseAddress ?? LuaRuntime.emptyCString, c.count, 0) } }
        }
        if st != LUA_OK { throw failure(L, st) }
        return try readValues(L, from: lua_gettop(L), to: lua_gettop(L))[0]
    }

    /// The global `name` decoded as `T` (see `LuaValueDecoder`).
    public func global<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        try LuaValueDecoder().decode(type, from: global(name))
    }

    /// Sets the global `name` to a copy of `value` (`.nil` removes it). A context is passed as its
    /// handle (see `LuaValue.context` for lending), a function as itself.
    ///
    /// The corresponding Lua function is `lua_setglobal`.
    public func setGlobal(_ name: String, _ value: LuaValue) throws(RuntimeError) {
        let L = try currentThread()
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        let ps = pushValues(L, [value])
        if ps != LUA_OK { throw failure(L, ps) }
        let st = entered { clua_setglobal(L, name) }
        if st != LUA_OK { throw failure(L, st) }
    }

    /// Sets the global `name` to `value` encoded as a Lua value (see `LuaValueEncoder`).
    public func setGlobal<T: Encodable>(_ name: String, encoding value: T) throws {
        try setGlobal(name, LuaValueEncoder().encode(value))
    }

    // MARK: - Swift functions

    /// Makes `body` the global Lua function `name`.
    ///
    /// Lua's arguments arrive as Swift values; the returned values are Lua's results. An error thrown by
    /// `body` becomes a Lua error with the caller's position (`"chunk:3: message"`), which a script can
    /// catch with `pcall`; when nothing catches it, the host's call throws a `RuntimeError` whose
    /// `hostError` is the very error `body` threw. The C trampoline raises it after `body` has returned,
    /// so no Lua error ever unwinds a Swift frame. The closure is kept until the runtime closes (a
    /// `reset()` registers it again).
    ///
    /// Inside `body`, the runtime may be used again (`run`, `call`, globals): those calls run on the
    /// thread that called `body` and share the running entry's budget.
    ///
    /// The corresponding Lua functions are `lua_pushcclosure` and `lua_setglobal`.
    /// - Throws: `RuntimeError` if the module is not open yet, or on a memory error.
    public func register(_ name: String, _ body: @escaping ([LuaValue]) throws -> [LuaValue]) throws(RuntimeError) {
        // Registering a name again changes the body of its box (a script may still hold the function
        // under another name: it calls the new body), so that a pool that resets and prepares a runtime
        // again and again keeps one box per name.
        if let box = functions.first(where: { $0.name == name }) {
            let old = box.body
            box.body = body
            do { try bind(box) } catch {
                box.body = old
                throw error
            }
            retireAsync(name)
            return
        }
        let box = _FunctionBox(name: name, body: body, runtime: self)
        try bind(box)
        functions.append(box)
        retireAsync(name)
    }

    /// The async function registered as `name` is replaced: it is not bound again on reset, and stays
    /// alive while the current state may call it.
    func retireAsync(_ name: String) {
        if let i = asyncFunctions.firstIndex(where: { $0.name == name }) { retired.append(asyncFunctions.remove(at: i)) }
    }

    /// The same for a synchronous function replaced by an async one.
    func retireSync(_ name: String) {
        if let i = functions.firstIndex(where: { $0.name == name }) { retired.append(functions.remove(at: i)) }
    }

    /// Makes the function of `box` the global `box.name`.
    func bind(_ box: _FunctionBox) throws(RuntimeError) {
        let L = try currentThread()
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard lua_checkstack(L, 4) != 0, pushHostTable(L) else {
            throw RuntimeError(.closed, "the talloc module is not open (call openLibraries())")
        }
        let bs = lth_bind(L, -1, LuaRuntime.functionBody, Unmanaged.passUnretained(box).toOpaque())
        if bs != LUA_OK { throw failure(L, bs) }
        let st = entered { clua_setglobal(L, box.name) }
        if st != LUA_OK { throw failure(L, st) }
    }

    /// After a reset: the Swift functions and the sinks again.
    func rebind() throws(RuntimeError) {
        for box in functions { try bind(box) }
        for box in asyncFunctions { try bindAsync(box) }
        try reinstallSinks()
    }

    /// The body of every registered function (a bound function: the module's helpers work in it).
    static let functionBody: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let raw = lua_touserdata(L, lth_upvalue(LTH_UPV_EXTRA)) else { return out.error("talloc host: no function") }
        let box = Unmanaged<_FunctionBox>.fromOpaque(raw).takeUnretainedValue()
        guard let runtime = box.runtime, runtime.state != nil else { return out.error("the Lua runtime is closed") }
        return runtime.callFunction(box, L, out, f)
    }

    func callFunction(_ box: _FunctionBox, _ L: LuaState, _ out: Out, _ f: Frame) -> Int32 {
        let n = lua_gettop(L)
        var reader = _LuaReader(L, meta: ltc_upvalue(LTC_UPV_META), maxDepth: options.maxTableDepth, runtime: self)
        var args: [LuaValue] = []
        args.reserveCapacity(Int(n))
        if n > 0 {
            for i in 1...n {
                do { args.append(try reader.read(i)) } catch {
                    return out.argError(i, LuaRuntime.describe(error))
                }
            }
        }
        threads.append(L)
        let result = Result { try box.body(args) }
        threads.removeLast()
        switch result {
        case .failure(let error):
            let message = (error as? LuaError)?.message ?? String(describing: error)
            noteHostFailure(message, error)
            return raise(L, out, message)
        case .success(let values):
            let count = Int32(clamping: values.count)
            guard lua_checkstack(L, count + 8) != 0 else { return out.error("too many results") }
            let pins = LuaRuntime.pushField(L, lth_upvalue(LTH_UPV_HOST), LTH_HOST_PINS, LUA_TTABLE) ? lua_gettop(L) : 0
            let refs = LuaRuntime.pushField(L, lth_upvalue(LTH_UPV_HOST), LTH_HOST_REFS, LUA_TTABLE) ? lua_gettop(L) : 0
            var w = _LuaWriter(L, frame: f, pins: pins, contexts: contexts, root: root, runtime: self, refs: refs)
            for v in values { guard w.push(v) else { return out.rethrow() } }
            return count  // the trampoline returns the top 'count' values
        }
    }

    /// Asks the trampoline to raise "position: message" (any length: the message is a Lua string).
    private func raise(_ L: LuaState, _ out: Out, _ message: String) -> Int32 {
        var m = message
        return m.withUTF8 { out.error(L, bytes: UnsafeRawBufferPointer($0)) }
    }
}
