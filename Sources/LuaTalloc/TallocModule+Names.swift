// luatalloc — the `talloc` Lua module: names and types
// SPDX-License-Identifier: MIT
//
// See TallocModule.swift for the rules every body follows.

import CLua
import CLuaShims
import Glibc
import TallocCore

extension TallocModule {
    // MARK: - Names and types

    /// set_name(c, name): talloc_set_name: the name is copied into a new ".name" child (counted in
    /// total_blocks and by memory limits, as talloc's).
    static let setName: clua_Body = { L, out in
        let f = ModuleState.frame(L, out)
        guard let s = Lua.bytes(L, out, 2) else { return 0 }
        guard let (c, cell) = Handles.resolve(f, out, 1) else { return 0 }
        do throws(TallocError) { try c.setName(bytes: s) } catch { return out.fail(f.S, error) }
        ModuleState.nameChanged(f.S, cell, c)
        lua_settop(L, 2)
        return 1
    }

    static let getName: clua_Body = { L, out in
        guard let c = Handles.context(ModuleState.frame(L, out), out, 1) else { return 0 }
        var text = TextPieces(out)
        text.addName(of: c)
        return text.returnText()
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
        if !ModuleState.setNameInterned(f.S, c, cell, b) { return outOfMemory(f.S, out) }
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
        // the expected name, every byte (a number is now a string in place, on the stack until the text is made)
        guard let s = Lua.bytes(L, out, 2) else { return 0 }
        var text = TextPieces(out)
        if Lua.isNoneOrNil(L, 1) {
            text.add("Type mismatch: name[NULL] expected[")
            text.add(s.baseAddress, s.count)
            text.add("]")
            return text.raise()
        }
        guard let c = Handles.context(f, out, 1) else { return 0 }
        if !Names.equals(c, s) {
            text.add("Type mismatch: name[")
            text.addName(of: c)
            text.add("] expected[")
            text.add(s.baseAddress, s.count)
            text.add("]")
            return text.raise()
        }
        lua_settop(L, 1)
        return 1
    }
}
