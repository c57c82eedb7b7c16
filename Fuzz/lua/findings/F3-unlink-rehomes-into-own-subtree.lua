local x = talloc.new()
local a, b = talloc.new(x), talloc.new()
talloc.reference(a, b)       -- a holds b
talloc.reference(b, a)       -- b holds a
x, a = nil, nil
collectgarbage()             -- x (top level, unreachable) is freed: a is referenced by b, so a moves under b
print(pcall(talloc.realloc, b, 0))   -- unlink b from its parent: b is referenced by a (now under b)
print("b freed?", talloc.is_freed(b))
print(pcall(talloc.new, b))
print("done")
