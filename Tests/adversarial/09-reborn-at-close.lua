-- class: 9
-- timeout: 120
-- Closing the state ends even when a destructor makes a new top-level context, with the same destructor,
-- every time it runs (finding F3: one round of frees at close never ended, memory grew without bound).
-- Once closing has begun the module makes no new contexts: the destructor's talloc.new raises (a warning
-- at close), and the frees end. The guard below turns the old endless close into a failure.
local n = 0
local function evil(c)
  n = n + 1
  if n > 10000 then
    io.stderr:write("reborn ", n, " times while the state closed\n")
    os.exit(3)
  end
  local x = talloc.new(nil, "reborn " .. n)
  talloc.set_destructor(x, evil)
end
local seed = talloc.new(nil, "seed")
talloc.set_destructor(seed, evil)
keep = seed
-- the same under a context that is not top level, and with the other ways of making a chunk
local p = talloc.new(nil, "p")
keep2 = p
local k = talloc.new(p, "k")
talloc.set_destructor(k, function()
  n = n + 1
  if n > 10000 then os.exit(4) end
  local y = talloc.strdup(p, "again")
  talloc.set_destructor(y, getmetatable(y) and evil)
  talloc.reference(p, talloc.new(nil))
end)
print("ok")
