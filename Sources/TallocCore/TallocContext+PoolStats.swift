// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// Pool statistics and advice (talloc has neither): how to size a pool from measurements, and which
// members keep a freed pool alive. The bookkeeping is in Internals/_PoolStats.swift.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a pool with statistics saw (see `TallocContext.enablePoolStatistics`). Byte counts of the pool
/// count as `poolInfo` does: a member takes `ALIGN16(64 + size)` bytes (its "span"), `used` runs from the
/// start of the bump space (a pooled object's own body included) to its end.
public struct TallocPoolStatistics: Hashable, Sendable {
    /// Bytes after the pool's header: the object (pooled objects) and the bump space.
    public var capacity: Int
    /// Bytes carved now (`poolInfo.used`).
    public var used: Int
    /// The most bytes carved at any time.
    public var peakUsed: Int
    /// Chunks allocated from the pool (a realloc that moves a member within it is not one).
    public var allocations: Int
    /// The bytes they took of it.
    public var allocatedBytes: Int
    /// Allocations, and reallocs of members, that were meant for the pool but went to the heap because
    /// they did not fit ("spills").
    public var spills: Int
    /// The bytes of the pool the spills would have taken.
    public var spilledBytes: Int
    /// The largest spill, in bytes of the pool.
    public var largestSpill: Int
    /// Live chunks carved from the pool.
    public var members: Int
    /// The bytes they take.
    public var liveBytes: Int
    /// Bytes carved but not used by a live member: holes the pool cannot reuse until it resets.
    public var wastedBytes: Int
    /// Holes left so far by frees and shrinks of members that were not the last one carved...
    public var holes: Int
    /// ... and their bytes.
    public var holeBytes: Int
    /// Frees of the last member carved, whose bytes the pool took back.
    public var reclaims: Int
    /// Times the pool emptied and went back to its start.
    public var resets: Int
    /// Members stolen to a parent outside the pool (each may pin the pool when it is freed).
    public var stolen: Int
    /// Reallocs of members and spills.
    public var reallocs: Int
    /// A capacity that would have served every allocation the pool saw, with no spill (the same as
    /// `peakUsed` when nothing spilled). Applied to the same run, the pool spills nothing.
    public var neededCapacity: Int
    /// The pool was freed.
    public var isFreed: Bool
    /// Members that were alive when the pool was freed (it is then "pinned": its block stays allocated
    /// until they go).
    public var pinningMembers: Int
    /// The block a pinned pool keeps allocated: its header and its whole capacity.
    public var pinnedBytes: Int
}

/// `TallocPoolStatistics` read as advice: the capacity that would have served every allocation, and what
/// it would have cost, in numbers and in words.
public struct TallocPoolAdvice: Hashable, Sendable {
    /// The pool's capacity.
    public var capacity: Int
    /// The capacity that would have served every allocation (`neededCapacity`).
    public var advisedCapacity: Int
    /// `advisedCapacity - capacity`: bytes more (negative: fewer) in the pool's one block.
    public var change: Int
    /// Allocations served from the pool, and spills.
    public var allocations: Int
    public var spills: Int
    /// The pool bytes the spills needed, and the mallocs the advised capacity saves (one per spill).
    public var spilledBytes: Int
    public var mallocsSaved: Int
    /// The malloc block of the pool at the advised capacity (the pool's header included).
    public var advisedBlockBytes: Int
    /// The advice in words.
    public var text: String

    public init(_ s: TallocPoolStatistics) {
        capacity = s.capacity
        advisedCapacity = s.neededCapacity
        change = s.neededCapacity - s.capacity
        allocations = s.allocations
        spills = s.spills
        spilledBytes = s.spilledBytes
        mallocsSaved = s.spills
        advisedBlockBytes = _poolPrefixSize + _headerSize + s.neededCapacity
        text = TallocPoolAdvice.words(s)
    }

    static func plural(_ n: Int, _ one: String, _ many: String? = nil) -> String {
        "\(n) " + (n == 1 ? one : (many ?? one + "s"))
    }

