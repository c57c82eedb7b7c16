// luatalloc — the differential harness (TallocCore against Debian's libtalloc 2.4.0)
// SPDX-License-Identifier: MIT
//
// The driver: one operation sequence, chosen by `DiffGenerator` from a `ChoiceSource`, run on libtalloc
// (the oracle, which runs first) and on TallocCore, compared after every step: results, destructor calls,
// the full snapshot (tree, names, sizes, totals, reference counts, pool placement; report text every
// `reportEvery` steps) and, with memory limits, every TallocCore limit against an exact model computed
// from libtalloc's tree. A sequence ends with a compared cleanup (destructors off, references dropped,
// top level freed). Used by Tests/TallocCoreTests/DifferentialTests.swift (SplitMix64 seeds) and by
// Fuzz/Sources/talloc-fuzz (libFuzzer's bytes, `Options.fuzzer`).
//
// Where TallocCore deliberately differs from libtalloc (DESIGN §8), the driver compares against the
// documented expectation instead of the C result, and counts the event as a "documented divergence":
// - rehome-sibling-position (§8.4): freeing a chunk that is not its parent's newest child, when some
//   descendant will be re-homed to "the parent of the chunk being freed" (a refusing destructor, or a
//   reference owned by the NULL context). talloc would make such a survivor top level; we move it to
//   the parent. The driver first moves the chunk to the head of its parent's list in libtalloc
//   (talloc_steal to the current parent does exactly that), where talloc computes the documented
//   parent; the order of the other siblings is unchanged and the chunk itself is gone afterwards.
// - steal-into-own-subtree (DESIGN §8): run on TallocCore only, which must refuse it and change
//   nothing; libtalloc would build a detached loop.
// Avoided by the generator (libtalloc crashes, hangs or loops, §8.5): freeing a subtree in which a chunk
// has a reference owned inside its own subtree and either refuses or has a second reference; unlink/free
// that steals a chunk into its own subtree; reparent into one's own subtree.
//
// Options the fuzzer adds: destructors that free another chunk (the newest child, or an unrelated
// top-level leaf; decided on libtalloc, replayed on TallocCore), and memory limits on the TallocCore side
// only (libtalloc's memlimit is buggy, TALLOC-SEMANTICS §2.8): an allocating operation under a limit runs
// on both libraries when it certainly fits every limit, on TallocCore alone when it certainly does not (it
// must fail and change nothing), and is skipped in the narrow band in between.

import CTalloc
import TallocCore

nonisolated(unsafe) var swiftTallocLog: [String] = []

/// Runs differential sequences. See the file comment.
public enum DifferentialRun {
    public struct Options: Sendable {
        public enum Subject: Sendable {
            /// TallocCore against libtalloc: the point of the harness.
            case tallocCore
            /// libtalloc against a second view of libtalloc: the harness's self-test.
            case secondLibtalloc
        }
        public var subject = Subject.tallocCore
        /// Generated operations per sequence (a source may end a sequence sooner).
        public var steps = 250
        /// Generate steal-into-own-subtree and compare §8.4 re-homing against the documented parent. Off
        /// for the self-test (libtalloc agrees with itself, not with DESIGN §8).
        public var documentedDivergences = true
        /// References owned by the NULL context (`talloc_reference(NULL, p)`, reparenting a handle to NULL).
        public var nullReferences = true
        /// Destructors that free the newest child or an unrelated top-level leaf.
        public var freeingDestructors = false
        /// TallocCore-only memory limits, checked after every step against an exact model.
        public var memoryLimits = false
        /// Compare report_full text every N steps (0 = never; always at a failure).
        public var reportEvery = 4
        /// Also compare talloc's log lines after each operation (locations cut off). TallocCore's log
        /// handler is process-wide: only where no other code sets it meanwhile.
        public var compareLogs = false
        /// Print every operation.
        public var verbose = false
        public init() {}
        /// What the fuzzer runs: every operation of the tests plus freeing destructors and memory limits.
        public static var fuzzer: Options {
            var o = Options()
            o.freeingDestructors = true
            o.memoryLimits = true
            return o
        }
    }

