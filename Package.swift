// swift-tools-version:6.0
// luatalloc — Samba's talloc rebuilt in Swift, bound into Lua 5.4.
// SPDX-License-Identifier: MIT
import PackageDescription

/// Settings shared by every Swift target.
///
/// `TALLOC_INTERNAL_CHECKS` runs TallocCore's invariant checker (Sources/TallocCore/Internals/
/// _Invariants.swift) after every public mutation: links both ways, parents, pool object counts and
/// used bytes, memory-limit charges against their subtrees, side records; the first violation traps
/// with the list. Each check walks the trees and pools the call touched, O(tree) per call, so they are
/// off here (compiled out: no cost). CI runs the differential test with them on (.ci/extras); by hand:
/// `swift test --scratch-path .build-checks -Xswiftc -DTALLOC_INTERNAL_CHECKS --filter Differential`.
/// Never enable them in production code.
let commonSettings: [SwiftSetting] = [
    // .define("TALLOC_INTERNAL_CHECKS"),
]

let package = Package(
    name: "luatalloc",
    products: [
        .library(name: "TallocCore", targets: ["TallocCore"]),
        .library(name: "LuaTalloc", targets: ["LuaTalloc"]),
        .library(name: "talloc", type: .dynamic, targets: ["TallocLuaModule"]),
        .executable(name: "luatalloc", targets: ["luatalloc"]),
        // Test-only, needs libtalloc-dev: the differential harness, a product only so that the fuzzer package
        // (Fuzz/Package.swift) can share it with the tests. Nothing users or packagers build depends on it.
        .library(name: "TallocDifferential", targets: ["TallocDifferential"]),
    ],
    dependencies: [
        // Documentation only: `swift package generate-documentation` (DocC catalogs in Sources/*/*.docc).
        // A plugin: nothing is linked into the products; SwiftPM fetches it with the package.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // Debian's Lua 5.4 (liblua5.4-dev), through pkg-config: the headers and the library.
        .systemLibrary(
            name: "CLua", pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]),
        // The only C in the product: what Swift must not do with Lua's C API (raise, macros, variadics).
        .target(
            name: "CLuaShims", dependencies: ["CLua"]),
        // lua.c's machinery, for the command-line program only.
        .target(
            name: "CLuaStandalone", dependencies: ["CLua", "CLuaShims"]),
        // Debian's libedit (libedit-dev) for line editing in the REPL.
        .systemLibrary(
            name: "CEdit", pkgConfig: "libedit",
            providers: [.apt(["libedit-dev"])]),
        // Pure Swift talloc. Knows nothing of Lua.
        .target(
            name: "TallocCore",
            swiftSettings: commonSettings),
        // The `talloc` Lua module, the ownership model, the Lua allocator and LuaRuntime.
        .target(
            name: "LuaTalloc", dependencies: ["CLua", "CLuaShims", "TallocCore"],
            swiftSettings: commonSettings + [.swiftLanguageMode(.v5)]),
        // The command-line program.
        .executableTarget(
            name: "luatalloc", dependencies: ["LuaTalloc", "CLua", "CLuaShims", "CLuaStandalone", "CEdit"],
            swiftSettings: commonSettings + [.swiftLanguageMode(.v5)]),
        // Example host: a Lua policy builds a talloc tree from a file list in a sandbox (docs/EMBEDDING.md).
        .executableTarget(
            name: "tree-policy", dependencies: ["LuaTalloc"],
            swiftSettings: commonSettings + [.swiftLanguageMode(.v5)]),
        // `require "talloc"` from a stock lua5.4: exports luaopen_talloc.
        .target(
            name: "TallocLuaModule", dependencies: ["LuaTalloc", "CLua", "CLuaShims"],
            swiftSettings: commonSettings + [.swiftLanguageMode(.v5)]),

        // Test-only: Debian's libtalloc-dev, the oracle of the differential tests.
        .systemLibrary(
            name: "CTalloc", path: "Tests/CTalloc", pkgConfig: "talloc",
            providers: [.apt(["libtalloc-dev"])]),
        // Test-only: the differential harness (generator, libtalloc oracle, TallocCore subject, driver), generic
        // over its source of choices: seeds in TallocCoreTests, libFuzzer's bytes in Fuzz/.
        .target(
            name: "TallocDifferential", dependencies: ["TallocCore", "CTalloc"], path: "Tests/Differential",
            swiftSettings: commonSettings),
        .testTarget(
            name: "TallocCoreTests", dependencies: ["TallocCore", "CTalloc", "TallocDifferential"],
            swiftSettings: commonSettings),
        .testTarget(
            name: "LuaTallocTests", dependencies: ["LuaTalloc", "CLua", "CLuaShims", "TallocCore"],
            swiftSettings: commonSettings + [.swiftLanguageMode(.v5)]),
        // The Swift host API as a host package sees it: Swift 6 language mode, strict concurrency.
        .testTarget(
            name: "LuaTallocHostTests", dependencies: ["LuaTalloc", "TallocCore"],
            swiftSettings: commonSettings),
        .testTarget(
            name: "luatallocTests", dependencies: [],
            swiftSettings: commonSettings + [.swiftLanguageMode(.v5)]),
    ]
)
