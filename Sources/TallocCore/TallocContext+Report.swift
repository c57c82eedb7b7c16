// luatalloc — TallocCore
// SPDX-License-Identifier: MIT

extension TallocContext {
    /// talloc_report's text: the header line and the direct children, each with its subtree's totals.
    ///
    /// - Parameter addresses: false drops the `%p` column, for deterministic output.
    /// The corresponding talloc function is `talloc_report()`.
    public func report(addresses: Bool = true) -> String {
        report(depth: 0, maxDepth: 1, addresses: addresses)
    }

    /// talloc_report_full's text: the whole tree ("full talloc report on ...").
    ///
    /// - warning: The text is held whole, and it grows with the square of the tree's depth (4 spaces of
    ///   indentation a level): a 20,000-deep chain, which fits in a few megabytes, writes 800 MB. For a
    ///   tree you did not build yourself (a script's), use `reportFull(addresses:maxBytes:)` or stream it
    ///   with `writeReport(depth:maxDepth:addresses:accountant:to:)`.
    /// The corresponding talloc function is `talloc_report_full()`.
    public func reportFull(addresses: Bool = true) -> String {
        report(depth: 0, maxDepth: -1, addresses: addresses)
    }

    /// talloc_report_full's text, or nil when it is longer than `maxBytes`: writing stops there, so no
    /// more than `maxBytes` of text (and the walk's working memory, see `writeReport`) is ever held.
    ///
    /// The corresponding talloc function is `talloc_report_full()`.
    public func reportFull(addresses: Bool = true, maxBytes: Int) -> String? {
        report(depth: 0, maxDepth: -1, addresses: addresses, maxBytes: maxBytes)
    }

    /// talloc_report's text (one level), or nil when it is longer than `maxBytes` (see
    /// `reportFull(addresses:maxBytes:)`).
    ///
    /// The corresponding talloc function is `talloc_report()`.
    public func report(addresses: Bool = true, maxBytes: Int) -> String? {
        report(depth: 0, maxDepth: 1, addresses: addresses, maxBytes: maxBytes)
    }

    /// talloc_report_depth_file's text, or nil when it is longer than `maxBytes` (see
    /// `reportFull(addresses:maxBytes:)`).
    ///
    /// The corresponding talloc function is `talloc_report_depth_file()`.
    public func report(depth: Int, maxDepth: Int, addresses: Bool = true, maxBytes: Int) -> String? {
        TallocContext.collect(maxBytes: maxBytes) { sink in
            writeReport(depth: depth, maxDepth: maxDepth, addresses: addresses, to: sink)
        }
    }

    /// talloc_report_depth_file's text, starting at `depth` and listing children down to `maxDepth`
    /// (negative: all, and the header says "full"). Byte for byte talloc's format: `%-30s` names,
    /// `%6lu` bytes, `%3lu` blocks, 4 spaces per level, memlimit lines before their context's line,
    /// "reference to:" lines for references this context owns.
    ///
    /// The whole text is built in memory (a full report of a deep tree is large: indentation grows with
    /// depth); `writeReport` streams it instead. Names that are not valid UTF-8 read repaired here.
    /// The corresponding talloc function is `talloc_report_depth_file()`.
    public func report(depth: Int, maxDepth: Int, addresses: Bool = true) -> String {
        TallocContext.collect { sink in
            writeReport(depth: depth, maxDepth: maxDepth, addresses: addresses, to: sink)
        }
    }

    /// Streams talloc_report_depth_file's text (as `report(depth:maxDepth:addresses:)`) to `sink`, piece by
    /// piece, without ever holding it whole. Names are written as their exact bytes, as talloc writes them.
    ///
    /// Working memory is allocated once, up front: 16 bytes per listed chunk (its subtree's totals), 8
    /// bytes per listed level, and a 4 KiB text buffer, announced to `accountant` first.
    ///
    /// - Parameters:
    ///   - depth: The depth the report starts at (0: this context's header line, as talloc).
    ///   - maxDepth: The deepest level listed; negative: all of them ("full").
    ///   - addresses: False drops the `%p` column, for deterministic output.
    ///   - accountant: Called with `+n` before `n` bytes of working memory are allocated (return false
    ///     to refuse: nothing is written and the result is false), and with `-n` when they are freed.
    ///   - sink: Receives the text in pieces (each valid only during the call); return false to stop.
    /// - Returns: True when the whole text was written; false when the accountant refused or the sink
    ///   stopped.
    /// - warning: `sink` and `accountant` must not use or change the tree being reported.
    /// The corresponding talloc function is `talloc_report_depth_file()`.
    @discardableResult
    public func writeReport(
        depth: Int, maxDepth: Int, addresses: Bool = true,
        accountant: (Int) -> Bool = { _ in true },
        to sink: (UnsafeRawBufferPointer) -> Bool
    ) -> Bool {
        _Walk.writeReport(chunk, .init(depth: depth, maxDepth: maxDepth, addresses: addresses),
                          accountant: accountant, to: sink)
    }