    public struct Stats {
        /// Operations run, cleanup included.
        public var operations = 0
        public var sequences = 0
        /// Documented divergences by kind, and "(reports compared)" for `reportDepths`.
        public var divergences: [String: Int] = [:]
        /// Operations run on TallocCore alone because they certainly exceed a memory limit.
        public var limitFailures = 0
        /// Operations skipped because a limit made their outcome uncertain.
        public var skippedUnderLimit = 0
        public var failures: [String] = []
        /// Failing sequences grouped by signature (operation kind + what differed), with the shortest example.
        public var signatures: [String: (count: Int, steps: Int, text: String)] = [:]
        public init() {}

        mutating func record(signature: String, step: Int, text: String) {
            failures.append(text)
            if let s = signatures[signature] {
                signatures[signature] = (s.count + 1, min(s.steps, step), step < s.steps ? text : s.text)
            } else {
                signatures[signature] = (1, step, text)
            }
        }
    }

    /// Whether the peek into libtalloc's chunk header matches talloc 2.4.0's layout (the oracle's tree walk
    /// depends on it).
    public static var libtallocLayoutIsSane: Bool { ctalloc_layout_is_sane() == 1 }

    /// TallocCore's bump space for a pooled object (see `PoolBudget`).
    public static func pooledObjectCapacity(_ size: Int, _ k: Int, _ bytes: Int) -> Int {
        TallocCoreSubject.pooledObjectCapacity(size, k, bytes)
    }

    /// Runs the sequence of SplitMix64 seed `seed` (a repro line names it), or `script` when given.
    public static func run(seed: UInt64, options: Options = .init(), script: [DiffOp]? = nil,
                           reportDepths: [(Int, Int)] = [], stats: inout Stats) -> String? {
        run(SplitMix64(seed: seed), seed: seed, options: options, script: script, reportDepths: reportDepths,
            stats: &stats)
    }

    /// Runs one sequence with choices from `source` (or the operations of `script`), then the compared
    /// cleanup. Returns the failure text, if any (the sequence stops at the first); records it in `stats`.
    /// `reportDepths`: at the end, compare `talloc_report_depth_file(p, depth, max)` of every live object.
    public static func run<Source: ChoiceSource>(
        _ source: Source, seed: UInt64? = nil, options: Options = .init(), script: [DiffOp]? = nil,
        reportDepths: [(Int, Int)] = [], stats: inout Stats
    ) -> String? {
        var sequence = DiffSequence(source, seed: seed, options: options)
        defer { sequence.shutdown() }
        return sequence.run(script: script, reportDepths: reportDepths, stats: &stats)
    }
}

/// One sequence: the two subjects, the generator and the comparison after every step.
private struct DiffSequence<Source: ChoiceSource> {
    let oracle: CTallocSubject
    let subject: DifferentialSubject
    /// The subject as TallocCore (nil for the self-test): memory limits and pool capacities.
    let core: TallocCoreSubject?
    let replay: DestructorReplay
    var gen: DiffGenerator<Source>
    let options: DifferentialRun.Options
    let seed: UInt64?
    let compareLogs: Bool
    var history: [String] = []
    /// Memory limits: pools freed while members stolen out of them live. TallocCore keeps such a block
    /// charged to the nearest limit the pool was under (the carrier) until the block goes; the carrier's
    /// free hands it to the next limit up.
    var pinned: [PinnedPool] = []

    struct PinnedPool {
        let pool: UnsafeMutableRawPointer  // libtalloc's pool, which it keeps while members live
        var carrier: Int
        let charge: Int
    }
    var signature = ""
    var failStep = 0

    init(_ source: Source, seed: UInt64?, options: DifferentialRun.Options) {
        self.options = options
        self.seed = seed
        let replay = DestructorReplay()
        self.replay = replay
        oracle = CTallocSubject(replay: replay)
        switch options.subject {
        case .tallocCore:
            let c = TallocCoreSubject(replay: replay)
            core = c
            subject = c
        case .secondLibtalloc:
            core = nil
            subject = CTallocSubject(primary: false)
        }
        gen = DiffGenerator(source, options: options)
        compareLogs = options.compareLogs && core != nil
        if compareLogs { Talloc.setLogHandler { swiftTallocLog.append($0) } }
    }

