-- class: 5
-- args: --memlimit 512M
-- A pool map is one line of a fixed width, whatever the pool holds.
local p = talloc.pool(nil, 100 << 20)
for i = 1, 1000000 do talloc.size(p, 16) end
local map = talloc.pool_map(p)
assert(#map < 200, #map)
assert(map:find("1000001 objects"), map)
print("ok")
