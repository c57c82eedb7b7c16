// luatalloc — the differential harness (TallocCore against Debian's libtalloc 2.4.0)
// SPDX-License-Identifier: MIT
//
// The common face of the two libraries under comparison, and the normalised snapshot of what is
// observable. Addresses never appear in a snapshot: pointers are mapped to the generator's ids.

/// Where a chunk hangs, or what a child is, in a snapshot.
enum NodeRef: Hashable, CustomStringConvertible {
    /// No parent (libtalloc with null tracking on: a child of the null_context).
    case top
    case tracked(Int)
    /// A chunk the generator did not create (a `.name` string); shown by its name.
    case untracked(String)
    var description: String {
        switch self {
        case .top: "NULL"
        case .tracked(let id): "#\(id)"
        case .untracked(let name): "~\(name.debugDescription)"
        }
    }
}

/// Everything observable about one live object.
struct ObjectSnapshot: Equatable, CustomStringConvertible {
    var id: Int
    var name: String
    var parent: NodeRef
    /// Newest first; reference handles excluded (they are in the report text).
    var children: [NodeRef]
    var size: Int
    var totalSize: Int
    var totalBlocks: Int
    var referenceCount: Int
    var isPoolMemory: Bool

    var description: String {
        "#\(id) \(name.debugDescription) parent=\(parent) size=\(size) total=\(totalSize)/\(totalBlocks) "
            + "refs=\(referenceCount) poolmem=\(isPoolMemory) children=\(children)"
    }
}

struct Snapshot: Equatable {
    /// Sorted by id.
    var objects: [ObjectSnapshot]
    /// `report_full` of every live top-level object, addresses replaced by ids, sorted by root id.
    var reports: [String]
}

struct DestructorEvent: Equatable, CustomStringConvertible {
    var id: Int
    var refused: Bool
    var description: String { "#\(id)\(refused ? "(refused)" : "")" }
}

/// One of the two libraries, driven by generator ids.
protocol DifferentialSubject: AnyObject {
    var label: String { get }
    /// Runs one operation. A creating operation registers its new id when it succeeds.
    func perform(_ op: DiffOp) -> OpResult
    /// Drops the ids that are no longer alive (decided by the oracle's own walk; never touches them).
    func forget(_ dead: [Int])
    /// The snapshot of the given live ids; `reports` for the top-level ones when `withReports`.
    func observe(_ live: [Int], withReports: Bool) -> Snapshot
    /// Destructor calls since the last call, in order.
    func takeDestructorLog() -> [DestructorEvent]
    /// `talloc_report_full` / `talloc_report_depth_file(p, depth, maxDepth)` text of a live id, addresses
    /// replaced by `#id` (tracked) or `#?`.
    func reportText(_ id: Int, depth: Int, maxDepth: Int) -> String
}

/// Replaces every `0x…` token of a report by `#id` when the address is a tracked object, else `#?`.
func maskAddresses(_ text: String, _ lookup: (UInt) -> Int?) -> String {
    let bytes = Array(text.utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var i = 0
    while i < bytes.count {
        if bytes[i] == UInt8(ascii: "0"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "x") {
            var j = i + 2
            var value: UInt = 0
            while j < bytes.count {
                let b = bytes[j]
                let d: UInt
                switch b {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt(b - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt(b - UInt8(ascii: "a") + 10)
                default: d = 16
                }
                if d == 16 { break }
                value = value &* 16 &+ d
                j += 1
            }
            out.append(UInt8(ascii: "#"))
            if let id = lookup(value) { out.append(contentsOf: String(id).utf8) } else { out.append(UInt8(ascii: "?")) }
            i = j
        } else {
            out.append(bytes[i])
            i += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// The lines of two snapshots that differ (libtalloc's first), for a failure report.
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
