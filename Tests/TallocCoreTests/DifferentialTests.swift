// luatalloc — differential tests against Debian's libtalloc 2.4.0
// SPDX-License-Identifier: MIT
//
// The driver: random operation sequences run on libtalloc (the oracle) and on TallocCore, compared after
// every step. Environment:
//   TALLOC_DIFF_OPS=N      total operations (default 100,000)
//   TALLOC_DIFF_STEPS=N    operations per sequence (default 250)
//   TALLOC_DIFF_SEED=S     run only sequence S (a repro), with the op log printed
//   TALLOC_DIFF_FIRST_SEED=S  first seed of the range (default 1)
//   TALLOC_DIFF_NO_NULL_REFS=1  no references owned by the NULL context (to look past that divergence)
//   TALLOC_DIFF_LOGS=1     also compare talloc's log lines after each operation (locations cut off)
//   TALLOC_DIFF_REPORT_EVERY=N  compare report_full text every N steps (default 4; 1 = every step)
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
// that steals a chunk into its own subtree; reparent into one's own subtree. No memory limits.

import CTalloc
import Foundation
import Testing

@testable import TallocCore

nonisolated(unsafe) var swiftTallocLog: [String] = []

struct DiffStats {
    var operations = 0
    var sequences = 0
    var divergences: [String: Int] = [:]
    var failures: [String] = []
    /// Failing sequences grouped by signature (operation kind + what differed), with the shortest example.
    var signatures: [String: (count: Int, steps: Int, text: String)] = [:]

    mutating func record(signature: String, step: Int, text: String) {
        failures.append(text)
        if let s = signatures[signature] {
            signatures[signature] = (s.count + 1, min(s.steps, step), step < s.steps ? text : s.text)
        } else {
            signatures[signature] = (1, step, text)
        }
    }
}

enum DiffEnv {
    static func int(_ name: String) -> Int? {
        ProcessInfo.processInfo.environment[name].flatMap { Int($0.replacingOccurrences(of: "_", with: "")) }
    }
}

