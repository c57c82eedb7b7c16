// luatalloc — TallocCore
// SPDX-License-Identifier: MIT

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Free

extension TallocContext {
    /// Frees the context and its whole subtree.
    ///
    /// In order (talloc's protocol): the destructor runs first with the subtree intact and may refuse;
    /// then the context leaves its parent and its children are freed newest first, depth first. A child
    /// that refuses, or that another context references, survives: it moves to its newest referrer, else
    /// to the parent of the context being freed (always — talloc makes it top level unless it was the
    /// newest sibling), else to the top level. The free is iterative: a 1,000,000-deep chain frees.
    ///
    /// A context with references is not freed (talloc logs "ERROR: talloc_free with references"), except
    /// a top-level context with exactly one reference, which is handed to its referrer and lives on:
    /// that counts as success, as in talloc.
    ///
    /// The corresponding talloc function is `talloc_free()`.
    /// - Throws: `TallocError.destructorRefused`, `TallocError.hasReferences`, `TallocError.beingFreed` (its
    ///   children are being freed by `freeChildren()`: a destructor of one of them called this).
    public func free(file: StaticString = #fileID, line: UInt = #line) throws(TallocError) {
        let tc = chunk
        let mutation = _Mutation(self)
        defer { mutation.end() }
        if _Core.freePlain(tc) { return }
        if tc.pointee.flags & _Flag.childrenBusy != 0 { throw .beingFreed }
        try TallocContext.freeWithProtocol(tc, file: file, line: line)
    }

    /// `free` of a chunk with a side record (destructor, references, observer, limit) or in a free: out
    /// of line, so that the plain case needs no room for building log lines (W1).
    @inline(never)
    static func freeWithProtocol(_ tc: _Chunk, file: StaticString, line: UInt) throws(TallocError) {
        if tc.refs != nil {
            let single = tc.pointee.parent == _NullTracking.current && tc.refs!.referenceBody.pointee.next == nil
            if _Core.freeTop(tc, location: "\(file):\(line)") == 0 { return }
            throw single ? .destructorRefused : .hasReferences
        }
        if tc.pointee.flags & _Flag.loop != 0 { return }  // already being freed: talloc returns 0
        if _Core.free(tc) != 0 { throw .destructorRefused }
    }

    /// Frees every child of the context but keeps the context (and a ".name" child holding its name).
    ///
    /// Children that refuse move to this context's parent, as talloc moves them.
    /// The corresponding talloc function is `talloc_free_children()`.
    public func freeChildren() {
        let mutation = _Mutation(self)
        defer { mutation.end() }
        _Core.freeChildrenKeepingName(chunk)
    }

    /// Sets the function run when the context is freed; `nil` removes it. It may refuse the free.
    ///
    /// The destructor runs before anything is freed, with the subtree intact. While it runs, freeing the
    /// context again is refused. A destructor that refuses is kept (unless it installed another one).
    /// The corresponding talloc function is `talloc_set_destructor()`.
    public func setDestructor(_ body: ((TallocContext) -> TallocDestructorVerdict)?) {
        let tc = chunk
        let mutation = _Mutation(self)
        defer { mutation.end() }
        if body == nil && tc.pointee.extra == nil { return }
        guard let e = tc.makeExtra() else { return }
        if let old = e.pointee.swiftDestructor { Unmanaged<_DestructorBox>.fromOpaque(old).release() }
        e.pointee.cDestructor = nil
        e.pointee.destructorData = body.map { Unmanaged.passRetained(_DestructorBox($0)).toOpaque() }
        if tc.pointee.flags & _Flag.inDestructor != 0 { tc.pointee.flags |= _Flag.destructorReplaced }
    }

    /// Sets a C destructor: `fn(body, context)` returns 0 to allow the free, -1 to refuse. For bindings.
    ///
    /// - Returns: false when the side record could not be allocated.
    @discardableResult
    package func unsafeSetDestructor(_ fn: TallocUnsafeDestructor?, context: UnsafeMutableRawPointer?) -> Bool {
        let tc = chunk
        let mutation = _Mutation(self)
        defer { mutation.end() }
        if fn == nil && tc.pointee.extra == nil { return true }
        guard let e = tc.makeExtra() else { return false }
        if let old = e.pointee.swiftDestructor { Unmanaged<_DestructorBox>.fromOpaque(old).release() }
        e.pointee.cDestructor = fn
        e.pointee.destructorData = fn == nil ? nil : context
        if tc.pointee.flags & _Flag.inDestructor != 0 { tc.pointee.flags |= _Flag.destructorReplaced }
        return true
    }

