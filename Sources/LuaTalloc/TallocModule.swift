// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// One body per Lua function (DESIGN §3). Bodies use only '-' API calls and protected helpers, and
// report failures through the outcome, so a Lua error never unwinds a Swift frame (DESIGN §4).

import CLua
import CLuaShims
import Glibc
import TallocCore

enum TallocModule {
    // MARK: - Creation (the trampoline made the handle: it is on the top of the stack)

    /// The new handle, at index 1 (the arguments follow it: argument n is at index n + 1), gets `c`;
    /// returns 1 (the handle).
    @inline(__always)
    static func created(_ L: LuaState, _ S: StatePtr, _ c: TallocContext) -> Int32 {
        lua_settop(L, 1)
        Handles.attach(L, S, 1, c)
        return 1
    }

    /// Runs an allocation; when it fails for memory, collects garbage once — with finalizers, so contexts
    /// whose handles became garbage give their memory back (Lua's emergency collections run none) — and
    /// tries again. The arguments and the new handle are on the stack, so the collection keeps them.
    @inline(__always)
    static func allocating<T>(_ L: LuaState, _ body: () throws(TallocError) -> T) throws(TallocError) -> T {
        do {
            return try body()
        } catch .outOfMemory {
            _ = clua_gc(L, LUA_GCCOLLECT)
            return try body()
        }
    }

    static func failure(_ L: LuaState, _ out: Out, _ e: TallocError) -> Int32 {
        switch e {
        case .outOfMemory: return out.error("not enough memory")
        case .sizeTooLarge: return out.error("size too large (talloc allocations are below 256 MiB)")
        default: return out.error(e.description)
        }
    }

    /// Optional name argument: a copy owned by the chunk (talloc_named_const semantics).
    static func applyName(_ L: LuaState, _ out: Out, _ n: Int32, _ c: TallocContext, default talloc_new: Bool) -> Bool {
        if Lua.isNoneOrNil(L, n + 1) {
            ModuleState.nameByCaller(L, ModuleState.enter(L, out), c, talloc_new: talloc_new)
            return true
        }
        guard let b = Lua.bytes(L, out, n + 1, arg: n) else { return false }
        if !c.setNameCopy(b) { _ = out.error("not enough memory"); return false }
        return true
    }

