// luatalloc benchmarks — the Lua-level suite (issue 11): each workload is one Lua script run three ways in
// stock lua5.4 states (standard allocator and libraries, as `lua5.4` has): on the talloc module (opened
// as `require "talloc"` opens it), on Lua's own values (a full userdata with an empty __gc, plain tables),
// and on a minimal C binding of libtalloc (Sources/CBench/lua_suite.c) where libtalloc has the function.
// One operation is one context made, one steal, one write+read pair, one step of a walk, one node of a
// report; instructions per operation from callgrind, time ratios per round in one process (Harness).
// SPDX-License-Identifier: MIT
import CBench
import LuaTalloc
import TallocCore
#if canImport(Glibc)
import Glibc
#endif

/// One implementation of a workload: the script's `T` (the first argument of the chunk) is the global
/// `impl`; the chunk returns `function(n)` running n iterations.
struct LuaScript {
    let impl: String
    let code: String
}

/// How many contexts the bytes-per-context rows hold in their child process (the issue measured a
/// 1,000,000-deep chain).
let luaRSSContexts = 1_000_000

/// A row running `script` in a state of its own (the talloc module opened, the C binding and the plain
/// helpers installed).
func luaSuiteRow(_ id: String, impl: String, variant: String, unit: String, opsPerIter: Int, iters: Int,
                 callgrindIters: Int, counterpart: String? = nil, script: LuaScript) -> Row {
    var L: UnsafeMutableRawPointer?
    var ref: Int32 = 0
    let r = Row(id, impl: impl, variant: variant, unit: unit, opsPerIter: opsPerIter, iters: iters,
                callgrindIters: callgrindIters, counterpart: counterpart) { n in cb_lua_run_loop(L, ref, n) }
    r.setup = {
        L = cb_lua_new_stock()
        cb_lua_install_suite(L)
        openTallocModule(L!)
        ref = cb_lua_load_workload(L, script.code, "=" + id, script.impl)
    }
    r.teardown = {
        cb_lua_close(L)
        L = nil
    }
    return r
}

/// Opens the module into a stock lua5.4 state exactly as the `talloc` product's luaopen_talloc does for
/// `require "talloc"` (Sources/TallocLuaModule), and makes it the global `talloc`.
func openTallocModule(_ L: UnsafeMutableRawPointer) {
    cb_lua_require(L, "talloc") { L in
        guard let root = try? TallocContext.new(parent: nil, name: "lua contexts") else { return 0 }
        let status = LuaTallocModule.open(OpaquePointer(L!), root: root, ownsRoot: true, setGlobal: false)
        precondition(status == 0, "talloc module failed to open")
        return 1
    }
}

private let implNames = ["talloc": "talloc module", "plain": "Lua's own values", "ct": "C binding of libtalloc"]
private let rowSuffix = ["talloc": "talloc", "plain": "plain", "ct": "cbinding"]

/// A workload: its scripts (talloc, plain, and ct where libtalloc has the functions) and its sizes.
struct LuaWorkload {
    let id: String
    let variant: String
    let unit: String
    let opsPerIter: Int
    let iters: Int
    let callgrindIters: Int
    let scripts: [LuaScript]

    func rows() -> [Row] {
        scripts.map { s in
            let cbID = scripts.contains { $0.impl == "ct" } ? "\(id).cbinding" : nil
            return luaSuiteRow("\(id).\(rowSuffix[s.impl]!)", impl: implNames[s.impl]!, variant: variant, unit: unit,
                               opsPerIter: opsPerIter, iters: iters, callgrindIters: callgrindIters,
                               counterpart: s.impl == "talloc" ? cbID : nil, script: s)
        }
    }
}

// MARK: - The workloads

/// `new + GC` against the floor the issue names: one plain userdata with an empty __gc.
private let newFloor = LuaScript(impl: "plain", code: """
    local _, P = ...
    local ud = P.ud
    return function(n) for i = 1, n do ud() end collectgarbage() end
    """)

private func newScript(_ impl: String, _ call: String) -> LuaScript {
    LuaScript(impl: impl, code: """
        local T = ...
        local new = T.new
        return function(n) for i = 1, n do \(call) end collectgarbage() end
        """)
}

private let tree = """
    local T = ...
    local new, size, strdup, free = T.new, T.size, T.strdup, T.free
    return function(n)
      for it = 1, n do
        local p = new(nil, "tree")
        for i = 1, 100 do strdup(size(p, 16), "leaf") end
        free(p)
      end
      collectgarbage()
    end
    """

