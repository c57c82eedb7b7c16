// luatalloc — traces of the talloc operations a script performs, and their replay
// SPDX-License-Identifier: MIT
//
// `luatalloc --trace FILE` records every talloc operation a script performs (the module calls that
// change a tree, and the collector's frees); `luatalloc --replay FILE` runs them again on TallocCore
// without the script, optionally with every pool resized, and reports peak memory, allocations and pool
// statistics; the benchmarks replay them on libtalloc too (`talloc-bench replay`).
//
// The format (version 1) is text, one operation a line, fields separated by one space; contexts are
// numbered in the order the script made them, 0 is the script's top level (a parent of nil):
//
//     talloc-trace 1                      first line
//     # ...                               a comment
//     N id parent size                    a new chunk: talloc_size, new, zero, strdup, strndup, asprintf, memdup
//     P id parent capacity [site]         talloc_pool; site: the Lua position of the call ("FILE:LINE")
//     O id parent size count bytes [site] talloc_pooled_object
//     E id parent size                    a context the script reached that it did not make (replayed as N)
//     R id size                           talloc_realloc (and strdup_append, asprintf_append)
//     F id                                talloc_free that freed (also the collector's, and <close>)
//     C id                                talloc_free_children
//     S id parent                         talloc_steal
//     Y id old new                        talloc_reparent
//     L id parent                         talloc_reference(parent, id)
//     U id parent                         talloc_unlink(parent, id) (and realloc(c, 0))
//     A id length child                   talloc_set_name: a name of `length` bytes, in a new ".name" chunk `child`
//     M id bytes                          talloc_set_memlimit
//     K id                                a destructor of id refused (returned false, or raised): the next
//                                         free of id the replay makes (itself, or with an ancestor) is
//                                         refused once for each K written before it; written before the
//                                         operation whose free it refused, which is written even when
//                                         the refusal made it fail (F, U, __close's F)
//
// A site is the rest of its line (a file name may hold spaces; a line break in it is written as "?"). What a trace does not hold: the bytes a
// script wrote, names other than their lengths, and Lua destructors (a replayed free never runs one, so
// a free a destructor refused is not in the trace, and one it allowed replays as allowed).

import Synchronization
import Glibc
import TallocCore

public enum TallocTrace {
    /// The first line of a trace.
    public static let header = "talloc-trace 1"

    /// One operation of a trace.
    public enum Operation: Hashable, Sendable {
        case new(id: Int, parent: Int, size: Int)
        case pool(id: Int, parent: Int, capacity: Int, site: String?)
        case pooledObject(id: Int, parent: Int, size: Int, count: Int, bytes: Int, site: String?)
        case external(id: Int, parent: Int, size: Int)
        case realloc(id: Int, size: Int)
        case free(id: Int)
        case freeChildren(id: Int)
        case steal(id: Int, parent: Int)
        case reparent(id: Int, old: Int, new: Int)
        case reference(id: Int, parent: Int)
        case unlink(id: Int, parent: Int)
        case setName(id: Int, length: Int, child: Int)
        case memlimit(id: Int, bytes: Int)
        /// A destructor of `id` refused a free (the `K` line).
        case refuse(id: Int)

        /// The operation's line (without the newline).
        public var line: String {
            switch self {
            case let .new(id, parent, size): return "N \(id) \(parent) \(size)"
            case let .pool(id, parent, capacity, site): return "P \(id) \(parent) \(capacity)" + (site.map { " " + $0 } ?? "")
            case let .pooledObject(id, parent, size, count, bytes, site):
                return "O \(id) \(parent) \(size) \(count) \(bytes)" + (site.map { " " + $0 } ?? "")
            case let .external(id, parent, size): return "E \(id) \(parent) \(size)"
            case let .realloc(id, size): return "R \(id) \(size)"
            case let .free(id): return "F \(id)"
            case let .freeChildren(id): return "C \(id)"
            case let .steal(id, parent): return "S \(id) \(parent)"
            case let .reparent(id, old, new): return "Y \(id) \(old) \(new)"
            case let .reference(id, parent): return "L \(id) \(parent)"
            case let .unlink(id, parent): return "U \(id) \(parent)"
            case let .setName(id, length, child): return "A \(id) \(length) \(child)"
            case let .memlimit(id, bytes): return "M \(id) \(bytes)"
            case let .refuse(id): return "K \(id)"
            }
        }