    static let new: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let parent = Handles.parent(L, out, 2, S, arg: 1) else { return 0 }
        if !Lua.isNoneOrNil(L, 3), Lua.bytes(L, out, 3, arg: 2) == nil { return 0 }
        do throws(TallocError) {
            let c = try allocating(L) { () throws(TallocError) in try TallocContext.allocateUnnamed(parent: parent, byteCount: 0) }
            if !applyName(L, out, 2, c, default: true) { try? c.free(); return 0 }
            return created(L, S, c)
        } catch { return failure(L, out, error) }
    }

    static func sized(_ L: LuaState, _ out: Out) -> Int32 {
        let S = ModuleState.enter(L, out)
        guard let parent = Handles.parent(L, out, 2, S, arg: 1) else { return 0 }
        guard let n = Lua.integer(L, out, 3, arg: 2) else { return 0 }
        if n < 0 { return out.argError(2, "size must not be negative") }
        if !Lua.isNoneOrNil(L, 4), Lua.bytes(L, out, 4, arg: 3) == nil { return 0 }
        do throws(TallocError) {
            // Zero-filled: Lua never sees uninitialised bytes (DESIGN §8).
            let c = try allocating(L) { () throws(TallocError) in try TallocContext.allocateUnnamed(parent: parent, byteCount: n) }
            memset(c.unsafePointer, 0, n)
            if !applyName(L, out, 3, c, default: false) { try? c.free(); return 0 }
            return created(L, S, c)
        } catch { return failure(L, out, error) }
    }

    static let size: clua_Body = { L, out in sized(L!, out!) }
    static let zero: clua_Body = { L, out in sized(L!, out!) }

    static let pool: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let parent = Handles.parent(L, out, 2, S, arg: 1) else { return 0 }
        guard let n = Lua.integer(L, out, 3, arg: 2) else { return 0 }
        if n < 0 { return out.argError(2, "size must not be negative") }
        do throws(TallocError) {
            return created(L, S, try allocating(L) { () throws(TallocError) in try TallocContext.pool(parent: parent, capacity: n) })
        }
        catch { return failure(L, out, error) }
    }

    static let pooledObject: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let parent = Handles.parent(L, out, 2, S, arg: 1) else { return 0 }
        guard let size = Lua.integer(L, out, 3, arg: 2), let count = Lua.integer(L, out, 4, arg: 3),
              let bytes = Lua.integer(L, out, 5, arg: 4) else { return 0 }
        if size < 0 { return out.argError(2, "size must not be negative") }
        if count < 0 { return out.argError(3, "count must not be negative") }
        if bytes < 0 { return out.argError(4, "size must not be negative") }
        if !Lua.isNoneOrNil(L, 6), Lua.bytes(L, out, 6, arg: 5) == nil { return 0 }
        do throws(TallocError) {
            let c = try TallocContext.pooledObject(parent: parent, byteCount: size, name: "", subobjects: count, subobjectBytes: bytes)
            memset(c.unsafePointer, 0, size)
            if !applyName(L, out, 5, c, default: false) { try? c.free(); return 0 }
            return created(L, S, c)
        } catch { return failure(L, out, error) }
    }

    static let strdup: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let parent = Handles.parent(L, out, 2, S, arg: 1) else { return 0 }
        guard let s = Lua.bytes(L, out, 3, arg: 2) else { return 0 }
        do throws(TallocError) {
            return created(L, S, try allocating(L) { () throws(TallocError) in try TallocContext.strdup(parent: parent, bytes: s) })
        }
        catch { return failure(L, out, error) }
    }

    static let strndup: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let parent = Handles.parent(L, out, 2, S, arg: 1) else { return 0 }
        guard let s = Lua.bytes(L, out, 3, arg: 2), let n = Lua.integer(L, out, 4, arg: 3) else { return 0 }
        if n < 0 { return out.argError(3, "length must not be negative") }
        let cut = UnsafeRawBufferPointer(rebasing: s[0..<min(n, s.count)])
        do throws(TallocError) { return created(L, S, try TallocContext.strdup(parent: parent, bytes: cut)) }
        catch { return failure(L, out, error) }
    }

    /// string.format over the arguments from `first` on (protected); the result replaces nothing: it is
    /// pushed. False with the error object on the top when formatting failed.
    static func format(_ L: LuaState, from first: Int32) -> Bool {
        let n = lua_gettop(L) - first + 1
        guard lua_checkstack(L, n + 2) != 0 else { return false }
        for i in first..<(first + n) { lua_pushvalue(L, i) }
        return ltc_format(L, n) == LUA_OK
    }

    static let asprintf: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let parent = Handles.parent(L, out, 2, S, arg: 1) else { return 0 }
        if Lua.bytes(L, out, 3, arg: 2) == nil { return 0 }
        let handle = lua_gettop(L)  // the trampoline's new handle
        guard format(L, from: 3) else { return out.rethrow() }
        guard let s = Lua.bytes(L, out, -1) else { return 0 }
        do throws(TallocError) {
            let c = try TallocContext.strdup(parent: parent, bytes: s)
            return created(L, S, c)
        } catch { return failure(L, out, error) }
    }

    static let memdup: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let parent = Handles.parent(L, out, 2, S, arg: 1) else { return 0 }
        let src: UnsafeRawBufferPointer
        if lua_type(L, 3) == LUA_TSTRING {
            src = Lua.bytes(L, out, 3, arg: 2)!
        } else if ltc_tobox(L, 3) != nil {
            guard let c = Handles.context(L, out, 3, arg: 2) else { return 0 }
            src = UnsafeRawBufferPointer(c.unsafeMutableBytes)
        } else {
            return Lua.typeError(L, out, 3, "string or talloc.context", arg: 2)
        }
        do throws(TallocError) {
            let c = try TallocContext.allocateUnnamed(parent: parent, byteCount: src.count)
            if src.count > 0 { memcpy(c.unsafePointer, src.baseAddress!, src.count) }
            ModuleState.nameByCaller(L, ModuleState.enter(L, out), c, talloc_new: false)
            return created(L, S, c)
        } catch { return failure(L, out, error) }
    }

    // MARK: - Strings that grow

    static func appendBody(_ L: LuaState, _ out: Out, formatting: Bool) -> Int32 {
        let S = ModuleState.enter(L, out)
        guard var c = Handles.context(L, out, 1) else { return 0 }
        guard Lua.bytes(L, out, 2) != nil else { return 0 }
        if formatting {
            guard format(L, from: 2) else { return out.rethrow() }
        } else {
            lua_pushvalue(L, 2)
        }
        guard let s = Lua.bytes(L, out, -1) else { return 0 }
        if formatting && s.count == 0 { lua_settop(L, 1); return 1 }  // talloc: empty output, unchanged
        do throws(TallocError) {
            try c.appendString(bytes: s, atBufferEnd: false)
        } catch {
            return failure(L, out, error)
        }
        _ = S
        lua_settop(L, 1)
        return 1  // the same handle, even if the memory moved
    }

    static let strdupAppend: clua_Body = { L, out in appendBody(L!, out!, formatting: false) }
    static let asprintfAppend: clua_Body = { L, out in appendBody(L!, out!, formatting: true) }

    static let realloc: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard var c = Handles.context(L, out, 1) else { return 0 }
        guard let n = Lua.integer(L, out, 2) else { return 0 }
        if n < 0 { return out.argError(2, "size must not be negative") }
        if n == 0 {
            // talloc_realloc(parent, c, 0): unlink from its parent, which frees it
            do throws(TallocError) { try c.unlink(from: c.parent) } catch {
                if ModuleState.takeError(L, S) { return out.rethrow() }
                lua_pushnil(L)
                Lua.push(L, "the free was refused (\(error))")
                return 2
            }
            if ModuleState.takeError(L, S) { return out.rethrow() }
            lua_pushnil(L)
            return 1
        }
        do throws(TallocError) {
            try c.resize(byteCount: n, zeroFill: true)
        } catch .referenced {
            return out.error("cannot reallocate a referenced context")
        } catch .isPool {
            return out.error("cannot reallocate a pool")
        } catch .beingFreed {
            return out.error("cannot reallocate a context that is being freed")
        } catch {
            return failure(L, out, error)
        }
        lua_settop(L, 1)
        return 1
    }

    // MARK: - Free

    static let free: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1) else { return 0 }
        do throws(TallocError) {
            try c.free()
        } catch {
            if ModuleState.takeError(L, S) { return out.rethrow() }
            lua_pushboolean(L, 0)
            switch error {
            case .hasReferences: Lua.push(L, "the context has references (\(c.referenceCount)); unlink them first")
            case .destructorRefused: Lua.push(L, "a destructor refused the free")
            default: Lua.push(L, error.description)
            }
            return 2
        }
        if ModuleState.takeError(L, S) { return out.rethrow() }
        lua_pushboolean(L, 1)
        return 1
    }

    static let freeChildren: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1) else { return 0 }
        c.freeChildren()
        if ModuleState.takeError(L, S) { return out.rethrow() }
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
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let parent = Handles.parent(L, out, 1, S) else { return 0 }
        guard let c = Handles.context(L, out, 2) else { return 0 }
        do throws(TallocError) { try c.steal(to: parent) } catch { return hierarchyError(out, error) }
        lua_settop(L, 2)
        return 1
    }

    static let reparent: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let old = Handles.parent(L, out, 1, S), let new = Handles.parent(L, out, 2, S) else { return 0 }
        guard let c = Handles.context(L, out, 3) else { return 0 }
        do throws(TallocError) { try c.reparent(from: old, to: new) } catch .notAParent {
            lua_pushnil(L)
            Lua.push(L, "not a parent of the context")
            return 2
        } catch { return hierarchyError(out, error) }
        lua_settop(L, 3)
        return 1
    }

    static let reference: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let parent = Handles.parent(L, out, 1, S) else { return 0 }
        guard let c = Handles.context(L, out, 2) else { return 0 }
        do throws(TallocError) { try c.reference(from: parent) } catch { return failure(L, out, error) }
        lua_settop(L, 2)
        return 1
    }

    static let unlink: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let parent = Handles.parent(L, out, 1, S) else { return 0 }
        guard let c = Handles.context(L, out, 2) else { return 0 }
        do throws(TallocError) { try c.unlink(from: parent) } catch {
            if ModuleState.takeError(L, S) { return out.rethrow() }
            lua_pushboolean(L, 0)
            Lua.push(L, error == .notAParent ? "not a parent of the context" : "a destructor refused the free")
            return 2
        }
        if ModuleState.takeError(L, S) { return out.rethrow() }
        lua_pushboolean(L, 1)
        return 1
    }

    static let referenceCount: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1) else { return 0 }
        lua_pushinteger(L, lua_Integer(c.referenceCount))
        return 1
    }

    static let setDestructor: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1) else { return 0 }
        let slot = Int(ltc_tobox(L, 1)!.pointee.slot)
        if Lua.isNoneOrNil(L, 2) {
            ltc_clearslot(L, ltc_upvalue(LTC_UPV_EXTRA), lua_Integer(slot))
            c.unsafeSetDestructor(nil, context: nil)
            return 0
        }
        guard lua_type(L, 2) == LUA_TFUNCTION else { return Lua.typeError(L, out, 2, "function") }
        lua_pushinteger(L, lua_Integer(slot))
        lua_pushvalue(L, 2)
        guard ltc_rawset(L, ltc_upvalue(LTC_UPV_EXTRA)) == LUA_OK else { return out.rethrow() }
        if !c.unsafeSetDestructor(ModuleState.destructor, context: UnsafeMutableRawPointer(S)) {
            return out.error("not enough memory")
        }
        return 0
    }

    // MARK: - Names and types

    static let setName: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1), let s = Lua.string(L, out, 2) else { return 0 }
        do throws(TallocError) { try c.setName(s) } catch { return failure(L, out, error) }
        lua_settop(L, 2)
        return 1
    }

    static let getName: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1) else { return 0 }
        return Lua.push(L, c.name) ? 1 : out.rethrow()
    }

    static let checkName: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1), let s = Lua.string(L, out, 2) else { return 0 }
        lua_pushboolean(L, c.checkName(s) ? 1 : 0)
        return 1
    }

    static let setType: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1), let b = Lua.bytes(L, out, 2) else { return 0 }
        if !c.setNameCopy(b) { return out.error("not enough memory") }
        return 0
    }

    static let getType: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1), let s = Lua.string(L, out, 2) else { return 0 }
        if c.checkName(s) { lua_settop(L, 1) } else { lua_pushnil(L) }
        return 1
    }

    static let getTypeAbort: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let s = Lua.string(L, out, 2) else { return 0 }
        if Lua.isNoneOrNil(L, 1) { return out.error("Type mismatch: name[NULL] expected[\(s)]") }
        guard let c = Handles.context(L, out, 1) else { return 0 }
        if !c.checkName(s) { return out.error("Type mismatch: name[\(c.name)] expected[\(s)]") }
        lua_settop(L, 1)
        return 1
    }

    // MARK: - Tree queries

    static func pushOrNil(_ L: LuaState, _ out: Out, _ c: TallocContext?, _ S: StatePtr) -> Int32 {
        guard let c else { lua_pushnil(L); return 1 }
        return Handles.push(L, c, S) ? 1 : out.rethrow()
    }

    static let parent: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1) else { return 0 }
        return pushOrNil(L, out, Handles.visibleParent(c, S), S)
    }

    static let parentName: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1) else { return 0 }
        guard let p = Handles.visibleParent(c, S) else { lua_pushnil(L); return 1 }
        return Lua.push(L, p.name) ? 1 : out.rethrow()
    }

    /// The children a Lua user sees: not reference handles, not the ".name" chunk holding the name.
    static func visibleChild(_ start: TallocContext?, of parent: TallocContext) -> TallocContext? {
        var c = start
        let nameChild = parent.isNamedByContents ? nil : nameChunk(of: parent)
        while let x = c, x == nameChild { c = x.nextSibling }
        return c
    }

    static func nameChunk(of c: TallocContext) -> TallocContext? {
        var x = c.firstChild
        let name = c.name
        while let y = x {
            if y.checkName(".name") && y.stringValue == name && y.isNamedByContents == false { return y }
            x = y.nextSibling
        }
        return nil
    }

    static let children: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard Handles.context(L, out, 1) != nil else { return 0 }
        lua_rawgeti(L, ltc_upvalue(LTC_UPV_EXTRA), -1)  // the iterator
        lua_pushvalue(L, 1)
        lua_pushnil(L)
        return 3
    }

    /// The iterator of children(): (parent, previous) -> next child, newest first.
    static let nextChild: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let p = Handles.context(L, out, 1) else { return 0 }
        let next: TallocContext?
        if Lua.isNoneOrNil(L, 2) {
            next = visibleChild(p.firstChild, of: p)
        } else {
            guard let prev = Handles.context(L, out, 2) else { return 0 }
            if prev.parent != p { return out.error("children changed while iterating (the previous child moved)") }
            next = visibleChild(prev.nextSibling, of: p)
        }
        return pushOrNil(L, out, next, S)
    }

    static let isParent: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1), let p = Handles.context(L, out, 2) else { return 0 }
        lua_pushboolean(L, c.isParent(p) ? 1 : 0)
        return 1
    }

    static let findParentByName: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1), let s = Lua.string(L, out, 2) else { return 0 }
        var found = c.findParent(byName: s)
        if found?.unsafePointer == S.pointee.root { found = nil }
        return pushOrNil(L, out, found, S)
    }

    static func integerQuery(_ L: LuaState, _ out: Out, _ f: (TallocContext) -> Int) -> Int32 {
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1) else { return 0 }
        lua_pushinteger(L, lua_Integer(f(c)))
        return 1
    }

    static let getSize: clua_Body = { L, out in integerQuery(L!, out!) { $0.size } }
    static let totalSize: clua_Body = { L, out in integerQuery(L!, out!) { $0.totalSize } }
    static let totalBlocks: clua_Body = { L, out in integerQuery(L!, out!) { $0.totalBlocks } }

    // MARK: - Reports, limits, pools, pictures

    static func reportBody(_ L: LuaState, _ out: Out, full: Bool) -> Int32 {
        let S = ModuleState.enter(L, out)
        var addresses = true
        if !Lua.isNoneOrNil(L, 2) {
            guard lua_type(L, 2) == LUA_TTABLE else { return Lua.typeError(L, out, 2, "table") }
            guard clua_getfield(L, 2, "addresses") == LUA_OK else { return out.rethrow() }
            if lua_type(L, -1) != LUA_TNIL { addresses = lua_toboolean(L, -1) != 0 }
            clua_pop(L, 1)
        }
        let text: String
        if Lua.isNoneOrNil(L, 1) {
            text = allReport(S, full: full, addresses: addresses)
        } else {
            guard let c = Handles.context(L, out, 1) else { return 0 }
            text = full ? c.reportFull(addresses: addresses) : c.report(addresses: addresses)
        }
        return Lua.push(L, text) ? 1 : out.rethrow()
    }

    /// The report of everything the state made: the runtime's root (Lua's heap and the contexts) when
    /// there is one, else each top-level context of this state.
    static func allReport(_ S: StatePtr, full: Bool, addresses: Bool) -> String {
        let root = TallocContext(unsafePointer: S.pointee.root)
        let top = root.parent ?? root
        return full ? top.reportFull(addresses: addresses) : top.report(addresses: addresses)
    }

    static let report: clua_Body = { L, out in reportBody(L!, out!, full: false) }
    static let reportFull: clua_Body = { L, out in reportBody(L!, out!, full: true) }

    static let setMemlimit: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1), let n = Lua.integer(L, out, 2) else { return 0 }
        if n < 0 { return out.argError(2, "limit must not be negative") }
        do throws(TallocError) { try c.setMemoryLimit(n) } catch { return failure(L, out, error) }
        lua_pushboolean(L, 1)
        return 1
    }

    static let poolInfo: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1) else { return 0 }
        guard let info = c.poolInfo else { lua_pushnil(L); return 1 }
        guard clua_createtable(L, 0, 5) == LUA_OK else { return out.rethrow() }
        let fields: [(String, Int)] = [("capacity", info.capacity), ("used", info.used), ("available", info.available),
                                       ("objects", info.objectCount)]
        for (k, v) in fields {
            lua_pushinteger(L, lua_Integer(v))
            guard clua_setfield(L, -2, k) == LUA_OK else { return out.rethrow() }
        }
        lua_pushboolean(L, info.isFreed ? 1 : 0)
        guard clua_setfield(L, -2, "freed") == LUA_OK else { return out.rethrow() }
        return 1
    }

    static let dot: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        let text: String
        if Lua.isNoneOrNil(L, 1) {
            let root = TallocContext(unsafePointer: S.pointee.root)
            text = TallocContext.dot([root.parent ?? root])
        } else {
            guard let c = Handles.context(L, out, 1) else { return 0 }
            text = c.dot()
        }
        return Lua.push(L, text) ? 1 : out.rethrow()
    }

    static let poolMap: clua_Body = { L, out in
        let L = L!, out = out!
        _ = ModuleState.enter(L, out)
        guard let c = Handles.context(L, out, 1) else { return 0 }
        guard let text = PoolMap.render(c) else { lua_pushnil(L); return 1 }
        return Lua.push(L, text) ? 1 : out.rethrow()
    }

    static let isFreed: clua_Body = { L, out in
        let L = L!
        if let b = ltc_tobox(L, 1) { lua_pushboolean(L, b.pointee.body == nil ? 1 : 0) } else { lua_pushboolean(L, 0) }
        return 1
    }

    // MARK: - Metamethods

    static let tostring: clua_Body = { L, out in
        let L = L!, out = out!
        guard let b = ltc_tobox(L, 1) else { return Lua.typeError(L, out, 1, "talloc.context") }
        guard let body = b.pointee.body else { return Lua.push(L, "talloc.context (freed)") ? 1 : out.rethrow() }
        let c = TallocContext(unsafePointer: body)
        let text = "talloc.context '\(c.name)' (\(c.size) bytes) 0x\(String(UInt(bitPattern: body), radix: 16))"
        return Lua.push(L, text) ? 1 : out.rethrow()
    }

    /// __gc: a top-level context no Lua value can reach is freed; a child is left to its parent.
    static let gc: clua_Body = { L, out in
        let L = L!
        let S = ModuleState.enter(L, out!)
        guard let b = ltc_tobox(L, 1) else { return 0 }
        defer {
            // the userdata lets go of its cell (once: a second __gc finds the dead cell)
            ltc_dropcell(L, 1)
            ltc_unref(b)
        }
        let slot = b.pointee.slot
        guard let body = b.pointee.body else {
            // Freed (its slot went with the chunk), superseded by a newer handle (the slot moved to it),
            // or a handle whose creation failed (it still holds its own slot).
            if slot != 0 { ltc_releaseslot(L, slot) }
            return 0
        }
        // Here the cell is the chunk's current handle (Handles.attach keeps that true), so the chunk lives.
        b.pointee.body = nil
        b.pointee.slot = 0
        let c = TallocContext(unsafePointer: body)
        /// The chunk lets go of this cell: no more news of it reaches this handle.
        func detach(keepObserver: Bool) {
            if c.unsafeObserverData == UnsafeMutableRawPointer(b) {
                c.unsafeObserverData = nil
                ltc_unref(b)
            }
            if !keepObserver { c.unsafeSetObserver(nil, context: nil, tag: 0) }
        }
        if Handles.visibleParent(c, S) == nil && !c.isBeingFreed {
            if !c.hasDestructor && c.referenceCount == 0 {
                // The common case: nothing can refuse. This handle is going anyway, so the chunk's own
                // observer has nothing to tell: drop it and give the slot back here.
                detach(keepObserver: false)
                ltc_releaseslot(L, slot)
                try? c.free()
                return 0
            }
            detach(keepObserver: true)
            S.pointee.inGC += 1
            try? c.free()
            S.pointee.inGC -= 1
            _ = ModuleState.takeError(L, S)
            return 0
        }
        // A child belongs to its parent. Keep the slot while a destructor needs it.
        lua_rawgeti(L, ltc_upvalue(LTC_UPV_EXTRA), slot)
        let keep = lua_type(L, -1) == LUA_TFUNCTION
        clua_pop(L, 1)
        detach(keepObserver: keep)
        if !keep {
            ltc_clearslot(L, ltc_upvalue(LTC_UPV_HANDLES), slot)
            ltc_releaseslot(L, slot)
        }
        return 0
    }

    /// __close: frees like `free`; a refusal is not an error, a destructor's error is.
    static let close: clua_Body = { L, out in
        let L = L!, out = out!
        let S = ModuleState.enter(L, out)
        guard let b = ltc_tobox(L, 1), let body = b.pointee.body else { return 0 }
        try? TallocContext(unsafePointer: body).free()
        if ModuleState.takeError(L, S) { return out.rethrow() }
        return 0
    }
}
