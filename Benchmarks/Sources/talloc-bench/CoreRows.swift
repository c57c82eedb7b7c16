// luatalloc benchmarks — the TallocCore rows of W1–W5: the same operations as the C rows in
// CBench/talloc_malloc.c, through TallocCore's public API as a Swift user would call it
// (`allocate(parent:byteCount:)` ≙ talloc_size, `new(parent:)` ≙ talloc_new, `strdup(parent:bytes:)` of
// a C string ≙ talloc_strdup, `reallocate(byteCount:)` ≙ talloc_realloc_size).
// SPDX-License-Identifier: MIT
import CBench
import TallocCore

/// The C rows pass results through an empty `asm volatile` (0 instructions). Swift has no such barrier and
/// needs none here: every allocation is linked into its parent, which the optimiser cannot drop.
@inline(__always) func escape(_ c: TallocContext) {}

/// cb_str41 as the bytes of a C string (strdup stops at its NUL, as talloc_strdup's strlen does). A global
/// outside main.swift is initialised lazily (a `swift_once` check on every read, which the C rows do not
/// pay): the rows read it once, before their loops.
let str41 = UnsafeRawBufferPointer(start: UnsafeRawPointer(cb_string41()), count: 42)

func coreRows(_ workload: String, _ cfg: Config, _ inp: Inputs) -> [Row] {
    switch workload {
    case "W1": return coreW1()
    case "W2": return coreW2(inp)
    case "W3": return coreW3(inp)
    case "W4": return coreW4(inp)
    case "W5": return coreW5()
    default: return []
    }
}

@inline(__always)
func w1Body(_ ctx: TallocContext, _ str41: UnsafeRawBufferPointer) {
    let a = try! TallocContext.allocate(parent: ctx, byteCount: 1)
    let s = try! TallocContext.strdup(parent: ctx, bytes: str41)
    let b = try! TallocContext.allocate(parent: ctx, byteCount: 100)
    escape(a); escape(s); escape(b)
    try! ctx.free()
}

func coreW1() -> [Row] {
    let plain = Row("W1.plain.core", impl: "TallocCore", variant: "plain", unit: "iter", opsPerIter: 1,
                    iters: 10_000, callgrindIters: 20_000, counterpart: "W1.plain.c") { n in
        let s = str41
        for _ in 0..<n { w1Body(try! TallocContext.new(parent: nil), s) }
    }
    var pool: TallocContext?
    let pooled = Row("W1.pool.core", impl: "TallocCore", variant: "reused pool", unit: "iter", opsPerIter: 1,
                     iters: 10_000, callgrindIters: 20_000, counterpart: "W1.pool.c") { n in
        let p = pool!
        let s = str41
        for _ in 0..<n { w1Body(try! TallocContext.new(parent: p), s) }
    }
    pooled.setup = { pool = try! TallocContext.pool(parent: nil, capacity: 4096) }
    pooled.teardown = { try! pool!.free(); pool = nil }
    let object = Row("W1.pooled.core", impl: "TallocCore", variant: "pooled_object", unit: "iter", opsPerIter: 1,
                     iters: 10_000, callgrindIters: 20_000, counterpart: "W1.pooled.c") { n in
        let s = str41
        for _ in 0..<n {
            w1Body(try! TallocContext.pooledObject(parent: nil, byteCount: 0, name: "pooled", subobjects: 3,
                                                   subobjectBytes: 1 + 42 + 100), s)
        }
    }
    return [plain, pooled, object]
}

func coreW2(_ inp: Inputs) -> [Row] {
    let sizes = inp.w2Sizes
    let count = inp.w2Count
    func row(_ key: String, _ variant: String, _ poolBytes: Int) -> Row {
        Row("W2.\(key).core", impl: "TallocCore", variant: variant, unit: "alloc", opsPerIter: count,
            iters: 20, callgrindIters: 200, counterpart: "W2.\(key).c") { n in
            for _ in 0..<n {
                let pool = poolBytes > 0 ? try! TallocContext.pool(parent: nil, capacity: poolBytes)
                                         : try! TallocContext.new(parent: nil)
                for k in 0..<count {
                    escape(try! TallocContext.allocate(parent: pool, byteCount: Int(sizes[k])))
                }
                try! pool.free()
            }
        }
    }
    return [row("pool64k", "64 KiB pool", 65536), row("poolfit", "pool that fits", inp.w2FitPoolBytes),
            row("nopool", "no pool", 0)]
}

