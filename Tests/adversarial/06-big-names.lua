-- class: 6
-- args: --memlimit 8M
-- rss: yes
-- Names given to new, size and set_type are charged: 200 contexts named with a 1 MB string.
local name = string.rep("x", 1 << 20)
local t = {}
local ok, e = pcall(function() for i = 1, 200 do t[i] = talloc.new(nil, name) end end)
assert(not ok and e:find("not enough memory"), tostring(e))
t = {}
collectgarbage()
ok, e = pcall(function() for i = 1, 200 do t[i] = talloc.size(nil, 1, name) end end)
assert(not ok and e:find("not enough memory"), tostring(e))
t = {}
collectgarbage()
local c = talloc.new()
ok, e = pcall(function() for i = 1, 200 do t[i] = talloc.new(c) talloc.set_type(t[i], name) end end)
assert(not ok and e:find("not enough memory"), tostring(e))
print("ok")