/// Runs one seeded sequence of `steps` operations. Returns the failure text, if any (stops at the first).
func runDifferentialSequence(
    seed: UInt64, steps: Int, stats: inout DiffStats, verbose: Bool = false, documented: Bool = true,
    script: [DiffOp]? = nil, nullReferences: Bool? = nil, reportDepths: [(Int, Int)] = [],
    makeSubject: () -> DifferentialSubject
) -> String? {
    let oracle = CTallocSubject()
    let subject = makeSubject()
    defer {
        (subject as? CTallocSubject)?.shutdown()
        oracle.shutdown()
    }
    var gen = DiffGenerator(seed: seed, allowDivergenceOps: documented,
                            ourPooledObjectCapacity: TallocCoreSubject.pooledObjectCapacity)
    if let nullReferences { gen.nullReferences = nullReferences }
    // Log lines ("ERROR: talloc_free with references at LOC", "WARNING: talloc_steal with references",
    // "\treference at LOC"), locations cut off. Opt-in (TALLOC_DIFF_LOGS=1): TallocCore's log handler is
    // process-wide and other suites may set it while this one runs.
    let compareLogs = DiffEnv.int("TALLOC_DIFF_LOGS") == 1 && subject is TallocCoreSubject
    if compareLogs { Talloc.setLogHandler { swiftTallocLog.append($0) } }
    defer { if compareLogs { Talloc.setLogHandler(nil) } }
    func normalisedLog(_ lines: [String]) -> [String] {
        lines.flatMap { $0.split(separator: "\n") }.map { line in
            String(line.range(of: " at ").map { line[..<$0.lowerBound] } ?? line[...])
        }
    }
    var history: [String] = []
    var stepsDone = 0
    var failure: String?
    var signature = ""
    var failStep = 0
    // Reports are the slowest observation (text on both sides); they are compared every 4th step, at
    // every failure, and in the dedicated report tests. Everything else is compared after every step.
    let reportEvery = DiffEnv.int("TALLOC_DIFF_REPORT_EVERY") ?? 4

    func fail(_ step: Int, _ op: DiffOp, _ what: String) -> String {
        let kind = String(op.description.split(separator: "(")[0].split(separator: " ").last ?? "")
        let category = what.hasPrefix("result") ? "result" : what.hasPrefix("destructor") ? "destructors"
            : what.hasPrefix("TallocCore did not") ? "refusal" : "state"
        var fields: [String] = []
        for line in what.split(separator: "\n") where line.hasPrefix("  libtalloc  #") { fields.append("x") }
        signature = "\(kind) → \(category)"
        failStep = step
        _ = fields
        var text = "DIFFERENTIAL FAILURE seed=\(seed) step=\(step) op: \(op)\n\(what)\n"
        text += "repro: TALLOC_DIFF_SEED=\(seed) TALLOC_DIFF_STEPS=\(step + 1) swift test --filter Differential\n"
        text += "op log (last 40):\n" + history.suffix(40).joined(separator: "\n")
        return text
    }

    func apply(_ op: DiffOp, step: Int) -> String? {
        history.append("  [\(step)] \(op)")
        if verbose { print("[\(seed):\(step)] \(op)") }

        // Documented divergence: TallocCore refuses to steal into the own subtree; libtalloc never runs it.
        if case .stealIntoOwnSubtree = op {
            stats.divergences["steal-into-own-subtree refused", default: 0] += 1
            let r = subject.perform(op)
            if r != .failed { return fail(step, op, "TallocCore did not refuse a steal into the own subtree: \(r)") }
            let log = subject.takeDestructorLog()
            if !log.isEmpty { return fail(step, op, "destructors ran: \(log)") }
            return compareState(step, op)
        }

        // Documented divergence §8.4: make libtalloc compute the documented re-home parent.
        if documented, let x = freedTarget(op), oracle.parentID(x) != nil, !oracle.isFirstSibling(x),
           gen.modes[x] != .refuse, gen.freeRehomesToParent(x, oracle) {
            stats.divergences["rehome-sibling-position (§8.4)", default: 0] += 1
            oracle.moveToHead(x)
        }

        capturedTallocLog.removeAll()
        swiftTallocLog.removeAll()
        let rC = oracle.perform(op)
        let rS = subject.perform(op)
        if compareLogs, normalisedLog(capturedTallocLog) != normalisedLog(swiftTallocLog) {
            return fail(step, op, "log lines:\n  libtalloc  \(capturedTallocLog)\n  TallocCore \(swiftTallocLog)\n")
        }
        bookkeeping(op, rC)
        let live = oracle.liveIDs
        gen.forgetDead(live)
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
            case .pooledObject(_, _, let size, _, let k, let bytes):
                gen.isPoolObject.insert(id)
                let cCapacity = size + bytes + (96 + 32 + 15) * (k + 1) - ((size + 15) & ~15)
                let ours = TallocCoreSubject.pooledObjectCapacity(size, k, bytes)
                gen.budgets[id] = PoolBudget(cCapacity: cCapacity, ourCapacity: ours)
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

    func stateDiff() -> String {
        let live = oracle.liveIDs.sorted()
        let a = oracle.observe(live, withReports: true)
        let b = subject.observe(live, withReports: true)
        return describeDiff(a, b)
    }

    func compareState(_ step: Int, _ op: DiffOp) -> String? {
        let live = oracle.liveIDs.sorted()
        let withReports = reportEvery > 0 && step % reportEvery == 0
        let a = oracle.observe(live, withReports: withReports)
        let b = subject.observe(live, withReports: withReports)
        if a == b { return nil }
        return fail(step, op, stateDiff())
    }

    var step = 0
    let steps = script?.count ?? steps
    while step < steps {
        var op: DiffOp? = script?[step]
        for _ in 0..<30 where script == nil {
            op = gen.next(oracle)
            if op != nil { break }
        }
        guard let op else { step += 1; continue }
        if let f = apply(op, step: step) { failure = f; break }
        step += 1
        stepsDone += 1
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
                    failure = "REPORT MISMATCH seed=\(seed) after step \(step), #\(id), depth \(depth), max_depth \(maxDepth)\n"
                        + "libtalloc:\n\(a)TallocCore:\n\(b)op log (last 40):\n" + history.suffix(40).joined(separator: "\n")
                    break outer
                }
                stats.divergences["(reports compared)", default: 0] += 1
            }
        }
    }

    // Clean up through the same comparison: destructors off, references dropped, top level freed.
    if failure == nil {
        var cleanup: [DiffOp] = []
        for x in oracle.liveIDs.sorted() { cleanup.append(.setDestructor(x, .none)) }
        for op in cleanup {
            if let f = apply(op, step: step) { failure = f; break }
            step += 1
        }
    }
    if failure == nil {
        outer: for x in oracle.liveIDs.sorted() {
            while oracle.liveIDs.contains(x), let owner = oracle.referenceOwners(x).first {
                if let f = apply(.unlink(x, from: owner), step: step) { failure = f; break outer }
                step += 1
            }
        }
    }
    if failure == nil {
        outer: while let x = oracle.liveIDs.sorted().first(where: { oracle.parentID($0) == nil }) {
            if let f = apply(.free(x), step: step) { failure = f; break outer }
            step += 1
        }
        if failure == nil, !oracle.liveIDs.isEmpty {
            failure = "seed=\(seed): cleanup left \(oracle.liveIDs.sorted()) alive in libtalloc"
        }
    }
    stats.operations += step
    stats.sequences += 1
    if let failure { stats.record(signature: signature.isEmpty ? "cleanup" : signature, step: failStep, text: failure) }
    return failure
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

