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

    /// A chunk named by its own contents (a string) keeps a NUL in its last byte, or its name would run
    /// off its end (DESIGN §8). Every string starts that way, and realloc renames one it shrinks; so the
    /// check is O(1): only a write that reaches the last byte is looked at.
    static func keepsTerminator(_ out: Out, _ c: TallocContext, at off: Int, _ data: UnsafeRawBufferPointer?, fill: UInt8?, count: Int) -> Bool {
        guard count > 0, off + count == c.size, c.isNamedByContents else { return true }
        let last = fill ?? data![count - 1]
        if last == 0 { return true }
        out.error("the write would remove the terminating NUL of a string named by its contents")
        return false
    }

    static let read: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard case .some(let offArg) = Lua.optionalInteger(L, out, 2),
              case .some(let lenArg) = Lua.optionalInteger(L, out, 3) else { return 0 }
        guard let c = Handles.context(f, out, 1) else { return 0 }
        let off = offArg ?? 0
        let len = lenArg ?? max(c.size - max(off, 0), 0)
        guard inBounds(out, c, off, len, offArg: 2, lenArg: 3) else { return 0 }
        // the trampoline copies them before the collection that allocation may start runs anything
        return out.returnBytes(c.unsafePointer + off, len)
    }

    static let write: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let off = Lua.integer(L, out, 2), let s = Lua.bytes(L, out, 3) else { return 0 }
        return store(f, out, s, at: off)
    }

    /// write and pack: `s` copied into the context at argument 1 from `off` (argument 2); pushes the
    /// offset after it. The context is resolved here, after every argument was read.
    static func store(_ f: Frame, _ out: UnsafeMutablePointer<clua_Outcome>, _ s: UnsafeRawBufferPointer,
                      at off: Int) -> Int32 {
        guard let c = Handles.context(f, out, 1) else { return 0 }
        guard inBounds(out, c, off, s.count, offArg: 2, lenArg: 3) else { return 0 }
        guard keepsTerminator(out, c, at: off, s, fill: nil, count: s.count) else { return 0 }
        if s.count > 0 { memcpy(c.unsafePointer + off, s.baseAddress!, s.count) }
        lua_pushinteger(f.L, lua_Integer(off + s.count))
        return 1
    }

    static let fill: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let byte = Lua.integer(L, out, 2) else { return 0 }
        guard case .some(let offArg) = Lua.optionalInteger(L, out, 3),
              case .some(let lenArg) = Lua.optionalInteger(L, out, 4) else { return 0 }
        guard let c = Handles.context(f, out, 1) else { return 0 }
        if byte < 0 || byte > 255 { return out.argError(2, "byte out of range (0..255)") }
        let off = offArg ?? 0
        let len = lenArg ?? max(c.size - max(off, 0), 0)
        guard inBounds(out, c, off, len, offArg: 3, lenArg: 4) else { return 0 }
        guard keepsTerminator(out, c, at: off, nil, fill: UInt8(byte), count: len) else { return 0 }
        memset(c.unsafePointer + off, Int32(byte), len)
        return 0
    }

    /// c:pack(off, fmt, ...): string.pack(fmt, ...) written at `off`; returns the offset after it. The
    /// trampoline packed the values (in the method's own frame: its errors name 'pack') into a buffer of
    /// its own (`out.bytes`, `out.len`), and the context is resolved only now.
    static let pack: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        // the packed bytes: in a buffer of the trampoline's frame, valid until it returns
        let s = UnsafeRawBufferPointer(start: out.pointee.bytes, count: out.pointee.len)
        guard let off = Lua.integer(L, out, 2) else { return 0 }
        return store(f, out, s, at: off)
    }

    /// c:unpack(off, fmt): string.unpack(fmt, bytes from `off`); returns the values and the offset after.
    /// This body checks and points at the bytes; the trampoline unpacks them afterwards (in place for
    /// formats of numbers only, from a copy for c, s and z, whose strings allocate).
    static let unpack: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let off = Lua.integer(L, out, 2), Lua.bytes(L, out, 3) != nil else { return 0 }
        guard let c = Handles.context(f, out, 1) else { return 0 }
        guard inBounds(out, c, off, 0, offArg: 2, lenArg: 2) else { return 0 }
        return out.returnBytes(c.unsafePointer + off, c.size - off)
    }

    /// c:string(): the bytes up to the first NUL (all of them when there is none).
    static let string: clua_Body = { L, out in
        guard let c = Handles.context(ModuleState.frame(L, out), out, 1) else { return 0 }
        let bytes = UnsafeRawBufferPointer(c.unsafeMutableBytes)
        return out.returnBytes(c.unsafePointer, bytes.firstIndex(of: 0) ?? bytes.count)
    }
}