        /// Parses one line; nil for a comment or an empty line. Throws `ParseError` (without its line
        /// number, which `parse(_:)` adds) for anything else that is not an operation.
        public init?(line: Substring) throws(ParseError) {
            if line.isEmpty || line.first == "#" { return nil }
            let fields = line.split(separator: " ", maxSplits: 6, omittingEmptySubsequences: false)
            func number(_ i: Int) throws(ParseError) -> Int {
                guard i < fields.count, let n = Int(fields[i]), n >= 0 else {
                    throw ParseError(line: 0, message: "field \(i + 1) must be a number from 0 up: \(line)")
                }
                return n
            }
            func rest(after i: Int) -> String? {
                let parts = line.split(separator: " ", maxSplits: i, omittingEmptySubsequences: false)
                return parts.count > i && !parts[i].isEmpty ? String(parts[i]) : nil
            }
            func expect(_ n: Int) throws(ParseError) {
                if fields.count != n { throw ParseError(line: 0, message: "expected \(n - 1) fields: \(line)") }
            }
            switch fields[0] {
            case "N": try expect(4); self = .new(id: try number(1), parent: try number(2), size: try number(3))
            case "P": self = .pool(id: try number(1), parent: try number(2), capacity: try number(3), site: rest(after: 4))
            case "O":
                self = .pooledObject(id: try number(1), parent: try number(2), size: try number(3), count: try number(4),
                                     bytes: try number(5), site: rest(after: 6))
            case "E": try expect(4); self = .external(id: try number(1), parent: try number(2), size: try number(3))
            case "R": try expect(3); self = .realloc(id: try number(1), size: try number(2))
            case "F": try expect(2); self = .free(id: try number(1))
            case "C": try expect(2); self = .freeChildren(id: try number(1))
            case "S": try expect(3); self = .steal(id: try number(1), parent: try number(2))
            case "Y": try expect(4); self = .reparent(id: try number(1), old: try number(2), new: try number(3))
            case "L": try expect(3); self = .reference(id: try number(1), parent: try number(2))
            case "U": try expect(3); self = .unlink(id: try number(1), parent: try number(2))
            case "A": try expect(4); self = .setName(id: try number(1), length: try number(2), child: try number(3))
            case "M": try expect(3); self = .memlimit(id: try number(1), bytes: try number(2))
            case "K": try expect(2); self = .refuse(id: try number(1))
            default: throw ParseError(line: 0, message: "unknown operation '\(fields[0])'")
            }
            if case .pool = self, fields.count < 4 { throw ParseError(line: 0, message: "expected 3 fields: \(line)") }
            if case .pooledObject = self, fields.count < 6 { throw ParseError(line: 0, message: "expected 5 fields: \(line)") }
        }
    }

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    /// The operations of a whole trace (its text).
    public static func parse(_ text: String) throws(ParseError) -> [Operation] {
        var ops: [Operation] = []
        var number = 0
        var sawHeader = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            if !sawHeader {
                if line.isEmpty { continue }
                guard line == header else {
                    throw ParseError(line: number, message: "not a talloc trace (the first line must be '\(header)')")
                }
                sawHeader = true
                continue
            }
            do {
                if let op = try Operation(line: line) { ops.append(op) }
            } catch {
                throw ParseError(line: number, message: error.message)
            }
        }
        guard sawHeader else { throw ParseError(line: 1, message: "empty: not a talloc trace") }
        return ops
    }
}

// MARK: - Recording

