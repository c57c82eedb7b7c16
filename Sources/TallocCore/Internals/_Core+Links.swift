// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// The tree links: a chunk's place among its siblings, and the walk up to its ancestors.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension _Core {
    /// Takes `tc` out of its parent's child list (or the top-level sibling list): talloc's _TLIST_REMOVE.
    /// Keeps `parent`, and leaves `tc`'s own `next` and `prev` stale: for a caller that links it again
    /// right away (`linkAsNewest`).
    @inlinable @inline(__always)
    static func detachFromSiblings(_ tc: _Chunk) {
        let next = tc.pointee.next
        let prev = tc.pointee.prev
        if let prev {
            prev.pointee.next = next
        } else if let p = tc.pointee.parent, p.pointee.child == tc {
            p.pointee.child = next
        }
        if let next { next.pointee.prev = prev }
    }

    /// Removes `tc` from its parent's child list (or from the top-level sibling list). Keeps `parent`.
    @inline(__always) @usableFromInline
    static func unlinkFromSiblings(_ tc: _Chunk) {
        detachFromSiblings(tc)
        tc.pointee.next = nil
        tc.pointee.prev = nil
    }

    /// Links `tc` (already unlinked) as the newest child of `parent` (nil = top level).
    @inlinable @inline(__always)
    static func linkAsNewest(_ tc: _Chunk, under parent: _Chunk?) {
        tc.pointee.parent = parent
        tc.pointee.prev = nil
        if let parent {
            let first = parent.pointee.child
            tc.pointee.next = first
            if let first { first.pointee.prev = tc }
            parent.pointee.child = tc
        } else {
            tc.pointee.next = nil
        }
    }

    /// Removes the first (newest) child of `parent` from the list, without touching the child itself.
    /// Returns the child's next sibling, the new first child.
    @inline(__always) @discardableResult
    static func unlinkFirstChild(of parent: _Chunk, _ child: _Chunk) -> _Chunk? {
        let next = child.pointee.next
        parent.pointee.child = next
        if let next { next.pointee.prev = nil }
        return next
    }

    /// Moves the first (newest) child of `parent` to the end of the list (oldest), when it has siblings:
    /// O(siblings).
    static func moveFirstChildToEnd(of parent: _Chunk, _ child: _Chunk) {
        guard var last = unlinkFirstChild(of: parent, child) else {
            parent.pointee.child = child
            return
        }
        while let n = last.pointee.next { last = n }
        last.pointee.next = child
        child.pointee.prev = last
        child.pointee.next = nil
    }

    /// A header moved from `old` to `tc` (a realloc): its parent, siblings and children point at the new
    /// address. O(children).
    @inline(__always)
    static func relink(movedFrom old: _Chunk, to tc: _Chunk) {
        if let p = tc.pointee.parent, p.pointee.child == old { p.pointee.child = tc }
        if let prev = tc.pointee.prev { prev.pointee.next = tc }
        if let next = tc.pointee.next { next.pointee.prev = tc }
        var c = tc.pointee.child
        while let x = c { x.pointee.parent = tc; c = x.pointee.next }
    }

    /// Is `ancestor` equal to `tc` or one of its ancestors? Safe on detached parent loops.
    @inlinable @inline(__always)
    static func isAncestorOrSelf(_ ancestor: _Chunk, of tc: _Chunk) -> Bool {
        // A plain walk for short chains; past 64 steps the loop-safe walk takes over, and counts its work
        // (`_Work`: the inline path stays small enough for steal to inline, W4).
        var c: _Chunk? = tc
        var steps = 0
        while let x = c {
            if x == ancestor { return true }
            c = x.pointee.parent
            steps &+= 1
            if _slowPath(steps == 64) { return isAncestorOrSelfLoopSafe(ancestor, of: tc) }
        }
        return false
    }

    @inline(never) @usableFromInline
    static func isAncestorOrSelfLoopSafe(_ ancestor: _Chunk, of tc: _Chunk) -> Bool {
        var slow: _Chunk? = tc
        var fast: _Chunk? = tc
        var steps = 0
        defer { _Work.note(3 &* steps) }
        while let s = slow {
            steps &+= 1
            if s == ancestor { return true }
            slow = s.pointee.parent
            // Floyd: the hare moves two steps; meeting the tortoise means a loop without `ancestor`.
            fast = fast?.pointee.parent?.pointee.parent
            if let f = fast, f == slow, f != ancestor {
                // Walk the loop once more to be sure `ancestor` is not on it.
                var x = f.pointee.parent
                while let y = x, y != f {
                    if y == ancestor { return true }
                    x = y.pointee.parent
                }
                return f == ancestor
            }
        }
        return false
    }
}
