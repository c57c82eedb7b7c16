// swift-tools-version:6.0
// luatalloc fuzzers — a separate package so that the main package keeps no fuzzing dependency.
// talloc-fuzz: libFuzzer-driven differential fuzzing of TallocCore against Debian's libtalloc 2.4
// (the oracle of Tests/TallocCoreTests/Differential*.swift, copied and adapted here). See README.md.
// SPDX-License-Identifier: MIT
import PackageDescription

/// SwiftPM names a path dependency after its directory (lowercased).
let mainPackage: String = {
    let parent = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "luatalloc"
    return parent.lowercased()
}()

let package = Package(
    name: "luatalloc-fuzz",
    products: [
        .executable(name: "talloc-fuzz", targets: ["talloc-fuzz"]),
    ],
    dependencies: [
        .package(path: "../"),
    ],
    targets: [
        // Debian's libtalloc (libtalloc-dev), linked by soname: the main package's `talloc` product (the Lua
        // module) is also a libtalloc.so and must never be what the oracle links against.
        .systemLibrary(name: "CTalloc", path: "Sources/CTallocFuzz"),
        .executableTarget(
            name: "talloc-fuzz",
            dependencies: ["CTalloc", .product(name: "TallocCore", package: mainPackage)],
            swiftSettings: [.unsafeFlags(["-parse-as-library"]), .swiftLanguageMode(.v5)],
            linkerSettings: [.unsafeFlags(["-l:libtalloc.so.2"])]),
    ]
)
