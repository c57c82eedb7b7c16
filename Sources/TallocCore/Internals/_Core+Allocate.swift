// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// Allocation: a chunk carved from the nearest pool when it fits, else malloc'd; pools and pooled
// objects.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension _Core {
    /// The pool an allocation under `parent` is carved from (tc_alloc_pool): the parent itself if it is a
    /// pool, else the pool the parent was carved from. Never an outer pool.
    @inline(__always)
    static func pool(for parent: _Chunk) -> _Chunk? {
        let f = parent.pointee.flags
        if f & _Flag.pool != 0 { return parent }
        if f & _Flag.poolMem != 0 { return parent.carvingPool }
        return nil
    }

    /// Carves a chunk of `size` bytes, `prefix` bytes into `span(size + prefix)` bytes of `pool`, and
    /// writes its header (unlinked); nil when it does not fit.
    @inlinable @inline(__always)
    static func carve(from pool: _Chunk, size: Int, prefix: Int, flags: UInt32) -> _Chunk? {
        guard let at = pool.poolHeader.bump(_span(size &+ prefix)) else { return nil }
        let offset = at &+ prefix
        let tc = pool.header(at: offset)
        tc.initialize(to: _ChunkHeader(size: size, flags: _magic | _Flag.poolMem | flags, poolOffset: offset))
        _Invariants.born(tc)
        return tc
    }

    /// __talloc_with_prefix: a new chunk of `size` bytes under `parent` (nil = top level or the null
    /// context), carved from the nearest pool when it fits, else malloc'd. `prefix` is the room kept in
    /// front of the header (a pool header). Nil on failure (memory limit, malloc). The caller has checked
    /// `0 <= size < MAX_TALLOC_SIZE`.
    @inline(__always) @usableFromInline
    static func allocate(_ parentIn: _Chunk?, size: Int, prefix: Int = 0) -> _Chunk? {
        let parent = _NullTracking.parent(parentIn)
        if let p = parent, p.pointee.flags & (_Flag.pool | _Flag.poolMem | _Flag.hasLimit | _Flag.underLimit | _Flag.poolStats) != 0 {
            if let tc = allocateInPool(p, size: size, prefix: prefix) { return tc }
            return allocateSlow(p, size: size, prefix: prefix)
        }
        return mallocChunk(under: parent, size: size, prefix: prefix)
    }

    /// A malloc'd chunk under `parent` (nil: top level), for a parent that no pool or memory limit
    /// concerns (the caller knows). Nil when malloc fails.
    @inline(__always)
    static func mallocChunk(under parent: _Chunk?, size: Int, prefix: Int = 0) -> _Chunk? {
        guard let raw = malloc(_headerSize &+ size &+ prefix) else { return nil }
        let tc = (raw + prefix).assumingMemoryBound(to: _ChunkHeader.self)
        tc.initialize(to: _ChunkHeader(size: size, flags: _magic, poolOffset: 0))
        _Invariants.born(tc)
        linkAsNewest(tc, under: parent)
        return tc
    }

    /// tc_alloc_pool's bump allocation, for a parent that is (or is carved from) a pool and that no memory
    /// limit governs: the new chunk, linked under `p`; nil when `p` is not such a parent or the nearest
    /// pool has no room (then `allocate`, which goes to the heap). No call, no stack frame: the common
    /// case of W2 and W3's pool rows.
    @inlinable @inline(__always)
    static func allocateInPool(_ p: _Chunk, size: Int, prefix: Int = 0) -> _Chunk? {
        let pf = p.pointee.flags
        guard pf & (_Flag.pool | _Flag.poolMem) != 0, pf & (_Flag.hasLimit | _Flag.underLimit | _Flag.poolStats) == 0 else { return nil }
        return carveChild(of: p, size: size, prefix: prefix, isPool: pf & _Flag.pool != 0)
    }

    /// The bump allocation for a parent known to be a pool (`isPool`) or carved from one, with no limit.
    @inlinable @inline(__always)
    static func carveChild(of p: _Chunk, size: Int, prefix: Int = 0, isPool: Bool) -> _Chunk? {
        guard let tc = carve(from: isPool ? p : p.carvingPool, size: size, prefix: prefix, flags: 0) else { return nil }
        linkAsNewest(tc, under: p)
        return tc
    }

    /// The same for a parent that is (or is carved from) a pool, or that a memory limit governs, or whose
    /// pool keeps statistics.
    @inline(never)
    static func allocateSlow(_ p: _Chunk, size: Int, prefix: Int) -> _Chunk? {
        if _slowPath(p.pointee.flags & _Flag.poolStats != 0) { return allocateForStatistics(p, size: size, prefix: prefix) }
        let inherited = inheritedLimitFlag(p)
        if let pool = pool(for: p), let tc = carve(from: pool, size: size, prefix: prefix, flags: inherited) {
            // Pool members cost their limits nothing: the pool was charged.
            linkAsNewest(tc, under: p)
            return tc
        }
        return allocateOnHeap(p, size: size, prefix: prefix)
    }

    /// `allocateSlow` under a parent with `_Flag.poolStats`: counted in the statistics of its pool (or, for
    /// a child of a spill, of the pool the spill was meant for).
    @inline(never)
    static func allocateForStatistics(_ p: _Chunk, size: Int, prefix: Int) -> _Chunk? {
        let inherited = inheritedLimitFlag(p)
        if let pool = pool(for: p) {
            if let s = _PoolStats.of(pool) {
                return allocateCounted(p, pool, s, size: size, prefix: prefix, inherited: inherited)
            }
            if let tc = carve(from: pool, size: size, prefix: prefix, flags: inherited) {
                linkAsNewest(tc, under: p)
                return tc
            }
        } else if p.pointee.poolOffset == _PoolStats.spillMark, let (_, s) = spillOrigin(p, including: true) {
            // A child of a spill: in a pool big enough, its parent would be a member and it would be carved
            // from the pool too; it counts as a spill.
            guard let tc = allocateOnHeap(p, size: size, prefix: prefix) else { return nil }
            s.spilledAllocation(tc, span: _span(size &+ prefix))
            return tc
        }
        return allocateOnHeap(p, size: size, prefix: prefix)
    }

    /// A chunk that is never carved from a pool (an external context: its `size` is not its body, so it
    /// must not be a pool member, whose size the pool's bookkeeping and walk rely on).
    static func allocateOutsidePools(_ parentIn: _Chunk?, size: Int) -> _Chunk? {
        guard let p = _NullTracking.parent(parentIn), p.pointee.flags & (_Flag.pool | _Flag.poolMem) != 0 else {
            return allocate(parentIn, size: size)
        }
        return allocateOnHeap(p, size: size, prefix: 0)
    }

    /// A malloc'd chunk under `p`, charged to the limits above it (which may refuse it).
    static func allocateOnHeap(_ p: _Chunk, size: Int, prefix: Int) -> _Chunk? {
        let inherited = inheritedLimitFlag(p)
        let total = _headerSize &+ size &+ prefix
        if inherited != 0 && !limitAllows(p, total) { return nil }
        guard let raw = malloc(total) else { return nil }
        let tc = (raw + prefix).assumingMemoryBound(to: _ChunkHeader.self)
        tc.initialize(to: _ChunkHeader(size: size, flags: _magic | inherited, poolOffset: 0))
        _Invariants.born(tc)
        linkAsNewest(tc, under: p)
        if inherited != 0 { limitGrow(p, total) }
        return tc
    }

    /// `underLimit` for a child of `p` when a limit governs `p`, else 0.
    @inline(__always)
    static func inheritedLimitFlag(_ p: _Chunk) -> UInt32 {
        p.pointee.flags & (_Flag.hasLimit | _Flag.underLimit) != 0 ? _Flag.underLimit : 0
    }

    /// _talloc_pool: a pool of `capacity` bytes of bump space. The pool itself counts as one object.
    static func makePool(_ parent: _Chunk?, capacity: Int) -> _Chunk? {
        if capacity < 0 || capacity >= _maxSize { return nil }
        guard let tc = allocate(parent, size: capacity, prefix: _poolPrefixSize) else { return nil }
        tc.pointee.flags |= _Flag.pool
        tc.pointee.size = 0
        let hdr = tc.poolHeader
        hdr.pointee = _PoolHeader(end: 0, objectCount: 1, poolSize: UInt32(capacity))
        hdr.reset()
        _Invariants.poolBorn(tc)
        return tc
    }

    /// talloc_pooled_object's pool size: the object, the sub-objects' bytes, and room for the headers of
    /// the sub-objects and the pool (talloc's arithmetic, with our header sizes). Nil when it overflows or
    /// is negative.
    static func pooledObjectCapacity(size: Int, count: Int, bytes: Int) -> Int? {
        guard size >= 0, count >= 0, bytes >= 0 else { return nil }
        let perObject = _headerSize + _poolPrefixSize + 15
        let (c1, o1) = count.addingReportingOverflow(1)
        let (m, o2) = c1.multipliedReportingOverflow(by: perObject)
        let (s1, o3) = size.addingReportingOverflow(bytes)
        let (poolSize, o4) = s1.addingReportingOverflow(m)
        if o1 || o2 || o3 || o4 { return nil }
        return poolSize
    }

    /// talloc_pooled_object: a pool whose body starts with an object of `size` bytes, with room for
    /// `count` sub-objects of `bytes` bytes in all. The caller has checked the sizes
    /// (`pooledObjectCapacity` below MAX_TALLOC_SIZE); nil when memory runs out.
    static func makePooledObject(_ parent: _Chunk?, size: Int, count: Int, bytes: Int) -> _Chunk? {
        guard let poolSize = pooledObjectCapacity(size: size, count: count, bytes: bytes) else { return nil }
        guard let tc = makePool(parent, capacity: poolSize) else { return nil }
        tc.pointee.size = UInt32(size)
        tc.poolHeader.reset()  // the bump space starts after the object
        return tc
    }
}

/// `_Core.mallocChunk` under a parent, out of line: the allocation fast path that callers inline calls
/// it. A free function, not a static one: a static's unused metatype argument costs a thunk per call.
@inline(never) @usableFromInline
func _mallocChild(of parent: _Chunk, size: Int) -> _Chunk? {
    _Core.mallocChunk(under: parent, size: size)
}
