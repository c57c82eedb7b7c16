// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// Pool statistics (beyond talloc): what a pool served, what did not fit, how full it got, the holes its
// frees left, its resets, and the capacity that would have served every allocation it saw.
//
// Opt-in per pool (`TallocContext.enablePoolStatistics`): the record is malloc'd, reached from the pool's
// side record, and freed with the pool's chunk. The pool and every chunk carved from it (or meant for it
// and put on the heap, a "spill") carry `_Flag.poolStats`, which the inlined fast paths test in the same
// mask as the memory-limit flags: pools without statistics pay nothing, and those with statistics take
// the out-of-line paths, which call the hooks here.
//
// The advice. A pool that never spills lays its members out exactly as a pool of unbounded capacity
// would; so the smallest capacity with no spill is the highest `end` of that unbounded pool ("V"). The
// record follows V alongside the real pool: while nothing spilled, V *is* the real pool (`vEnd` is the
// real `end`). From the first spill on ("diverged"), V keeps every spill as a member at its own end, and
// the record keeps an upper bound of V's end: a new carve goes at `vEnd`; a free gives V's space back
// only when the chunk is one of the last few carved (`recent`, with their V offsets) and ends at `vEnd`
// (talloc's reclaim of the last chunk, in V); any other free is a hole in V (or, for an older chunk, a
// hole the bound keeps). When the real pool is empty and no spill is alive, V is empty too, and the two
// are one again. So V's real end never exceeds `vEnd`, and a pool of capacity `vPeak - 64` (the peak
// "used" of V) serves every allocation of the same run: the tests rerun with it and see no spill.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A recent carve of the unbounded pool V: the chunk, its offset in V, its span.
@usableFromInline
struct _VirtualCarve {
    var chunk: _Chunk?
    var offset: UInt32
    var span: UInt32
}

/// A pool's statistics. Offsets and ends count from the pool's chunk header, as `_PoolHeader.end`.
@usableFromInline
struct _PoolStats {
    /// Chunks carved from the pool: allocations, and reallocs that moved a member within it.
    var allocations = 0
    /// The bytes they took of it (header and body, rounded to 16).
    var allocatedBytes = 0
    /// Allocations (and reallocs of members) that targeted the pool but went to the heap: no room.
    var spills = 0
    /// The bytes of the pool they would have taken.
    var spilledBytes = 0
    /// The largest of them.
    var largestSpill = 0
    /// The highest `end`.
    var peakEnd: Int
    /// The spans of the live members (a pooled object's own body excluded).
    var liveBytes = 0
    /// Holes left in the middle of the pool (a member freed, or shrunk, that was not the last carved).
    var holes = 0
    var holeBytes = 0
    /// Frees of the last member carved, whose bytes the pool took back.
    var reclaims = 0
    /// Times the pool emptied and went back to its start.
    var resets = 0
    /// Members stolen to a parent not in the pool.
    var stolen = 0
    /// Reallocs of members and spills.
    var reallocs = 0
    /// The unbounded pool V (see the file's comment).
    var vEnd: Int
    var vPeak: Int
    var diverged = false
    /// Spills of this pool not known to be gone.
    var liveSpills = 0
    /// Where the next recent carve of V is noted (the slots are a ring: the oldest note goes).
    var recentNext = 0
    /// The recorder (`TallocPoolRecorder`, retained) told when the pool goes, or nil.
    var recorder: UnsafeMutableRawPointer? = nil
    /// The recorder's number for this pool (creation order), and its site.
    var serial = 0
    var site: Int32 = -1

    /// How many recent carves of V the record keeps (a power of 2).
    static let recentCapacity = 8
    /// What one record takes from malloc (the record and its recent carves).
    static var byteCount: Int { MemoryLayout<_PoolStats>.stride + recentCapacity * MemoryLayout<_VirtualCarve>.stride }

    /// `poolOffset` of a heap chunk (always 0 otherwise) that spilled from a pool with statistics.
    static let spillMark: UInt32 = 1

    /// The statistics of `pool` (a pool's chunk), if it keeps them.
    @inline(__always)
    static func of(_ pool: _Chunk) -> UnsafeMutablePointer<_PoolStats>? { pool.pointee.extra?.pointee.poolStats }

    /// A new record for `pool` (no members yet); nil when malloc fails.
    static func make(for pool: _Chunk) -> UnsafeMutablePointer<_PoolStats>? {
        guard let raw = malloc(byteCount) else { return nil }
        let s = raw.bindMemory(to: _PoolStats.self, capacity: 1)
        let end = pool.poolHeader.end
        s.initialize(to: _PoolStats(peakEnd: end, vEnd: end, vPeak: end))
        s.recent.initialize(repeating: _VirtualCarve(chunk: nil, offset: 0, span: 0), count: recentCapacity)
        return s
    }

