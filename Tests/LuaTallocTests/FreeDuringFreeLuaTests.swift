// luatalloc — LuaTalloc tests
// SPDX-License-Identifier: MIT
//
// Destructors that free, move, rename or reference what a free is walking, from Lua (issue 10: the
// adversarial review's F0, F7, F8 and the misuse fuzzer's seeds 24420, 28619 and ten more of 100,000).
// Each crashed the process or read freed memory before; each asserts the outcome now.

import LuaTalloc
import Testing

@Suite("Free during free: destructors acting on what the free walks")
struct FreeDuringFreeLuaTests {
    @Test("free_children: a child's destructor cannot free, move or lose the context; its parent may go")
    func freeChildrenPinsTheContext() {
        lua("""
            local c = talloc.size(nil, 16, "victim")
            local k = talloc.new(c, "kid"); talloc.new(c, "older kid")
            local seen = {}
            talloc.set_destructor(k, function()
              seen.free = {talloc.free(c)}
              seen.realloc = {pcall(talloc.realloc, c, 200000)}
              seen.append = {pcall(talloc.strdup_append, c, string.rep("x", 100000))}
            end)
            assert(talloc.free_children(c) == nil or true)
            assert(seen.free[1] == false and seen.free[2] == "the context is being freed", tostring(seen.free[2]))
            assert(seen.realloc[1] == false and seen.realloc[2]:find("being freed"), seen.realloc[2])
            assert(seen.append[1] == false, "strdup_append moved a context whose children were being freed")
            assert(not talloc.is_freed(c) and talloc.get_size(c) == 16 and talloc.total_blocks(c) == 1)
            assert(talloc.free(c) == true)

            local other = talloc.new(nil, "parent")
            local d = talloc.new(other, "victim")
            local kid = talloc.new(d, "kid"); talloc.new(d, "older kid")
            talloc.set_destructor(kid, function() assert(talloc.free(other) == true) end)
            talloc.free_children(d)
            assert(talloc.is_freed(other) and not talloc.is_freed(d))
            assert(talloc.parent(d) == nil and talloc.total_blocks(d) == 1)
            """)
    }

    @Test("free_children keeps a name a child's destructor gave the context")
    func freeChildrenKeepsANewName() {
        lua("""
            local c = talloc.new(nil, "parent")
            local k = talloc.new(c, "kid")
            talloc.set_destructor(k, function() talloc.set_name(c, "renamed in a destructor") end)
            talloc.free_children(c)
            local junk = {}
            for i = 1, 100 do junk[i] = talloc.strdup(nil, string.rep("J", 40)) end
            assert(talloc.get_name(c) == "renamed in a destructor", talloc.get_name(c))
            assert(talloc.total_blocks(c) == 2)
            """)
    }

    @Test("free: the name of a context being freed stays readable for its children's destructors")
    func nameOfAContextBeingFreed() {
        lua("""
            local p = talloc.new(nil, "p")
            local kid = talloc.new(p, "kid")
            talloc.set_name(p, "renamed")
            local seen
            talloc.set_destructor(kid, function(k) seen = talloc.get_name(talloc.parent(k)) end)
            assert(talloc.free(p) == true)
            assert(seen == "renamed", tostring(seen))
            """)
    }

    @Test("a move keeps a .name child's name: nothing reads past the context (works in the sandbox)")
    func reallocDoesNotRebaseANameOutsideTheBody() {
        lua("""
            local p = talloc.pool(nil, 160)
            local x = talloc.size(p, 16, "x")
            talloc.set_name(x, "nnn")
            talloc.realloc(x, 81)
            x:fill(66)
            assert(talloc.get_name(x) == "nnn", talloc.get_name(x))
            local q = talloc.pool(nil, 4096)
            local y = talloc.size(q, 16, "y")
            talloc.set_name(y, "nnn")
            talloc.realloc(y, 96)
            local z = talloc.size(q, 0, "z")
            y:fill(66)
            assert(talloc.get_name(y) == "nnn")
            """)
    }

    @Test("references made by destructors: to their own context, to a context being freed, in cycles")
    func referencesMadeByDestructors() {
        lua("""
            local p = talloc.new(nil, "p"); local kid = talloc.new(p, "kid")
            local seen
            talloc.set_destructor(kid, function(k) seen = {pcall(talloc.reference, nil, talloc.parent(k))} end)
            assert(talloc.free(p) == true)
            assert(seen[1] == false and seen[2] == "the context is being freed", tostring(seen[2]))

            -- fuzz seed 28619, minimized: two references from a destructor in a reference cycle
            local a, b = talloc.new(), talloc.new()
            talloc.reference(a, b); talloc.reference(b, a)
            talloc.set_destructor(a, function(c) talloc.reference(nil, c); talloc.reference(nil, c); talloc.steal(nil, c) end)
            a, b = nil, nil
            collectgarbage(); collectgarbage()
            """)
        // fuzz seed 24420, minimized: a destructor frees its parent, steals and reallocs itself during
        // free_children, from a __close handler
        lua("""
            local V = {}
            V[10] = talloc.zero(nil, 0)
            V[5] = talloc.new(V[10], '')
            talloc.set_destructor(V[5], function(c)
              local p = c:parent(); if p then p:free() end; talloc.steal(nil, c); c:realloc(1000)
            end)
            local ok, e = pcall(function()
              do local x <close> = setmetatable({}, {__close = function() talloc.free_children(V[10]) end}); talloc.new(V[10]) end
            end)
            -- the destructor's realloc error refuses the free and reaches the caller of free_children
            assert(not ok and e:find("the context is being freed"), tostring(e))
            -- its parent was pinned (its children were being freed): it refused, and the stolen child lives on
            assert(not talloc.is_freed(V[10]) and not talloc.is_freed(V[5]) and talloc.parent(V[5]) == nil)
            """)
    }
}
