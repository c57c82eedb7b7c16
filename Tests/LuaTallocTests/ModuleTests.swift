// luatalloc — LuaTalloc tests
// SPDX-License-Identifier: MIT
//
// The functions of DESIGN §3, their names, argument errors in Lua's words, and memory access.

import LuaTalloc
import Testing

@Suite struct ModuleTests {
    static let designFunctions = [
        "new", "size", "zero", "pool", "pooled_object", "strdup", "strndup", "asprintf", "strdup_append",
        "asprintf_append", "memdup", "realloc", "free", "free_children", "steal", "reparent", "reference", "unlink",
        "reference_count", "set_destructor", "set_name", "get_name", "check_name", "set_type", "get_type",
        "get_type_abort", "parent", "parent_name", "children", "is_parent", "find_parent_byname", "get_size",
        "total_size", "total_blocks", "report", "report_full", "set_memlimit", "pool_info", "dot", "pool_map",
        "is_freed", "read", "write", "fill", "pack", "unpack", "string",
    ]
    /// Beyond DESIGN §3 (and beyond talloc): the pool advisor (README, "Sizing pools").
    static let extensions = ["pool_stats", "pool_advice"]

    @Test func everyFunctionOfTheDesignTableExists() {
        let expected = Self.designFunctions + Self.extensions
        #expect(Set(LuaTallocModule.functionNames) == Set(expected))
        let list = expected.map { "\"\($0)\"" }.joined(separator: ",")
        lua("""
        local methods = getmetatable(talloc.new()).__index
        for _, n in ipairs({\(list)}) do
          assert(type(talloc[n]) == "function", n)
          -- every function that takes a context first is also a method (new's first argument may be nil)
          if n ~= "new" then assert(methods[n] == talloc[n], n) end
        end
        local mt = getmetatable(talloc.new())
        assert(mt.__name == "talloc.context" and mt.__gc and mt.__close and mt.__tostring and mt.__index)
        assert(require("talloc") == talloc)
        """)
    }

    @Test func theModuleTableHoldsOnlyTheDesignFunctions() {
        let list = (Self.designFunctions + Self.extensions).map { "[\"\($0)\"] = true" }.joined(separator: ",")
        lua("""
        local known = {\(list)}
        for k, v in pairs(talloc) do
          assert(known[k] and type(v) == "function", "talloc." .. tostring(k) .. " is not in DESIGN §3 nor a documented extension")
        end
        assert(talloc._metatable == nil and talloc._next_child == nil)
        """)
    }

    @Test func memoryAccessIsAlsoAModuleFunction() {
        lua("""
        local c = talloc.size(nil, 16)
        assert(talloc.write(c, 0, "abcd") == 4)
        assert(talloc.read(c, 1, 2) == "bc" and talloc.string(c) == "abcd")
        talloc.fill(c, 0x41, 4, 2)
        assert(talloc.read(c, 0, 6) == "abcdAA")
        assert(talloc.pack(c, 8, "<i8", -42) == 16)
        local v, nextoff = talloc.unpack(c, 8, "<i8")
        assert(v == -42 and nextoff == 16)
        -- formats with strings (unpacked from a copy) and numbers only (read in place)
        assert(talloc.pack(c, 0, "s1z", "ab", "cd") == 6)
        local a, b, after = talloc.unpack(c, 0, "s1z")
        assert(a == "ab" and b == "cd" and after == 6)
        local ok0, e0 = pcall(talloc.unpack, c, 12, "<i8")
        assert(not ok0 and e0:match("data string too short"), e0)
        local ok, e = pcall(talloc.write, c, 15, "xy")
        assert(not ok and e:match("bad argument #3 to '[%w%.]*write' %(length 2 out of bounds"), e)
        ok, e = pcall(talloc.read, 42)
        assert(not ok and e:match("bad argument #1 to '[%w%.]*read' %(talloc.context expected, got number%)"), e)
        ok, e = pcall(talloc.pack, c, 0, "<i4", "x")
        assert(not ok and e:match("bad argument #4 to '[%w%.]*pack' %(number expected, got string%)"), e)
        """)
    }

    @Test func childrenIsAnIteratorCalledBareOrInAGenericFor() {
        lua("""
        local p = talloc.new(nil, "p")
        local a, b, c = talloc.new(p, "a"), talloc.new(p, "b"), talloc.new(p, "c")
        -- called bare, as string.gmatch: newest first, then nil for good
        local nxt = talloc.children(p)
        assert(type(nxt) == "function")
        local first = nxt()
        assert(rawequal(first, c), tostring(first))
        assert(rawequal(nxt(), b) and rawequal(nxt(), a))
        assert(nxt() == nil and nxt() == nil, "an iterator that ran out stays out")
        -- in a generic for, and as a method; independent iterators
        local names = {}
        for ch in p:children() do names[#names + 1] = ch:get_name() end
        assert(table.concat(names, ",") == "c,b,a", table.concat(names, ","))
        local n1, n2 = talloc.children(p), talloc.children(p)
        assert(rawequal(n1(), c) and rawequal(n2(), c) and rawequal(n1(), b))
        -- the iterator keeps its parent alive; a freed parent is an error, a moved child too
        local it = talloc.children(talloc.new(nil, "kept"))
        collectgarbage(); collectgarbage()
        assert(it() == nil)
        local nx = talloc.children(p)
        assert(rawequal(nx(), c))
        talloc.steal(a, c)
        local ok, e = pcall(nx)
        assert(not ok and e:match("children changed while iterating"), e)
        local q = talloc.new()
        local nq = talloc.children(q)
        talloc.free(q)
        ok, e = pcall(nq)
        assert(not ok and e:match("attempt to use a freed talloc context"), e)
        ok, e = pcall(talloc.children, 42)
        assert(not ok and e:match("talloc.context expected, got number"), e)
        """)
    }

