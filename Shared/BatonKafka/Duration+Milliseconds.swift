extension Duration {
    /// Whole milliseconds, clamped to `Int32` (what librdkafka's timeouts take).
    var librdkafkaMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        return Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
