// luatalloc fuzzers — the differential driver (adapted from Tests/TallocCoreTests/DifferentialTests.swift).
// SPDX-License-Identifier: MIT
//
// One fuzzer input = one operation sequence. The bytes are the generator's choices (ByteRNG); the
// generator reads the oracle's (libtalloc's) state and only emits valid operations that libtalloc survives,
// exactly as the differential tests do. After every operation the driver compares results, destructor
// calls and the full snapshot (tree, names, sizes, totals, reference counts, pool placement; report text
// every 4th step), and checks every TallocCore memory limit against an exact model computed from
// libtalloc's tree. Any difference is printed and the process aborts: a libFuzzer finding.
//
// Fuzzer additions over the tests: destructors that free another chunk (the newest child, or an unrelated
// top-level leaf) and memory limits on the TallocCore side only (libtalloc's memlimit is buggy,
// TALLOC-SEMANTICS §2.8): an allocating operation under a limit runs on both libraries when it certainly
// fits every limit, on TallocCore alone when it certainly does not (it must fail and change nothing), and
// is skipped in the narrow band in between.

import CTalloc
import TallocCore

#if canImport(Glibc)
import Glibc
#endif

struct FuzzDecision { var id: Int; var freed: Int? }
nonisolated(unsafe) var fuzzDecisions: [FuzzDecision] = []
nonisolated(unsafe) var fuzzReplayIndex = 0
nonisolated(unsafe) var fuzzReplayMismatch: [String] = []
/// At the end of a run every destructor allows and frees nothing.
nonisolated(unsafe) var fuzzClosing = false

struct FuzzStats {
    var inputs = 0
    var operations = 0
    var limitFailures = 0
    var skippedUnderLimit = 0
    var divergences: [String: Int] = [:]
}
nonisolated(unsafe) var fuzzStats = FuzzStats()
nonisolated(unsafe) var fuzzVerbose = getenv("TALLOC_FUZZ_VERBOSE") != nil
let fuzzMaxSteps = getenv("TALLOC_FUZZ_STEPS").flatMap { Int(String(cString: $0)) } ?? 250

func fuzzFail(_ text: String, _ history: [String]) -> Never {
    var out = "\n==== talloc-fuzz FINDING ====\n\(text)\nop log (last 60):\n"
    out += history.suffix(60).joined(separator: "\n") + "\n"
    fputs(out, stderr)
    abort()
}

func describeDiff(_ a: Snapshot, _ b: Snapshot) -> String {
    var out = ""
    let byIDb = Dictionary(b.objects.map { ($0.id, $0) }, uniquingKeysWith: { x, _ in x })
    for o in a.objects {
        guard let p = byIDb[o.id] else { out += "  missing in TallocCore: \(o)\n"; continue }
        if o != p { out += "  libtalloc  \(o)\n  TallocCore \(p)\n" }
    }
    if a.reports != b.reports {
        for (x, y) in zip(a.reports, b.reports) where x != y {
            out += "  report (libtalloc):\n" + x.split(separator: "\n").map { "    |\($0)" }.joined(separator: "\n")
            out += "\n  report (TallocCore):\n" + y.split(separator: "\n").map { "    |\($0)" }.joined(separator: "\n")
            out += "\n"
            break
        }
        if a.reports.count != b.reports.count { out += "  report count \(a.reports.count) vs \(b.reports.count)\n" }
    }
    return out.isEmpty ? "  (snapshots equal)" : out
}

