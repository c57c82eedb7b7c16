// luatalloc — TallocCore
// SPDX-License-Identifier: MIT

/// Why a talloc operation failed. talloc itself answers with `NULL` or `-1`; we name the reason.
public enum TallocError: Error, Hashable, Sendable, CustomStringConvertible {
    /// malloc failed, or a memory limit (`setMemoryLimit`) refused the bytes. talloc: `NULL`, `errno = ENOMEM`.
    case outOfMemory
    /// The size is at or above talloc's `MAX_TALLOC_SIZE` (256 MiB), or a count overflows it.
    case sizeTooLarge
    /// The context was freed. talloc aborts with "Bad talloc magic value - access after free".
    case accessAfterFree
    /// The pointer is not a talloc chunk. talloc aborts with "Bad talloc magic value - unknown value".
    case unknownValue
    /// A destructor returned `.refuse`, so nothing was freed. talloc: `talloc_free` returns -1.
    case destructorRefused
    /// `free` of a context that other contexts reference (talloc logs "ERROR: talloc_free with references").
    case hasReferences
    /// `unlink`/`reparent` named a context that is neither the parent nor a referrer.
    case notAParent
    /// `reallocate` of a referenced context (talloc refuses these).
    case referenced
    /// `reallocate` of a pool (talloc refuses these).
    case isPool
    /// `steal`/`reparent` into the context's own subtree would detach a loop (talloc does it silently).
    case wouldCreateLoop
    /// The context is in the middle of being freed (its destructor chain is running).
    case beingFreed
    /// `getTypeAbort`'s mismatch: talloc's "Type mismatch: name[NAME] expected[TYPE]".
    case typeMismatch(name: String, expected: String)

    public var description: String {
        switch self {
        case .outOfMemory: return "not enough memory"
        case .sizeTooLarge: return "size too large (talloc's limit is 256 MiB)"
        case .accessAfterFree: return "Bad talloc magic value - access after free"
        case .unknownValue: return "Bad talloc magic value - unknown value"
        case .destructorRefused: return "a destructor refused the free"
        case .hasReferences: return "the context has references (unlink them first)"
        case .notAParent: return "not a parent of the context"
        case .referenced: return "cannot reallocate a referenced context"
        case .isPool: return "cannot reallocate a pool"
        case .wouldCreateLoop: return "cannot move a context into its own subtree"
        case .beingFreed: return "the context is being freed"
        case let .typeMismatch(name, expected): return "Type mismatch: name[\(name)] expected[\(expected)]"
        }
    }
}

/// What a destructor decides: talloc's 0 (allow the free) or -1 (refuse it).
public enum TallocDestructorVerdict: Sendable {
    /// Free the context: a talloc destructor's `return 0`.
    case allow
    /// Keep the context: a talloc destructor's `return -1` (`talloc_free` then fails).
    case refuse
}
