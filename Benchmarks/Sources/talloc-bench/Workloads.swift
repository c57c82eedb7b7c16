// luatalloc benchmarks — workloads W1–W7 (issue 6): inputs, the C rows, and the group layout.
// The TallocCore rows come from CoreRows.swift, the Lua module rows from LuaRows.swift.
// SPDX-License-Identifier: MIT
import CBench
#if canImport(Glibc)
import Glibc
#endif

/// Sizes of the workloads. `quick` shrinks everything that is not a per-iteration count.
struct Config {
    var w2Count = 1000
    var w3Nodes = 100_000
    var w4Count = 100_000
    var w7Depth = 16
    /// binary-trees depth used when a W7 row runs under callgrind (depth 16 takes minutes there).
    var w7CallgrindDepth = 12

    static let talloc96Header = 96  // libtalloc's TC_HDR_SIZE on LP64

    static var quick: Config {
        Config(w2Count: 1000, w3Nodes: 1000, w4Count: 1000, w7Depth: 6, w7CallgrindDepth: 6)
    }
}

/// Deterministic inputs shared by the TallocCore and the C rows (same sizes, same tree, same order).
struct Inputs {
    let w2Sizes: UnsafeMutablePointer<UInt32>
    let w2Count: Int
    /// A pool that holds every W2 allocation with libtalloc's 96-byte headers (so also with ours).
    let w2FitPoolBytes: Int
    let w3Parents: UnsafeMutablePointer<UInt32>
    let w3Nodes: Int
    let w3PoolBytes: Int
    let w4Random: UnsafeMutablePointer<UInt32>
    let w4Count: Int

    init(_ cfg: Config) {
        var rng = XorShift(seed: 0x7a11_0c5e_ed5e_ed01)
        w2Count = cfg.w2Count
        w2Sizes = .allocate(capacity: cfg.w2Count)
        var fit = 4096
        for i in 0..<cfg.w2Count {
            let s = 16 + UInt32(rng.next() % 49)
            w2Sizes[i] = s
            fit += (Config.talloc96Header + Int(s) + 15) & ~15
        }
        w2FitPoolBytes = fit
        w3Nodes = cfg.w3Nodes
        w3Parents = .allocate(capacity: cfg.w3Nodes)
        w3Parents[0] = 0
        for i in 1..<cfg.w3Nodes { w3Parents[i] = UInt32(rng.next() % UInt64(i)) }
        w3PoolBytes = cfg.w3Nodes * (Config.talloc96Header + 32) + 4096
        w4Count = cfg.w4Count
        w4Random = .allocate(capacity: cfg.w4Count)
        for i in 0..<cfg.w4Count { w4Random[i] = UInt32(i) }
        for i in stride(from: cfg.w4Count - 1, to: 0, by: -1) {  // Fisher–Yates
            let j = Int(rng.next() % UInt64(i + 1))
            w4Random.swapAt(i, j)
        }
    }
}

struct XorShift {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
}

extension UnsafeMutablePointer where Pointee == UInt32 {
    func swapAt(_ i: Int, _ j: Int) {
        let t = self[i]
        self[i] = self[j]
        self[j] = t
    }
}

/// Tables (tree nodes) built by one run of binary-trees at `depth` (the Lua program returns the same).
func binaryTreesNodes(_ depth: Int) -> Int {
    let minDepth = 4
    let maxDepth = max(minDepth + 2, depth)
    var n = (1 << (maxDepth + 2)) - 1       // stretch tree
    n += (1 << (maxDepth + 1)) - 1          // long-lived tree
    for d in stride(from: minDepth, through: maxDepth, by: 2) {
        n += (1 << (maxDepth - d + minDepth)) * ((1 << (d + 1)) - 1)
    }
    return n
}

/// A W6 row: `expr` evaluates to the constructor to call, in a Lua state of the row's own (stock
/// allocator and standard libraries, as `lua5.4` has), so that no row's garbage or tables change the pace
/// of another row's collector. `prepare` adds what the row needs (the talloc module).
func luaLoopRow(_ id: String, impl: String, expr: String, counterpart: String? = nil,
                prepare: @escaping (UnsafeMutableRawPointer) -> Void = { _ in }) -> Row {
    var L: UnsafeMutableRawPointer?
    var ref: Int32 = 0
    let r = Row(id, impl: impl, variant: "new + GC", unit: "object", opsPerIter: 1, iters: 100_000,
                callgrindIters: 100_000, counterpart: counterpart) { n in
        cb_lua_run_loop(L, ref, n)
    }
    r.setup = {
        L = cb_lua_new_stock()
        cb_lua_install_w6(L)
        prepare(L!)
        ref = cb_lua_loop_ref(L, expr)
    }
    r.teardown = {
        cb_lua_close(L)
        L = nil
    }
    return r
}

