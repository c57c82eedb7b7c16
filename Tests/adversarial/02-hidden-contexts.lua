-- class: 2
-- The runtime's own contexts never reach a script: not its root, not "lua contexts" (Lua's top level),
-- not Lua's heap, through any path.
local c = talloc.new()
for _, name in ipairs{"luatalloc runtime", "lua contexts", "lua heap"} do
  assert(talloc.find_parent_byname(c, name) == nil, name)
end
assert(talloc.parent(c) == nil and talloc.parent_name(c) == nil)
local deep = c
for i = 1, 50 do deep = talloc.new(deep) end
for _, name in ipairs{"luatalloc runtime", "lua contexts", "lua heap"} do
  assert(talloc.find_parent_byname(deep, name) == nil, name)
end
-- walking up by hand stops at the top level
local x, n = deep, 0
while talloc.parent(x) do x = talloc.parent(x) n = n + 1 end
assert(rawequal(x, c) and n == 50)
-- a destructor's argument is the context itself; re-homed children stay within Lua's world
local a = talloc.new(nil, "a")
local b = talloc.new(a, "b")
local kept = talloc.new(b, "kept")
talloc.set_destructor(kept, function() return false end)
assert(talloc.free(a))
assert(talloc.parent(kept) == nil, "a refusing child goes to the top level")
talloc.set_destructor(kept, nil)
-- references: the referrer is a context the script holds
local r = talloc.new(nil, "referrer")
local t = talloc.new(nil, "target")
talloc.reference(r, t)
assert(talloc.free(t) == false)
assert(talloc.unlink(r, t))
-- nothing the module returns names the runtime's contexts
local seen = {}
local function note(v) if type(v) == "userdata" then seen[#seen + 1] = talloc.get_name(v) end end
note(talloc.parent(c)) note(talloc.find_parent_byname(c, "lua contexts"))
for _, v in ipairs(seen) do assert(v ~= "lua contexts" and v ~= "luatalloc runtime" and v ~= "lua heap", v) end
-- the report of everything is text only: no handle comes out of it
assert(type(talloc.report()) == "string")
print("ok")