    /// Frees a record (the recorder, if any, was told already).
    static func destroy(_ s: UnsafeMutablePointer<_PoolStats>) {
        if let r = s.pointee.recorder { Unmanaged<TallocPoolRecorder>.fromOpaque(r).release() }
        s.deinitialize(count: 1)
        free(s)
    }
}

/// What became of a member's bytes when it left its pool (`_Core.releasePoolMem`).
@usableFromInline
enum _PoolRelease {
    /// The pool was freed and this was its last member: the block is gone.
    case lastMember
    /// Only the pool is left: it went back to its start.
    case reset
    /// It was the last chunk carved: the pool took its bytes back.
    case reclaimed
    /// It was not: its bytes are a hole until the pool resets.
    case hole
}

extension UnsafeMutablePointer where Pointee == _PoolStats {
    // MARK: The recent carves of V

    var recent: UnsafeMutablePointer<_VirtualCarve> {
        (UnsafeMutableRawPointer(self) + MemoryLayout<_PoolStats>.stride).assumingMemoryBound(to: _VirtualCarve.self)
    }

    @inline(__always)
    func recentIndex(of tc: _Chunk) -> Int? {
        let r = recent
        for i in 0..<_PoolStats.recentCapacity where r[i].chunk == tc { return i }
        return nil
    }

    @inline(__always)
    func removeRecent(at i: Int) { recent[i].chunk = nil }

    /// Notes a carve of V (the newest) in place of the oldest note.
    @inline(__always)
    func pushRecent(_ tc: _Chunk, offset: Int, span: Int) {
        let i = pointee.recentNext
        recent[i] = _VirtualCarve(chunk: tc, offset: UInt32(truncatingIfNeeded: offset), span: UInt32(truncatingIfNeeded: span))
        pointee.recentNext = (i &+ 1) & (_PoolStats.recentCapacity &- 1)
    }

    func clearRecent() {
        for i in 0..<_PoolStats.recentCapacity { recent[i].chunk = nil }
    }

    /// A carve of `span` bytes at V's end for `tc`.
    func carveVirtually(_ tc: _Chunk, span: Int) {
        pushRecent(tc, offset: pointee.vEnd, span: span)
        pointee.vEnd += span
        if pointee.vEnd > pointee.vPeak { pointee.vPeak = pointee.vEnd }
    }

    /// `tc` leaves V: V takes its bytes back when it is the last carved there (talloc never takes back a
    /// nested pool's block, `reclaimable` false); its note goes.
    func leaveVirtually(_ tc: _Chunk, reclaimable: Bool = true) {
        guard let i = recentIndex(of: tc) else { return }
        let r = recent[i]
        if reclaimable && Int(r.offset) + Int(r.span) == pointee.vEnd { pointee.vEnd = Int(r.offset) }
        removeRecent(at: i)
    }

    /// `tc` (moved from `old`, or the same) now takes `span` bytes of V: in place when it is V's last carve
    /// or does not grow, else moved to V's end.
    func resizeVirtually(_ old: _Chunk, to tc: _Chunk, span: Int) {
        if let i = recentIndex(of: old) {
            let r = recent[i]
            recent[i].chunk = tc
            if Int(r.offset) + Int(r.span) == pointee.vEnd {
                pointee.vEnd = Int(r.offset) + span
                recent[i].span = UInt32(truncatingIfNeeded: span)
                if pointee.vEnd > pointee.vPeak { pointee.vPeak = pointee.vEnd }
                return
            }
            if span <= Int(r.span) {
                recent[i].span = UInt32(truncatingIfNeeded: span)
                return
            }
            removeRecent(at: i)
        } else if span <= 0 {
            return
        }
        carveVirtually(tc, span: span)
    }

    /// While V is the real pool: V's end is the real end.
    func syncIfConverged(_ pool: _Chunk) {
        guard !pointee.diverged else { return }
        pointee.vEnd = pool.poolHeader.end
        if pointee.vEnd > pointee.vPeak { pointee.vPeak = pointee.vEnd }
    }

    /// The real pool is empty: when no spill lives either, V is empty too and the two are one again.
    func convergeIfEmpty(_ pool: _Chunk) {
        guard pointee.diverged, pointee.liveSpills == 0, pool.poolHeader.members == 0 else { return }
        pointee.diverged = false
        clearRecent()
        pointee.vEnd = pool.poolHeader.end
    }

    func notePeak(_ pool: _Chunk) {
        let end = pool.poolHeader.end
        if end > pointee.peakEnd { pointee.peakEnd = end }
    }

    // MARK: Events

