// luatalloc — the differential harness (TallocCore against Debian's libtalloc 2.4.0)
// SPDX-License-Identifier: MIT
//
// The operations both libraries run, named by the generator's small integer ids, and their normalised
// results. Objects are ids handed out by the generator; each subject maps them to its own pointers.

// MARK: - Fixed names (talloc stores `const char *` names by pointer: they must be static)

public enum DiffNames {
    /// Names for talloc_named_const / set_name_const / realloc. Index 0 is the empty name.
    public static let table: [StaticString] = [
        "", "A", "B", "node", "struct foo", "leaf", "x",
        "a_name_that_is_longer_than_thirty_characters",
        "exactly_thirty_characters_name", "talloc_new: fake.c:1", "UNNAMED", ".name",
    ]
    public static func string(_ index: Int) -> String { table[index].description }

    /// Strings for strdup / asprintf / set_name / the append family.
    public static let texts: [String] = [
        "", "hello", " world", "hello world", "%s %d %%", "ü-utf8-é",
        "a string that is definitely longer than thirty characters",
        "abcdefghijklmnopqrstuvwxyz0123456789",
    ]
}

// MARK: - Operations

public enum DestructorMode: Equatable, CustomStringConvertible {
    case none, allow, refuse
    /// `Options.freeingDestructors`: the destructor frees the chunk's newest child (when it is a tracked
    /// leaf with no destructor and no references), then allows.
    case freeChild
    /// `Options.freeingDestructors`: the destructor frees chunk #id (when it is alive, top level, a leaf
    /// with no destructor and no references), then allows.
    case freeOther(Int)
    public var description: String {
        switch self {
        case .none: "none"; case .allow: "allow"; case .refuse: "refuse"
        case .freeChild: "free-newest-child"; case .freeOther(let id): "free-other(#\(id))"
        }
    }
}

public enum AppendKind: CaseIterable, CustomStringConvertible {
    case strdupAppend, strdupAppendBuffer, asprintfAppend, asprintfAppendBuffer
    public var description: String {
        switch self {
        case .strdupAppend: "strdup_append"
        case .strdupAppendBuffer: "strdup_append_buffer"
        case .asprintfAppend: "asprintf_append"
        case .asprintfAppendBuffer: "asprintf_append_buffer"
        }
    }
}

/// One operation. `id` of a creating operation is the id the new object gets.
public enum DiffOp: CustomStringConvertible {
    case new(id: Int, parent: Int?, name: Int)
    case allocate(id: Int, parent: Int?, size: Int, name: Int)
    /// talloc_size / talloc_new: named by the call site, "fake.c:LINE" / "talloc_new: fake.c:LINE".
    case allocateAt(id: Int, parent: Int?, size: Int, line: Int)
    case newAt(id: Int, parent: Int?, line: Int)
    case pool(id: Int, parent: Int?, capacity: Int)
    case pooledObject(id: Int, parent: Int?, size: Int, name: Int, subobjects: Int, subobjectBytes: Int)
    case strdup(id: Int, parent: Int?, text: String)
    case asprintf(id: Int, parent: Int?, text: String)
    /// talloc_realloc(ctx, NULL, size): an allocation on ctx.
    case reallocNull(id: Int, parent: Int?, size: Int, name: Int)
    case free(Int)
    case freeChildren(Int)
    case steal(Int, to: Int?)
    case reparent(Int, from: Int?, to: Int?)
    case reference(Int, owner: Int?)
    case unlink(Int, from: Int?)
    /// talloc_realloc(ctx, p, size) with the name `name`; size 0 is talloc_unlink(ctx, p).
    case realloc(Int, context: Int?, size: Int, name: Int)
    case setDestructor(Int, DestructorMode)
    case setName(Int, String)
    case setNameConst(Int, name: Int)
    case append(Int, AppendKind, String)
    /// Documented divergence (DESIGN §8): steal into one's own subtree. Only TallocCore runs it and must
    /// refuse it; libtalloc would build a detached loop.
    case stealIntoOwnSubtree(Int, to: Int)
    /// `Options.memoryLimits`: talloc_set_memlimit on TallocCore only (libtalloc's memlimit is buggy,
    /// TALLOC-SEMANTICS §2.8). As generated, `bytes` is a selector (< 0) that the driver turns into a size
    /// relative to the subtree's current charge (`DifferentialRun.limitBytes`).
    case setLimit(Int, bytes: Int)

