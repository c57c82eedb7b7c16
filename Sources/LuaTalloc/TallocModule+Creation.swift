// luatalloc — the `talloc` Lua module: creating contexts and strings, realloc
// SPDX-License-Identifier: MIT
//
// See TallocModule.swift for the rules every body follows.

import CLua
import CLuaShims
import Glibc
import TallocCore

extension TallocModule {
    // MARK: - Creation (the trampoline made an empty handle: index 1, the arguments after it)

    /// Allocates with `make` under the parent in argument `parentArg` (stack index `parentArg + 1`).
    /// When it fails for memory, collects garbage once — with finalizers, so contexts whose handles
    /// became garbage give their memory back (Lua's emergency collections run none) — and tries again
    /// with the parent re-resolved from its handle (a finalizer may have freed it).
    static func allocate(_ f: Frame, _ out: Out, parentArg: Int32,
                         _ make: (TallocContext) throws(TallocError) -> TallocContext) -> TallocContext? {
        guard let parent = Handles.parent(f, out, parentArg + 1, arg: parentArg) else { return nil }
        do {
            return try make(parent)
        } catch .outOfMemory {
            ltc_requestcollect(f.S)
            ltc_collectnow(f.L, f.S.pointee.collect)
            guard let parent = Handles.parent(f, out, parentArg + 1, arg: parentArg) else { return nil }
            do { return try make(parent) } catch {
                out.fail(f.S, error)
                return nil
            }
        } catch {
            out.fail(f.S, error)
            return nil
        }
    }

    /// The new handle at index 1 gets `c` and its name (`name`, or the caller's position); returns 1.
    static func created(_ f: Frame, _ out: Out, _ c: TallocContext, name: UnsafeRawBufferPointer?, talloc_new: Bool,
                        byCaller: Bool = true) -> Int32 {
        let cell = ltc_cellat(f.L, 1)
        guard Handles.attach(f.S, c, cell) else {
            try? c.free()
            return outOfMemory(f.S, out)
        }
        var named = true
        if let name {
            named = ModuleState.setNameInterned(f.S, c, cell, name)
        } else if byCaller {
            named = ModuleState.nameByCaller(f, c, cell, talloc_new: talloc_new)
        }
        if !named {
            try? c.free()
            return outOfMemory(f.S, out)
        }
        // the parent link: the parent's handle is argument 1 (index 2), or none at the top level, where
        // the new handle's user value stays nil (a new userdata's user values are nil)
        if lua_type(f.L, 2) == LUA_TUSERDATA {
            lua_pushvalue(f.L, 2)
            lua_setiuservalue(f.L, 1, 1)
        }
        lua_settop(f.L, 1)
        return 1
    }

