// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// Many trees on many threads, one tree per thread: nothing a thread does to its own trees may reach
// another thread's. Null tracking is per thread; the log and abort handlers, the autofree context and
// the interned names are process-wide and guarded. Run under ThreadSanitizer:
//
//     swift build --build-tests --sanitize=thread --scratch-path .build-tsan
//     swift test --skip-build --sanitize=thread --scratch-path .build-tsan --filter Concurrency

import Testing
@testable import TallocCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A report line as talloc prints it (`%-30s contains %6lu bytes in %3lu blocks (ref %d)`), no address.
private func reportLine(_ name: String, depth: Int, bytes: Int, blocks: Int, refs: Int = 0) -> String {
    func left(_ s: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - s.utf8.count)) + s }
    let padded = name + String(repeating: " ", count: max(0, 30 - name.utf8.count))
    return String(repeating: " ", count: depth * 4) + padded + " contains " + left(String(bytes), 6)
        + " bytes in " + left(String(blocks), 3) + " blocks (ref \(refs))\n"
}

/// A pthread barrier: every thread waits until all have arrived.
private final class Barrier: @unchecked Sendable {
    private let barrier = UnsafeMutablePointer<pthread_barrier_t>.allocate(capacity: 1)
    init(_ count: Int) { pthread_barrier_init(barrier, nil, UInt32(count)) }
    deinit { pthread_barrier_destroy(barrier); barrier.deallocate() }
    func wait() { pthread_barrier_wait(barrier) }
}

