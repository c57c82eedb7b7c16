-- class: 11
-- Names are bytes; messages are exact; sizes read as Lua reads integers.
local raw = "\xff\xfe\0bytes\x80"
local c = talloc.new(nil, "\xff\xfe-bytes\x80")
assert(talloc.get_name(c) == "\xff\xfe-bytes\x80")
assert(talloc.check_name(c, "\xff\xfe-bytes\x80"))
local k = talloc.new(c)
assert(rawequal(talloc.find_parent_byname(k, "\xff\xfe-bytes\x80"), c))
talloc.set_type(k, "\xc3\x28")
assert(talloc.get_type(k, "\xc3\x28"))
talloc.set_name(k, "\xe2\x82")
assert(talloc.get_name(k) == "\xe2\x82")
-- the name is cut at its first NUL, as a C string
local z = talloc.new(nil, raw)
assert(talloc.get_name(z) == "\xff\xfe")
-- get_type_abort's message keeps every byte, NULs included
local ok, e = pcall(talloc.get_type_abort, c, "zz\0q")
assert(not ok and e:find("expected[zz\0q]", 1, true), e)
-- asprintf's errors name asprintf and its own argument numbers (through pcall, Lua names the function
-- by the global that holds it: 'talloc.asprintf')
ok, e = pcall(talloc.asprintf, nil, "%d", {})
assert(not ok and e:find("bad argument #3 to '[%w.]*asprintf' %(number expected, got table%)"), e)
ok, e = pcall(talloc.asprintf_append, talloc.strdup(nil, "x"), "%d %s", 1)
assert(not ok and e:find("bad argument #4 to '[%w.]*asprintf_append' %(no value%)"), e)
ok, e = pcall(function() return talloc.asprintf(nil, "%d", {}) end)
assert(not ok and e:find("bad argument #3 to 'asprintf'", 1, true), e)
local host = talloc.new()
ok, e = pcall(function() return host:asprintf("%d", {}) end)
assert(not ok and e:find("bad argument #2 to 'asprintf'", 1, true), e)
-- numeric strings are sizes, as for Lua's own integer arguments
assert(talloc.get_size(talloc.size(nil, "10")) == 10)
assert(talloc.get_size(talloc.size(nil, "0x10")) == 16)
ok, e = pcall(talloc.size, nil, "1.5")
assert(not ok and e:find("number has no integer representation"), e)
ok, e = pcall(talloc.size, nil, "ten")
assert(not ok and e:find("number expected, got string"), e)
-- a huge pooled_object names the size
ok, e = pcall(talloc.pooled_object, nil, 16, math.maxinteger, 16)
assert(not ok and e:find("size too large"), e)
-- a string keeps its name valid: shrinking it past its NUL renames it (as talloc_realloc names what it
-- returns), and no write may clear the NUL in its last byte
local str = talloc.strdup(nil, string.rep("x", 100))
talloc.realloc(str, 3)
assert(talloc.get_name(str):find("11%-names%-are%-bytes%.lua:%d+$"), talloc.get_name(str))
local str2 = talloc.strdup(nil, "abcdef")
ok, e = pcall(str2.write, str2, 6, "x")
assert(not ok and e:find("terminating NUL"), e)
assert(str2:write(0, "ABCDE") == 5 and talloc.get_name(str2) == "ABCDEf")
ok, e = pcall(str2.fill, str2, 65)
assert(not ok and e:find("terminating NUL"), e)
-- an unreachable context whose destructor refuses is tried once, not at every collection
local runs = 0
do
  local u = talloc.new(nil, "stubborn")
  talloc.set_destructor(u, function() runs = runs + 1 return false end)
end
for i = 1, 5 do collectgarbage() end
assert(runs == 1, runs)
print("ok")
