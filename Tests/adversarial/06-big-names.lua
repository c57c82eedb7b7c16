-- class: 6
-- args: --memlimit 8M
-- rss: yes
-- Names given to new, size and set_type are charged: 200 contexts each named with its own 1 MB string.
-- Names are interned per state (one copy per distinct name), so 200 contexts sharing one 1 MB name cost
-- that name once.
local base = string.rep("x", 1 << 20)
local function name(i) return base .. i end
local t = {}
local ok, e = pcall(function() for i = 1, 200 do t[i] = talloc.new(nil, name(i)) end end)
assert(not ok and e:find("not enough memory"), tostring(e))
t = {}
collectgarbage()
ok, e = pcall(function() for i = 1, 200 do t[i] = talloc.size(nil, 1, name(i)) end end)
assert(not ok and e:find("not enough memory"), tostring(e))
t = {}
collectgarbage()
local c = talloc.new()
ok, e = pcall(function() for i = 1, 200 do t[i] = talloc.new(c) talloc.set_type(t[i], name(i)) end end)
assert(not ok and e:find("not enough memory"), tostring(e))
t = {}
collectgarbage()
-- one shared name: stored once
for i = 1, 200 do t[i] = talloc.new(nil, base) end
assert(t[200]:get_name() == base and t[1]:check_name(base))
t = {}
collectgarbage()
print("ok")