/// Writes the trace of the module calls made on the thread it is `current` for. The module's functions
/// look it up on every call that changes a tree (one relaxed atomic load while no thread ever traced).
/// Its own memory (the numbers of the contexts it has seen, its buffer) is the program's, not the
/// script's: it is not charged to a memory limit.
///
/// Recording is on the path of every module call while tracing, so it formats numbers straight into a
/// byte buffer and keeps the numbers of contexts in an open-addressing table of its own (keyed by the
/// body's address), all behind one pointer (no exclusivity checks, no hashing of Swift's).
public final class TallocTraceWriter {
    private let sink: (UnsafeRawBufferPointer) -> Bool
    private let w: UnsafeMutablePointer<_TraceState>
    /// Operations written so far.
    public var operations: Int { w.pointee.operations }
    /// The sink refused bytes: the trace is incomplete.
    public var failed: Bool { w.pointee.failed }

    /// A writer that hands the text to `sink` in pieces (return false to stop: the trace then ends).
    public init(sink: @escaping (UnsafeRawBufferPointer) -> Bool, comment: String? = nil) {
        self.sink = sink
        w = .allocate(capacity: 1)
        w.initialize(to: _TraceState())
        append(TallocTrace.header + "\n")
        if let comment { append("# " + String(comment.map { $0 == "\n" ? " " : $0 }) + "\n") }
    }

    deinit {
        w.pointee.release()
        w.deinitialize(count: 1)
        w.deallocate()
    }

    private func append(_ s: String) {
        var s = s
        s.withUTF8 { w.pointee.append(UnsafeRawBufferPointer($0)) }
        if w.pointee.count >= _TraceState.flushAt { flush() }
    }

    /// Hands what is buffered to the sink.
    public func flush() {
        let st = w
        defer { st.pointee.count = 0 }
        guard !st.pointee.failed, st.pointee.count > 0 else { return }
        if !sink(UnsafeRawBufferPointer(start: st.pointee.buffer, count: st.pointee.count)) { st.pointee.failed = true }
    }

    func write(_ op: TallocTrace.Operation) {
        let st = w
        st.pointee.operations += 1
        switch op {
        case let .new(id, parent, size): st.pointee.line("N", id, parent, size)
        case let .pool(id, parent, capacity, site): st.pointee.line("P", id, parent, capacity, site: site)
        case let .pooledObject(id, parent, size, count, bytes, site):
            st.pointee.line("O", id, parent, size, count, bytes, site: site)
        case let .external(id, parent, size): st.pointee.line("E", id, parent, size)
        case let .realloc(id, size): st.pointee.line("R", id, size)
        case let .free(id): st.pointee.line("F", id)
        case let .freeChildren(id): st.pointee.line("C", id)
        case let .steal(id, parent): st.pointee.line("S", id, parent)
        case let .reparent(id, old, new): st.pointee.line("Y", id, old, new)
        case let .reference(id, parent): st.pointee.line("L", id, parent)
        case let .unlink(id, parent): st.pointee.line("U", id, parent)
        case let .setName(id, length, child): st.pointee.line("A", id, length, child)
        case let .memlimit(id, bytes): st.pointee.line("M", id, bytes)
        case let .refuse(id):
            st.pointee.line("K", id)
            st.pointee.refusals += 1
            st.pointee.lastRefused = id
        }
        if st.pointee.count >= _TraceState.flushAt { flush() }
    }

    // The numbers of contexts. `top` is the script's top level (the state's root): 0.

    /// A new number for the context at `body` (just made).
    func assign(_ body: UnsafeMutableRawPointer) -> Int {
        let id = w.pointee.nextID
        w.pointee.nextID += 1
        w.pointee.set(body, id)
        return id
    }

    /// The number of `c` (0 for `top` and for nil); a context never seen gets one now, written as an `E`.
    func id(_ c: TallocContext?, top: UnsafeMutableRawPointer) -> Int {
        guard let c, c.unsafePointer != top else { return 0 }
        if let id = w.pointee.get(c.unsafePointer) { return id }
        let parent = id(c.parent, top: top)
        let id = assign(c.unsafePointer)
        write(.external(id: id, parent: parent, size: c.size))
        return id
    }