private let poolScript = """
    local T = ...
    local pool, size, free = T.pool, T.size, T.free
    return function(n)
      for it = 1, n do
        local pl = pool(nil, 16384)
        for i = 1, 100 do size(pl, 16) end
        free(pl)
      end
      collectgarbage()
    end
    """

private let stealScript = """
    local T = ...
    local A, B = T.new(nil, "A"), T.new(nil, "B")
    local h = {}
    for i = 1, 100 do h[i] = T.size(A, 16) end
    local steal = T.steal
    return function(n)
      for it = 1, n do
        for i = 1, 100 do steal(B, h[i]) end
        A, B = B, A
      end
    end
    """

private let writeRead = """
    local T, P = ...
    local c = T.size and T.size(nil, 64) or P.buf(64)
    local s = "abcdefgh"
    return function(n) for i = 1, n do c:write(0, s); local r = c:read(0, 8) end end
    """

private let walkChildren = """
    local T = ...
    local p = T.new(nil, "wide")
    local h = {}
    for i = 1, 100 do h[i] = T.new(p, "child") end
    local children = T.children
    return function(n) for it = 1, n do for ch in children(p) do end end end
    """

private let walkChildrenNoHandles = """
    local T = ...
    local p = T.new(nil, "wide")
    for i = 1, 100 do T.new(p, "child") end
    local children = T.children
    return function(n) for it = 1, n do for ch in children(p) do end collectgarbage() end end
    """

private let walkParent = """
    local T = ...
    local p = T.new(nil, "wide")
    local h = {}
    for i = 1, 100 do h[i] = T.new(p, "child") end
    local parent = T.parent
    -- the function keeps p: the C binding's child handles do not keep their parent alive
    return function(n) local keep = p for it = 1, n do for i = 1, 100 do local x = parent(h[i]) end end collectgarbage() end
    """

private let findByName = """
    local T = ...
    local x = T.new(nil, "top")
    local top = x
    for i = 1, 99 do x = T.new(x, "link") end
    local find = T.find_parent_byname
    return function(n) local keep = top for it = 1, n do local y = find(x, "top") end collectgarbage() end
    """

private func textOfTree(_ fn: String) -> String {
    """
    local T = ...
    local p = T.new(nil, "wide")
    for i = 1, 100 do T.new(p, "child") end
    local f = T.\(fn)
    return function(n) for it = 1, n do local s = f(p) end end
    """
}

/// A chain of 1,000 contexts (each the child of the one before), every handle held in an array, then freed.
private let chain = """
    local T = ...
    local new, free = T.new, T.free
    return function(n)
      for it = 1, n do
        local t = {}
        local p = new(nil, "top")
        t[1] = p
        for i = 2, 1000 do p = new(p, "link"); t[i] = p end
        free(t[1])
      end
      collectgarbage()
    end
    """

