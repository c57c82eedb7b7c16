// luatalloc benchmarks — `talloc-bench replay FILE`: a trace of `luatalloc --trace` replayed on TallocCore
// and on Samba's libtalloc, side by side.
//
//   talloc-bench replay FILE [--pool-capacity N|advice|none] [--rounds N]
//
// First the trace runs on TallocCore with pool statistics (as `luatalloc --replay` does): that run finds
// the operations that hold together (those it could not do are left out of both sides) and, with
// `--pool-capacity advice`, the capacity each pool should have. Then each side replays the same
// operations: once measuring the heap after every operation (glibc's mallinfo2: what the process really
// pays, malloc's own overhead included) and counting which chunks were carved from a pool, then `--rounds`
// times for the time per operation. Neither side does any bookkeeping that allocates while it runs: the
// contexts are numbered, in one table made before.
// SPDX-License-Identifier: MIT
import CBench
import LuaTalloc
import TallocCore
#if canImport(Glibc)
import Glibc
#endif

/// One side of a replay: the contexts by number, and what it counted.
protocol ReplaySide {
    var name: String { get }
    init(maxID: Int, capacity: TallocTrace.Capacity)
    /// Applies one operation; false when it could not.
    mutating func apply(_ op: TallocTrace.Operation) -> Bool
    /// Frees everything the replay made.
    mutating func finish()
    var carved: Int { get }
    var mallocs: Int { get }
}

/// The capacity of pool `id` under `capacity`, or nil for no pool.
func replayCapacity(_ capacity: TallocTrace.Capacity, id: Int, recorded: Int) -> Int? {
    switch capacity {
    case .recorded: return recorded
    case .fixed(let n): return n
    case .perPool(let m): return m[id] ?? recorded
    case .none: return nil
    }
}

/// The (count, bytes) of a pooled object resized to `capacity` (talloc_pooled_object's arithmetic: the
/// room after the object, as bytes of no sub-object). `header` is the implementation's per-object room.
func pooledArguments(_ capacity: TallocTrace.Capacity, id: Int, size: Int, count: Int, bytes: Int, perObject: Int) -> (Int, Int) {
    if case .recorded = capacity { return (count, bytes) }
    // a trace is input: numbers of any size saturate instead of trapping (finding A9 of adv2)
    let objects = count.addingReportingOverflow(1), room = perObject.multipliedReportingOverflow(by: objects.partialValue)
    let sum = size.addingReportingOverflow(bytes), total = sum.partialValue.addingReportingOverflow(room.partialValue)
    let recorded = objects.overflow || room.overflow || sum.overflow || total.overflow ? Int.max : total.partialValue
    guard let n = replayCapacity(capacity, id: id, recorded: recorded) else { return (count, bytes) }
    let left = n.subtractingReportingOverflow(size), after = left.partialValue.subtractingReportingOverflow(perObject)
    return (0, left.overflow || after.overflow ? 0 : max(0, after.partialValue))
}

/// The refusals (`K`) each context of the TallocCore side still has to make.
final class CoreRefusals {
    var left: [Int: Int] = [:]
    var closing = false
    func verdict(_ id: Int) -> TallocDestructorVerdict {
        guard !closing, let n = left[id], n > 0 else { return .allow }
        left[id] = n == 1 ? nil : n - 1
        return .refuse
    }
}

struct CoreSide: ReplaySide {
    let name = "TallocCore"
    let refusals = CoreRefusals()
    let table: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    let count: Int
    let capacity: TallocTrace.Capacity
    var carved = 0
    var mallocs = 0

    init(maxID: Int, capacity: TallocTrace.Capacity) {
        count = maxID + 1
        table = .allocate(capacity: count)
        table.initialize(repeating: nil, count: count)
        self.capacity = capacity
        table[0] = try! TallocContext.new(parent: nil, name: "replay").unsafePointer
    }

    func context(_ id: Int) -> TallocContext? {
        guard id >= 0, id < count, let p = table[id] else { return nil }
        return TallocContext(unsafePointer: p)
    }

    mutating func made(_ c: TallocContext, _ id: Int) -> Bool {
        guard id > 0, id < count else { return false }
        if c.isPoolMemory { carved += 1 } else { mallocs += 1 }
        table[id] = c.unsafePointer
        return true
    }