    func shutdown() {
        if compareLogs { Talloc.setLogHandler(nil) }
        (subject as? CTallocSubject)?.shutdown()
        oracle.shutdown()
    }

    // MARK: failures

    mutating func fail(_ step: Int, _ op: DiffOp, _ what: String) -> String {
        let kind = String(op.description.split(separator: "(")[0].split(separator: " ").last ?? "")
        let category = what.hasPrefix("result") ? "result" : what.hasPrefix("destructor") ? "destructors"
            : what.hasPrefix("TallocCore did not") ? "refusal" : what.hasPrefix("memory limit") ? "limit" : "state"
        signature = "\(kind) → \(category)"
        failStep = step
        var text = "DIFFERENTIAL FAILURE \(seed.map { "seed=\($0) " } ?? "")step=\(step) op: \(op)\n\(what)\n"
        if let seed {
            text += "repro: TALLOC_DIFF_SEED=\(seed) TALLOC_DIFF_STEPS=\(step + 1) swift test --filter Differential\n"
        }
        text += "op log (last 60):\n" + history.suffix(60).joined(separator: "\n")
        return text
    }

    func stateDiff() -> String {
        let live = oracle.liveIDs.sorted()
        return describeDiff(oracle.observe(live, withReports: true), subject.observe(live, withReports: true))
    }

    mutating func compareState(_ step: Int, _ op: DiffOp) -> String? {
        let live = oracle.liveIDs.sorted()
        let withReports = options.reportEvery > 0 && step % options.reportEvery == 0
        let a = oracle.observe(live, withReports: withReports)
        let b = subject.observe(live, withReports: withReports)
        if a != b { return fail(step, op, stateDiff()) }
        if let f = checkLimits(step, op) { return f }
        if !replay.mismatches.isEmpty { return fail(step, op, "destructor replay: \(replay.mismatches)") }
        if replay.index != replay.decisions.count {
            return fail(step, op, "destructor replay: libtalloc ran \(replay.decisions.count) freeing destructors, "
                        + "TallocCore \(replay.index)")
        }
        return nil
    }

    // MARK: memory limits (TallocCore only)

    /// Every limit: TallocCore's max as set, and its current charge equal to the model.
    mutating func checkLimits(_ step: Int, _ op: DiffOp) -> String? {
        for (id, mx) in gen.limits.sorted(by: { $0.key < $1.key }) {
            guard let l = core?.memoryLimit(id) else { return fail(step, op, "memory limit of #\(id) is lost") }
            let model = modelCharge(id)
            if l.max != mx || l.current != model {
                return fail(step, op, "memory limit of #\(id): TallocCore max \(l.max) current \(l.current) (pinned pools: \(pinned.map { "\($0.charge) on #\($0.carrier)" })); "
                            + "model max \(mx) current \(model)\n" + stateDiff())
            }
        }
        return nil
    }

    /// The model of the limit owned by `id`: its subtree at TallocCore's prices (the oracle's model) and
    /// the pinned pools that limits in the subtree carry.
    func modelCharge(_ id: Int) -> Int {
        var total = oracle.modelCharge(id) { gen.ourPoolCapacity[$0] }
        for p in pinned where p.carrier == id || oracle.isAncestor(id, of: p.carrier) { total += p.charge }
        return total
    }

    /// The limit owners above `id` (not `id` itself), nearest first.
    func limitChain(_ id: Int) -> [Int] {
        var out: [Int] = []
        var x = oracle.parentID(id)
        while let y = x {
            if gen.limits[y] != nil { out.append(y) }
            x = oracle.parentID(y)
        }
        return out
    }