/// The workloads of issue 11, in its order.
func luaWorkloads() -> [[LuaWorkload]] {
    [
        [LuaWorkload(id: "L1.named", variant: "new(nil, name) + GC", unit: "object", opsPerIter: 1, iters: 100_000,
                     callgrindIters: 50_000,
                     scripts: [newScript("talloc", "new(nil, 'ctx')"), newScript("ct", "new(nil, 'ctx')")]),
         LuaWorkload(id: "L1.default", variant: "new() + GC (FILE:LINE name)", unit: "object", opsPerIter: 1,
                     iters: 100_000, callgrindIters: 50_000,
                     scripts: [newScript("talloc", "new()"), newScript("ct", "new()")]),
         LuaWorkload(id: "L1.floor", variant: "userdata + empty __gc", unit: "object", opsPerIter: 1,
                     iters: 100_000, callgrindIters: 50_000, scripts: [newFloor])],
        [LuaWorkload(id: "L2.tree", variant: "tree: 100 × (size 16 + strdup), free", unit: "context", opsPerIter: 201,
                     iters: 500, callgrindIters: 250,
                     scripts: [LuaScript(impl: "talloc", code: tree), LuaScript(impl: "ct", code: tree),
                               LuaScript(impl: "plain", code: """
                                   local _, P = ...
                                   local ud = P.ud
                                   return function(n)
                                     for it = 1, n do
                                       local p = {ud()}
                                       for i = 1, 100 do local c = ud(); p[2 * i] = c; p[2 * i + 1] = ud() end
                                     end
                                     collectgarbage()
                                   end
                                   """)])],
        [LuaWorkload(id: "L3.pool", variant: "100 × size 16 in a pool that fits, free", unit: "alloc", opsPerIter: 100,
                     iters: 1000, callgrindIters: 500,
                     scripts: [LuaScript(impl: "talloc", code: poolScript), LuaScript(impl: "ct", code: poolScript),
                               LuaScript(impl: "plain", code: """
                                   local _, P = ...
                                   local ud = P.ud
                                   return function(n)
                                     for it = 1, n do ud() for i = 1, 100 do ud() end end
                                     collectgarbage()
                                   end
                                   """)])],
        [LuaWorkload(id: "L4.steal", variant: "steal, handles in a Lua array", unit: "steal", opsPerIter: 100,
                     iters: 1000, callgrindIters: 1000,
                     scripts: [LuaScript(impl: "talloc", code: stealScript), LuaScript(impl: "ct", code: stealScript),
                               LuaScript(impl: "plain", code: """
                                   local _, P = ...
                                   local A, B, h = {}, {}, {}
                                   for i = 1, 100 do h[i] = P.ud(); A[i] = h[i] end
                                   return function(n)
                                     for it = 1, n do
                                       for i = 1, 100 do local x = h[i]; B[i] = x; A[i] = nil end
                                       A, B = B, A
                                     end
                                   end
                                   """)])],
        [LuaWorkload(id: "L5.rw8", variant: "c:write(0, 8 bytes) + c:read(0, 8)", unit: "pair", opsPerIter: 1,
                     iters: 100_000, callgrindIters: 50_000,
                     scripts: [LuaScript(impl: "talloc", code: writeRead), LuaScript(impl: "ct", code: writeRead),
                               LuaScript(impl: "plain", code: writeRead)]),
         LuaWorkload(id: "L5.calls", variant: "c:nop(0, s) + c:nop(0, 8): two calls of an empty C method",
                     unit: "pair", opsPerIter: 1, iters: 100_000, callgrindIters: 50_000,
                     scripts: [LuaScript(impl: "plain", code: """
                                   local _, P = ...
                                   local c, s = P.buf(64), "abcdefgh"
                                   return function(n) for i = 1, n do c:nop(0, s); local r = c:nop(0, 8) end end
                                   """)]),
         LuaWorkload(id: "L5.pack", variant: "c:pack(0, '<i8', i) + c:unpack(0, '<i8')", unit: "pair", opsPerIter: 1,
                     iters: 100_000, callgrindIters: 50_000,
                     scripts: [LuaScript(impl: "talloc", code: """
                                   local T = ...
                                   local c = T.size(nil, 64)
                                   return function(n) for i = 1, n do c:pack(0, "<i8", i); local v = c:unpack(0, "<i8") end end
                                   """),
                               LuaScript(impl: "ct", code: """
                                   local T = ...
                                   local c = T.size(nil, 64)
                                   return function(n) for i = 1, n do c:pack(0, "<i8", i); local v = c:unpack(0, "<i8") end end
                                   """),
                               LuaScript(impl: "plain", code: """
                                   local pack, unpack = string.pack, string.unpack
                                   return function(n) for i = 1, n do local s = pack("<i8", i); local v = unpack("<i8", s) end end
                                   """)])],
        [LuaWorkload(id: "L6.children", variant: "children() over 100 held handles", unit: "step", opsPerIter: 100,
                     iters: 1000, callgrindIters: 1000,
                     scripts: [LuaScript(impl: "talloc", code: walkChildren),
                               LuaScript(impl: "plain", code: """
                                   local _, P = ...
                                   local p = {}
                                   for i = 1, 100 do p[i] = P.ud() end
                                   return function(n) for it = 1, n do for i, ch in ipairs(p) do end end end
                                   """)]),
         LuaWorkload(id: "L6.calls", variant: "one call of an empty C function a step", unit: "step",
                     opsPerIter: 100, iters: 1000, callgrindIters: 1000,
                     scripts: [LuaScript(impl: "plain", code: """
                                   local _, P = ...
                                   local h, nop = {}, P.nop
                                   for i = 1, 100 do h[i] = P.ud() end
                                   return function(n) for it = 1, n do for i = 1, 100 do local x = nop(h[i]) end end end
                                   """)]),
         LuaWorkload(id: "L6.fresh", variant: "children() making each handle (a collection after each walk)",
                     unit: "step", opsPerIter: 100, iters: 200, callgrindIters: 200,
                     scripts: [LuaScript(impl: "talloc", code: walkChildrenNoHandles)]),
         LuaWorkload(id: "L6.parent", variant: "parent() of 100 held handles", unit: "step", opsPerIter: 100,
                     iters: 1000, callgrindIters: 1000,
                     scripts: [LuaScript(impl: "talloc", code: walkParent), LuaScript(impl: "ct", code: walkParent),
                               LuaScript(impl: "plain", code: """
                                   local _, P = ...
                                   local p = {name = "wide"}
                                   local h = {}
                                   for i = 1, 100 do h[i] = {name = "child", parent = p} end
                                   return function(n) for it = 1, n do for i = 1, 100 do local x = h[i].parent end end end
                                   """)]),
         LuaWorkload(id: "L6.find", variant: "find_parent_byname, 100-deep chain", unit: "level", opsPerIter: 100,
                     iters: 1000, callgrindIters: 1000,
                     scripts: [LuaScript(impl: "talloc", code: findByName), LuaScript(impl: "ct", code: findByName),
                               LuaScript(impl: "plain", code: """
                                   local x = {name = "top"}
                                   for i = 1, 99 do x = {name = "link", parent = x} end
                                   local function find(x, name)
                                     while x do if x.name == name then return x end x = x.parent end
                                   end
                                   return function(n) for it = 1, n do local y = find(x, "top") end end
                                   """)])],
        [LuaWorkload(id: "L7.report", variant: "report_full, 101 nodes", unit: "node", opsPerIter: 101,
                     iters: 200, callgrindIters: 200,
                     scripts: [LuaScript(impl: "talloc", code: textOfTree("report_full")),
                               LuaScript(impl: "ct", code: textOfTree("report_full")),
                               LuaScript(impl: "plain", code: plainTreeText(dot: false))]),
         LuaWorkload(id: "L7.dot", variant: "dot, 101 nodes", unit: "node", opsPerIter: 101,
                     iters: 200, callgrindIters: 200,
                     scripts: [LuaScript(impl: "talloc", code: textOfTree("dot")),
                               LuaScript(impl: "plain", code: plainTreeText(dot: true))])],
        [LuaWorkload(id: "L8.chain", variant: "1,000-deep chain, handles held, free", unit: "context",
                     opsPerIter: 1000, iters: 50, callgrindIters: 50,
                     scripts: [LuaScript(impl: "talloc", code: chain), LuaScript(impl: "ct", code: chain),
                               LuaScript(impl: "plain", code: """
                                   local _, P = ...
                                   local udp = P.udp
                                   return function(n)
                                     for it = 1, n do
                                       local t = {}
                                       local p = udp(nil)
                                       t[1] = p
                                       for i = 2, 1000 do p = udp(p); t[i] = p end
                                     end
                                     collectgarbage()
                                   end
                                   """)])],
    ]
}

