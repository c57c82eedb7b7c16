// luatalloc — the embeddable runtime: contexts shared between the host and Lua
// SPDX-License-Identifier: MIT
//
// Ownership (docs/EMBEDDING.md, "Contexts"):
//
// - A context under `contexts` ("lua contexts") is Lua's: the collector frees a top-level one no Lua
//   value reaches, and closing the runtime frees them all. The host may read one it got back
//   (`LuaValue.context`) until Lua runs again.
// - Any other context the host passes to Lua is *lent*. Its handle, and the handle of the top of its
//   tree, are pinned (kept reachable from the registry) so the collector never frees the host's tree.
//   Lua may use the whole tree as talloc lets C code (children, steal, free): lend a context made for
//   the script. When the runtime closes, lent trees stay the host's with what Lua made in them; their
//   handles are emptied and Lua destructors and observers dropped, so nothing points at the closed state.
// - While the runtime is open, the host changes a lent tree only inside `withContexts` (or from a Swift
//   function called by Lua): the module's observer, which empties a handle when its context is freed,
//   runs inside the module.

import CLua
import CLuaShims
import TallocCore

extension LuaRuntime {
    /// Runs `body` inside the `talloc` module, so that what it does to contexts Lua can see (free,
    /// steal, reparent, realloc of a lent context or anything in its tree) reaches Lua's handles: a
    /// context freed here reads as freed in Lua, never as a dangling pointer. Lua destructors set on
    /// those contexts run (under `lua_pcall`).
    ///
    /// Not needed inside a Swift function called from Lua, which already runs in the module.
    ///
    /// - warning: While the runtime is open, freeing or moving a context Lua has a handle on *outside*
    ///   this method (or a registered function) is undefined behaviour.
    /// - Throws: what `body` throws, or `RuntimeError` if the module is not open.
    public func withContexts<R>(_ body: () throws -> R) throws -> R {
        let L = try currentThread()
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        var result: Result<R, any Error>? = nil
        let st = withoutActuallyEscaping(body) { body in
            perform(L, nargs: 0, nresults: 0) { L, _ in
                result = Result { try body() }
                return 0
            }
        }
        if st != LUA_OK { throw failure(L, st) }
        guard let result else { throw RuntimeError(.runtime, "withContexts: body did not run") }
        return try result.get()
    }

    /// What became of a context the host lent to Lua: the context (at its current address: a `realloc`
    /// from Lua may move it), or nil once it was freed — by Lua, by a free of its tree, or because the
    /// host never lent it. Valid while the runtime is open.
    public func lentContext(_ original: TallocContext) -> TallocContext? {
        guard let L = state ?? threads.last, lua_checkstack(L, 6) != 0 else { return nil }
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard pushHostTable(L), LuaRuntime.pushField(L, -1, LTH_HOST_PINS, LUA_TTABLE) else { return nil }
        let pins = lua_gettop(L)
        lua_pushnil(L)
        while true {
            var more: Int32 = 0
            guard lth_next(L, pins, &more) == LUA_OK, more != 0 else { return nil }
            if lua_touserdata(L, -1) == original.unsafePointer {
                let cell = ltc_cellat(L, -2)
                return cell.pointee.body.map { TallocContext(unsafePointer: $0) }
            }
            clua_pop(L, 1)
        }
    }

    /// The number of contexts lent to Lua (pinned handles, tree tops included).
    public var lentContextCount: Int {
        guard let L = state, lua_checkstack(L, 4) != 0 else { return 0 }
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard pushHostTable(L), LuaRuntime.pushField(L, -1, LTH_HOST_PINS, LUA_TTABLE) else { return 0 }
        let pins = lua_gettop(L)
        var n = 0
        lua_pushnil(L)
        while true {
            var more: Int32 = 0
            guard lth_next(L, pins, &more) == LUA_OK, more != 0 else { return n }
            n += 1
            clua_pop(L, 1)
        }
    }

}

extension LuaRuntime {
    /// Pushes the handle of a context the host passes to Lua. One of Lua's own (under `contexts`) is
    /// pushed as is; any other is lent (`Handles.lend`: the collector never frees it, its ancestors stay
    /// hidden) and `pin` keeps its handle. The runtime's own contexts never reach Lua.
    static func pushContext(_ f: Frame, _ c: TallocContext, contexts: TallocContext, root: TallocContext,
                            pin: () -> Bool) -> Bool {
        // The runtime's own tree (its root, "lua contexts", "lua heap") never reaches Lua: freeing it
        // from a script would pull the floor from under the state.
        if c == contexts || c == root || (c.isParent(root) && !c.isParent(contexts)) {
            return Handles.fail(f.L, "the runtime's own contexts cannot be passed to Lua")
        }
        if c.isParent(contexts) { return Handles.push(f, c) }
        guard Handles.lend(f, c) != nil else { return false }
        return pin()
    }
}
