-- class: 3
-- args: --memlimit 8M
-- The collect-and-retry after a failed allocation runs finalizers and destructors; one of them frees the
-- parent being allocated into: the retry re-resolves it and reports the freed context.
local p = talloc.new(nil, "parent")
setmetatable({}, {__gc = function() talloc.free(p) end})  -- garbage at once: finalized by the next full collection
local hog = {}
local ok, e = pcall(function()
  for i = 1, 1e9 do hog[i] = talloc.size(p, 65536) end
end)
assert(not ok, "no error")
assert(e:find("attempt to use a freed talloc context") or e:find("not enough memory"), e)
hog = nil
collectgarbage()
assert(talloc.is_freed(p))
print("ok")