    static let new: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard case .some(let name) = nameArgument(L, out, 3, arg: 2) else { return 0 }
        guard let c = allocate(f, out, parentArg: 1, { p throws(TallocError) in
            try TallocContext.allocateUnnamed(parent: p, byteCount: 0)
        }) else { return 0 }
        return created(f, out, c, name: name, talloc_new: true)
    }

    static func sized(_ L: LuaState, _ out: Out) -> Int32 {
        let f = ModuleState.frame(L, out)
        guard let n = size(L, out, 3, arg: 2) else { return 0 }
        guard case .some(let name) = nameArgument(L, out, 4, arg: 3) else { return 0 }
        guard let c = allocate(f, out, parentArg: 1, { p throws(TallocError) in
            try TallocContext.allocateUnnamed(parent: p, byteCount: n)
        }) else { return 0 }
        memset(c.unsafePointer, 0, n)  // Lua never sees uninitialised bytes (DESIGN §8)
        return created(f, out, c, name: name, talloc_new: false)
    }

    static let size: clua_Body = { L, out in sized(L, out) }
    static let zero: clua_Body = { L, out in sized(L, out) }

    static let pool: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let n = size(L, out, 3, arg: 2) else { return 0 }
        guard let c = allocate(f, out, parentArg: 1, { p throws(TallocError) in
            try TallocContext.pool(parent: p, capacity: n)
        }) else { return 0 }
        return created(f, out, c, name: nil, talloc_new: false, byCaller: false)
    }

    static let pooledObject: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let size = TallocModule.size(L, out, 3, arg: 2),
              let count = TallocModule.size(L, out, 4, arg: 3, what: "count"),
              let bytes = TallocModule.size(L, out, 5, arg: 4) else { return 0 }
        guard case .some(let name) = nameArgument(L, out, 6, arg: 5) else { return 0 }
        guard let c = allocate(f, out, parentArg: 1, { p throws(TallocError) in
            try TallocContext.pooledObject(parent: p, byteCount: size, name: "", subobjects: count, subobjectBytes: bytes)
        }) else { return 0 }
        memset(c.unsafePointer, 0, size)
        return created(f, out, c, name: name, talloc_new: false)
    }

    static let strdup: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let s = Lua.bytes(L, out, 3, arg: 2) else { return 0 }
        guard let c = allocate(f, out, parentArg: 1, { p throws(TallocError) in
            try TallocContext.strdup(parent: p, bytes: s)
        }) else { return 0 }
        return created(f, out, c, name: nil, talloc_new: false, byCaller: false)
    }

    static let strndup: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let s = Lua.bytes(L, out, 3, arg: 2), let n = size(L, out, 4, arg: 3, what: "length") else { return 0 }
        let cut = UnsafeRawBufferPointer(rebasing: s[0..<min(n, s.count)])
        guard let c = allocate(f, out, parentArg: 1, { p throws(TallocError) in
            try TallocContext.strdup(parent: p, bytes: cut)
        }) else { return 0 }
        return created(f, out, c, name: nil, talloc_new: false, byCaller: false)
    }

    /// asprintf(parent, fmt, ...): the trampoline formatted the arguments (their metamethods have run);
    /// the text is on the top, the parent at index 2.
    static let asprintf: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let s = Lua.bytes(L, out, -1) else { return 0 }
        guard let c = allocate(f, out, parentArg: 1, { p throws(TallocError) in
            try TallocContext.strdup(parent: p, bytes: s)
        }) else { return 0 }
        return created(f, out, c, name: nil, talloc_new: false, byCaller: false)
    }

    static let memdup: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        let isString = lua_type(L, 3) == LUA_TSTRING
        if !isString && ltc_tocell_in(L, 3, f.meta) == nil {
            return Lua.typeError(L, out, 3, "string or talloc.context", arg: 2)
        }
        /// The source, re-resolved at every attempt (the retry's collection may free it); nil: freed.
        func source() -> UnsafeRawBufferPointer? {
            if isString { return Lua.bytes(L, out, 3, arg: 2) }
            return Handles.context(f, out, 3, arg: 2).map { UnsafeRawBufferPointer($0.unsafeMutableBytes) }
        }
        guard source() != nil else { return 0 }
        var gone = false
        guard let c = allocate(f, out, parentArg: 1, { p throws(TallocError) in
            guard let src = source() else { gone = true; throw .accessAfterFree }
            let c = try TallocContext.allocateUnnamed(parent: p, byteCount: src.count)
            if src.count > 0 { memcpy(c.unsafePointer, src.baseAddress!, src.count) }
            return c
        }) else {
            if gone { _ = source() }  // the freed-context error, in place of the one allocate wrote
            return 0
        }
        return created(f, out, c, name: nil, talloc_new: false)
    }

    // MARK: - Strings that grow

    /// strdup_append(c, s) and asprintf_append(c, fmt, ...) (whose trampoline formatted the text: it is
    /// on the top). The handle stays the same even if the memory moves.
    static func appendBody(_ L: LuaState, _ out: Out, formatting: Bool) -> Int32 {
        let f = ModuleState.frame(L, out)
        let at: Int32 = formatting ? -1 : 2
        guard let s = Lua.bytes(L, out, at) else { return 0 }
        guard let (c0, cell) = Handles.resolve(f, out, 1) else { return 0 }
        var c = c0
        if formatting && s.count == 0 { lua_settop(L, 1); return 1 }  // talloc: empty output, unchanged
        do throws(TallocError) {
            try c.appendString(bytes: s, atBufferEnd: false)
        } catch {
            return out.fail(f.S, error)
        }
        ModuleState.nameChanged(f.S, cell, c)
        lua_settop(L, 1)
        return 1
    }

    static let strdupAppend: clua_Body = { L, out in appendBody(L, out, formatting: false) }
    static let asprintfAppend: clua_Body = { L, out in appendBody(L, out, formatting: true) }

    static let realloc: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let n = size(L, out, 2, arg: 2) else { return 0 }
        guard let (c0, cell) = Handles.resolve(f, out, 1) else { return 0 }
        var c = c0
        if n == 0 {
            // talloc_realloc(parent, c, 0): unlink from its parent, which frees it
            do throws(TallocError) { try c.unlink(from: c.parent) } catch {
                return Refusal.push(f, out, error, lead: .nil)
            }
            if Refusal.destructorFailed(f, out) { return 0 }
            lua_pushnil(L)
            return 1
        }
        let wasString = c.isNamedByContents
        do throws(TallocError) {
            try c.resize(byteCount: n, zeroFill: true)
        } catch {
            return out.fail(f.S, error)
        }
        if wasString && c.unsafeMutableBytes.last != 0 {
            // shrunk past its NUL: a string named by its contents would have a name without an end.
            // talloc_realloc names what it returns after its caller's position: so does this.
            if !ModuleState.nameByCaller(f, c, cell, talloc_new: false) { c.unsafeSetNameConst(nil) }
            ModuleState.nameChanged(f.S, cell, c)
        }
        lua_settop(L, 1)
        return 1
    }
}
