// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// Realloc: talloc's paths in a pool and on the heap (TALLOC-SEMANTICS §2.6).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension _Core {
    enum ReallocFailure: Error {
        case referenced, isPool, tooLarge, outOfMemory, beingFreed

        var error: TallocError {
            switch self {
            case .referenced: return .referenced
            case .isPool: return .isPool
            case .tooLarge: return .sizeTooLarge
            case .outOfMemory: return .outOfMemory
            case .beingFreed: return .beingFreed
            }
        }
    }

    /// _talloc_realloc for a live chunk and `size > 0`: the chunk (maybe moved), with talloc's paths (§2.6).
    /// Returns the chunk and whether it took a path that moves or realloc()s it: only those rename the
    /// chunk in talloc (the caller renames), the in-place paths keep the name. `grownInPlace`: the caller
    /// tried `growInPlace` already, and it said the chunk must move.
    @inline(__always)
    static func reallocate(_ tc: _Chunk, size: Int, grownInPlace: Bool) -> (chunk: _Chunk?, moved: Bool, failure: ReallocFailure) {
        if _slowPath(tc.pointee.flags & _Flag.poolStats != 0) {
            return reallocateCounted(tc, size: size, grownInPlace: grownInPlace)
        }
        return reallocateUncounted(tc, size: size, grownInPlace: grownInPlace)
    }

    /// `reallocate` for a member or a spill of a pool with statistics: the same, then counted.
    @inline(never)
    static func reallocateCounted(_ tc: _Chunk, size: Int, grownInPlace: Bool) -> (chunk: _Chunk?, moved: Bool, failure: ReallocFailure) {
        if tc.pointee.flags & _Flag.poolMem == 0 {
            let origin = tc.pointee.poolOffset == _PoolStats.spillMark ? spillOrigin(tc) : nil
            let r = reallocateUncounted(tc, size: size, grownInPlace: grownInPlace)
            if let moved = r.chunk, let (_, s) = origin { s.spillResized(from: tc, to: moved, newSpan: _span(size)) }
            return r
        }
        let pool = tc.carvingPool
        guard let s = _PoolStats.of(pool), tc.pointee.flags & (_Flag.pool | _Flag.external | _Flag.busy) == 0,
              tc.refs == nil else {
            return reallocateUncounted(tc, size: size, grownInPlace: grownInPlace)
        }
        let hdr = pool.poolHeader
        let oldSpan = tc.span
        let offset = Int(tc.pointee.poolOffset)
        let wasLast = hdr.isLast(offset: offset, span: oldSpan)
        let wasOnly = hdr.members == 1
        let r = reallocateUncounted(tc, size: size, grownInPlace: grownInPlace)
        guard let moved = r.chunk else { return r }
        let newSpan = _span(size)
        if moved == tc {
            s.memberResized(pool, tc, oldSpan: oldSpan, newSpan: newSpan, hole: !wasLast && newSpan < oldSpan)
        } else if moved.pointee.flags & _Flag.poolMem != 0 {
            // Moved to the pool's start (it was the only member: nothing was released), or carved anew at
            // the end (the old bytes, no longer the last, are a hole).
            let toStart = wasOnly && Int(moved.pointee.poolOffset) == hdr.start && hdr.members == 1
            s.memberMoved(pool, from: tc, oldSpan: oldSpan, to: moved, newSpan: newSpan, spilled: false,
                          toStart ? nil : .hole)
        } else {
            let outcome: _PoolRelease = hdr.members == 0 ? .reset : hdr.end == offset ? .reclaimed : .hole
            s.memberMoved(pool, from: tc, oldSpan: oldSpan, to: moved, newSpan: newSpan, spilled: true, outcome)
        }
        return r
    }

    @inline(__always)
    static func reallocateUncounted(_ tc: _Chunk, size: Int, grownInPlace: Bool) -> (chunk: _Chunk?, moved: Bool, failure: ReallocFailure) {
        if size >= _maxSize { return (nil, false, .tooLarge) }
        let flags0 = tc.pointee.flags
        if _slowPath(flags0 & (_Flag.pool | _Flag.external | _Flag.busy) != 0 || tc.refs != nil) {
            if tc.refs != nil { return (nil, false, .referenced) }
            if flags0 & (_Flag.pool | _Flag.external) != 0 { return (nil, false, .isPool) }
            // A chunk in its destructor or in the middle of a free (its own or its children's) must not
            // move: the free holds its address.
            return (nil, false, .beingFreed)
        }
        let oldSize = Int(tc.pointee.size)
        let limited = flags0 & (_Flag.hasLimit | _Flag.underLimit) != 0
        let inPool = flags0 & _Flag.poolMem != 0
        if size < oldSize {
            if inPool {
                // Shrink in place; pull the pool's end back if this is the last chunk. Otherwise the bytes
                // given back become a hole, marked by a filler: they were the user's a moment ago, and the
                // pool walk must not take what is left there for a chunk header.
                let pool = tc.carvingPool
                let hdr = pool.poolHeader
                let offset = Int(tc.pointee.poolOffset)
                let oldSpan = _span(oldSize)
                let newSpan = _span(size)
                tc.pointee.size = UInt32(size)
                if hdr.isLast(offset: offset, span: oldSpan) {
                    hdr.resizeLast(offset: offset, span: newSpan)
                } else if newSpan < oldSpan {
                    pool.markHole(at: offset + newSpan, length: oldSpan - newSpan)
                }
                return (tc, false, .tooLarge)
            } else if !limited && oldSize - size < 1024 {
                tc.pointee.size = UInt32(size)
                return (tc, false, .tooLarge)
            }
        } else if size == oldSize {
            return (tc, false, .tooLarge)
        }

        var newTC: _Chunk
        var malloced = false
        if inPool {
            if !grownInPlace, let renamed = growInPlace(tc, size: size) { return (tc, renamed, .tooLarge) }
            let pool = tc.carvingPool
            let hdr = pool.poolHeader
            let newSpan = _span(size)
            if hdr.members == 1 && hdr.limit - hdr.start >= newSpan {
                // The only chunk in the pool, not at its start (`growInPlace` takes it there): move it there.
                let start = hdr.start
                let dst = pool.header(at: start)
                _Invariants.died(tc)
                memmove(dst, tc, _headerSize + oldSize)
                // A copy of the old handle must not read as live: stamp the old header freed where it is
                // not now inside the moved chunk.
                if UnsafeRawPointer(tc) >= UnsafeRawPointer(dst) + _headerSize + size {
                    tc.pointee.flags = (tc.pointee.flags & _Flag.mask) | _Flag.free | _magicFree
                }
                _Invariants.born(dst)
                dst.pointee.poolOffset = UInt32(start)
                hdr.resizeLast(offset: start, span: newSpan)
                return (fixupAfterMove(from: tc, to: dst, size: size, oldSize: oldSize), true, .tooLarge)
            }
            // A new chunk from the same pool, else from the heap; the header is copied over.
            if let at = hdr.bump(newSpan) {
                newTC = pool.header(at: at)
                memcpy(newTC, tc, _headerSize + min(oldSize, size))
                newTC.pointee.poolOffset = UInt32(truncatingIfNeeded: at)
            } else {
                let total = _headerSize + size
                if limited, !limitAllows(tc, total) { return (nil, false, .outOfMemory) }
                guard let raw = malloc(total) else { return (nil, false, .outOfMemory) }
                newTC = raw.assumingMemoryBound(to: _ChunkHeader.self)
                memcpy(newTC, tc, _headerSize + min(oldSize, size))
                newTC.pointee.flags &= ~_Flag.poolMem
                newTC.pointee.poolOffset = 0
                malloced = true
            }
            // The old chunk goes back to the pool (its header is stamped freed).
            tc.pointee.flags = (tc.pointee.flags & _Flag.mask & ~(_Flag.loop | _Flag.hasLimit | _Flag.underLimit))
                | _Flag.free | _magicFree
            tc.pointee.extra = nil
            _Invariants.died(tc)
            _Invariants.born(newTC)
            releasePoolMem(tc, isPool: false)
            let moved = fixupAfterMove(from: tc, to: newTC, size: size, oldSize: oldSize)
            if malloced && limited { limitGrow(moved, _headerSize + size) }
            return (moved, true, .tooLarge)
        }
        // A heap chunk: realloc(), with the memory limit checked on the growth.
        if limited, size > oldSize, !limitAllows(tc, size - oldSize) {
            return (nil, false, .outOfMemory)
        }
        _Invariants.died(tc)  // before realloc() may give the address to another thread
        // Stamped freed first: when realloc() moves the block, a copy of the old handle then reads as freed
        // (until malloc reuses the address), not as a live chunk with the old contents.
        tc.pointee.flags = (flags0 & _Flag.mask) | _Flag.free | _magicFree
        guard let raw = realloc(UnsafeMutableRawPointer(tc), _headerSize + size) else {
            tc.pointee.flags = flags0
            _Invariants.born(tc)
            return (nil, false, .outOfMemory)
        }
        newTC = raw.assumingMemoryBound(to: _ChunkHeader.self)
        newTC.pointee.flags = flags0
        _Invariants.born(newTC)
        let moved = fixupAfterMove(from: tc, to: newTC, size: size, oldSize: oldSize)
        if limited {
            if size > oldSize { limitGrow(moved, size - oldSize) } else { limitShrink(moved, oldSize - size) }
        }
        return (moved, true, .tooLarge)
    }

    /// The paths of a pool member's growth (`size` above its size) that keep it where it is, with talloc's
    /// arithmetic: the only chunk, at the pool's start already (talloc moves it to the start, onto itself:
    /// that counts as the moving path, which renames, so the result is true); the same span; the last
    /// chunk, with room behind it (false: the name stays). Nil, changing nothing, when it must move.
    @inlinable @inline(__always)
    static func growInPlace(_ tc: _Chunk, size: Int) -> Bool? {
        let hdr = tc.carvingPool.poolHeader
        let offset = Int(tc.pointee.poolOffset)
        let oldSpan = tc.span
        let newSpan = _span(size)
        var last = hdr.isLast(offset: offset, span: oldSpan)
        if hdr.members == 1 {
            if hdr.limit &- hdr.start >= newSpan {
                guard offset == hdr.start else { return nil }
                tc.pointee.size = UInt32(truncatingIfNeeded: size)
                hdr.resizeLast(offset: offset, span: newSpan)
                return true
            }
            last = false  // talloc's next_tc = NULL
        }
        if newSpan == oldSpan {
            tc.pointee.size = UInt32(truncatingIfNeeded: size)
            return false
        }
        if last && hdr.available >= newSpan &- oldSpan {
            tc.pointee.size = UInt32(truncatingIfNeeded: size)
            hdr.resizeLast(offset: offset, span: newSpan)
            return false
        }
        return nil
    }

    /// After a chunk moved (or was realloc'd in place): re-point its neighbours, children and observers.
    static func fixupAfterMove(from old: _Chunk, to tc: _Chunk, size: Int, oldSize: Int) -> _Chunk {
        tc.pointee.size = UInt32(size)
        if old != tc {
            relink(movedFrom: old, to: tc)
            if tc.pointee.flags & _Flag.freeingChild != 0 { _FreeRegistry.parentMoved(from: old, to: tc) }
            if tc.pointee.flags & _Flag.hasLimit != 0 { carriedPoolsMoved(to: tc) }
            if let e = tc.pointee.extra, let obs = e.pointee.observer {
                e.notify(obs, .moved, body: tc.body)
            }
            // A name pointing into the old body (strings are named by their contents) follows the body; one
            // past the bytes kept would point at freed memory, so the chunk is left unnamed instead. A name
            // right after the old body (its ".name" child carved next in a pool) is not the body's.
            if let n = tc.pointee.name, tc.pointee.flags & _Flag.nameIsLocation == 0,
               n >= UnsafeRawPointer(old.body), n < UnsafeRawPointer(old.body) + max(oldSize, 1) {
                let offset = n - UnsafeRawPointer(old.body)
                tc.pointee.name = offset < max(size, 1) ? UnsafeRawPointer(tc.body) + offset : nil
            }
        }
        return tc
    }
}
