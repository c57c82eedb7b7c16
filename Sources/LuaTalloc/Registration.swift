// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// The registration table, as the Lua standard libraries keep theirs (liolib's iolib[], meth[],
// metameth[]): every function is a module function and, since it takes a context first, a method too.

import CLua
import CLuaShims
import TallocCore

public enum LuaTallocModule {
    private static let moduleAndMethod: Int32 = 1 | 2
    private static let meta: Int32 = 4

    private static func reg(_ name: StaticString, _ body: clua_Body, creates: Bool = false, where w: Int32 = 1 | 2) -> ltc_Reg {
        ltc_Reg(name: UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self), body: body,
                creates: creates ? 1 : 0, where: w)
    }

    private static let functions: [ltc_Reg] = [
        reg("new", TallocModule.new, creates: true),
        reg("size", TallocModule.size, creates: true),
        reg("zero", TallocModule.zero, creates: true),
        reg("pool", TallocModule.pool, creates: true),
        reg("pooled_object", TallocModule.pooledObject, creates: true),
        reg("strdup", TallocModule.strdup, creates: true),
        reg("strndup", TallocModule.strndup, creates: true),
        reg("asprintf", TallocModule.asprintf, creates: true),
        reg("memdup", TallocModule.memdup, creates: true),
        reg("strdup_append", TallocModule.strdupAppend),
        reg("asprintf_append", TallocModule.asprintfAppend),
        reg("realloc", TallocModule.realloc),
        reg("free", TallocModule.free),
        reg("free_children", TallocModule.freeChildren),
        reg("steal", TallocModule.steal),
        reg("reparent", TallocModule.reparent),
        reg("reference", TallocModule.reference),
        reg("unlink", TallocModule.unlink),
        reg("reference_count", TallocModule.referenceCount),
        reg("set_destructor", TallocModule.setDestructor),
        reg("set_name", TallocModule.setName),
        reg("get_name", TallocModule.getName),
        reg("check_name", TallocModule.checkName),
        reg("set_type", TallocModule.setType),
        reg("get_type", TallocModule.getType),
        reg("get_type_abort", TallocModule.getTypeAbort),
        reg("parent", TallocModule.parent),
        reg("parent_name", TallocModule.parentName),
        reg("children", TallocModule.children),
        reg("_next_child", TallocModule.nextChild, where: 1),
        reg("is_parent", TallocModule.isParent),
        reg("find_parent_byname", TallocModule.findParentByName),
        reg("get_size", TallocModule.getSize),
        reg("total_size", TallocModule.totalSize),
        reg("total_blocks", TallocModule.totalBlocks),
        reg("report", TallocModule.report),
        reg("report_full", TallocModule.reportFull),
        reg("set_memlimit", TallocModule.setMemlimit),
        reg("pool_info", TallocModule.poolInfo),
        reg("dot", TallocModule.dot),
        reg("pool_map", TallocModule.poolMap),
        reg("is_freed", TallocModule.isFreed),
        // memory access: methods only
        reg("read", MemoryAccess.read, where: 2),
        reg("write", MemoryAccess.write, where: 2),
        reg("fill", MemoryAccess.fill, where: 2),
        reg("pack", MemoryAccess.pack, where: 2),
        reg("unpack", MemoryAccess.unpack, where: 2),
        reg("string", MemoryAccess.string, where: 2),
        // metamethods
        reg("__gc", TallocModule.gc, where: 4),
        reg("__close", TallocModule.close, where: 4),
        reg("__tostring", TallocModule.tostring, where: 4),
    ]

    /// Builds the module in `L`, its top-level contexts hanging under `root` (a context the caller keeps
    /// alive for the state's life; with `ownsRoot` the module frees it when the state closes). With
    /// `setGlobal` the module is also the global `talloc`; it is always `require "talloc"`-able.
    ///
    /// Returns a Lua status; on success the module table is on the top of the stack, on failure the
    /// error object.
    public static func open(_ L: LuaState, root: TallocContext, ownsRoot: Bool, setGlobal: Bool) -> Int32 {
        let status = functions.withUnsafeBufferPointer { regs in
            ltc_openlib(L, regs.baseAddress, Int32(regs.count), root.unsafePointer, ownsRoot ? 1 : 0, ModuleState.close)
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
        functions.filter { $0.where & 1 != 0 }.map { String(cString: $0.name) }
    }
}
