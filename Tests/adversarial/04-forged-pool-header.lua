-- class: 4
-- Bytes a script writes are not data structures. A forged chunk header (the magic is a constant) is
-- written into a pool member's body, which then shrinks in place, so the forgery sits exactly where a
-- walker of the pool's bytes looks next. The pool's map and info must be what they are without it.
local magic = 0xA110C000
-- next, prev, parent, child, name, extra (6 words), size, flags, poolOffset, line (4 x u32)
local function header(size, flags, poolOffset)
  return string.pack("<jjjjjjI4I4I4I4", 0, 0, 0, 0, 0, 0, size, magic | flags, poolOffset, 0)
end

-- Builds the same pool twice, once with forged bytes, and compares what pool_map and pool_info say.
-- 'shape' makes the members; 'forge' writes into them; 'after' changes the pool (shrinks, frees).
local function check(label, shape, forge, after)
  local maps = {}
  for pass = 1, 2 do
    local p = talloc.pool(nil, 8192)
    local m = shape(p)
    if pass == 2 then forge(m) end
    after(p, m)
    local map = talloc.pool_map(p)
    assert(#map < 200, label .. ": pool_map is " .. #map .. " bytes")
    local info = talloc.pool_info(p)
    maps[pass] = map .. " " .. info.used .. " " .. info.objects
    talloc.free(p)
  end
  assert(maps[1] == maps[2], label .. ":\n  " .. maps[1] .. "\n  " .. maps[2])
end

local sizes = {0, 1, 15, 16, 4095, 0x0FFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF}
local flagsets = {0x008, 0x008 | 0x004, 0x001 | 0x008, 0x008 | 0x010}
-- the first member (header at pool offset 64, body at 128) shrinks from 1024 to 16 bytes: the next
-- header position is 64 + 80 = 144, at body offset 16
for _, size in ipairs(sizes) do
  for _, flags in ipairs(flagsets) do
    for _, claim in ipairs{144, 0, 16, 128, 1152} do
      check(("size %x flags %x offset %d"):format(size, flags, claim),
        function(p) return {talloc.size(p, 1024, "a"), talloc.size(p, 64, "b")} end,
        function(m) m[1]:write(16, header(size, flags, claim)) end,
        function(p, m) talloc.realloc(m[1], 16) end)
    end
  end
end
-- forgeries everywhere in the body, then shrinks by every amount, then frees
for shrink = 16, 1008, 16 do
  check("shrink to " .. shrink,
    function(p) return {talloc.size(p, 1024, "a"), talloc.size(p, 64, "b"), talloc.size(p, 32, "c")} end,
    function(m) for off = 0, 1024 - 64, 64 do m[1]:write(off, header(0xFFFFFFFF, 0x008, 128 + off)) end end,
    function(p, m) talloc.realloc(m[1], shrink) talloc.free(m[2]) end)
end
-- a forged nested pool prefix and header in a freed member's space
check("freed member",
  function(p) return {talloc.size(p, 512, "a"), talloc.size(p, 64, "b")} end,
  function(m)
    m[1]:write(0, string.pack("<I4I4I4I4", 0xFFFFFFF0, 1, 0xFFFFFFF0, 0))
    m[1]:write(16, header(0xFFFFFFFF, 0x008 | 0x004, 144))
  end,
  function(p, m) talloc.free(m[1]) end)
-- the last member shrinks (the pool's end moves back) and the space is carved again
check("last member",
  function(p) return {talloc.size(p, 64, "a"), talloc.size(p, 2048, "b")} end,
  function(m) for off = 0, 2048 - 64, 64 do m[2]:write(off, header(0x7FFFFFFF, 0x008, 272 + off)) end end,
  function(p, m) talloc.realloc(m[2], 16) talloc.size(p, 16, "c") talloc.size(p, 100, "d") end)
print("ok")
