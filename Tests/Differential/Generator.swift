// luatalloc — the differential harness (TallocCore against Debian's libtalloc 2.4.0)
// SPDX-License-Identifier: MIT
//
// The generator of operation sequences. It reads the *oracle's* state (libtalloc, through
// `CTallocSubject`) to choose operations that are valid, that libtalloc survives (TALLOC-SEMANTICS §8),
// and whose pool placement cannot depend on the header size (see `PoolBudget`).

// MARK: - Pool budget

/// Which allocations may target a pool so that libtalloc and TallocCore *must* take the same pool path.
///
/// talloc carves `ALIGN16(96 + size)` bytes per member (`ALIGN16(96 + 32 + size)` for a nested pool,
/// whose 32-byte pool header is a prefix); TallocCore carves `ALIGN16(64 + size)` (`+ 16` for a nested
/// pool). Our chunks are never bigger, so whenever talloc certainly has room, we do too. The budget of a
/// pool counts talloc's cost of *every* carve into it (allocations, `.name` strings, reference handles,
/// nested pools, every realloc that may move or grow a chunk, at the full new size) and never subtracts
/// anything, not even when talloc reclaims the last chunk or resets an empty pool. talloc's real bump
/// pointer is therefore never beyond `used`, and ours is never beyond talloc's. An allocation may target
/// the pool only while `used + cost <= capacity`, where `capacity` is the smaller of the two libraries'
/// bump space. Then both libraries carve it from the pool, at the same relative position in the list of
/// pool chunks.
///
/// The only other allocation allowed to target a pool is one that cannot fit in it on either side even
/// when empty (`ALIGN16(64 + size) > capacity`): both fall back to the heap.
///
/// Realloc inside a pool follows the same rule. talloc's path conditions (§2.6) are the same on both
/// sides: "shrink" and "same size" compare requested sizes; "same aligned chunk size" compares
/// `ALIGN16(96 + n)`, equal exactly when `ALIGN16(64 + n)` are equal since 96 and 64 are multiples of
/// 16; "only chunk in the pool" and "last chunk" depend only on the sequence of carves and frees, which
/// is the same; and "there is room" holds on both sides whenever the budget allows the grow.
///
/// So `isPoolMemory` is compared for every chunk, after every step.
struct PoolBudget {
    /// talloc's bump space and ours. Equal for `talloc_pool`; for a pooled object each library sizes the
    /// pool with its own header sizes, so ours is smaller.
    var cCapacity: Int
    var ourCapacity: Int
    var used: Int = 0
    init(capacity: Int) { (cCapacity, ourCapacity) = (capacity, capacity) }
    init(cCapacity: Int, ourCapacity: Int) { (self.cCapacity, self.ourCapacity) = (cCapacity, ourCapacity) }
    static func cost(_ size: Int, prefix: Int = 0) -> Int { (96 + size + prefix + 15) & ~15 }
    static func ourCost(_ size: Int, prefix: Int = 0) -> Int { (64 + size + prefix + 15) & ~15 }
    func fits(_ cost: Int) -> Bool { used + cost <= min(cCapacity, ourCapacity) }
    /// Too big for the pool even when it is empty, on both sides. `prefix` is talloc's pool header (32)
    /// for a nested pool; ours is 16.
    func neverFits(_ size: Int, prefix: Int = 0) -> Bool {
        Self.cost(size, prefix: prefix) > cCapacity && Self.ourCost(size, prefix: prefix / 2) > ourCapacity
    }
}

// MARK: - Generator

/// Chooses the next operation from the oracle's current state, with choices drawn from `Source`.
struct DiffGenerator<Source: ChoiceSource> {
    var rng: Source
    let options: DifferentialRun.Options
    var nextID = 1
    /// Per live object: what the generator knows (kind, destructor mode, pool).
    var modes: [Int: DestructorMode] = [:]
    var isString: Set<Int> = []
    /// Objects whose name points into their own body (strdup, asprintf, the appenders): a shrinking realloc
    /// would leave the name reading past the chunk, into bytes that legitimately differ between the two
    /// libraries (headers of different sizes), so these are only grown.
    var selfNamed: Set<Int> = []
    var isPoolObject: Set<Int> = []
    /// The pool whose memory the object lives in (set at allocation, cleared when realloc moves it out).
    var poolOf: [Int: Int] = [:]
    /// Budgets by pool id; kept after the pool is freed (its members may pin it).
    var budgets: [Int: PoolBudget] = [:]
    /// `Options.memoryLimits`: TallocCore-only memory limits, owner id → max bytes (0 = unlimited).
    var limits: [Int: Int] = [:]
    /// `Options.memoryLimits`: TallocCore's pool capacity of each pool id (for the limit model).
    var ourPoolCapacity: [Int: Int] = [:]