    mutating func apply(_ op: TallocTrace.Operation) -> Bool {
        do throws(TallocError) {
            switch op {
            case let .new(id, parent, size), let .external(id, parent, size):
                guard let p = context(parent) else { return false }
                return made(try TallocContext.allocateUnnamed(parent: p, byteCount: size), id)
            case let .pool(id, parent, recorded, _):
                guard let p = context(parent) else { return false }
                guard let n = replayCapacity(capacity, id: id, recorded: recorded) else {
                    return made(try TallocContext.allocateUnnamed(parent: p, byteCount: 0), id)
                }
                return made(try TallocContext.pool(parent: p, capacity: n), id)
            case let .pooledObject(id, parent, size, count, bytes, _):
                guard let p = context(parent) else { return false }
                if case .none = capacity { return made(try TallocContext.allocateUnnamed(parent: p, byteCount: size), id) }
                let perObject = TallocContext.pooledObjectCapacity(byteCount: 0, subobjects: 0, subobjectBytes: 0) ?? 95
                let (c, b) = pooledArguments(capacity, id: id, size: size, count: count, bytes: bytes, perObject: perObject)
                return made(try TallocContext.pooledObject(parent: p, byteCount: size, name: "", subobjects: c, subobjectBytes: b), id)
            case let .realloc(id, size):
                guard id > 0, var c = context(id), size > 0 else { return false }
                try c.resize(byteCount: size)
                table[id] = c.unsafePointer
            case let .free(id):
                guard id > 0, let c = context(id) else { return false }
                // its number is not reused: a trace made by luatalloc never names it again
                do throws(TallocError) { try c.free() } catch .destructorRefused {}  // as the script's was (K)
            case let .freeChildren(id):
                guard let c = context(id) else { return false }
                c.freeChildren()
            case let .steal(id, parent):
                guard id > 0, let c = context(id), let p = context(parent) else { return false }
                try c.steal(to: p)
            case let .reparent(id, old, new):
                guard id > 0, let c = context(id), let o = context(old), let n = context(new) else { return false }
                try c.reparent(from: o, to: n)
            case let .reference(id, parent):
                guard id > 0, let c = context(id), let p = context(parent) else { return false }
                try c.reference(from: p)
            case let .unlink(id, parent):
                guard id > 0, let c = context(id), let p = context(parent) else { return false }
                do throws(TallocError) { try c.unlink(from: p) } catch .destructorRefused {}
            case let .setName(id, length, child):
                guard id > 0, let c = context(id) else { return false }
                let name = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 1)
                defer { name.deallocate() }
                if length > 0 { memset(name.baseAddress!, 0x6E, length) }
                return made(try c.setName(bytes: UnsafeRawBufferPointer(name)), child)
            case let .memlimit(id, bytes):
                guard id > 0, let c = context(id) else { return false }
                try c.setMemoryLimit(bytes)
            case let .refuse(id):
                guard id > 0, let c = context(id) else { return false }
                refusals.left[id, default: 0] += 1
                c.setDestructor { [refusals] _ in refusals.verdict(id) }
            }
            return true
        } catch {
            return false
        }
    }

    mutating func finish() {
        refusals.closing = true
        if let root = context(0) { try? root.free() }
        table.deallocate()
    }
}

struct LibSide: ReplaySide {
    let name = "libtalloc"
    let table: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    let count: Int
    let capacity: TallocTrace.Capacity
    var carved = 0
    var mallocs = 0

    init(maxID: Int, capacity: TallocTrace.Capacity) {
        count = maxID + 1
        table = .allocate(capacity: count)
        table.initialize(repeating: nil, count: count)
        self.capacity = capacity
        table[0] = cb_rp_size(nil, 0)
    }

    func pointer(_ id: Int) -> UnsafeMutableRawPointer? { id >= 0 && id < count ? table[id] : nil }

    mutating func made(_ p: UnsafeMutableRawPointer?, _ id: Int) -> Bool {
        guard let p, id > 0, id < count else { return false }
        if cb_rp_is_pool_memory(p) != 0 { carved += 1 } else { mallocs += 1 }
        table[id] = p
        return true
    }

