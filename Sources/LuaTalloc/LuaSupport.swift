// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// Reading arguments and reporting failures from Swift bodies. Everything here uses only Lua API
// functions that cannot raise ('-' in the manual); failures are written into the clua_Outcome and the
// C trampoline raises once the Swift frame has returned (DESIGN §4).

import CLua
import CLuaShims
import Glibc
import TallocCore

/// A `lua_State *` of Lua's C API (`LuaRuntime.state`), for the functions that cannot raise.
public typealias LuaState = OpaquePointer
typealias Out = UnsafeMutablePointer<clua_Outcome>

extension UnsafeMutablePointer where Pointee == clua_Outcome {
    /// Asks the trampoline to raise `message` with luaL_error (which prepends the position). Returns 0.
    @discardableResult
    func error(_ message: String) -> Int32 {
        pointee.kind = Int32(CLUA_ERROR)
        setMessage(message)
        return 0
    }

    /// Asks the trampoline for luaL_argerror: "bad argument #arg to 'f' (message)". Returns 0.
    @discardableResult
    func argError(_ arg: Int32, _ message: String) -> Int32 {
        pointee.kind = Int32(CLUA_ARGERROR)
        pointee.arg = arg
        setMessage(message)
        return 0
    }

    /// Asks the trampoline to raise (lua_error) the error object the body left on the top. Returns 0.
    @discardableResult
    func rethrow() -> Int32 {
        pointee.kind = Int32(CLUA_RETHROW)
        return 0
    }

    /// Asks the trampoline to raise "position: " followed by `bytes` exactly (any length, NULs
    /// included). Returns 0.
    @discardableResult
    func error(_ L: LuaState, bytes: UnsafeRawBufferPointer) -> Int32 {
        if Lua.push(L, bytes: bytes) {
            pointee.kind = Int32(LTC_ERRORVALUE)
        } else {
            pointee.kind = Int32(CLUA_RETHROW)  // the memory error is what is raised
        }
        return 0
    }

    /// Returns with `count` bytes at `base` as the last result: the trampoline makes the Lua string after
    /// the body returned (no pcall; no Lua code runs before the bytes are copied, so they may be a
    /// chunk's). Returns `results`, the count including that string.
    @discardableResult
    func returnBytes(_ base: UnsafeRawPointer, _ count: Int, results: Int32 = 1) -> Int32 {
        pointee.kind = Int32(LTC_RETBYTES)
        pointee.bytes = base
        pointee.len = count
        return results
    }

    private func setMessage(_ message: String) {
        withUnsafeMutableBytes(of: &pointee.message) { buf in
            var i = 0
            for b in message.utf8 {
                if i >= buf.count - 1 { break }
                buf[i] = b
                i += 1
            }
            buf[i] = 0
        }
    }
}

enum Lua {
    @inline(__always) static func top(_ L: LuaState) -> Int32 { lua_gettop(L) }

    @inline(__always) static func type(_ L: LuaState, _ i: Int32) -> Int32 { lua_type(L, i) }

    @inline(__always) static func isNoneOrNil(_ L: LuaState, _ i: Int32) -> Bool { lua_type(L, i) <= 0 }

    static func typeName(_ L: LuaState, _ i: Int32) -> String {
        let t = lua_type(L, i)
        if t == LUA_TLIGHTUSERDATA { return "light userdata" }
        if t == LUA_TUSERDATA, ltc_tocell(L, i) != nil { return "talloc.context" }
        return String(cString: lua_typename(L, t))
    }

    /// "X expected, got Y", as luaL_typeerror words it.
    static func typeError(_ L: LuaState, _ out: Out, _ i: Int32, _ expected: String, arg: Int32? = nil) -> Int32 {
        out.argError(arg ?? i, "\(expected) expected, got \(lua_type(L, i) == LUA_TNONE ? "no value" : typeName(L, i))")
    }

    /// An integer argument, as luaL_checkinteger reads it: integers, integral floats and strings that
    /// convert to one ("10", "0x10", "1e2"); reading converts nothing in place and never allocates.
    @inline(__always)
    static func integer(_ L: LuaState, _ out: Out, _ i: Int32, arg: Int32? = nil) -> Int? {
        var ok: Int32 = 0
        let v = lua_tointegerx(L, i, &ok)
        if ok != 0 { return Int(v) }
        return notAnInteger(L, out, i, arg: arg)
    }