    /// `tc` was carved from `pool`, taking `span` bytes of it.
    func carved(_ pool: _Chunk, _ tc: _Chunk, span: Int) {
        pointee.allocations += 1
        pointee.allocatedBytes += span
        pointee.liveBytes += span
        notePeak(pool)
        if pointee.diverged {
            carveVirtually(tc, span: span)
        } else {
            pushRecent(tc, offset: pool.poolHeader.end - span, span: span)
            syncIfConverged(pool)
        }
    }

    /// New chunk `tc` was meant for the pool but went to the heap: it would have taken `span` bytes at
    /// the end of the pool that never spills.
    func spilledAllocation(_ tc: _Chunk, span: Int) {
        spilled(tc, span: span)
        carveVirtually(tc, span: span)
    }

    /// `tc` was meant for the pool but went to the heap; it would have taken `span` bytes of the pool.
    func spilled(_ tc: _Chunk, span: Int) {
        pointee.spills += 1
        pointee.spilledBytes += span
        if span > pointee.largestSpill { pointee.largestSpill = span }
        pointee.liveSpills += 1
        pointee.diverged = true
        tc.pointee.flags |= _Flag.poolStats
        tc.pointee.poolOffset = _PoolStats.spillMark
    }

    /// Counts what the real pool did when a member taking `span` bytes left it.
    func countRelease(_ outcome: _PoolRelease, span: Int, isPool: Bool) {
        pointee.liveBytes -= span
        switch outcome {
        case .reset: pointee.resets += 1
        case .reclaimed:
            pointee.reclaims += 1
            if isPool {  // talloc's arithmetic leaves a nested pool's 16-byte prefix behind
                pointee.holes += 1
                pointee.holeBytes += _poolPrefixSize
            }
        case .hole:
            pointee.holes += 1
            pointee.holeBytes += span
        case .lastMember: break
        }
    }

    /// Member `tc` (taking `span` bytes) left `pool` for good (freed, or a nested pool's block gone).
    /// Not called while the pool itself is being freed: its members' frees are then its teardown, whose
    /// holes, reclaims and resets are not worth counting (`releasePoolMemCounted`).
    func memberFreed(_ pool: _Chunk, _ tc: _Chunk, span: Int, isPool: Bool, _ outcome: _PoolRelease) {
        countRelease(outcome, span: span, isPool: isPool)
        if pointee.diverged {
            leaveVirtually(tc, reclaimable: !isPool)
            if outcome == .reset { convergeIfEmpty(pool) }
        } else {
            if let i = recentIndex(of: tc) { removeRecent(at: i) }
            syncIfConverged(pool)
        }
    }

    /// Member `tc` was resized in place from `oldSpan` to `newSpan` bytes; `hole`: the bytes it gave back
    /// are a hole (it was not the last carved).
    func memberResized(_ pool: _Chunk, _ tc: _Chunk, oldSpan: Int, newSpan: Int, hole: Bool) {
        pointee.reallocs += 1
        pointee.liveBytes += newSpan - oldSpan
        if hole {
            pointee.holes += 1
            pointee.holeBytes += oldSpan - newSpan
        }
        notePeak(pool)
        if pointee.diverged {
            resizeVirtually(tc, to: tc, span: newSpan)
        } else {
            if let i = recentIndex(of: tc) { recent[i].span = UInt32(truncatingIfNeeded: newSpan) }
            syncIfConverged(pool)
        }
    }

    /// A realloc moved member `old` (`oldSpan` bytes) to `tc`, taking `newSpan` bytes: within the pool
    /// (to its start, `outcome` nil: nothing was released; or carved anew), or (`spilled`) to the heap.
    /// `outcome`: what became of the old bytes.
    func memberMoved(_ pool: _Chunk, from old: _Chunk, oldSpan: Int, to tc: _Chunk, newSpan: Int, spilled: Bool,
                     _ outcome: _PoolRelease?) {
        pointee.reallocs += 1
        if let outcome { countRelease(outcome, span: oldSpan, isPool: false) } else { pointee.liveBytes -= oldSpan }
        if spilled {
            self.spilled(tc, span: newSpan)
            resizeVirtually(old, to: tc, span: newSpan)
            return
        }
        pointee.liveBytes += newSpan
        notePeak(pool)
        if pointee.diverged {
            resizeVirtually(old, to: tc, span: newSpan)
        } else {
            if let i = recentIndex(of: old) { removeRecent(at: i) }
            pushRecent(tc, offset: Int(tc.pointee.poolOffset), span: newSpan)
            syncIfConverged(pool)
        }
    }

    /// Spill `old` was resized to `newSpan` bytes (now `tc`, moved or not).
    func spillResized(from old: _Chunk, to tc: _Chunk, newSpan: Int) {
        pointee.reallocs += 1
        resizeVirtually(old, to: tc, span: newSpan)
    }

