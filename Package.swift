// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Baton",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Baton", targets: ["Baton"]),
        .library(name: "BatonProtocol", targets: ["BatonProtocol"]),
        .library(name: "BatonKafka", targets: ["BatonKafka"]),
        .library(name: "BatonTesting", targets: ["BatonTesting"]),
        .executable(name: "baton-ingester", targets: ["EventIngester"]),
        .executable(name: "baton-dispatcher", targets: ["RunDispatcher"]),
        .executable(name: "baton-task-results", targets: ["TaskResultService"]),
        .executable(name: "baton-example-jobs", targets: ["ExampleJobs"]),
        .executable(name: "baton-keys", targets: ["KeyTool"]),
        .executable(name: "baton", targets: ["BatonCLI"]),
        .executable(name: "baton-dashboard", targets: ["Dashboard"]),
        .executable(name: "baton-chaos", targets: ["BatonChaos"]),
        .executable(name: "baton-load", targets: ["BatonLoad"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // OTLP over HTTP only (no gRPC): traces go to a collector when one is configured.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0",
                 traits: [.defaults, "CommandLineArguments"]),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // MARK: Shared
        .target(
            name: "BatonProtocol",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            path: "Shared/BatonProtocol",
            swiftSettings: swiftSettings
        ),
        .systemLibrary(
            name: "CRdKafka",
            path: "Shared/CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .target(
            name: "BatonKafka",
            dependencies: [
                "CRdKafka",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "Shared/BatonKafka",
            swiftSettings: swiftSettings
        ),
        // The domain core: the rules that decide state (pure, no I/O) and the store protocols.
        .target(
            name: "BatonDomain",
            dependencies: ["BatonProtocol"],
            path: "Shared/BatonDomain",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BatonStore",
            dependencies: [
                "BatonProtocol", "BatonDomain",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Shared/BatonStore",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BatonService",
            dependencies: [
                "BatonProtocol", "BatonKafka", "BatonStore",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
            ],
            path: "Shared/BatonService",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Baton",
            dependencies: [
                "BatonProtocol", "BatonKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "Shared/Baton",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BatonTesting",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                "BatonProtocol",
            ],
            path: "Shared/BatonTesting",
            swiftSettings: swiftSettings
        ),

        // MARK: Services
        .executableTarget(
            name: "EventIngester",
            dependencies: [
                "BatonService", "BatonProtocol", "BatonKafka",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Services/EventIngester",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "Dashboard",
            dependencies: [
                "Baton", "BatonService", "BatonProtocol",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Services/Dashboard",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "RunDispatcher",
            dependencies: ["BatonService", "BatonProtocol", "BatonKafka", "BatonStore", "BatonDomain",
                           .product(name: "Metrics", package: "swift-metrics")],
            path: "Services/RunDispatcher",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "TaskResultService",
            dependencies: [
                "BatonService", "BatonProtocol", "BatonKafka", "BatonStore", "BatonDomain",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Services/TaskResultService",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "ExampleJobs",
            dependencies: [
                "Baton", "BatonService", "BatonProtocol",
            ],
            path: "Services/ExampleJobs",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "BatonCLI",
            dependencies: ["Baton", "BatonProtocol", "BatonTesting", "BatonKeys", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")],
            path: "Services/BatonCLI",
            swiftSettings: swiftSettings
        ),
        // The API-key commands, shared by `baton keys` and `baton-keys`.
        .target(
            name: "BatonKeys",
            dependencies: ["BatonProtocol", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Shared/BatonKeys",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "KeyTool",
            dependencies: ["BatonKeys", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Services/KeyTool",
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        .executableTarget(
            name: "BatonChaos",
            dependencies: ["BatonTesting", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tests/Chaos",
            swiftSettings: swiftSettings
        ),
        // The load generator lives with the benchmarks but builds with the services, so one
        // release build gives both (`swift build -c release`).
        .executableTarget(
            name: "BatonLoad",
            dependencies: [
                "BatonKafka", "BatonProtocol", "BatonTesting",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/Sources/baton-load",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DashboardTests",
            dependencies: ["Dashboard", "BatonProtocol"],
            path: "Tests/DashboardTests",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BatonProtocolTests",
            dependencies: ["BatonProtocol", "BatonTesting", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BatonKafkaTests",
            dependencies: ["BatonKafka", "BatonTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BatonStoreTests",
            dependencies: ["BatonStore", "BatonProtocol", "BatonDomain", "BatonTesting", "BatonService",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BatonDomainTests",
            dependencies: ["BatonDomain", "BatonProtocol"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BatonTests",
            dependencies: ["Baton", "BatonProtocol"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EventIngesterTests",
            dependencies: [
                "EventIngester", "BatonTesting", "BatonService", "BatonKafka", "BatonProtocol",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "BatonTesting", "BatonProtocol", "BatonKafka", "Baton",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