/// One thread's tree work, self-checked: pools, steal, references, limits, destructors, names, reports.
/// Returns what went wrong (empty when all is well).
private func workout(thread t: Int, rounds: Int, tracking: Bool) -> [String] {
    var failures: [String] = []
    func check(_ ok: Bool, _ what: @autoclosure () -> String, line: Int = #line) {
        if !ok { failures.append("thread \(t) line \(line): \(what())") }
    }
    let null = Talloc.nullContext
    check((null != nil) == tracking, "null context \(String(describing: null)), tracking \(tracking)")
    if let null { check(null.name == "null_context", "null context's name \(null.name)") }
    for r in 0..<rounds {
        do {
            let root = try TallocContext.new(parent: nil, name: "root")
            check(root.parent == null, "root's parent \(String(describing: root.parent))")
            // A pool, members, a grandchild, and a member stolen out of the pool's subtree.
            let pool = try TallocContext.pool(parent: root, capacity: 4096)
            pool.setNameConst("pool")
            let a = try TallocContext.allocate(parent: pool, byteCount: 100, name: "a")
            let b = try TallocContext.strdup(parent: pool, "thread \(t) round \(r)")
            let c = try TallocContext.allocate(parent: b, byteCount: 10, name: "c")
            check(a.isPoolMemory && b.isPoolMemory && c.isPoolMemory, "pool members")
            try b.steal(to: root)
            check(pool.poolInfo?.objectCount == 4, "pool objects \(String(describing: pool.poolInfo))")
            check(pool.totalSize == 100 && b.totalSize == b.size + 10, "pool totals")
            // A reference, dropped again by unlink (no log line).
            let holder = try TallocContext.new(parent: root, name: "holder")
            try a.reference(from: holder)
            check(a.referenceCount == 1 && holder.referencedContexts == [a], "reference")
            try a.unlink(from: holder)
            check(a.referenceCount == 0 && a.parent == pool, "unlink of the reference")
            // A memory limit, filled until it refuses.
            let limited = try TallocContext.new(parent: root, name: "limited")
            try limited.setMemoryLimit(1000)
            var n = 0
            while true {
                do { _ = try TallocContext.allocate(parent: limited, byteCount: 100, name: "chunk"); n += 1 }
                catch { check(error == .outOfMemory, "limit error \(error)"); break }
            }
            let cost = Talloc.chunkHeaderSize + 100
            check(n == (1000 - Talloc.chunkHeaderSize) / cost, "allocations under the limit: \(n)")
            check(limited.memoryLimit?.current == Talloc.chunkHeaderSize + n * cost, "limit's current")
            // Destructors: one that counts, one that refuses until told otherwise.
            nonisolated(unsafe) var runs = 0
            nonisolated(unsafe) var refuse = true
            c.setDestructor { _ in runs += 1; return .allow }
            let stubborn = try TallocContext.new(parent: holder, name: "stubborn")
            stubborn.setDestructor { _ in refuse ? .refuse : .allow }
            do { try stubborn.free(); check(false, "a refusing destructor let the free go") }
            catch { check(error == .destructorRefused, "refusal \(error)") }
            // Names: a copied name, a ".name" child, a type.
            try holder.setName("holder of thread \(t)")
            check(holder.name == "holder of thread \(t)" && holder.checkName("holder of thread \(t)"), "setName")
            check(stubborn.findParent(byName: "holder of thread \(t)") == holder, "findParent")
            let named = try TallocContext.new(parent: root, name: "x")
            check(Array("copied\(t)".utf8).withUnsafeBytes { named.setNameCopy($0) }, "setNameCopy")
            check(named.name == "copied\(t)", "copied name \(named.name)")
            let raw: [UInt8] = [0xFF, UInt8(t + 1), 0xC3, UInt8(truncatingIfNeeded: r) | 1]  // not UTF-8
            check(raw.withUnsafeBytes { named.setNameCopy($0) } && named.nameBytes == raw, "bytes name")
            check(raw.withUnsafeBytes { named.checkName(bytes: $0) } && named.ownedNameByteCount == 5, "bytes name")
            struct Marker { var value = 0 }
            named.setType(Marker.self)
            check(named.isType(Marker.self) && named.ownedNameByteCount == 0, "setType")
            // A report of a small subtree, exactly.
            let rep = try TallocContext.new(parent: root, name: "report")
            let s1 = try TallocContext.strdup(parent: rep, "t\(t)")
            _ = try TallocContext.strdup(parent: s1, "round \(r)")
            let inner = "round \(r)".utf8.count + 1
            let outer = "t\(t)".utf8.count + 1
            let expected = "full talloc report on 'report' (total "
                + String(repeating: " ", count: 6 - String(inner + outer).count) + String(inner + outer)
                + " bytes in   3 blocks)\n"
                + reportLine("t\(t)", depth: 1, bytes: inner + outer, blocks: 2)
                + reportLine("round \(r)", depth: 2, bytes: inner, blocks: 1)
            check(rep.reportFull(addresses: false) == expected, "report:\n\(rep.reportFull(addresses: false))")
            var streamed: [UInt8] = []
            var balance = 0
            check(rep.writeReport(depth: 0, maxDepth: -1, addresses: false, accountant: { balance += $0; return true }) {
                streamed.append(contentsOf: $0)
                return true
            } && streamed == Array(expected.utf8) && balance == 0, "streamed report")
            var layoutSegments = 0
            check(pool.forEachPoolSegment { _ in layoutSegments += 1; return true } && layoutSegments > 0, "pool walk")
            check(root.dot().hasPrefix("digraph talloc {\n"), "dot")
            if tracking {
                check(Talloc.nullContextTotalSize == root.totalSize, "null context's total")
                check(Talloc.reportNull(full: false, addresses: false).hasPrefix("talloc report on 'null_context'"),
                      "reportNull")
            }
            // Free everything; the refusing destructor now allows.
            refuse = false
            try root.free()
            check(runs == 1, "destructor runs \(runs)")
            if let null { check(null.totalBlocks == 1 && null.firstChild == nil, "null context left with children") }
        } catch {
            check(false, "round \(r): \(error)")
        }
    }
    return failures
}

@Suite struct ConcurrencyTests {
    @Test("four threads, each with its own trees, null tracking on in two of them")
    func fourThreadsOwnTrees() {
        let results = PerThread<[String]>(4, [])
        let start = Barrier(4)
        runOnThreads(4) { t in
            let tracking = t % 2 == 0
            if tracking { Talloc.enableNullTrackingNoAutofree() }
            start.wait()
            results[t] = workout(thread: t, rounds: 300, tracking: tracking)
            if tracking { Talloc.disableNullTracking() }
            if Talloc.nullContext != nil { results[t].append("thread \(t): still tracking after disable") }
        }
        for (t, failures) in results.all.enumerated() {
            #expect(failures.isEmpty, "thread \(t): \(failures.prefix(5).joined(separator: "\n"))")
        }
    }

