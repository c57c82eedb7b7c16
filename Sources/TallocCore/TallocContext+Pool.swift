// luatalloc — TallocCore
// SPDX-License-Identifier: MIT

/// What a pool holds, for the pool a context is or was carved from (talloc has no such call).
public struct TallocPoolInfo: Hashable, Sendable {
    /// Bytes after the pool's header: the object (pooled objects) and the bump space.
    public var capacity: Int
    /// Bytes carved so far (headers and padding included), counting a pooled object's own body.
    public var used: Int
    /// Bytes left at the end of the bump space (`used + available == capacity`).
    public var available: Int
    /// Live chunks carved from the pool, plus one for the pool itself while it is not freed (talloc's
    /// `object_count`).
    public var objectCount: Int
    /// The pool was freed but members stolen out of it keep its memory alive ("pinned").
    public var isFreed: Bool
}

/// One region of a pool's bytes, in address order (see `TallocContext.poolLayout`).
public struct TallocPoolSegment: Hashable {  // not Sendable: it names a member of a tree
    /// What a region of a pool's bytes holds (what `talloc.pool_map` draws as `H`, `#`, `.` and `_`).
    public enum Kind: Hashable, Sendable {
        /// The pool's own header and, for a pooled object, the object's body.
        case pool
        /// A chunk header (64 bytes) of a live member.
        case header
        /// The body of a live member (with its alignment padding).
        case live
        /// Bytes given back by a freed member that the pool cannot reuse yet (no coalescing).
        case hole
        /// The bump space still free at the end.
        case free
    }
    /// What the region holds.
    public var kind: Kind
    /// Where it starts, in bytes from the start of the pool's block.
    public var offset: Int
    /// Its length in bytes.
    public var length: Int
    /// For `.header`/`.live`: the member.
    public var member: TallocContext?
}

extension TallocContext {
    /// A pool of `capacity` bytes: children (and their children) are carved from it with one bump of a
    /// pointer; what does not fit goes to the heap, never to an outer pool.
    ///
    /// The pool is one malloc block: a 16-byte pool header, the 64-byte chunk header, then the bump space.
    /// Each member costs `ALIGN16(64 + size)` bytes (talloc: `ALIGN16(96 + size)`). The pool resets when
    /// its last member is freed, and reclaims the last member carved; there is no other reuse. A freed
    /// pool stays allocated while members stolen out of it live.
    /// The corresponding talloc function is `talloc_pool()`.
    public static func pool(parent: TallocContext?, capacity: Int) throws(TallocError) -> TallocContext {
        var mutation = _Mutation(parent)
        defer { mutation.end() }
        if capacity < 0 || capacity >= _maxSize { throw .sizeTooLarge }
        guard let tc = _Core.makePool(chunk(parent), capacity: capacity) else { throw .outOfMemory }
        mutation.add(TallocContext(chunk: tc))
        return TallocContext(chunk: tc)
    }

    /// An object of `byteCount` bytes that is also a pool with room for `subobjects` chunks of
    /// `subobjectBytes` bytes in all: one malloc for the object and everything hanging off it.
    ///
    /// The pool's capacity is talloc's: `byteCount + subobjectBytes + (64 + 16 + 15) * (subobjects + 1)`.
    /// The corresponding talloc macro is `talloc_pooled_object()`.
    /// - Throws: `TallocError.sizeTooLarge` when a count is negative, the arithmetic overflows, or the
    ///   capacity reaches MAX_TALLOC_SIZE (256 MiB); `TallocError.outOfMemory` when malloc or a memory
    ///   limit refuses.
    public static func pooledObject(
        parent: TallocContext?, byteCount: Int, name: StaticString, subobjects: Int, subobjectBytes: Int
    ) throws(TallocError) -> TallocContext {
        var mutation = _Mutation(parent)
        defer { mutation.end() }
        guard byteCount < _maxSize,
              let capacity = _Core.pooledObjectCapacity(size: byteCount, count: subobjects, bytes: subobjectBytes),
              capacity < _maxSize
        else { throw .sizeTooLarge }
        guard let tc = _Core.makePooledObject(chunk(parent), size: byteCount, count: subobjects, bytes: subobjectBytes)
        else { throw .outOfMemory }
        tc.pointee.name = UnsafeRawPointer(name.utf8Start)
        mutation.add(TallocContext(chunk: tc))
        return TallocContext(chunk: tc)
    }

    /// Whether the context is a pool (made by `pool` or `pooledObject`).
    public var isPool: Bool { chunk.isPool }

    /// Whether the context's memory was carved from a pool.
    public var isPoolMemory: Bool { chunk.isPoolMem }

    /// The pool this context is, or was carved from.
    public var owningPool: TallocContext? {
        let tc = chunk
        if tc.isPool { return self }
        if tc.isPoolMem { return TallocContext(chunk: tc.carvingPool) }
        return nil
    }

    /// The state of the pool this context is (or the pool it was carved from), or nil.
    public var poolInfo: TallocPoolInfo? {
        let tc = chunk
        let pool: _Chunk
        if tc.isPool { pool = tc } else if tc.isPoolMem { pool = tc.carvingPool } else { return nil }
        return TallocContext.info(pool)
    }

    static func info(_ pool: _Chunk) -> TallocPoolInfo {
        let hdr = pool.poolHeader
        let capacity = Int(hdr.pointee.poolSize)
        let available = hdr.available
        return TallocPoolInfo(
            capacity: capacity, used: capacity - available, available: available,
            objectCount: Int(hdr.pointee.objectCount), isFreed: pool.pointee.flags & _Flag.free != 0)
    }

    /// The pool's bytes, region by region: the pool itself, each live member (header, body), holes left by
    /// freed members, and the free space at the end. Offsets count from the end of the pool's header.
    /// Nil when the context is neither a pool nor carved from one. O(members) memory: for big pools, use
    /// `forEachPoolSegment`.
    public var poolLayout: [TallocPoolSegment]? {
        let tc = chunk
        guard tc.isPool || tc.isPoolMem else { return nil }
        var segments: [TallocPoolSegment] = []
        _ = forEachPoolSegment { segments.append($0); return true }
        return segments
    }

    /// Visits the regions of the pool this context is (or was carved from), in address order, without
    /// collecting them: O(1) memory whatever the number of members. The regions are `poolLayout`'s:
    /// `.pool` (a pooled object's own body, when it has one), `.header` and `.live` for each live member
    /// (a 0-byte member has no `.live`), `.hole` for bytes given back (neighbours merged), and `.free`
    /// last (even when empty).
    ///
    /// The walk reads only what TallocCore wrote at moments user code could not write there: chunk
    /// headers, nested pools' headers, and the fillers it leaves in holes. Whatever a member's body
    /// holds (even a forged chunk header) is never read. A record that does not validate ends the walk
    /// with the rest of the used space as one `.hole`, then `.free`.
    ///
    /// - Parameter body: Called with each region; return false to stop.
    /// - Returns: False when `body` stopped the walk, or when the context is neither a pool nor carved
    ///   from one (then `body` is never called); true otherwise.
    /// - warning: `body` must not allocate from, free or resize anything in the pool.
    @discardableResult
    public func forEachPoolSegment(_ body: (TallocPoolSegment) -> Bool) -> Bool {
        let tc = chunk
        let pool: _Chunk
        if tc.isPool { pool = tc } else if tc.isPoolMem { pool = tc.carvingPool } else { return false }
        return _PoolWalk.walk(pool, body)
    }
}