@Suite("Differential: TallocCore vs libtalloc 2.4.0", .serialized)
struct DifferentialTests {
    @Test("the libtalloc header peek matches talloc 2.4.0's layout")
    func headerLayout() {
        #expect(ctalloc_layout_is_sane() == 1)
    }

    @Test("the harness agrees with itself: libtalloc against a second libtalloc instance")
    func harnessSelfTest() {
        var stats = DiffStats()
        var seed: UInt64 = 1_000_001
        while stats.operations < 5_000 {
            if let f = runDifferentialSequence(seed: seed, steps: 250, stats: &stats, documented: false,
                                               makeSubject: { CTallocSubject(primary: false) }) {
                Issue.record(Comment(rawValue: f))
                break
            }
            seed += 1
        }
        print("differential harness self-test: \(stats.operations) operations, libtalloc vs libtalloc")
    }

    /// Report text: byte-identical to libtalloc once addresses are masked (they are mapped to ids, which
    /// is stricter), for every live object of varied random trees, at several depth settings.
    @Test("report text of random trees is byte-identical to libtalloc's")
    func reportsOfRandomTrees() {
        var stats = DiffStats()
        let depths = [(0, -1), (0, 1), (0, 0), (1, -1), (0, 2), (2, 3), (3, -1)]
        for seed in UInt64(2_000_001)...UInt64(2_000_150) {
            _ = runDifferentialSequence(seed: seed, steps: 120, stats: &stats, nullReferences: false,
                                        reportDepths: depths, makeSubject: { TallocCoreSubject() })
        }
        print("differential reports: \(stats.divergences["(reports compared)"] ?? 0) reports compared "
              + "in \(stats.sequences) random trees, \(stats.failures.count) failing")
        for (sig, s) in stats.signatures.sorted(by: { $0.value.count > $1.value.count }) {
            Issue.record(Comment(rawValue: "[\(sig)] \(s.count) sequences; shortest:\n" + s.text))
        }
    }

    /// A hand-built tree with every kind of report line: long (> 30 columns) and empty names, unnamed
    /// pools and their members, a pooled object, `.name` children, references ("reference to:"), a
    /// nested chain, zero-size contexts and strings.
    @Test("report text of a varied hand-built tree is byte-identical to libtalloc's")
    func reportsOfVariedTree() {
        var ops: [DiffOp] = [
            .new(id: 1, parent: nil, name: 4),
            .allocate(id: 2, parent: 1, size: 34, name: 7),
            .allocate(id: 3, parent: 2, size: 17, name: 0),
            .strdup(id: 4, parent: 2, text: "I am Foo"),
            .pool(id: 5, parent: 1, capacity: 1024),
            .allocate(id: 6, parent: 5, size: 512, name: 8),
            .allocate(id: 7, parent: 6, size: 1024, name: 3),
            .allocate(id: 8, parent: 6, size: 200, name: 5),
            .pooledObject(id: 9, parent: 1, size: 24, name: 4, subobjects: 3, subobjectBytes: 30),
            .strdup(id: 10, parent: 9, text: "a string that is definitely longer than thirty characters"),
            .asprintf(id: 11, parent: 9, text: "%s %d %%"),
            .setName(8, "renamed with set_name"),
            .reference(3, owner: 1),
            .reference(10, owner: 2),
            .reference(10, owner: 6),
            .new(id: 12, parent: nil, name: 7),
            .reference(12, owner: 4),
        ]
        var parent = 12
        for id in 13...20 {
            ops.append(.new(id: id, parent: parent, name: id % 2 == 0 ? 0 : 2))
            parent = id
        }
        ops.append(.reference(1, owner: 20))
        var stats = DiffStats()
        let depths = [(0, -1), (0, 1), (0, 0), (1, -1), (1, 2), (0, 3), (4, -1), (0, 100)]
        if let f = runDifferentialSequence(seed: 0, steps: 0, stats: &stats, script: ops, reportDepths: depths,
                                           makeSubject: { TallocCoreSubject() }) {
            Issue.record(Comment(rawValue: f))
        }
    }

