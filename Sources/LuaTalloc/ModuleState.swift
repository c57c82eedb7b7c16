// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// Per-state services of the module: default names from the Lua caller's position, Lua destructors run
// under lua_pcall, and closing (everything the state created is freed, refusals overridden).

import CLua
import CLuaShims
import Glibc
import TallocCore

typealias StatePtr = UnsafeMutablePointer<ltc_State>

enum ModuleState {
    /// The state of the running function (a function with the module's upvalues), with the current thread
    /// recorded for observers.
    @inline(__always)
    static func enter(_ L: LuaState) -> StatePtr {
        let S = ltc_state(L)!
        S.pointee.currentL = L
        return S
    }

    /// The state of the running function (the trampoline looked it up and recorded the current thread).
    @inline(__always)
    static func enter(_ L: LuaState, _ out: Out) -> StatePtr {
        if let S = out.pointee.context { return S.assumingMemoryBound(to: ltc_State.self) }
        let S = ltc_state(L)!
        S.pointee.currentL = L
        return S
    }

    // MARK: Default names

    /// Interned "short_src" strings, one per chunk source, kept for the process's life (names point at
    /// them, as talloc's names point at __FILE__ literals).
    private static var interned: [UnsafeRawPointer: UnsafeMutablePointer<CChar>] = [:]
    private static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()
    private static let emptyName = strdup("")!
    private static let newEmptyName = strdup("talloc_new: ")!

    private static func intern(source: UnsafeRawPointer, shortSource: UnsafePointer<CChar>) -> UnsafePointer<CChar> {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        if let p = interned[source], strcmp(p, shortSource) == 0 { return UnsafePointer(p) }
        let copy = strdup(shortSource)!
        interned[source] = copy  // an older copy for a recycled source address stays valid for old names
        return UnsafePointer(copy)
    }

    /// Names `c` after the Lua code that called the module: "FILE:LINE" or "talloc_new: FILE:LINE",
    /// formatted only when read. A C caller (e.g. pcall) gives talloc's name with an empty location.
    static func nameByCaller(_ L: LuaState, _ S: StatePtr, _ c: TallocContext, talloc_new: Bool) {
        var source: UnsafePointer<CChar>? = nil
        var line: Int32 = 0
        var buf = (0 as UInt64, 0 as UInt64, 0 as UInt64, 0 as UInt64, 0 as UInt64, 0 as UInt64, 0 as UInt64, 0 as UInt64)
        withUnsafeMutableBytes(of: &buf) { raw in
            let p = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
            switch ltc_callername(L, S, p, raw.count, &source, &line) {
            case 1:
                // One-entry cache per state: consecutive names from one chunk skip the interning lock.
                c.unsafeSetNameLocation(file: S.pointee.lastFile!, line: Int(line), talloc_new: talloc_new)
            case 2:
                let file = intern(source: UnsafeRawPointer(source!), shortSource: p)
                S.pointee.lastSource = source
                S.pointee.lastFile = file
                c.unsafeSetNameLocation(file: file, line: Int(line), talloc_new: talloc_new)
            default:
                c.unsafeSetNameConst(talloc_new ? newEmptyName : emptyName)
            }
        }
    }

    // MARK: Destructors

    /// The C destructor of every chunk that has a Lua destructor: runs `fn(handle)` in lua_pcall.
    /// `false` refuses; an error refuses too and is kept for the caller of `free` (a warning when the
    /// collector freed). While the state closes, refusals and errors are overridden.
    static let destructor: TallocUnsafeDestructor = { body, context in
        let S = context!.assumingMemoryBound(to: ltc_State.self)
        guard S.pointee.closed == 0, let L = S.pointee.currentL else { return 0 }
        let c = TallocContext(unsafePointer: body)
        guard let tag = c.observerTag else { return 0 }
        guard lua_checkstack(L, 8) != 0 else { return 0 }
        lua_rawgeti(L, ltc_upvalue(LTC_UPV_EXTRA), lua_Integer(tag))
        guard lua_type(L, -1) == LUA_TFUNCTION else { clua_pop(L, 1); return 0 }
        guard Handles.push(L, c, S) else {
            clua_pop(L, 2)  // the function and the error object: out of memory, let it go
            return 0
        }
        let status = ltc_call(L, 1)
        if status != LUA_OK {
            if S.pointee.closing != 0 {
                warn(L, "talloc: error in a destructor while the state closes (ignored): ")
                clua_pop(L, 1)
                return 0
            }
            if S.pointee.inGC > 0 {
                warn(L, "talloc: error in a destructor run by the garbage collector: ")
                clua_pop(L, 1)
                return -1
            }
            if S.pointee.hasError == 0 {
                // key 0 exists since the module opened: this assignment cannot allocate
                ltc_setexisting(L, ltc_upvalue(LTC_UPV_EXTRA), 0)
                S.pointee.hasError = 1
            } else {
                clua_pop(L, 1)
            }
            return -1
        }
        let refuses = lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1) == 0
        clua_pop(L, 1)
        if refuses && S.pointee.closing != 0 {
            lua_warning(L, "talloc: a destructor refused while the state closes (overridden)", 0)
            return 0
        }
        return refuses ? -1 : 0
    }

    /// Warns with `prefix` and the error object on the top (left there).
    static func warn(_ L: LuaState, _ prefix: String) {
        lua_warning(L, prefix, 1)
        if let msg = clua_tostring(L, -1) {
            lua_warning(L, msg, 0)
        } else {
            lua_warning(L, "(error object is a \(Lua.typeName(L, -1)) value)", 0)
        }
    }

    /// After a free: a destructor error kept for this caller is pushed; returns whether there was one.
    static func takeError(_ L: LuaState, _ S: StatePtr) -> Bool {
        guard S.pointee.hasError != 0 else { return false }
        S.pointee.hasError = 0
        lua_rawgeti(L, ltc_upvalue(LTC_UPV_EXTRA), 0)
        lua_pushboolean(L, 0)
        ltc_setexisting(L, ltc_upvalue(LTC_UPV_EXTRA), 0)
        return true
    }

    // MARK: Closing

    /// The state's __gc (it runs last in lua_close): frees every context the state created, running
    /// destructors once more and overriding refusals; then the root itself if the module owns it.
    static let close: ltc_CloseHook = { L, S in
        guard let S, S.pointee.closed == 0 else { return }
        S.pointee.closing = 1
        let root = TallocContext(unsafePointer: S.pointee.root)
        var rounds = 0
        while root.firstChild != nil || root.totalBlocks > 1 {
            root.freeChildren()
            rounds += 1
            if rounds > 8 { break }
        }
        if S.pointee.ownsRoot != 0 {
            S.pointee.closed = 1
            try? root.free()
        }
        S.pointee.closed = 1
    }
}