    init(_ source: Source, options: DifferentialRun.Options) {
        rng = source
        self.options = options
    }

    private mutating func size() -> Int {
        switch rng.below(10) {
        case 0: return 0
        case 1...4: return rng.below(48)
        case 5...7: return rng.pick([64, 100, 128, 200, 500])
        case 8: return rng.pick([1000, 1500, 2048])
        default: return rng.pick([3000, 5000])
        }
    }

    private mutating func text() -> String {
        if rng.chance(70) { return rng.pick(DiffNames.texts) }
        let letters = Array("abcdefghijklmnopqrstuvwxyz _-")
        return String((0..<rng.below(60)).map { _ in rng.pick(letters) })
    }

    /// The pool an allocation under `parent` would be carved from (talloc's tc_alloc_pool choice).
    func targetPool(_ parent: Int?, _ oracle: CTallocSubject) -> Int? {
        guard let parent else { return nil }
        if isPoolObject.contains(parent) { return parent }
        if oracle.isPoolMemory(parent) { return poolOf[parent] }
        return nil
    }

    /// May an allocation of `size` bytes (talloc cost with `prefix`) go under `parent`? Charges the budget.
    /// `heapFallbackAllowed == false` when the two libraries' sizes differ by more than the header (pooled
    /// objects compute their bump space with their own header sizes), so "never fits" cannot be proven.
    mutating func admit(_ parent: Int?, size: Int, prefix: Int = 0, heapFallbackAllowed: Bool = true,
                        _ oracle: CTallocSubject) -> Bool {
        guard let pool = targetPool(parent, oracle), var b = budgets[pool] else { return true }
        let c = PoolBudget.cost(size, prefix: prefix)
        if b.fits(c) {
            b.used += c
            budgets[pool] = b
            return true
        }
        return heapFallbackAllowed && b.neverFits(size, prefix: prefix)
    }

    /// May `x` (pool memory) be reallocated to `size`? Charges the budget.
    mutating func admitRealloc(_ x: Int, to size: Int, _ oracle: CTallocSubject) -> Bool {
        guard oracle.isPoolMemory(x), let pool = poolOf[x], var b = budgets[pool] else { return true }
        if size <= oracle.size(x) { return true }  // shrink or same: in place on both sides
        let c = PoolBudget.cost(size)
        if b.fits(c) {
            b.used += c
            budgets[pool] = b
            return true
        }
        return b.neverFits(size)
    }

    /// Records what the oracle did with a newly created object.
    mutating func created(_ id: Int, parent: Int?, oracle: CTallocSubject) {
        modes[id] = DestructorMode.none
        if oracle.isPoolMemory(id), let pool = targetPool(parent, oracle) { poolOf[id] = pool }
    }

    mutating func forgetDead(_ live: Set<Int>) {
        for id in Array(modes.keys) where !live.contains(id) {
            modes[id] = nil
            isString.remove(id)
            selfNamed.remove(id)
            poolOf[id] = nil
        }
        for id in isPoolObject where !live.contains(id) { isPoolObject.remove(id) }
        for id in Array(limits.keys) where !live.contains(id) { limits[id] = nil }
        for id in Array(ourPoolCapacity.keys) where !live.contains(id) { ourPoolCapacity[id] = nil }
    }

    // MARK: guards against the C library's own crashes and documented divergences

    /// Whether freeing `x` (or its children, `includeSelf == false`) could make libtalloc build a
    /// detached loop, touch freed memory or hang (TALLOC-SEMANTICS §8.5). talloc re-homes a referenced
    /// chunk to the owner of its newest reference, computed before freeing it; when that owner is inside
    /// the subtree being freed, later re-homings can move it under the chunk itself (seed 7147 of the
    /// 1M run: two chunks referencing each other, re-homed into each other's subtree, leaked as a loop).
    /// TallocCore refuses such targets by design (DESIGN §8 "Loops through references"). Conservatively:
    /// at most one chunk of the subtree may have a reference owned inside the subtree, and that chunk must
    /// have one reference only and allow its destructor; and no refusing (or twice-referenced) chunk may
    /// have a reference owned inside its own subtree.
    func freeCouldLoop(_ x: Int, includeSelf: Bool, _ oracle: CTallocSubject) -> Bool {
        let s = oracle.subtree(x)
        let inS = Set(s)
        var insideRefs = 0
        for c in s where includeSelf || c != x {
            let owners = oracle.referenceOwners(c)
            guard !owners.isEmpty else { continue }
            let inside = owners.contains { o in o.map { oracle.isAncestor(c, of: $0) } ?? false }
            if inside && (modes[c] == .refuse || owners.count > 1) { return true }
            if c != x, owners.contains(where: { o in o.map { inS.contains($0) } ?? false }) {
                insideRefs += 1
                if insideRefs > 1 || modes[c] == .refuse || owners.count > 1 { return true }
            }
        }
        return false
    }