    /// talloc re-homes a child whose newest reference is owned by the NULL context like an unreferenced
    /// refusing child: to the parent of the chunk being freed (talloc.c `_tc_free_children_internal`:
    /// a NULL owner leaves `new_parent == null_context`, which falls back to `talloc_parent_chunk(ptr)`),
    /// freeing that NULL-owned handle. TALLOC-SEMANTICS §3.3 (2f) orders the choices the same way.
    @Test("a child referenced only by NULL moves to the freed chunk's parent (free)")
    func nullOwnedReferenceOnFree() {
        let ops: [DiffOp] = [
            .new(id: 1, parent: nil, name: 1),
            .new(id: 2, parent: 1, name: 2),
            .new(id: 3, parent: 2, name: 5),
            .reference(3, owner: nil),
            .free(2),
        ]
        var stats = DiffStats()
        if let f = runDifferentialSequence(seed: 0, steps: 0, stats: &stats, script: ops,
                                           makeSubject: { TallocCoreSubject() }) {
            Issue.record(Comment(rawValue: f))
        }
    }

    @Test("a child referenced only by NULL moves to the parent (free_children)")
    func nullOwnedReferenceOnFreeChildren() {
        let ops: [DiffOp] = [
            .new(id: 1, parent: nil, name: 1),
            .new(id: 2, parent: 1, name: 2),
            .new(id: 3, parent: 2, name: 5),
            .reference(3, owner: nil),
            .freeChildren(2),
        ]
        var stats = DiffStats()
        if let f = runDifferentialSequence(seed: 0, steps: 0, stats: &stats, script: ops,
                                           makeSubject: { TallocCoreSubject() }) {
            Issue.record(Comment(rawValue: f))
        }
    }

    @Test("random operation sequences agree after every step")
    func randomSequences() {
        guard ctalloc_layout_is_sane() == 1 else {
            Issue.record("libtalloc header layout is not the expected one; cannot walk the oracle's tree")
            return
        }
        var stats = DiffStats()
        let steps = DiffEnv.int("TALLOC_DIFF_STEPS") ?? 250
        if let seed = DiffEnv.int("TALLOC_DIFF_SEED") {
            if let f = runDifferentialSequence(seed: UInt64(seed), steps: steps, stats: &stats, verbose: true,
                                               makeSubject: { TallocCoreSubject() }) {
                Issue.record(Comment(rawValue: f))
            }
            print("differential: seed \(seed): \(stats.operations) operations")
            return
        }
        let total = DiffEnv.int("TALLOC_DIFF_OPS") ?? 100_000
        var seed = UInt64(DiffEnv.int("TALLOC_DIFF_FIRST_SEED") ?? 1)
        let started = ContinuousClock.now
        while stats.operations < total {
            _ = runDifferentialSequence(seed: seed, steps: steps, stats: &stats,
                                        makeSubject: { TallocCoreSubject() })
            seed += 1
            if stats.failures.count >= 500 { break }
        }
        let elapsed = ContinuousClock.now - started
        let div = stats.divergences.values.reduce(0, +)
        print("""
            differential: \(stats.operations) operations in \(stats.sequences) sequences (seeds \
            \(DiffEnv.int("TALLOC_DIFF_FIRST_SEED") ?? 1)..<\(seed)), \(elapsed); \
            \(stats.failures.count) failing sequences; \(div) documented divergences: \
            \(stats.divergences.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            """)
        for (sig, s) in stats.signatures.sorted(by: { $0.value.count > $1.value.count }) {
            print("differential: \(s.count) failing sequences of kind [\(sig)]")
            Issue.record(Comment(rawValue: "[\(sig)] \(s.count) sequences; shortest:\n" + s.text))
        }
    }
}
