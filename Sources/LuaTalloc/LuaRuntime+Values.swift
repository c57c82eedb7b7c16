// luatalloc — the embeddable runtime: copying values between the Lua stack and `LuaValue`
// SPDX-License-Identifier: MIT
//
// Reading uses only '-' API calls and the protected `lth_next`; writing uses protected helpers for
// everything that allocates. Neither can raise into Swift (DESIGN §4).

import CLua
import CLuaShims
import TallocCore

/// Why a value could not be copied between Lua and Swift.
enum _ConversionFailure: Error {
    case tooDeep(Int)
    /// A Lua error (the message), e.g. out of memory while iterating.
    case lua(String)
}

/// Reads Lua values into `LuaValue`s. `meta` is the absolute index of the contexts' metatable
/// (0: no module, every userdata is opaque).
struct _LuaReader {
    let L: LuaState
    let meta: Int32
    let maxDepth: Int
    /// The tables being read, outermost first (`lua_topointer`).
    private var ancestors: [UnsafeRawPointer] = []
    /// Tables already read whose contents refer to no table outside themselves.
    private var memo: [UnsafeRawPointer: LuaValue] = [:]

    init(_ L: LuaState, meta: Int32, maxDepth: Int) {
        self.L = L
        self.meta = meta
        self.maxDepth = maxDepth
    }

    /// The value at `idx`.
    mutating func read(_ idx: Int32) throws(_ConversionFailure) -> LuaValue {
        try read(lua_absindex(L, idx), referenced: nil)
    }

    /// `lowest`: the outermost ancestor (index in `ancestors`) a cycle marker inside refers to.
    private mutating func read(_ idx: Int32, referenced lowest: UnsafeMutablePointer<Int>?) throws(_ConversionFailure) -> LuaValue {
        switch lua_type(L, idx) {
        case LUA_TNIL, LUA_TNONE:
            return .nil
        case LUA_TBOOLEAN:
            return .boolean(lua_toboolean(L, idx) != 0)
        case LUA_TNUMBER:
            if lua_isinteger(L, idx) != 0 { return .integer(Int(lua_tointegerx(L, idx, nil))) }
            return .number(lua_tonumberx(L, idx, nil))
        case LUA_TSTRING:
            var len = 0
            guard let p = clua_tostring_strict(L, idx, &len) else { return .nil }
            let bytes = UnsafeRawBufferPointer(start: p, count: len)
            if let s = String(validating: bytes, as: UTF8.self) { return .string(s) }
            return .bytes(Array(bytes))
        case LUA_TTABLE:
            return try readTable(idx, referenced: lowest)
        case LUA_TUSERDATA:
            if meta != 0, lua_getmetatable(L, idx) != 0 {
                let isContext = lua_rawequal(L, -1, meta) != 0
                clua_pop(L, 1)
                if isContext {
                    let b = ltc_cellat(L, idx)!
                    guard let body = b.pointee.body else { return .opaque(LuaOpaque(kind: .freedContext, address: 0)) }
                    return .context(TallocContext(unsafePointer: body))
                }
            }
            return opaque(.userdata, idx)
        case LUA_TFUNCTION:
            return opaque(.function, idx)
        case LUA_TTHREAD:
            return opaque(.thread, idx)
        case LUA_TLIGHTUSERDATA:
            return opaque(.lightUserdata, idx)
        default:
            return opaque(.userdata, idx)
        }
    }

    private func opaque(_ kind: LuaOpaque.Kind, _ idx: Int32) -> LuaValue {
        .opaque(LuaOpaque(kind: kind, address: UInt(bitPattern: lua_topointer(L, idx))))
    }

    private mutating func readTable(_ idx: Int32, referenced lowest: UnsafeMutablePointer<Int>?) throws(_ConversionFailure) -> LuaValue {
        let p = lua_topointer(L, idx)!
        if let d = ancestors.lastIndex(of: p) {
            if let lowest { lowest.pointee = Swift.min(lowest.pointee, d) }
            return .cycle(levelsUp: ancestors.count - d)
        }
        if let known = memo[p] { return known }
        if ancestors.count >= maxDepth { throw .tooDeep(maxDepth) }
        guard lua_checkstack(L, 4) != 0 else { throw .lua("stack overflow (table too deep)") }
        let depth = ancestors.count
        ancestors.append(p)
        defer { ancestors.removeLast() }
        var inner = Int.max  // the outermost ancestor this table's contents refer to
        var t: [LuaValue: LuaValue] = [:]
        lua_pushnil(L)
        while true {
            var more: Int32 = 0
            let status = lth_next(L, idx, &more)
            if status != LUA_OK {
                let m = LuaRuntime.popMessage(L)
                throw .lua(m)
            }
            if more == 0 { break }
            let top = lua_gettop(L)
            let value: LuaValue
            let key: LuaValue
            do {
                value = try read(top, referenced: &inner)
                key = try read(top - 1, referenced: &inner)
            } catch {
                clua_pop(L, 2)
                throw error
            }
            clua_pop(L, 1)  // the value; the key stays for lth_next
            t[key] = value
        }
        if let lowest, inner < depth { lowest.pointee = Swift.min(lowest.pointee, inner) }
        let result = LuaValue.table(t)
        if inner >= depth { memo[p] = result }  // self-contained: the same wherever it is reached
        return result
    }
}

