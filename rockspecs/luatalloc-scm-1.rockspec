-- LuaRocks: the rock `luatalloc` installs the Lua module `talloc` (require "talloc") and the program
-- `luatalloc`, built by the Swift package (the Makefile's `rock` and `install-rock` targets).
--
-- From a clone:   luarocks --lua-version=5.4 make rockspecs/luatalloc-scm-1.rockspec
--                 (add --local, or --tree DIR, to install outside the system tree)
-- Building needs Swift 6 and Debian's pkg-config, liblua5.4-dev and libedit-dev (./setup.sh installs
-- them). The products link the Swift runtime statically: the installed module needs only liblua5.4.
rockspec_format = "3.0"
package = "luatalloc"
version = "scm-1"
source = {
   -- `luarocks make` builds the clone it runs in; `luarocks build` of this file fetches this URL, so
   -- set it to where you host the repository.
   url = "git+https://example.invalid/luatalloc.git",
}
description = {
   summary = "Samba's talloc (hierarchical allocator with pools) in Swift, as a Lua 5.4 module",
   detailed = [[
talloc, the hierarchical allocator with memory pools, rebuilt in Swift and bound into Lua 5.4: make
contexts, hang children off them, carve them from pools, give them destructors and extra parents, free
whole trees at once, and see them as talloc's report, a pool map or a Graphviz picture. No script can
crash the process through the module: misuse is a Lua error. Also installs `luatalloc`, a drop-in for
lua5.4 with the module built in and one memory limit over Lua's heap and every context.
]],
   license = "MIT",
   labels = { "memory", "allocator", "talloc" },
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
build = {
   type = "make",
   build_target = "rock",
   build_variables = {
      -- unused (SwiftPM builds the C targets with pkg-config's flags); passed so LuaRocks does not warn
      CFLAGS = "$(CFLAGS)",
   },
   install_target = "install-rock",
   install_variables = {
      ROCK_LIBDIR = "$(LIBDIR)",
      ROCK_BINDIR = "$(BINDIR)",
   },
   copy_directories = { "docs" },
}
