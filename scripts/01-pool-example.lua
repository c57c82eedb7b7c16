-- 01-pool-example.lua — the talloc pools chapter, step by step.
--
-- A pool is one malloc'd block that hands out its children by bumping a pointer. This script follows
-- the example of talloc's tutorial (chapter 5, "Memory pools") and prints, after every step, what the
-- pool holds (talloc.pool_info), a one-line map of its bytes (talloc.pool_map) and talloc's report.
--
-- Run it:  luatalloc scripts/01-pool-example.lua

local function show(step, pool)
  local info = talloc.pool_info(pool)
  print("== " .. step)
  print(string.format("   pool: capacity %d, used %d, available %d, objects %d%s",
    info.capacity, info.used, info.available, info.objects, info.freed and " (freed, pinned)" or ""))
  print("   map:  " .. talloc.pool_map(pool))
  io.write(talloc.report_full(pool, {addresses = false}))
end

-- 1 KiB of pool. The pool itself counts as one object; it is "UNNAMED", as in talloc.
local pool_ctx = talloc.pool(nil, 1024)
show("talloc_pool(NULL, 1024)", pool_ctx)

-- 512 bytes from the pool: the bump pointer moves by the chunk header plus 512, rounded to 16.
local ptr = talloc.size(pool_ctx, 512)
show("ptr = talloc_size(pool_ctx, 512)", pool_ctx)
print(string.format("   ptr is pool memory: %s", tostring(talloc.pool_info(ptr) ~= nil)))

-- 1024 bytes do not fit in what is left: they come from the heap, never from an outer pool.
local ptr2 = talloc.size(ptr, 1024)
show("ptr2 = talloc_size(ptr, 1024)  -- does not fit: malloc'd", pool_ctx)
print(string.format("   ptr2 is pool memory: %s", tostring(talloc.pool_info(ptr2) ~= nil)))

-- 200 bytes still fit. A grandchild of the pool comes from the pool too: talloc looks at the parent
-- (ptr), sees it is pool memory, and carves from that pool.
local ptr3 = talloc.size(ptr, 200)
show("ptr3 = talloc_size(ptr, 200)", pool_ctx)

-- Freeing the last chunk carved gives its bytes back (only the last one: there is no coalescing).
talloc.free(ptr3)
show("talloc_free(ptr3)  -- the last chunk is reclaimed", pool_ctx)
local ptr4 = talloc.size(ptr, 200)
show("ptr4 = talloc_size(ptr, 200)  -- lands where ptr3 was", pool_ctx)

-- Freeing the pool frees everything in it, and the heap chunk hanging off ptr.
print("== talloc_free(pool_ctx)")
print("   freed:", talloc.free(pool_ctx))
print("   ptr, ptr2, ptr4 freed with it:", talloc.is_freed(ptr), talloc.is_freed(ptr2), talloc.is_freed(ptr4))

print()
print("Where the chapter's round numbers differ: it says 512 bytes are left after the first")
print("allocation. Every chunk also carries a header: talloc's is 96 bytes, ours 64, and chunks are")
print("rounded to 16 bytes. So 512 bytes take ALIGN16(64 + 512) = 576 bytes of the pool here")
print("(talloc: 608), leaving 448 (talloc: 416), and 200 bytes take 272 (talloc: 304).")