/// A W7 row: binary-trees in a fresh state per iteration.
func binaryTreesRow(_ id: String, impl: String, depth: Int,
                    newState: @escaping () -> UnsafeMutableRawPointer,
                    close: @escaping (UnsafeMutableRawPointer) -> Void = { cb_lua_close($0) }) -> Row {
    let nodes = binaryTreesNodes(depth)
    let r = Row(id, impl: impl, variant: "binary-trees \(depth)", unit: "node", opsPerIter: nodes,
                iters: 1, callgrindIters: 1) { n in
        for _ in 0..<n {
            let L = newState()
            let built = cb_lua_binarytrees(L, Int32(depth))
            precondition(built == nodes, "binary-trees built \(built) nodes, expected \(nodes)")
            close(L)
        }
    }
    r.callgrindOpsPerIter = binaryTreesNodes(Config().w7CallgrindDepth)
    r.bytes = { childPeak(id, w7Depth: depth).map(Double.init) }
    r.bytesLabel = "peak"
    return r
}

func makeGroups(_ cfg: Config, _ inp: Inputs, execMode: Bool, w7Depth: Int?) -> [Group] {
    cb_w2_set_sizes(inp.w2Sizes, inp.w2Count)
    cb_w3_set_parents(inp.w3Parents, inp.w3Nodes)
    var groups: [Group] = []

    // W1 ---------------------------------------------------------------------------------------
    do {
        let w1c = Row("W1.plain.c", impl: "libtalloc", variant: "plain", unit: "iter", opsPerIter: 1,
                      iters: 10_000, callgrindIters: 20_000) { cb_w1_talloc_plain($0) }
        let w1pc = Row("W1.pool.c", impl: "libtalloc", variant: "reused pool", unit: "iter", opsPerIter: 1,
                       iters: 10_000, callgrindIters: 20_000) { cb_w1_talloc_pool($0) }
        w1pc.setup = { cb_w1_talloc_pool_setup() }
        w1pc.teardown = { cb_w1_talloc_pool_teardown() }
        let w1oc = Row("W1.pooled.c", impl: "libtalloc", variant: "pooled_object", unit: "iter",
                       opsPerIter: 1, iters: 10_000, callgrindIters: 20_000) { cb_w1_talloc_pooled_object($0) }
        let w1m = Row("W1.malloc", impl: "malloc", variant: "4 × malloc/free", unit: "iter", opsPerIter: 1,
                      iters: 10_000, callgrindIters: 20_000) { cb_w1_malloc($0) }
        groups.append(Group("W1", "W1 — context + 3 children (1 B, strdup 41 B, 100 B), free the context",
                            reference: "W1.malloc",
                            rows: coreRows("W1", cfg, inp) + [w1c, w1pc, w1oc, w1m]))
    }

    // W2 ---------------------------------------------------------------------------------------
    do {
        let n = inp.w2Count
        let fit = inp.w2FitPoolBytes
        let a = Row("W2.pool64k.c", impl: "libtalloc", variant: "64 KiB pool", unit: "alloc", opsPerIter: n,
                    iters: 20, callgrindIters: 200) { cb_w2_talloc($0, 65536) }
        let b = Row("W2.poolfit.c", impl: "libtalloc", variant: "pool that fits", unit: "alloc", opsPerIter: n,
                    iters: 20, callgrindIters: 200) { cb_w2_talloc($0, fit) }
        let c = Row("W2.nopool.c", impl: "libtalloc", variant: "no pool", unit: "alloc", opsPerIter: n,
                    iters: 20, callgrindIters: 200) { cb_w2_talloc($0, 0) }
        let m = Row("W2.malloc", impl: "malloc", variant: "malloc + free each", unit: "alloc", opsPerIter: n,
                    iters: 20, callgrindIters: 200) { cb_w2_malloc($0) }
        groups.append(Group("W2", "W2 — \(n) allocations of 16–64 B into one pool, then one free",
                            reference: "W2.malloc", rows: coreRows("W2", cfg, inp) + poolStatisticsRows(inp) + [a, b, c, m]))
    }

    // W3 ---------------------------------------------------------------------------------------
    do {
        let n = inp.w3Nodes
        let pool = inp.w3PoolBytes
        let a = Row("W3.tree.c", impl: "libtalloc", variant: "no pool", unit: "node", opsPerIter: n,
                    iters: 1, callgrindIters: 2) { cb_w3_talloc($0, 0) }
        a.bytes = { Double(cb_w3_talloc_bytes(0)) / Double(n) }
        let b = Row("W3.pool.c", impl: "libtalloc", variant: "one big pool", unit: "node", opsPerIter: n,
                    iters: 1, callgrindIters: 2) { cb_w3_talloc($0, pool) }
        let m = Row("W3.malloc", impl: "malloc", variant: "malloc + free each", unit: "node", opsPerIter: n,
                    iters: 1, callgrindIters: 2) { cb_w3_malloc($0) }
        m.bytes = { Double(cb_w3_malloc_bytes()) / Double(n) }
        groups.append(Group("W3", "W3 — \(grouped(Double(n)))-node random tree (32 B payload): build, free the root",
                            reference: "W3.malloc", rows: coreRows("W3", cfg, inp) + [a, b, m]))
    }

    // W4 ---------------------------------------------------------------------------------------
    do {
        let n = inp.w4Count
        func w4(_ id: String, _ variant: String, _ order: UnsafeMutablePointer<UInt32>?) -> Row {
            var state: UnsafeMutableRawPointer?
            let r = Row(id, impl: "libtalloc", variant: variant, unit: "steal", opsPerIter: n,
                        iters: 1, callgrindIters: 2) { cb_w4_talloc(state, $0) }
            r.setup = { state = cb_w4_talloc_setup(n, order) }
            r.teardown = { cb_w4_talloc_teardown(state) }
            return r
        }
        groups.append(Group("W4", "W4 — \(grouped(Double(n))) steals between two parents (16 B children)",
                            rows: coreRows("W4", cfg, inp)
                                + [w4("W4.inorder.c", "creation order", nil),
                                   w4("W4.random.c", "random order", inp.w4Random)]))
    }

    // W5 ---------------------------------------------------------------------------------------
    do {
        func w5(_ id: String, _ variant: String, _ mode: Int32) -> Row {
            var state: UnsafeMutableRawPointer?
            let r = Row(id, impl: "libtalloc", variant: variant, unit: "sequence", opsPerIter: 1,
                        iters: 10_000, callgrindIters: 20_000) { cb_w5_talloc(state, $0) }
            r.setup = { state = cb_w5_talloc_setup(mode) }
            r.teardown = { cb_w5_talloc_teardown(state) }
            return r
        }
        let m = Row("W5.realloc", impl: "malloc", variant: "malloc + realloc ×8 + free", unit: "sequence",
                    opsPerIter: 1, iters: 10_000, callgrindIters: 20_000) { cb_w5_realloc($0) }
        groups.append(Group("W5", "W5 — grow one buffer 16 B → 4 KiB by doubling (8 reallocs), then free",
                            reference: "W5.realloc",
                            rows: coreRows("W5", cfg, inp)
                                + [w5("W5.nopool.c", "no pool", 0), w5("W5.poollast.c", "pool, only chunk", 1),
                                   w5("W5.poolmid.c", "pool, not the last chunk", 2), m]))
    }

    // W6 ---------------------------------------------------------------------------------------
    do {
        let plain = luaLoopRow("W6.plain", impl: "Lua userdata + empty __gc", expr: "bench_plain_new")
        let cb = luaLoopRow("W6.cbinding", impl: "C binding of libtalloc", expr: "bench_ctalloc_new")
        let g = Group("W6", "W6 — from Lua: create one object, collect it (lua5.4 states, stock allocator)",
                      reference: "W6.plain", rows: luaModuleRows(cfg) + [plain, cb])
        g.roundSeconds = 0.25
        groups.append(g)
    }

    // W7 ---------------------------------------------------------------------------------------
    do {
        let depth = w7Depth ?? (execMode ? cfg.w7CallgrindDepth : cfg.w7Depth)
        let stock = binaryTreesRow("W7.stock", impl: "stock allocator", depth: depth,
                                   newState: { cb_lua_new_stock() })
        groups.append(Group("W7", "W7 — Lua binary-trees, depth \(depth): the Lua heap's allocator",
                            reference: "W7.stock", rows: luaHeapRows(cfg, depth) + [stock]))
    }
    return groups
}
