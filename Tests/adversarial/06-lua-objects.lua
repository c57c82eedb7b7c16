-- class: 6
-- args: --memlimit 8M
-- rss: yes
-- Lua's own objects are charged at what malloc takes for them (its headers included): small tables,
-- strings, closures and userdata until the limit, each time caught, and the state goes on.
local makers = {
  function(i) return {i} end,
  function(i) return "s" .. i end,
  function(i) return function() return i end end,
  function(i) return talloc.new(nil, "c" .. i) end,
  function(i) return coroutine.create(function() return i end) end,
}
for _, make in ipairs(makers) do
  local t = {}
  local ok, e = pcall(function() for i = 1, 1e9 do t[i] = make(i) end end)
  assert(not ok and tostring(e):find("not enough memory"), tostring(e))
  t = nil
  collectgarbage()
end
print("ok")
