// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// One body per Lua function (DESIGN §3). Bodies use only '-' API calls and protected helpers, and
// report failures through the outcome, so a Lua error never unwinds a Swift frame (DESIGN §4).
//
// Lua code can run in the middle of a call: a metamethod, a destructor, or a finalizer run by a
// collection that any allocation may start. So a body reads its plain arguments first (converting a
// number to a name allocates), then resolves its contexts, and re-resolves them from their handles after
// anything that allocates or runs Lua. It never looks up a global.

import CLua
import CLuaShims
import Glibc
import TallocCore

enum TallocModule {
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
                // what holds the memory may become garbage once the error unwinds: the next safe point
                // (a module call, or the pcall that catches this) collects with finalizers
                if error == .outOfMemory { ltc_requestcollect(f.S) }
                _ = failure(out, error)
                return nil
            }
        } catch {
            _ = failure(out, error)
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
            named = ModuleState.setNameCopy(f.S, c, cell, name)
        } else if byCaller {
            named = ModuleState.nameByCaller(f, c, cell, talloc_new: talloc_new)
        }
        if !named {
            try? c.free()
            return outOfMemory(f.S, out)
        }
        Handles.linkParent(f, 1, c, cell)
        lua_settop(f.L, 1)
        return 1
    }

    /// "not enough memory"; what holds the memory may become garbage once the error unwinds, so the next
    /// safe point (a module call, or the pcall that catches this) collects with finalizers.
    static func outOfMemory(_ S: StatePtr, _ out: Out) -> Int32 {
        ltc_requestcollect(S)
        return out.error("not enough memory")
    }

    static func failure(_ out: Out, _ e: TallocError) -> Int32 {
        switch e {
        case .outOfMemory: return out.error("not enough memory")
        case .sizeTooLarge: return out.error("size too large (talloc allocations are below 256 MiB)")
        default: return out.error(e.description)
        }
    }

    /// The optional name argument at stack index `i` (read before any context: it may allocate).
    /// `.some(nil)` when absent; nil when it is not a string (the error is in `out`).
    static func nameArgument(_ L: LuaState, _ out: Out, _ i: Int32, arg: Int32) -> UnsafeRawBufferPointer?? {
        if Lua.isNoneOrNil(L, i) { return .some(nil) }
        guard let b = Lua.bytes(L, out, i, arg: arg) else { return nil }
        return .some(b)
    }

    /// A size argument: an integer from 0 up.
    static func size(_ L: LuaState, _ out: Out, _ i: Int32, arg: Int32, what: String = "size") -> Int? {
        guard let n = Lua.integer(L, out, i, arg: arg) else { return nil }
        if n < 0 { _ = out.argError(arg, "\(what) must not be negative"); return nil }
        return n
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
            if error == .outOfMemory { ltc_requestcollect(f.S) }
            return failure(out, error)
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
                if ModuleState.takeError(f) { return out.rethrow() }
                lua_pushnil(L)
                Lua.push(L, "the free was refused (\(error))")
                return 2
            }
            if ModuleState.takeError(f) { return out.rethrow() }
            lua_pushnil(L)
            return 1
        }
        let wasString = c.isNamedByContents
        do throws(TallocError) {
            try c.resize(byteCount: n, zeroFill: true)
        } catch .referenced {
            return out.error("cannot reallocate a referenced context")
        } catch .isPool {
            return out.error("cannot reallocate a pool")
        } catch .beingFreed {
            return out.error("cannot reallocate a context that is being freed")
        } catch {
            if error == .outOfMemory { ltc_requestcollect(f.S) }
            return failure(out, error)
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

    // MARK: - Free

    static let free: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let c = Handles.context(f, out, 1) else { return 0 }
        do throws(TallocError) {
            try c.free()
        } catch {
            if ModuleState.takeError(f) { return out.rethrow() }
            lua_pushboolean(L, 0)
            switch error {
            // references are checked before any destructor runs: c is alive here
            case .hasReferences: Lua.push(L, "the context has references (\(c.referenceCount)); unlink them first")
            case .destructorRefused: Lua.push(L, "a destructor refused the free")
            default: Lua.push(L, error.description)
            }
            return 2
        }
        if ModuleState.takeError(f) { return out.rethrow() }
        lua_pushboolean(L, 1)
        return 1
    }

    static let freeChildren: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let c = Handles.context(f, out, 1) else { return 0 }
        c.freeChildren()
        if ModuleState.takeError(f) { return out.rethrow() }
        return 0
    }

    // MARK: - Ownership

    static func hierarchyError(_ out: Out, _ e: TallocError) -> Int32 {
        switch e {
        case .wouldCreateLoop: return out.error("cannot move a context into its own subtree")
        case .beingFreed: return out.error("the context is being freed")
        default: return out.error(e.description)
        }
    }

    static let steal: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let parent = Handles.parent(f, out, 1), let c = Handles.context(f, out, 2) else { return 0 }
        do throws(TallocError) { try c.steal(to: parent) } catch { return hierarchyError(out, error) }
        lua_settop(L, 2)
        return 1
    }

    static let reparent: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let old = Handles.parent(f, out, 1), let new = Handles.parent(f, out, 2),
              let c = Handles.context(f, out, 3) else { return 0 }
        do throws(TallocError) { try c.reparent(from: old, to: new) } catch .notAParent {
            lua_pushnil(L)
            Lua.push(L, "not a parent of the context")
            return 2
        } catch { return hierarchyError(out, error) }
        lua_settop(L, 3)
        return 1
    }

    static let reference: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let parent = Handles.parent(f, out, 1), let c = Handles.context(f, out, 2) else { return 0 }
        do throws(TallocError) { try c.reference(from: parent) } catch { return failure(out, error) }
        lua_settop(L, 2)
        return 1
    }

    static let unlink: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let parent = Handles.parent(f, out, 1), let c = Handles.context(f, out, 2) else { return 0 }
        do throws(TallocError) { try c.unlink(from: parent) } catch {
            if ModuleState.takeError(f) { return out.rethrow() }
            lua_pushboolean(L, 0)
            Lua.push(L, error == .notAParent ? "not a parent of the context" : "a destructor refused the free")
            return 2
        }
        if ModuleState.takeError(f) { return out.rethrow() }
        lua_pushboolean(L, 1)
        return 1
    }

    static let referenceCount: clua_Body = { L, out in
        guard let c = Handles.context(ModuleState.frame(L, out), out, 1) else { return 0 }
        lua_pushinteger(L, lua_Integer(c.referenceCount))
        return 1
    }

    static let setDestructor: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        let removing = Lua.isNoneOrNil(L, 2)
        if !removing && lua_type(L, 2) != LUA_TFUNCTION { return Lua.typeError(L, out, 2, "function") }
        guard let (_, cell) = Handles.resolve(f, out, 1) else { return 0 }
        let slot = lua_Integer(cell.pointee.slot)
        if removing {
            ltc_clearslot(L, f.extra, slot)
            if cell.pointee.flags & Int32(LTC_LUADTOR) != 0, let body = cell.pointee.body {
                TallocContext(unsafePointer: body).unsafeSetDestructor(nil, context: nil)
                cell.pointee.flags &= ~Int32(LTC_LUADTOR)
            }
            return 0
        }
        lua_pushinteger(L, slot)
        lua_pushvalue(L, 2)
        guard ltc_rawset(L, f.extra) == LUA_OK else { return out.rethrow() }
        // the table may have grown: a collection may have freed the context meanwhile
        guard let body = cell.pointee.body else {
            ltc_clearslot(L, f.extra, slot)
            return Handles.freedError(L, out, cell)
        }
        if !TallocContext(unsafePointer: body).unsafeSetDestructor(ModuleState.destructor, context: UnsafeMutableRawPointer(f.S)) {
            ltc_clearslot(L, f.extra, slot)
            return outOfMemory(f.S, out)
        }
        cell.pointee.flags |= Int32(LTC_LUADTOR)
        return 0
    }

    // MARK: - Names and types

    /// set_name(c, name): talloc_set_name: the name is copied into a new ".name" child (counted in
    /// total_blocks and by memory limits, as talloc's).
    static let setName: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let s = Lua.bytes(L, out, 2) else { return 0 }
        guard let (c, cell) = Handles.resolve(f, out, 1) else { return 0 }
        do throws(TallocError) { try c.setName(bytes: s) } catch {
            if error == .outOfMemory { ltc_requestcollect(f.S) }
            return failure(out, error)
        }
        ModuleState.nameChanged(f.S, cell, c)
        lua_settop(L, 2)
        return 1
    }

    static let getName: clua_Body = { L, out in
        guard let c = Handles.context(ModuleState.frame(L, out), out, 1) else { return 0 }
        return Names.bytes(c).withUnsafeBytes { Lua.push(L, bytes: $0) } ? 1 : out.rethrow()
    }

    static let checkName: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let s = Lua.bytes(L, out, 2) else { return 0 }
        guard let c = Handles.context(f, out, 1) else { return 0 }
        lua_pushboolean(L, Names.equals(c, s) ? 1 : 0)
        return 1
    }

    static let setType: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let b = Lua.bytes(L, out, 2) else { return 0 }
        guard let (c, cell) = Handles.resolve(f, out, 1) else { return 0 }
        if !ModuleState.setNameCopy(f.S, c, cell, b) { return outOfMemory(f.S, out) }
        return 0
    }

    static let getType: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let s = Lua.bytes(L, out, 2) else { return 0 }
        guard let c = Handles.context(f, out, 1) else { return 0 }
        if Names.equals(c, s) { lua_settop(L, 1) } else { lua_pushnil(L) }
        return 1
    }

    static let getTypeAbort: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let s = Lua.bytes(L, out, 2) else { return 0 }
        let expected = Array(s)
        if Lua.isNoneOrNil(L, 1) {
            return out.error(L, parts: [Array("Type mismatch: name[NULL] expected[".utf8), expected, [UInt8(ascii: "]")]])
        }
        guard let c = Handles.context(f, out, 1) else { return 0 }
        if !Names.equals(c, s) {
            return out.error(L, parts: [Array("Type mismatch: name[".utf8), Names.bytes(c), Array("] expected[".utf8),
                                        expected, [UInt8(ascii: "]")]])
        }
        lua_settop(L, 1)
        return 1
    }

    // MARK: - Tree queries

    static let parent: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let (c, cell) = Handles.resolve(f, out, 1) else { return 0 }
        return Handles.pushOrNil(f, out, Handles.visibleParent(f.S, c, cell))
    }

    static let parentName: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let (c, cell) = Handles.resolve(f, out, 1) else { return 0 }
        guard let p = Handles.visibleParent(f.S, c, cell) else { lua_pushnil(L); return 1 }
        return Names.bytes(p).withUnsafeBytes { Lua.push(L, bytes: $0) } ? 1 : out.rethrow()
    }

    /// The children a Lua user sees: not reference handles (TallocCore skips them), not the ".name"
    /// chunk holding the parent's current name (found by address: O(1) per step).
    @inline(__always)
    static func visibleChild(_ start: TallocContext?, of parent: TallocContext) -> TallocContext? {
        var c = start
        while let x = c, Names.isNameChild(x, of: parent) { c = x.nextSibling }
        return c
    }

    static let children: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard Handles.context(f, out, 1) != nil else { return 0 }
        lua_rawgeti(L, f.extra, -1)  // the iterator
        lua_pushvalue(L, 1)
        lua_pushnil(L)
        return 3
    }

    /// The iterator of children(): (parent, previous) -> next child, newest first. O(1) per step.
    static let nextChild: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let p = Handles.context(f, out, 1) else { return 0 }
        let next: TallocContext?
        if Lua.isNoneOrNil(L, 2) {
            next = visibleChild(p.firstChild, of: p)
        } else {
            guard let prev = Handles.context(f, out, 2) else { return 0 }
            if prev.parent != p { return out.error("children changed while iterating (the previous child moved)") }
            next = visibleChild(prev.nextSibling, of: p)
        }
        return Handles.pushOrNil(f, out, next)
    }

    static let isParent: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let c = Handles.context(f, out, 1), let p = Handles.context(f, out, 2) else { return 0 }
        lua_pushboolean(L, c.isParent(p) ? 1 : 0)
        return 1
    }

    /// find_parent_byname(c, name): c itself or its nearest ancestor so named, within what Lua may see.
    static let findParentByName: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let s = Lua.bytes(L, out, 2) else { return 0 }
        guard let c = Handles.context(f, out, 1) else { return 0 }
        let root = f.S.pointee.root
        var x = c
        while true {
            if Names.equals(x, s) { return Handles.push(f, x) ? 1 : out.rethrow() }
            if let xc = Handles.cell(of: x, f.S), xc.pointee.flags & Int32(LTC_HIDDEN) != 0 { break }
            guard let p = x.parent, p.unsafePointer != root else { break }
            x = p
        }
        lua_pushnil(L)
        return 1
    }

    static func integerQuery(_ L: LuaState, _ out: Out, _ fn: (TallocContext) -> Int) -> Int32 {
        guard let c = Handles.context(ModuleState.frame(L, out), out, 1) else { return 0 }
        lua_pushinteger(L, lua_Integer(fn(c)))
        return 1
    }

    static let getSize: clua_Body = { L, out in integerQuery(L, out) { $0.size } }
    static let totalSize: clua_Body = { L, out in integerQuery(L, out) { $0.totalSize } }
    static let totalBlocks: clua_Body = { L, out in integerQuery(L, out) { $0.totalBlocks } }

    // MARK: - Reports, limits, pools, pictures

    /// The `addresses` option of report/report_full at stack index `i` (read first: `__index` may run).
    static func addressesOption(_ L: LuaState, _ out: Out, _ i: Int32) -> Bool? {
        var addresses = true
        if !Lua.isNoneOrNil(L, i) {
            guard lua_type(L, i) == LUA_TTABLE else { _ = Lua.typeError(L, out, i, "table"); return nil }
            guard clua_getfield(L, i, "addresses") == LUA_OK else { _ = out.rethrow(); return nil }
            if lua_type(L, -1) != LUA_TNIL { addresses = lua_toboolean(L, -1) != 0 }
            clua_pop(L, 1)
        }
        return addresses
    }

    static func reportBody(_ L: LuaState, _ out: Out, full: Bool) -> Int32 {
        let f = ModuleState.frame(L, out)
        guard let addresses = addressesOption(L, out, 2) else { return 0 }
        let target: TallocContext
        if Lua.isNoneOrNil(L, 1) {
            // everything the state made: the runtime's root (Lua's heap and the contexts) when there
            // is one, else the state's top level
            let root = TallocContext(unsafePointer: f.S.pointee.root)
            target = root.parent ?? root
        } else {
            guard let c = Handles.context(f, out, 1) else { return 0 }
            target = c
        }
        return Text.push(f, out) { accountant, sink in
            target.writeReport(depth: 0, maxDepth: full ? -1 : 1, addresses: addresses, accountant: accountant, to: sink)
        }
    }

    static let report: clua_Body = { L, out in reportBody(L, out, full: false) }
    static let reportFull: clua_Body = { L, out in reportBody(L, out, full: true) }

    static let setMemlimit: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let n = Lua.integer(L, out, 2) else { return 0 }
        if n < 0 { return out.argError(2, "limit must not be negative") }
        guard let c = Handles.context(f, out, 1) else { return 0 }
        do throws(TallocError) { try c.setMemoryLimit(n) } catch { return failure(out, error) }
        lua_pushboolean(L, 1)
        return 1
    }

    static let poolInfo: clua_Body = { L, out in
        guard let c = Handles.context(ModuleState.frame(L, out), out, 1) else { return 0 }
        guard let info = c.poolInfo else { lua_pushnil(L); return 1 }
        guard clua_createtable(L, 0, 5) == LUA_OK else { return out.rethrow() }
        for (k, v) in [("capacity", info.capacity), ("used", info.used), ("available", info.available),
                       ("objects", info.objectCount)] {
            lua_pushinteger(L, lua_Integer(v))
            guard clua_setfield(L, -2, k) == LUA_OK else { return out.rethrow() }
        }
        lua_pushboolean(L, info.isFreed ? 1 : 0)
        guard clua_setfield(L, -2, "freed") == LUA_OK else { return out.rethrow() }
        return 1
    }

    static let dot: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        let target: TallocContext
        if Lua.isNoneOrNil(L, 1) {
            let root = TallocContext(unsafePointer: f.S.pointee.root)
            target = root.parent ?? root
        } else {
            guard let c = Handles.context(f, out, 1) else { return 0 }
            target = c
        }
        return Text.push(f, out) { accountant, sink in target.writeDot(accountant: accountant, to: sink) }
    }

    static let poolMap: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let c = Handles.context(f, out, 1) else { return 0 }
        guard let text = PoolMap.render(c) else { lua_pushnil(L); return 1 }
        return Lua.push(L, text) ? 1 : out.rethrow()
    }

    /// is_freed(x): true for a freed context (and for every handle once the state closed); never raises.
    static let isFreed: clua_Body = { L, out in
        guard let S = out.pointee.context?.assumingMemoryBound(to: ltc_State.self) else {
            lua_pushboolean(L, ltc_tocell(L, 1) != nil ? 1 : 0)
            return 1
        }
        let f = Frame(module: L, S)
        if let cell = ltc_tocell_in(L, 1, f.meta) { lua_pushboolean(L, cell.pointee.body == nil ? 1 : 0) } else { lua_pushboolean(L, 0) }
        return 1
    }

    // MARK: - Metamethods

    static let tostring: clua_Body = { L, out in
        guard let cell = ltc_tocell(L, 1) else { return Lua.typeError(L, out, 1, "talloc.context") }
        guard out.pointee.context != nil, let body = cell.pointee.body else {
            return Lua.push(L, "talloc.context (freed)") ? 1 : out.rethrow()
        }
        let c = TallocContext(unsafePointer: body)
        var text = Array("talloc.context '".utf8)
        text += Names.bytes(c)
        text += Array("' (\(c.size) bytes) 0x\(String(UInt(bitPattern: body), radix: 16))".utf8)
        return text.withUnsafeBytes { Lua.push(L, bytes: $0) } ? 1 : out.rethrow()
    }

    /// __gc: when the last userdata of a top-level context goes, the context is freed (unless the host
    /// lent it, or a destructor refused once already); a child is left to its parent.
    static let gc: clua_Body = { L, out in
        guard let S = out.pointee.context?.assumingMemoryBound(to: ltc_State.self) else {
            // the state is closed: its cells are gone with it; only let go of the pointer
            if ltc_tocell(L, 1) != nil { ltc_dropcell(L, 1) }
            return 0
        }
        let f = Frame(module: L, S)
        guard let cell = ltc_tocell_in(L, 1, f.meta), ltc_isdead(cell) == 0 else { return 0 }
        ltc_dropcell(L, 1)  // a second __gc finds the dead cell
        // this userdata's count is given back at the end: the cell must outlive the free below
        defer {
            cell.pointee.uds -= 1
            Handles.release(S, cell)
        }
        guard cell.pointee.uds <= 1, let body = cell.pointee.body else { return 0 }
        let c = TallocContext(unsafePointer: body)
        let flags = cell.pointee.flags
        guard c.parent?.unsafePointer == S.pointee.root, flags & Int32(LTC_LENT | LTC_REFUSED) == 0, !c.isBeingFreed else {
            return 0
        }
        S.pointee.inGC += 1
        try? c.free()
        S.pointee.inGC -= 1
        if ModuleState.takeError(f) { clua_pop(L, 1) }
        if cell.pointee.body != nil {
            // refused (a destructor, or references): it stays until the state closes, and the collector
            // does not try again
            cell.pointee.flags |= Int32(LTC_REFUSED)
        }
        return 0
    }

    /// __close: frees like `free`; a refusal is not an error, a destructor's error is.
    static let close: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let cell = ltc_tocell_in(L, 1, f.meta), let body = cell.pointee.body else { return 0 }
        try? TallocContext(unsafePointer: body).free()
        if ModuleState.takeError(f) { return out.rethrow() }
        return 0
    }
}
