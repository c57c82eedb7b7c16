-- class: 8
-- timeout: 60
-- children() is O(1) per step (40,000 children took 39 s).
local p = talloc.new()
for i = 1, 200000 do talloc.new(p) end
talloc.set_name(p, "named by a .name child")
local n = 0
for c in talloc.children(p) do n = n + 1 end
assert(n == 200000, n)
-- walking up a deep chain is O(depth) per find
local x = talloc.new(nil, "target")
for i = 1, 100000 do x = talloc.new(x) end
for i = 1, 10 do assert(talloc.find_parent_byname(x, "target")) end
print("ok")
