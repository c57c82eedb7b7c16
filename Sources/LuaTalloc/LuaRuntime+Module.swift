// luatalloc — the embeddable runtime: Swift work that runs inside the `talloc` module
// SPDX-License-Identifier: MIT
//
// The module's Swift helpers (Handles.push, the observer that empties a handle when its context is
// freed, Lua destructors) find the module's tables through the *upvalues of the running C function*.
// So host work that touches handles runs inside a **bound** function: a C closure with the module's
// upvalues (plus the host table), made by `lth_bind`/`lth_hostinit`, called with lua_pcall. Its Swift
// body reports failure through the outcome, as every module body does: nothing raises into Swift.

import CLua
import CLuaShims
import TallocCore

/// Swift work run by the bound `perform` function; passed to it as a light userdata.
final class _Work {
    let body: (LuaState, Out) -> Int32
    init(_ body: @escaping (LuaState, Out) -> Int32) { self.body = body }
}

extension LuaRuntime {
    /// The body of the bound `perform` function: argument 1 is the `_Work`, the rest its arguments.
    static let performBody: clua_Body = { L, out in
        guard let p = lua_touserdata(L, 1) else { return out.error("talloc host: no work") }
        let work = Unmanaged<_Work>.fromOpaque(p).takeUnretainedValue()
        clua_remove(L, 1)
        return work.body(L, out)
    }

    /// Pushes the host table; false (nothing pushed) before the module is open.
    func pushHostTable(_ L: LuaState) -> Bool {
        guard hostRef > 0 else { return false }
        lua_rawgeti(L, CLUA_REGISTRYINDEX, lua_Integer(hostRef))
        if lua_type(L, -1) != LUA_TTABLE { clua_pop(L, 1); return false }
        return true
    }

    /// Pushes `t[key]` of the table at `t` when it is of Lua type `type` (true); else pushes nothing (false).
    /// The host table is reachable with the debug library (debug.getregistry): a script may have put
    /// anything in it, and the raw API on a value that is not a table would read garbage.
    static func pushField(_ L: LuaState, _ t: Int32, _ key: Int32, _ type: Int32) -> Bool {
        if lua_rawgeti(L, t, lua_Integer(key)) == type { return true }
        clua_pop(L, 1)
        return false
    }

    /// Runs `body` inside the module with the `nargs` values on the top as its arguments (at 1...nargs
    /// in its frame); it leaves `nresults` results (LUA_MULTRET: all it returns) in their place.
    /// Returns the Lua status (error object on the top on failure).
    func perform(_ L: LuaState, nargs: Int32, nresults: Int32, _ body: @escaping (LuaState, Out) -> Int32) -> Int32 {
        guard lua_checkstack(L, 4) != 0 else {
            clua_pop(L, nargs)
            return Lua.push(L, "stack overflow") ? LUA_ERRMEM : LUA_ERRMEM
        }
        guard pushHostTable(L) else {
            clua_pop(L, nargs)
            _ = Lua.push(L, "the talloc module is not open (call openLibraries())")
            return LUA_ERRRUN
        }
        lua_rawgeti(L, -1, lua_Integer(LTH_HOST_PERFORM))
        clua_remove(L, -2)
        clua_insert(L, -(nargs + 1))
        let work = _Work(body)
        lua_pushlightuserdata(L, Unmanaged.passUnretained(work).toOpaque())
        clua_insert(L, -(nargs + 1))
        return withExtendedLifetime(work) { entered { clua_pcall(L, nargs + 1, nresults, 0) } }
    }

    /// Pushes `values` (in a bound function when the module is open, so contexts can be pushed).
    /// Returns the status; on failure only the error object is pushed.
    func pushValues(_ L: LuaState, _ values: [LuaValue]) -> Int32 {
        let n = Int32(values.count)
        guard lua_checkstack(L, n + 8) != 0 else { return Lua.push(L, "stack overflow") ? LUA_ERRMEM : LUA_ERRMEM }
        guard hostRef > 0 else {
            var w = _LuaWriter(L, frame: nil, pins: 0, contexts: nil, root: nil)
            let base = lua_gettop(L)
            for v in values {
                if !w.push(v) {
                    if lua_gettop(L) > base + 1 {
                        clua_replace(L, base + 1)
                        lua_settop(L, base + 1)
                    }
                    return LUA_ERRRUN
                }
            }
            return LUA_OK
        }
        let contexts = self.contexts, root = self.root
        return perform(L, nargs: 0, nresults: n) { [unowned self] L, out in
            let f = ModuleState.frame(L, out)
            guard lua_checkstack(L, n + 8) != 0 else { return out.error("stack overflow") }
            let pins = LuaRuntime.pushField(L, lth_upvalue(LTH_UPV_HOST), LTH_HOST_PINS, LUA_TTABLE) ? lua_gettop(L) : 0
            let refs = LuaRuntime.pushField(L, lth_upvalue(LTH_UPV_HOST), LTH_HOST_REFS, LUA_TTABLE) ? lua_gettop(L) : 0
            var w = _LuaWriter(L, frame: f, pins: pins, contexts: contexts, root: root, runtime: self, refs: refs)
            for v in values { guard w.push(v) else { return out.rethrow() } }
            return n
        }
    }

    /// Copies the values at `first...last` of `L`'s stack into Swift (the stack is left as it is).
    func readValues(_ L: LuaState, from first: Int32, to last: Int32) throws(RuntimeError) -> [LuaValue] {
        if last < first { return [] }
        let top = lua_gettop(L)
        defer { lua_settop(L, top) }
        var meta: Int32 = 0
        if lua_checkstack(L, 4) != 0, pushHostTable(L) {
            lua_rawgeti(L, -1, lua_Integer(LTH_HOST_META))
            meta = lua_gettop(L)
        }
        var reader = _LuaReader(L, meta: meta, maxDepth: options.maxTableDepth, runtime: hostRef > 0 ? self : nil)
        var out: [LuaValue] = []
        out.reserveCapacity(Int(last - first + 1))
        for i in first...last {
            do { out.append(try reader.read(i)) } catch { throw LuaRuntime.conversionError(error) }
        }
        return out
    }

    static func conversionError(_ e: _ConversionFailure) -> RuntimeError {
        switch e {
        case .tooDeep(let n): return .conversion("table nested more than \(n) levels deep")
        case .lua(let m): return .conversion(m)
        }
    }

    static func describe(_ e: _ConversionFailure) -> String {
        switch e {
        case .tooDeep(let n): return "table nested more than \(n) levels deep"
        case .lua(let m): return m
        }
    }
}
