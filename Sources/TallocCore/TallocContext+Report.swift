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
    /// The corresponding talloc function is `talloc_report_full()`.
    public func reportFull(addresses: Bool = true) -> String {
        report(depth: 0, maxDepth: -1, addresses: addresses)
    }

    /// talloc_report_depth_file's text, starting at `depth` and listing children down to `maxDepth`
    /// (negative: all, and the header says "full"). Byte for byte talloc's format: `%-30s` names,
    /// `%6lu` bytes, `%3lu` blocks, 4 spaces per level, memlimit lines before their context's line,
    /// "reference to:" lines for references this context owns.
    ///
    /// The corresponding talloc function is `talloc_report_depth_file()`.
    public func report(depth: Int, maxDepth: Int, addresses: Bool = true) -> String {
        _Walk.report(chunk, .init(depth: depth, maxDepth: maxDepth, addresses: addresses))
    }

    /// Graphviz DOT source of the tree below this context: a box per chunk (name and size; pools with
    /// their fill; memory limits), solid edges for ownership, dashed edges for references.
    public func dot() -> String { _Walk.dot([chunk]) }

    /// DOT source of several trees in one graph.
    public static func dot(_ roots: [TallocContext]) -> String { _Walk.dot(roots.map { $0.chunk }) }
}