/// The text of a 101-node tree of Lua tables, formatted as report_full (or DOT) formats it.
private func plainTreeText(dot: Bool) -> String {
    let line = dot ? #"string.format("  \"%s\" -> \"%s\";", tostring(t), tostring(k))"#
        : #"string.format("    %-30s contains %6d bytes in %3d blocks (ref %d) %s", k.name, 0, 1, 0, tostring(k))"#
    let head = dot ? #""digraph talloc {""# : #"string.format("full talloc report on '%s' (total %6d bytes in %3d blocks)", t.name, 0, #t.kids + 1)"#
    return """
        local t = {name = "wide", kids = {}}
        for i = 1, 100 do t.kids[i] = {name = "child", kids = {}} end
        local function text(t)
          local lines = {\(head)}
          for i, k in ipairs(t.kids) do lines[#lines + 1] = \(line) end
          \(dot ? "lines[#lines + 1] = \"}\"" : "")
          return table.concat(lines, "\\n")
        end
        return function(n) for it = 1, n do local s = text(t) end end
        """
}

// MARK: - Bytes per Lua-visible context (RSS, in a child process)

/// N contexts held: children of one top-level context, every handle in a Lua array (wide rather than a
/// chain: libtalloc frees recursively and overflows the C stack on a 1,000,000-deep chain).
private let holdScripts: [String: String] = [
    "talloc": "local T = ... return function(n) local t = {} local top = T.new(nil, 'top') t[1] = top for i = 2, n do t[i] = T.new(top, 'c') end HELD = t end",
    "ct": "local T = ... return function(n) local t = {} local top = T.new(nil, 'top') t[1] = top for i = 2, n do t[i] = T.new(top, 'c') end HELD = t end",
    "plain": "local _, P = ... return function(n) local t = {} local top = P.udp(nil) t[1] = top for i = 2, n do t[i] = P.udp(top) end HELD = t end",
]

