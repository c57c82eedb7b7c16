// swift-tools-version:6.0
// luatalloc fuzzers — a separate package so that the main package keeps no fuzzing dependency.
// talloc-fuzz: libFuzzer-driven differential fuzzing of TallocCore against Debian's libtalloc 2.4, with the
// tests' own harness (the main package's TallocDifferential product, Tests/Differential). See README.md.
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
        .executableTarget(
            name: "talloc-fuzz",
            dependencies: [.product(name: "TallocDifferential", package: mainPackage)],
            swiftSettings: [.unsafeFlags(["-parse-as-library"]), .swiftLanguageMode(.v5)]),
    ]
)
