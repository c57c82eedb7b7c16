// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// Memory limits (talloc_set_memlimit), counted exactly: what each chunk costs, and the walk up
// its limits.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension _Core {
    /// What a chunk costs its memory limits: the bytes it really took from malloc. Pool members cost
    /// nothing (their pool was charged), pools cost their whole block.
    @inline(__always)
    static func chargeOf(_ tc: _Chunk) -> Int {
        let f = tc.pointee.flags
        if f & _Flag.poolMem != 0 { return 0 }
        if f & _Flag.pool != 0 { return _poolPrefixSize + tc.poolHeader.limit }  // the pool's whole block
        return _headerSize + Int(tc.pointee.size)
    }

    /// talloc_memlimit_check over `start` and its ancestors.
    static func limitAllows(_ start: _Chunk, _ bytes: Int) -> Bool {
        // No step cap: the walk ends at the first chunk no limit governs, and parent chains have no loops
        // (steal and reparent refuse one; the invariant checker verifies it).
        var c: _Chunk? = start
        while let x = c {
            let f = x.pointee.flags
            if f & _Flag.hasLimit != 0, let e = x.pointee.extra {
                let mx = e.pointee.limitMax, cur = e.pointee.limitCurrent
                if mx != 0 && (mx <= cur || mx - cur < bytes) { return false }
            }
            if f & _Flag.underLimit == 0 { break }
            c = x.pointee.parent
        }
        return true
    }

    static func limitGrow(_ start: _Chunk, _ bytes: Int) {
        limitAdjust(start, bytes)
    }

    static func limitShrink(_ start: _Chunk, _ bytes: Int) {
        limitAdjust(start, -bytes)
    }

    static func limitAdjust(_ start: _Chunk, _ delta: Int) {
        var c: _Chunk? = start
        while let x = c {
            let f = x.pointee.flags
            if f & _Flag.hasLimit != 0, let e = x.pointee.extra {
                e.pointee.limitCurrent += delta
                if e.pointee.limitCurrent < 0 { e.pointee.limitCurrent = 0 }
            }
            if f & _Flag.underLimit == 0 { break }
            c = x.pointee.parent
        }
    }

    /// The summed charge of `root`'s subtree; also sets or clears `underLimit` below `root` to match
    /// `markUnderLimit` (root) and the limits inside the subtree.
    static func subtreeCharge(_ root: _Chunk, markUnderLimit: Bool) -> Int {
        var total = 0
        _Walk.walk(root, skipLoop: false) { tc, _ in
            total += chargeOf(tc)
            let under: Bool
            if tc == root {
                under = markUnderLimit
            } else {
                let pf = tc.pointee.parent!.pointee.flags
                under = pf & (_Flag.hasLimit | _Flag.underLimit) != 0
            }
            if under { tc.pointee.flags |= _Flag.underLimit } else { tc.pointee.flags &= ~_Flag.underLimit }
            return true
        } leave: { _, _ in }
        return total
    }

    /// talloc_set_memlimit: `max` bytes (0 = unlimited) for `tc`'s subtree. False on allocation failure.
    static func setLimit(_ tc: _Chunk, max: Int) -> Bool {
        if tc.pointee.flags & _Flag.hasLimit != 0 {
            tc.pointee.extra!.pointee.limitMax = max
            return true
        }
        guard let e = tc.makeExtra() else { return false }
        tc.pointee.flags |= _Flag.hasLimit
        let current = subtreeCharge(tc, markUnderLimit: tc.pointee.flags & _Flag.underLimit != 0)
        e.pointee.limitMax = max
        e.pointee.limitCurrent = current
        return true
    }
}
