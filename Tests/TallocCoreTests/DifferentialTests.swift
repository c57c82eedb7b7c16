// luatalloc — differential tests against Debian's libtalloc 2.4.0
// SPDX-License-Identifier: MIT
//
// Random operation sequences run on libtalloc (the oracle) and on TallocCore, compared after every step,
// by the shared harness of Tests/Differential (the fuzzer in Fuzz/ runs the same one on libFuzzer's
// bytes). What is compared, the documented divergences and what the generator avoids: Driver.swift there.
// Environment:
//   TALLOC_DIFF_OPS=N      total operations (default 100,000)
//   TALLOC_DIFF_STEPS=N    operations per sequence (default 250)
//   TALLOC_DIFF_SEED=S     run only sequence S (a repro), with the op log printed
//   TALLOC_DIFF_FIRST_SEED=S  first seed of the range (default 1)
//   TALLOC_DIFF_NO_NULL_REFS=1  no references owned by the NULL context (to look past that divergence)
//   TALLOC_DIFF_LOGS=1     also compare talloc's log lines after each operation (locations cut off)
//   TALLOC_DIFF_REPORT_EVERY=N  compare report_full text every N steps (default 4; 1 = every step)
// No memory limits and no freeing destructors here: the fuzzer's options (`DifferentialRun.Options.fuzzer`).

import Foundation
import TallocDifferential
import Testing

enum DiffEnv {
    static func int(_ name: String) -> Int? {
        ProcessInfo.processInfo.environment[name].flatMap { Int($0.replacingOccurrences(of: "_", with: "")) }
    }

    /// The options of the random runs, from the environment.
    static var options: DifferentialRun.Options {
        var o = DifferentialRun.Options()
        o.steps = int("TALLOC_DIFF_STEPS") ?? 250
        o.nullReferences = int("TALLOC_DIFF_NO_NULL_REFS") == nil
        o.reportEvery = int("TALLOC_DIFF_REPORT_EVERY") ?? 4
        // Opt-in: TallocCore's log handler is process-wide and other suites may set it while this one runs.
        o.compareLogs = int("TALLOC_DIFF_LOGS") == 1
        return o
    }
}

@Suite("Differential: TallocCore vs libtalloc 2.4.0", .serialized)
struct DifferentialTests {
    @Test("the libtalloc header peek matches talloc 2.4.0's layout")
    func headerLayout() {
        #expect(DifferentialRun.libtallocLayoutIsSane)
    }

    @Test("the harness agrees with itself: libtalloc against a second libtalloc instance")
    func harnessSelfTest() {
        var options = DiffEnv.options
        options.subject = .secondLibtalloc
        options.steps = 250
        options.documentedDivergences = false
        let stats = runSeeds(from: 1_000_001, operations: 5_000, options)
        print("differential harness self-test: \(stats.operations) operations, libtalloc vs libtalloc")
    }

    /// Report text: byte-identical to libtalloc once addresses are masked (they are mapped to ids, which
    /// is stricter), for every live object of varied random trees, at several depth settings.
    @Test("report text of random trees is byte-identical to libtalloc's")
    func reportsOfRandomTrees() {
        var stats = DifferentialRun.Stats()
        var options = DiffEnv.options
        options.steps = 120
        options.nullReferences = false
        let depths = [(0, -1), (0, 1), (0, 0), (1, -1), (0, 2), (2, 3), (3, -1)]
        for seed in UInt64(2_000_001)...UInt64(2_000_150) {
            _ = DifferentialRun.run(seed: seed, options: options, reportDepths: depths, stats: &stats)
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
        expectAgreement(ops, reportDepths: [(0, -1), (0, 1), (0, 0), (1, -1), (1, 2), (0, 3), (4, -1), (0, 100)])
    }

    /// talloc re-homes a child whose newest reference is owned by the NULL context like an unreferenced
    /// refusing child: to the parent of the chunk being freed (talloc.c `_tc_free_children_internal`:
    /// a NULL owner leaves `new_parent == null_context`, which falls back to `talloc_parent_chunk(ptr)`),
    /// freeing that NULL-owned handle. TALLOC-SEMANTICS §3.3 (2f) orders the choices the same way.
    @Test("a child referenced only by NULL moves to the freed chunk's parent (free, free_children)",
          arguments: [false, true])
    func nullOwnedReference(childrenOnly: Bool) {
        expectAgreement([
            .new(id: 1, parent: nil, name: 1),
            .new(id: 2, parent: 1, name: 2),
            .new(id: 3, parent: 2, name: 5),
            .reference(3, owner: nil),
            childrenOnly ? .freeChildren(2) : .free(2),
        ])
    }

    /// Runs the seeds from `first` on until `operations` operations ran; the first failure is an issue.
    private func runSeeds(from first: UInt64, operations: Int, _ options: DifferentialRun.Options)
        -> DifferentialRun.Stats {
        var stats = DifferentialRun.Stats()
        var seed = first
        while stats.operations < operations {
            if let f = DifferentialRun.run(seed: seed, options: options, stats: &stats) {
                Issue.record(Comment(rawValue: f))
                break
            }
            seed += 1
        }
        return stats
    }

    /// Runs `ops` on both libraries, then the compared cleanup; any difference is an issue.
    private func expectAgreement(_ ops: [DiffOp], reportDepths: [(Int, Int)] = [],
                                 sourceLocation: SourceLocation = #_sourceLocation) {
        var stats = DifferentialRun.Stats()
        if let f = DifferentialRun.run(seed: 0, options: DiffEnv.options, script: ops, reportDepths: reportDepths,
                                       stats: &stats) {
            Issue.record(Comment(rawValue: f), sourceLocation: sourceLocation)
        }
        #expect(stats.operations >= ops.count, sourceLocation: sourceLocation)
    }

    /// The fuzzer's options (freeing destructors, TallocCore-only memory limits against the exact model) on
    /// seeded sequences: a bounded run of what Fuzz/run does with libFuzzer's bytes.
    @Test("random sequences with the fuzzer's options agree after every step")
    func fuzzerOptions() {
        var options = DifferentialRun.Options.fuzzer
        options.steps = DiffEnv.options.steps
        let stats = runSeeds(from: 3_000_001, operations: 20_000, options)
        print("differential (fuzzer options): \(stats.operations) operations in \(stats.sequences) sequences, "
              + "\(stats.limitFailures) over-limit operations checked, \(stats.skippedUnderLimit) skipped; "
              + "\(stats.divergences.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        #expect(stats.divergences["memlimit set (TallocCore only)", default: 0] > 0)
    }

    @Test("random operation sequences agree after every step")
    func randomSequences() {
        guard DifferentialRun.libtallocLayoutIsSane else {
            Issue.record("libtalloc header layout is not the expected one; cannot walk the oracle's tree")
            return
        }
        var stats = DifferentialRun.Stats()
        var options = DiffEnv.options
        if let seed = DiffEnv.int("TALLOC_DIFF_SEED") {
            options.verbose = true
            if let f = DifferentialRun.run(seed: UInt64(seed), options: options, stats: &stats) {
                Issue.record(Comment(rawValue: f))
            }
            print("differential: seed \(seed): \(stats.operations) operations")
            return
        }
        let total = DiffEnv.int("TALLOC_DIFF_OPS") ?? 100_000
        var seed = UInt64(DiffEnv.int("TALLOC_DIFF_FIRST_SEED") ?? 1)
        let started = ContinuousClock.now
        while stats.operations < total {
            _ = DifferentialRun.run(seed: seed, options: options, stats: &stats)
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