    static func words(_ s: TallocPoolStatistics) -> String {
        let total = s.allocations + s.spills
        if total == 0 && s.reallocs == 0 {
            return "nothing was allocated from this pool yet: no advice"
        }
        if s.spills > 0 {
            let more = s.neededCapacity - s.capacity
            return "capacity \(s.capacity) served \(plural(s.allocations, "allocation")); "
                + "\(plural(s.spills, "more", "more")) did not fit and went to the heap "
                + "(\(s.spilledBytes) bytes of pool space, the largest \(s.largestSpill)). "
                + "A capacity of \(s.neededCapacity) would have served every allocation: \(more) bytes more "
                + "in the pool's one block (\(_poolPrefixSize + _headerSize + s.neededCapacity) bytes), "
                + "\(plural(s.spills, "malloc")) fewer"
        }
        let percent = s.capacity > 0 ? s.peakUsed * 100 / s.capacity : 100
        if s.neededCapacity >= s.capacity {
            return "capacity \(s.capacity) served all \(plural(total, "allocation")) and was full at the peak: "
                + "it is the right size for this run"
        }
        return "capacity \(s.capacity) served all \(plural(total, "allocation")); at the peak \(s.peakUsed) bytes "
            + "were used (\(percent)%): a capacity of \(s.neededCapacity) would have served them too, "
            + "\(s.capacity - s.neededCapacity) bytes less"
    }
}

/// Collects the statistics of the pools that record into it as they go (their counters end when the
/// pool is freed), summed per *site* — where the pool was made, as its maker names it (luatalloc: the
/// Lua `FILE:LINE` of the `talloc.pool` call) — and tells `onPinned` when a pool is freed while members
/// outside it keep its block alive. Not thread-safe: one recorder per thread (see `current`).
public final class TallocPoolRecorder {
    /// A live member of a pool, by name.
    public struct Member: Hashable, Sendable {
        public var name: String
        /// Its size in bytes.
        public var size: Int
        /// The name of its parent (where it was stolen to), or nil at the top level.
        public var parentName: String?

        /// Names longer than this many bytes are cut (and end in "...") where a recorder keeps them.
        public static let nameLimit = 256
    }

    /// A pool freed while members were alive: which ones.
    public struct Pin: Hashable, Sendable {
        /// The pool's number with this recorder (1, 2, ... in the order statistics were enabled).
        public var serial: Int
        public var site: String
        public var capacity: Int
        /// The block it keeps allocated.
        public var pinnedBytes: Int
        /// The members alive when it was freed (at most `Pin.memberLimit` listed; `memberCount` all).
        public var members: [Member]
        public var memberCount: Int
        /// Whether it was freed when the program was closing (`isClosing`): its members outlived it only
        /// because of the order things are freed in at exit.
        public var atExit: Bool

        public static let memberLimit = 16
    }

    /// The pools made at one site, summed.
    public struct Site: Hashable, Sendable {
        public var name: String
        public var pools = 0
        public var minCapacity = Int.max
        public var maxCapacity = 0
        /// The highest peak of any of its pools.
        public var peakUsed = 0
        public var allocations = 0
        public var spills = 0
        public var spilledBytes = 0
        public var largestSpill = 0
        /// Pools of the site that spilled.
        public var poolsThatSpilled = 0
        /// The largest `neededCapacity` of its pools: a capacity that serves every pool made here.
        public var neededCapacity = 0
        public var holes = 0
        public var holeBytes = 0
        public var reclaims = 0
        public var resets = 0
        public var stolen = 0
        /// Pools freed while members were alive (`isClosing` excluded), and the first few of them.
        public var pinned = 0
        public var pins: [Pin] = []
        /// Pools still alive when the program began closing.
        public var aliveAtExit = 0

        public static let pinLimit = 8
    }

    /// How many pins (with their members' names) the recorder keeps over all its sites; further pinned
    /// pools are only counted. With `Site.pinLimit`, `Pin.memberLimit` and `Member.nameLimit`, this bounds
    /// what a script can make the recorder keep.
    public static let pinTotalLimit = 256
    private var keptPins = 0

    /// How many distinct sites are kept; the pools of further sites are summed under "(other sites)".
    public let siteLimit: Int

    /// The sites in the order their first pool was made.
    public private(set) var sites: [Site] = []
    private var siteIndex: [String: Int32] = [:]
    private var nextSerial = 0

