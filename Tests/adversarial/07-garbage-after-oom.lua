-- class: 7
-- args: --memlimit 4M
-- After a script caught "not enough memory", memory held by contexts that are already garbage comes back
-- before its next allocation fails (finding F4): Lua's emergency collections run no finalizers.
for round = 1, 5 do
  local ok, e = pcall(function() local p = talloc.new() for i = 1, 1e9 do talloc.size(p, 64) end end)
  assert(not ok and e:find("not enough memory"), e)
  -- p is garbage now; plain Lua allocations must succeed right away
  do
    local t = {}
    for i = 1, 20000 do t[i] = {i} end
  end
  ok, e = pcall(function() local t = {} for i = 1, 1e9 do t[i] = talloc.new() end end)
  assert(not ok and e:find("not enough memory"), e)
  local s = string.rep("x", 1 << 20)
  assert(#s == 1 << 20)
end
-- in a coroutine that dies of it: the coroutine is garbage when pcall catches the error
local ok = pcall(coroutine.wrap(function() local p = talloc.new() for i = 1, 1e9 do talloc.size(p, 64) end end))
assert(not ok)
do
  local t = {}
  for i = 1, 20000 do t[i] = {i} end
end
-- caught by coroutine.resume: the dead coroutine, which holds p, is garbage once resume caught it
assert(not coroutine.resume(coroutine.create(function()
  local p = talloc.new() for i = 1, 1e9 do talloc.size(p, 64) end
end)))
do
  local t = {}
  for i = 1, 20000 do t[i] = {i} end
end
print("ok")