    /// The context at `old` is now at `new` (a realloc moved it).
    func moved(from old: UnsafeMutableRawPointer, to new: UnsafeMutableRawPointer) {
        guard old != new, let id = w.pointee.remove(old) else { return }
        w.pointee.set(new, id)
    }

    func forget(_ body: UnsafeMutableRawPointer) { _ = w.pointee.remove(body) }

    /// The `K` lines written so far, and the number of the last one (0 before any).
    var refusals: (count: Int, last: Int) { (w.pointee.refusals, w.pointee.lastRefused) }

    /// The number of the context at `body`, if it has one (tests).
    func peek(_ body: UnsafeMutableRawPointer) -> Int? { w.pointee.get(body) }

    // MARK: The writer of the calling thread

    /// Set (for good) the first time any thread gets a writer: until then the module's functions never
    /// look for one.
    static let everEnabled = Atomic<Bool>(false)

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { raw in
            guard let raw else { return }
            Unmanaged<TallocTraceWriter>.fromOpaque(raw).release()
        }
        return k
    }()

    /// The writer of the calling thread, or nil (the default).
    public static var current: TallocTraceWriter? {
        get {
            guard everEnabled.load(ordering: .relaxed), let raw = pthread_getspecific(key) else { return nil }
            return Unmanaged<TallocTraceWriter>.fromOpaque(raw).takeUnretainedValue()
        }
        set {
            if newValue != nil { everEnabled.store(true, ordering: .relaxed) }
            if let old = pthread_getspecific(key) { Unmanaged<TallocTraceWriter>.fromOpaque(old).release() }
            pthread_setspecific(key, newValue.map { Unmanaged.passRetained($0).toOpaque() })
        }
    }

    /// `current`, with no thread-local lookup while no thread ever traced.
    @inline(__always)
    static var active: TallocTraceWriter? {
        if _fastPath(!everEnabled.load(ordering: .relaxed)) { return nil }
        return current
    }
}

// MARK: - Replay

extension TallocTrace {
    /// How a replay sizes pools.
    public enum Capacity: Hashable, Sendable {
        /// As recorded.
        case recorded
        /// Every pool gets this capacity (pooled objects: room for it after their object).
        case fixed(Int)
        /// Pool `id` gets `capacities[id]` (the others as recorded).
        case perPool([Int: Int])
        /// No pools: each becomes a plain context (a pooled object, a chunk of its object's size).
        case none
    }

    /// What a replay measured.
    public struct ReplayResult: Sendable {
        /// Operations replayed, and those that failed (a memory limit refused, or the trace was
        /// inconsistent: an operation on a context that is gone), with their indices.
        public var operations = 0
        public var failed = 0
        public var failedOperations: [Int] = []
        /// Bytes of talloc memory at the peak and at the end (TallocCore's exact count, as a memory
        /// limit counts: headers and bodies of heap chunks, whole blocks of pools).
        public var peakBytes = 0
        public var finalBytes = 0
        /// Chunks made (contexts, pools, name chunks), those carved from a pool, and the blocks malloc
        /// gave (chunks not carved, pools).
        public var chunks = 0
        public var carved = 0
        public var mallocs = 0
        /// Each pool's statistics, summed per site: the site is "#id", the pool's number in the trace.
        public var pools: [TallocPoolRecorder.Site] = []
        /// Where each pool was made (its site in the trace), by number.
        public var poolSites: [Int: String] = [:]
        /// Capacity each pool was replayed with, by number.
        public var poolCapacities: [Int: Int] = [:]

        /// The capacity that would have served every allocation of pool `id` in this replay.
        public func neededCapacity(of id: Int) -> Int? {
            pools.first { $0.name == "#\(id)" }?.neededCapacity
        }

        /// The advice of this replay, as capacities for a next one.
        public var advisedCapacities: [Int: Int] {
            var out: [Int: Int] = [:]
            for s in pools { if let id = Int(s.name.dropFirst()) { out[id] = s.neededCapacity } }
            return out
        }

