// luatalloc — differential tests against Debian's libtalloc 2.4.0
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
    var out = ""
    out.reserveCapacity(text.utf8.count)
    var i = text.startIndex
    while i < text.endIndex {
        let c = text[i]
        let n = text.index(after: i)
        if c == "0", n < text.endIndex, text[n] == "x" {
            var j = text.index(after: n)
            var value: UInt = 0
            while j < text.endIndex, let d = text[j].hexDigitValue {
                value = value &* 16 &+ UInt(d)
                j = text.index(after: j)
            }
            out += lookup(value).map { "#\($0)" } ?? "#?"
            i = j
        } else {
            out.append(c)
            i = n
        }
    }
    return out
}
