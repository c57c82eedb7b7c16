local a = talloc.new()
local p = talloc.new(a)
for i = 1, 100 do local x = talloc.size(p, 8) end
local t = {}
pcall(function() for i = 1, 1e6 do t[i] = i end end)
print(pcall(talloc.free_children, a))
print("freed", talloc.is_freed(p))
t = nil
p = nil
collectgarbage()
print("ok")
