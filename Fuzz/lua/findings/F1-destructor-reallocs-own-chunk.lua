local c = talloc.new()
talloc.set_destructor(c, function(c) c:realloc(1000) end)
