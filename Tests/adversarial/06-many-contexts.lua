-- class: 6
-- args: --memlimit 8M
-- rss: yes
-- Handle cells and side records are charged: contexts until the limit, never past it.
local t = {}
local ok, e = pcall(function() for i = 1, 1e9 do t[i] = talloc.new() end end)
assert(not ok and e:find("not enough memory"), tostring(e))
local n = #t
t = nil
collectgarbage()
-- children with destructors and names
local p = talloc.new()
ok, e = pcall(function()
  for i = 1, 1e9 do local k = talloc.new(p, "child") talloc.set_destructor(k, function() end) end
end)
assert(not ok and e:find("not enough memory"), tostring(e))
talloc.free(p)
print("ok")