    public var createdID: Int? {
        switch self {
        case .new(let id, _, _), .allocate(let id, _, _, _), .pool(let id, _, _),
            .allocateAt(let id, _, _, _), .newAt(let id, _, _),
            .pooledObject(let id, _, _, _, _, _), .strdup(let id, _, _), .asprintf(let id, _, _),
            .reallocNull(let id, _, _, _):
            return id
        default: return nil
        }
    }

    public var description: String {
        func o(_ id: Int?) -> String { id.map { "#\($0)" } ?? "NULL" }
        func n(_ i: Int) -> String { "\"\(DiffNames.string(i))\"" }
        switch self {
        case .new(let id, let p, let name): return "#\(id) = new(\(o(p)), \(n(name)))"
        case .allocate(let id, let p, let s, let name): return "#\(id) = named_const(\(o(p)), \(s), \(n(name)))"
        case .allocateAt(let id, let p, let s, let line): return "#\(id) = talloc_size(\(o(p)), \(s)) at fake.c:\(line)"
        case .newAt(let id, let p, let line): return "#\(id) = talloc_new(\(o(p))) at fake.c:\(line)"
        case .pool(let id, let p, let c): return "#\(id) = pool(\(o(p)), \(c))"
        case .pooledObject(let id, let p, let s, let name, let k, let b):
            return "#\(id) = pooled_object(\(o(p)), \(s), \(n(name)), \(k), \(b))"
        case .strdup(let id, let p, let t): return "#\(id) = strdup(\(o(p)), \(t.debugDescription))"
        case .asprintf(let id, let p, let t): return "#\(id) = asprintf(\(o(p)), \(t.debugDescription))"
        case .reallocNull(let id, let p, let s, let name): return "#\(id) = realloc(\(o(p)), NULL, \(s), \(n(name)))"
        case .free(let x): return "free(#\(x))"
        case .freeChildren(let x): return "free_children(#\(x))"
        case .steal(let x, let to): return "steal(\(o(to)), #\(x))"
        case .reparent(let x, let from, let to): return "reparent(\(o(from)), \(o(to)), #\(x))"
        case .reference(let x, let owner): return "reference(\(o(owner)), #\(x))"
        case .unlink(let x, let from): return "unlink(\(o(from)), #\(x))"
        case .realloc(let x, let c, let s, let name): return "realloc(\(o(c)), #\(x), \(s), \(n(name)))"
        case .setDestructor(let x, let m): return "set_destructor(#\(x), \(m))"
        case .setName(let x, let t): return "set_name(#\(x), \(t.debugDescription))"
        case .setNameConst(let x, let name): return "set_name_const(#\(x), \(n(name)))"
        case .append(let x, let k, let t): return "\(k)(#\(x), \(t.debugDescription))"
        case .stealIntoOwnSubtree(let x, let to): return "steal(#\(to), #\(x)) [into own subtree: TallocCore only]"
        case .setLimit(let x, let b): return "set_memlimit(#\(x), \(b)) [TallocCore only]"
        }
    }
}

/// What an operation returned, normalised so that both libraries can be compared.
public enum OpResult: Equatable, CustomStringConvertible {
    /// Nothing to compare (void functions, or talloc_realloc to 0, which returns NULL whatever it did).
    case void
    /// talloc's 0 / a non-NULL pointer; TallocCore: no error thrown, a non-nil context.
    case ok
    /// talloc's -1 / NULL; TallocCore: an error thrown, or nil.
    case failed
    public var description: String {
        switch self { case .void: "void"; case .ok: "ok"; case .failed: "failed" }
    }
}