    @Test func defaultNamesComeFromTheLuaCaller() {
        lua("""
        local c = talloc.new()
        assert(c:get_name() == "talloc_new: test:1", c:get_name())
        local s = talloc.size(c, 4)
        assert(s:get_name() == "test:3", s:get_name())
        local z = talloc.zero(c, 4)
        assert(z:read() == "\\0\\0\\0\\0")
        assert(talloc.new(nil, "given"):get_name() == "given")
        local p = pcall(talloc.new)  -- a C caller: talloc's empty location
        local ok, viaPcall = pcall(talloc.new)
        assert(viaPcall:get_name() == "talloc_new: ", viaPcall:get_name())
        assert(talloc.strdup(c, "contents"):get_name() == "contents")
        assert(talloc.asprintf(c, "%d-%s", 42, "x"):get_name() == "42-x")
        local m = talloc.memdup(c, "abc")
        assert(m:get_name() == "test:13" and m:get_size() == 3)
        """)
    }

    @Test func argumentErrorsInLuasOwnWords() {
        lua("""
        local function err(f, ...)
          local ok, e = pcall(f, ...)
          assert(not ok)
          return e
        end
        local c = talloc.new()
        local e = err(talloc.steal, nil, 42)
        assert(e:match("bad argument #2 to '[%w%.]*steal' %(talloc.context expected, got number%)"), e)
        e = err(talloc.size, c, "x")
        assert(e:match("bad argument #2 to '[%w%.]*size' %(number expected, got string%)"), e)
        e = err(talloc.strdup, c)
        assert(e:match("bad argument #2 to '[%w%.]*strdup' %(string expected, got no value%)"), e)
        e = err(function() return c:steal(42) end)
        assert(e:match("bad argument #1 to 'steal' %(talloc.context expected, got number%)"), e)
        e = err(talloc.get_size, {})
        assert(e:match("talloc.context expected, got table"), e)
        e = err(talloc.size, c, -1)
        assert(e:match("size must not be negative"), e)
        e = err(talloc.set_destructor, c, 1)
        assert(e:match("function expected, got number"), e)
        e = err(talloc.get_type_abort, c, "struct foo")
        assert(e:match("Type mismatch: name%[talloc_new: test:6%] expected%[struct foo%]"), e)
        assert(talloc.is_freed(42) == false)
        """)
    }

    @Test func treeFunctions() {
        lua("""
        local root = talloc.new(nil, "root")
        local a = talloc.new(root, "a")
        local b = talloc.new(root, "b")
        local names = {}
        for ch in root:children() do names[#names + 1] = ch:get_name() end
        assert(table.concat(names, ",") == "b,a", "newest first")
        assert(a:parent_name() == "root" and root:parent() == nil and root:parent_name() == nil)
        assert(a:is_parent(root) and not root:is_parent(a))
        assert(talloc.steal(b, a) == a and a:parent() == b)
        local e = select(2, pcall(talloc.steal, a, b))
        assert(e:match("cannot move a context into its own subtree"), e)
        assert(talloc.reference(a, root) == root and root:reference_count() == 1)
        local ok, why = root:free()
        assert(ok == false and why:match("references"), why)
        assert(talloc.unlink(a, root) == true and root:reference_count() == 0)
        local ok2, why2 = talloc.unlink(a, root)
        assert(ok2 == false and why2:match("not a parent"), why2)
        assert(talloc.reparent(a, root, talloc.new(a, "moved")):parent() == root)
        assert(talloc.reparent(b, root, talloc.new(a)) == nil)
        root:set_name("renamed")
        assert(root:get_name() == "renamed" and root:check_name("renamed") and root:total_blocks() == 6)
        names = {}
        for ch in root:children() do names[#names + 1] = ch:get_name() end
        assert(table.concat(names, ",") == "moved,b", table.concat(names, ","))
        root:free_children()
        assert(root:total_blocks() == 2 and root:get_name() == "renamed", "the name child stays")
        root:set_type("struct foo")
        assert(root:get_type("struct foo") == root and root:get_type("int") == nil)
        assert(talloc.get_type_abort(root, "struct foo") == root)
        root:free_children()
        assert(root:total_blocks() == 1, "a stale .name child goes")
        """)
    }

