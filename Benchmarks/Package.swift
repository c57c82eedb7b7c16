// swift-tools-version:6.0
// luatalloc benchmarks — a separate package so that the main package keeps no benchmark dependency.
// TallocCore vs Samba's libtalloc (Debian libtalloc-dev) vs glibc malloc, and Lua-level costs
// (Debian liblua5.4-dev). Run it with ./run (see README.md).
// SPDX-License-Identifier: MIT
import PackageDescription

/// SwiftPM names a path dependency after its directory (lowercased): "luatalloc" for a clone of that
/// name, but any checkout directory works.
let mainPackage: String = {
    let parent = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "luatalloc"
    return parent.lowercased()
}()

let package = Package(
    name: "luatalloc-benchmarks",
    products: [
        .executable(name: "talloc-bench", targets: ["talloc-bench"]),
        // LD_PRELOAD heap counter for peak-memory runs (never linked into talloc-bench).
        .library(name: "peakmem", type: .dynamic, targets: ["PeakMem"]),
    ],
    dependencies: [
        .package(path: "../"),
    ],
    targets: [
        // The C side of every workload: libtalloc, glibc malloc, Lua states, the minimal C binding of
        // libtalloc for W6. Headers come from /usr/include (talloc.h) and /usr/include/lua5.4, which is
        // where Debian's pkg-config files for `talloc` and `lua5.4` point.
        .target(
            name: "CBench",
            // libtalloc by soname: the main package's `talloc` product (the Lua module) is also a
            // libtalloc.so, and must never be what the C rows link against.
            linkerSettings: [.unsafeFlags(["-l:libtalloc.so.2"]), .linkedLibrary("lua5.4"), .linkedLibrary("m")]),
        .target(name: "PeakMem"),
        .executableTarget(
            name: "talloc-bench",
            dependencies: [
                "CBench",
                .product(name: "TallocCore", package: mainPackage),
                .product(name: "LuaTalloc", package: mainPackage),
            ],
            swiftSettings: [.swiftLanguageMode(.v5)]),
    ]
)
