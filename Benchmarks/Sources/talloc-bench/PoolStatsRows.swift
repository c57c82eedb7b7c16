// luatalloc benchmarks — what keeping pool statistics costs (issue 15): W2's pool that fits, with
// `TallocContext.pool(parent:capacity:statistics: true)`. Pools without statistics are W2.poolfit.core.
// SPDX-License-Identifier: MIT
import TallocCore

func poolStatisticsRows(_ inp: Inputs) -> [Row] {
    let sizes = inp.w2Sizes
    let count = inp.w2Count
    let fit = inp.w2FitPoolBytes
    return [Row("W2.poolstats.core", impl: "TallocCore", variant: "pool that fits, with statistics", unit: "alloc",
                opsPerIter: count, iters: 20, callgrindIters: 200, counterpart: "W2.poolfit.c") { n in
        for _ in 0..<n {
            let pool = try! TallocContext.pool(parent: nil, capacity: fit, statistics: true)
            for k in 0..<count {
                escape(try! TallocContext.allocate(parent: pool, byteCount: Int(sizes[k])))
            }
            try! pool.free()
        }
    }]
}