    /// Graphviz DOT source of the tree below this context, drawn so that each kind of thing looks
    /// different: a white box per chunk (name and size); a pool bold and blue, with its fill; pool memory
    /// rounded and light blue; memory carved from a freed pool it pins rounded and orange, with a dotted
    /// "pins" edge to a dashed orange box for that pool; a memory limit a red double border with a
    /// "limit CURRENT/MAX bytes" line; solid edges for ownership, dashed purple "ref" edges for
    /// references (a dashed grey box for a target outside the tree). Deterministic: the same tree gives
    /// the same text. The whole text is built in memory; `writeDot` streams it.
    ///
    /// - warning: The text is held whole: for a tree you did not build yourself, use `dot(maxBytes:)` or
    ///   stream it with `writeDot(accountant:to:)`.
    public func dot() -> String {
        TallocContext.collect { sink in writeDot(to: sink) }
    }

    /// `dot()`'s text, or nil when it is longer than `maxBytes`: writing stops there, so no more than
    /// `maxBytes` of text (and the walk's working memory, see `writeDot`) is ever held.
    public func dot(maxBytes: Int) -> String? {
        TallocContext.collect(maxBytes: maxBytes) { sink in writeDot(to: sink) }
    }

    /// DOT source of several trees in one graph (a chunk under two roots is one node).
    public static func dot(_ roots: [TallocContext]) -> String {
        collect { sink in writeDot(roots, to: sink) }
    }

    /// Streams `dot()`'s text to `sink`, piece by piece. Names are escaped for DOT and always valid UTF-8.
    ///
    /// Working memory is allocated once, up front: 8 bytes per level of depth, 16 bytes per reference,
    /// a table of 16-byte slots (at least twice as many as references plus members of freed pools, and at
    /// least 16), and a 4 KiB text buffer, announced to `accountant` first.
    ///
    /// - Parameters: as `writeReport`'s.
    /// - Returns: True when the whole text was written; false when the accountant refused or the sink
    ///   stopped.
    /// - warning: `sink` and `accountant` must not use or change the tree.
    @discardableResult
    public func writeDot(
        accountant: (Int) -> Bool = { _ in true }, to sink: (UnsafeRawBufferPointer) -> Bool
    ) -> Bool {
        _Walk.writeDot([chunk], accountant: accountant, to: sink)
    }

    /// Streams `dot(_:)`'s text for several trees in one graph. With several roots the slot table also
    /// holds every chunk (at least two slots per chunk), so that a chunk under two roots is one node.
    @discardableResult
    public static func writeDot(
        _ roots: [TallocContext], accountant: (Int) -> Bool = { _ in true },
        to sink: (UnsafeRawBufferPointer) -> Bool
    ) -> Bool {
        _Walk.writeDot(roots.map { $0.chunk }, accountant: accountant, to: sink)
    }

    /// The text a streaming writer produces, as a String (invalid UTF-8 repaired), or nil once it is
    /// longer than `maxBytes` (the writer is stopped there).
    static func collect(maxBytes: Int, _ write: ((UnsafeRawBufferPointer) -> Bool) -> Bool) -> String? {
        var bytes: [UInt8] = []
        var over = false
        let done = write { piece in
            if piece.count > maxBytes - bytes.count {
                over = true
                return false
            }
            bytes.append(contentsOf: piece)
            return true
        }
        guard done, !over else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The text a streaming writer produces, as a String (invalid UTF-8 repaired).
    static func collect(_ write: ((UnsafeRawBufferPointer) -> Bool) -> Bool) -> String {
        var bytes: [UInt8] = []
        _ = write { piece in bytes.append(contentsOf: piece); return true }
        return String(decoding: bytes, as: UTF8.self)
    }
}
