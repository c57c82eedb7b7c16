-- 09-pinned-pool.lua — finding the member that pins a pool.
--
-- 02-steal-pitfall.lua showed the pitfall: a member stolen out of a pool keeps the pool's whole block
-- allocated after the pool is freed ("pinned"), until that member goes. In a real program the steal is
-- far from the free, and nothing says which member it was. luatalloc tells:
--   - while the pool lives, talloc.pool_stats(pool).stolen counts members stolen out of it;
--   - once it is freed, talloc.pool_stats(member) on any member still alive says it is pinned, by whom;
--   - `luatalloc -W` warns at the moment a pool is pinned, naming the members (a Lua warning), and
--     `luatalloc --pool-report` lists every pinned pool at exit.
--
-- Run it:  luatalloc scripts/09-pinned-pool.lua          (and with -W, and with --pool-report)

local cache = talloc.new(nil, "cache")

-- Somewhere deep in the program: a parser that keeps one string it likes, by stealing it.
local function parse(pool, text)
  local line = talloc.strdup(pool, text)
  local key = talloc.strndup(pool, text, 7)
  if talloc.get_name(key) == "session" then
    talloc.steal(cache, line)            -- the culprit
  end
  return line
end

-- Elsewhere: one pool per batch of input, freed when the batch is done.
local pool = talloc.pool(nil, 16 * 1024)
for _, text in ipairs({ "user=alice", "session=42", "lang=en", "theme=dark" }) do
  parse(pool, text)
end
print("members stolen out of the pool while it lives:", talloc.pool_stats(pool).stolen)
print("talloc.free(pool) ->", talloc.free(pool))

-- The pool is freed, but its block is not. Ask any member that is still alive: one in the cache.
local kept
for c in talloc.children(cache) do kept = c end
local s = talloc.pool_stats(kept)
print(string.format("the pool: freed=%s, pinned by %d member(s), %d bytes of its block still allocated",
  tostring(s.freed), s.pinning_members, s.pinned_bytes))
for _, m in ipairs(s.pinned_by) do
  print(string.format("   pinned by '%s' (%d bytes), now under '%s'", m.name, m.size, m.parent))
end
print("the pinned block: " .. talloc.pool_map(kept))

-- The remedy (03-memdup-remedy.lua): copy out what must outlive the pool, and free the original.
local copy = talloc.strdup(cache, kept:string())
talloc.free(kept)
print("after copying it out: the copy is pool memory:", talloc.pool_info(copy) ~= nil)
print("and the pool's block is gone with its last member: the cache holds", talloc.total_blocks(cache), "blocks")

-- The same run, with the copy in the parser from the start: nothing is stolen, nothing pinned.
local function parse_copying(pool, text)
  local line = talloc.strdup(pool, text)
  if text:sub(1, 7) == "session" then talloc.strdup(cache, text) end
  return line
end
pool = talloc.pool(nil, 16 * 1024)
for _, text in ipairs({ "user=alice", "session=42", "lang=en", "theme=dark" }) do
  parse_copying(pool, text)
end
print("copying parser: members stolen out:", talloc.pool_stats(pool).stolen, "- free ->", talloc.free(pool))
io.write(talloc.report_full(cache, {addresses = false}))
talloc.free(cache)
