-- 03-memdup-remedy.lua — the chapter's remedy for the steal pitfall: copy the data out.
--
-- Instead of stealing a member out of a pool (02-steal-pitfall.lua), copy it to its new owner with
-- talloc.memdup (or talloc.strdup for strings). The pool keeps nothing alive and is really released.
--
-- Run it:  luatalloc scripts/03-memdup-remedy.lua

local outside = talloc.new(nil, "outside")
local pool = talloc.pool(nil, 4096)

local keep = talloc.strdup(pool, "data we want to keep")
talloc.strdup(pool, "scratch")
local before = talloc.pool_info(pool)
print(string.format("pool: %d of %d bytes used, %d objects", before.used, before.capacity, before.objects))

-- Copy the bytes out: the copy is a heap chunk owned by `outside`, the original stays in the pool.
local copy = talloc.memdup(outside, keep)
print("the copy is pool memory:", talloc.pool_info(copy) ~= nil)
print("the copy holds:", copy:string())

-- Now the pool can go, all of it.
print("talloc.free(pool) ->", talloc.free(pool))
print("keep freed with the pool:", talloc.is_freed(keep))
print("the copy lives on:", copy:string())

-- memdup also takes a Lua string.
talloc.memdup(outside, "from a Lua string")
io.write(talloc.report_full(outside, {addresses = false}))
talloc.free(outside)
