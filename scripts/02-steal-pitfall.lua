-- 02-steal-pitfall.lua — the pitfall of the pools chapter: stealing a pool member pins the pool.
--
-- talloc_steal moves a chunk to a new parent, but it cannot move its *memory*: a member stolen out of
-- a pool still lives inside the pool's block. When the pool is freed, talloc cannot give the block
-- back while that member lives: the pool is marked freed but stays allocated ("pinned") until the
-- last member inside it goes. And the freed pool itself must not be used any more.
--
-- Run it:  luatalloc scripts/02-steal-pitfall.lua

local outside = talloc.new(nil, "outside")
local pool = talloc.pool(nil, 4096)

local keep = talloc.strdup(pool, "data we want to keep")
local temp = talloc.strdup(pool, "scratch")
print("before: the pool holds", talloc.pool_info(pool).objects - 1, "members (it counts itself as one more object)")

-- Steal the data out of the pool: its parent changes, its memory does not.
talloc.steal(outside, keep)
print("after steal: parent of keep is", talloc.parent_name(keep))
local info = talloc.pool_info(keep)
print(string.format("keep still lives in the pool: capacity %d, objects %d", info.capacity, info.objects))

-- Free the pool. The scratch string goes, but the block stays: `keep` is inside it.
print("talloc.free(pool) ->", talloc.free(pool))
info = talloc.pool_info(keep)
print(string.format("the pool's block is pinned: freed=%s, objects still inside=%d, capacity %d",
  tostring(info.freed), info.objects, info.capacity))
print("the map of the pinned block: " .. talloc.pool_map(keep))

-- Children of the stolen member are still carved from the freed pool (talloc does the same).
local child = talloc.strdup(keep, "child of keep")
print("a child of keep is carved from the freed pool too:", talloc.pool_info(child) ~= nil)

-- Using the freed pool is an error, not a crash.
local ok, err = pcall(talloc.get_name, pool)
print("using the freed pool:", ok, err)
print("talloc.is_freed(pool):", talloc.is_freed(pool))

io.write(talloc.report_full(outside, {addresses = false}))

-- Only when the last member goes is the block given back.
talloc.free(keep)
print("after freeing keep, the pool's memory is released; outside holds", talloc.total_blocks(outside), "block")
talloc.free(outside)
