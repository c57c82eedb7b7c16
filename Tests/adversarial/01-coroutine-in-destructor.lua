-- class: 1
-- A coroutine used inside a destructor: the module's calls in the coroutine must not leave the state
-- pointing at the dead coroutine's stack for the free that is still running.
local c = talloc.new()
talloc.set_destructor(c, function() coroutine.wrap(function() talloc.is_freed(nil) end)() end)
assert(talloc.free(c))
collectgarbage()

-- iterating children through a coroutine.wrap iterator inside a destructor
local p = talloc.new(nil, "parent")
for i = 1, 100 do talloc.new(p, "child " .. i) end
local seen = 0
talloc.set_destructor(p, function(x)
  for ch in coroutine.wrap(function() for k in talloc.children(x) do coroutine.yield(k) end end) do
    seen = seen + 1
  end
end)
assert(talloc.free(p))
assert(seen == 100, seen)

-- destructors that make contexts inside coroutines that die at once, with collections in between
local q = talloc.new()
for i = 1, 50 do
  local k = talloc.new(q)
  talloc.set_destructor(k, function()
    local co = coroutine.create(function() local t = talloc.new(nil, "in a coroutine") coroutine.yield(t) end)
    assert(coroutine.resume(co))
    co = nil
    collectgarbage()
  end)
end
assert(talloc.free(q))

-- the collector runs a destructor while a coroutine is running; the coroutine then dies
for round = 1, 20 do
  local co = coroutine.wrap(function()
    for i = 1, 20 do
      local g = talloc.new(nil, "garbage")
      talloc.set_destructor(g, function(h) local x = talloc.new(h) talloc.strdup(x, "made in a finalizer") end)
    end
    collectgarbage()
    coroutine.yield()
  end)
  co()
  co = nil
  collectgarbage()
end

-- a destructor that tries to yield: an error (it runs under a C call), so the free is refused
local y = talloc.new()
talloc.set_destructor(y, function() coroutine.yield() end)
local ok, r = coroutine.wrap(function() return pcall(talloc.free, y) end)()
assert(ok == false and tostring(r):find("yield"), tostring(r))
talloc.set_destructor(y, nil)
assert(talloc.free(y))

-- handles made in a coroutine, used after it died
local keep
do
  local co = coroutine.wrap(function() keep = talloc.new(nil, "from a coroutine") talloc.new(keep) end)
  co()
end
collectgarbage()
assert(talloc.get_name(keep) == "from a coroutine")
assert(talloc.total_blocks(keep) == 2)
print("ok")