    /// Whether unlinking `x` from its real parent would steal it to the owner of its newest reference
    /// inside its own subtree (a detached loop in talloc; refused as "into own subtree" by us).
    func unlinkStealsIntoOwnSubtree(_ x: Int, _ oracle: CTallocSubject) -> Bool {
        guard let newest = oracle.referenceOwners(x).first, let owner = newest else { return false }
        return oracle.isAncestor(x, of: owner)
    }

    /// Whether freeing `x` would re-home some survivor to "the parent of the chunk being freed", the
    /// case where talloc depends on x's sibling position (§8.4, DESIGN §8): a refusing descendant, or a
    /// referenced descendant whose newest reference is owned by the NULL context.
    func freeRehomesToParent(_ x: Int, _ oracle: CTallocSubject) -> Bool {
        for c in oracle.subtree(x) where c != x {
            if modes[c] == .refuse { return true }
            if let newest = oracle.referenceOwners(c).first, newest == nil { return true }
        }
        return false
    }

    // MARK: choosing

    /// The next operation, or nil when this attempt found nothing valid (the caller retries).
    mutating func next(_ oracle: CTallocSubject) -> DiffOp? {
        let live = oracle.liveIDs.sorted()
        func anyLive() -> Int? { live.isEmpty ? nil : rng.pick(live) }
        func parentOrNull() -> Int? { rng.chance(15) ? nil : anyLive() }
        /// What reparent/unlink name as x's current parent or owner: the real parent, a reference's
        /// owner, or anything.
        func fromParentOrOwner(_ x: Int, _ owners: [Int?]) -> Int? {
            switch rng.below(3) {
            case 0: return oracle.parentID(x)
            case 1 where !owners.isEmpty: return rng.pick(owners)
            default: return parentOrNull()
            }
        }
        // A TallocCore-only memory limit; `bytes` is a selector (< 0) the driver turns into a size relative
        // to the subtree's current charge.
        if options.memoryLimits, rng.chance(3), let x = anyLive() { return .setLimit(x, bytes: -1 - rng.below(8)) }
        let crowded = live.count > 60
        let sparse = live.count < 6
        let roll = rng.below(crowded ? 60 : (sparse ? 40 : 100))
        // Creation ops are the low rolls when sparse, destruction ops weigh more when crowded.
        switch sparse ? roll : (crowded ? roll + 40 : roll) {
        case 0..<6:
            let p = parentOrNull()
            guard admit(p, size: 0, oracle) else { return nil }
            if rng.chance(25) { return .newAt(id: take(), parent: p, line: 1 + rng.below(5)) }
            return .new(id: take(), parent: p, name: rng.below(DiffNames.table.count))
        case 6..<16:
            let p = parentOrNull()
            let s = size()
            guard admit(p, size: s, oracle) else { return nil }
            if rng.chance(25) { return .allocateAt(id: take(), parent: p, size: s, line: 1 + rng.below(5)) }
            return .allocate(id: take(), parent: p, size: s, name: rng.below(DiffNames.table.count))
        case 16..<21:
            let p = parentOrNull()
            let capacity = rng.pick([0, 64, 256, 512, 1024, 2048, 4096])
            guard admit(p, size: capacity, prefix: 32, oracle) else { return nil }
            return .pool(id: take(), parent: p, capacity: capacity)
        case 21..<23:
            let p = parentOrNull()
            let s = rng.pick([0, 8, 24, 100])
            let k = rng.below(5)
            let bytes = rng.pick([0, 16, 64, 300])
            let total = s + bytes + (96 + 32 + 15) * (k + 1)
            guard admit(p, size: total, prefix: 32, heapFallbackAllowed: false, oracle) else { return nil }
            return .pooledObject(id: take(), parent: p, size: s, name: rng.below(DiffNames.table.count),
                                 subobjects: k, subobjectBytes: bytes)
        case 23..<28:
            let p = parentOrNull()
            let t = text()
            guard admit(p, size: t.utf8.count + 1, oracle) else { return nil }
            return .strdup(id: take(), parent: p, text: t)
        case 28..<31:
            let p = parentOrNull()
            let t = text()
            guard admit(p, size: t.utf8.count + 1, oracle) else { return nil }
            return .asprintf(id: take(), parent: p, text: t)
        case 31..<32:
            let p = parentOrNull()
            let s = max(1, size())
            guard admit(p, size: s, oracle) else { return nil }
            return .reallocNull(id: take(), parent: p, size: s, name: rng.below(DiffNames.table.count))
        case 32..<38:
            guard let x = anyLive() else { return nil }
            let p = oracle.parentID(x)
            if rng.chance(25), let p {
                guard admit(p, size: 0, oracle) else { return nil }
                return .new(id: take(), parent: p, name: rng.below(DiffNames.table.count))
            }
            // Refusing destructors must not meet a reference from the chunk's own subtree (§8.5).
            var mode: DestructorMode = rng.pick(options.freeingDestructors
                ? [.none, .allow, .refuse, .refuse, .freeChild, .freeOther(0)] : [.none, .allow, .refuse, .refuse])
            if mode == .freeOther(0) {
                guard let t = anyLive(), t != x else { return nil }
                mode = .freeOther(t)
            }
            if mode == .refuse,
               oracle.referenceOwners(x).contains(where: { $0.map { oracle.isAncestor(x, of: $0) } ?? false }) {
                return .setDestructor(x, .allow)
            }
            return .setDestructor(x, mode)
        case 38..<41:
            guard let x = anyLive() else { return nil }
            let t = text()
            guard admit(x, size: t.utf8.count + 1, oracle) else { return nil }
            return .setName(x, t)
        case 41..<43:
            guard let x = anyLive() else { return nil }
            return .setNameConst(x, name: rng.below(DiffNames.table.count))
        case 43..<48:
            guard let x = isString.filter({ oracle.liveIDs.contains($0) }).sorted().randomElement(using: &rng)
            else { return nil }
            let t = text()
            guard admitRealloc(x, to: oracle.size(x) + t.utf8.count, oracle) else { return nil }
            return .append(x, rng.pick(AppendKind.allCases), t)
        case 48..<56:
            guard let x = anyLive() else { return nil }
            let to = parentOrNull()
            if let to, oracle.isAncestor(x, of: to) {
                // Into its own subtree (or onto itself): talloc builds a detached loop, we refuse.
                if to != x, options.documentedDivergences { return .stealIntoOwnSubtree(x, to: to) }
                return nil
            }
            return .steal(x, to: to)
        case 56..<60:
            guard let x = anyLive() else { return nil }
            let owners = oracle.referenceOwners(x)
            let from = fromParentOrOwner(x, owners)
            let to = parentOrNull()
            if to == nil, !options.nullReferences, owners.contains(where: { $0 == from }), from != oracle.parentID(x) {
                return nil
            }
            // Into its own subtree: talloc builds a loop, we refuse (DESIGN §8); not generated for reparent.
            if let to, oracle.isAncestor(x, of: to) { return nil }
            return .reparent(x, from: from, to: to)
        case 60..<67:
            guard let x = anyLive() else { return nil }
            let owner = parentOrNull()
            if owner == nil, !options.nullReferences { return nil }
            guard owner != x || rng.chance(30) else { return nil }
            if let owner, modes[x] == .refuse, oracle.isAncestor(x, of: owner) { return nil }
            guard admit(owner, size: 32, oracle) else { return nil }
            return .reference(x, owner: owner)
        case 67..<73:
            guard let x = anyLive() else { return nil }
            let owners = oracle.referenceOwners(x)
            let from = fromParentOrOwner(x, owners)
            if from == oracle.parentID(x), !owners.contains(where: { $0 == from }) {
                if unlinkStealsIntoOwnSubtree(x, oracle) { return nil }
                if owners.isEmpty, freeCouldLoop(x, includeSelf: true, oracle) { return nil }
            }
            return .unlink(x, from: from)
        case 73..<81:
            guard let x = anyLive() else { return nil }
            var s = rng.chance(15) ? 0 : size()
            if selfNamed.contains(x), s != 0, s < oracle.size(x) { s = oracle.size(x) + rng.below(40) }
            let ctx: Int? = rng.chance(70) ? oracle.parentID(x) : parentOrNull()
            if s == 0 {
                let owners = oracle.referenceOwners(x)
                if ctx == oracle.parentID(x), !owners.contains(where: { $0 == ctx }) {
                    if unlinkStealsIntoOwnSubtree(x, oracle) { return nil }
                    if owners.isEmpty, freeCouldLoop(x, includeSelf: true, oracle) { return nil }
                }
                return .realloc(x, context: ctx, size: 0, name: rng.below(DiffNames.table.count))
            }
            guard admitRealloc(x, to: s, oracle) else { return nil }
            return .realloc(x, context: ctx, size: s, name: rng.below(DiffNames.table.count))
        case 81..<84:
            guard let x = anyLive() else { return nil }
            if freeCouldLoop(x, includeSelf: false, oracle) { return nil }
            return .freeChildren(x)
        default:
            guard let x = anyLive() else { return nil }
            let owners = oracle.referenceOwners(x)
            if owners.count == 1, oracle.parentID(x) == nil, unlinkStealsIntoOwnSubtree(x, oracle) { return nil }
            if owners.isEmpty, freeCouldLoop(x, includeSelf: true, oracle) { return nil }
            return .free(x)
        }
    }

    private mutating func take() -> Int {
        defer { nextID += 1 }
        return nextID
    }
}