    /// Whether a destructor is set (and not running).
    public var hasDestructor: Bool { chunk.pointee.extra?.pointee.hasDestructor ?? false }

    /// Registers an observer told when this chunk's free begins, when it is freed, when a realloc moves
    /// it and when its parent changes (see `TallocObserverEvent`). One per chunk; for language bindings
    /// that keep handles on chunks. `nil` removes it.
    ///
    /// - Returns: false when the side record could not be allocated.
    @discardableResult
    package func unsafeSetObserver(
        _ fn: TallocUnsafeObserver?, context: UnsafeMutableRawPointer?, tag: Int, data: UnsafeMutableRawPointer? = nil
    ) -> Bool {
        let tc = chunk
        let mutation = _Mutation(self)
        defer { mutation.end() }
        if fn == nil && tc.pointee.extra == nil { return true }
        guard let e = tc.makeExtra() else { return false }
        e.pointee.observer = fn
        e.pointee.observerContext = context
        e.pointee.observerTag = tag
        e.pointee.observerData = fn == nil ? nil : data
        return true
    }

    /// The `data` given to `unsafeSetObserver` (nil when none); settable while an observer is set.
    package var unsafeObserverData: UnsafeMutableRawPointer? {
        get { chunk.pointee.extra?.pointee.observerData }
        nonmutating set {
            let mutation = _Mutation(self)
            defer { mutation.end() }
            if let e = chunk.pointee.extra, e.pointee.observer != nil { e.pointee.observerData = newValue }
        }
    }

    /// The tag given to `unsafeSetObserver`, or nil when no observer is set.
    package var observerTag: Int? {
        guard let e = chunk.pointee.extra, e.pointee.observer != nil else { return nil }
        return e.pointee.observerTag
    }

    /// Whether the context is in the middle of being freed (a destructor below it is running).
    public var isBeingFreed: Bool { chunk.pointee.flags & _Flag.loop != 0 }

    /// The bytes malloc'd for a side record: the one allocation a chunk makes beyond its own block, on the
    /// first destructor, observer, reference to it, memory limit or owned name copy, and freed with it.
    package static var sideRecordByteCount: Int { MemoryLayout<_Extra>.stride }

    /// Whether the chunk has its side record (see `sideRecordByteCount`).
    package var hasSideRecord: Bool { chunk.pointee.extra != nil }

    /// The bytes malloc'd, beyond the side record, for a memory limit or pool statistics: one record
    /// for both, on the first of them, freed with the side record.
    package static var limitRecordByteCount: Int { MemoryLayout<_Rare>.stride }

    /// Whether setting a memory limit or starting statistics would malloc `limitRecordByteCount` bytes.
    package var needsLimitRecord: Bool { chunk.pointee.extra?.pointee.rare == nil }
}

// MARK: - Steal, reparent, references

extension TallocContext {
    /// Moves the context under `newParent` (`nil`: the top level, or the calling thread's null context), as
    /// its newest child. The memory limits of both sides follow the whole subtree.
    ///
    /// Stealing a context that has references logs talloc's "WARNING: talloc_steal with references" and
    /// still steals. Unlike talloc, stealing into the context's own subtree is refused (talloc silently
    /// detaches a loop that can never be freed).
    /// The corresponding talloc function is `talloc_steal()` (and `talloc_move()`).
    /// - Throws: `TallocError.wouldCreateLoop`, `TallocError.beingFreed`.
    @inlinable
    public func steal(to newParent: TallocContext?, file: StaticString = #fileID, line: UInt = #line) throws(TallocError) {
        let tc = chunk
        let np = TallocContext.chunk(newParent)
        let mutation = _Mutation(self, newParent)
        defer { mutation.end() }
        // Inlinable for the common case, which no check can fail (W4): no side record (no references to
        // warn about), not being freed, and a new parent that is not inside tc's subtree.
        if _fastPath(tc.pointee.extra == nil && tc.pointee.flags & _Flag.loop == 0
                     && (np == nil || np!.pointee.parent == nil || !_Core.isAncestorOrSelf(tc, of: np!))) {
            _Core.steal(tc, to: np)
            return
        }
        try _stealChecked(tc, to: np, file: file, line: line)
    }