    /// Called when a pool is freed while members outside it keep its block alive (not while closing),
    /// from inside the free: it must not use or change the tree.
    public var onPinned: ((Pin) -> Void)?

    /// Set when the program is closing: pools freed from now on were alive at exit.
    public var isClosing = false

    /// A recorder keeping at most `siteLimit` sites.
    public init(siteLimit: Int = 1000) { self.siteLimit = max(1, siteLimit) }

    /// The site named `name` (made on first use).
    func site(named name: String) -> Int32 {
        if let i = siteIndex[name] { return i }
        if sites.count >= siteLimit - 1 && name != "(other sites)" {
            return site(named: "(other sites)")
        }
        let i = Int32(sites.count)
        sites.append(Site(name: name))
        siteIndex[name] = i
        return i
    }

    func serial() -> Int {
        nextSerial += 1
        return nextSerial
    }

    /// Pools whose statistics the recorder has summed so far.
    public var poolCount: Int { sites.reduce(0) { $0 + $1.pools } }

    /// A pool ended (its chunk was freed): its final statistics go into its site.
    func finish(_ st: TallocPoolStatistics, serial: Int, site: Int32, members: [Member]) {
        let i = site >= 0 && Int(site) < sites.count ? Int(site) : Int(self.site(named: "(unknown site)"))
        var s = sites[i]
        s.pools += 1
        s.minCapacity = min(s.minCapacity, st.capacity)
        s.maxCapacity = max(s.maxCapacity, st.capacity)
        s.peakUsed = max(s.peakUsed, st.peakUsed)
        s.allocations += st.allocations
        s.spills += st.spills
        s.spilledBytes += st.spilledBytes
        s.largestSpill = max(s.largestSpill, st.largestSpill)
        if st.spills > 0 { s.poolsThatSpilled += 1 }
        s.neededCapacity = max(s.neededCapacity, st.neededCapacity)
        s.holes += st.holes
        s.holeBytes += st.holeBytes
        s.reclaims += st.reclaims
        s.resets += st.resets
        s.stolen += st.stolen
        if isClosing { s.aliveAtExit += 1 }
        var pin: Pin? = nil
        if st.pinningMembers > 0 {
            pin = Pin(serial: serial, site: s.name, capacity: st.capacity, pinnedBytes: st.pinnedBytes,
                      members: members, memberCount: st.pinningMembers, atExit: isClosing)
            if !isClosing { s.pinned += 1 }
            if s.pins.count < Site.pinLimit && keptPins < TallocPoolRecorder.pinTotalLimit {
                s.pins.append(pin!)
                keptPins += 1
            }
        }
        sites[i] = s
        if let pin, !isClosing, let onPinned { onPinned(pin) }
    }

    // MARK: The calling thread's recorder

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { raw in
            guard let raw else { return }
            Unmanaged<TallocPoolRecorder>.fromOpaque(raw).release()
        }
        return k
    }()

    /// The recorder of the calling thread: makers of pools that record (luatalloc's `talloc.pool`) give
    /// their pools to it. Nil unless set.
    public static var current: TallocPoolRecorder? {
        get {
            guard let raw = pthread_getspecific(key) else { return nil }
            return Unmanaged<TallocPoolRecorder>.fromOpaque(raw).takeUnretainedValue()
        }
        set {
            if let old = pthread_getspecific(key) { Unmanaged<TallocPoolRecorder>.fromOpaque(old).release() }
            pthread_setspecific(key, newValue.map { Unmanaged.passRetained($0).toOpaque() })
        }
    }
}

/// The end of a pool's statistics, when its chunk is freed.
enum _PoolStatsRecording {
    static func finish(pool: _Chunk, _ s: UnsafeMutablePointer<_PoolStats>) {
        guard let raw = s.pointee.recorder else { return }
        let recorder = Unmanaged<TallocPoolRecorder>.fromOpaque(raw).takeUnretainedValue()
        var st = TallocContext.statistics(pool, s)
        // Called from the pool's release: its children are gone, what lives of it lives elsewhere.
        st.isFreed = true
        st.pinningMembers = pool.poolHeader.members
        st.pinnedBytes = st.pinningMembers > 0 ? _poolPrefixSize + pool.poolHeader.limit : 0
        let members = st.pinningMembers > 0 ? TallocContext.liveMembers(of: pool, limit: TallocPoolRecorder.Pin.memberLimit) : []
        recorder.finish(st, serial: s.pointee.serial, site: s.pointee.site, members: members)
    }
}