    /// Before an operation: each live pool (not itself pool memory) under a limit, and each carrier, with
    /// the limits above it.
    func pinnedBefore() -> (pools: [(id: Int, ptr: UnsafeMutableRawPointer, chain: [Int], charge: Int)], carriers: [Int: [Int]]) {
        guard options.memoryLimits, !gen.limits.isEmpty || !pinned.isEmpty else { return ([], [:]) }
        var pools: [(Int, UnsafeMutableRawPointer, [Int], Int)] = []
        for id in oracle.liveIDs {
            let ptr = oracle.pointer(id)
            let f = ctalloc_flags(ptr)
            guard f & CTALLOC_FLAG_POOL != 0, f & CTALLOC_FLAG_POOLMEM == 0 else { continue }
            let chain = limitChain(id)
            if chain.isEmpty { continue }
            let capacity = gen.ourPoolCapacity[id] ?? ctalloc_pool_size(ptr)  // as the oracle's model prices it
            pools.append((id, ptr, chain, Talloc.poolHeaderSize + Talloc.chunkHeaderSize + capacity))
        }
        var carriers: [Int: [Int]] = [:]
        for p in pinned where oracle.liveIDs.contains(p.carrier) { carriers[p.carrier] = limitChain(p.carrier) }
        return (pools, carriers)
    }

    /// After an operation: pools it freed while members live are pinned to the first live limit above
    /// them; carriers it freed hand over to the first live limit above them; blocks that went are dropped.
    mutating func pinnedAfter(_ before: (pools: [(id: Int, ptr: UnsafeMutableRawPointer, chain: [Int], charge: Int)], carriers: [Int: [Int]])) {
        guard options.memoryLimits, !before.pools.isEmpty || !pinned.isEmpty else { return }
        let live = oracle.liveIDs
        let held = oracle.poolsHeldByLiveChunks()
        func firstLive(_ chain: [Int]) -> Int? { chain.first { live.contains($0) } }
        var next: [PinnedPool] = []
        for var p in pinned {
            if !live.contains(p.carrier) {
                guard let c = firstLive(before.carriers[p.carrier] ?? []) else { continue }
                p.carrier = c
            }
            if held.contains(p.pool) { next.append(p) }
        }
        for p in before.pools where !live.contains(p.id) && held.contains(p.ptr) {
            if let c = firstLive(p.chain) { next.append(PinnedPool(pool: p.ptr, carrier: c, charge: p.charge)) }
        }
        pinned = next
    }

