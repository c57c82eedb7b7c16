-- Fuzz/rss.lua: allocate until the limit (Lua tables, strings and talloc contexts), then report.
-- Run: /usr/bin/time -v luatalloc --memlimit 64M Fuzz/rss.lua   (compare "Maximum resident set size")
local keep = {}
local ok, e = pcall(function()
  for i = 1, 1e9 do
    keep[#keep + 1] = talloc.size(nil, 4096)
    keep[#keep + 1] = string.rep('x', 4000) .. i
  end
end)
print(ok, e, #keep)
