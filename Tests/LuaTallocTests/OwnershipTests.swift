// luatalloc — LuaTalloc tests
// SPDX-License-Identifier: MIT
//
// The six ownership properties of DESIGN §3 "Handles, ownership and the garbage collector". Each test
// fails without the mechanism it names.

import Foundation
import LuaTalloc
import Testing

@Suite struct OwnershipTests {
    // 1. No dangling handle
    @Test func usingAFreedContextIsAnErrorNotACrash() {
        lua("""
        local function freed(f, ...)
          local ok, err = pcall(f, ...)
          assert(not ok, "expected an error")
          assert(err:find("attempt to use a freed talloc context", 1, true), err)
          return err
        end
        -- by free
        local a = talloc.new(nil, "alpha")
        assert(a:free() == true)
        local e = freed(talloc.get_size, a)
        assert(e:find("'alpha'", 1, true), e)
        freed(a.free, a)                       -- a second free is an error
        -- by freeing an ancestor
        local p = talloc.new(); local c = talloc.strdup(p, "child"); local g = talloc.new(c, "grandchild")
        p:free()
        freed(talloc.get_name, c); freed(talloc.parent, g)
        assert(freed(talloc.get_name, c):find("'child'", 1, true))
        -- by <close>
        local kept
        do local x <close> = talloc.new(nil, "closing"); kept = x end
        freed(talloc.total_size, kept)
        -- by realloc(c, 0)
        local r = talloc.size(nil, 10)
        assert(talloc.realloc(r, 0) == nil)
        freed(talloc.get_size, r)
        -- a new context at the freed one's address is not reachable through the old handle
        local olds = {}
        for i = 1, 50 do local t = talloc.new(); olds[i] = t; t:free() end
        local fresh = {}
        for i = 1, 50 do fresh[i] = talloc.new() end
        for i = 1, 50 do freed(talloc.get_size, olds[i]); assert(fresh[i]:get_size() == 0) end
        assert(talloc.is_freed(olds[1]) and not talloc.is_freed(fresh[1]))
        assert(tostring(olds[1]) == "talloc.context (freed)")
        """)
    }

    // 2. Identity
    @Test func everyWayToAContextYieldsTheSameUserdata() {
        lua("""
        local root = talloc.new(nil, "root")
        local a = talloc.new(root, "a")
        local b = talloc.strdup(a, "b")
        assert(rawequal(b:parent(), a) and rawequal(a:parent(), root))
        local seen = {}
        for ch in root:children() do seen[#seen + 1] = ch end
        assert(#seen == 1 and rawequal(seen[1], a))
        assert(rawequal(b:find_parent_byname("root"), root))
        collectgarbage(); collectgarbage()
        assert(rawequal(b:parent(), a))
        -- a handle dropped and collected while its context lives is made again on demand
        local n = talloc.new(root, "n")
        n = nil
        collectgarbage(); collectgarbage()
        local again = {}
        for ch in root:children() do again[#again + 1] = ch:get_name() end
        assert(#again == 2 and again[1] == "n" and again[2] == "a", table.concat(again, ","))
        local x1 = root:children()(root, nil)
        local x2 = root:children()(root, nil)
        assert(rawequal(x1, x2))
        """)
    }

    // 3. The GC never frees what Lua can reach
    @Test func aChildsHandleKeepsItsAncestorsAlive() {
        lua("""
        local freed = {}
        local function watch(c, name) c:set_destructor(function() freed[name] = true end); return c end
        -- the parent's handle is dropped at once
        local c = talloc.strdup(watch(talloc.new(), "parent"), "child")
        collectgarbage(); collectgarbage()
        assert(not freed.parent and c:get_name() == "child" and c:parent() ~= nil)
        -- ... across steal
        local p1, p2 = watch(talloc.new(), "p1"), watch(talloc.new(), "p2")
        local s = talloc.new(p1, "stolen")
        talloc.steal(p2, s)
        p1, p2 = nil, nil
        collectgarbage(); collectgarbage()
        assert(freed.p1 and not freed.p2 and s:parent() ~= nil)
        -- ... across reparent
        local q1, q2 = watch(talloc.new(), "q1"), watch(talloc.new(), "q2")
        local r = talloc.new(q1, "moved")
        talloc.reparent(q1, q2, r)
        q1, q2 = nil, nil
        collectgarbage(); collectgarbage()
        assert(freed.q1 and not freed.q2 and r:parent():get_name():match("talloc_new"))
        -- ... across a reparent that moves a reference (the old parent was a referrer): the parent and
        -- the link stay as they were
        local a, ref, to = watch(talloc.new(nil, "a"), "a"), talloc.new(nil, "ref"), talloc.new(nil, "to")
        local rc = talloc.new(a, "rc")
        talloc.reference(ref, rc)
        assert(rawequal(talloc.reparent(ref, to, rc), rc))
        a, ref = nil, nil
        collectgarbage(); collectgarbage()
        assert(not freed.a and rc:parent():get_name() == "a", rc:parent() and rc:parent():get_name())
        -- ... across talloc's re-homing: a refusing child moves to its grandparent
        local g = watch(talloc.new(nil, "grandparent"), "grandparent")
        local mid = talloc.new(g, "mid")
        local kid = talloc.new(mid, "kid")
        kid:set_destructor(function() return false end)
        assert(mid:free() == true)
        assert(rawequal(kid:parent(), g))
        g, mid = nil, nil
        collectgarbage(); collectgarbage()
        assert(not freed.grandparent and kid:parent():get_name() == "grandparent")
        kid:set_destructor(nil)
        """)
    }

