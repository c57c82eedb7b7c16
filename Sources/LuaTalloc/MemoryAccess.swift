// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// Reading and writing a context's bytes from Lua, bounds-checked. Offsets are byte offsets from the
// start of the chunk, counted from 0 as in C (so `c:write(0, s)` writes at the first byte).

import CLua
import CLuaShims
import Glibc
import TallocCore

enum MemoryAccess {
    /// Checks `off` and `len` against the chunk's size; writes the argument error and returns false.
    static func inBounds(_ out: Out, _ c: TallocContext, _ off: Int, _ len: Int, offArg: Int32, lenArg: Int32) -> Bool {
        if off < 0 || off > c.size { out.argError(offArg, "offset \(off) out of bounds (size \(c.size))"); return false }
        if len < 0 || len > c.size - off {
            out.argError(lenArg, "length \(len) out of bounds (offset \(off), size \(c.size))")
            return false
        }
        return true
    }

    /// A chunk named by its own contents must keep a NUL, or its name would run off its end (DESIGN §8).
    static func keepsTerminator(_ out: Out, _ c: TallocContext, at off: Int, _ data: UnsafeRawBufferPointer?, fill: UInt8?, count: Int) -> Bool {
        guard c.isNamedByContents, count > 0 else { return true }
        let bytes = UnsafeRawBufferPointer(c.unsafeMutableBytes)
        if bytes[0..<off].contains(0) || bytes[(off + count)...].contains(0) { return true }
        if let fill, fill == 0 { return true }
        if let data, data.contains(0) { return true }
        out.error("the write would remove the terminating NUL of a string named by its contents")
        return false
    }

    static let read: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1) else { return 0 }
        guard let off = Lua.optInteger(L, out, 2, 0) else { return 0 }
        guard let len = Lua.optInteger(L, out, 3, max(c.size - max(off, 0), 0)) else { return 0 }
        guard inBounds(out, c, off, len, offArg: 2, lenArg: 3) else { return 0 }
        let b = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(c.unsafeMutableBytes)[off..<(off + len)])
        return Lua.push(L, bytes: b) ? 1 : out.rethrow()
    }

    static let write: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1), let off = Lua.integer(L, out, 2), let s = Lua.bytes(L, out, 3) else { return 0 }
        guard inBounds(out, c, off, s.count, offArg: 2, lenArg: 3) else { return 0 }
        guard keepsTerminator(out, c, at: off, s, fill: nil, count: s.count) else { return 0 }
        if s.count > 0 { memcpy(c.unsafePointer + off, s.baseAddress!, s.count) }
        lua_pushinteger(L, lua_Integer(off + s.count))
        return 1
    }

    static let fill: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1), let byte = Lua.integer(L, out, 2) else { return 0 }
        if byte < 0 || byte > 255 { return out.argError(2, "byte out of range (0..255)") }
        guard let off = Lua.optInteger(L, out, 3, 0) else { return 0 }
        guard let len = Lua.optInteger(L, out, 4, max(c.size - max(off, 0), 0)) else { return 0 }
        guard inBounds(out, c, off, len, offArg: 3, lenArg: 4) else { return 0 }
        guard keepsTerminator(out, c, at: off, nil, fill: UInt8(byte), count: len) else { return 0 }
        memset(c.unsafePointer + off, Int32(byte), len)
        return 0
    }

    /// c:pack(off, fmt, ...): string.pack(fmt, ...) written at `off`; returns the offset after it.
    static let pack: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1), let off = Lua.integer(L, out, 2) else { return 0 }
        guard Lua.bytes(L, out, 3) != nil else { return 0 }
        let n = lua_gettop(L) - 2
        guard lua_checkstack(L, n + 2) != 0 else { return out.error("stack overflow") }
        for i in 3...(2 + n) { lua_pushvalue(L, i) }
        guard ltc_pack(L, n) == LUA_OK else { return out.rethrow() }
        guard let s = Lua.bytes(L, out, -1) else { return 0 }
        guard inBounds(out, c, off, s.count, offArg: 2, lenArg: 3) else { return 0 }
        guard keepsTerminator(out, c, at: off, s, fill: nil, count: s.count) else { return 0 }
        if s.count > 0 { memcpy(c.unsafePointer + off, s.baseAddress!, s.count) }
        lua_pushinteger(L, lua_Integer(off + s.count))
        return 1
    }

    /// c:unpack(off, fmt): string.unpack(fmt, bytes from `off`); returns the values and the offset after.
    static let unpack: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1), let off = Lua.integer(L, out, 2) else { return 0 }
        guard Lua.bytes(L, out, 3) != nil else { return 0 }
        guard inBounds(out, c, off, 0, offArg: 2, lenArg: 2) else { return 0 }
        let base = lua_gettop(L)
        lua_pushvalue(L, 3)
        let b = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(c.unsafeMutableBytes)[off...])
        guard Lua.push(L, bytes: b) else { return out.rethrow() }
        guard ltc_unpack(L, 2) == LUA_OK else { return out.rethrow() }
        let results = lua_gettop(L) - base
        // the last result is string.unpack's 1-based position in the bytes: make it an offset
        var ok: Int32 = 0
        let pos = lua_tointegerx(L, -1, &ok)
        clua_pop(L, 1)
        lua_pushinteger(L, lua_Integer(off) + pos - 1)
        return results
    }

    /// c:string(): the bytes up to the first NUL (all of them when there is none).
    static let string: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1) else { return 0 }
        let bytes = UnsafeRawBufferPointer(c.unsafeMutableBytes)
        let n = bytes.firstIndex(of: 0) ?? bytes.count
        return Lua.push(L, bytes: UnsafeRawBufferPointer(rebasing: bytes[0..<n])) ? 1 : out.rethrow()
    }
}

/// talloc.pool_map: a pool's bytes drawn on one line.
enum PoolMap {
    /// One character per `scale` bytes: `P` the pool's own object, `H` chunk headers, `#` live bytes,
    /// `.` holes left by freed members (not reusable until the pool empties), `_` free space.
    static func render(_ c: TallocContext, width: Int = 64) -> String? {
        guard let info = c.poolInfo, let layout = c.poolLayout else { return nil }
        let total = max(info.capacity, 1)
        let scale = max(16, (total + width - 1) / width)
        var line = ""
        var lastEnd = 0
        for seg in layout {
            let ch: Character
            switch seg.kind {
            case .pool: ch = "P"
            case .header: ch = "H"
            case .live: ch = "#"
            case .hole: ch = "."
            case .free: ch = "_"
            }
            let start = max(seg.offset, lastEnd)
            let end = seg.offset + seg.length
            let cells = max(0, (end + scale - 1) / scale - (start + scale - 1) / scale)
            line += String(repeating: ch, count: seg.length > 0 && cells == 0 && seg.kind != .free ? 1 : cells)
            lastEnd = max(lastEnd, end)
        }
        let state = info.isFreed ? ", freed (pinned by \(info.objectCount) members)" : ""
        return "[\(line)] \(info.used)/\(info.capacity) bytes used, \(info.objectCount) objects\(state); 1 char = \(scale) bytes"
    }
}
