-- 07-dot-picture.lua — a picture of a tree: talloc.dot gives Graphviz source.
--
-- Boxes are contexts (name and size); pools are bold and blue with their fill, pool memory rounded; a
-- red double border marks a memory limit; dashed purple edges are references.
--
-- Run it and draw it:
--   luatalloc scripts/07-dot-picture.lua > tree.dot && dot -Tsvg tree.dot -o tree.svg

local app = talloc.new(nil, "app")
talloc.set_memlimit(app, 1 << 20)
local config = talloc.strdup(app, "config")
local requests = talloc.pool(app, 4096)
talloc.set_name(requests, "requests pool")
for i = 1, 3 do
  local req = talloc.asprintf(requests, "request %d", i)
  talloc.size(req, 64 * i, "body")
end
local cache = talloc.new(app, "cache")
talloc.reference(cache, config)
io.write(talloc.dot(app))
talloc.free(app)