    // 4. The GC frees what Lua cannot reach
    @Test func unreachableTopLevelContextsAreCollectedWithTheirDestructors() {
        lua("""
        local log = {}
        do
          local t = talloc.new(nil, "top")
          t:set_destructor(function(self) log[#log + 1] = self:get_name() end)
          local k = talloc.new(t, "kid")
          k:set_destructor(function(self) log[#log + 1] = self:get_name() end)
        end
        collectgarbage(); collectgarbage()
        assert(table.concat(log, ",") == "top,kid", table.concat(log, ","))
        -- a child's handle alone does not free its context: it belongs to its parent
        local parent = talloc.new(nil, "parent")
        do local orphan = talloc.new(parent, "x") end
        collectgarbage(); collectgarbage()
        assert(parent:total_blocks() == 2)
        """)
    }

    // 5. <close>, __gc and free are idempotent together
    @Test func closeGcAndFreeTogether() {
        lua("""
        local n = 0
        do
          local c <close> = talloc.new()
          c:set_destructor(function() n = n + 1 end)
          assert(c:free() == true)
        end
        assert(n == 1)
        do local d <close> = talloc.new(); d:set_destructor(function() n = n + 1 end) end
        assert(n == 2)
        collectgarbage(); collectgarbage()
        assert(n == 2)
        """)
    }

    // 6. Closing the state frees everything, destructors included, refusals overridden
    @Test func closingTheStateFreesEverything() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("luatalloc-close-\(getpid()).txt").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let rt = try LuaRuntime()
        try rt.run("""
        local f = assert(io.open("\(path)", "w"))
        keep = talloc.new(nil, "kept")
        local stubborn = talloc.new(keep, "stubborn")
        stubborn:set_destructor(function(self) f:write("stubborn\\n"); f:flush(); return false end)
        local other = talloc.new(nil, "other")
        talloc.reference(other, keep)
        talloc.new(nil, "dropped"):set_destructor(function() f:write("dropped\\n"); f:flush() end)
        """)
        #expect(rt.contexts.totalBlocks > 1)
        rt.close()
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("stubborn"))
        #expect(text.contains("dropped"))
    }

    // Destructors: refusal, errors reaching the caller of free
    @Test func destructorRefusalsAndErrors() {
        lua("""
        local c = talloc.new(nil, "c")
        c:set_destructor(function() return false end)
        local ok, why = c:free()
        assert(ok == false and why:match("destructor refused"), why)
        c:set_destructor(function() error("boom") end)
        local okp, err = pcall(talloc.free, c)
        assert(not okp and err:match("boom"), err)
        assert(not talloc.is_freed(c), "an error refuses the free")
        c:set_destructor(nil)
        assert(c:free())
        -- a child's error during its parent's free reaches the caller too; the child survives
        local p = talloc.new(nil, "p")
        local k = talloc.new(p, "k")
        k:set_destructor(function() error({code = 42}) end)
        local ok2, e2 = pcall(p.free, p)
        assert(not ok2 and type(e2) == "table" and e2.code == 42)
        assert(talloc.is_freed(p) and not talloc.is_freed(k) and k:parent() == nil)
        k:set_destructor(nil)
        k:free()
        -- a destructor sees its subtree intact, parents before children, newest first
        local order = {}
        local r = talloc.new(nil, "r")
        for _, name in ipairs({"a", "b"}) do
          local x = talloc.new(r, name)
          x:set_destructor(function(self) order[#order + 1] = self:get_name() .. ":" .. self:total_blocks() end)
          talloc.new(x, name .. "1")
        end
        r:set_destructor(function(self) order[#order + 1] = "r:" .. self:total_blocks() end)
        r:free()
        assert(table.concat(order, " ") == "r:5 b:2 a:2", table.concat(order, " "))
        """)
    }

    @Test func destructorThatFreesItsParent() {
        lua("""
        local g = talloc.new(nil, "g")
        local p = talloc.new(g, "p")
        local c = talloc.new(p, "c")
        local refuser = talloc.new(c, "refuser")
        refuser:set_destructor(function() return false end)
        local killer = talloc.new(c, "killer")
        killer:set_destructor(function() p:free() end)
        c:free()
        assert(talloc.is_freed(p))
        assert(not talloc.is_freed(refuser))
        refuser:set_destructor(nil)
        refuser:free()
        g:free()
        """)
    }
}