    /// Moves the context from `oldParent` to `newParent`. When `oldParent` is the real parent this is a
    /// steal; when it owns one of the context's references, that reference moves instead.
    ///
    /// The corresponding talloc function is `talloc_reparent()`.
    /// - Throws: `TallocError.notAParent`, `TallocError.wouldCreateLoop`.
    public func reparent(from oldParent: TallocContext?, to newParent: TallocContext?) throws(TallocError) {
        let tc = chunk
        let mutation = _Mutation(self, oldParent, newParent)
        defer { mutation.end() }
        let old = TallocContext.chunk(oldParent)
        let np = TallocContext.chunk(newParent)
        if old == tc.pointee.parent {
            if let np, np != tc, _Core.isAncestorOrSelf(tc, of: np) { throw .wouldCreateLoop }
            if tc.pointee.flags & _Flag.loop != 0 { throw .beingFreed }
            _Core.steal(tc, to: np)
            return
        }
        var h = tc.refs
        while let x = h {
            if x.pointee.parent == old {
                if let np, _Core.isAncestorOrSelf(x, of: np) { throw .wouldCreateLoop }
                _Core.steal(x, to: np)
                return
            }
            h = x.referenceBody.pointee.next
        }
        throw .notAParent
    }

    /// Makes `owner` an extra parent of this context: it lives until every parent has let go.
    ///
    /// A hidden handle chunk (named ".reference") is allocated under `owner`; freeing `owner` drops the
    /// reference. References from inside the context's own subtree are allowed, as in talloc. A context
    /// whose free is under way (its destructor has allowed it) cannot gain references; one its own
    /// destructor adds decides the free as a reference made before it (talloc frees the context under it).
    /// The corresponding talloc function is `talloc_reference(owner, self)`.
    /// - Throws: `TallocError.beingFreed`, `TallocError.outOfMemory`.
    public func reference(
        from owner: TallocContext?, file: StaticString = #fileID, line: UInt = #line
    ) throws(TallocError) {
        let tc = chunk
        if tc.pointee.flags & _Flag.loop != 0 { throw .beingFreed }
        let mutation = _Mutation(self, owner)
        defer { mutation.end() }
        let o = TallocContext.chunk(owner)
        guard _Core.reference(tc, owner: o, file: UnsafeRawPointer(file.utf8Start), line: UInt32(truncatingIfNeeded: line)) != nil
        else { throw .outOfMemory }
    }

    /// As `reference(from:)`, recording `file` (a NUL-terminated string you keep alive) and `line` as
    /// where the reference was made, for talloc's "reference at" log lines. For bindings.
    package func unsafeReference(from owner: TallocContext?, file: UnsafePointer<CChar>?, line: Int) throws(TallocError) {
        let tc = chunk
        if tc.pointee.flags & _Flag.loop != 0 { throw .beingFreed }
        let mutation = _Mutation(self, owner)
        defer { mutation.end() }
        guard _Core.reference(tc, owner: TallocContext.chunk(owner), file: file.map { UnsafeRawPointer($0) },
                              line: UInt32(truncatingIfNeeded: line)) != nil
        else { throw .outOfMemory }
    }

    /// A reference owned by the calling thread's null context (or by no context without null tracking).
    /// The corresponding talloc function is
    /// `talloc_increase_ref_count()`.
    public func increaseReferenceCount(file: StaticString = #fileID, line: UInt = #line) throws(TallocError) {
        try reference(from: nil, file: file, line: line)
    }

    /// Removes `parent` from this context's parents: drops its reference, or, when it is the real parent,
    /// frees the context — or, if other contexts reference it, hands it to the newest referrer.
    ///
    /// The corresponding talloc function is `talloc_unlink()`.
    /// - Throws: `TallocError.notAParent`, `TallocError.destructorRefused`.
    public func unlink(from parent: TallocContext?) throws(TallocError) {
        let tc = chunk
        let mutation = _Mutation(self, parent)
        defer { mutation.end() }
        let p = _NullTracking.parent(TallocContext.chunk(parent))
        var h = tc.refs
        var owns = false
        var steps = 0
        while let x = h { if x.pointee.parent == p { owns = true; break }; h = x.referenceBody.pointee.next; steps &+= 1 }
        _Work.note(steps)
        if !owns && tc.pointee.parent != p { throw .notAParent }
        if _Core.unlink(tc, from: p) != 0 { throw owns || tc.refs != nil ? .notAParent : .destructorRefused }
    }