    @Test("a thread that ends with null tracking on leaves its top-level contexts at the true top level")
    func threadEndsWhileTracking() throws {
        let made = PerThread<UnsafeMutableRawPointer?>(2, nil)
        runOnThreads(2) { t in
            Talloc.enableNullTracking()
            guard let null = Talloc.nullContext else { return }
            let c = try? TallocContext.new(parent: nil, name: "survivor")
            if let c, c.parent == null { made[t] = c.unsafePointer }
            _ = try? TallocContext.allocate(parent: c, byteCount: 10, name: "child")
            // the thread ends here, tracking still on
        }
        for t in 0..<2 {
            let p = try #require(made[t], "thread \(t) made its context under its own null context")
            let c = TallocContext(unsafePointer: p)
            #expect(c.isValid && c.parent == nil && c.name == "survivor" && c.totalSize == 10)
            try c.free()
        }
    }

    @Test("threads without null tracking never see another thread's null context")
    func trackingStaysOnItsThread() {
        let results = PerThread<[String]>(2, [])
        let step = Barrier(2)
        runOnThreads(2) { t in
            if t == 0 { Talloc.enableNullTrackingNoAutofree() }
            step.wait()  // thread 0 tracks from here on
            for i in 0..<2000 {
                guard let c = try? TallocContext.new(parent: nil, name: "top") else { continue }
                let expected = t == 0 ? Talloc.nullContext : nil
                if c.parent != expected || (t == 0) != (expected != nil) {
                    results[t].append("thread \(t) context \(i): parent \(String(describing: c.parent))")
                }
                try? c.free()
            }
            step.wait()
            if t == 0 { Talloc.disableNullTracking() }
        }
        #expect(results[0].isEmpty && results[1].isEmpty, "\(results.all)")
    }

    @Test("log and abort handlers, the autofree context and interned names, from four threads at once")
    func processWideStateIsGuarded() {
        handlerLock.withLock {
            let counts = PerThread<Int>(4, 0)
            let ids = PerThread<UInt>(4, 0)
            let registry = TestLock()
            nonisolated(unsafe) var lineCounts: [UInt: Int] = [:]
            let install: @Sendable () -> Void = {
                Talloc.setLogHandler { _ in
                    let me = UInt(pthread_self())
                    registry.withLock { lineCounts[me, default: 0] += 1 }
                }
            }
            install()
            defer { Talloc.setLogHandler(nil) }
            let autofree = PerThread<UnsafeMutableRawPointer?>(4, nil)
            let start = Barrier(4)
            runOnThreads(4) { t in
                ids[t] = UInt(pthread_self())
                start.wait()
                autofree[t] = Talloc.autofreeContext()?.unsafePointer
                for i in 0..<200 {
                    guard let root = try? TallocContext.new(parent: nil, name: "root"),
                          let x = try? TallocContext.allocate(parent: root, byteCount: 1, name: "x"),
                          let r1 = try? TallocContext.new(parent: root, name: "r1"),
                          let r2 = try? TallocContext.new(parent: root, name: "r2")
                    else { continue }
                    try? x.reference(from: r1)
                    try? x.reference(from: r2)
                    _ = try? x.free()  // refused: three log lines on this thread
                    counts[t] += 3
                    struct Interned {}
                    _ = try? TallocContext.allocate(parent: root, of: Interned.self)
                    if t == 3 {
                        // Replace the handlers while the others log: an equivalent log handler, so no line
                        // is lost, and an abort handler that is never called.
                        install()
                        Talloc.setAbortHandler(i % 2 == 0 ? { _ in } : nil)
                    }
                    try? root.free()
                }
            }
            Talloc.setAbortHandler(nil)
            let first = autofree[0]
            #expect(first != nil && autofree.all.allSatisfy { $0 == first }, "one autofree context for all")
            let logged = registry.withLock { lineCounts }
            // Only these threads' lines: other suites may log meanwhile, on their own threads.
            let mine = (0..<4).map { logged[ids[$0]] ?? 0 }
            #expect(mine == counts.all, "log lines per thread \(mine) vs \(counts.all)")
        }
    }
}