/// Regressions found by the Lua misuse fuzzer (Fuzz/lua/findings).
@Suite struct FuzzFindingTests {
    /// F1: a destructor that reallocates its own context must not move it under the free.
    @Test func aDestructorCannotReallocateItsOwnContext() {
        lua("""
        local c = talloc.new()
        c:set_destructor(function(self)
          local ok, e = pcall(self.realloc, self, 1000)
          assert(not ok and e:match("being freed"), e)
        end)
        assert(c:free())
        """)
    }

    /// F2: a handle waiting for its finalizer (already gone from the weak handles table) must still learn
    /// that a finalizer freed its context.
    @Test func aHandleAwaitingFinalizationLearnsOfItsFree() {
        lua("""
        local a = talloc.new()
        local x = talloc.new(a)
        local freedByFinalizer
        x = nil
        setmetatable({}, {__gc = function() freedByFinalizer = talloc.free(a) end})
        collectgarbage(); collectgarbage()
        assert(freedByFinalizer == true and talloc.is_freed(a))
        """)
    }

    /// A handle whose `__gc` never runs (debug.setmetatable took its metatable away) is collected without
    /// telling the module: its cell stays until the state closes, so the chunk's free never writes into
    /// memory Lua gave back.
    @Test func aHandleWithoutItsMetatableIsHarmless() {
        lua("""
        assert(debug and debug.setmetatable, "the debug library is open outside the sandbox")
        local p = talloc.new(nil, "p")
        for i = 1, 1000 do local c = talloc.new(p, "c") debug.setmetatable(c, nil) end
        collectgarbage(); collectgarbage()
        local n = 0
        for c in talloc.children(p) do assert(c:get_name() == "c") n = n + 1 end
        assert(n == 1000 and talloc.free(p) == true)
        local q = talloc.new(nil, "q")
        debug.setmetatable(q, nil)
        q = nil
        collectgarbage(); collectgarbage()
        """)
    }

    /// F2b: the same through free_children while a memory limit makes the collector run.
    @Test func freeChildrenUnderAMemoryLimit() {
        lua("""
        local a = talloc.new()
        local p = talloc.new(a)
        for i = 1, 100 do local x = talloc.size(p, 8) end
        local t = {}
        pcall(function() for i = 1, 1e6 do t[i] = i end end)
        assert(pcall(talloc.free_children, a))
        assert(talloc.is_freed(p))
        t, p = nil, nil
        collectgarbage()
        """, memoryLimit: 1 << 20)
    }
}

/// More regressions from the Lua misuse fuzzer.
@Suite struct FuzzFindingTests2 {
    /// seed-138: a destructor that moves its own context to the top level and lets it go, while its
    /// parent is being freed: the free must come back to the parent, not wander into the new one.
    @Test func aDestructorThatMovesItsContextAwayAndAllowsTheFree() {
        lua("""
        local keep = talloc.new(nil, "keep")
        local p = talloc.new(nil, "p")
        local c = talloc.new(p, "c")
        talloc.new(c, "grandchild")
        c:set_destructor(function(self) self:realloc(0); talloc.steal(nil, self) end)
        assert(p:free())
        assert(talloc.is_freed(c) and not talloc.is_freed(keep))
        assert(keep:get_name() == "keep")
        """)
    }
}