extension TallocContext {
    /// A pool of `capacity` bytes (as `pool(parent:capacity:)`) that keeps statistics
    /// (`enablePoolStatistics`) from the start, recording into `recorder` (if any) under `site`.
    public static func pool(parent: TallocContext?, capacity: Int, statistics: Bool,
                            recorder: TallocPoolRecorder? = nil, site: String? = nil) throws(TallocError) -> TallocContext {
        let p = try pool(parent: parent, capacity: capacity)
        if statistics {
            do { _ = try p.enablePoolStatistics(recorder: recorder, site: site) } catch {
                try? p.free()
                throw error
            }
        }
        return p
    }

    /// Makes this pool keep statistics (`poolStatistics`, `poolAdvice`): what it serves, what does not
    /// fit, its peak, holes, resets, reclaims, steals out of it, and the capacity that would have served
    /// every allocation. The pool must have no member yet, so that the statistics see everything.
    ///
    /// Chunks of a pool with statistics take TallocCore's out-of-line paths (a call more per allocation,
    /// free and realloc); pools without statistics pay nothing. The record (`poolStatisticsByteCount`
    /// bytes of malloc) is freed with the pool.
    ///
    /// - Parameters:
    ///   - recorder: Told the pool's final statistics when the pool is freed (and summed per `site`).
    ///   - site: Where the pool was made, for the recorder ("FILE:LINE").
    /// - Returns: False when the context is not a live pool, or already has members; true when the pool
    ///   keeps statistics (also when it did already).
    /// - Throws: `TallocError.outOfMemory` when the record cannot be allocated.
    @discardableResult
    public func enablePoolStatistics(recorder: TallocPoolRecorder? = nil, site: String? = nil) throws(TallocError) -> Bool {
        let tc = chunk
        guard tc.isPool, tc.pointee.flags & (_Flag.free | _Flag.loop) == 0 else { return false }
        if _PoolStats.of(tc) != nil { return true }
        guard tc.poolHeader.members == 0 else { return false }
        guard let e = tc.makeExtra(), e.makeRare() else { throw .outOfMemory }
        guard let s = _PoolStats.make(for: tc) else { throw .outOfMemory }
        if let recorder {
            s.pointee.recorder = Unmanaged.passRetained(recorder).toOpaque()
            s.pointee.serial = recorder.serial()
            s.pointee.site = recorder.site(named: site ?? "(unnamed site)")
        }
        e.pointee.poolStats = s
        tc.pointee.flags |= _Flag.poolStats
        return true
    }

    /// What one pool's statistics take from malloc (charged by whoever enables them on a budget).
    public static var poolStatisticsByteCount: Int { _PoolStats.byteCount }

    /// The capacity `pooledObject(parent:byteCount:name:subobjects:subobjectBytes:)` gives its pool (talloc's
    /// arithmetic with our header sizes), or nil when it overflows or a count is negative.
    public static func pooledObjectCapacity(byteCount: Int, subobjects: Int, subobjectBytes: Int) -> Int? {
        _Core.pooledObjectCapacity(size: byteCount, count: subobjects, bytes: subobjectBytes)
    }

    /// Whether this context is a pool that keeps statistics.
    public var keepsPoolStatistics: Bool { chunk.isPool && _PoolStats.of(chunk) != nil }

    /// The statistics of the pool this context is or was carved from, or nil when it is not pool memory
    /// or its pool keeps none. For a freed pool that members keep alive, `isFreed` is set, the pinning
    /// counts are filled in and the counters are zero (they ended with the pool's free).
    public var poolStatistics: TallocPoolStatistics? {
        let tc = chunk
        let pool: _Chunk
        if tc.isPool { pool = tc } else if tc.isPoolMem { pool = tc.carvingPool } else { return nil }
        if pool.pointee.flags & _Flag.free != 0 {
            var st = TallocContext.statistics(pool, nil)
            st.isFreed = true
            st.pinningMembers = pool.poolHeader.members
            st.pinnedBytes = _poolPrefixSize + pool.poolHeader.limit
            return st
        }
        guard let s = _PoolStats.of(pool) else { return nil }
        return TallocContext.statistics(pool, s)
    }