    mutating func apply(_ op: TallocTrace.Operation) -> Bool {
        switch op {
        case let .new(id, parent, size), let .external(id, parent, size):
            guard let p = pointer(parent) else { return false }
            return made(cb_rp_size(p, size), id)
        case let .pool(id, parent, recorded, _):
            guard let p = pointer(parent) else { return false }
            guard let n = replayCapacity(capacity, id: id, recorded: recorded) else { return made(cb_rp_size(p, 0), id) }
            return made(cb_rp_pool(p, n), id)
        case let .pooledObject(id, parent, size, count, bytes, _):
            guard let p = pointer(parent) else { return false }
            if case .none = capacity { return made(cb_rp_size(p, size), id) }
            // talloc's room per object: its 96-byte chunk header, its 32-byte pool header, 15 for alignment
            let (c, b) = pooledArguments(capacity, id: id, size: size, count: count, bytes: bytes, perObject: 96 + 32 + 15)
            return made(cb_rp_pooled_object(p, size, UInt32(clamping: c), b), id)
        case let .realloc(id, size):
            guard id > 0, let p = pointer(id), size > 0, let q = cb_rp_realloc(p, size) else { return false }
            table[id] = q
        case let .free(id):
            guard id > 0, let p = pointer(id), cb_rp_free(p) == 0 else { return false }
        case let .freeChildren(id):
            guard let p = pointer(id) else { return false }
            cb_rp_free_children(p)
        case let .steal(id, parent):
            guard id > 0, let p = pointer(id), let q = pointer(parent), cb_rp_steal(q, p) != nil else { return false }
        case let .reparent(id, old, new):
            guard id > 0, let p = pointer(id), let o = pointer(old), let n = pointer(new), cb_rp_reparent(o, n, p) != 0
            else { return false }
        case let .reference(id, parent):
            guard id > 0, let p = pointer(id), let q = pointer(parent), cb_rp_reference(q, p) != nil else { return false }
        case let .unlink(id, parent):
            guard id > 0, let p = pointer(id), let q = pointer(parent), cb_rp_unlink(q, p) == 0 else { return false }
        case let .setName(id, length, child):
            guard id > 0, let p = pointer(id) else { return false }
            return made(cb_rp_set_name(p, length), child)
        case let .memlimit(id, bytes):
            guard id > 0, let p = pointer(id), cb_rp_set_memlimit(p, bytes) == 0 else { return false }
        case let .refuse(id):
            guard id > 0, let p = pointer(id), cb_rp_refuse(p) == 0 else { return false }
        }
        return true
    }

    mutating func finish() {
        cb_rp_closing(1)
        if let root = pointer(0) { _ = cb_rp_free(root) }
        cb_rp_closing(0)
        table.deallocate()
    }
}

/// What one side measured.
struct SideResult {
    var name = ""
    var peak = 0
    var end = 0
    var carved = 0
    var mallocs = 0
    var failed = 0
    var nsPerOp = 0.0
}

func measure<S: ReplaySide>(_: S.Type, _ ops: [TallocTrace.Operation], maxID: Int, capacity: TallocTrace.Capacity,
                            rounds: Int) -> SideResult {
    var r = SideResult()
    cb_heap_trim()
    do {
        var side = S(maxID: maxID, capacity: capacity)
        let base = cb_heap_in_use()
        for op in ops {
            if !side.apply(op) { r.failed += 1 }
            r.peak = max(r.peak, cb_heap_in_use() - base)
        }
        r.end = cb_heap_in_use() - base
        r.name = side.name
        r.carved = side.carved
        r.mallocs = side.mallocs
        side.finish()
    }
    var times: [Double] = []
    for _ in 0..<rounds {
        var side = S(maxID: maxID, capacity: capacity)
        let t0 = now()
        for op in ops { _ = side.apply(op) }
        let t1 = now()
        side.finish()
        times.append(Double(t1 - t0) / Double(max(ops.count, 1)))
    }
    times.sort()
    r.nsPerOp = times.isEmpty ? 0 : times[times.count / 2]
    return r
}

func maxID(_ ops: [TallocTrace.Operation]) -> Int {
    var m = 0
    for op in ops {
        switch op {
        case let .new(id, _, _), let .external(id, _, _), let .pool(id, _, _, _), let .pooledObject(id, _, _, _, _, _):
            m = max(m, id)
        case let .setName(_, _, child): m = max(m, child)
        default: break
        }
    }
    return m
}

