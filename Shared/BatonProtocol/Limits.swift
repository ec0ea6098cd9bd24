/// Size limits on what enters Baton. Every service and job service reads them from its
/// configuration (see `docs/operations.md`); these are the defaults.
public struct Limits: Sendable, Hashable {
    /// The largest HTTP request body the ingester reads (an event with its payload, or a batch).
    public var eventBodyBytes: Int
    /// The most events in one batch request.
    public var batchEvents: Int
    /// The largest encoded output of one task (it travels in one Kafka record, whose default
    /// limit is 1 MB).
    public var taskOutputBytes: Int
    /// The longest log line message; longer ones are cut (the cut message is still the line's key).
    public var logLineBytes: Int
    /// The deepest nesting of arrays and objects in any JSON document read from HTTP or Kafka.
    public var nestingDepth: Int
    /// The longest identifier a client chooses: event ids, task keys, deduplication keys.
    public var keyBytes: Int

    public init(eventBodyBytes: Int = 1 << 20, batchEvents: Int = 100, taskOutputBytes: Int = 512 << 10,
                logLineBytes: Int = 16 << 10, nestingDepth: Int = 64, keyBytes: Int = 256) {
        self.eventBodyBytes = eventBodyBytes
        self.batchEvents = batchEvents
        self.taskOutputBytes = taskOutputBytes
        self.logLineBytes = logLineBytes
        self.nestingDepth = nestingDepth
        self.keyBytes = keyBytes
    }

    /// Nesting that Baton's own documents add around user JSON (a payload inside a run command,
    /// an output inside a run event): internal topics accept ``nestingDepth`` plus this.
    public static let envelopeDepth = 16

    /// The defaults.
    public static let `default` = Limits()

    /// Checks that every limit is positive.
    /// - Throws: `ValidationError` naming the configuration key.
    public func validate() throws(ValidationError) {
        for (key, value) in [("limits.event.body.bytes", eventBodyBytes), ("limits.batch.events", batchEvents),
                             ("limits.task.output.bytes", taskOutputBytes), ("limits.log.line.bytes", logLineBytes),
                             ("limits.json.depth", nestingDepth), ("limits.key.bytes", keyBytes)] where value < 1 {
            throw ValidationError(path: key, message: "must be at least 1, got \(value)")
        }
    }

    /// Checks a client-chosen identifier against ``keyBytes``.
    /// - Throws: `ValidationError` at `path` when it is longer.
    public func checkKey(_ key: String, path: String, what: String) throws(ValidationError) {
        guard key.utf8.count <= keyBytes else {
            throw ValidationError(path: path, message: "\(what) is \(key.utf8.count) bytes long; the limit is \(keyBytes) (limits.key.bytes)")
        }
    }
}

extension BatonJSON {
    /// How deeply `data` nests arrays and objects, scanning at most until `limit` is passed
    /// (brackets inside strings do not count). Linear, allocation-free: safe on hostile input.
    public static func nestingDepth(of data: some Sequence<UInt8>, stoppingAbove limit: Int) -> Int {
        var depth = 0
        var deepest = 0
        var inString = false
        var escaped = false
        for byte in data {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > deepest {
                    deepest = depth
                    if deepest > limit { return deepest }
                }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth = max(0, depth - 1)
            default: break
            }
        }
        return deepest
    }
}
