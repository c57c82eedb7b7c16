-- 04-destructors.lua — destructors, the order of a free, and a destructor that refuses.
--
-- talloc_free runs a context's destructor first, with its whole subtree still attached; then it frees
-- the children, newest first, depth first. So destructors run parents before children. A destructor
-- that returns false refuses the free: nothing is freed, and a child that refuses while its parent is
-- freed moves to its grandparent.
--
-- Run it:  luatalloc scripts/04-destructors.lua

local function announce(ctx)
  ctx:set_destructor(function(self)
    print(string.format("  destructor of %-4s (its subtree still has %d blocks)", self:get_name(), self:total_blocks()))
  end)
  return ctx
end

local root = announce(talloc.new(nil, "root"))
local a = announce(talloc.new(root, "A"))
announce(talloc.new(a, "A1"))
local a2 = announce(talloc.new(a, "A2"))
announce(talloc.new(a2, "A2x"))
announce(talloc.new(a, "A3"))
announce(talloc.new(root, "B"))
io.write(talloc.report_full(root, {addresses = false}))
print("talloc.free(root):")
print("  ->", talloc.free(root))

print()
print("A destructor that refuses:")
local keeper = talloc.new(nil, "keeper")
keeper:set_destructor(function() print("  keeper says no"); return false end)
print("  talloc.free(keeper) ->", talloc.free(keeper))
keeper:set_destructor(nil)
print("  without its destructor ->", talloc.free(keeper))

print()
print("A child that refuses while its parent is freed moves to the grandparent:")
local top = talloc.new(nil, "top")
local parent = talloc.new(top, "parent")
local stubborn = talloc.new(parent, "stubborn")
stubborn:set_destructor(function() print("  stubborn refuses"); return false end)
print("  talloc.free(parent) ->", talloc.free(parent))
print("  stubborn's parent is now", talloc.parent_name(stubborn))
stubborn:set_destructor(nil)

print()
print("A destructor that raises an error refuses the free; the error reaches the caller:")
local fragile = talloc.new(top, "fragile")
fragile:set_destructor(function() error("fragile cannot go yet", 0) end)
print("  pcall(talloc.free, fragile) ->", pcall(talloc.free, fragile))
print("  fragile still alive:", not talloc.is_freed(fragile))
fragile:set_destructor(nil)
talloc.free(top)
