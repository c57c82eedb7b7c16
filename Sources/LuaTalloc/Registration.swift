// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// The registration table, as the Lua standard libraries keep theirs (liolib's iolib[], meth[],
// metameth[]): every function is a module function and, since it takes a context first, a method too.

import CLua
import CLuaShims
import TallocCore

/// The `talloc` Lua module itself: what `require "talloc"` (`luaopen_talloc`) and a `LuaRuntime` open in a
/// Lua state. Hosts use it through `LuaRuntime`; `open` is for a program that makes its own `lua_State`.
public enum LuaTallocModule {
    /// Where a function of the module goes (`ltc_Reg.where`, read by ltc_openlib): the module table, the
    /// methods of contexts (`__index`), the metatable, or the module's hidden helpers (`extra[-1]`).
    struct Placement: OptionSet {
        let rawValue: Int32
        /// `talloc.NAME`.
        static let module = Placement(rawValue: 1)
        /// `c:NAME()`.
        static let method = Placement(rawValue: 2)
        /// A metamethod of contexts (`__gc`, `__close`, `__tostring`).
        static let metamethod = Placement(rawValue: 4)
        /// A helper the module's own Lua code reaches (the `children` iterator's step).
        static let hidden = Placement(rawValue: 8)
        /// The usual: a function taking a context first is also its method.
        static let moduleAndMethod: Placement = [.module, .method]
    }

    private static func reg(_ name: StaticString, _ body: clua_Body, _ kind: Int32 = LTC_PLAIN,
                            where w: Placement = .moduleAndMethod) -> ltc_Reg {
        ltc_Reg(name: UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self), body: body,
                kind: kind, where: w.rawValue)
    }
    private static let creates = Int32(LTC_CREATES)

    // (nonisolated(unsafe): C records of constant names and function pointers, never written)
    // Functions that change a tree go through `Traced` (TallocModule+Trace.swift), which records them
    // when the thread has a trace writer; pools keep statistics (`PoolStatistics`).
    nonisolated(unsafe) private static let functions: [ltc_Reg] = [  // guarded: immutable (a let, never written)
        reg("new", Traced.new, creates),
        reg("size", Traced.size, creates),
        reg("zero", Traced.zero, creates),
        reg("pool", Traced.pool, creates),
        reg("pooled_object", Traced.pooledObject, creates),
        reg("strdup", Traced.strdup, creates),
        reg("strndup", Traced.strndup, creates),
        reg("asprintf", Traced.asprintf, LTC_FORMATS),
        reg("memdup", Traced.memdup, creates),
        reg("strdup_append", Traced.strdupAppend),
        reg("asprintf_append", Traced.asprintfAppend, LTC_APPENDS),
        reg("realloc", Traced.realloc),
        reg("free", Traced.free),
        reg("free_children", Traced.freeChildren),
        reg("steal", Traced.steal),
        reg("reparent", Traced.reparent),
        reg("reference", Traced.reference),
        reg("unlink", Traced.unlink),
        reg("reference_count", TallocModule.referenceCount),
        reg("set_destructor", TallocModule.setDestructor),
        reg("set_name", Traced.setName),
        reg("get_name", TallocModule.getName),
        reg("check_name", TallocModule.checkName),
        reg("set_type", TallocModule.setType),
        reg("get_type", TallocModule.getType),
        reg("get_type_abort", TallocModule.getTypeAbort),
        reg("parent", TallocModule.parent),
        reg("parent_name", TallocModule.parentName),
        reg("children", TallocModule.children, Int32(LTC_ITERATES)),
        reg("_next_child", TallocModule.nextChild, where: .hidden),  // the iterator children() returns
        reg("is_parent", TallocModule.isParent),
        reg("find_parent_byname", TallocModule.findParentByName),
        reg("get_size", TallocModule.getSize),
        reg("total_size", TallocModule.totalSize),
        reg("total_blocks", TallocModule.totalBlocks),
        reg("report", TallocModule.report),
        reg("report_full", TallocModule.reportFull),
        reg("set_memlimit", Traced.setMemlimit),
        reg("pool_info", TallocModule.poolInfo),
        reg("dot", TallocModule.dot),
        reg("pool_map", TallocModule.poolMap),
        reg("pool_stats", PoolStatistics.stats),
        reg("pool_advice", PoolStatistics.advice),
        reg("is_freed", TallocModule.isFreed, LTC_NOSTATE),
        // memory access
        reg("read", MemoryAccess.read),
        reg("write", MemoryAccess.write),
        reg("fill", MemoryAccess.fill),
        reg("pack", MemoryAccess.pack, LTC_PACKS),
        reg("unpack", MemoryAccess.unpack, LTC_UNPACKS),
        reg("string", MemoryAccess.string),
        // metamethods
        reg("__gc", Traced.gc, LTC_FINALIZES, where: .metamethod),
        reg("__close", Traced.close, where: .metamethod),
        reg("__tostring", TallocModule.tostring, LTC_NOSTATE, where: .metamethod),
    ]

    /// Builds the module in `L`, its top-level contexts hanging under `root` (a context the caller keeps
    /// alive for the state's life; with `ownsRoot` the module frees it when the state closes). With
    /// `setGlobal` the module is also the global `talloc`; it is always `require "talloc"`-able.
    ///
    /// Returns a Lua status; on success the module table is on the top of the stack, on failure the
    /// error object.
    /// `account` (an external-size context, e.g. the runtime's Lua heap) is charged for the module's own
    /// memory (handle cells, side records, names, report text), so that a memory limit above it bounds
    /// everything the module allocates for a script. `collect` is where the runtime's allocator asks for a
    /// collection when memory runs out (the module runs it at its next safe point); nil: the module's own.
    public static func open(_ L: LuaState, root: TallocContext, ownsRoot: Bool, setGlobal: Bool,
                            account: TallocContext? = nil, collect: UnsafeMutablePointer<ltc_Collect>? = nil) -> Int32 {
        let status = functions.withUnsafeBufferPointer { regs in
            ltc_openlib(L, regs.baseAddress!, Int32(regs.count), root.unsafePointer, ownsRoot ? 1 : 0,
                        account?.unsafePointer, collect, ModuleState.charge, ModuleState.takeWork, ModuleState.close)
        }
        if status != LUA_OK { return status }
        lua_pushvalue(L, -1)
        let s2 = ltc_preload(L, setGlobal ? 1 : 0)
        if s2 != LUA_OK {
            lua_rotate(L, -2, 1)
            clua_pop(L, 1)
            return s2
        }
        return LUA_OK
    }

    /// The names of the module's functions (for documentation and tests).
    public static var functionNames: [String] {
        functions.filter { Placement(rawValue: $0.where).contains(.module) }.map { String(cString: $0.name) }
    }
}
