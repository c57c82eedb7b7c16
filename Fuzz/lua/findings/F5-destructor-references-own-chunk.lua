-- Open finding F5 (Fuzz/lua/run, seed 1391, minimized by hand): a destructor takes two references to its own
-- chunk while it is being freed; the free goes on, and closing the state traps (force unwrap in _Core.detachHandle).
local a = talloc.new()
talloc.set_destructor(a, function(c) talloc.reference(nil, c); talloc.reference(nil, c) end)
print(pcall(talloc.free, a))
print(talloc.is_freed(a))
