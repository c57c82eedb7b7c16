-- class: 5
-- args: --memlimit 8M
-- rss: yes
-- talloc's indentation makes report text grow with depth squared: the report of a 12,000-deep chain
-- (which itself fits in 8 MB) would need 300 MB. Building it counts against the limit and fails with
-- "not enough memory" before going over; the state goes on.
local top = talloc.new(nil, "top")
local x = top
for i = 1, 12000 do x = talloc.new(x, "n") end
local ok, e = pcall(talloc.report_full, top)
assert(not ok and e:find("not enough memory"), tostring(e))
ok, e = pcall(talloc.report_full)
assert(not ok and e:find("not enough memory"), tostring(e))
ok, e = pcall(talloc.dot, top)
assert(ok or e:find("not enough memory"), tostring(e))
assert(#talloc.report(top) > 0)  -- one level is small
talloc.free(top)
assert(#talloc.report_full() > 0)
print("ok")
