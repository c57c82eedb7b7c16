// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// Walking a pool's carved bytes, region by region, trusting nothing user code could have written.
//
// The carved space [first, end) of a pool is a sequence of records, each written by TallocCore at a
// moment when user code could not write there, each giving the length to the next:
//
//     chunk header   (a member, live or freed)      first word: `next`, a 16-aligned pointer or nil
//     pool prefix    (a nested pool, then its header) first word: `_poolMark` in its low 32 bits
//     filler         (a hole: bytes given back)       first word: `_fillerMagic`, then the length
//
// Every path that moves `end` back (reclaim of the last chunk, reset) leaves it on a record boundary,
// and every path that gives bytes back in the middle (a shrink in place) writes a filler there, so the
// walk never lands in bytes that were a member's body. It still validates each record (magic, flags,
// offset, span within `end`) and stops at the first that fails, reporting the rest as one opaque hole:
// a broken invariant shows as a hole, never as a wild read.

@usableFromInline
enum _PoolWalk {
    /// Visits `pool`'s regions in address order, merging neighbouring holes and skipping empty regions
    /// (except the free space). O(1) memory. Returns false when `visit` stopped the walk.
    static func walk(_ pool: _Chunk, _ visit: (TallocPoolSegment) -> Bool) -> Bool {
        let hdr = pool.poolHeader
        let limit = hdr.limit
        let end = hdr.end
        let first = hdr.start
        var pendingHole: (offset: Int, length: Int)? = nil

        // Segment offsets count from the pool's body (its chunk header + 64); positions below count from
        // the pool's chunk header.
        func emit(_ kind: TallocPoolSegment.Kind, _ position: Int, _ length: Int, _ member: _Chunk? = nil) -> Bool {
            if kind == .hole {
                if length == 0 { return true }
                if let p = pendingHole {
                    pendingHole = (p.offset, p.length + length)
                } else {
                    pendingHole = (position - _headerSize, length)
                }
                return true
            }
            if length == 0 && kind != .free { return true }
            if let p = pendingHole {
                pendingHole = nil
                if !visit(TallocPoolSegment(kind: .hole, offset: p.offset, length: p.length, member: nil)) { return false }
            }
            return visit(TallocPoolSegment(kind: kind, offset: position - _headerSize, length: length,
                                           member: member.map { TallocContext(chunk: $0) }))
        }

        guard first <= end, end <= limit else {
            // The pool's own header disagrees with itself: nothing in it can be walked.
            return visit(TallocPoolSegment(kind: .hole, offset: 0, length: limit - _headerSize, member: nil))
        }
        if !emit(.pool, _headerSize, first - _headerSize) { return false }
        var pos = first
        while pos < end {
            guard let record = record(in: pool, at: pos, end: end) else {
                if !emit(.hole, pos, end - pos) { return false }
                break
            }
            switch record {
            case .filler(let length):
                if !emit(.hole, pos, length) { return false }
            case .member(let c, let headerAt, let span):
                if c.pointee.flags & _Flag.free != 0 {
                    if !emit(.hole, pos, span) { return false }
                } else {
                    let head = headerAt - pos + _headerSize
                    if !emit(.header, pos, head, c) || !emit(.live, pos + head, span - head, c) { return false }
                }
            }
            pos += record.span
        }
        if let p = pendingHole, !visit(TallocPoolSegment(kind: .hole, offset: p.offset, length: p.length, member: nil)) {
            return false
        }
        return visit(TallocPoolSegment(kind: .free, offset: end - _headerSize, length: limit - end, member: nil))
    }

    enum Record {
        /// A hole's filler.
        case filler(length: Int)
        /// A member (plain, or a nested pool with its prefix) whose header is at `headerAt`.
        case member(_Chunk, headerAt: Int, span: Int)

        var span: Int {
            switch self {
            case .filler(let length): return length
            case .member(_, _, let span): return span
            }
        }
    }

    /// The record at `pos` (16-aligned, `< end`), validated; nil when what is there is not one.
    static func record(in pool: _Chunk, at pos: Int, end: Int) -> Record? {
        let room = end - pos
        guard pos & 15 == 0, room >= 16 else { return nil }
        let w0 = pool.word(at: pos)
        if w0 == _fillerMagic {
            let length = pool.word(at: pos + 8)
            guard length >= 16, length & 15 == 0, length <= UInt64(room) else { return nil }
            return .filler(length: Int(length))
        }
        if UInt32(truncatingIfNeeded: w0) == _poolMark {
            // A nested pool: its prefix here, its chunk header right after.
            guard room >= _poolPrefixSize + _headerSize else { return nil }
            let headerAt = pos + _poolPrefixSize
            let c = pool.header(at: headerAt)
            guard isCarvedHeader(c, at: headerAt, pool: true) else { return nil }
            let span = _span(_poolPrefixSize + Int(c.poolHeader.pointee.poolSize))
            guard span <= room else { return nil }
            return .member(c, headerAt: headerAt, span: span)
        }
        guard w0 & 15 == 0, room >= _headerSize else { return nil }
        let c = pool.header(at: pos)
        guard isCarvedHeader(c, at: pos, pool: false) else { return nil }
        let span = c.span
        guard span <= room else { return nil }
        return .member(c, headerAt: pos, span: span)
    }

    /// A member's header, live or freed, carved from this pool at `offset`.
    @inline(__always)
    static func isCarvedHeader(_ c: _Chunk, at offset: Int, pool: Bool) -> Bool {
        let f = c.pointee.flags
        let magic = f & (_Flag.magicMask | _Flag.free)
        guard magic == _magic || magic == _magicFree | _Flag.free else { return false }
        guard f & _Flag.poolMem != 0, (f & _Flag.pool != 0) == pool, f & _Flag.external == 0 else { return false }
        return Int(c.pointee.poolOffset) == offset
    }
}
