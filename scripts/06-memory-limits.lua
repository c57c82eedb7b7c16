-- 06-memory-limits.lua — memory limits, nested, and exact.
--
-- talloc_set_memlimit caps the bytes a subtree takes from malloc (headers included). Limits nest: an
-- allocation must fit every limit above it. Pool members cost nothing (their pool was charged).
-- talloc 2.4 has three accounting bugs here; luatalloc does not (see the README).
--
-- Run it:  luatalloc scripts/06-memory-limits.lua
-- (luatalloc --memlimit SIZE puts one limit over the whole Lua state, heap and contexts together.)

local budget = talloc.new(nil, "budget")
talloc.set_memlimit(budget, 4096)
io.write(talloc.report(budget, {addresses = false}))

-- talloc.size names a context after the Lua line that called it; wrapped in a function (not called
-- through pcall directly) it gets this file's line, as talloc_size gets __location__.
local function block_of(parent, n) return talloc.size(parent, n) end

local blocks = {}
for i = 1, 100 do
  local ok, block = pcall(block_of, budget, 1000)
  if not ok then
    print(string.format("allocation %d refused: %s", i, block:match("not enough memory") or block))
    break
  end
  blocks[i] = block
end
print("blocks that fit:", #blocks)
io.write(talloc.report(budget, {addresses = false}))

-- Freeing gives the bytes back to the limit.
talloc.free(blocks[1])
print("after one free, another fits:", (pcall(block_of, budget, 1000)))

-- Nested limits: the inner one is checked, and so is the outer one.
local inner = talloc.new(budget, "inner")
talloc.set_memlimit(inner, 500)
-- the inner context's own 64-byte header counts too: 500 - 64 = 436 bytes are left for chunks
print("inner limit 500, a chunk of 300 (+64 header):", (pcall(block_of, inner, 300)))
print("inner limit 500, 300 more:", (pcall(block_of, inner, 300)))

-- A pool is charged once; what it hands out costs nothing more.
talloc.free_children(budget)
local pool = talloc.pool(budget, 2048)
for i = 1, 10 do talloc.size(pool, 100) end
io.write(talloc.report(budget, {addresses = false}))
talloc.free(pool)
io.write(talloc.report(budget, {addresses = false}))
print("a freed pool returns all its bytes (talloc 2.4 keeps charging the pool's size: its bug 1)")
talloc.free(budget)