    /// `poolStatistics` read as advice.
    public var poolAdvice: TallocPoolAdvice? { poolStatistics.map(TallocPoolAdvice.init) }

    /// The live members of the pool this context is or was carved from, in address order, that
    /// `include` accepts (at most `limit`): for a freed pool, the members that pin it. Empty when the
    /// context is not pool memory. Stops at the `limit`th; O(carved chunks) before it; reads only what
    /// TallocCore wrote (the pool walk).
    public func livePoolMembers(limit: Int = .max, where include: (TallocContext) -> Bool = { _ in true }) -> [TallocContext] {
        let tc = chunk
        let pool: _Chunk
        if tc.isPool { pool = tc } else if tc.isPoolMem { pool = tc.carvingPool } else { return [] }
        var out: [TallocContext] = []
        guard limit > 0 else { return out }
        _ = _PoolWalk.walk(pool) { seg in
            if seg.kind == .header, let m = seg.member, include(m) {
                out.append(m)
                if out.count >= limit { return false }
            }
            return true
        }
        return out
    }

    /// The first `limit` bytes of the name (all of it when shorter), and whether there was more: a
    /// bounded copy, for reports that list names they do not own.
    public func nameBytes(prefix limit: Int) -> (bytes: [UInt8], truncated: Bool) {
        var out: [UInt8] = []
        var truncated = false
        _ = _Walk.forEachNamePiece(chunk) { piece in
            let room = limit - out.count
            if piece.count > room {
                out.append(contentsOf: piece.prefix(max(room, 0)))
                truncated = true
                return false
            }
            out.append(contentsOf: piece)
            return true
        }
        return (out, truncated)
    }

    /// A name for a report: at most `TallocPoolRecorder.Member.nameLimit` bytes, "..." where it was cut.
    static func reportName(_ c: _Chunk) -> String {
        let (bytes, truncated) = TallocContext(chunk: c).nameBytes(prefix: TallocPoolRecorder.Member.nameLimit)
        return String(decoding: bytes, as: UTF8.self) + (truncated ? "..." : "")
    }

    static func liveMembers(of pool: _Chunk, limit: Int) -> [TallocPoolRecorder.Member] {
        TallocContext(chunk: pool).livePoolMembers(limit: limit).map { m in
            let c = m.chunk
            return TallocPoolRecorder.Member(name: reportName(c), size: Int(c.pointee.size),
                                             parentName: c.pointee.parent.map { reportName($0) })
        }
    }

    static func statistics(_ pool: _Chunk, _ s: UnsafeMutablePointer<_PoolStats>?) -> TallocPoolStatistics {
        let hdr = pool.poolHeader
        let used = hdr.end - _headerSize
        let x = s?.pointee
        let live = x?.liveBytes ?? 0
        return TallocPoolStatistics(
            capacity: Int(hdr.pointee.poolSize), used: used,
            peakUsed: (x?.peakEnd ?? hdr.end) - _headerSize,
            allocations: x?.allocations ?? 0, allocatedBytes: x?.allocatedBytes ?? 0,
            spills: x?.spills ?? 0, spilledBytes: x?.spilledBytes ?? 0, largestSpill: x?.largestSpill ?? 0,
            members: hdr.members, liveBytes: live,
            wastedBytes: s == nil ? 0 : max(0, hdr.end - hdr.start - live),
            holes: x?.holes ?? 0, holeBytes: x?.holeBytes ?? 0, reclaims: x?.reclaims ?? 0,
            resets: x?.resets ?? 0, stolen: x?.stolen ?? 0, reallocs: x?.reallocs ?? 0,
            neededCapacity: (x?.vPeak ?? hdr.end) - _headerSize,
            isFreed: false, pinningMembers: 0, pinnedBytes: 0)
    }
}
