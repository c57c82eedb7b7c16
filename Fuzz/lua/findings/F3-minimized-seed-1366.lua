-- status hang with --memlimit 64M
local V, CO = {}, {}
local function P(f) local ok, e = pcall(f); if not ok and type(e) ~= 'string' and type(e) ~= 'table' and e ~= nil then error('non-string error: ' .. tostring(e)) end end
P(function() local p = talloc.new(V[1]); for i = 1, 5000 do talloc.size(p, i % 64) end; V[2] = p end)
P(function() V[1] = talloc.new(V[9]) end)
P(function() local a, b = talloc.new(V[1]), talloc.new(nil); talloc.reference(a, b); talloc.reference(b, a); V[1], V[6] = a, b end)
P(function() V[1] = talloc.new(nil, '') end)
P(function() collectgarbage('generational') end)
P(function() talloc.realloc(V[6], 0) end)
P(function() V[7] = talloc.new(V[6]) end)