/// Runs the sequence encoded by `data`.
func runFuzzInput(_ data: UnsafeBufferPointer<UInt8>) {
    fuzzStats.inputs += 1
    fuzzDecisions.removeAll(keepingCapacity: true)
    fuzzReplayIndex = 0
    fuzzReplayMismatch.removeAll()
    fuzzClosing = false
    let oracle = CTallocSubject()
    let subject = TallocCoreSubject()
    var gen = DiffGenerator(bytes: data, allowDivergenceOps: true,
                            ourPooledObjectCapacity: TallocCoreSubject.pooledObjectCapacity)
    var history: [String] = []

    func stateDiff() -> String {
        let live = oracle.liveIDs.sorted()
        return describeDiff(oracle.observe(live, withReports: true), subject.observe(live, withReports: true))
    }
    func fail(_ step: Int, _ op: DiffOp, _ what: String) -> Never {
        fuzzFail("step \(step) op: \(op)\n\(what)", history)
    }
    func compareState(_ step: Int, _ op: DiffOp) {
        let live = oracle.liveIDs.sorted()
        let withReports = step % 4 == 0
        let a = oracle.observe(live, withReports: withReports)
        let b = subject.observe(live, withReports: withReports)
        if a != b { fail(step, op, stateDiff()) }
        checkLimits(step, op)
        if !fuzzReplayMismatch.isEmpty { fail(step, op, "destructor replay: \(fuzzReplayMismatch)") }
        if fuzzReplayIndex != fuzzDecisions.count {
            fail(step, op, "libtalloc ran \(fuzzDecisions.count) freeing destructors, TallocCore \(fuzzReplayIndex)")
        }
    }
    /// Every limit: TallocCore's max as set, and its current charge equal to the model.
    func checkLimits(_ step: Int, _ op: DiffOp) {
        for (id, mx) in gen.limits.sorted(by: { $0.key < $1.key }) {
            guard let l = subject.memoryLimit(id) else { fail(step, op, "#\(id) lost its memory limit") }
            let model = oracle.modelCharge(id) { gen.ourPoolCapacity[$0] }
            if l.max != mx || l.current != model {
                fail(step, op, "memory limit of #\(id): TallocCore max \(l.max) current \(l.current); model max \(mx) current \(model)\n" + stateDiff())
            }
        }
    }
    /// Limits on the path from `target` up: (max, current) of each limit owner that is `target` or an ancestor.
    func limitsAbove(_ target: Int?) -> [(Int, Int)] {
        guard let target, !gen.limits.isEmpty else { return [] }
        var out: [(Int, Int)] = []
        for (id, mx) in gen.limits where oracle.isAncestor(id, of: target) {
            out.append((mx, subject.memoryLimit(id)?.current ?? 0))
        }
        return out
    }
    /// The bytes an operation may charge (low, high) and the chunk whose limits apply.
    func charge(_ op: DiffOp) -> (target: Int?, low: Int, high: Int)? {
        let h = Talloc.chunkHeaderSize
        func inPool(_ p: Int?) -> Bool { gen.targetPool(p, oracle) != nil }
        func heap(_ p: Int?, _ bytes: Int) -> (Int?, Int, Int) { (p, inPool(p) ? 0 : bytes, bytes) }
        switch op {
        case .new(_, let p, _), .newAt(_, let p, _): return heap(p, h)
        case .allocate(_, let p, let s, _), .allocateAt(_, let p, let s, _), .reallocNull(_, let p, let s, _):
            return heap(p, h + s)
        case .strdup(_, let p, let t), .asprintf(_, let p, let t): return heap(p, h + t.utf8.count + 1)
        case .pool(_, let p, let c): return heap(p, Talloc.poolHeaderSize + h + c)
        case .pooledObject(_, let p, let s, _, let k, let b):
            let c = TallocCoreSubject.pooledObjectCapacity(s, k, b) + ((s + 15) & ~15)
            return (p, inPool(p) ? 0 : Talloc.poolHeaderSize + h + c - 16, Talloc.poolHeaderSize + h + c + 16)
        case .setName(let x, let t): return heap(x, h + t.utf8.count + 1)
        case .reference(let x, let owner):
            _ = x
            return owner.map { heap($0, h + 32) }
        case .append(let x, _, let t):
            let old = oracle.size(x)
            return (x, 0, h + old + t.utf8.count + 1)
        case .realloc(let x, _, let s, _) where s > 0:
            let old = oracle.size(x)
            if oracle.isPoolMemory(x) { return (x, 0, h + s) }
            return (x, max(0, s - old), max(0, s - old))
        default: return nil
        }
    }

    func apply(_ op: DiffOp, step: Int) {
        history.append("  [\(step)] \(op)")
        if fuzzVerbose { fputs("[\(step)] \(op)\n", stderr) }
        fuzzStats.operations += 1

        if case .setLimit(let x, let selector) = op {
            let cur = oracle.modelCharge(x) { gen.ourPoolCapacity[$0] }
            let bytes: Int
            switch -selector - 1 {
            case 0: bytes = 0
            case 1: bytes = max(1, cur / 2)
            case 2: bytes = cur
            case 3: bytes = cur + 64
            case 4: bytes = cur + 200
            case 5: bytes = cur + 1000
            case 6: bytes = cur + 5000
            default: bytes = cur + 100_000
            }
            let real = DiffOp.setLimit(x, bytes: bytes)
            history[history.count - 1] = "  [\(step)] \(real)"
            if subject.perform(real) != .ok { fail(step, real, "set_memlimit failed") }
            gen.limits[x] = bytes
            fuzzStats.divergences["memlimit set (TallocCore only)", default: 0] += 1
            compareState(step, real)
            return
        }
        if case .stealIntoOwnSubtree = op {
            fuzzStats.divergences["steal-into-own-subtree refused", default: 0] += 1
            let r = subject.perform(op)
            if r != .failed { fail(step, op, "TallocCore did not refuse a steal into the own subtree: \(r)") }
            let log = subject.takeDestructorLog()
            if !log.isEmpty { fail(step, op, "destructors ran: \(log)") }
            compareState(step, op)
            return
        }
        // talloc's realloc shrinks in place only for chunks without a memlimit (SEMANTICS §2.6 step 2); a
        // limited chunk takes the move/realloc path (and is renamed). libtalloc here has no limit: skip.
        if case .realloc(let x, _, let s, _) = op, s > 0, s < oracle.size(x), !limitsAbove(x).isEmpty {
            fuzzStats.skippedUnderLimit += 1
            history[history.count - 1] += "   [skipped: shrink under a limit]"
            return
        }
        // Memory limits: certainly fits → both; certainly fails → TallocCore only; else skip.
        if let (target, low, high) = charge(op) {
            let ls = limitsAbove(target).filter { $0.0 > 0 }
            if !ls.isEmpty {
                let fits = ls.allSatisfy { (mx, cur) in mx > cur && mx - cur >= high }
                let fails = low > 0 && ls.contains { (mx, cur) in mx <= cur || mx - cur < low }
                if fails {
                    fuzzStats.limitFailures += 1
                    history[history.count - 1] += "   [under a limit: TallocCore only, must fail]"
                    let r = subject.perform(op)
                    if r != .failed && r != .void {
                        fail(step, op, "TallocCore allowed an operation beyond its memory limit (charge ≥ \(low), limits \(ls)): \(r)")
                    }
                    if case .setName(let x, _) = op {
                        // talloc_set_name leaves the name NULL ("UNNAMED") when its copy fails; so does
                        // TallocCore. Mirror it on the oracle, which never ran the operation.
                        talloc_set_name_const(oracle.pointer(x), nil)
                        gen.selfNamed.remove(x)
                    }
                    compareState(step, op)
                    return
                }
                if !fits {
                    fuzzStats.skippedUnderLimit += 1
                    history[history.count - 1] += "   [skipped: too close to a limit]"
                    return
                }
            }
        }
        // Documented divergence §8.4: make libtalloc compute the documented re-home parent.
        if let x = freedTarget(op), oracle.parentID(x) != nil, !oracle.isFirstSibling(x),
           gen.modes[x] != .refuse, gen.freeRehomesToParent(x, oracle) {
            fuzzStats.divergences["rehome-sibling-position (§8.4)", default: 0] += 1
            oracle.moveToHead(x)
        }
        let rC = oracle.perform(op)
        let rS = subject.perform(op)
        bookkeeping(op, rC)
        gen.forgetDead(oracle.liveIDs)
        let logC = oracle.takeDestructorLog()
        let logS = subject.takeDestructorLog()
        if rC != rS { fail(step, op, "result: libtalloc \(rC), TallocCore \(rS)\n" + stateDiff()) }
        if logC != logS { fail(step, op, "destructor calls:\n  libtalloc  \(logC)\n  TallocCore \(logS)\n" + stateDiff()) }
        compareState(step, op)
    }

    func freedTarget(_ op: DiffOp) -> Int? {
        switch op {
        case .free(let x):
            return oracle.referenceOwners(x).isEmpty ? x : nil
        case .unlink(let x, let from), .realloc(let x, let from, 0, _):
            return oracle.referenceOwners(x).isEmpty && from == oracle.parentID(x) ? x : nil
        default:
            return nil
        }
    }

    func bookkeeping(_ op: DiffOp, _ r: OpResult) {
        if let id = op.createdID, r == .ok {
            let parent: Int?
            switch op {
            case .new(_, let p, _), .allocate(_, let p, _, _), .pool(_, let p, _), .pooledObject(_, let p, _, _, _, _),
                .allocateAt(_, let p, _, _), .newAt(_, let p, _),
                .strdup(_, let p, _), .asprintf(_, let p, _), .reallocNull(_, let p, _, _):
                parent = p
            default: parent = nil
            }
            gen.created(id, parent: parent, oracle: oracle)
            switch op {
            case .strdup, .asprintf:
                gen.isString.insert(id)
                gen.selfNamed.insert(id)
            case .pool(_, _, let capacity):
                gen.isPoolObject.insert(id)
                gen.budgets[id] = PoolBudget(capacity: capacity)
                gen.ourPoolCapacity[id] = capacity
            case .pooledObject(_, _, let size, _, let k, let bytes):
                gen.isPoolObject.insert(id)
                let cCapacity = size + bytes + (96 + 32 + 15) * (k + 1) - ((size + 15) & ~15)
                let ours = TallocCoreSubject.pooledObjectCapacity(size, k, bytes)
                gen.budgets[id] = PoolBudget(cCapacity: cCapacity, ourCapacity: ours)
                gen.ourPoolCapacity[id] = subject.poolCapacity(id)
            default: break
            }
        }
        switch op {
        case .realloc(let x, _, let size, _) where size > 0 && r == .ok:
            if !gen.selfNamed.contains(x) { gen.isString.remove(x) }
            if !oracle.isPoolMemory(x) { gen.poolOf[x] = nil }
        case .append(let x, _, _) where r == .ok:
            gen.selfNamed.insert(x)
            if !oracle.isPoolMemory(x) { gen.poolOf[x] = nil }
        case .setName(let x, _), .setNameConst(let x, _):
            gen.selfNamed.remove(x)
        case .setDestructor(let x, let mode):
            gen.modes[x] = mode
        default: break
        }
        let dead = Array(Set(gen.modes.keys).subtracting(oracle.liveIDs))
        subject.forget(dead)
    }

    var step = 0
    while step < fuzzMaxSteps, !gen.rng.exhausted {
        var op: DiffOp? = nil
        for _ in 0..<30 {
            op = gen.next(oracle)
            if op != nil || gen.rng.exhausted { break }
        }
        guard let op, !gen.rng.exhausted else { break }
        apply(op, step: step)
        step += 1
    }

    // Teardown: every destructor allows; drop every reference, then free every top-level chunk, on both
    // sides, comparing as we go. LeakSanitizer reports anything TallocCore leaves behind.
    fuzzClosing = true
    var guardSteps = 0
    func teardownOp(_ op: DiffOp) {
        guardSteps += 1
        if guardSteps > 100_000 { fuzzFail("teardown does not terminate", history) }
        history.append("  [teardown] \(op)")
        let rC = oracle.perform(op)
        let rS = subject.perform(op)
        gen.forgetDead(oracle.liveIDs)
        subject.forget(Array(Set(gen.modes.keys).subtracting(oracle.liveIDs)))
        _ = oracle.takeDestructorLog()
        _ = subject.takeDestructorLog()
        if rC != rS { fuzzFail("teardown \(op): libtalloc \(rC), TallocCore \(rS)\n" + stateDiff(), history) }
        let live = oracle.liveIDs.sorted()
        if oracle.observe(live, withReports: false) != subject.observe(live, withReports: false) {
            fuzzFail("teardown \(op): states differ\n" + stateDiff(), history)
        }
    }
    for id in oracle.liveIDs.sorted() where oracle.liveIDs.contains(id) {
        while oracle.liveIDs.contains(id), let owner = oracle.referenceOwners(id).first {
            teardownOp(.unlink(id, from: owner))
        }
    }
    while let top = oracle.liveIDs.sorted().first(where: { oracle.parentID($0) == nil }) {
        teardownOp(.free(top))
    }
    if !oracle.liveIDs.isEmpty { fuzzFail("teardown left \(oracle.liveIDs.sorted()) alive", history) }
    oracle.freeRemaining()
    oracle.shutdown()
}