func replayUsage() -> Never {
    log("usage: talloc-bench replay FILE [--pool-capacity N|advice|none] [--rounds N]")
    exit(2)
}

/// `talloc-bench replay ...` (the arguments after "replay"); returns the exit status.
func replayMain(_ arguments: [String]) -> Int32 {
    var args = arguments[...]
    var file: String? = nil
    var capacityText: String? = nil
    var rounds = 5
    while let a = args.popFirst() {
        switch a {
        case "--pool-capacity": capacityText = args.popFirst() ?? { replayUsage() }()
        case "--rounds": rounds = max(0, Int(args.popFirst() ?? "") ?? 5)
        case "-h", "--help": replayUsage()
        default:
            if file != nil || a.hasPrefix("-") { replayUsage() }
            file = a
        }
    }
    guard let file else { replayUsage() }
    guard cb_rp_layout_is_sane() != 0 else {
        log("talloc-bench replay: libtalloc's chunk header is not talloc 2.4's: cannot tell pool memory")
        return 1
    }
    guard let f = fopen(file, "r") else {
        log("talloc-bench replay: cannot read \(file): \(String(cString: strerror(errno)))")
        return 1
    }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = buf.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
        bytes += buf[0..<n]
        if n < buf.count { break }
    }
    fclose(f)
    let all: [TallocTrace.Operation]
    do { all = try TallocTrace.parse(String(decoding: bytes, as: UTF8.self)) } catch {
        log("talloc-bench replay: \(file): \(error)")
        return 1
    }

    var capacity = TallocTrace.Capacity.recorded
    var how = "pools at their recorded capacities"
    switch capacityText {
    case nil: break
    case "none"?: capacity = .none; how = "without pools"
    case "advice"?:
        capacity = .perPool(TallocTrace.advisedCapacities(all).capacities)
        how = "each pool at the capacity TallocCore's advice gave it (in its own arithmetic: 64-byte headers)"
    case let text?:
        var digits = Substring(text)
        var unit = 1
        switch digits.last {
        case "k"?, "K"?: unit = 1 << 10; digits = digits.dropLast()
        case "m"?, "M"?: unit = 1 << 20; digits = digits.dropLast()
        default: break
        }
        guard let n = Int(digits), n >= 0 else { replayUsage() }
        capacity = .fixed(n * unit)
        how = "every pool \(n * unit) bytes"
    }

    // TallocCore with statistics: which operations hold together, and the pools' statistics.
    let checked = TallocTrace.replay(all, capacity: capacity)
    let failed = Set(checked.failedOperations)
    let ops = all.enumerated().filter { !failed.contains($0.offset) }.map(\.element)
    let top = maxID(ops)
    let core = measure(CoreSide.self, ops, maxID: top, capacity: capacity, rounds: rounds)
    let lib = measure(LibSide.self, ops, maxID: top, capacity: capacity, rounds: rounds)

    var out = "replay of \(file): \(all.count) operations"
    out += failed.isEmpty ? "" : " (\(failed.count) left out: TallocCore could not do them)"
    out += ", \(how)\n"
    func row(_ label: String, _ a: String, _ b: String) -> String {
        label + String(repeating: " ", count: max(0, 40 - label.count)) + a.leftPadded(14) + b.leftPadded(14) + "\n"
    }
    out += row("", core.name, lib.name)
    out += row("peak heap in use (mallinfo2), bytes", "\(core.peak)", "\(lib.peak)")
    out += row("heap in use at the end, bytes", "\(core.end)", "\(lib.end)")
    out += row("chunks carved from pools", "\(core.carved)", "\(lib.carved)")
    out += row("chunks and pools from malloc", "\(core.mallocs)", "\(lib.mallocs)")
    if core.failed + lib.failed > 0 { out += row("operations that failed", "\(core.failed)", "\(lib.failed)") }
    if rounds > 0 {
        out += row("time per operation (median of \(rounds)), ns", format(core.nsPerOp), format(lib.nsPerOp))
    }
    out += PoolReport.text(checked.sites, title: "pools (TallocCore's statistics)")
    print(out, terminator: "")
    return 0
}

private func format(_ x: Double) -> String {
    x >= 100 ? String(Int(x.rounded())) : String(Double(Int(x * 10)) / 10)
}

private extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? " " + self : String(repeating: " ", count: n - count) + self }
}
