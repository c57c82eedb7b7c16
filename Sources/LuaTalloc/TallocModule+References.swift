// luatalloc — the `talloc` Lua module: references and destructors
// SPDX-License-Identifier: MIT
//
// See TallocModule.swift for the rules every body follows.

import CLua
import CLuaShims
import Glibc
import TallocCore

extension TallocModule {
    static let reference: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let parent = Handles.parent(f, out, 1), let c = Handles.context(f, out, 2) else { return 0 }
        // closing: no new chunk, and no reference that would keep a context of Lua's alive in another tree
        if f.S.pointee.closing != 0 { return out.error("talloc: the Lua state is closing: no new references") }
        do throws(TallocError) { try c.reference(from: parent) } catch { return out.fail(f.S, error) }
        lua_settop(L, 2)
        return 1
    }

    static let unlink: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let parent = Handles.parent(f, out, 1), let c = Handles.context(f, out, 2) else { return 0 }
        do throws(TallocError) { try c.unlink(from: parent) } catch {
            return Refusal.push(f, out, error)
        }
        if Refusal.destructorFailed(f, out) { return 0 }
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
}
