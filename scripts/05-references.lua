-- 05-references.lua — references: a context with more than one parent.
--
-- talloc_reference(owner, ptr) makes `owner` an extra parent of `ptr`. The reference is a small hidden
-- chunk under the owner (it counts as a block, with 0 bytes, and the report shows "reference to:").
-- A referenced context cannot simply be freed; talloc_unlink removes one parent at a time.
--
-- Run it:  luatalloc scripts/05-references.lua

local root = talloc.new(nil, "root")
local data = talloc.strdup(root, "shared data")
local r1 = talloc.new(root, "R1")
local r2 = talloc.new(root, "R2")
talloc.reference(r1, data)
talloc.reference(r2, data)
print("reference_count(data) =", data:reference_count())
io.write(talloc.report_full(root, {addresses = false}))

print("talloc.free(data) ->", talloc.free(data))

-- Unlinking the real parent hands the data to its newest referrer.
print("talloc.unlink(root, data) ->", talloc.unlink(root, data))
print("data's parent is now", talloc.parent_name(data), "and it has", data:reference_count(), "reference")

-- Freeing a referrer drops only its reference... unless it is the real parent: then the data moves to
-- the remaining referrer.
talloc.free(r2)
print("after freeing R2, data lives under", talloc.parent_name(data), "with", data:reference_count(), "references")
io.write(talloc.report_full(root, {addresses = false}))

-- A referenced child survives the free of its parent, owned by the referrer.
local p = talloc.new(root, "P")
local c = talloc.strdup(p, "child of P")
local q = talloc.new(root, "Q")
talloc.reference(q, c)
talloc.free(p)
print("after freeing P, its child lives under", talloc.parent_name(c), "with", c:reference_count(), "references")
talloc.free(root)