func coreW3(_ inp: Inputs) -> [Row] {
    let parents = inp.w3Parents
    let count = inp.w3Nodes
    let nodes = UnsafeMutablePointer<TallocContext>.allocate(capacity: count)
    @inline(__always) func build(_ top: TallocContext?) -> TallocContext {
        nodes[0] = try! TallocContext.allocate(parent: top, byteCount: 32)
        for k in 1..<count { nodes[k] = try! TallocContext.allocate(parent: nodes[Int(parents[k])], byteCount: 32) }
        return nodes[0]
    }
    func row(_ key: String, _ variant: String, _ poolBytes: Int) -> Row {
        let r = Row("W3.\(key).core", impl: "TallocCore", variant: variant, unit: "node", opsPerIter: count,
                    iters: 1, callgrindIters: 2, counterpart: "W3.\(key).c") { n in
            for _ in 0..<n {
                let pool = poolBytes > 0 ? try! TallocContext.pool(parent: nil, capacity: poolBytes) : nil
                let root = build(pool)
                try! (pool ?? root).free()
            }
        }
        if poolBytes == 0 {
            r.bytes = {
                cb_heap_trim()
                let before = cb_heap_in_use()
                let root = build(nil)
                let after = cb_heap_in_use()
                try! root.free()
                return Double(after - before) / Double(count)
            }
        }
        return r
    }
    return [row("tree", "no pool", 0), row("pool", "one big pool", inp.w3PoolBytes)]
}

func coreW4(_ inp: Inputs) -> [Row] {
    let count = inp.w4Count
    func row(_ key: String, _ variant: String, _ order: UnsafeMutablePointer<UInt32>?) -> Row {
        var parents: [TallocContext] = []
        var side = 0
        let children = UnsafeMutablePointer<TallocContext>.allocate(capacity: count)
        let ord = UnsafeMutablePointer<UInt32>.allocate(capacity: count)
        let r = Row("W4.\(key).core", impl: "TallocCore", variant: variant, unit: "steal", opsPerIter: count,
                    iters: 1, callgrindIters: 2, counterpart: "W4.\(key).c") { n in
            for _ in 0..<n {
                let to = parents[1 - side]
                for k in 0..<count { try! children[Int(ord[k])].steal(to: to) }
                side = 1 - side
            }
        }
        r.setup = {
            parents = [try! TallocContext.new(parent: nil), try! TallocContext.new(parent: nil)]
            side = 0
            for k in 0..<count {
                children[k] = try! TallocContext.allocate(parent: parents[0], byteCount: 16)
                ord[k] = order?[k] ?? UInt32(k)
            }
        }
        r.teardown = {
            try! parents[0].free()
            try! parents[1].free()
            parents = []
        }
        return r
    }
    return [row("inorder", "creation order", nil), row("random", "random order", inp.w4Random)]
}

func coreW5() -> [Row] {
    func row(_ key: String, _ variant: String, _ mode: Int) -> Row {
        var parent: TallocContext?
        let r = Row("W5.\(key).core", impl: "TallocCore", variant: variant, unit: "sequence", opsPerIter: 1,
                    iters: 10_000, callgrindIters: 20_000, counterpart: "W5.\(key).c") { n in
            let p = parent!
            if mode == 2 {
                var blockers = [TallocContext](repeating: p, count: 9)
                for _ in 0..<n {
                    var buf = try! TallocContext.allocate(parent: p, byteCount: 16)
                    blockers[0] = try! TallocContext.allocate(parent: p, byteCount: 1)
                    var b = 1
                    var size = 32
                    while size <= 4096 {
                        try! buf.reallocate(byteCount: size)
                        blockers[b] = try! TallocContext.allocate(parent: p, byteCount: 1)
                        b += 1
                        size *= 2
                    }
                    escape(buf)
                    try! buf.free()
                    for k in 0..<b { try! blockers[k].free() }
                }
                return
            }
            for _ in 0..<n {
                var buf = try! TallocContext.allocate(parent: p, byteCount: 16)
                var size = 32
                while size <= 4096 {
                    try! buf.reallocate(byteCount: size)
                    size *= 2
                }
                escape(buf)
                try! buf.free()
            }
        }
        r.setup = {
            parent = mode == 0 ? try! TallocContext.new(parent: nil) : try! TallocContext.pool(parent: nil, capacity: 16384)
        }
        r.teardown = { try! parent!.free(); parent = nil }
        return r
    }
    return [row("nopool", "no pool", 0), row("poollast", "pool, only chunk", 1),
            row("poolmid", "pool, not the last chunk", 2)]
}