        /// The pools summed per recorded site (pools without one under "?").
        public var sites: [TallocPoolRecorder.Site] {
            var order: [String] = []
            var bySite: [String: TallocPoolRecorder.Site] = [:]
            for var p in pools {
                let id = Int(p.name.dropFirst())
                let name = id.flatMap { poolSites[$0] } ?? "?"
                if let id { p.pins = p.pins.map { var q = $0; q.serial = id; return q } }  // pools by their numbers in the trace
                if var s = bySite[name] {
                    s.merge(p)
                    bySite[name] = s
                } else {
                    var s = p
                    s.name = name
                    s.pins = s.pins.map { var q = $0; q.site = name; return q }
                    bySite[name] = s
                    order.append(name)
                }
            }
            return order.map { bySite[$0]! }
        }
    }

    /// Replays `operations` on TallocCore in a tree of its own, every pool keeping statistics.
    ///   - memoryLimit: bytes of talloc memory the replay may hold (0: no limit); an operation it would
    ///     exceed fails, as it would have under `talloc_set_memlimit`. A trace is input: give one to
    ///     replay a trace you did not make.
    /// The capacities that serve every allocation of every pool of the trace, found by replays: the first
    /// at the recorded capacities (returned as `first`), then, while a pool still spills, one more at the
    /// advice of the last (at most `rounds`). A pool's advice counts the blocks of the pools made in it at
    /// their capacity of that replay: a pool in a pool that grows makes its parent's advice too small
    /// (finding A5 of adv2), the next round sizes the parent for it. A pool never shrinks below an
    /// earlier round's advice, so the rounds converge.
    public static func advisedCapacities(_ operations: [Operation], memoryLimit: Int = 0, rounds: Int = 16)
        -> (capacities: [Int: Int], first: ReplayResult) {
        let first = replay(operations, memoryLimit: memoryLimit)
        var capacities = first.advisedCapacities
        guard first.pools.contains(where: { $0.spills > 0 }) else { return (capacities, first) }
        for _ in 1..<max(2, rounds) {
            let next = replay(operations, capacity: .perPool(capacities), memoryLimit: memoryLimit)
            guard next.pools.contains(where: { $0.spills > 0 }) else { break }
            for (id, n) in next.advisedCapacities { capacities[id] = max(capacities[id] ?? 0, n) }
        }
        return (capacities, first)
    }

    public static func replay(_ operations: [Operation], capacity: Capacity = .recorded, memoryLimit: Int = 0) -> ReplayResult {
        let replay = _Replay(capacity: capacity, limit: max(0, memoryLimit))
        return replay.run(operations)
    }
}

extension TallocPoolRecorder.Site {
    /// Adds another site's sums to this one.
    mutating func merge(_ o: TallocPoolRecorder.Site) {
        pools += o.pools
        minCapacity = min(minCapacity, o.minCapacity)
        maxCapacity = max(maxCapacity, o.maxCapacity)
        peakUsed = max(peakUsed, o.peakUsed)
        allocations += o.allocations
        spills += o.spills
        spilledBytes += o.spilledBytes
        largestSpill = max(largestSpill, o.largestSpill)
        poolsThatSpilled += o.poolsThatSpilled
        neededCapacity = max(neededCapacity, o.neededCapacity)
        holes += o.holes
        holeBytes += o.holeBytes
        reclaims += o.reclaims
        resets += o.resets
        stolen += o.stolen
        pinned += o.pinned
        for p in o.pins where pins.count < TallocPoolRecorder.Site.pinLimit {
            var q = p
            q.site = name
            pins.append(q)
        }
        aliveAtExit += o.aliveAtExit
    }
}

/// One replay: the contexts by number, kept right by an observer on each (told of frees and moves).
final class _Replay {
    let capacity: TallocTrace.Capacity
    var contexts: [Int: TallocContext] = [:]
    var result = TallocTrace.ReplayResult()
    let recorder = TallocPoolRecorder(siteLimit: Int.max)
    var root: TallocContext!
    /// The refusals (`K`) each context still has to make (its destructor makes them); none while the
    /// replay ends (its root is freed whole).
    var refusals: [Int: Int] = [:]
    var closing = false