    /// The number of extra parents (references); the real parent is not counted.
    ///
    /// The corresponding talloc function is `talloc_reference_count()`.
    public var referenceCount: Int { _Core.referenceCount(chunk) }

    /// The owners of this context's references, newest first (`nil` for one owned by no context).
    public var referrers: [TallocContext?] {
        var out: [TallocContext?] = []
        var h = chunk.refs
        while let x = h {
            out.append(x.pointee.parent.map { TallocContext(chunk: $0) })
            h = x.referenceBody.pointee.next
        }
        return out
    }
}

// MARK: - Tree queries

extension TallocContext {
    /// The parent, or nil for a top-level context. With null tracking on, top-level contexts have the
    /// null context of the thread that made them as parent. The corresponding talloc function is
    /// `talloc_parent()`.
    public var parent: TallocContext? {
        chunk.pointee.parent.map { TallocContext(chunk: $0) }
    }

    /// The parent's name, or nil. The corresponding talloc function is `talloc_parent_name()`.
    public var parentName: String? {
        chunk.pointee.parent.map { _Walk.name($0) }
    }

    /// The children, newest first — not the hidden reference handles this context owns.
    public var children: [TallocContext] {
        var out: [TallocContext] = []
        var c = chunk.pointee.child
        while let x = c {
            if !x.isReference { out.append(TallocContext(chunk: x)) }
            c = x.pointee.next
        }
        return out
    }

    /// The first child (newest), skipping reference handles.
    public var firstChild: TallocContext? {
        var c = chunk.pointee.child
        while let x = c, x.isReference { c = x.pointee.next }
        return c.map { TallocContext(chunk: $0) }
    }

    /// The next older sibling, skipping reference handles.
    public var nextSibling: TallocContext? {
        var c = chunk.pointee.next
        while let x = c, x.isReference { c = x.pointee.next }
        return c.map { TallocContext(chunk: $0) }
    }

    /// The contexts this one references through the handles it owns, newest first.
    public var referencedContexts: [TallocContext] {
        var out: [TallocContext] = []
        var c = chunk.pointee.child
        while let x = c {
            if x.isReference { out.append(TallocContext(chunk: x.referenceBody.pointee.target)) }
            c = x.pointee.next
        }
        return out
    }

    /// Whether `ancestor` is this context or one of its ancestors. Safe on detached loops.
    ///
    /// The corresponding talloc function is `talloc_is_parent(self, ancestor)`.
    public func isParent(_ ancestor: TallocContext) -> Bool {
        _Core.isAncestorOrSelf(ancestor.chunk, of: chunk)
    }

    /// This context or its nearest ancestor named `name`.
    ///
    /// The corresponding talloc function is `talloc_find_parent_byname()`.
    public func findParent(byName name: String) -> TallocContext? {
        var s = name
        return s.withUTF8 { findParent(byNameBytes: UnsafeRawBufferPointer($0)) }
    }

    /// This context or its nearest ancestor whose name's bytes are `name` (up to its first NUL), compared
    /// as `checkName(bytes:)` compares, without allocating.
    ///
    /// The corresponding talloc function is `talloc_find_parent_byname()`.
    public func findParent(byNameBytes name: UnsafeRawBufferPointer) -> TallocContext? {
        var result: TallocContext? = nil
        _ = forEachAncestorOrSelf { tc in
            if _Walk.nameEquals(tc, bytes: name) { result = TallocContext(chunk: tc); return false }
            return true
        }
        return result
    }

    /// talloc_show_parents' text: `talloc parents of 'NAME'`, then one line per ancestor, self first.
    public func showParents() -> String {
        var out = "talloc parents of '\(name)'\n"
        _ = forEachAncestorOrSelf { tc in out += "\t'\(_Walk.name(tc))'\n"; return true }
        return out
    }

    /// Walks self and ancestors, each once even on a detached loop. Returns false if `body` stopped it.
    func forEachAncestorOrSelf(_ body: (_Chunk) -> Bool) -> Bool {
        let start = chunk
        var finished = true
        var c: _Chunk? = start
        var steps = 0
        defer { _Work.note(2 &* steps) }
        while let x = c, x.pointee.flags & _Flag.walk == 0 {
            steps &+= 1
            x.pointee.flags |= _Flag.walk
            if !body(x) { finished = false; break }
            c = x.pointee.parent
        }
        var d: _Chunk? = start
        while let x = d, x.pointee.flags & _Flag.walk != 0 {
            x.pointee.flags &= ~_Flag.walk
            d = x.pointee.parent
        }
        return finished
    }