    /// Why argument `i` is not an integer, written to `out`; nil.
    @inline(never)
    static func notAnInteger(_ L: LuaState, _ out: Out, _ i: Int32, arg: Int32?) -> Int? {
        let t = lua_type(L, i)
        if t == LUA_TNUMBER || t == LUA_TSTRING {
            var isNumber: Int32 = 0
            _ = lua_tonumberx(L, i, &isNumber)
            if isNumber != 0 {
                _ = out.argError(arg ?? i, "number has no integer representation")
                return nil
            }
        }
        _ = typeError(L, out, i, "number", arg: arg)
        return nil
    }

    static func optInteger(_ L: LuaState, _ out: Out, _ i: Int32, _ def: Int, arg: Int32? = nil) -> Int? {
        isNoneOrNil(L, i) ? def : integer(L, out, i, arg: arg)
    }

    /// An optional integer argument: `.some(nil)` when absent (none or nil), `.some(n)`, or nil when it is
    /// not an integer (the error is in `out`).
    @inline(__always)
    static func optionalInteger(_ L: LuaState, _ out: Out, _ i: Int32) -> Int?? {
        var ok: Int32 = 0
        let v = lua_tointegerx(L, i, &ok)
        if ok != 0 { return .some(Int(v)) }
        if isNoneOrNil(L, i) { return .some(nil) }
        _ = notAnInteger(L, out, i, arg: nil)
        return nil
    }

    /// A string argument, as luaL_checklstring reads it: a number is converted in place (its slot then
    /// holds the string). The bytes stay valid while the value is on the stack.
    ///
    /// Converting allocates, so a collection (finalizers, destructors) may run: read string arguments
    /// before resolving contexts.
    static func bytes(_ L: LuaState, _ out: Out, _ i: Int32, arg: Int32? = nil) -> UnsafeRawBufferPointer? {
        var len = 0
        if let p = clua_tostring_strict(L, i, &len) { return UnsafeRawBufferPointer(start: p, count: len) }
        guard lua_type(L, i) == LUA_TNUMBER else {
            _ = typeError(L, out, i, "string", arg: arg)
            return nil
        }
        guard lua_checkstack(L, 3) != 0 else { _ = out.error("stack overflow"); return nil }
        guard ltc_tostringinplace(L, i) == LUA_OK else { _ = out.rethrow(); return nil }
        guard let p = clua_tostring_strict(L, i, &len) else { _ = out.error(TallocError.outOfMemory.luaMessage()); return nil }
        return UnsafeRawBufferPointer(start: p, count: len)
    }

    /// Lua's "%.14g".
    static func formatNumber(_ d: Double) -> String {
        var buf = [CChar](repeating: 0, count: 64)
        _ = withVaList([d]) { vsnprintf(&buf, 64, "%.14g", $0) }
        var s = String(cString: buf)
        if !s.contains(where: { $0 == "." || $0 == "e" || $0 == "n" || $0 == "i" }) { s += ".0" }
        return s
    }

    static func string(_ L: LuaState, _ out: Out, _ i: Int32, arg: Int32? = nil) -> String? {
        guard let b = bytes(L, out, i, arg: arg) else { return nil }
        return String(decoding: b, as: UTF8.self)
    }

    /// Pushes a string through the protected helper; false (error object on the top) on a memory error.
    @discardableResult
    static func push(_ L: LuaState, _ s: String) -> Bool {
        var s = s
        return s.withUTF8 { b in push(L, bytes: UnsafeRawBufferPointer(b)) }
    }

    private static let emptyBytes: UnsafePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        p.pointee = 0
        return UnsafePointer(p)
    }()

    static func push(_ L: LuaState, bytes: UnsafeRawBufferPointer) -> Bool {
        let p = bytes.baseAddress.map { $0.assumingMemoryBound(to: CChar.self) } ?? emptyBytes
        return clua_pushlstring(L, p, bytes.count) == LUA_OK
    }
}