    /// The replay's memory limit (0: none).
    let limit: Int

    init(capacity: TallocTrace.Capacity, limit: Int) {
        self.capacity = capacity
        self.limit = limit
    }

    /// The destructor of a context with `K` lines: refuses while it has refusals left.
    func verdict(_ id: Int) -> TallocDestructorVerdict {
        guard !closing, let n = refusals[id], n > 0 else { return .allow }
        refusals[id] = n == 1 ? nil : n - 1
        return .refuse
    }

    static let observer: TallocUnsafeObserver = { body, event, tag, context, _ in
        let r = Unmanaged<_Replay>.fromOpaque(context!).takeUnretainedValue()
        switch TallocObserverEvent(rawValue: event) {
        case .freed?: r.contexts.removeValue(forKey: tag)
        case .moved?: r.contexts[tag] = TallocContext(unsafePointer: body)
        default: break
        }
    }

    func context(_ id: Int) -> TallocContext? { id == 0 ? root : contexts[id] }

    /// Takes a new context as number `id`, named "#id" (so that reports say which context of the trace
    /// they mean), unless it is a name chunk (`named` false).
    func adopt(_ c: TallocContext, _ id: Int, named: Bool = true) -> Bool {
        result.chunks += 1
        if c.isPoolMemory { result.carved += 1 } else { result.mallocs += 1 }
        let name = Array("#\(id)".utf8)
        guard !named || name.withUnsafeBytes({ c.setNameCopy($0) }),
              c.unsafeSetObserver(_Replay.observer, context: Unmanaged.passUnretained(self).toOpaque(), tag: id) else {
            try? c.free()
            return false
        }
        contexts[id] = c
        return true
    }

    func capacity(of id: Int, recorded: Int) -> Int {
        switch capacity {
        case .recorded, .none: return recorded
        case .fixed(let n): return n
        case .perPool(let m): return m[id] ?? recorded
        }
    }

    func run(_ ops: [TallocTrace.Operation]) -> TallocTrace.ReplayResult {
        guard let r = try? TallocContext.new(parent: nil, name: "replay") else { return result }
        root = r
        try? r.setMemoryLimit(limit)  // the count of bytes, exact (0: no limit)
        for (i, op) in ops.enumerated() {
            result.operations += 1
            if !apply(op) {
                result.failed += 1
                result.failedOperations.append(i)
            }
            let now = r.memoryLimit?.current ?? 0
            if now > result.peakBytes { result.peakBytes = now }
        }
        result.finalBytes = r.memoryLimit?.current ?? 0
        recorder.isClosing = true
        closing = true
        try? r.free()
        result.pools = recorder.sites
        return result
    }

