-- class: 3
-- Lua code that runs in the middle of a module call frees what the call is using.
local p = talloc.new()
local evil = setmetatable({}, {__tostring = function() talloc.free(p) collectgarbage() return "x" end})
local ok, e = pcall(talloc.asprintf, p, "%s", evil)
assert(not ok and e:find("attempt to use a freed talloc context"), e)

local q = talloc.strdup(nil, "abc")
local evil2 = setmetatable({}, {__tostring = function() talloc.free(q) collectgarbage() return string.rep("y", 1000) end})
ok, e = pcall(talloc.asprintf_append, q, "%s", evil2)
assert(not ok and e:find("attempt to use a freed talloc context"), e)

-- a __tostring that reallocates the string being appended to
local s = talloc.strdup(nil, "start")
local grow = setmetatable({}, {__tostring = function() talloc.realloc(s, 100000) return "z" end})
ok, e = pcall(talloc.asprintf_append, s, "%s", grow)
assert(ok, e)

-- c:pack / c:unpack after the script replaced string.pack / string.unpack / string.format
local c = talloc.size(nil, 64)
local orig = string.pack
local called = false
string.pack = function(...) called = true talloc.free(c) collectgarbage() return orig(...) end
string.unpack = function() error("replaced unpack called") end
string.format = function() error("replaced format called") end
ok, e = pcall(c.pack, c, 0, "i8", 42)
assert(ok and e == 8, tostring(e))
assert(not called, "the module called the global string.pack")
assert(c:unpack(0, "i8") == 42)
assert(talloc.get_name(talloc.asprintf(nil, "%d-%s", 7, "x")) == "7-x")
string.pack = orig

-- finalizers that free contexts while module calls allocate (a collection in every allocation)
collectgarbage("incremental", 1, 1000, 1)
local victims = {}
for round = 1, 300 do
  local v = talloc.new(nil, "victim")
  local w = talloc.new(v, "child")
  victims[#victims + 1] = w
  setmetatable({}, {__gc = function() talloc.free(v) end})
  -- every call below may see w freed by that finalizer: an error, never a crash
  pcall(talloc.new, w)
  pcall(talloc.strdup, w, "s")
  pcall(talloc.set_destructor, w, function() end)
  pcall(talloc.parent, w)
  pcall(talloc.children, w)
  pcall(talloc.get_name, w)
  pcall(talloc.asprintf, w, "%s", round)
  pcall(talloc.memdup, w, w)
  pcall(w.pack, w, 0, "i8", 1)
  pcall(w.read, w)
  pcall(talloc.report_full, w)
end
collectgarbage("incremental", 200, 100, 13)
collectgarbage()
print("ok")