    /// Spill `tc` is gone.
    func spillFreed(_ pool: _Chunk, _ tc: _Chunk) {
        if pointee.liveSpills > 0 { pointee.liveSpills -= 1 }
        leaveVirtually(tc)
        convergeIfEmpty(pool)
    }
}

extension _Core {
    /// The statistics a chunk with `_Flag.poolStats` leaving by `releaseSlow` concerns: its own (a pool
    /// being freed: they end), and, for a spill, those of the pool it spilled from.
    @inline(never)
    static func releasingCounted(_ tc: _Chunk, _ flags: UInt32) {
        if flags & _Flag.pool != 0, let e = tc.pointee.extra, let s = e.pointee.poolStats {
            e.pointee.poolStats = nil
            _PoolStatsRecording.finish(pool: tc, s)
            _PoolStats.destroy(s)
        }
        if flags & _Flag.poolMem == 0, tc.pointee.poolOffset == _PoolStats.spillMark,
           let (pool, s) = spillOrigin(tc) {
            s.spillFreed(pool, tc)
        }
    }

    /// The pool (with statistics) a spill was meant for: the pool its parent is or is carved from, or,
    /// for a child of a spill, that spill's. Nil when the chain was moved (a steal out of the pool
    /// clears a spill's mark) or the pool keeps no statistics any more. With `including`, `tc` itself
    /// may be the first such parent.
    static func spillOrigin(_ tc: _Chunk, including: Bool = false) -> (_Chunk, UnsafeMutablePointer<_PoolStats>)? {
        guard let pool = originPool(including ? tc : tc.pointee.parent), pool.pointee.flags & _Flag.free == 0,
              let s = _PoolStats.of(pool) else { return nil }
        return (pool, s)
    }

    /// The pool an allocation under `parent` is meant for: its pool, or, up a chain of spills, theirs.
    static func originPool(_ parent: _Chunk?) -> _Chunk? {
        var c = parent
        while let p = c {
            if let pool = pool(for: p) { return pool }
            let f = p.pointee.flags
            guard f & _Flag.poolStats != 0, p.pointee.poolOffset == _PoolStats.spillMark else { return nil }
            c = p.pointee.parent
        }
        return nil
    }

    /// The bytes a member takes of its pool: a nested pool's whole block, else its span.
    @inline(__always)
    static func memberSpan(_ tc: _Chunk) -> Int {
        tc.pointee.flags & _Flag.pool != 0 ? _span(_poolPrefixSize + Int(tc.poolHeader.pointee.poolSize)) : tc.span
    }

    /// `releasePoolMem` for a chunk with `_Flag.poolStats`, counted in its pool's statistics.
    static func releasePoolMemCounted(_ tc: _Chunk, isPool: Bool) {
        let pool = tc.carvingPool
        // While the pool itself is being freed its members' frees are its teardown (see `memberFreed`).
        guard pool.pointee.flags & _Flag.loop == 0, let s = _PoolStats.of(pool) else {
            releasePoolMem(tc, isPool: isPool)
            return
        }
        let span = memberSpan(tc)
        let outcome = releasePoolMem(tc, isPool: isPool)
        s.memberFreed(pool, tc, span: span, isPool: isPool, outcome)
    }

    /// allocateSlow for a parent with `_Flag.poolStats` whose pool keeps statistics: carved (and counted),
    /// or spilled to the heap (and counted).
    static func allocateCounted(_ p: _Chunk, _ pool: _Chunk, _ s: UnsafeMutablePointer<_PoolStats>, size: Int,
                                prefix: Int, inherited: UInt32) -> _Chunk? {
        let span = _span(size &+ prefix)
        if let tc = carve(from: pool, size: size, prefix: prefix, flags: inherited | _Flag.poolStats) {
            linkAsNewest(tc, under: p)
            s.carved(pool, tc, span: span)
            return tc
        }
        guard let tc = allocateOnHeap(p, size: size, prefix: prefix) else { return nil }
        s.spilledAllocation(tc, span: span)
        return tc
    }

    /// A steal of a chunk with `_Flag.poolStats` from `old` to `newParent`: a member leaving its pool's
    /// reach counts as stolen; a spill leaving it is no longer its pool's to follow.
    static func stolenCounted(_ tc: _Chunk, from old: _Chunk?, to newParent: _Chunk?) {
        let f = tc.pointee.flags
        let target = originPool(newParent)
        if f & _Flag.poolMem != 0 {
            let pool = tc.carvingPool
            if target != pool, let s = _PoolStats.of(pool) { s.pointee.stolen += 1 }
        } else if tc.pointee.poolOffset == _PoolStats.spillMark, originPool(old) != target {
            tc.pointee.poolOffset = 0
            if f & _Flag.pool == 0 || _PoolStats.of(tc) == nil { tc.pointee.flags &= ~_Flag.poolStats }
        }
    }
}
