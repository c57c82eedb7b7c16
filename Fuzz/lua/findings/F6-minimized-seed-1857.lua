-- Open finding F6 (Fuzz/lua/run, seed 1857, Fuzz/lua/minimize): SIGSEGV in liblua5.4 after the last statement
-- raised; its destructor also references its own chunk twice while being freed (probably F5's cause).
local V, CO = {}, {}
local function P(f) local ok, e = pcall(f); if not ok and type(e) ~= 'string' and type(e) ~= 'table' and e ~= nil then error('non-string error: ' .. tostring(e)) end end
P(function() V[2] = talloc.new(V[12], '.name') end)
P(function() talloc.set_destructor(V[2], function(c) local p = c:parent(); if p then p:free() end; talloc.reference(V[9], c); talloc.reference(V[9], c) end) end)
P(function() V[1] = talloc.asprintf((talloc), '%q', '%s 9 %%', 16) end)
P(function() local pl = talloc.pool(V[6], 0); local m = {}; for i = 1, 3 do m[i] = talloc.size(pl, 8) end; talloc.steal(nil, m[1]); V[6] = m[1]; if math.random() < 0.7 then pl:free() end; V[2] = pl end)
P(function() V[10] = talloc.asprintf(V[6], '%', string.rep('y', 100000), -1) end)