/// In a child (`TALLOC_BENCH_RSS=N`): builds N contexts held in a Lua array in a fresh state and prints
/// "rss BYTES-PER-CONTEXT" (resident set growth over N).
func luaHoldAndReportRSS(_ impl: String, _ count: Int) {
    let L = cb_lua_new_stock()
    cb_lua_install_suite(L)
    openTallocModule(L!)
    let ref = cb_lua_load_workload(L, holdScripts[impl]!, "=hold", impl)
    cb_lua_run_loop(L, ref, 1)  // warm the state: its own tables, the module
    let before = cb_rss_bytes()
    cb_lua_run_loop(L, ref, count)
    let after = cb_rss_bytes()
    print("rss \(Double(after - before) / Double(count))")
    cb_lua_close(L)
}

/// Bytes per context of the chain row `id` (impl `impl`): the child process's answer.
func childRSSPerContext(_ id: String) -> Double? {
    var template = Array("/tmp/talloc-bench-rss.XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    guard fd >= 0 else { return nil }
    close(fd)
    let out = String(cString: template)
    defer { unlink(out) }
    let pid = spawn([selfExecutable(), "--exec", id, "--iters", "1"], stdout: out,
                    env: ["TALLOC_BENCH_RSS=\(luaRSSContexts)"])
    if pid < 0 { return nil }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    guard status == 0, let f = fopen(out, "r") else { return nil }
    defer { fclose(f) }
    var line: UnsafeMutablePointer<CChar>?
    var cap = 0
    var result: Double?
    while getline(&line, &cap, f) > 0 {
        let s = String(cString: line!).trimmingCharacters()
        if s.hasPrefix("rss ") { result = Double(s.dropFirst(4)) }
    }
    free(line)
    return result
}

/// The suite's groups, one per workload family (each row of a group is timed in the same rounds). The plain
/// row of each group is its reference; the talloc row's counterpart is the C binding's.
func luaSuiteGroups(quick: Bool) -> [Group] {
    let titles = ["L1": "L1 — new + collection (the floor: a plain userdata with an empty __gc)",
                  "L2": "L2 — a tree: 100 children by size, a strdup under each, freed at once",
                  "L3": "L3 — 100 allocations carved from a pool that fits them, freed with the pool",
                  "L4": "L4 — steal between two parents, handles in a Lua array",
                  "L5": "L5 — memory access: write + read of 8 bytes, pack + unpack of an integer",
                  "L6": "L6 — walks: children and parent over a wide tree, find_parent_byname up a chain",
                  "L7": "L7 — report_full and dot of a tree of 101",
                  "L8": "L8 — a chain of contexts, every handle held; bytes per Lua-visible context: RSS of 1,000,000 held, / 1,000,000"]
    let rss = getenv("TALLOC_BENCH_RSS").flatMap { Int(String(cString: $0)) }
    return luaWorkloads().map { family in
        let name = String(family[0].id.prefix(2))
        var rows = family.flatMap { $0.rows() }
        if quick { for r in rows { r.iters = 1 } }
        for r in rows where r.id.hasPrefix("L8.") {
            let impl = r.id.hasSuffix(".talloc") ? "talloc" : r.id.hasSuffix(".plain") ? "plain" : "ct"
            if let rss {
                let run = r.run
                r.run = { _ in luaHoldAndReportRSS(impl, rss); _ = run }
            }
            if !quick { r.bytes = { childRSSPerContext(r.id) } }
        }
        let reference = rows.first { $0.id.hasSuffix(".plain") }?.id
        if name == "L1" { rows.sort { ($0.id.hasSuffix(".plain") ? 1 : 0) < ($1.id.hasSuffix(".plain") ? 1 : 0) } }
        let g = Group(name, titles[name] ?? name, reference: reference, rows: rows)
        g.roundSeconds = 0.25
        return g
    }
}
