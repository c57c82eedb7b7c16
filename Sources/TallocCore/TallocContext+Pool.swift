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
public struct TallocPoolSegment: Hashable, Sendable {
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
    public var kind: Kind
    public var offset: Int
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
        if capacity < 0 || capacity >= _maxSize { throw .sizeTooLarge }
        guard let tc = _Core.makePool(chunk(parent), capacity: capacity) else { throw .outOfMemory }
        return TallocContext(chunk: tc)
    }

    /// An object of `byteCount` bytes that is also a pool with room for `subobjects` chunks of
    /// `subobjectBytes` bytes in all: one malloc for the object and everything hanging off it.
    ///
    /// The corresponding talloc macro is `talloc_pooled_object()`.
    public static func pooledObject(
        parent: TallocContext?, byteCount: Int, name: StaticString, subobjects: Int, subobjectBytes: Int
    ) throws(TallocError) -> TallocContext {
        guard let tc = _Core.makePooledObject(chunk(parent), size: byteCount, count: subobjects, bytes: subobjectBytes)
        else { throw byteCount >= _maxSize ? .sizeTooLarge : .outOfMemory }
        tc.pointee.name = UnsafeRawPointer(name.utf8Start)
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
        let h = pool.poolHeader.pointee
        let capacity = Int(h.poolSize)
        let available = _headerSize + capacity - Int(h.end)
        return TallocPoolInfo(
            capacity: capacity, used: capacity - available, available: available,
            objectCount: Int(h.objectCount), isFreed: pool.pointee.flags & _Flag.free != 0)
    }

    /// The pool's bytes, region by region: the pool itself, each live member (header, body), holes left by
    /// freed members, and the free space at the end. Offsets count from the end of the pool's header.
    public var poolLayout: [TallocPoolSegment]? {
        let tc = chunk
        let pool: _Chunk
        if tc.isPool { pool = tc } else if tc.isPoolMem { pool = tc.carvingPool } else { return nil }
        let h = pool.poolHeader.pointee
        // Live members are found by walking the chunks that point back at this pool: the pool's own
        // subtree and, for stolen members, the whole tree is not reachable; so scan the carved space
        // chunk by chunk: every carved chunk header sits at a 16-byte boundary and records its size.
        var segments: [TallocPoolSegment] = []
        let first = _align16(_headerSize + Int(pool.pointee.size))
        segments.append(TallocPoolSegment(kind: .pool, offset: 0, length: first - _headerSize, member: nil))
        var off = first
        let end = Int(h.end)
        let base = UnsafeMutableRawPointer(pool)
        while off < end {
            // A carved region may start with a nested pool's prefix.
            var chunkOff = off
            var c = (base + chunkOff).assumingMemoryBound(to: _ChunkHeader.self)
            if !(TallocContext.isCarvedHeader(c, at: chunkOff)) {
                let alt = off + _poolPrefixSize
                let c2 = (base + alt).assumingMemoryBound(to: _ChunkHeader.self)
                if alt < end && TallocContext.isCarvedHeader(c2, at: alt) && c2.isPool { chunkOff = alt; c = c2 }
            }
            if TallocContext.isCarvedHeader(c, at: chunkOff) {
                let isNested = c.isPool
                let span = isNested
                    ? _align16(_headerSize + Int(c.poolHeader.pointee.poolSize) + _poolPrefixSize)
                    : _align16(_headerSize + Int(c.pointee.size))
                let live = c.pointee.flags & _Flag.free == 0
                if live {
                    segments.append(TallocPoolSegment(kind: .header, offset: off - _headerSize,
                        length: chunkOff - off + _headerSize, member: TallocContext(chunk: c)))
                    segments.append(TallocPoolSegment(kind: .live, offset: chunkOff, length: span - (chunkOff - off) - _headerSize,
                        member: TallocContext(chunk: c)))
                } else {
                    segments.append(TallocPoolSegment(kind: .hole, offset: off - _headerSize, length: span, member: nil))
                }
                off += Swift.max(span, 16)
            } else {
                segments.append(TallocPoolSegment(kind: .hole, offset: off - _headerSize, length: end - off, member: nil))
                off = end
            }
        }
        segments.append(TallocPoolSegment(kind: .free, offset: end - _headerSize,
            length: _headerSize + Int(h.poolSize) - end, member: nil))
        // Merge neighbouring holes.
        var merged: [TallocPoolSegment] = []
        for s in segments where s.length > 0 || s.kind == .free {
            if let last = merged.last, last.kind == .hole, s.kind == .hole {
                merged[merged.count - 1].length += s.length
            } else {
                merged.append(s)
            }
        }
        return merged
    }

    static func isCarvedHeader(_ c: _Chunk, at offset: Int) -> Bool {
        let f = c.pointee.flags
        let magicOK = (f & _Flag.magicMask) == _magic || (f & _Flag.magicMask) == _magicFree
        return magicOK && f & _Flag.poolMem != 0 && Int(c.pointee.poolOffset) == offset
    }
}