    /// (max, current) of each limit owned by `target` or an ancestor.
    func limitsAbove(_ target: Int?) -> [(Int, Int)] {
        guard let target, !gen.limits.isEmpty else { return [] }
        var out: [(Int, Int)] = []
        for (id, mx) in gen.limits where oracle.isAncestor(id, of: target) {
            out.append((mx, core?.memoryLimit(id)?.current ?? 0))
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
        case .reference(_, let owner):
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

    /// The limit a generated `.setLimit` selector stands for, relative to the subtree's current charge.
    func limitBytes(_ x: Int, selector: Int) -> Int {
        let cur = modelCharge(x)
        switch -selector - 1 {
        case 0: return 0
        case 1: return max(1, cur / 2)
        case 2: return cur
        case 3: return cur + 64
        case 4: return cur + 200
        case 5: return cur + 1000
        case 6: return cur + 5000
        default: return cur + 100_000
        }
    }

    // MARK: one step

    mutating func apply(_ op: DiffOp, step: Int, stats: inout DifferentialRun.Stats) -> String? {
        history.append("  [\(step)] \(op)")
        if options.verbose { print("[\(seed.map { "\($0):" } ?? "")\(step)] \(op)") }

        if case .setLimit(let x, let selector) = op {
            let real = DiffOp.setLimit(x, bytes: limitBytes(x, selector: selector))
            history[history.count - 1] = "  [\(step)] \(real)"
            guard let core, core.perform(real) == .ok else { return fail(step, real, "set_memlimit failed") }
            if case .setLimit(_, let bytes) = real { gen.limits[x] = bytes }
            stats.divergences["memlimit set (TallocCore only)", default: 0] += 1
            return compareState(step, real)
        }

        // Documented divergence: TallocCore refuses to steal into the own subtree; libtalloc never runs it.
        if case .stealIntoOwnSubtree = op {
            stats.divergences["steal-into-own-subtree refused", default: 0] += 1
            let r = subject.perform(op)
            if r != .failed { return fail(step, op, "TallocCore did not refuse a steal into the own subtree: \(r)") }
            let log = subject.takeDestructorLog()
            if !log.isEmpty { return fail(step, op, "destructors ran: \(log)") }
            return compareState(step, op)
        }

        // talloc's realloc shrinks in place only for chunks without a memlimit (SEMANTICS §2.6 step 2); a
        // limited chunk takes the move/realloc path (and is renamed). libtalloc here has no limit: skip.
        if case .realloc(let x, _, let s, _) = op, s > 0, s < oracle.size(x), !limitsAbove(x).isEmpty {
            stats.skippedUnderLimit += 1
            history[history.count - 1] += "   [skipped: shrink under a limit]"
            return nil
        }
        // Memory limits: certainly fits → both; certainly fails → TallocCore only; else skip.
        if let (target, low, high) = charge(op) {
            let ls = limitsAbove(target).filter { $0.0 > 0 }
            if !ls.isEmpty {
                let fits = ls.allSatisfy { (mx, cur) in mx > cur && mx - cur >= high }
                let fails = low > 0 && ls.contains { (mx, cur) in mx <= cur || mx - cur < low }
                if fails {
                    stats.limitFailures += 1
                    history[history.count - 1] += "   [under a limit: TallocCore only, must fail]"
                    let r = subject.perform(op)
                    if r != .failed && r != .void {
                        return fail(step, op, "TallocCore allowed an operation beyond its memory limit "
                                    + "(charge ≥ \(low), limits \(ls)): \(r)")
                    }
                    if case .setName(let x, _) = op {
                        // talloc_set_name leaves the name NULL ("UNNAMED") when its copy fails; so does
                        // TallocCore. Mirror it on the oracle, which never ran the operation.
                        oracle.clearName(x)
                        gen.selfNamed.remove(x)
                    }
                    return compareState(step, op)
                }
                if !fits {
                    stats.skippedUnderLimit += 1
                    history[history.count - 1] += "   [skipped: too close to a limit]"
                    return nil
                }
            }
        }

        // Documented divergence §8.4: make libtalloc compute the documented re-home parent.
        if options.documentedDivergences, let x = freedTarget(op), oracle.parentID(x) != nil,
           !oracle.isFirstSibling(x), gen.modes[x] != .refuse, gen.freeRehomesToParent(x, oracle) {
            stats.divergences["rehome-sibling-position (§8.4)", default: 0] += 1
            oracle.moveToHead(x)
        }

        capturedTallocLog.removeAll()
        swiftTallocLog.removeAll()
        let pinnedState = pinnedBefore()
        let rC = oracle.perform(op)
        let rS = subject.perform(op)
        if compareLogs, normalisedLog(capturedTallocLog) != normalisedLog(swiftTallocLog) {
            return fail(step, op, "log lines:\n  libtalloc  \(capturedTallocLog)\n  TallocCore \(swiftTallocLog)\n")
        }
        bookkeeping(op, rC)
        pinnedAfter(pinnedState)
        gen.forgetDead(oracle.liveIDs)
        let logC = oracle.takeDestructorLog()
        let logS = subject.takeDestructorLog()
        if rC != rS {
            return fail(step, op, "result: libtalloc \(rC), TallocCore \(rS)\n" + stateDiff())
        }
        if logC != logS {
            return fail(step, op, "destructor calls:\n  libtalloc  \(logC)\n  TallocCore \(logS)\n" + stateDiff())
        }
        return compareState(step, op)
    }

    /// Log lines ("ERROR: talloc_free with references at LOC", "WARNING: talloc_steal with references",
    /// "\treference at LOC"), locations cut off.
    func normalisedLog(_ lines: [String]) -> [String] {
        lines.flatMap { $0.split(separator: "\n") }.map { line -> String in
            let bytes = Array(line.utf8)
            let at = Array(" at ".utf8)
            guard bytes.count >= at.count,
                  let i = (0...(bytes.count - at.count)).first(where: { Array(bytes[$0..<$0 + at.count]) == at })
            else { return String(line) }
            return String(decoding: bytes[..<i], as: UTF8.self)
        }
    }

    /// The chunk a free-type operation really frees (not refused by references), if any.
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

    /// What the generator must know after `op` ran on the oracle with result `r`.
    mutating func bookkeeping(_ op: DiffOp, _ r: OpResult) {
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
                gen.ourPoolCapacity[id] = core?.poolCapacity(id)
            default: break
            }
        }
        switch op {
        case .realloc(let x, _, let size, _) where size > 0 && r == .ok:
            if !gen.selfNamed.contains(x) { gen.isString.remove(x) }  // may have shrunk below its NUL
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

    // MARK: the sequence

    mutating func run(script: [DiffOp]?, reportDepths: [(Int, Int)], stats: inout DifferentialRun.Stats) -> String? {
        var failure: String?
        var step = 0
        let steps = script?.count ?? options.steps
        while step < steps {
            var op: DiffOp? = script?[step]
            for _ in 0..<30 where script == nil {
                op = gen.next(oracle)
                if op != nil || gen.rng.exhausted { break }
            }
            if gen.rng.exhausted { break }  // the fuzzer's input ran out: its last op is made of padding
            guard let op else { step += 1; continue }
            if let f = apply(op, step: step, stats: &stats) { failure = f; break }
            step += 1
        }

        // Report text at several depths, for every live object (talloc_report_depth_file(p, depth, max)).
        if failure == nil, !reportDepths.isEmpty {
            outer: for id in oracle.liveIDs.sorted() {
                for (depth, maxDepth) in reportDepths {
                    let a = oracle.reportText(id, depth: depth, maxDepth: maxDepth)
                    let b = subject.reportText(id, depth: depth, maxDepth: maxDepth)
                    if a != b {
                        signature = "report(depth \(depth), max \(maxDepth))"
                        failStep = step
                        failure = "REPORT MISMATCH \(seed.map { "seed=\($0) " } ?? "")after step \(step), #\(id), "
                            + "depth \(depth), max_depth \(maxDepth)\nlibtalloc:\n\(a)TallocCore:\n\(b)op log (last 60):\n"
                            + history.suffix(60).joined(separator: "\n")
                        break outer
                    }
                    stats.divergences["(reports compared)", default: 0] += 1
                }
            }
        }

        // Clean up through the same comparison: destructors off, references dropped, top level freed.
        if failure == nil {
            for x in oracle.liveIDs.sorted() {
                if let f = apply(.setDestructor(x, .none), step: step, stats: &stats) { failure = f; break }
                step += 1
            }
        }
        if failure == nil {
            outer: for x in oracle.liveIDs.sorted() {
                while oracle.liveIDs.contains(x), let owner = oracle.referenceOwners(x).first {
                    if let f = apply(.unlink(x, from: owner), step: step, stats: &stats) { failure = f; break outer }
                    step += 1
                }
            }
        }
        if failure == nil {
            outer: while let x = oracle.liveIDs.sorted().first(where: { oracle.parentID($0) == nil }) {
                if let f = apply(.free(x), step: step, stats: &stats) { failure = f; break outer }
                step += 1
            }
            if failure == nil, !oracle.liveIDs.isEmpty {
                failure = "\(seed.map { "seed=\($0): " } ?? "")cleanup left \(oracle.liveIDs.sorted()) alive in libtalloc"
            }
        }
        // Untracked chunks (a `.name` of a freed chunk cannot outlive it; this is for LeakSanitizer's sake).
        if failure == nil, core != nil { oracle.freeRemaining() }
        stats.operations += step
        stats.sequences += 1
        if let failure { stats.record(signature: signature.isEmpty ? "cleanup" : signature, step: failStep, text: failure) }
        return failure
    }
}