/// Pushes `LuaValue`s. Contexts need the module (its frame and the pins table at `pins`); without them a
/// context is an error.
struct _LuaWriter {
    let L: LuaState
    let frame: Frame?
    /// Absolute index of the pins table (host table's LTH_HOST_PINS), 0 if none.
    let pins: Int32
    /// The runtime's "lua contexts": contexts under it are Lua's, others are lent.
    let contexts: TallocContext?
    /// The runtime's root: nothing else of its tree may reach Lua.
    let root: TallocContext?
    /// The tables being built, outermost first (stack indices), for `.cycle`.
    private var building: [Int32] = []

    init(_ L: LuaState, frame: Frame?, pins: Int32, contexts: TallocContext?, root: TallocContext?) {
        self.L = L
        self.frame = frame
        self.pins = pins
        self.contexts = contexts
        self.root = root
    }

    /// Pushes `value`. On failure returns false with exactly one value pushed: the error object.
    mutating func push(_ value: LuaValue) -> Bool {
        let base = lua_gettop(L)
        if pushValue(value) { return true }
        // leave just the error object (it is on the top)
        if lua_gettop(L) > base + 1 {
            clua_replace(L, base + 1)
            lua_settop(L, base + 1)
        }
        return false
    }

    private func fail(_ message: String) -> Bool {
        if !Lua.push(L, message) { return false }  // the memory error is the error object then
        return false
    }

    private mutating func pushValue(_ value: LuaValue) -> Bool {
        guard lua_checkstack(L, 4) != 0 else { return fail("stack overflow (value too deep)") }
        switch value {
        case .nil: lua_pushnil(L)
        case .boolean(let b): lua_pushboolean(L, b ? 1 : 0)
        case .integer(let i): lua_pushinteger(L, lua_Integer(i))
        case .number(let d): lua_pushnumber(L, d)
        case .string(let s): return Lua.push(L, s)
        case .bytes(let b): return b.withUnsafeBytes { Lua.push(L, bytes: $0) }
        case .cycle(let n):
            guard n >= 1, n <= building.count else { return fail("invalid cycle reference (\(n) levels up)") }
            lua_pushvalue(L, building[building.count - n])
        case .opaque(let o):
            return fail("cannot pass a Lua \(o.kind.rawValue) back to Lua")
        case .context(let c):
            return pushContext(c)
        case .table(let t):
            let narr = t.keys.reduce(0) { n, k in if case .integer(let i) = k, i >= 1, i <= t.count { return n + 1 }; return n }
            guard clua_createtable(L, Int32(clamping: narr), Int32(clamping: t.count - narr)) == LUA_OK else { return false }
            let idx = lua_gettop(L)
            building.append(idx)
            defer { building.removeLast() }
            for (k, v) in t where !v.isNil {
                if k.isNil { return fail("table index is nil") }
                guard pushValue(k) else { return false }
                guard pushValue(v) else { return false }
                guard ltc_rawset(L, idx) == LUA_OK else { return false }
            }
        }
        return true
    }

    /// The handle of `c`; a context outside the runtime's "lua contexts" is lent (Handles.lend): its
    /// handle is pinned, and nothing above it reaches Lua.
    private func pushContext(_ c: TallocContext) -> Bool {
        guard let frame, pins != 0, let contexts, let root else { return fail("talloc contexts need the talloc module (openLibraries)") }
        guard c.isValid else { return fail("invalid talloc context (already freed?)") }
        return LuaRuntime.pushContext(frame, c, contexts: contexts, root: root) { pin(-1, c) }
    }

    /// pins[handle at idx] = light userdata(c): the handle stays reachable until the runtime closes.
    private func pin(_ idx: Int32, _ c: TallocContext) -> Bool {
        lua_pushvalue(L, idx)
        lua_pushlightuserdata(L, c.unsafePointer)
        return ltc_rawset(L, pins) == LUA_OK
    }
}