    func apply(_ op: TallocTrace.Operation) -> Bool {
        do throws(TallocError) {
            switch op {
            case let .new(id, parent, size), let .external(id, parent, size):
                guard let p = context(parent) else { return false }
                return adopt(try TallocContext.allocateUnnamed(parent: p, byteCount: size), id)
            case let .pool(id, parent, recorded, site):
                guard let p = context(parent) else { return false }
                if case .none = capacity { return adopt(try TallocContext.allocateUnnamed(parent: p, byteCount: 0), id) }
                let n = capacity(of: id, recorded: recorded)
                result.poolSites[id] = site ?? "?"
                result.poolCapacities[id] = n
                return adopt(try TallocContext.pool(parent: p, capacity: n, statistics: true, recorder: recorder, site: "#\(id)"), id)
            case let .pooledObject(id, parent, size, count, bytes, site):
                guard let p = context(parent) else { return false }
                if case .none = capacity { return adopt(try TallocContext.allocateUnnamed(parent: p, byteCount: size), id) }
                var (c, b) = (count, bytes)
                // an object larger than talloc allows fails as talloc_pooled_object would; below it the
                // arithmetic here cannot overflow (finding A9 of adv2: a hostile size trapped)
                guard size < Talloc.maximumSize else { return false }
                if case .recorded = capacity {} else {
                    let recorded = TallocContext.pooledObjectCapacity(byteCount: size, subobjects: count, subobjectBytes: bytes) ?? 0
                    let n = capacity(of: id, recorded: recorded)
                    // the same capacity from talloc_pooled_object's arithmetic: the room left as bytes
                    c = 0
                    b = max(0, n - size - (TallocContext.pooledObjectCapacity(byteCount: 0, subobjects: 0, subobjectBytes: 0) ?? 0))
                }
                let o = try TallocContext.pooledObject(parent: p, byteCount: size, name: "", subobjects: c, subobjectBytes: b)
                result.poolSites[id] = site ?? "?"
                result.poolCapacities[id] = o.poolInfo?.capacity ?? 0
                _ = try o.enablePoolStatistics(recorder: recorder, site: "#\(id)")
                return adopt(o, id)
            case let .realloc(id, size):
                guard var c = context(id), id != 0, size > 0 else { return false }
                try c.resize(byteCount: size)
                return true
            case let .free(id):
                guard let c = context(id), id != 0 else { return false }
                do throws(TallocError) { try c.free() } catch .destructorRefused {}  // as the script's was (K)
                return true
            case let .freeChildren(id):
                guard let c = context(id) else { return false }
                c.freeChildren()
                return true
            case let .steal(id, parent):
                guard let c = context(id), id != 0, let p = context(parent) else { return false }
                try c.steal(to: p)
                return true
            case let .reparent(id, old, new):
                guard let c = context(id), id != 0, let o = context(old), let n = context(new) else { return false }
                try c.reparent(from: o, to: n)
                return true
            case let .reference(id, parent):
                guard let c = context(id), id != 0, let p = context(parent) else { return false }
                try c.reference(from: p)
                return true
            case let .unlink(id, parent):
                guard let c = context(id), id != 0, let p = context(parent) else { return false }
                do throws(TallocError) { try c.unlink(from: p) } catch .destructorRefused {}  // as the script's was (K)
                return true
            case let .setName(id, length, child):
                guard let c = context(id), id != 0, length < Talloc.maximumSize else { return false }
                // the name's bytes are made before the chunk the limit would refuse: not past the limit
                if limit > 0, let m = root.memoryLimit, length > m.max - m.current { return false }
                let name = [UInt8](repeating: UInt8(ascii: "n"), count: length)
                var made: Result<TallocContext, TallocError> = .failure(.outOfMemory)
                name.withUnsafeBytes { b in made = Result { () throws(TallocError) in try c.setName(bytes: b) } }
                return adopt(try made.get(), child, named: false)
            case let .memlimit(id, bytes):
                guard let c = context(id), id != 0 else { return false }
                try c.setMemoryLimit(bytes)
                return true
            case let .refuse(id):
                guard let c = context(id), id != 0 else { return false }
                refusals[id, default: 0] += 1
                c.setDestructor { [unowned self] _ in self.verdict(id) }
                return true
            }
        } catch {
            return false
        }
    }
}

