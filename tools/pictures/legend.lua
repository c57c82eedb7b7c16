-- legend.lua — a small talloc tree with one of each kind of thing talloc.dot draws, each named after
-- what it shows. tools/render-pictures.sh draws it as the legend beside the picture of a tree, so the
-- legend is talloc.dot's own output and always matches it.

local legend = talloc.new(nil, "context")
local limited = talloc.new(legend, "memory limit")
talloc.set_memlimit(limited, 64 << 10)
local pool = talloc.pooled_object(legend, 0, 1, 16, "pool")
talloc.size(pool, 16, "pool memory")
local freed = talloc.pool(legend, 256)
local pinning = talloc.size(freed, 16, "pins a freed pool")
talloc.steal(legend, pinning)
talloc.free(freed)
local referrer = talloc.new(legend, "referrer")
talloc.reference(referrer, talloc.new(legend, "referenced"))
io.write(talloc.dot(legend))
talloc.free(legend)
