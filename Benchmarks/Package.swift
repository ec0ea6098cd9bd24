// swift-tools-version:6.1
// Benchmarks of Baton, as their own package so benchmark dependencies stay out of the product.
//   swift run -c release checkpoint-cost            # percentiles and the checkpoint/produce ratio
//   swift package --disable-sandbox benchmark       # package-benchmark suite
// The load generator, baton-load (Sources/baton-load), is built by the main package so that one
// release build gives it and the services: see docs/performance.md.
// Both start a Tansu broker: run ../deploy/local/setup first and export what it prints.
import PackageDescription

let package = Package(
    name: "BatonBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Baton", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "CheckpointFixture",
            dependencies: [
                .product(name: "Baton", package: "Baton"),
                .product(name: "BatonKafka", package: "Baton"),
                .product(name: "BatonProtocol", package: "Baton"),
                .product(name: "BatonTesting", package: "Baton"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "checkpoint-cost",
            dependencies: [
                "CheckpointFixture",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "Checkpoint",
            dependencies: ["CheckpointFixture", .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/Checkpoint",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