    @Test func stringsAndRealloc() {
        lua("""
        local c = talloc.new()
        local s = talloc.strdup(c, "hello")
        assert(talloc.strdup_append(s, " world") == s and s:string() == "hello world" and s:get_name() == "hello world")
        assert(talloc.asprintf_append(s, "%s%d", "!", 1) == s and s:string() == "hello world!1")
        assert(talloc.strndup(c, "abcdef", 3):string() == "abc")
        local r = talloc.size(c, 4)
        r:write(0, "abcd")
        assert(talloc.realloc(r, 8) == r and r:get_size() == 8)
        assert(r:read() == "abcd\\0\\0\\0\\0", "growth is zeroed")
        local ok, e = pcall(talloc.asprintf, c, "%d", "x")
        assert(not ok and e:match("number expected"), e)
        """)
    }

    @Test func memoryAccessIsBoundsChecked() {
        lua("""
        local c = talloc.size(nil, 8)
        assert(c:write(0, "abcdefgh") == 8)
        assert(c:read(2, 3) == "cde" and c:read() == "abcdefgh" and c:read(8) == "")
        local ok, e = pcall(c.write, c, 5, "xyzw")
        assert(not ok and e:match("out of bounds"), e)
        ok, e = pcall(c.read, c, 9)
        assert(not ok and e:match("out of bounds"), e)
        ok, e = pcall(c.read, c, -1)
        assert(not ok and e:match("out of bounds"), e)
        c:fill(0)
        assert(c:read() == string.rep("\\0", 8))
        c:fill(65, 2, 3)
        assert(c:read() == "\\0\\0AAA\\0\\0\\0")
        ok, e = pcall(c.fill, c, 300)
        assert(not ok and e:match("byte out of range"))
        assert(c:pack(0, "<i4i4", 7, -2) == 8)
        local x, y, nextoff = c:unpack(0, "<i4i4")
        assert(x == 7 and y == -2 and nextoff == 8)
        ok, e = pcall(c.pack, c, 4, "<i8", 1)
        assert(not ok and e:match("out of bounds"), e)
        -- a string named by its contents keeps its terminating NUL
        local s = talloc.strdup(nil, "abc")
        ok, e = pcall(s.write, s, 0, "wxyz")
        assert(not ok and e:match("terminating NUL"), e)
        assert(s:write(0, "xyz") == 3 and s:get_name() == "xyz")
        """)
    }

    @Test func poolsFromLua() {
        lua("""
        local p = talloc.pool(nil, 1024)
        local a = talloc.size(p, 512)
        local info = p:pool_info()
        assert(info.capacity == 1024 and info.used == 576 and info.available == 448 and info.objects == 2 and info.freed == false)
        assert(a:pool_info().capacity == 1024)
        local outside = talloc.size(a, 1024)
        assert(outside:pool_info() == nil)
        local map = talloc.pool_map(p)
        assert(map:match("^%[H+#+_+%]"), map)
        local o = talloc.pooled_object(nil, 24, 3, 30, "struct pooled")
        assert(o:get_name() == "struct pooled" and o:get_size() == 24)
        local oi = o:pool_info()
        assert(oi.used + oi.available == oi.capacity)
        assert(talloc.dot(p):match("^digraph"))
        """)
    }

    @Test func memoryLimitsFromLua() {
        let err = luaError("""
        local t = {}
        for i = 1, 1e7 do t[i] = {} end
        """, memoryLimit: 2 << 20)
        #expect(err?.contains("not enough memory") == true)
        lua("""
        local ok, e = pcall(function() local t = {} for i = 1, 1e7 do t[i] = {} end end)
        assert(not ok and e:match("not enough memory"), e)
        collectgarbage()
        local c = talloc.new()
        local ok2, e2 = pcall(talloc.size, c, 4 << 20)
        assert(not ok2 and e2:match("not enough memory"), e2)
        assert(talloc.size(c, 1024):get_size() == 1024, "the runtime goes on")
        local l = talloc.new(nil, "limited")
        l:set_memlimit(1000)
        local ok3 = pcall(talloc.size, l, 2000)
        assert(not ok3)
        assert(talloc.size(l, 100))
        assert(l:report():match("is a memlimit context %(max_size = 1000 bytes"), l:report())
        """, memoryLimit: 3 << 20)
    }

    @Test func reportsOfTheWholeState() {
        lua("""
        local a = talloc.new(nil, "a")
        talloc.strdup(a, "text")
        local r = talloc.report_full(nil, {addresses = false})
        assert(r:match("full talloc report on 'luatalloc runtime'"), r)
        assert(r:match("lua heap"), r)
        assert(r:match("\\n        a                              contains      5 bytes in   2 blocks %(ref 0%)\\n"), r)
        local short = talloc.report(a)
        assert(short:match("^talloc report on 'a' %(total      5 bytes in   2 blocks%)\\n    text  "), short)
        assert(short:match("0x%x+"), "addresses by default")
        """)
    }
}
