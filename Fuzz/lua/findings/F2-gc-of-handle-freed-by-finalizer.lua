local a = talloc.new()
local x = talloc.new(a)
x = nil
setmetatable({}, {__gc = function() talloc.free(a) end})
collectgarbage()
print("ok")