    /// The requested size (0 for a pool; the object's size for a pooled object).
    ///
    /// The corresponding talloc function is `talloc_get_size()`.
    public var size: Int { Int(chunk.pointee.size) }

    /// The sizes of the whole subtree (reference handles count 0). 0 for a context being freed.
    ///
    /// The corresponding talloc function is `talloc_total_size()`.
    public var totalSize: Int { _Walk.totals(chunk).bytes }

    /// The chunks in the whole subtree, reference handles included.
    ///
    /// The corresponding talloc function is `talloc_total_blocks()`.
    public var totalBlocks: Int { _Walk.totals(chunk).blocks }

    /// `size / MemoryLayout<T>.stride`. The corresponding talloc macro is `talloc_array_length()`.
    public func arrayLength<T>(of type: T.Type) -> Int { size / Swift.max(MemoryLayout<T>.stride, 1) }
}

// MARK: - Memory limits

extension TallocContext {
    /// Caps the bytes this subtree takes from malloc (headers included; pool members count through their
    /// pool; `0` means unlimited). Limits nest: an allocation must fit every limit above it. A steal moves
    /// the subtree's bytes between limits; it never fails, but the next allocation may.
    ///
    /// talloc's three accounting bugs (SEMANTICS §2.8) are absent: a freed pool returns all of its bytes,
    /// a pool member reallocated to the heap is charged and discharged the same amount, and reference
    /// handles count like every other chunk.
    /// The corresponding talloc function is `talloc_set_memlimit()`.
    public func setMemoryLimit(_ bytes: Int) throws(TallocError) {
        let mutation = _Mutation(self)
        defer { mutation.end() }
        if bytes < 0 { throw .sizeTooLarge }
        guard _Core.setLimit(chunk, max: bytes) else { throw .outOfMemory }
    }

    /// The limit this context owns and the bytes charged to it, or nil.
    public var memoryLimit: (max: Int, current: Int)? {
        let tc = chunk
        guard tc.pointee.flags & _Flag.hasLimit != 0, let e = tc.pointee.extra else { return nil }
        return (e.pointee.limitMax, e.pointee.limitCurrent)
    }

    /// The most bytes charged to the limit this context owns since the limit was set or since
    /// `resetMemoryLimitPeak()`, or nil without a limit. Exact: kept at every charge. (Not in talloc.)
    public var memoryLimitPeak: Int? {
        let tc = chunk
        guard tc.pointee.flags & _Flag.hasLimit != 0, let e = tc.pointee.extra else { return nil }
        return e.pointee.limitPeak
    }

    /// Starts a new peak of the limit this context owns at its current charge (`peak`: at a given value
    /// at least the current one, to resume an outer measurement). Does nothing without a limit.
    public func resetMemoryLimitPeak(to peak: Int? = nil) {
        let tc = chunk
        guard tc.pointee.flags & _Flag.hasLimit != 0, let e = tc.pointee.extra else { return }
        e.pointee.limitPeak = Swift.max(e.pointee.limitCurrent, peak ?? 0)
    }
}

/// `TallocContext.steal` with its checks: a loop, a free in progress, references (logged, as talloc does).
/// A free function, not a static one: a static's unused metatype argument costs a thunk per call.
@inline(never) @usableFromInline
func _stealChecked(_ tc: _Chunk, to np: _Chunk?, file: StaticString, line: UInt) throws(TallocError) {
    if let np, np.pointee.parent != nil, np != tc, _Core.isAncestorOrSelf(tc, of: np) { throw .wouldCreateLoop }
    if tc.pointee.flags & _Flag.loop != 0 { throw .beingFreed }
    if tc.pointee.extra != nil && tc.refs != nil && tc.pointee.parent != _NullTracking.parent(np) {
        _Core.log("WARNING: talloc_steal with references at \(file):\(line)\n")
        _Core.logReferences(tc)
    }
    guard let (old, newParent) = _Core.stealTarget(tc, np) else { return }
    _Core.stealMoving(tc, from: old, to: newParent)
}
