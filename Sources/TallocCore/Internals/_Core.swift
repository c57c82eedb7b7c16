// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// The allocator itself: allocation and pools, the free protocol, steal, references, realloc, names and
// memory limits. Every function here takes raw chunks and trusts them; validation happens at the public
// boundary (TallocContext). Nothing here recurses: frees and subtree walks are loops over the tree links.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@usableFromInline
enum _Core {

    // MARK: - Logging and aborting

    /// Hands a log line to the process-wide log handler (read under its lock, called outside it).
    static func log(_ message: String) {
        _Globals.logHandler?(message)
    }

    /// Writes to standard error without stdio's shared state.
    static func writeStderr(_ text: String) {
        var t = text
        t.withUTF8 { _ = writeStderr(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// The same for bytes; false when stderr stops taking them.
    static func writeStderr(bytes b: UnsafeRawBufferPointer) -> Bool {
        guard let base = b.baseAddress else { return true }
        var off = 0
        while off < b.count {
            let n = write(2, base + off, b.count - off)
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    /// talloc_abort: log the reason, call the abort handler, and trap. Unlike talloc, we never carry on
    /// after a handler returns (SEMANTICS §7 #11).
    static func abort(_ reason: String) -> Never {
        log(reason + "\n")
        _Globals.abortHandler?(reason)
        fatalError(reason)
    }

    /// talloc_chunk_from_ptr: the chunk of a body pointer, or an abort with talloc's message.
    @inline(__always) @usableFromInline
    static func chunk(_ body: UnsafeRawPointer) -> _Chunk {
        let tc = _Chunk.from(body: body)
        if _slowPath(tc.pointee.flags & (_Flag.free | _Flag.magicMask) != _magic) {
            abortBadMagic(tc)
        }
        return tc
    }

    @inline(never)
    static func abortBadMagic(_ tc: _Chunk) -> Never {
        if tc.pointee.flags & (_Flag.free | _Flag.magicMask) == (_magicFree | _Flag.free) {
            log("talloc: access after free error - first free may be at \(freedName(tc))\n")
            abort("Bad talloc magic value - access after free")
        }
        abort("Bad talloc magic value - unknown value")
    }

    /// The same check, as a value (the throwing twin of `chunk`).
    @inline(__always) @usableFromInline
    static func checkedChunk(_ body: UnsafeRawPointer) -> Result<_Chunk, TallocError> {
        let tc = _Chunk.from(body: body)
        let f = tc.pointee.flags & (_Flag.free | _Flag.magicMask)
        if _fastPath(f == _magic) { return .success(tc) }
        if f == (_magicFree | _Flag.free) { return .failure(.accessAfterFree) }
        return .failure(.unknownValue)
    }

    static func freedName(_ tc: _Chunk) -> String {
        guard let n = tc.pointee.name else { return "(unknown)" }
        return String(cString: n.assumingMemoryBound(to: CChar.self))
    }

    // MARK: - Allocation

    /// The pool an allocation under `parent` is carved from (tc_alloc_pool): the parent itself if it is a
    /// pool, else the pool the parent was carved from. Never an outer pool.
    @inline(__always)
    static func pool(for parent: _Chunk) -> _Chunk? {
        let f = parent.pointee.flags
        if f & _Flag.pool != 0 { return parent }
        if f & _Flag.poolMem != 0 { return parent.carvingPool }
        return nil
    }

    /// Carves `chunkSize` bytes (already aligned, prefix included) from `pool`; returns the chunk header
    /// placed `prefix` bytes into the carved space, or nil when it does not fit.
    @inline(__always)
    static func carve(from pool: _Chunk, chunkSize: Int, prefix: Int) -> _Chunk? {
        let hdr = pool.poolHeader
        let end = Int(hdr.pointee.end)
        let limit = _headerSize + Int(hdr.pointee.poolSize)
        if limit - end < chunkSize { return nil }
        let offset = end + prefix
        let tc = (UnsafeMutableRawPointer(pool) + offset).assumingMemoryBound(to: _ChunkHeader.self)
        hdr.pointee.end = UInt32(end + chunkSize)
        hdr.pointee.objectCount += 1
        tc.pointee.flags = _magic | _Flag.poolMem
        tc.pointee.poolOffset = UInt32(offset)
        return tc
    }

    /// __talloc_with_prefix: a new chunk of `size` bytes under `parent` (nil = top level or the null
    /// context), carved from the nearest pool when it fits, else malloc'd. `prefix` is the room kept in
    /// front of the header (a pool header). Nil on failure (memory limit, malloc). The caller has checked
    /// `0 <= size < MAX_TALLOC_SIZE`.
    @inline(__always) @usableFromInline
    static func allocate(_ parentIn: _Chunk?, size: Int, prefix: Int = 0) -> _Chunk? {
        let parent = _NullTracking.parent(parentIn)
        if let p = parent {
            let pf = p.pointee.flags
            if pf & (_Flag.pool | _Flag.poolMem | _Flag.hasLimit | _Flag.underLimit) != 0 {
                if pf & (_Flag.hasLimit | _Flag.underLimit) == 0 {
                    // Bump allocation from the nearest pool (tc_alloc_pool), inline.
                    let pool = pf & _Flag.pool != 0 ? p : p.carvingPool
                    let hdr = pool.poolHeader
                    let end = Int(hdr.pointee.end)
                    let chunkSize = _align16(_headerSize + size + prefix)
                    if _headerSize + Int(hdr.pointee.poolSize) - end >= chunkSize {
                        let offset = end + prefix
                        let tc = (UnsafeMutableRawPointer(pool) + offset).assumingMemoryBound(to: _ChunkHeader.self)
                        hdr.pointee.end = UInt32(truncatingIfNeeded: end + chunkSize)
                        hdr.pointee.objectCount &+= 1
                        let first = p.pointee.child
                        tc.initialize(to: _ChunkHeader(
                            next: first, prev: nil, parent: p, child: nil, name: nil, extra: nil,
                            size: UInt32(truncatingIfNeeded: size), flags: _magic | _Flag.poolMem,
                            poolOffset: UInt32(truncatingIfNeeded: offset), line: 0))
                        if let first { first.pointee.prev = tc }
                        p.pointee.child = tc
                        return tc
                    }
                }
                return allocateSlow(p, size: size, prefix: prefix)
            }
        }
        guard let raw = malloc(_headerSize + size + prefix) else { return nil }
        let tc = (raw + prefix).assumingMemoryBound(to: _ChunkHeader.self)
        let first = parent?.pointee.child
        tc.initialize(to: _ChunkHeader(
            next: first, prev: nil, parent: parent, child: nil, name: nil, extra: nil,
            size: UInt32(truncatingIfNeeded: size), flags: _magic, poolOffset: 0, line: 0))
        if let p = parent {
            if let first { first.pointee.prev = tc }
            p.pointee.child = tc
        }
        return tc
    }

    /// The same for a parent that is (or is carved from) a pool, or that a memory limit governs.
    @inline(never)
    static func allocateSlow(_ p: _Chunk, size: Int, prefix: Int) -> _Chunk? {
        let pf = p.pointee.flags
        let inherited: UInt32 = (pf & (_Flag.hasLimit | _Flag.underLimit)) != 0 ? _Flag.underLimit : 0
        var tc: _Chunk? = nil
        if pf & (_Flag.pool | _Flag.poolMem) != 0, let pool = pool(for: p) {
            tc = carve(from: pool, chunkSize: _align16(_headerSize + size + prefix), prefix: prefix)
        }
        if tc == nil {
            let total = _headerSize + size + prefix
            if inherited != 0 && !limitAllows(p, total) { return nil }
            guard let raw = malloc(total) else { return nil }
            tc = (raw + prefix).assumingMemoryBound(to: _ChunkHeader.self)
            tc!.pointee.flags = _magic
            tc!.pointee.poolOffset = 0
            if inherited != 0 { limitGrow(p, total) }
        }
        let c = tc!
        c.pointee.flags |= inherited
        c.pointee.size = UInt32(truncatingIfNeeded: size)
        c.pointee.name = nil
        c.pointee.extra = nil
        c.pointee.line = 0
        c.pointee.child = nil
        c.pointee.prev = nil
        c.pointee.parent = p
        let first = p.pointee.child
        c.pointee.next = first
        if let first { first.pointee.prev = c }
        p.pointee.child = c
        return c
    }

    /// A chunk that is never carved from a pool (an external context: its `size` is not its body, so it
    /// must not be a pool member, whose size the pool's bookkeeping and walk rely on).
    static func allocateOutsidePools(_ parentIn: _Chunk?, size: Int) -> _Chunk? {
        guard let p = _NullTracking.parent(parentIn), p.pointee.flags & (_Flag.pool | _Flag.poolMem) != 0 else {
            return allocate(parentIn, size: size)
        }
        // allocateSlow's heap branch.
        let inherited: UInt32 = p.pointee.flags & (_Flag.hasLimit | _Flag.underLimit) != 0 ? _Flag.underLimit : 0
        let total = _headerSize + size
        if inherited != 0 && !limitAllows(p, total) { return nil }
        guard let raw = malloc(total) else { return nil }
        let c = raw.assumingMemoryBound(to: _ChunkHeader.self)
        let first = p.pointee.child
        c.initialize(to: _ChunkHeader(
            next: first, prev: nil, parent: p, child: nil, name: nil, extra: nil,
            size: UInt32(truncatingIfNeeded: size), flags: _magic | inherited, poolOffset: 0, line: 0))
        if let first { first.pointee.prev = c }
        p.pointee.child = c
        if inherited != 0 { limitGrow(p, total) }
        return c
    }

    /// _talloc_pool: a pool of `capacity` bytes of bump space. The pool itself counts as one object.
    static func makePool(_ parent: _Chunk?, capacity: Int) -> _Chunk? {
        if capacity < 0 || capacity >= _maxSize { return nil }
        guard let tc = allocate(parent, size: capacity, prefix: _poolPrefixSize) else { return nil }
        tc.pointee.flags |= _Flag.pool
        tc.pointee.size = 0
        let hdr = tc.poolHeader
        hdr.pointee = _PoolHeader(end: UInt32(_headerSize), objectCount: 1, poolSize: UInt32(capacity))
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
        tc.poolHeader.pointee.end = UInt32(_align16(_headerSize + size))
        return tc
    }

    // MARK: - Names

    /// Gives `tc` a plain C-string name (nil reads "UNNAMED"): not a location, and no longer a copy the
    /// chunk owned (`setNameCopy`), which is freed now.
    @inline(__always)
    static func rename(_ tc: _Chunk, to name: UnsafeRawPointer?) {
        tc.pointee.name = name
        tc.pointee.flags &= ~(_Flag.nameIsLocation | _Flag.nameHasNewPrefix)
        dropOwnedName(tc)
    }

    /// Frees the name copy `tc` owns, unless it is still the name.
    @inline(__always)
    static func dropOwnedName(_ tc: _Chunk) {
        if _slowPath(tc.pointee.extra != nil) { dropOwnedNameSlow(tc) }
    }

    @inline(never)
    static func dropOwnedNameSlow(_ tc: _Chunk) {
        guard let e = tc.pointee.extra, let copy = e.pointee.ownedName else { return }
        if tc.pointee.flags & _Flag.nameIsLocation == 0 && tc.pointee.name == UnsafeRawPointer(copy) { return }
        e.pointee.ownedName = nil
        Glibc.free(copy)
    }

    // MARK: - Tree links

    /// Removes `tc` from its parent's child list (or from the top-level sibling list). Keeps `parent`.
    @inline(__always) @usableFromInline
    static func unlinkFromSiblings(_ tc: _Chunk) {
        let next = tc.pointee.next
        if let prev = tc.pointee.prev {
            prev.pointee.next = next
        } else if let p = tc.pointee.parent, p.pointee.child == tc {
            p.pointee.child = next
        }
        if let next { next.pointee.prev = tc.pointee.prev }
        tc.pointee.next = nil
        tc.pointee.prev = nil
    }

    /// Links `tc` (already unlinked) as the newest child of `parent` (nil = top level).
    @inline(__always) @usableFromInline
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

    /// Is `ancestor` equal to `tc` or one of its ancestors? Safe on detached parent loops.
    @inline(__always)
    static func isAncestorOrSelf(_ ancestor: _Chunk, of tc: _Chunk) -> Bool {
        // A plain walk for ordinary depths; past 4096 steps, the loop-safe walk takes over.
        var c: _Chunk? = tc
        var steps = 0
        while let x = c {
            if x == ancestor { return true }
            c = x.pointee.parent
            steps &+= 1
            if _slowPath(steps == 4096) { return isAncestorOrSelfLoopSafe(ancestor, of: tc) }
        }
        return false
    }

    @inline(never)
    static func isAncestorOrSelfLoopSafe(_ ancestor: _Chunk, of tc: _Chunk) -> Bool {
        var slow: _Chunk? = tc
        var fast: _Chunk? = tc
        while let s = slow {
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

    // MARK: - Steal

    /// _talloc_steal_internal: `tc` becomes the newest child of `newParent` (nil: the null context, or top
    /// level). Stealing to the current parent moves it to the head, as talloc does. Memory limits follow.
    @inline(__always) @usableFromInline
    static func steal(_ tc: _Chunk, to newParentIn: _Chunk?) {
        let newParent = _NullTracking.parent(newParentIn)
        if let np = newParent, np == tc { return }
        let old = tc.pointee.parent
        if old == newParent && (old == nil || old!.pointee.child == tc) { return }
        let flags = tc.pointee.flags
        let newFlags = newParent?.pointee.flags ?? 0
        // Unlink (talloc's _TLIST_REMOVE), then link as the newest child of the new parent.
        let next = tc.pointee.next
        if let prev = tc.pointee.prev {
            prev.pointee.next = next
        } else if let old, old.pointee.child == tc {
            old.pointee.child = next
        }
        if let next { next.pointee.prev = tc.pointee.prev }
        if _slowPath((flags & _Flag.underLimit) | (newFlags & (_Flag.hasLimit | _Flag.underLimit)) != 0) {
            let oldLimited = flags & _Flag.underLimit != 0
            let newLimited = newFlags & (_Flag.hasLimit | _Flag.underLimit) != 0
            let charge = subtreeCharge(tc, markUnderLimit: newLimited)
            if oldLimited, let old { limitShrink(old, charge) }
            if newLimited, let newParent { limitGrow(newParent, charge) }
        }
        tc.pointee.parent = newParent
        tc.pointee.prev = nil
        if let newParent {
            let first = newParent.pointee.child
            tc.pointee.next = first
            if let first { first.pointee.prev = tc }
            newParent.pointee.child = tc
        } else {
            tc.pointee.next = nil
        }
        if _slowPath(tc.pointee.extra != nil), let e = tc.pointee.extra, let obs = e.pointee.observer, old != newParent {
            obs(tc.body, 2, e.pointee.observerTag, e.pointee.observerContext, e.pointee.observerData)
        }
    }

    // MARK: - References

    /// _talloc_reference_loc: a handle chunk under `owner` pointing at `target`. Nil on failure.
    static func reference(_ target: _Chunk, owner: _Chunk?, file: UnsafeRawPointer? = nil, line: UInt32 = 0) -> _Chunk? {
        guard let e = target.makeExtra() else { return nil }
        guard let h = allocate(owner, size: MemoryLayout<_ReferenceBody>.stride) else { return nil }
        h.pointee.flags |= _Flag.reference
        // A handle's name is never read as a name (it reads ".reference"): it keeps where the reference
        // was made, for the "reference at FILE:LINE" log lines.
        h.pointee.name = file
        h.pointee.line = line
        let b = h.referenceBody
        b.pointee = _ReferenceBody(next: e.pointee.refs, prev: nil, target: target, _reserved: nil)
        if let first = e.pointee.refs { first.referenceBody.pointee.prev = h }
        e.pointee.refs = h
        return h
    }

    /// Takes a handle out of its target's list (talloc_reference_destructor).
    static func detachHandle(_ h: _Chunk) {
        let b = h.referenceBody
        let target = b.pointee.target
        if let prev = b.pointee.prev {
            prev.referenceBody.pointee.next = b.pointee.next
        } else {
            target.pointee.extra!.pointee.refs = b.pointee.next
        }
        if let next = b.pointee.next { next.referenceBody.pointee.prev = b.pointee.prev }
        b.pointee.next = nil
        b.pointee.prev = nil
    }

    /// talloc's "\treference at LOC" lines, newest reference first.
    static func logReferences(_ tc: _Chunk) {
        var h = tc.refs
        while let x = h {
            log("\treference at \(referenceLocation(x))\n")
            h = x.referenceBody.pointee.next
        }
    }

    static func referenceLocation(_ h: _Chunk) -> String {
        guard let f = h.pointee.name else { return "(unknown)" }
        return String(cString: f.assumingMemoryBound(to: CChar.self)) + ":" + String(h.pointee.line)
    }

    static func referenceCount(_ tc: _Chunk) -> Int {
        var n = 0
        var h = tc.refs
        while let x = h { n += 1; h = x.referenceBody.pointee.next }
        return n
    }

    /// The chunk owning a reference handle (its real parent); nil for a handle at top level.
    @inline(__always)
    static func owner(ofHandle h: _Chunk) -> _Chunk? { h.pointee.parent }

    /// talloc_unreference: frees the newest handle of `tc` owned by `context` (nil = the null context / no
    /// parent). False when there is none.
    static func unreference(_ tc: _Chunk, context contextIn: _Chunk?) -> Bool {
        let context = _NullTracking.parent(contextIn)
        var h = tc.refs
        while let x = h {
            if owner(ofHandle: x) == context {
                _ = free(x)
                return true
            }
            h = x.referenceBody.pointee.next
        }
        return false
    }

    /// talloc_unlink: removes one parent of `tc`. 0 on success, -1 otherwise.
    static func unlink(_ tc: _Chunk, from contextIn: _Chunk?) -> Int32 {
        let context = _NullTracking.parent(contextIn)
        if unreference(tc, context: context) { return 0 }
        if context != tc.pointee.parent { return -1 }
        // The newest referrer becomes the parent — unless it lives inside tc's own subtree: talloc then
        // builds a loop detached from every root (SEMANTICS §3.3 3, test_lifeless), which nothing can
        // free and every upward walk circles. Such a reference cannot keep tc alive: it is dropped, and
        // the next referrer is tried; with none left, tc is freed as an unreferenced chunk would be.
        while let newest = tc.refs {
            let newParent = owner(ofHandle: newest)
            if let np = newParent, isAncestorOrSelf(tc, of: np) {
                _ = free(newest)
                continue
            }
            if !unreference(tc, context: newParent) { return -1 }
            steal(tc, to: newParent)
            return 0
        }
        return free(tc)
    }

    // MARK: - Free

    enum Entry { case proceed, alreadyFreeing, refused, refusedByReference(_Chunk?) }

    /// The first half of _tc_free_internal for one chunk: references, the loop guard, the destructor,
    /// then unlinking. `.proceed` leaves the chunk unlinked with LOOP set and `parent` kept as the way
    /// back up (and, for the chunk a free started from, as the home of refusing children).
    static func enter(_ tc: _Chunk) -> Entry {
        while let h = tc.refs {
            // A reference from inside tc's own subtree is dropped and the free goes on (talloc's
            // is_child case); any other reference keeps tc alive, owned by that referrer.
            let owner = owner(ofHandle: h)
            let fromInside = owner.map { isAncestorOrSelf(tc, of: $0) } ?? false
            _ = free(h)
            if !fromInside { return .refusedByReference(owner) }
        }
        let flags = tc.pointee.flags
        if flags & _Flag.loop != 0 { return .alreadyFreeing }
        if flags & _Flag.inDestructor != 0 { return .refused }
        if let e = tc.pointee.extra {
            if e.pointee.hasDestructor && runDestructor(tc, e) == .refuse { return .refused }
            if let e2 = tc.pointee.extra, let obs = e2.pointee.observer {
                obs(tc.body, 3, e2.pointee.observerTag, e2.pointee.observerContext, e2.pointee.observerData)  // about to die
            }
        }
        unlinkFromSiblings(tc)
        tc.pointee.flags |= _Flag.loop
        return .proceed
    }

    static func runDestructor(_ tc: _Chunk, _ e: UnsafeMutablePointer<_Extra>) -> TallocDestructorVerdict {
        let swiftBox = e.pointee.swiftDestructor
        let cFn = e.pointee.cDestructor
        let cCtx = e.pointee.cDestructorContext
        e.pointee.swiftDestructor = nil
        e.pointee.cDestructor = nil
        e.pointee.cDestructorContext = nil
        tc.pointee.flags = (tc.pointee.flags | _Flag.inDestructor) & ~_Flag.destructorReplaced
        let verdict: TallocDestructorVerdict
        if let swiftBox {
            let box = Unmanaged<_DestructorBox>.fromOpaque(swiftBox).takeUnretainedValue()
            verdict = box.body(TallocContext(tc.body))
        } else {
            verdict = cFn!(tc.body, cCtx) == -1 ? .refuse : .allow
        }
        let replaced = tc.pointee.flags & _Flag.destructorReplaced != 0
        tc.pointee.flags &= ~(_Flag.inDestructor | _Flag.destructorReplaced)
        if verdict == .refuse && !replaced {
            // Only put the old destructor back if the callback did not install another one.
            let e2 = tc.pointee.extra!
            e2.pointee.swiftDestructor = swiftBox
            e2.pointee.cDestructor = cFn
            e2.pointee.cDestructorContext = cCtx
            return .refuse
        }
        if let swiftBox { Unmanaged<_DestructorBox>.fromOpaque(swiftBox).release() }
        return verdict
    }

    /// _talloc_free (talloc_free): the reference rules of §1.4, then the free itself.
    static func freeTop(_ tc: _Chunk, location: String) -> Int32 {
        if _slowPath(tc.refs != nil) {
            let null = _NullTracking.current
            if tc.pointee.parent == null && tc.refs!.referenceBody.pointee.next == nil {
                return unlink(tc, from: null)
            }
            log("ERROR: talloc_free with references at \(location)\n")
            logReferences(tc)
            return -1
        }
        return free(tc)
    }

    /// The free of a chunk with no side record (no destructor, references, observer, limit): nothing of
    /// its own can refuse. False when the chunk needs the full protocol.
    @inline(__always) @usableFromInline
    static func freePlain(_ tc0: _Chunk) -> Bool {
        guard tc0.pointee.extra == nil && tc0.pointee.flags & (_Flag.loop | _Flag.inDestructor) == 0 else { return false }
        unlinkFromSiblings(tc0)
        tc0.pointee.flags |= _Flag.loop
        if tc0.pointee.child != nil { freeChildren(of: tc0, isFreeing: true) }
        release(tc0)
        return true
    }

    /// _tc_free_internal, iteratively: 0 when freed (or already being freed), -1 when refused.
    @usableFromInline
    static func free(_ tc0: _Chunk) -> Int32 {
        if freePlain(tc0) { return 0 }
        switch enter(tc0) {
        case .proceed: break
        case .alreadyFreeing: return 0
        case .refused, .refusedByReference: return -1
        }
        freeChildren(of: tc0, isFreeing: true)
        release(tc0)
        return 0
    }

    /// _tc_free_children_internal over the whole subtree, without recursion. When `isFreeing`, `root` is
    /// itself being freed (its `parent` is where refusing children of the root go). Children refusing to
    /// die move to the parent of the chunk being freed — always, whatever their sibling position (talloc
    /// makes them top level unless they were the newest sibling: SEMANTICS §8.4, DESIGN §8).
    static func freeChildren(of root: _Chunk, isFreeing: Bool) {
        var registered = false
        var cur = root
        while true {
            if let child = cur.pointee.child {
                if child.pointee.extra == nil && child.pointee.child == nil
                    && child.pointee.flags & (_Flag.loop | _Flag.inDestructor) == 0 {
                    // A leaf with no destructor, references or observer: nothing can refuse or run.
                    let next = child.pointee.next
                    cur.pointee.child = next
                    if let next { next.pointee.prev = nil }
                    release(child)
                    continue
                }
                if !registered, cur == root, child.pointee.extra != nil || child.pointee.child != nil {
                    // User code may run from here on: let a free of root's parent find us.
                    registered = _FreeRegistry.push(root)
                }
                switch enter(child) {
                case .proceed:
                    if _slowPath(child.pointee.parent != cur) {
                        // Its destructor moved it and then let it go: it is unlinked now, and its parent
                        // pointer is this walk's way back up, so it must lead to `cur` again. Its bytes
                        // go back to `cur`'s limits, as a steal back would take them.
                        let moved = child.pointee.parent
                        if child.pointee.flags & _Flag.underLimit != 0 || cur.pointee.flags & (_Flag.hasLimit | _Flag.underLimit) != 0 {
                            let under = cur.pointee.flags & (_Flag.hasLimit | _Flag.underLimit) != 0
                            let wasUnder = child.pointee.flags & _Flag.underLimit != 0
                            let charge = subtreeCharge(child, markUnderLimit: under)
                            if wasUnder, let moved { limitShrink(moved, charge) }
                            if under { limitGrow(cur, charge) }
                        }
                        child.pointee.parent = cur
                    }
                    cur = child
                    continue
                case .alreadyFreeing:
                    // Being freed further up the stack but linked here again. The public API refuses to
                    // move a chunk that is being freed, so this is defensive: take it out of this list so
                    // the loop makes progress.
                    unlinkFromSiblings(child)
                    continue
                case .refusedByReference(let owner):
                    if child.pointee.parent != cur { continue }
                    // A reference owned by the null context names no owner: talloc then falls back to the
                    // parent of the chunk being freed, as for a refusing child.
                    steal(child, to: owner == _NullTracking.current ? cur.pointee.parent : owner)
                    continue
                case .refused:
                    // A destructor that already moved its chunk elsewhere is obeyed.
                    if child.pointee.parent != cur { continue }
                    steal(child, to: cur.pointee.parent)
                    continue
                }
            }
            if cur == root { break }
            let up = cur.pointee.parent!
            release(cur)
            cur = up
        }
        if registered { _FreeRegistry.pop(root) }
    }

    /// talloc_free_children: frees every child but keeps a ".name" child that holds the chunk's name.
    static func freeChildrenKeepingName(_ tc: _Chunk) {
        var nameChild: _Chunk? = nil
        if let n = tc.pointee.name, tc.pointee.flags & _Flag.nameIsLocation == 0 {
            var c = tc.pointee.child
            while let x = c {
                if UnsafeRawPointer(x.body) == n { nameChild = x; break }
                c = x.pointee.next
            }
            if let nameChild { unlinkFromSiblings(nameChild) }
        }
        freeChildren(of: tc, isFreeing: false)
        if let nameChild { linkAsNewest(nameChild, under: tc) }
    }

    /// The second half of _tc_free_internal: the chunk has no children left; give its memory back.
    @inline(__always)
    static func release(_ tc: _Chunk) {
        let flags = tc.pointee.flags
        if _fastPath(flags & (_Flag.reference | _Flag.freeingChild | _Flag.hasLimit | _Flag.underLimit
                              | _Flag.pool | _Flag.poolMem) == 0 && tc.pointee.extra == nil) {
            // A plain heap chunk: stamp it freed (a double free then reads "access after free") and go.
            tc.pointee.flags = (flags & (_Flag.mask & ~_Flag.loop)) | _Flag.free | _magicFree
            Glibc.free(UnsafeMutableRawPointer(tc))
            return
        }
        releaseSlow(tc, flags)
    }

    @inline(never)
    static func releaseSlow(_ tc: _Chunk, _ flags: UInt32) {
        if flags & (_Flag.reference | _Flag.freeingChild | _Flag.hasLimit | _Flag.underLimit | _Flag.pool)
            == 0 && tc.pointee.extra == nil {
            // A plain pool member. When its pool is being freed too, the pool's space is not reused any
            // more: only the count matters (the pool may stay pinned by members stolen elsewhere).
            let pool = tc.carvingPool
            let hdr = pool.poolHeader
            if pool.pointee.flags & _Flag.loop != 0 && hdr.pointee.objectCount > 2 {
                tc.pointee.flags = (flags & (_Flag.mask & ~_Flag.loop)) | _Flag.free | _magicFree
                hdr.pointee.objectCount -= 1
                // the last-chunk reclaim still applies: a pool pinned by stolen members reuses the space
                let offset = tc.pointee.poolOffset
                if hdr.pointee.end == offset &+ UInt32(truncatingIfNeeded: _align16(_headerSize + Int(tc.pointee.size))) {
                    hdr.pointee.end = offset
                }
                return
            }
        }
        if flags & _Flag.reference != 0 { detachHandle(tc) }
        if let e = tc.pointee.extra {
            releaseExtra(tc, e)
        }
        if _slowPath(flags & _Flag.freeingChild != 0) { _FreeRegistry.parentIsGoing(tc) }
        let charge = flags & (_Flag.hasLimit | _Flag.underLimit) != 0 ? chargeOf(tc) : 0
        if charge != 0, flags & _Flag.underLimit != 0, let p = tc.pointee.parent { limitShrink(p, charge) }
        tc.pointee.flags = (flags & (_Flag.mask & ~(_Flag.loop | _Flag.hasLimit | _Flag.underLimit)))
            | _Flag.free | _magicFree
        tc.pointee.name = nil
        tc.pointee.parent = nil
        tc.pointee.child = nil
        if flags & _Flag.pool != 0 {
            let hdr = tc.poolHeader
            hdr.pointee.objectCount -= 1
            if hdr.pointee.objectCount != 0 { return }  // pinned by members still alive
            if flags & _Flag.poolMem != 0 {
                releasePoolMem(tc)
            } else {
                Glibc.free(UnsafeMutableRawPointer(tc) - _poolPrefixSize)
            }
            return
        }
        if flags & _Flag.poolMem != 0 {
            releasePoolMem(tc)
            return
        }
        Glibc.free(UnsafeMutableRawPointer(tc))
    }

    static func releaseExtra(_ tc: _Chunk, _ e: UnsafeMutablePointer<_Extra>) {
        // References added while the chunk was dying point at nothing now: drop them.
        while let h = e.pointee.refs {
            detachHandle(h)
            unlinkFromSiblings(h)
            release(h)
        }
        if let obs = e.pointee.observer {
            e.pointee.observer = nil
            obs(tc.body, 0, e.pointee.observerTag, e.pointee.observerContext, e.pointee.observerData)
        }
        if let box = e.pointee.swiftDestructor { Unmanaged<_DestructorBox>.fromOpaque(box).release() }
        if let n = e.pointee.ownedName { Glibc.free(n) }
        tc.pointee.extra = nil
        e.deinitialize(count: 1)
        Glibc.free(e)
    }

    /// _tc_free_poolmem: a chunk carved from a pool goes back to it.
    static func releasePoolMem(_ first: _Chunk) {
        var tc = first
        while true {
            let pool = tc.carvingPool
            let hdr = pool.poolHeader
            let nextChunk = Int(tc.pointee.poolOffset) + _align16(_headerSize + Int(tc.pointee.size))
            if hdr.pointee.objectCount == 0 { abort("Pool object count zero!") }
            hdr.pointee.objectCount -= 1
            let count = hdr.pointee.objectCount
            if count == 1 && pool.pointee.flags & _Flag.free == 0 {
                // Only the pool is left: reset it.
                hdr.pointee.end = UInt32(_align16(_headerSize + Int(pool.pointee.size)))
                return
            }
            if count == 0 {
                // The pool was freed already and this was its last member.
                if pool.pointee.flags & _Flag.poolMem != 0 { tc = pool; continue }
                Glibc.free(UnsafeMutableRawPointer(pool) - _poolPrefixSize)
                return
            }
            if Int(hdr.pointee.end) == nextChunk {
                hdr.pointee.end = tc.pointee.poolOffset  // the last chunk is reclaimed
                // talloc's arithmetic reclaims a nested pool (only one of 0 bytes can end there) to its
                // chunk header, past its prefix: the 16 bytes left in front become a marked hole.
                if tc.pointee.flags & _Flag.pool != 0 {
                    pool.markHole(at: Int(tc.pointee.poolOffset) - _poolPrefixSize, length: _poolPrefixSize)
                }
            }
            return
        }
    }

    // MARK: - Realloc

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
    /// chunk in talloc (the caller renames), the in-place paths keep the name.
    static func reallocate(_ tc: _Chunk, size: Int) -> (chunk: _Chunk?, moved: Bool, failure: ReallocFailure) {
        if size >= _maxSize { return (nil, false, .tooLarge) }
        let flags0 = tc.pointee.flags
        if _slowPath(flags0 & (_Flag.pool | _Flag.external | _Flag.loop | _Flag.inDestructor) != 0 || tc.refs != nil) {
            if tc.refs != nil { return (nil, false, .referenced) }
            if flags0 & (_Flag.pool | _Flag.external) != 0 { return (nil, false, .isPool) }
            // A chunk in its destructor or in the middle of a free must not move: the free holds its address.
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
                let oldSpan = _align16(_headerSize + oldSize)
                let newSpan = _align16(_headerSize + size)
                tc.pointee.size = UInt32(size)
                if Int(hdr.pointee.end) == offset + oldSpan {
                    hdr.pointee.end = UInt32(offset + newSpan)
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
            let pool = tc.carvingPool
            let hdr = pool.poolHeader
            let offset = Int(tc.pointee.poolOffset)
            var lastChunk = Int(hdr.pointee.end) == offset + _align16(_headerSize + oldSize)
            let oldChunkSize = _align16(_headerSize + oldSize)
            let newChunkSize = _align16(_headerSize + size)
            var chunkCount = Int(hdr.pointee.objectCount)
            if pool.pointee.flags & _Flag.free == 0 { chunkCount -= 1 }
            let poolEnd = _headerSize + Int(hdr.pointee.poolSize)
            if chunkCount == 1 {
                // The only chunk in the pool: move it to the start.
                let start = _align16(_headerSize + Int(pool.pointee.size))
                if poolEnd - start >= newChunkSize {
                    let dst = UnsafeMutableRawPointer(pool) + start
                    if dst == UnsafeMutableRawPointer(tc) {
                        // Already at the start: talloc copies it onto itself; we only grow it. It still
                        // counts as the moving path (talloc renames here).
                        tc.pointee.size = UInt32(truncatingIfNeeded: size)
                        hdr.pointee.end = UInt32(truncatingIfNeeded: start + newChunkSize)
                        return (tc, true, .tooLarge)
                    }
                    memmove(dst, UnsafeMutableRawPointer(tc), _headerSize + oldSize)
                    newTC = dst.assumingMemoryBound(to: _ChunkHeader.self)
                    newTC.pointee.poolOffset = UInt32(start)
                    hdr.pointee.end = UInt32(start + newChunkSize)
                    return (fixupAfterMove(from: tc, to: newTC, size: size), true, .tooLarge)
                }
                lastChunk = false
            }
            if newChunkSize == oldChunkSize {
                tc.pointee.size = UInt32(size)
                return (tc, false, .tooLarge)
            }
            if lastChunk && poolEnd - Int(hdr.pointee.end) >= newChunkSize - oldChunkSize {
                tc.pointee.size = UInt32(size)
                hdr.pointee.end = UInt32(offset + newChunkSize)
                return (tc, false, .tooLarge)
            }
            if let carved = carve(from: pool, chunkSize: newChunkSize, prefix: 0) {
                newTC = carved
            } else {
                let total = _headerSize + size
                if limited, !limitAllows(tc, total) { return (nil, false, .outOfMemory) }
                guard let raw = malloc(total) else { return (nil, false, .outOfMemory) }
                newTC = raw.assumingMemoryBound(to: _ChunkHeader.self)
                malloced = true
            }
            let keepOffset = newTC.pointee.poolOffset
            memcpy(UnsafeMutableRawPointer(newTC), UnsafeMutableRawPointer(tc), _headerSize + min(oldSize, size))
            if malloced {
                newTC.pointee.flags &= ~_Flag.poolMem
                newTC.pointee.poolOffset = 0
            } else {
                newTC.pointee.poolOffset = keepOffset
            }
            // The old chunk goes back to the pool (its header is stamped freed).
            tc.pointee.flags = (tc.pointee.flags & _Flag.mask & ~(_Flag.loop | _Flag.hasLimit | _Flag.underLimit))
                | _Flag.free | _magicFree
            tc.pointee.extra = nil
            releasePoolMem(tc)
            let moved = fixupAfterMove(from: tc, to: newTC, size: size)
            if malloced && limited { limitGrow(moved, _headerSize + size) }
            return (moved, true, .tooLarge)
        }
        // A heap chunk: realloc(), with the memory limit checked on the growth.
        if limited, size > oldSize, !limitAllows(tc, size - oldSize) {
            return (nil, false, .outOfMemory)
        }
        guard let raw = realloc(UnsafeMutableRawPointer(tc), _headerSize + size) else { return (nil, false, .outOfMemory) }
        newTC = raw.assumingMemoryBound(to: _ChunkHeader.self)
        let moved = fixupAfterMove(from: tc, to: newTC, size: size)
        if limited {
            if size > oldSize { limitGrow(moved, size - oldSize) } else { limitShrink(moved, oldSize - size) }
        }
        return (moved, true, .tooLarge)
    }

    /// After a chunk moved (or was realloc'd in place): re-point its neighbours, children and observers.
    static func fixupAfterMove(from old: _Chunk, to tc: _Chunk, size: Int) -> _Chunk {
        tc.pointee.size = UInt32(size)
        if old != tc {
            if let p = tc.pointee.parent, p.pointee.child == old { p.pointee.child = tc }
            if let prev = tc.pointee.prev { prev.pointee.next = tc }
            if let next = tc.pointee.next { next.pointee.prev = tc }
            var c = tc.pointee.child
            while let x = c { x.pointee.parent = tc; c = x.pointee.next }
            if tc.pointee.flags & _Flag.freeingChild != 0 { _FreeRegistry.parentMoved(from: old, to: tc) }
            if let e = tc.pointee.extra, let obs = e.pointee.observer {
                obs(tc.body, 1, e.pointee.observerTag, e.pointee.observerContext, e.pointee.observerData)
            }
            // A name pointing into the old body (strings are named by their contents) follows the body.
            if let n = tc.pointee.name, tc.pointee.flags & _Flag.nameIsLocation == 0,
               n >= UnsafeRawPointer(old.body), n < UnsafeRawPointer(old.body) + max(size, 1) {
                tc.pointee.name = UnsafeRawPointer(tc.body) + (n - UnsafeRawPointer(old.body))
            }
        }
        return tc
    }

    // MARK: - Memory limits

    /// What a chunk costs its memory limits: the bytes it really took from malloc. Pool members cost
    /// nothing (their pool was charged), pools cost their whole block.
    @inline(__always)
    static func chargeOf(_ tc: _Chunk) -> Int {
        let f = tc.pointee.flags
        if f & _Flag.poolMem != 0 { return 0 }
        if f & _Flag.pool != 0 { return _poolPrefixSize + _headerSize + Int(tc.poolHeader.pointee.poolSize) }
        return _headerSize + Int(tc.pointee.size)
    }

    /// talloc_memlimit_check over `start` and its ancestors.
    static func limitAllows(_ start: _Chunk, _ bytes: Int) -> Bool {
        var c: _Chunk? = start
        var steps = 0
        while let x = c {
            let f = x.pointee.flags
            if f & _Flag.hasLimit != 0, let e = x.pointee.extra {
                let mx = e.pointee.limitMax, cur = e.pointee.limitCurrent
                if mx != 0 && (mx <= cur || mx - cur < bytes) { return false }
            }
            if f & (_Flag.underLimit) == 0 { break }
            c = x.pointee.parent
            steps += 1
            if steps > 1_000_000_000 { break }
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

/// Frees in progress that may run user code, per thread, so that a destructor freeing (or moving) the
/// parent of the chunk a free started from cannot leave that free pointing at dead memory (§8.6).
/// The list lives in the calling thread's `_ThreadState`: frees on different threads never see each
/// other's roots (a `freeingChild` flag is only ever set on chunks of the freeing thread's own tree).
enum _FreeRegistry {
    /// Registers `root`. False when the thread's state cannot be allocated (the free then goes on without
    /// the §8.6 protection, as talloc always does).
    static func push(_ root: _Chunk) -> Bool {
        guard let state = _ThreadState.current else { return false }
        state.pointee.freeRoots.append(root)
        if let p = root.pointee.parent { p.pointee.flags |= _Flag.freeingChild }
        return true
    }

    static func pop(_ root: _Chunk) {
        guard let state = _ThreadState.existing else { return }
        if let i = state.pointee.freeRoots.lastIndex(of: root) { state.pointee.freeRoots.remove(at: i) }
        if let p = root.pointee.parent, !state.pointee.freeRoots.contains(where: { $0.pointee.parent == p }) {
            p.pointee.flags &= ~_Flag.freeingChild
        }
    }

    /// `parent` is being released while a free started below it is running: that free's refusing
    /// children go to the top level instead, and its subtree's charge leaves `parent`'s limits.
    static func parentIsGoing(_ parent: _Chunk) {
        guard let state = _ThreadState.existing else { return }
        for root in state.pointee.freeRoots where root.pointee.parent == parent {
            if root.pointee.flags & _Flag.underLimit != 0, let up = parent.pointee.parent {
                _Core.limitShrink(up, _Core.subtreeCharge(root, markUnderLimit: false))
            }
            root.pointee.parent = nil
        }
    }

    static func parentMoved(from old: _Chunk, to new: _Chunk) {
        guard let state = _ThreadState.existing else { return }
        for i in state.pointee.freeRoots.indices where state.pointee.freeRoots[i].pointee.parent == old {
            state.pointee.freeRoots[i].pointee.parent = new
        }
    }
}
