-- class: 3
-- args: --memlimit 8M --pool-report -W --trace /dev/null
-- os.exit(status, true) in a destructor that a module call (talloc.free) runs (finding A3 of adv2): Lua's
-- os.exit closes the state from inside the call, so the module's close ran while the state still counted
-- the free's body as running, and took the frame of that body (its upvalues) for the state's __gc's own:
-- the close's destructors and its detaching of chunks read tables through upvalues the __gc does not
-- have, a SIGSEGV in liblua (with or without --trace/--pool-report). Now the close never uses a frame of a
-- body that will not resume.
local out = talloc.new(nil, "out")
local p = talloc.pool(nil, 1024)
talloc.steal(out, talloc.size(p, 100, "stolen out"))       -- the free below pins the pool (-W warns)
local kept = talloc.new(nil, "kept")                        -- freed by the close: its destructor runs
talloc.set_destructor(kept, function(x) io.stdout:write("") end)
local c = talloc.new(p, "c")
talloc.set_destructor(c, function(x)
  assert(talloc.pool_stats(x).members >= 1)
  print("ok")
  os.exit(0, true)
end)
talloc.free(p)
print("not reached")