/// The writer's buffer and its table of context numbers (see `TallocTraceWriter`).
struct _TraceState {
    static let flushAt = 1 << 16
    var buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 1 << 16 + 4096)
    var capacity = 1 << 16 + 4096
    var count = 0
    var operations = 0
    var failed = false
    var nextID = 1
    var refusals = 0
    var lastRefused = 0
    // open addressing, linear probing: keys are addresses (0 empty, 1 a removed entry), values numbers
    var keys = UnsafeMutablePointer<UInt>.allocate(capacity: 1024)
    var values = UnsafeMutablePointer<Int>.allocate(capacity: 1024)
    var slots = 1024
    var used = 0  // entries and removed entries

    init() { keys.initialize(repeating: 0, count: slots) }

    mutating func release() {
        buffer.deallocate()
        keys.deallocate()
        values.deallocate()
    }

    mutating func reserve(_ n: Int) {
        if count + n <= capacity { return }
        var cap = capacity * 2
        while cap < count + n { cap *= 2 }
        let b = UnsafeMutablePointer<UInt8>.allocate(capacity: cap)
        b.update(from: buffer, count: count)
        buffer.deallocate()
        buffer = b
        capacity = cap
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        reserve(bytes.count)
        if let base = bytes.baseAddress { (buffer + count).update(from: base.assumingMemoryBound(to: UInt8.self), count: bytes.count) }
        count += bytes.count
    }

    @inline(__always)
    mutating func byte(_ b: UInt8) {
        buffer[count] = b
        count += 1
    }

    /// " n" (n from 0 up).
    @inline(__always)
    mutating func number(_ n: Int) {
        byte(0x20)
        var v = UInt(max(n, 0))
        var digits = 1
        var t = v
        while t >= 10 { t /= 10; digits += 1 }
        count += digits
        var at = count
        repeat {
            at -= 1
            buffer[at] = UInt8(truncatingIfNeeded: v % 10) &+ 0x30
            v /= 10
        } while v != 0
    }

    mutating func line(_ op: Unicode.Scalar, _ a: Int, _ b: Int? = nil, _ c: Int? = nil, _ d: Int? = nil, _ e: Int? = nil,
                       site: String? = nil) {
        reserve(6 * 21 + 2)
        byte(UInt8(op.value))
        number(a)
        if let b { number(b) }
        if let c { number(c) }
        if let d { number(d) }
        if let e { number(e) }
        if var site {
            byte(0x20)
            let start = count
            site.withUTF8 { append(UnsafeRawBufferPointer($0)) }
            // A chunk name ("=..." or "@...") may hold a line break: it would end the line early.
            for i in start..<count where buffer[i] == 0x0A || buffer[i] == 0x0D { buffer[i] = 0x3F }
            reserve(1)
        }
        byte(0x0A)
    }

    @inline(__always)
    func slot(_ key: UInt) -> Int { Int(truncatingIfNeeded: ((key >> 4) &* 0x9E37_79B9_7F4A_7C15) >> 20) & (slots - 1) }

    func get(_ p: UnsafeMutableRawPointer) -> Int? {
        let key = UInt(bitPattern: p)
        var i = slot(key)
        while true {
            let k = keys[i]
            if k == key { return values[i] }
            if k == 0 { return nil }
            i = (i + 1) & (slots - 1)
        }
    }

    mutating func set(_ p: UnsafeMutableRawPointer, _ value: Int) {
        if (used + 1) * 2 > slots { grow() }
        let key = UInt(bitPattern: p)
        var i = slot(key)
        var free: Int? = nil
        while true {
            let k = keys[i]
            if k == key { values[i] = value; return }
            if k == 1 && free == nil { free = i }
            if k == 0 { break }
            i = (i + 1) & (slots - 1)
        }
        if let free { i = free } else { used += 1 }
        keys[i] = key
        values[i] = value
    }

    mutating func remove(_ p: UnsafeMutableRawPointer) -> Int? {
        let key = UInt(bitPattern: p)
        var i = slot(key)
        while true {
            let k = keys[i]
            if k == key {
                keys[i] = 1
                return values[i]
            }
            if k == 0 { return nil }
            i = (i + 1) & (slots - 1)
        }
    }

    mutating func grow() {
        let (oldKeys, oldValues, oldSlots) = (keys, values, slots)
        var live = 0
        for i in 0..<oldSlots where oldKeys[i] > 1 { live += 1 }
        slots = max(1024, (live * 4).nextPowerOf2)
        keys = .allocate(capacity: slots)
        keys.initialize(repeating: 0, count: slots)
        values = .allocate(capacity: slots)
        used = 0
        for i in 0..<oldSlots where oldKeys[i] > 1 {
            var j = slot(oldKeys[i])
            while keys[j] != 0 { j = (j + 1) & (slots - 1) }
            keys[j] = oldKeys[i]
            values[j] = oldValues[i]
            used += 1
        }
        oldKeys.deallocate()
        oldValues.deallocate()
    }
}

extension Int {
    fileprivate var nextPowerOf2: Int {
        var n = 1
        while n < self { n <<= 1 }
        return n
    }
}
